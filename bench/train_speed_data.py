"""Training speed benchmark's data: sizes, generated shops, and their load into SQLite."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import shutil
import time
from collections import Counter
from pathlib import Path

N_ITEMS, N_CLUSTERS, DAYS, SEED = 5000, 12, 28, 42

# Interactions (item events + order lines) per generated customer, measured on the generator
# (13,000 customers -> 535,909); only used to size the shop, the table reports real counts.
INTERACTIONS_PER_CUSTOMER = 41.2
REPLICA_SHIFT_MS = 60_000
INSERT_BATCH = 200_000
PRODUCT_NAMES = ("Product Viewed", "Product Clicked", "Product Added")


def parse_size(text: str) -> int:
    """'100k' -> 100_000, '1M' -> 1_000_000, '2.5M' -> 2_500_000, '20000' -> 20_000."""
    text = text.strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    number = text[:-1] if scale != 1 else text
    value = int(round(float(number) * scale))
    if value < 1_000:
        raise argparse.ArgumentTypeError(f"size {text!r}: at least 1k interactions")
    return value


def size_label(value: int) -> str:
    """100_000 -> '100k', 1_000_000 -> '1M'."""
    if value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    return f"{value / 1_000:g}k"


def plan_shop(target: int, max_base: int) -> tuple[int, int]:
    """(customers per generated shop, copies) giving about ``target`` interactions."""
    needed = max(int(round(target / INTERACTIONS_PER_CUSTOMER)), 10)
    copies = max(1, math.ceil(needed / max_base))
    return int(round(needed / copies)), copies


class BaseShop:
    """A generated shop boiled down to what the store rows need (compact, reusable)."""

    def __init__(self, customers: int):
        from demo import ShopSpec, generate_shop
        from tracking.store import PRODUCT_EVENTS

        self.spec = ShopSpec(
            seed=SEED, n_customers=customers, n_items=N_ITEMS, n_clusters=N_CLUSTERS, days=DAYS
        )
        started = time.perf_counter()
        shop = generate_shop(self.spec)
        self.items = shop.items
        self.rows: list[tuple] = []  # type, event, name, anonymous, user, message, item, order
        stamps: list[str] = []
        orders: list[tuple] = []  # (row index, order_id, total, revenue, currency, products)
        kinds: Counter = Counter()
        for index, event in enumerate(shop.events):
            properties = event.get("properties") or {}
            name = event.get("event")
            item = properties.get("product_id") if name in PRODUCT_EVENTS else None
            order_id = properties.get("order_id")
            self.rows.append(
                (
                    event["type"],
                    name,
                    event.get("name"),
                    event.get("anonymousId"),
                    event.get("userId"),
                    event["messageId"],
                    None if item is None else str(item)[:255],
                    None if order_id is None else str(order_id)[:255],
                )
            )
            stamps.append(event["timestamp"])
            kinds[name or event["type"]] += 1
            if event["type"] == "track" and name == "Order Completed":
                orders.append(
                    (
                        index,
                        str(order_id)[:255],
                        properties.get("total", properties.get("revenue")),
                        properties.get("revenue", properties.get("total")),
                        properties.get("currency"),
                        [
                            (
                                p.get("product_id", p.get("sku")),
                                p.get("sku"),
                                p.get("name"),
                                p.get("category"),
                                p.get("price"),
                                int(p.get("quantity", 1)),
                            )
                            for p in properties.get("products") or []
                        ],
                    )
                )
        self.orders = orders
        self.kinds = kinds
        import numpy as np

        # Epoch milliseconds (the generator's stamps are UTC ISO strings ending in Z).
        self.ms = np.array([s.rstrip("Z") for s in stamps], dtype="datetime64[ms]").astype(np.int64)
        self.item_events = sum(kinds[n] for n in PRODUCT_NAMES)
        self.order_lines = sum(len(o[5]) for o in orders)
        del shop, stamps
        gc.collect()
        self.seconds = time.perf_counter() - started


class _SpecOnly:
    """What load_store needs of a shop when copy 0 comes from another store."""

    def __init__(self, customers: int):
        from demo import ShopSpec

        self.spec = ShopSpec(
            seed=SEED, n_customers=customers, n_items=N_ITEMS, n_clusters=N_CLUSTERS, days=DAYS
        )


def _sqlite_stamps(ms):
    """Epoch ms as SQLAlchemy's SQLite DateTime stores them: 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    import numpy as np

    text = np.datetime_as_string(np.asarray(ms, dtype=np.int64).astype("datetime64[ms]"), "us")
    return [s.replace("T", " ", 1) for s in text.tolist()]


