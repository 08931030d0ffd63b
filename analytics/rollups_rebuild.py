"""Every rollup of one site recomputed from the raw tables, streamed (analytics.rollups.rebuild).

Written apart from the incremental code on purpose: one pass in time order over the events, one
over orders, lines and attributions, each rollup computed by its plain definition, so the test
comparing the two checks the incremental bookkeeping rather than itself.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from analytics.rollups_events import PRODUCT_ADDED, rec_dims
from analytics.rollups_funnel import FUNNEL_COUNTERS, funnel_bits, funnel_row, furthest_step
from analytics.rollups_orders import buyer_days, mirror_row
from analytics.rollups_sql import buyer_of, day_of, money_or_zero, text, visitor_of
from analytics.schema import (
    funnel_sessions,
    rollup_attributions,
    rollup_funnel,
    rollup_item_sales,
    rollup_rec_items,
    rollup_rec_revenue,
    rollup_recs,
    rollup_sales,
    rollup_visitor_revenue,
    rollup_visitors,
)
from tracking.attribution import RECOMMENDATION_CLICKED, RECOMMENDATION_SHOWN, valid_click
from tracking.db import aware, chunks
from tracking.schema import attributions, events, order_lines, orders, sessions

STREAM_ROWS = 20000


def _stream(conn: sa.Connection, query) -> Any:
    return conn.execute(query.execution_options(yield_per=STREAM_ROWS)).mappings()


def _counter() -> dict[str, Any]:
    return defaultdict(int)


def _write(conn: sa.Connection, table: sa.Table, site_id: int, rows: dict[tuple, dict]) -> int:
    keys = [c.name for c in table.primary_key.columns if c.name != "site_id"]
    zeros = {c.name: 0 for c in table.columns if not c.primary_key}
    out = [
        {"site_id": site_id, **dict(zip(keys, key, strict=True)), **zeros, **v}
        for key, v in rows.items()
    ]
    _insert(conn, table, out)
    return len(out)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
    """Write complete rows (every column given): COPY on PostgreSQL, executemany elsewhere.

    A rebuild writes a row per visitor-day and per session: at 10M events, millions of rows,
    which PostgreSQL takes in seconds with COPY and in many minutes as single INSERTs.
    """
    if conn.dialect.name != "postgresql":
        for part in chunks(rows, 1000):
            conn.execute(table.insert(), part)
        return
    names = [c.name for c in table.columns]
    raw = conn.connection.dbapi_connection
    command = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(command) as copy:
        for row in rows:
            copy.write_row([row[name] for name in names])


def rebuild_site(conn: sa.Connection, site_id: int, window: timedelta) -> dict[str, int]:
    """Compute and insert every rollup of a site (its old rows already deleted).

    ``window`` is the attribution window, within which an add follows its click.
    """
    visitors: dict[tuple, dict] = defaultdict(lambda: {"events": 0, "orders": 0, "holdout": False})
    recs: dict[tuple, dict] = defaultdict(_counter)
    rec_items: dict[tuple, dict] = defaultdict(_counter)
    last_click: dict[tuple, dict] = {}
    session_bits: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    # Only the columns the rollups read: the payload is needed, but not the ids, names and
    # clocks of delivery that make up much of what PostgreSQL would sort and send.
    needed = "type event timestamp anonymous_id user_id session_id item_id payload holdout"
    query = (
        sa.select(*(events.c[name] for name in needed.split()))
        .where(events.c.site_id == site_id)
        .order_by(
            events.c.timestamp,
            sa.case((events.c.event == RECOMMENDATION_CLICKED, 0), else_=1),
            # Of clicks at the same moment the last credits an add, as in
            # rollups_events.credited_click: the greatest message id.
            events.c.message_id,
        )
    )
    for row in _stream(conn, query):
        day = day_of(row["timestamp"])
        visitor = visitor_of(row["anonymous_id"], row["user_id"])
        if visitor:
            v = visitors[(day, visitor)]
            v["events"] += 1
            v["holdout"] = v["holdout"] or bool(row["holdout"])
        properties = (row["payload"] or {}).get("properties") or {}
        if row["event"] in (RECOMMENDATION_SHOWN, RECOMMENDATION_CLICKED):
            placement, model_version, source = rec_dims(properties)
            key = (day, placement, model_version, source, bool(row["holdout"]))
            if row["event"] == RECOMMENDATION_SHOWN:
                recs[key]["impressions"] += 1
                shown = properties.get("product_ids")
                for item in dict.fromkeys(shown if isinstance(shown, list) else []):
                    if item not in (None, ""):
                        rec_items[(day, placement, text(item, 255))]["impressions"] += 1
            else:
                recs[key]["clicks"] += 1
                if properties.get("product_id") not in (None, ""):
                    rec_items[(day, placement, text(properties["product_id"], 255))]["clicks"] += 1
                if row["item_id"] is not None and valid_click(properties):
                    last_click[(visitor, row["item_id"])] = row
        if row["event"] == PRODUCT_ADDED and row["item_id"] is not None:
            click = last_click.get((visitor, row["item_id"]))
            if click is not None and aware(click["timestamp"]) >= aware(row["timestamp"]) - window:
                dims = rec_dims(click["payload"]["properties"])
                recs[(day, *dims, bool(row["holdout"]))]["adds_after_click"] += 1
        if row["session_id"] is not None:
            for category, bit in funnel_bits(row).items():
                session_bits[row["session_id"]][category] |= bit
    del last_click
    written = {}
    funnel, session_rows = _funnel(conn, site_id, session_bits)
    sales, item_sales, revenue = _orders(conn, site_id, visitors)
    rec_revenue, mirror = _attributions(conn, site_id)
    for table, rows in (
        (rollup_visitors, visitors),
        (rollup_recs, recs),
        (rollup_rec_items, rec_items),
        (rollup_funnel, funnel),
        (rollup_sales, sales),
        (rollup_item_sales, item_sales),
        (rollup_visitor_revenue, revenue),
        (rollup_rec_revenue, rec_revenue),
    ):
        written[table.name] = _write(conn, table, site_id, rows)
    for table, rows in ((funnel_sessions, session_rows), (rollup_attributions, mirror)):
        _insert(conn, table, rows)
        written[table.name] = len(rows)
    _analyze(
        conn,
        [
            rollup_visitors,
            rollup_recs,
            rollup_rec_items,
            rollup_funnel,
            rollup_sales,
            rollup_item_sales,
            rollup_visitor_revenue,
            rollup_rec_revenue,
            funnel_sessions,
            rollup_attributions,
        ],
    )
    return written


def _analyze(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """Fresh planner statistics for the rewritten tables, on PostgreSQL.

    Without them, until autovacuum comes by, PostgreSQL plans the reports on the old row counts:
    after a rebuild into empty rollups it ran the lift report's join of two per-visitor
    aggregates as a nested loop, 1.4 s a call at 100k events instead of 15 ms. Inside the
    rebuild's transaction ANALYZE counts the rows it wrote.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ANALYZE " + ", ".join(table.name for table in tables)))


