"""A customer's orders as the portal lists them: newest first, paged, each with its lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tracking.db import aware
from tracking.schema import order_lines, orders

PAGE_SIZE = 10


@dataclass(frozen=True)
class OrderPage:
    """One page of a customer's orders and whether more follow."""

    orders: list[dict[str, Any]]
    page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def order_page(conn: sa.Connection, site_id: int, user_id: str, page: int = 1) -> OrderPage:
    """Page ``page`` (from 1) of the customer's orders, newest first, with their lines."""
    mine = sa.and_(orders.c.site_id == site_id, orders.c.user_id == user_id)
    total = conn.execute(sa.select(sa.func.count()).where(mine)).scalar() or 0
    page = max(1, page)
    rows = conn.execute(
        sa.select(
            orders.c.order_id,
            orders.c.total,
            orders.c.revenue,
            orders.c.currency,
            orders.c.ordered_at,
        )
        .where(mine)
        .order_by(orders.c.ordered_at.desc(), orders.c.id.desc())
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    found = [
        {
            "order_id": row.order_id,
            "total": row.total if row.total is not None else row.revenue,
            "currency": row.currency or "",
            "ordered_at": aware(row.ordered_at),
            "lines": [],
        }
        for row in rows
    ]
    by_id = {order["order_id"]: order for order in found}
    if by_id:
        for line in conn.execute(
            sa.select(order_lines)
            .where(order_lines.c.site_id == site_id, order_lines.c.order_id.in_(list(by_id)))
            .order_by(order_lines.c.order_id, order_lines.c.position)
        ):
            by_id[line.order_id]["lines"].append(
                {
                    "item_id": line.item_id,
                    "name": line.name or line.item_id or line.sku or "",
                    "price": line.price,
                    "quantity": line.quantity,
                }
            )
    return OrderPage(found, page, total)