def load_store(db_path: Path, base: BaseShop, copies: int, seed: dict | None = None) -> dict:
    """A fresh store holding ``copies`` renamed copies of ``base``; return counts and times.

    Copy 0 is inserted from Python (or, with ``seed``, taken from a one-copy store of the same
    shop by copying its file); copies 1.. are made inside SQLite with INSERT ... SELECT from copy 0.
    """
    import sqlalchemy as sa

    from tracking import interaction_log, migrations
    from tracking.catalogue import upsert_items, validate_item
    from tracking.db import make_engine
    from tracking.schema import events
    from tracking.sites import create_site

    started = time.perf_counter()
    if seed:
        shutil.copyfile(seed["path"], db_path)
        engine = make_engine(f"sqlite:///{db_path}")
        site_id = seed["site_id"]
    else:
        engine = make_engine(f"sqlite:///{db_path}")
        migrations.upgrade(engine)
        site, _ = create_site(engine, "Training speed bench", [])
        site_id = site.site_id
        upsert_items(engine, site_id, [validate_item(item) for item in base.items])
    insert_seconds = replicate_seconds = 0.0
    with engine.begin() as conn:
        # For this load only: 1 GB of page cache, sorts in memory on two threads.
        for pragma in ("cache_size=-1000000", "temp_store=MEMORY", "threads=2"):
            conn.exec_driver_sql(f"PRAGMA {pragma}")
        for index in events.indexes:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
        if not seed:
            t0 = time.perf_counter()
            _insert_copy(conn, site_id, base)
            insert_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        _replicate(conn, copies)
        replicate_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for index in events.indexes:
            index.create(conn)
        index_seconds = time.perf_counter() - t0
        # The ingest worker appends every stored batch to the interaction log; a store loaded
        # behind its back gets the log written from its tables, as migration 3 does.
        t0 = time.perf_counter()
        logged = interaction_log.rebuild(conn, site_id)
        log_seconds = time.perf_counter() - t0
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        count = lambda table, *where: conn.execute(  # noqa: E731
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar()
        from tracking.schema import identities, order_lines, orders

        n_events = count(events)
        item_events = count(
            events, events.c.item_id.is_not(None), events.c.event.in_(PRODUCT_NAMES)
        )
        n_lines = count(order_lines)
        n_orders, n_identities = count(orders), count(identities)
    engine.dispose()
    return {
        "site_id": site_id,
        "customers_per_copy": base.spec.n_customers,
        "copies": copies,
        "events": int(n_events),
        "item_events": int(item_events),
        "order_lines": int(n_lines),
        "interactions": int(item_events) + int(n_lines),
        "identities": int(n_identities),
        "orders": int(n_orders),
        "seeded_from": seed["label"] if seed else None,
        "insert_s": insert_seconds,
        "replicate_s": replicate_seconds,
        "index_s": index_seconds,
        "log_s": log_seconds,
        "logged": int(logged),
        "load_s": time.perf_counter() - started,
        "db_bytes": db_path.stat().st_size,
    }


def _insert_copy(conn, site_id: int, base: BaseShop) -> None:
    """Copy 0: events by DBAPI executemany, identities and orders by Core executemany."""
    from decimal import Decimal

    import orjson

    from tracking.schema import identities, order_lines, orders

    columns = (
        "site_id, message_id, type, event, name, anonymous_id, user_id, session_id, item_id, "
        "order_id, timestamp, sent_at, received_at, payload"
    )
    insert_sql = f"INSERT INTO events ({columns}) VALUES ({', '.join('?' * 14)})"
    stamps = _sqlite_stamps(base.ms)
    rows, links = [], {}
    for row, stamp in zip(base.rows, stamps, strict=True):
        kind, name, page, anonymous, user, message, item, order_id = row
        payload = {"type": kind, "messageId": message}
        if name:
            payload["event"] = name
        if page:
            payload["name"] = page
        if item is not None:
            payload["properties"] = {"product_id": item}
        rows.append(
            (site_id, message, kind, name, page, anonymous, user, None, item, order_id, stamp,
             None, stamp, orjson.dumps(payload).decode())
        )  # fmt: skip
        if anonymous and user:
            # tracking/store.py: the first event pairing the two names the link's source.
            links.setdefault(
                (anonymous, user), ("identify" if kind == "identify" else "event", stamp)
            )
        if len(rows) >= INSERT_BATCH:
            conn.exec_driver_sql(insert_sql, rows)
            rows = []
    if rows:
        conn.exec_driver_sql(insert_sql, rows)
    conn.execute(
        identities.insert(),
        [
            {
                "site_id": site_id,
                "anonymous_id": anonymous,
                "user_id": user,
                "source": source,
                "first_seen_at": _as_datetime(stamp),
            }
            for (anonymous, user), (source, stamp) in links.items()
        ],
    )
    money = Decimal("0.01")

    def cents(value):
        return None if value is None else Decimal(str(value)).quantize(money)

    order_rows, line_rows = [], []
    for index, order_id, total, revenue, currency, products in base.orders:
        _, _, _, anonymous, user, message, _, _ = base.rows[index]
        order_rows.append(
            {
                "site_id": site_id,
                "order_id": order_id,
                "user_id": user,
                "anonymous_id": anonymous,
                "message_id": message,
                "total": cents(total),
                "revenue": cents(revenue),
                "currency": (str(currency or "")[:3] or None),
                "ordered_at": _as_datetime(stamps[index]),
            }
        )
        for position, (item, sku, title, category, price, quantity) in enumerate(products):
            line_rows.append(
                {
                    "site_id": site_id,
                    "order_id": order_id,
                    "position": position,
                    "item_id": None if item is None else str(item)[:255],
                    "sku": None if sku is None else str(sku)[:255],
                    "name": str(title)[:500] if title else None,
                    "category": str(category)[:500] if category else None,
                    "price": cents(price),
                    "quantity": quantity,
                }
            )
    if order_rows:
        conn.execute(orders.insert(), order_rows)
    if line_rows:
        conn.execute(order_lines.insert(), line_rows)


def _replicate(conn, copies: int) -> None:
    """Copies 1.. of copy 0 inside SQLite: names suffixed '-<copy>', times <copy> minutes later."""
    import sqlalchemy as sa

    from tracking.schema import events, identities, order_lines, orders

    if copies <= 1:
        return
    rowid = sa.literal_column("rowid")
    last = {
        table.name: conn.execute(sa.select(sa.func.max(rowid)).select_from(table)).scalar() or 0
        for table in (events, identities, orders, order_lines)
    }

    def later(column, minutes):
        # SQLAlchemy's SQLite DateTime text, 'YYYY-MM-DD HH:MM:SS.ffffff' (copy 0 has ms).
        shifted = sa.func.strftime(
            "%Y-%m-%d %H:%M:%f", column, f"+{minutes} minutes", type_=sa.String
        )
        return shifted + "000"

    for copy in range(1, copies):
        tail = f"-{copy}"
        minutes = copy * REPLICA_SHIFT_MS // 60_000
        e = events.c
        conn.execute(
            sa.insert(events).from_select(
                # Named, not "every column but id": columns added later keep their defaults.
                ["site_id", "message_id", "type", "event", "name", "anonymous_id", "user_id",
                 "session_id", "item_id", "order_id", "timestamp", "sent_at", "received_at",
                 "payload"],
                sa.select(
                    e.site_id, e.message_id + tail, e.type, e.event, e.name,
                    e.anonymous_id + tail, e.user_id + tail, e.session_id, e.item_id,
                    e.order_id + tail, later(e.timestamp, minutes), e.sent_at,
                    later(e.received_at, minutes),
                    sa.func.json_set(e.payload, "$.messageId", e.message_id + tail),
                ).where(rowid <= last["events"]).order_by(e.id),
            )
        )  # fmt: skip
        i = identities.c
        conn.execute(
            sa.insert(identities).from_select(
                ["site_id", "anonymous_id", "user_id", "source", "first_seen_at"],
                sa.select(
                    i.site_id, i.anonymous_id + tail, i.user_id + tail, i.source,
                    later(i.first_seen_at, minutes),
                ).where(rowid <= last["identities"]),
            )
        )  # fmt: skip
        o = orders.c
        conn.execute(
            sa.insert(orders).from_select(
                ["site_id", "order_id", "user_id", "anonymous_id", "message_id", "total",
                 "revenue", "currency", "ordered_at"],
                sa.select(
                    o.site_id, o.order_id + tail, o.user_id + tail, o.anonymous_id + tail,
                    o.message_id + tail, o.total, o.revenue, o.currency,
                    later(o.ordered_at, minutes),
                ).where(rowid <= last["orders"]).order_by(o.id),
            )
        )  # fmt: skip
        line = order_lines.c
        conn.execute(
            sa.insert(order_lines).from_select(
                ["site_id", "order_id", "position", "item_id", "sku", "name", "category", "price",
                 "quantity"],
                sa.select(
                    line.site_id, line.order_id + tail, line.position, line.item_id, line.sku,
                    line.name, line.category, line.price, line.quantity,
                ).where(rowid <= last["order_lines"]),
            )
        )  # fmt: skip


def _as_datetime(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC)
