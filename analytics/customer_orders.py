"""One customer's orders with their lines, what recommendations earned of them, and were shown.

Read like the rest of the 360 view (:mod:`analytics.customers`): through the customer's indexes
(ix_orders_user / ix_orders_anonymous, ix_events_user / ix_events_anonymous), the order lines'
and attributions' (site, order) keys. Money stays per currency, never summed across currencies.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from analytics.customers import (
    Customer,
    Page,
    cursor_position,
    int_cursor,
    item_titles,
    newest,
    page_of,
)
from tracking.attribution import RECOMMENDATION_CLICKED, RECOMMENDATION_SHOWN
from tracking.db import aware, chunks
from tracking.schema import attributions, events, order_lines, orders

ORDERS_PAGE = 20
RECENT_RECOMMENDATION_EVENTS = 200  # the newest shown/clicked events grouped into answers
ATTRIBUTED_SHOWN = 50


def customer_orders(
    conn: sa.Connection, customer: Customer, before: str | None = None, limit: int = ORDERS_PAGE
) -> Page:
    """The customer's orders newest first, each with its lines (item titles from the catalogue)."""
    position = None
    if before:
        position = cursor_position(
            conn,
            orders,
            orders.c.ordered_at,
            orders.c.id,
            int_cursor(before, "orders_before"),
            lambda row: customer.owns(row["user_id"], row["anonymous_id"]),
            customer.site_id,
            "orders_before",
        )
    rows = newest(
        conn,
        [
            orders.c.id,
            orders.c.order_id,
            orders.c.total,
            orders.c.revenue,
            orders.c.currency,
            orders.c.ordered_at,
            orders.c.holdout,
        ],
        customer.where(orders),
        orders.c.ordered_at,
        orders.c.id,
        position,
        limit,
    )
    page = page_of(rows, "id", limit)
    lines: dict[str, list[dict[str, Any]]] = {row["order_id"]: [] for row in page.rows}
    for chunk in chunks(sorted(lines)):
        for line in conn.execute(
            sa.select(order_lines)
            .where(order_lines.c.site_id == customer.site_id, order_lines.c.order_id.in_(chunk))
            .order_by(order_lines.c.order_id, order_lines.c.position)
        ).mappings():
            lines[line["order_id"]].append(dict(line))
    titles = item_titles(
        conn, customer.site_id, (line["item_id"] for group in lines.values() for line in group)
    )
    for row in page.rows:
        row["lines"] = lines[row["order_id"]]
        for line in row["lines"]:
            line["title"] = titles.get(line["item_id"]) or line["name"]
    return page


def _all_orders(conn: sa.Connection, customer: Customer) -> dict[str, dict[str, Any]]:
    """Every order of the customer by order id: currency, amounts, time."""
    found: dict[str, dict[str, Any]] = {}
    for where in customer.where(orders):
        for row in conn.execute(
            sa.select(
                orders.c.order_id,
                orders.c.currency,
                orders.c.total,
                orders.c.revenue,
                orders.c.ordered_at,
            ).where(where)
        ).mappings():
            found[row["order_id"]] = dict(row)
    return found


def order_totals(conn: sa.Connection, customer: Customer) -> list[dict[str, Any]]:
    """Orders, total and revenue per currency (never summed across currencies)."""
    per: dict[str, dict[str, Any]] = {}
    for order in _all_orders(conn, customer).values():
        currency = order["currency"] or ""
        row = per.setdefault(
            currency, {"currency": currency, "orders": 0, "total": None, "revenue": None}
        )
        row["orders"] += 1
        for name in ("total", "revenue"):
            if order[name] is not None:
                row[name] = (row[name] or Decimal(0)) + order[name]
    return [per[c] for c in sorted(per)]


def attributed_orders(
    conn: sa.Connection, customer: Customer, limit: int = ATTRIBUTED_SHOWN
) -> list[dict[str, Any]]:
    """Order lines of the customer credited to a recommendation click, newest order first."""
    order_ids = sorted(_all_orders(conn, customer))
    rows: list[dict[str, Any]] = []
    for chunk in chunks(order_ids):
        rows += [
            dict(row)
            for row in conn.execute(
                sa.select(attributions).where(
                    attributions.c.site_id == customer.site_id,
                    attributions.c.order_id.in_(chunk),
                )
            ).mappings()
        ]
    for row in rows:
        row["ordered_at"], row["clicked_at"] = aware(row["ordered_at"]), aware(row["clicked_at"])
    rows.sort(key=lambda r: (r["ordered_at"], r["order_id"], r["item_id"]), reverse=True)
    rows = rows[:limit]
    titles = item_titles(conn, customer.site_id, (row["item_id"] for row in rows))
    for row in rows:
        row["title"] = titles.get(row["item_id"])
    return rows


def recommendations(
    conn: sa.Connection, customer: Customer, limit: int = RECENT_RECOMMENDATION_EVENTS
) -> list[dict[str, Any]]:
    """Recommendations shown to the customer and clicked, one row per answer (rec id), newest first.

    Read from their newest ``limit`` Recommendation Shown / Clicked events.
    """
    names = (RECOMMENDATION_SHOWN, RECOMMENDATION_CLICKED)
    rows = newest(
        conn,
        [events.c.id, events.c.event, events.c.timestamp, events.c.payload],
        [sa.and_(where, events.c.event.in_(names)) for where in customer.where(events)],
        events.c.timestamp,
        events.c.id,
        None,
        limit,
    )[:limit]
    answers: dict[str, dict[str, Any]] = {}
    for row in reversed(rows):  # oldest first: an answer's time is when it was first seen
        payload = row["payload"] if isinstance(row["payload"], dict) else {}
        properties = payload.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        rec_id = short(properties.get("rec_id")) or f"event {row['id']}"
        answer = answers.setdefault(
            rec_id,
            {
                "rec_id": rec_id,
                "at": row["timestamp"],
                "placement": short(properties.get("placement")),
                "model_version": short(properties.get("model_version")),
                "source": short(properties.get("source")),
                "shown": [],
                "clicked": [],
            },
        )
        if row["event"] == RECOMMENDATION_SHOWN:
            shown = properties.get("product_ids")
            for item_id in shown if isinstance(shown, list) else []:
                if short(item_id) and short(item_id) not in answer["shown"]:
                    answer["shown"].append(short(item_id))
        elif short(properties.get("product_id")):
            answer["clicked"].append(short(properties.get("product_id")))
    titles = item_titles(
        conn, customer.site_id, (i for a in answers.values() for i in a["shown"] + a["clicked"])
    )
    result = sorted(answers.values(), key=lambda a: a["at"], reverse=True)
    for answer in result:
        for name in ("shown", "clicked"):
            answer[name] = [{"item_id": i, "title": titles.get(i)} for i in answer[name]]
    return result


def short(value: Any, length: int = 255) -> str | None:
    """A property as text for the page (numbers too), or None for nothing or for containers."""
    if value is None or value == "" or isinstance(value, (dict, list, bool)):
        return None
    return str(value)[:length]
