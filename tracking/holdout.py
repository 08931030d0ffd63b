"""The holdout group: a sticky share of visitors who see popularity only, so lift can be measured.

Membership is a pure function of the site and the visitor's anonymous id (the user id when a
backend call has no anonymous id), so the web layer that serves and the ingest worker that labels
events and orders agree without sharing state, and a visitor stays in their group across visits.
"""

from __future__ import annotations

import hashlib
from typing import Any


def holdout_bucket(site_id: int, visitor_id: str) -> float:
    """A stable number in [0, 1) for this visitor of this site."""
    digest = hashlib.blake2b(f"{site_id}:{visitor_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def in_holdout(site_id: int, visitor_id: str | None, share: float) -> bool:
    """True when the visitor belongs to the holdout group (never without an id or a share)."""
    if not visitor_id or share <= 0.0:
        return False
    return holdout_bucket(site_id, visitor_id) < share


def event_in_holdout(site_id: int, event: dict[str, Any], share: float) -> bool:
    """True when the event's visitor (anonymous id, else user id) belongs to the holdout group."""
    # The same function and visitor id the web layer uses to serve popularity only.
    return in_holdout(site_id, event.get("anonymousId") or event.get("userId"), share)
