"""Attribution: which order lines a recommendation click earned, recomputed from the store.

An order line is credited to a recommendation when the same customer clicked that item in a
``Recommendation Clicked`` event no longer than the attribution window before the order (and not
after it). The last such click wins. "The same customer" is the order's user id or anonymous id,
or any id stitched to them in ``identities``. Attributions are recomputed from what is stored, so
the order of arrival does not matter: a click stored in an earlier batch, in the same batch as the
order, or after it (a browser queue flushed late) all end in the same row. What marketers read
of them is in :mod:`tracking.attribution_reports`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tracking.db import aware, chunks
from tracking.events import CENT
from tracking.schema import attributions, events, identities, order_lines, orders

RECOMMENDATION_SHOWN = "Recommendation Shown"
RECOMMENDATION_CLICKED = "Recommendation Clicked"
REC_ID = re.compile(r"[0-9a-fA-F]{32}")


def _text(value: Any, length: int) -> str | None:
    return None if value is None or value == "" else str(value)[:length]


def valid_click(properties: Any) -> bool:
    """True when a Recommendation Clicked event's properties can be attributed."""
    if not isinstance(properties, dict):
        return False
    rec_id, product_id = properties.get("rec_id"), properties.get("product_id")
    return (
        isinstance(rec_id, str)
        and REC_ID.fullmatch(rec_id) is not None
        and product_id not in (None, "")
        and not isinstance(product_id, bool)
    )


