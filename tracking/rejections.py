"""Refused events: what is kept of each (index, field, reason, raw JSON) and its unique key.

The collector answers with the refusals and puts them in the stream beside the accepted events;
the ingest worker stores each once in ``rejected_events``, keyed by :func:`rejection_ref`, so a
request sent again adds nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from tracking.privacy import scrub_ips

RAW_KEEP_BYTES = 4096  # how much of a rejected event's raw payload is kept


@dataclass
class Rejection:
    """An event refused with its reason, kept in the rejected-events table."""

    index: int | None
    field: str
    reason: str
    raw: str
    status: int = 422

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used in responses and in the stream."""
        return {"index": self.index, "field": self.field, "reason": self.reason, "raw": self.raw}


def rejected_raw(raw_event: Any) -> str:
    """The first RAW_KEEP_BYTES of a refused event's JSON, its client-sent IPs truncated."""
    if type(raw_event) is dict:
        scrub_ips(raw_event)  # again: an event refused before validation was not scrubbed yet
    return orjson.dumps(raw_event, default=str)[:RAW_KEEP_BYTES].decode("utf-8", "replace")


def rejection_ref(site_id: int, rejection: dict[str, Any]) -> str:
    """The unique key of a rejected event, the same each time its request is sent.

    Keyed by the event's ``messageId`` when it has a string one (the event sent again), else by
    a digest of its raw payload and the reason; never by the request, which a resend renews.
    """
    message_id = None
    try:
        raw_event = orjson.loads(rejection["raw"])
    except orjson.JSONDecodeError:  # cut at RAW_KEEP_BYTES: the digest of the raw text serves
        raw_event = None
    if isinstance(raw_event, dict) and isinstance(raw_event.get("messageId"), str):
        message_id = raw_event["messageId"]
    if message_id is not None:
        key = b"m\0" + message_id.encode("utf-8", "surrogatepass")
    else:
        key = b"r\0" + rejection["reason"].encode() + b"\0" + rejection["raw"].encode()
    # A site prefix and a 48-character digest fit source_ref's 64 characters.
    return f"{site_id}:{hashlib.blake2b(key, digest_size=24).hexdigest()}"
