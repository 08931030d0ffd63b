"""Writing collected events into the SQL store, idempotently, in one transaction per batch.

Every derived row (customer, identity, session, order, attribution) is computed from events that
are new to the store, and every insert is guarded by a unique key, so redelivering a stream entry
after a crash stores nothing twice. Events and orders carry the visitor's holdout label
(:mod:`tracking.holdout`); orders are attributed to recommendation clicks
(:mod:`tracking.attribution`) in the same transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from tracking import attribution, identity, interaction_log
from tracking.db import insert_ignore, upsert
from tracking.holdout import in_holdout
from tracking.rejections import rejection_ref
from tracking.schema import (
    customers,
    events,
    identities,
    order_lines,
    orders,
    rejected_events,
    sessions,
)

IN_CHUNK = 500  # ids per IN (...) list; well below SQLite's variable limit
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
    site_ids: set[int] = field(default_factory=set)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def _chunks(values: list, size: int = IN_CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _existing_message_ids(conn: sa.Connection, site_id: int, message_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(message_ids):
        found.update(
            conn.execute(
                sa.select(events.c.message_id).where(
                    events.c.site_id == site_id, events.c.message_id.in_(chunk)
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
) -> WriteStats:
    """Store parsed stream entries (tracking.stream.parse_entry) in ``conn``'s transaction.

    ``holdout_share`` labels the events and orders of holdout visitors; orders are credited to
    recommendation clicks at most ``attribution_window`` older than them.
    """
    stats = WriteStats()
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
        session_of, visitor_of = _assign_sessions(conn, site_id, new_events, session_timeout)
        _write_identities(conn, site_id, new_events)
        _write_customers(conn, site_id, new_events)
        order_ids, order_interactions = _write_orders(conn, site_id, new_events, holdout_share)
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
                    "holdout": _holdout(site_id, event, holdout_share),
                }
            )
        # A concurrent worker may store the same message meanwhile: only the rows this
        # transaction stored count, and enter the interaction log.
        inserted = _insert_new(conn, events, rows, "message_id")
        stats.stored += len(inserted)
        stats.duplicates += len(rows) - len(inserted)
        _count_sessions(
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
            + order_interactions,
        )
        # After the events, so a click in this very batch is in the store to be found.
        stats.attributed += attribution.attribute_orders(
            conn, site_id, order_ids, attribution_window
        )
    return stats


def _insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict], key: str) -> set[str]:
    """Insert ``rows``, skipping those whose unique key is stored already; return the stored keys.

    SQLite: INSERT ... ON CONFLICT DO NOTHING RETURNING (about +10% on the insert). PostgreSQL:
    RETURNING made the events insert 2.5x slower (bench/RESULTS.md, "Interaction log"), so the
    usual batch, which collides with nothing, goes in by a plain executemany inside a
    savepoint; only when a row collides (a concurrent worker, an order sent again) is the
    savepoint rolled back and the batch inserted again with ON CONFLICT DO NOTHING RETURNING.
    (pysqlite's implicit transactions make savepoints unsafe here, hence the two paths.)
    """
    if conn.dialect.name == "postgresql":
        try:
            with conn.begin_nested():
                conn.execute(table.insert(), rows)
            return {row[key] for row in rows}
        except sa.exc.IntegrityError:
            pass  # rolled back to the savepoint: nothing of this insert remains
    insert = insert_ignore(conn.engine, table).returning(table.c[key])
    return set(conn.execute(insert, rows).scalars())


def _holdout(site_id: int, event: dict[str, Any], share: float) -> bool:
    # The same function and visitor id the web layer uses to serve popularity only.
    return in_holdout(site_id, event.get("anonymousId") or event.get("userId"), share)


def _visitor(event: dict[str, Any]) -> str:
    return event.get("anonymousId") or event["userId"]


def _assign_sessions(
    conn: sa.Connection, site_id: int, new_events: list[dict], timeout: timedelta
) -> tuple[dict[str, str], dict[str, dict]]:
    """Cut each visitor's events into sessions at ``timeout`` of inactivity; write nothing.

    Returns each event's session id, and each session's visitor. The sessions are written by
    :func:`_count_sessions` once the events insert has said which events this transaction
    stored: a worker storing the same message at the same time must not count it again.
    """
    by_visitor: dict[str, list[dict]] = defaultdict(list)
    for event in new_events:
        if event["type"] == "alias":
            continue
        by_visitor[_visitor(event)].append(event)
    if not by_visitor:
        return {}, {}
    latest: dict[str, dict] = {}
    for chunk in _chunks(list(by_visitor)):
        for row in conn.execute(
            sa.select(
                sessions.c.session_id,
                sessions.c.visitor_id,
                sessions.c.anonymous_id,
                sessions.c.started_at,
                sessions.c.last_seen_at,
            ).where(sessions.c.site_id == site_id, sessions.c.visitor_id.in_(chunk))
        ).mappings():
            current = latest.get(row["visitor_id"])
            if current is None or row["last_seen_at"] > current["last_seen_at"]:
                latest[row["visitor_id"]] = dict(row)
    visitor_of: dict[str, dict] = {}
    session_of: dict[str, str] = {}
    for visitor, visitor_events in by_visitor.items():
        current = latest.get(visitor)
        if current is not None:
            for name in ("started_at", "last_seen_at"):
                current[name] = _aware(current[name])
        for event in visitor_events:
            ts = event["_ts"]
            if (
                current is None
                or ts > current["last_seen_at"] + timeout
                or ts < current["started_at"] - timeout
            ):
                current = {
                    "session_id": uuid.uuid4().hex,
                    "visitor_id": visitor,
                    "anonymous_id": event.get("anonymousId"),
                    "started_at": ts,
                    "last_seen_at": ts,
                }
            current["started_at"] = min(current["started_at"], ts)
            current["last_seen_at"] = max(current["last_seen_at"], ts)
            visitor_of[current["session_id"]] = {
                "visitor_id": visitor,
                "anonymous_id": current["anonymous_id"],
            }
            session_of[event["messageId"]] = current["session_id"]
    return session_of, visitor_of


def _count_sessions(
    conn: sa.Connection, site_id: int, stored_rows: list[dict], visitor_of: dict[str, dict]
) -> None:
    """Add the event rows this transaction stored to their sessions, as increments.

    Increments (count + n, earliest start, latest activity) rather than totals read earlier, so
    two workers adding to one session at once both count.
    """
    changed: dict[str, dict] = {}
    for row in stored_rows:
        session_id = row["session_id"]
        if session_id is None:  # alias: belongs to no session
            continue
        ts = row["timestamp"]
        session = changed.get(session_id)
        if session is None:
            session = changed[session_id] = {
                "session_id": session_id,
                "site_id": site_id,
                **visitor_of[session_id],
                "user_id": None,
                "started_at": ts,
                "last_seen_at": ts,
                "event_count": 0,
            }
        session["started_at"] = min(session["started_at"], ts)
        session["last_seen_at"] = max(session["last_seen_at"], ts)
        session["event_count"] += 1
        session["user_id"] = row["user_id"] or session["user_id"]
    if changed:
        # In key order: two transactions updating the same sessions lock them in one order.
        conn.execute(_session_upsert(conn), [changed[key] for key in sorted(changed)])


def _session_upsert(conn: sa.Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        earliest, latest = sa.func.least, sa.func.greatest
    else:
        from sqlalchemy.dialects.sqlite import insert

        earliest, latest = sa.func.min, sa.func.max  # SQLite's two-argument scalar forms
    stmt = insert(sessions)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["session_id"],
        set_={
            "user_id": sa.func.coalesce(new.user_id, sessions.c.user_id),
            "started_at": earliest(sessions.c.started_at, new.started_at),
            "last_seen_at": latest(sessions.c.last_seen_at, new.last_seen_at),
            "event_count": sessions.c.event_count + new.event_count,
        },
    )


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time in the store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _write_identities(conn: sa.Connection, site_id: int, new_events: list[dict]) -> None:
    # Only verified user ids reach here: identity.distrust took the others' away, so a browser
    # cannot link its anonymous id (or an alias) to a customer it merely names.
    rows = {}
    for event in new_events:
        if event["type"] == "alias":
            if event.get("userId") and event.get("previousId"):
                key = (event["previousId"], event["userId"])
                rows.setdefault(key, ("alias", event["_ts"]))
        elif event.get("anonymousId") and event.get("userId"):
            key = (event["anonymousId"], event["userId"])
            source = "identify" if event["type"] == "identify" else "event"
            rows.setdefault(key, (source, event["_ts"]))
    if rows:
        conn.execute(
            insert_ignore(conn.engine, identities),
            [
                {
                    "site_id": site_id,
                    "anonymous_id": anonymous_id,
                    "user_id": user_id,
                    "source": source,
                    "first_seen_at": ts,
                }
                for (anonymous_id, user_id), (source, ts) in rows.items()
            ],
        )


def _event_traits(event: dict) -> dict | None:
    traits = event.get("traits") if event["type"] == "identify" else None
    traits = traits or (event.get("context") or {}).get("traits")
    return traits if isinstance(traits, dict) else None


def _write_customers(conn: sa.Connection, site_id: int, new_events: list[dict]) -> None:
    """Upsert customers: verified traits from verified user ids, the rest as unverified traits.

    An unverified claim (identity.CLAIMED) never touches ``traits`` nor the seen times of a
    customer who exists; it only adds to ``unverified_traits`` (creating the row if needed).
    """
    seen: dict[str, dict] = {}
    for event in new_events:
        user_id = event.get("userId")
        claimed = event.get(identity.CLAIMED) if user_id is None else None
        if not user_id and not claimed:
            continue
        ts = event["_ts"]
        customer = seen.setdefault(
            user_id or claimed,
            {
                "traits": {},
                "unverified_traits": {},
                "first_seen_at": ts,
                "last_seen_at": ts,
                "verified": False,
            },
        )
        traits = _event_traits(event)
        if user_id:
            if not customer["verified"]:  # times so far came from claims: the truth starts here
                customer.update(verified=True, first_seen_at=ts, last_seen_at=ts)
            customer["first_seen_at"] = min(customer["first_seen_at"], ts)
            customer["last_seen_at"] = max(customer["last_seen_at"], ts)
            if traits:
                customer["traits"].update(traits)
        elif traits:
            customer["unverified_traits"].update(traits)
    if not seen:
        return
    for chunk in _chunks(list(seen)):
        for row in conn.execute(
            sa.select(customers).where(
                customers.c.site_id == site_id, customers.c.user_id.in_(chunk)
            )
        ).mappings():
            customer = seen[row["user_id"]]
            customer["traits"] = {**(row["traits"] or {}), **customer["traits"]}
            customer["unverified_traits"] = {
                **(row["unverified_traits"] or {}),
                **customer["unverified_traits"],
            }
            first, last = _aware(row["first_seen_at"]), _aware(row["last_seen_at"])
            if customer["verified"]:
                customer["first_seen_at"] = min(customer["first_seen_at"], first)
                customer["last_seen_at"] = max(customer["last_seen_at"], last)
            else:
                customer["first_seen_at"], customer["last_seen_at"] = first, last
    conn.execute(
        upsert(
            conn.engine,
            customers,
            ["site_id", "user_id"],
            ["traits", "unverified_traits", "first_seen_at", "last_seen_at"],
        ),
        [
            {
                "site_id": site_id,
                "user_id": user_id,
                "traits": c["traits"],
                "unverified_traits": c["unverified_traits"] or None,
                "first_seen_at": c["first_seen_at"],
                "last_seen_at": c["last_seen_at"],
            }
            for user_id, c in seen.items()
        ],
    )


def _write_orders(
    conn: sa.Connection, site_id: int, new_events: list[dict], holdout_share: float
) -> tuple[set[str], list[tuple]]:
    """Insert the orders and lines of new Order Completed events.

    Returns their order ids, and the interaction log's rows for the lines of the orders this
    transaction stored (an order id already in the store keeps its first lines).
    """
    order_rows, line_rows = [], []
    for event in new_events:
        if event["type"] != "track" or event.get("event") != "Order Completed":
            continue
        properties = event.get("properties") or {}
        order_id = str(properties["order_id"])[:255]
        order_rows.append(
            {
                "site_id": site_id,
                "order_id": order_id,
                "user_id": event.get("userId"),
                "anonymous_id": event.get("anonymousId"),
                "message_id": event["messageId"],
                "total": _money(properties.get("total", properties.get("revenue"))),
                "revenue": _money(properties.get("revenue", properties.get("total"))),
                "currency": (str(properties.get("currency") or "")[:3] or None),
                "ordered_at": event["_ts"],
                "holdout": _holdout(site_id, event, holdout_share),
            }
        )
        for position, product in enumerate(properties.get("products") or []):
            item_id = product.get("product_id", product.get("sku"))
            line_rows.append(
                {
                    "site_id": site_id,
                    "order_id": order_id,
                    "position": position,
                    "item_id": str(item_id)[:255] if item_id is not None else None,
                    "sku": str(product["sku"])[:255] if product.get("sku") is not None else None,
                    "name": str(product["name"])[:500] if product.get("name") else None,
                    "category": str(product["category"])[:500] if product.get("category") else None,
                    "price": _money(product.get("price")),
                    "quantity": int(product.get("quantity", 1)),
                }
            )
    stored = _insert_new(conn, orders, order_rows, "order_id") if order_rows else set()
    if line_rows:
        conn.execute(insert_ignore(conn.engine, order_lines), line_rows)
    # As the inserts resolved repeats: the first row of an order id, the first line per position.
    by_order: dict[str, dict] = {}
    for row in order_rows:
        if row["order_id"] in stored:
            by_order.setdefault(row["order_id"], row)
    interactions, lines_seen = [], set()
    for line in line_rows:
        order = by_order.get(line["order_id"])
        key = (line["order_id"], line["position"])
        if order is None or key in lines_seen:
            continue
        lines_seen.add(key)
        if line["item_id"] is not None:
            interactions.append(
                (
                    order["user_id"],
                    order["anonymous_id"],
                    line["item_id"],
                    interaction_log.ORDER_EVENT,
                    interaction_log.epoch(order["ordered_at"]),
                )
            )
    return {row["order_id"] for row in order_rows}, interactions


def customer_history(conn: sa.Connection, site_id: int, user_id: str) -> list[sa.Row]:
    """A customer's events, including anonymous browsing stitched to them, oldest first."""
    anonymous_ids = sa.select(identities.c.anonymous_id).where(
        identities.c.site_id == site_id, identities.c.user_id == user_id
    )
    return conn.execute(
        sa.select(events)
        .where(
            events.c.site_id == site_id,
            sa.or_(events.c.user_id == user_id, events.c.anonymous_id.in_(anonymous_ids)),
        )
        .order_by(events.c.timestamp, events.c.id)
    ).all()