def _funnel(conn: sa.Connection, site_id: int, session_bits: dict) -> tuple[dict, list]:
    funnel: dict[tuple, dict] = defaultdict(_counter)
    session_rows = []
    ids = sorted(session_bits)
    for chunk in chunks(ids):
        started = dict(
            conn.execute(
                sa.select(sessions.c.session_id, sessions.c.started_at).where(
                    sessions.c.session_id.in_(chunk)
                )
            ).all()
        )
        for session_id in chunk:
            day = day_of(started[session_id])
            bits_of = session_bits[session_id]
            for category, bits in bits_of.items():
                step = furthest_step(bits)
                for name in FUNNEL_COUNTERS[:step]:
                    funnel[(day, category)][name] += 1
            session_rows.append(funnel_row(site_id, session_id, day, bits_of))
    return funnel, session_rows


def _orders(conn: sa.Connection, site_id: int, visitors: dict) -> tuple[dict, dict, dict]:
    sales: dict[tuple, dict] = defaultdict(_counter)
    revenue: dict[tuple, dict] = defaultdict(lambda: {"revenue": Decimal(0)})
    of_buyer: dict[str, list[dict]] = defaultdict(list)
    query = sa.select(orders).where(orders.c.site_id == site_id).order_by(orders.c.id)
    for order in _stream(conn, query):
        day, currency = day_of(order["ordered_at"]), text(order["currency"], 3)
        amount = money_or_zero(order["revenue"])
        s = sales[(day, currency)]
        s["orders"] += 1
        s["revenue"] += amount
        visitor = visitor_of(order["anonymous_id"], order["user_id"])
        if visitor:
            v = visitors[(day, visitor)]
            v["orders"] += 1
            v["holdout"] = v["holdout"] or bool(order["holdout"])
            revenue[(day, visitor, currency)]["revenue"] += amount
        buyer = buyer_of(order["user_id"], order["anonymous_id"])
        if buyer:
            of_buyer[buyer].append(
                {"ordered_at": order["ordered_at"], "currency": order["currency"]}
            )
    for buyer_orders in of_buyer.values():
        for mark, kind in buyer_days(buyer_orders).items():
            sales[mark][f"{kind}_buyers"] += 1
    del of_buyer
    items: dict[tuple, dict] = defaultdict(lambda: {"orders": 0, "units": 0, "revenue": 0})
    categories: dict[tuple, str] = {}
    seen: set[tuple] = set()
    query = (
        sa.select(order_lines, orders.c.ordered_at, orders.c.currency)
        .join(
            orders,
            sa.and_(
                orders.c.site_id == order_lines.c.site_id,
                orders.c.order_id == order_lines.c.order_id,
            ),
        )
        .where(order_lines.c.site_id == site_id)
        .order_by(order_lines.c.order_id, order_lines.c.position)
    )
    for line in _stream(conn, query):
        day, currency = day_of(line["ordered_at"]), text(line["currency"], 3)
        sales[(day, currency)]["units"] += line["quantity"]
        key = (day, text(line["item_id"], 255), currency)
        item = items[key]
        item["units"] += line["quantity"]
        item["revenue"] += money_or_zero(line["price"]) * line["quantity"]
        categories[key] = max(categories.get(key, ""), text(line["category"], 500))
        if (line["order_id"], key) not in seen:
            seen.add((line["order_id"], key))
            item["orders"] += 1
    for key, item in items.items():
        item["category"] = categories[key]
    return sales, items, revenue


