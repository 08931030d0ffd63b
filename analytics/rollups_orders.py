"""Incremental rollups of orders: sales, item sales, buyers, visitors' orders, attributed revenue.

Orders are immutable once stored (an order id keeps its first event), so the orders a batch
stored are added once. Two things can change later and are handled as moves: a buyer's first
order (an earlier order stored late turns a "new" day into a "returning" one), and an
attribution (tracking.attribution credits a line to a later click): the credited revenue is
mirrored per line in ``rollup_attributions`` and moved by difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from analytics.rollups_sql import (
    Deltas,
    Upserts,
    buyer_of,
    day_of,
    money_or_zero,
    read,
    replace_rows,
    text,
    visitor_of,
)
from analytics.schema import (
    rollup_attributions,
    rollup_item_sales,
    rollup_rec_revenue,
    rollup_sales,
    rollup_visitor_revenue,
)
from tracking.db import batches
from tracking.schema import attributions, orders
from tracking.store import StoredBatch

ORDER_COLUMNS = (
    orders.c.order_id,
    orders.c.user_id,
    orders.c.anonymous_id,
    orders.c.revenue,
    orders.c.currency,
    orders.c.ordered_at,
    orders.c.holdout,
)


def order_deltas() -> dict[str, Deltas]:
    """Empty deltas of the tables this module writes."""
    return {
        "visitor_revenue": Deltas(rollup_visitor_revenue, ["revenue"]),
        "sales": Deltas(
            rollup_sales, ["orders", "revenue", "units", "new_buyers", "returning_buyers"]
        ),
        "item_sales": Deltas(
            rollup_item_sales, ["orders", "units", "revenue"], greatest=["category"]
        ),
        "rec_revenue": Deltas(rollup_rec_revenue, ["orders", "revenue"]),
    }


def stored_orders(batch: StoredBatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The orders this batch stored (those whose first event is one of its new events) and
    their lines, as the ingest transaction inserted them: nothing to read back."""
    message_ids = batch.stored_ids()
    found = [o for o in batch.orders if o["message_id"] in message_ids]
    order_ids = {o["order_id"] for o in found}
    return found, [line for line in batch.order_lines if line["order_id"] in order_ids]


def count_orders(
    visitors: Deltas, d: dict[str, Deltas], new_orders: list[dict], lines: list[dict]
) -> None:
    """Orders, revenue, units and item sales of newly stored orders; visitors' orders."""
    by_order = {o["order_id"]: o for o in new_orders}
    for order in new_orders:
        day, currency = day_of(order["ordered_at"]), text(order["currency"], 3)
        revenue = money_or_zero(order["revenue"])
        visitor = visitor_of(order["anonymous_id"], order["user_id"])
        if visitor:
            visitors.add((day, visitor), {"holdout": order["holdout"]}, orders=1)
            d["visitor_revenue"].add((day, visitor, currency), revenue=revenue)
        d["sales"].add((day, currency), orders=1, revenue=revenue)
    items_of: dict[tuple, tuple] = {}
    units_of: dict[tuple, int] = {}  # per (day, currency): one add each, not one per line
    item_sales = d["item_sales"]
    for line in lines:
        order = by_order[line["order_id"]]
        day, currency = day_of(order["ordered_at"]), text(order["currency"], 3)
        quantity = line["quantity"]
        units_of[(day, currency)] = units_of.get((day, currency), 0) + quantity
        key = (day, text(line["item_id"], 255), currency)
        item_sales.add(
            key,
            texts={"category": text(line["category"], 500)},
            units=quantity,
            revenue=money_or_zero(line["price"]) * quantity,
        )
        items_of.setdefault((line["order_id"], key), key)
    for mark, units in units_of.items():
        d["sales"].add(mark, units=units)
    for _, key in items_of:
        item_sales.add(key, orders=1)


def buyer_days(order_list: Iterable[dict]) -> dict[tuple, str]:
    """Each (day, currency) a buyer ordered on: "new" on the day of their first order, else
    "returning"."""
    marks = {(day_of(o["ordered_at"]), text(o["currency"], 3)) for o in order_list}
    if not marks:
        return {}
    first = min(day for day, _ in marks)
    return {mark: "new" if mark[0] == first else "returning" for mark in marks}


