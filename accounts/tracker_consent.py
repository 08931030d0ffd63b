"""Tracking consent the shop's pages report: the tracker's consent events become consent records.

``ecrm('consent', true|false, {wording})`` (static/ecrm.js) sends Segment's "Segment Consent
Preference Updated" track event with ``context.consent.categoryPreferences.tracking`` and the
words the shop showed in ``properties.wording``; the collector checks it
(tracking.consent_event). The ingest worker stores it as any event and then runs
:func:`on_stored` in the same transaction, which appends a ``tracking`` consent record (source
``tracker``, at the event's time) for the customer the event belongs to:

- an event whose user id the site's identity verification accepted (tracking.identity) is the
  customer's: recorded for them at once;
- an unverified or anonymous one is its visitor's only (the store keeps it as any anonymous
  event). It is recorded for a customer when that visitor's anonymous id is, or later becomes,
  linked to them by a verified event (an ``identify`` after sign-in): the same browser, so the
  same person as far as every other event of that visitor is concerned. A claim alone never
  writes a record in anyone's name, since anyone may copy the write key from the page.

Each record keeps its event's ``message_id`` under a unique index, so redelivery and repeated
stitching record an event once per customer. Erasure and export reach the records
(accounts.personal_data: ``consent_records``) and the events (``events``) like any other.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accounts import consent
from accounts.prefs_schema import consent_records
from tracking.consent_event import CONSENT_EVENT, consent_choice
from tracking.db import aware, chunks, insert_ignore
from tracking.schema import events, identities
from tracking.store import StoredBatch

SOURCE = "tracker"
# Recorded when the shop's page passed no words of its own.
NO_WORDING = "(The shop's page gave no wording with this choice.)"


def _record_row(site_id: int, user_id: str, message_id: str, payload: dict, at) -> dict | None:
    granted = consent_choice(payload)
    if granted is None:
        return None
    wording = (payload.get("properties") or {}).get("wording")
    if not isinstance(wording, str) or not wording.strip():
        wording = NO_WORDING
    return {
        "site_id": site_id,
        "user_id": user_id,
        "what": consent.TRACKING,
        "granted": granted,
        "at": aware(at),
        "source": SOURCE,
        # The collector refuses longer words; events the server writes itself are not checked.
        "wording": wording[: consent.MAX_WORDING],
        "message_id": message_id,
    }


def _stored_consent_events(
    conn: sa.Connection, site_id: int, anonymous_ids: list[str]
) -> list[sa.Row]:
    """Consent events stored without a verified user id for these anonymous ids."""
    found: list[sa.Row] = []
    for chunk in chunks(anonymous_ids):
        found.extend(
            conn.execute(
                sa.select(
                    events.c.anonymous_id, events.c.message_id, events.c.payload, events.c.timestamp
                ).where(
                    events.c.site_id == site_id,
                    events.c.anonymous_id.in_(chunk),
                    events.c.event == CONSENT_EVENT,
                    events.c.user_id.is_(None),
                )
            )
        )
    return found


def _linked_users(conn: sa.Connection, site_id: int, anonymous_ids: list[str]) -> dict:
    """anonymous id -> the customers it is linked to."""
    linked: dict[str, set[str]] = {}
    for chunk in chunks(anonymous_ids):
        rows = conn.execute(
            sa.select(identities.c.anonymous_id, identities.c.user_id).where(
                identities.c.site_id == site_id, identities.c.anonymous_id.in_(chunk)
            )
        )
        for anonymous_id, user_id in rows:
            linked.setdefault(anonymous_id, set()).add(user_id)
    return linked


def records_for(conn: sa.Connection, site_id: int, rows: list[dict[str, Any]]) -> list[dict]:
    """The consent records the newly stored event ``rows`` (tracking.store) call for."""
    records: list[dict] = []
    anonymous_consents: list[dict] = []
    identified: dict[str, str] = {}  # anonymous id -> user id, from verified identify events
    for row in rows:
        if row["event"] == CONSENT_EVENT:
            if row["user_id"] is not None:
                made = _record_row(
                    site_id, row["user_id"], row["message_id"], row["payload"], row["timestamp"]
                )
                if made:
                    records.append(made)
            elif row["anonymous_id"] is not None and consent_choice(row["payload"]) is not None:
                anonymous_consents.append(row)
        if row["type"] == "identify" and row["user_id"] and row["anonymous_id"]:
            identified[row["anonymous_id"]] = row["user_id"]
    # A visitor's earlier (or this batch's) anonymous choices, once they are known to be a customer.
    if identified:
        for found in _stored_consent_events(conn, site_id, list(identified)):
            made = _record_row(
                site_id,
                identified[found.anonymous_id],
                found.message_id,
                found.payload,
                found.timestamp,
            )
            if made:
                records.append(made)
    # An anonymous choice made after the visitor was linked to a customer (another tab's queue).
    if anonymous_consents:
        linked = _linked_users(conn, site_id, [r["anonymous_id"] for r in anonymous_consents])
        for row in anonymous_consents:
            for user_id in sorted(linked.get(row["anonymous_id"], ())):
                made = _record_row(
                    site_id, user_id, row["message_id"], row["payload"], row["timestamp"]
                )
                if made:
                    records.append(made)
    return records


def on_stored(conn: sa.Connection, batch: StoredBatch) -> int:
    """The ingest hook: record what the batch's consent events say; returns how many records."""
    records = records_for(conn, batch.site_id, batch.rows)
    if not records:
        return 0
    unique = list({(r["user_id"], r["message_id"]): r for r in records}.values())
    inserted = conn.execute(
        insert_ignore(conn.engine, consent_records).returning(consent_records.c.id), unique
    )
    return len(inserted.all())