def _attributions(conn: sa.Connection, site_id: int) -> tuple[dict, list]:
    rec_revenue: dict[tuple, dict] = defaultdict(lambda: {"orders": 0, "revenue": Decimal(0)})
    mirror = []
    counted: set[tuple] = set()
    query = sa.select(attributions).where(attributions.c.site_id == site_id)
    for row in _stream(conn, query):
        m = mirror_row(site_id, row)
        mirror.append(m)
        key = (m["day"], m["placement"], m["model_version"], m["source"], m["holdout"])
        key = (*key, m["currency"])
        rec_revenue[key]["revenue"] += m["revenue"]
        if (row["order_id"], key) not in counted:
            counted.add((row["order_id"], key))
            rec_revenue[key]["orders"] += 1
    return rec_revenue, mirror


def convert_funnel_sessions(conn: sa.Connection, old_table: str) -> int:
    """Migration 120: write one funnel_sessions row per session from ``old_table``'s rows per
    session and category (the shape of migrations 101-113), streamed. Returns the rows written.

    All of a session's rows share its day (a day that moves, moves every category's row); its
    '' row holds every category's steps.
    """
    c = funnel_sessions.c
    old = sa.table(
        old_table,
        *(sa.column(name, c[name].type) for name in ("site_id", "session_id", "day", "steps")),
        sa.column("category", sa.String(500)),
    )
    query = sa.select(
        old.c.site_id, old.c.session_id, old.c.category, old.c.day, old.c.steps
    ).order_by(old.c.site_id, old.c.session_id)
    written, out = 0, []
    key, day, bits = None, None, {}
    for site_id, session_id, category, row_day, steps in conn.execute(
        query.execution_options(yield_per=STREAM_ROWS)
    ):
        if (site_id, session_id) != key:
            if key is not None:
                out.append(funnel_row(*key, day, bits))
            key, day, bits = (site_id, session_id), row_day, {}
        day = max(day, row_day)
        bits[category] = steps
        if len(out) >= STREAM_ROWS:
            _insert(conn, funnel_sessions, out)
            written, out = written + len(out), []
    if key is not None:
        out.append(funnel_row(*key, day, bits))
    _insert(conn, funnel_sessions, out)
    return written + len(out)
