"""Writing collected events into the SQL store, idempotently, in one transaction per batch.

Every derived row (customer, identity, session, order, attribution) is computed from events that
are new to the store, and every insert is guarded by a unique key, so redelivering a stream entry
after a crash stores nothing twice. :func:`write_entries` stores the events and rejections
itself and hands the derived rows to their modules: :mod:`tracking.sessions`,
:mod:`tracking.customers`, :mod:`tracking.orders` and :mod:`tracking.attribution` (orders
credited to recommendation clicks), all in the same transaction. Events and orders carry the
visitor's holdout label (:mod:`tracking.holdout`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tracking import attribution, erased, identity, interaction_log
from tracking.customers import write_customers, write_identities
from tracking.db import any_of, batches, insert_ignore, insert_new
from tracking.holdout import event_in_holdout
from tracking.orders import write_orders
from tracking.rejections import rejection_ref
from tracking.schema import events, rejected_events
from tracking.sessions import assign_sessions, count_sessions

PRODUCT_EVENTS = {
    "Product Viewed",
    "Product Clicked",
    "Product Added",
    "Product Removed",
    "Product Added to Wishlist",
    "Product Shared",
    "Product Reviewed",
    "Recommendation Shown",
    "Recommendation Clicked",
}


@dataclass
class WriteStats:
    """What one call of :func:`write_entries` did."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    dead_lettered: int = 0  # events the ingest worker quarantined (tracking.ingest)
    orders: int = 0
    attributed: int = 0  # order lines credited to a recommendation click
    erased: int = 0  # events of erased people, dropped (tracking.erased)
    site_ids: set[int] = field(default_factory=set)


@dataclass
class StoredBatch:
    """What one transaction stored for one site, for a hook run in that transaction (rollups)."""

    site_id: int
    rows: list[dict[str, Any]]  # the events rows this transaction inserted, payload included
    order_ids: set[str]  # orders whose attributions this transaction (re)computed
    attribution_window: timedelta
    # What the hook would otherwise read back: the orders rows this transaction inserted and
    # their order_lines rows (tracking.orders.WrittenOrders), and the sessions it began (their
    # every stored event is in ``rows``).
    orders: list[dict[str, Any]] = field(default_factory=list)
    order_lines: list[dict[str, Any]] = field(default_factory=list)
    new_sessions: set[str] = field(default_factory=set)
    # The message ids of ``rows`` (the store has them at hand; None: work them out from rows).
    message_ids: set[str] | None = None

    def stored_ids(self) -> set[str]:
        """The message ids of the events this transaction stored."""
        if self.message_ids is None:
            self.message_ids = {row["message_id"] for row in self.rows}
        return self.message_ids


OnStored = Callable[[sa.Connection, StoredBatch], None]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _existing_message_ids(conn: sa.Connection, site_id: int, message_ids: list[str]) -> set[str]:
    # On PostgreSQL one query with the ids as one array: eight IN lists of 500 bound parameters
    # per 4,000-event batch cost 80-690 ms of driver and planner time, this 10-20 ms.
    found: set[str] = set()
    for chunk in batches(conn, message_ids):
        found.update(
            conn.execute(
                sa.select(events.c.message_id).where(
                    events.c.site_id == site_id, any_of(conn, events.c.message_id, chunk)
                )
            ).scalars()
        )
    return found


