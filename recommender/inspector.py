"""What the model inspector shows of one customer: recent events, and what customers bought.

Every query reads one customer's (or a few customers') rows through an index: events by
``(site_id, user_id)`` and by ``(site_id, anonymous_id)`` for the anonymous ids stitched to the
customer, orders by ``(site_id, user_id)``. Nothing here scans a site's events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tracking.attribution import stitched_ids
from tracking.db import aware
from tracking.schema import customers, events, items, order_lines, orders

RECENT_EVENTS = 30
LINES_PER_CUSTOMER = 5


class UnknownCustomer(LookupError):
    """No customer of the site has this id."""


def customer_traits(conn: sa.Connection, site_id: int, user_id: str) -> dict[str, Any]:
    """The customer's verified traits; :class:`UnknownCustomer` if the site has no such customer."""
    row = conn.execute(
        sa.select(customers.c.traits).where(
            customers.c.site_id == site_id, customers.c.user_id == user_id
        )
    ).first()
    if row is None:
        raise UnknownCustomer(user_id)
    return row.traits if isinstance(row.traits, dict) else {}


def anonymous_ids(conn: sa.Connection, site_id: int, user_id: str) -> list[str]:
    """The anonymous ids stitched to the customer, sorted."""
    _, anonymous_of = stitched_ids(conn, site_id, [user_id], [])
    return sorted(anonymous_of.get(user_id, ()))


def _titles(conn: sa.Connection, site_id: int, item_ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({i for i in item_ids if i})
    if not wanted:
        return {}
    return dict(
        conn.execute(
            sa.select(items.c.item_id, items.c.title).where(
                items.c.site_id == site_id, items.c.item_id.in_(wanted)
            )
        ).all()
    )


def recent_events(
    conn: sa.Connection,
    site_id: int,
    user_id: str,
    anonymous: Iterable[str] = (),
    limit: int = RECENT_EVENTS,
) -> list[dict[str, Any]]:
    """The customer's newest events (as themselves or as a stitched anonymous id), newest first."""
    columns = (
        events.c.id,
        events.c.timestamp,
        events.c.type,
        events.c.event,
        events.c.name,
        events.c.item_id,
        events.c.order_id,
        events.c.anonymous_id,
        events.c.user_id,
        events.c.session_id,
    )
    # One query per index (user id, then each anonymous id), merged here: an OR across both
    # columns would let the database fall back to scanning the site's events.
    wheres = [events.c.user_id == user_id]
    wheres += [events.c.anonymous_id == a for a in list(anonymous)[:20]]
    found = {}
    for where in wheres:
        query = (
            sa.select(*columns)
            .where(events.c.site_id == site_id, where)
            .order_by(events.c.timestamp.desc(), events.c.id.desc())
            .limit(limit)
        )
        found.update((row.id, row) for row in conn.execute(query))
    rows = sorted(found.values(), key=lambda r: (aware(r.timestamp), r.id), reverse=True)[:limit]
    titles = _titles(conn, site_id, (r.item_id for r in rows))
    return [
        {
            "at": aware(r.timestamp),
            "event": r.event or r.name or r.type,
            "type": r.type,
            "item_id": r.item_id,
            "title": titles.get(r.item_id) if r.item_id else None,
            "order_id": r.order_id,
            "as": "customer" if r.user_id == user_id else f"anonymous {r.anonymous_id}",
            "session_id": r.session_id,
        }
        for r in rows
    ]


def purchases(
    conn: sa.Connection,
    site_id: int,
    user_ids: Iterable[str],
    per_customer: int = LINES_PER_CUSTOMER,
) -> dict[str, list[dict[str, Any]]]:
    """Each customer's newest order lines (item, title, quantity, ordered at), newest first."""
    wanted = sorted({u for u in user_ids if u})
    if not wanted:
        return {}
    rows = conn.execute(
        sa.select(
            orders.c.user_id,
            orders.c.order_id,
            orders.c.ordered_at,
            order_lines.c.position,
            order_lines.c.item_id,
            order_lines.c.name,
            order_lines.c.quantity,
            order_lines.c.price,
            orders.c.currency,
        )
        .join(
            order_lines,
            sa.and_(
                order_lines.c.site_id == orders.c.site_id,
                order_lines.c.order_id == orders.c.order_id,
            ),
        )
        .where(orders.c.site_id == site_id, orders.c.user_id.in_(wanted))
        .order_by(orders.c.ordered_at.desc(), order_lines.c.position)
    ).all()
    titles = _titles(conn, site_id, (r.item_id for r in rows))
    bought: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        lines = bought[r.user_id]
        if len(lines) >= per_customer:
            continue
        ordered_at: datetime = aware(r.ordered_at)
        lines.append(
            {
                "item_id": r.item_id,
                "title": titles.get(r.item_id) or r.name or r.item_id,
                "quantity": r.quantity,
                "price": r.price,
                "currency": r.currency,
                "order_id": r.order_id,
                "ordered_at": ordered_at,
            }
        )
    return dict(bought)