def stitched_ids(
    conn: sa.Connection, site_id: int, user_ids: Iterable[str], anonymous_ids: Iterable[str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(user ids of each anonymous id, anonymous ids of each user id) from ``identities``."""
    users_of: dict[str, set[str]] = defaultdict(set)
    anonymous_of: dict[str, set[str]] = defaultdict(set)
    user_ids = {u for u in user_ids if u}
    for chunk in chunks(sorted({a for a in anonymous_ids if a})):
        for anonymous_id, user_id in conn.execute(
            sa.select(identities.c.anonymous_id, identities.c.user_id).where(
                identities.c.site_id == site_id, identities.c.anonymous_id.in_(chunk)
            )
        ):
            users_of[anonymous_id].add(user_id)
            user_ids.add(user_id)
    for chunk in chunks(sorted(user_ids)):
        for anonymous_id, user_id in conn.execute(
            sa.select(identities.c.anonymous_id, identities.c.user_id).where(
                identities.c.site_id == site_id, identities.c.user_id.in_(chunk)
            )
        ):
            anonymous_of[user_id].add(anonymous_id)
    return users_of, anonymous_of


def _customer(
    user_id: str | None,
    anonymous_id: str | None,
    users_of: dict[str, set[str]],
    anonymous_of: dict[str, set[str]],
) -> tuple[set[str], set[str]]:
    """Every user id and anonymous id of the customer behind one (user id, anonymous id)."""
    users = {user_id} if user_id else set()
    if anonymous_id:
        users |= users_of.get(anonymous_id, set())
    anonymous = {anonymous_id} if anonymous_id else set()
    for user in users:
        anonymous |= anonymous_of.get(user, set())
    return users, anonymous


def _clicks(
    conn: sa.Connection,
    site_id: int,
    item_ids: set[str],
    user_ids: set[str],
    anonymous_ids: set[str],
    start: datetime,
    end: datetime,
) -> dict[str, list[dict[str, Any]]]:
    """Valid recommendation clicks on these items by these ids between two times, by item."""
    found: dict[int, dict[str, Any]] = {}
    # Two queries, so each can use its index (ix_events_user, ix_events_anonymous).
    for column, ids in ((events.c.user_id, user_ids), (events.c.anonymous_id, anonymous_ids)):
        for chunk in chunks(sorted(ids)):
            rows = conn.execute(
                sa.select(
                    events.c.id,
                    events.c.user_id,
                    events.c.anonymous_id,
                    events.c.item_id,
                    events.c.timestamp,
                    events.c.payload,
                ).where(
                    events.c.site_id == site_id,
                    column.in_(chunk),
                    events.c.event == RECOMMENDATION_CLICKED,
                    events.c.item_id.in_(sorted(item_ids)),
                    events.c.timestamp >= start,
                    events.c.timestamp <= end,
                )
            ).mappings()
            for row in rows:
                properties = (row["payload"] or {}).get("properties")
                if row["id"] not in found and valid_click(properties):
                    found[row["id"]] = {**row, "timestamp": aware(row["timestamp"])}
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for click in found.values():
        by_item[click["item_id"]].append(click)
    return by_item


def _line_revenue(lines: list[tuple[Decimal | None, int]]) -> Decimal | None:
    amounts = [price * quantity for price, quantity in lines if price is not None]
    return sum(amounts, Decimal(0)).quantize(CENT) if amounts else None


def attribute_orders(
    conn: sa.Connection,
    site_id: int,
    order_ids: Iterable[str],
    window: timedelta,
    *,
    now: datetime | None = None,
) -> int:
    """(Re)compute the attributions of these stored orders; return how many lines are credited.

    Idempotent: a row is written once per (site, order, item) and replaced only by a later click.
    """
    order_ids = sorted(set(order_ids))
    if not order_ids:
        return 0
    found: dict[str, dict[str, Any]] = {}
    lines: dict[str, dict[str, list[tuple[Decimal | None, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for chunk in chunks(order_ids):
        for row in conn.execute(
            sa.select(
                orders.c.order_id,
                orders.c.user_id,
                orders.c.anonymous_id,
                orders.c.ordered_at,
                orders.c.currency,
                orders.c.holdout,
            ).where(orders.c.site_id == site_id, orders.c.order_id.in_(chunk))
        ).mappings():
            found[row["order_id"]] = {**row, "ordered_at": aware(row["ordered_at"])}
        for order_id, item_id, price, quantity in conn.execute(
            sa.select(
                order_lines.c.order_id,
                order_lines.c.item_id,
                order_lines.c.price,
                order_lines.c.quantity,
            ).where(
                order_lines.c.site_id == site_id,
                order_lines.c.order_id.in_(chunk),
                order_lines.c.item_id.is_not(None),
            )
        ):
            lines[order_id][item_id].append((price, quantity))
    found = {order_id: order for order_id, order in found.items() if lines.get(order_id)}
    if not found:
        return 0

    users_of, anonymous_of = stitched_ids(
        conn,
        site_id,
        [o["user_id"] for o in found.values()],
        [o["anonymous_id"] for o in found.values()],
    )
    all_users: set[str] = set()
    all_anonymous: set[str] = set()
    for order in found.values():
        order["users"], order["anonymous"] = _customer(
            order["user_id"], order["anonymous_id"], users_of, anonymous_of
        )
        all_users |= order["users"]
        all_anonymous |= order["anonymous"]
    clicks = _clicks(
        conn,
        site_id,
        {item_id for order_id in found for item_id in lines[order_id]},
        all_users,
        all_anonymous,
        min(o["ordered_at"] for o in found.values()) - window,
        max(o["ordered_at"] for o in found.values()),
    )

    created_at = now or datetime.now(UTC)
    rows = []
    for order_id, order in found.items():
        ordered_at = order["ordered_at"]
        for item_id, item_lines in lines[order_id].items():
            candidates = [
                c
                for c in clicks.get(item_id, ())
                if ordered_at - window <= c["timestamp"] <= ordered_at
                and (c["user_id"] in order["users"] or c["anonymous_id"] in order["anonymous"])
            ]
            if not candidates:
                continue
            click = max(candidates, key=lambda c: (c["timestamp"], c["id"]))
            properties = click["payload"]["properties"]
            rows.append(
                {
                    "site_id": site_id,
                    "order_id": order_id,
                    "item_id": item_id,
                    "rec_id": properties["rec_id"],
                    "placement": _text(properties.get("placement"), 200),
                    "model_version": _text(properties.get("model_version"), 200),
                    "source": _text(properties.get("source"), 64),
                    "clicked_at": click["timestamp"],
                    "ordered_at": ordered_at,
                    "revenue": _line_revenue(item_lines),
                    "currency": order["currency"],
                    "holdout": bool(order["holdout"]),
                    "created_at": created_at,
                }
            )
    if rows:
        conn.execute(_upsert_later_click(conn.engine), rows)
    return len(rows)


def attribute_since(
    conn: sa.Connection, site_id: int, since: datetime, window: timedelta, *, chunk: int = 1000
) -> int:
    """Recompute the attributions of every order placed since ``since`` (a repair sweep).

    Ingest attributes as it goes; this catches what two workers can miss when a click and its
    order are stored by concurrent transactions that cannot see each other.
    """
    order_ids = list(
        conn.execute(
            sa.select(orders.c.order_id).where(
                orders.c.site_id == site_id, orders.c.ordered_at >= since
            )
        ).scalars()
    )
    return sum(attribute_orders(conn, site_id, part, window) for part in chunks(order_ids, chunk))


def _upsert_later_click(engine: sa.Engine):
    """INSERT ... ON CONFLICT (site, order, item) DO UPDATE, only when the click is later."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(attributions)
    keep = ("id", "site_id", "order_id", "item_id", "created_at")
    return stmt.on_conflict_do_update(
        index_elements=["site_id", "order_id", "item_id"],
        set_={c.name: stmt.excluded[c.name] for c in attributions.columns if c.name not in keep},
        where=attributions.c.clicked_at < stmt.excluded.clicked_at,
    )


def orders_after_clicks(
    conn: sa.Connection, site_id: int, new_events: list[dict[str, Any]], window: timedelta
) -> set[str]:
    """Stored orders that new clicks may credit (a click that arrived after its order)."""
    clicks = []
    for event in new_events:
        properties = event.get("properties")
        if event.get("event") == RECOMMENDATION_CLICKED and valid_click(properties):
            moment = datetime.fromisoformat(event["timestamp"]).astimezone(UTC)
            clicks.append((event.get("userId"), event.get("anonymousId"), moment, properties))
    if not clicks:
        return set()
    users_of, anonymous_of = stitched_ids(
        conn, site_id, [c[0] for c in clicks], [c[1] for c in clicks]
    )
    user_ids: set[str] = set()
    anonymous_ids: set[str] = set()
    for user_id, anonymous_id, _, _ in clicks:
        users, anonymous = _customer(user_id, anonymous_id, users_of, anonymous_of)
        user_ids |= users
        anonymous_ids |= anonymous
    item_ids = sorted({str(c[3]["product_id"])[:255] for c in clicks})
    start = min(c[2] for c in clicks)
    end = max(c[2] for c in clicks) + window
    # Over-selects (any clicked item, any of these customers): attribute_orders decides exactly.
    found: set[str] = set()
    for column, ids in ((orders.c.user_id, user_ids), (orders.c.anonymous_id, anonymous_ids)):
        for chunk in chunks(sorted(ids)):
            found.update(
                conn.execute(
                    sa.select(orders.c.order_id)
                    .join(
                        order_lines,
                        sa.and_(
                            order_lines.c.site_id == orders.c.site_id,
                            order_lines.c.order_id == orders.c.order_id,
                        ),
                    )
                    .where(
                        orders.c.site_id == site_id,
                        column.in_(chunk),
                        order_lines.c.item_id.in_(item_ids),
                        orders.c.ordered_at >= start,
                        orders.c.ordered_at <= end,
                    )
                    .distinct()
                ).scalars()
            )
    return found