def write_entries(
    conn: sa.Connection,
    entries: list[dict[str, Any]],
    session_timeout: timedelta,
    *,
    holdout_share: float = 0.0,
    attribution_window: timedelta = timedelta(days=7),
    on_stored: OnStored | None = None,
) -> WriteStats:
    """Store parsed stream entries (tracking.stream.parse_entry) in ``conn``'s transaction.

    ``holdout_share`` labels the events and orders of holdout visitors; orders are credited to
    recommendation clicks at most ``attribution_window`` older than them. ``on_stored`` runs in
    the same transaction with each site's :class:`StoredBatch`, so what it derives commits (or
    rolls back) with the events.
    """
    stats = WriteStats()
    # Events of people erased meanwhile are dropped, here and for whoever reads ``entries`` next.
    stats.erased = erased.drop_erased_events(conn, entries)
    stats.received += stats.erased
    by_site: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    rejected_rows = []
    for entry in entries:
        site_id = entry["site_id"]
        stats.site_ids.add(site_id)
        received_at = _time(entry["received_at"])
        for event in entry["events"]:
            stats.received += 1
            # A message id repeated inside one delivery is the same event sent twice.
            if event["messageId"] in by_site[site_id]:
                stats.duplicates += 1
            else:
                by_site[site_id][event["messageId"]] = event
        for rejection in entry["rejected"]:
            stats.received += 1
            rejected_rows.append(
                {
                    "site_id": site_id,
                    "source_ref": rejection_ref(site_id, rejection),
                    "batch_index": rejection["index"],
                    "field": rejection["field"][:200],
                    "reason": rejection["reason"][:500],
                    "raw": rejection["raw"],
                    "received_at": received_at,
                }
            )
    if rejected_rows:
        # A request sent again carries the same rejections: only the new ones count.
        unique = list({row["source_ref"]: row for row in rejected_rows}.values())
        # Few rows: RETURNING costs nothing here, and is one statement on both databases.
        insert = insert_ignore(conn.engine, rejected_events).returning(rejected_events.c.source_ref)
        stats.rejected = len(conn.execute(insert, unique).all())
        stats.duplicates += len(rejected_rows) - stats.rejected

    for site_id, by_message in by_site.items():
        seen = _existing_message_ids(conn, site_id, list(by_message))
        new_events = [e for mid, e in by_message.items() if mid not in seen]
        stats.duplicates += len(by_message) - len(new_events)
        if not new_events:
            continue
        new_events.sort(key=lambda e: e["timestamp"])
        for event in new_events:
            # An unverified user id is a claim: from here on the event is its visitor's only.
            identity.distrust(event)
        for event in new_events:
            event["_ts"] = _time(event["timestamp"])
        session_of, visitor_of, new_sessions = assign_sessions(
            conn, site_id, new_events, session_timeout
        )
        write_identities(conn, site_id, new_events)
        write_customers(conn, site_id, new_events)
        written = write_orders(conn, site_id, new_events, holdout_share)
        order_ids = set(written.order_ids)
        stats.orders += len(order_ids)
        # Clicks that arrive after their order (a browser queue flushed late) credit it too.
        order_ids |= attribution.orders_after_clicks(conn, site_id, new_events, attribution_window)
        rows = []
        for event in new_events:
            ts = event.pop("_ts")
            properties = event.get("properties") or {}
            item_id = properties.get("product_id") if event.get("event") in PRODUCT_EVENTS else None
            order_id = properties.get("order_id")
            rows.append(
                {
                    "site_id": site_id,
                    "message_id": event["messageId"],
                    "type": event["type"],
                    "event": event.get("event"),
                    "name": event.get("name"),
                    "anonymous_id": event.get("anonymousId"),
                    "user_id": event.get("userId"),
                    "session_id": session_of.get(event["messageId"]),
                    "item_id": str(item_id)[:255] if item_id is not None else None,
                    "order_id": str(order_id)[:255] if order_id is not None else None,
                    "timestamp": ts,
                    "sent_at": _time(event["sentAt"]) if event.get("sentAt") else None,
                    "received_at": _time(event["receivedAt"]),
                    "payload": event,
                    "holdout": event_in_holdout(site_id, event, holdout_share),
                }
            )
        # A concurrent worker may store the same message meanwhile: only the rows this
        # transaction stored count, and enter the interaction log.
        inserted = insert_new(conn, events, rows, "message_id")
        stats.stored += len(inserted)
        stats.duplicates += len(rows) - len(inserted)
        count_sessions(
            conn, site_id, [row for row in rows if row["message_id"] in inserted], visitor_of
        )
        interaction_log.append(
            conn,
            site_id,
            [
                (
                    row["user_id"],
                    row["anonymous_id"],
                    row["item_id"],
                    row["event"] or row["type"],
                    interaction_log.epoch(row["timestamp"]),
                )
                for row in rows
                if row["item_id"] is not None and row["message_id"] in inserted
            ]
            + written.interactions,
        )
        # After the events, so a click in this very batch is in the store to be found.
        stats.attributed += attribution.attribute_orders(
            conn, site_id, order_ids, attribution_window
        )
        if on_stored is not None:
            stored_rows = [row for row in rows if row["message_id"] in inserted]
            on_stored(
                conn,
                StoredBatch(
                    site_id,
                    stored_rows,
                    order_ids,
                    attribution_window,
                    orders=written.stored,
                    order_lines=written.lines,
                    new_sessions=new_sessions,
                    message_ids=inserted,
                ),
            )
    return stats
