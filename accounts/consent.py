"""Consent records: every change of a customer's choices, kept as it happened (append-only).

A record says what the choice was about (a channel and topic such as ``email:offers``,
``personalisation`` or ``tracking``), whether it was granted or withdrawn, when, from where
(``portal``, ``api``, ``console``, ``import``, or ``tracker``: the shop's pages, through
accounts.tracker_consent) and the exact wording the customer was shown. Records are never
updated; the current state of a choice is its newest record (:func:`current`).
Erasure of the person (accounts.erasure) deletes them with the rest of their data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from accounts.prefs_schema import consent_records
from tracking.consent_event import CONSENT_CATEGORY, MAX_CONSENT_WORDING
from tracking.db import aware
from tracking.errors import FieldError

# tracker: the shop's pages (static/ecrm.js) sent it (accounts.tracker_consent)
SOURCES = ("portal", "api", "console", "import", "tracker")
PERSONALISATION = "personalisation"
TRACKING = CONSENT_CATEGORY
MAX_WORDING = MAX_CONSENT_WORDING  # characters of the wording shown (the collector's limit too)
MAX_USER_ID = 255
HISTORY_LIMIT = 500


class ConsentError(FieldError):
    """A consent record that cannot be stored: ``field`` says which part, ``reason`` why."""


@dataclass(frozen=True)
class ConsentRecord:
    """One recorded change of a choice."""

    id: int
    site_id: int
    user_id: str
    what: str
    granted: bool
    at: datetime
    source: str
    wording: str
    message_id: str | None = None  # the tracker's event it came from


def check(user_id: str, what: str, source: str, wording: str) -> None:
    """Raise :class:`ConsentError` for a record that must not be stored."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID:
        raise ConsentError("user_id", f"a customer id of 1 to {MAX_USER_ID} characters")
    if not isinstance(what, str) or not what or len(what) > 80:
        raise ConsentError("what", "a channel:topic, 'personalisation' or 'tracking'")
    if source not in SOURCES:
        raise ConsentError("source", f"one of {', '.join(SOURCES)}")
    if not isinstance(wording, str) or not wording.strip():
        raise ConsentError("wording", "the exact words the customer was shown are required")
    if len(wording) > MAX_WORDING:
        raise ConsentError("wording", f"at most {MAX_WORDING} characters")


def record(
    conn: sa.Connection,
    site_id: int,
    user_id: str,
    what: str,
    granted: bool,
    *,
    source: str,
    wording: str,
    at: datetime | None = None,
) -> int:
    """Append one record in the caller's transaction; returns its id."""
    check(user_id, what, source, wording)
    inserted = conn.execute(
        consent_records.insert().values(
            site_id=site_id,
            user_id=user_id,
            what=what,
            granted=bool(granted),
            at=at or datetime.now(UTC),
            source=source,
            wording=wording,
        )
    )
    return int(inserted.inserted_primary_key[0])


def _record(row) -> ConsentRecord:
    return ConsentRecord(
        id=row.id,
        site_id=row.site_id,
        user_id=row.user_id,
        what=row.what,
        granted=bool(row.granted),
        at=aware(row.at),
        source=row.source,
        wording=row.wording,
        message_id=row.message_id,
    )


def history(
    conn: sa.Connection,
    site_id: int,
    user_id: str,
    whats: Iterable[str] | None = None,
    limit: int = HISTORY_LIMIT,
) -> list[ConsentRecord]:
    """A customer's records, newest first by when they were made (only about ``whats`` if given)."""
    query = (
        sa.select(consent_records)
        .where(consent_records.c.site_id == site_id, consent_records.c.user_id == user_id)
        .order_by(consent_records.c.at.desc(), consent_records.c.id.desc())
        .limit(max(1, min(limit, HISTORY_LIMIT)))
    )
    if whats is not None:
        query = query.where(consent_records.c.what.in_(list(whats)))
    return [_record(row) for row in conn.execute(query)]


def current(conn: sa.Connection, site_id: int, user_id: str) -> dict[str, ConsentRecord]:
    """The newest record of each choice the customer ever made: what -> record.

    Newest by when the choice was made, then by id: a tracker's record can be written after a
    later one (its anonymous visitor is stitched to the customer afterwards).
    """
    rows = conn.execute(
        sa.select(consent_records)
        .where(consent_records.c.site_id == site_id, consent_records.c.user_id == user_id)
        .order_by(consent_records.c.at, consent_records.c.id)
    )
    return {row.what: _record(row) for row in rows}  # the newest of each what wins