def count_buyers(conn: sa.Connection, sales: Deltas, site_id: int, new_orders: list[dict]) -> None:
    """new_buyers / returning_buyers of the buyers of new orders, before and after them."""
    buyers = sorted({buyer_of(o["user_id"], o["anonymous_id"]) for o in new_orders} - {""})
    new_ids = {o["order_id"] for o in new_orders}
    of_buyer: dict[str, list[dict]] = defaultdict(list)

    def query(match):
        # Two SELECTs, not one with "user_id IN ... OR (user_id IS NULL AND anonymous_id IN
        # ...)": PostgreSQL proved each listed id against the OR's other branch while planning,
        # 0.4-2 ms a read of 30-130 buyers at 10M events (the reads of a bench/console.py
        # --ingest drain, replayed under EXPLAIN), against 0.1 ms for the two; they run in the
        # same time and find the same rows (no user id is both null and not).
        site = orders.c.site_id == sa.bindparam("site_id")
        return sa.union_all(
            sa.select(*ORDER_COLUMNS).where(site, match(orders.c.user_id, "buyers")),
            sa.select(*ORDER_COLUMNS).where(
                site, orders.c.user_id.is_(None), match(orders.c.anonymous_id, "buyers")
            ),
        )

    for chunk in batches(conn, buyers):
        wanted = set(chunk)
        for row in read(conn, "buyers", query, {"site_id": site_id, "buyers": chunk}):
            buyer = buyer_of(row["user_id"], row["anonymous_id"])
            if buyer in wanted:
                of_buyer[buyer].append(row)
    for buyer in buyers:
        before = buyer_days(o for o in of_buyer[buyer] if o["order_id"] not in new_ids)
        after = buyer_days(of_buyer[buyer])
        for mark in set(before) | set(after):
            if before.get(mark) == after.get(mark):
                continue
            for kind, sign in ((before.get(mark), -1), (after.get(mark), 1)):
                if kind is not None:
                    sales.add(mark, **{f"{kind}_buyers": sign})


def mirror_row(site_id: int, row: dict[str, Any]) -> dict[str, Any]:
    """What rollup_rec_revenue holds of one attribution row."""
    return {
        "site_id": site_id,
        "order_id": row["order_id"],
        "item_id": row["item_id"],
        "day": day_of(row["ordered_at"]),
        "placement": text(row["placement"], 200),
        "model_version": text(row["model_version"], 200),
        "source": text(row["source"], 64),
        "holdout": bool(row["holdout"]),
        "currency": text(row["currency"], 3),
        "revenue": money_or_zero(row["revenue"]),
    }


def _revenue_keys(lines: Iterable[dict]) -> dict[tuple, Decimal]:
    keys: dict[tuple, Decimal] = defaultdict(Decimal)
    for m in lines:
        key = (m["day"], m["placement"], m["model_version"], m["source"], m["holdout"])
        keys[(*key, m["currency"])] += m["revenue"]
    return keys


def sync_attributions(
    conn: sa.Connection,
    rec_revenue: Deltas,
    site_id: int,
    order_ids: Iterable[str],
    upserts: Upserts | None = None,
) -> None:
    """Move rollup_rec_revenue from what the mirror says of these orders to what
    ``attributions`` says now; an order counts once per key it has lines in. With ``upserts``,
    the mirror's new rows are written with the batch's other upserts (:class:`Upserts`)."""

    def query(table):
        return lambda match: sa.select(table).where(
            table.c.site_id == sa.bindparam("site_id"), match(table.c.order_id, "orders")
        )

    for chunk in batches(conn, order_ids):
        params = {"site_id": site_id, "orders": chunk}
        now: dict[str, dict[str, dict]] = defaultdict(dict)
        for row in read(conn, "attributions", query(attributions), params):
            now[row["order_id"]][row["item_id"]] = mirror_row(site_id, row)
        before: dict[str, dict[str, dict]] = defaultdict(dict)
        for row in read(conn, "mirror", query(rollup_attributions), params):
            row["revenue"] = Decimal(row["revenue"])
            before[row["order_id"]][row["item_id"]] = row
        changed, gone = [], []
        for order_id in set(now) | set(before):
            old, new = before.get(order_id, {}), now.get(order_id, {})
            if old == new:
                continue
            for key, revenue in _revenue_keys(old.values()).items():
                rec_revenue.add(key, orders=-1, revenue=-revenue)
            for key, revenue in _revenue_keys(new.values()).items():
                rec_revenue.add(key, orders=1, revenue=revenue)
            changed += [m for item, m in new.items() if old.get(item) != m]
            gone += [(order_id, item) for item in old if item not in new]
        replace_rows(conn, rollup_attributions, changed, upserts)
        for order_id, item_id in gone:
            conn.execute(
                rollup_attributions.delete().where(
                    rollup_attributions.c.site_id == site_id,
                    rollup_attributions.c.order_id == order_id,
                    rollup_attributions.c.item_id == item_id,
                )
            )
