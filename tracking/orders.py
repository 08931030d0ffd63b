"""Orders: the orders and order lines of new Order Completed events, amounts rounded to cents.

An order id is stored once (its first event wins, with its lines); each order carries its
visitor's holdout label, and its lines enter the interaction log as Order Completed interactions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from tracking import interaction_log
from tracking.db import insert_ignore, insert_new
from tracking.events import CENT
from tracking.holdout import event_in_holdout
from tracking.schema import order_lines, orders


def money(value: Any) -> Decimal | None:
    """An amount as the store keeps it (rounded to cents), or None when there is none."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError):
        return None


@dataclass
class WrittenOrders:
    """What :func:`write_orders` did: the order ids of the events, and what was stored."""

    order_ids: set[str] = field(default_factory=set)  # of every new Order Completed event
    stored: list[dict[str, Any]] = field(default_factory=list)  # the orders rows it inserted
    lines: list[dict[str, Any]] = field(default_factory=list)  # their order_lines rows
    interactions: list[tuple] = field(default_factory=list)  # their lines, for the interaction log


def write_orders(
    conn: sa.Connection, site_id: int, new_events: list[dict], holdout_share: float
) -> WrittenOrders:
    """Insert the orders and lines of new Order Completed events.

    Returns their order ids, the orders this transaction stored with their lines, and those
    lines' interaction log rows. An order id is stored once, with the lines of the event that
    stored it: a later event of the same order id (sent again, with more products or fewer)
    adds nothing, so a daily rollup counted at ingest equals one rebuilt from the lines.
    """
    order_rows: list[dict] = []
    line_rows: list[tuple[str, dict]] = []  # (the message id of the line's event, the line)
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
                "total": money(properties.get("total", properties.get("revenue"))),
                "revenue": money(properties.get("revenue", properties.get("total"))),
                "currency": (str(properties.get("currency") or "")[:3] or None),
                "ordered_at": event["_ts"],
                "holdout": event_in_holdout(site_id, event, holdout_share),
            }
        )
        for position, product in enumerate(properties.get("products") or []):
            item_id = product.get("product_id", product.get("sku"))
            line = {
                "site_id": site_id,
                "order_id": order_id,
                "position": position,
                "item_id": str(item_id)[:255] if item_id is not None else None,
                "sku": str(product["sku"])[:255] if product.get("sku") is not None else None,
                "name": str(product["name"])[:500] if product.get("name") else None,
                "category": str(product["category"])[:500] if product.get("category") else None,
                "price": money(product.get("price")),
                "quantity": int(product.get("quantity", 1)),
            }
            line_rows.append((event["messageId"], line))
    stored = insert_new(conn, orders, order_rows, "order_id") if order_rows else set()
    # As the insert resolved repeats: the first row of an order id, and that event's lines.
    by_order: dict[str, dict] = {}
    for row in order_rows:
        if row["order_id"] in stored:
            by_order.setdefault(row["order_id"], row)
    written = WrittenOrders({row["order_id"] for row in order_rows}, list(by_order.values()))
    written.lines = [
        line
        for message_id, line in line_rows
        if line["order_id"] in by_order and by_order[line["order_id"]]["message_id"] == message_id
    ]
    if written.lines:
        conn.execute(insert_ignore(conn.engine, order_lines), written.lines)
    interactions = written.interactions
    for line in written.lines:
        order = by_order[line["order_id"]]
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
    return written
