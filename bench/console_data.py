"""A generated store for the console benchmark: customers, sessions, events, orders, attributions.

Bulk loaded, never through HTTP: batches of rows built with numpy draws, written with
``executemany`` on SQLite and ``COPY`` (psycopg ``cursor.copy``) on PostgreSQL. Every row is one
the ingest worker could have written (same payload shape, sessions, holdout labels, attributions
of orders to a recommendation click of the same item), so ``analytics.rollups.rebuild`` computes
real rollups from it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import orjson
import sqlalchemy as sa

from bench.harness.machine import log
from tracking.holdout import in_holdout
from tracking.schema import (
    attributions,
    customers,
    events,
    identities,
    items,
    order_lines,
    orders,
    sessions,
)

HOLDOUT_SHARE = 0.1
CATEGORIES = ("Shoes", "Shoes/Running", "Bags", "Coats", "Hats", "Socks", "Home", "Home/Kitchen")
PLACEMENTS = ("home", "product", "cart")
SOURCES = ("personal", "similar", "popular")
MODEL_VERSION = "bench-model-1"
FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivo", "Jun")
LAST_NAMES = ("Okafor", "Silva", "Nguyen", "Müller", "Rossi", "Kowalski", "Smith", "Sato")
# What one event is, drawn independently (then adds and orders follow the item before them).
KINDS = (
    ("page", None, 0.10),
    ("track", "Product Viewed", 0.48),
    ("track", "Recommendation Shown", 0.22),
    ("track", "Recommendation Clicked", 0.06),
    ("track", "Product Added", 0.09),
    ("track", "Checkout Started", 0.03),
    ("track", "Order Completed", 0.02),
)
EVENTS_UNIQUE = "uq_events_site_message"
EVENTS_INDEXES = tuple(sorted(events.indexes, key=lambda index: index.name))
EVENT_COLUMNS = (
    "site_id message_id type event name anonymous_id user_id session_id item_id order_id "
    "timestamp sent_at received_at payload holdout"
).split()


@dataclass(frozen=True)
class Scale:
    """How big a store is."""

    events: int
    customers: int
    items: int
    days: int = 90


SCALES = {
    "100k": Scale(100_000, 10_000, 500),
    "1m": Scale(1_000_000, 100_000, 2_000),
    "10m": Scale(10_000_000, 1_000_000, 5_000),
}


def customer_ids(n: int) -> tuple[list[str], list[str]]:
    """The user ids and anonymous ids of customers 0..n-1."""
    return [f"u{i:07d}" for i in range(n)], [f"a{i:07d}" for i in range(n)]


class Generator:
    """Rows of every table for one site, in batches, from a seeded random generator."""

    def __init__(self, site_id: int, scale: Scale, seed: int = 12, prefix: str = ""):
        self.site_id, self.scale = site_id, scale
        # Starts every message id and order id: two generators' events can share one store.
        self.prefix = prefix
        self.rng = np.random.default_rng(seed)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.users, self.anons = customer_ids(scale.customers)
        self.holdout = np.array(
            [in_holdout(site_id, a, HOLDOUT_SHARE) for a in self.anons], dtype=bool
        )
        n = scale.items
        self.item_ids = [f"sku-{i:05d}" for i in range(n)]
        self.item_category = [CATEGORIES[i % len(CATEGORIES)] for i in range(n)]
        self.item_price = np.round(self.rng.uniform(5, 200, n), 2)
        # Popularity is skewed, as in shops: a few items get most views.
        weights = 1.0 / np.arange(1, n + 1) ** 0.8
        self.item_weights = weights / weights.sum()

    # -- small tables -----------------------------------------------------------------------------

    def item_rows(self) -> list[dict]:
        """The catalogue."""
        return [
            {
                "site_id": self.site_id,
                "item_id": item,
                "title": f"Item {i} <b>bold</b> & co",
                "category": self.item_category[i],
                "price": Decimal(f"{self.item_price[i]:.2f}"),
                "currency": "EUR",
                "url": f"https://shop.example/p/{item}",
                "image_url": None,
                "in_stock": True,
                "active": True,
                "hidden": False,
                "attributes": {"brand": f"Brand {i % 40}"},
                "updated_at": self.now,
            }
            for i, item in enumerate(self.item_ids)
        ]

    def customer_batches(self, size: int = 50_000) -> Iterator[dict[str, list[tuple]]]:
        """customers (traits with email and name) and identities (anonymous id -> user id)."""
        first = self.now - timedelta(days=self.scale.days)
        plans = ("free", "plus", "pro")
        for start in range(0, self.scale.customers, size):
            stop = min(start + size, self.scale.customers)
            cust, ident = [], []
            for i in range(start, stop):
                name = f"{FIRST_NAMES[i % 10]} {LAST_NAMES[(i // 10) % 8]}"
                traits = {"email": f"{self.users[i]}@example.com", "name": name}
                traits["plan"] = plans[i % 3]
                cust.append(
                    (self.site_id, self.users[i], orjson.dumps(traits).decode(), None, first, first)
                )
                ident.append((self.site_id, self.anons[i], self.users[i], "identify", first))
            yield {"customers": cust, "identities": ident}

    # -- events and what follows from them ------------------------------------------------------

    def event_batches(self, size: int = 200_000) -> Iterator[dict[str, list[tuple]]]:
        """events, sessions, orders, order_lines and attributions, about ``size`` events a batch."""
        total, made, serial = self.scale.events, 0, 0
        kinds = [(t, e) for t, e, _ in KINDS]
        probs = np.array([p for *_, p in KINDS])
        while made < total:
            n_sessions = max(1, min(size, total - made) // 10)
            lengths = self.rng.integers(2, 19, n_sessions)  # mean 10 events a session
            n = int(lengths.sum())
            if made + n > total:  # the last batch: cut to the exact total
                keep = np.cumsum(lengths) <= total - made
                lengths = lengths[keep] if keep.any() else np.array([total - made])
                if int(lengths.sum()) < total - made:
                    lengths = np.append(lengths, total - made - int(lengths.sum()))
                n_sessions, n = len(lengths), int(lengths.sum())
            who = self.rng.integers(0, self.scale.customers, n_sessions)
            signed_in = self.rng.random(n_sessions) < 0.7
            starts = self.rng.uniform(0, self.scale.days * 86400 - 3600, n_sessions)
            kind = self.rng.choice(len(kinds), n, p=probs)
            item = self.rng.choice(self.scale.items, n, p=self.item_weights)
            extra = self.rng.random(n)
            yield self._batch(lengths, who, signed_in, starts, kinds, kind, item, extra, serial)
            made += n
            serial += n

    def _batch(self, lengths, who, signed_in, starts, kinds, kind, item, extra, serial):
        site, now, days = self.site_id, self.now, self.scale.days
        out = {name: [] for name in ("events", "sessions", "orders", "order_lines", "attributions")}
        ev, ses, ords, lines, attrs = (out[k] for k in out)
        origin = now - timedelta(days=days)
        pos = 0
        for s, length in enumerate(lengths.tolist()):
            c = int(who[s])
            anon, user = self.anons[c], self.users[c] if signed_in[s] else None
            holdout = bool(self.holdout[c])
            session_id = uuid.UUID(int=(serial + pos) * 7919 + 1).hex
            start = origin + timedelta(seconds=float(starts[s]))
            clicks: dict[str, tuple[str, str, str, datetime]] = {}
            previous = None
            for k in range(length):
                i = pos + k
                ts = start + timedelta(seconds=20 * k)
                etype, name = kinds[kind[i]]
                idx = int(item[i])
                if name in ("Product Added", "Order Completed") and previous is not None:
                    idx = previous  # a shopper adds and buys what they just looked at
                it = self.item_ids[idx]
                message_id = f"{self.prefix}m{serial + i:09d}"
                props: dict = {}
                item_id = order_id = None
                if etype == "page":
                    page = {"path": "/", "url": "https://shop.example/"}
                    payload = {"type": "page", "name": "Home", "properties": page}
                else:
                    payload = {"type": "track", "event": name}
                    category, price = self.item_category[idx], float(self.item_price[idx])
                    if name in ("Product Viewed", "Product Added"):
                        props = {"product_id": it, "category": category, "price": price}
                        item_id = it
                    elif name == "Recommendation Shown":
                        shown = [
                            self.item_ids[(idx + j * 37) % len(self.item_ids)] for j in range(4)
                        ]
                        props = self._rec(i, holdout, extra[i]) | {"product_ids": shown}
                    elif name == "Recommendation Clicked":
                        props = self._rec(i, holdout, extra[i]) | {"product_id": it}
                        item_id = it
                        clicks[it] = (props["rec_id"], props["placement"], props["source"], ts)
                    elif name == "Checkout Started":
                        props = {"products": [{"product_id": it, "category": category}]}
                    else:  # Order Completed: one to three lines, the first what came before
                        order_id = f"{self.prefix}o{serial + i:09d}"
                        currency = "USD" if extra[i] < 0.1 else "EUR"
                        products, revenue = [], 0.0
                        for j in range(1 + int(extra[i] * 30) % 3):
                            jdx = idx if j == 0 else (idx + 101 * j) % len(self.item_ids)
                            q = 1 + (i + j) % 2
                            p = float(self.item_price[jdx])
                            products.append(
                                {
                                    "product_id": self.item_ids[jdx],
                                    "category": self.item_category[jdx],
                                    "price": p,
                                    "quantity": q,
                                }
                            )
                            revenue += p * q
                            lines.append(
                                (
                                    site,
                                    order_id,
                                    j,
                                    self.item_ids[jdx],
                                    None,
                                    f"Item {jdx}",
                                    self.item_category[jdx],
                                    Decimal(f"{p:.2f}"),
                                    q,
                                )
                            )
                        total = Decimal(f"{revenue:.2f}")
                        props = {
                            "order_id": order_id,
                            "total": float(total),
                            "revenue": float(total),
                            "currency": currency,
                            "products": products,
                        }
                        ords.append(
                            (
                                site,
                                order_id,
                                user,
                                anon,
                                message_id,
                                total,
                                total,
                                currency,
                                ts,
                                holdout,
                            )
                        )
                        click = clicks.get(products[0]["product_id"])
                        if click:
                            line_revenue = Decimal(
                                f"{products[0]['price'] * products[0]['quantity']:.2f}"
                            )
                            attrs.append(
                                (
                                    site,
                                    order_id,
                                    products[0]["product_id"],
                                    click[0],
                                    click[1],
                                    MODEL_VERSION,
                                    click[2],
                                    click[3],
                                    ts,
                                    line_revenue,
                                    currency,
                                    holdout,
                                    ts,
                                )
                            )
                    payload["properties"] = props
                previous = idx if etype == "track" else previous
                payload.update(
                    messageId=message_id,
                    anonymousId=anon,
                    userId=user,
                    timestamp=ts,  # orjson writes ISO 8601 itself
                    receivedAt=ts,
                )
                ev.append(
                    (
                        site,
                        message_id,
                        etype,
                        name,
                        payload.get("name"),
                        anon,
                        user,
                        session_id,
                        item_id,
                        order_id,
                        ts,
                        None,
                        ts,
                        orjson.dumps(payload).decode(),
                        holdout,
                    )
                )
            end = start + timedelta(seconds=20 * (length - 1))
            ses.append((session_id, site, anon, anon, user, start, end, length))
            pos += length
        return out

    def _rec(self, i: int, holdout: bool, draw: float) -> dict:
        source = "popular" if holdout else SOURCES[int(draw * 3)]
        return {
            "rec_id": f"{i:032x}",
            "placement": PLACEMENTS[int(draw * 7) % 3],
            "model_version": MODEL_VERSION,
            "source": source,
        }


COLUMNS = {
    "events": EVENT_COLUMNS,
    "sessions": [c.name for c in sessions.columns],
    "orders": [c.name for c in orders.columns if c.name != "id"],
    "order_lines": [c.name for c in order_lines.columns],
    "attributions": [c.name for c in attributions.columns if c.name != "id"],
    "customers": [c.name for c in customers.columns],
    "identities": [c.name for c in identities.columns],
}
TABLES = {
    t.name: t for t in (events, sessions, orders, order_lines, attributions, customers, identities)
}
JSON_COLUMNS = {("events", "payload"), ("customers", "traits"), ("customers", "unverified_traits")}


class Loader:
    """Writes batches: COPY on PostgreSQL, executemany on SQLite. Counts rows per table."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.rows: dict[str, int] = {}

    def write(self, batch: dict[str, list[tuple]]) -> None:
        """One batch of rows per table, in one transaction."""
        with self.engine.begin() as conn:
            for name, rows in batch.items():
                if not rows:
                    continue
                self.rows[name] = self.rows.get(name, 0) + len(rows)
                if self.postgres:
                    self._copy(conn, name, rows)
                else:
                    self._insert(conn, name, rows)

    def _copy(self, conn: sa.Connection, name: str, rows: list[tuple]) -> None:
        cols = COLUMNS[name]
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _insert(self, conn: sa.Connection, name: str, rows: list[tuple]) -> None:
        cols = COLUMNS[name]
        # Raw executemany: JSON columns already hold JSON text, as SQLAlchemy would store it.
        raw = conn.connection.dbapi_connection
        marks = ", ".join("?" for _ in cols)
        cur = raw.cursor()
        cur.executemany(
            f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({marks})",
            [tuple(_sqlite_value(v) for v in row) for row in rows],
        )
        cur.close()


def _sqlite_value(value):
    # SQLAlchemy's SQLite DateTime and Numeric storage: naive ISO text, and floats for Numeric.
    if isinstance(value, datetime):
        return (
            value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
    if isinstance(value, Decimal):
        return float(value)
    return value


def load(engine: sa.Engine, site_id: int, scale: Scale, seed: int = 12, prefix: str = "") -> dict:
    """Generate and load a store; returns rows per table and seconds (generation + load)."""
    t0 = time.monotonic()
    gen = Generator(site_id, scale, seed, prefix)
    with engine.begin() as conn:
        conn.execute(items.insert(), gen.item_rows())
    loader = Loader(engine)
    for batch in gen.customer_batches():
        loader.write(batch)
    if loader.postgres:  # a bulk load: the events' indexes are built once, after it
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE events DROP CONSTRAINT {EVENTS_UNIQUE}"))
            for index in EVENTS_INDEXES:
                index.drop(conn)
    for batch in gen.event_batches():
        loader.write(batch)
        log(f"  loaded {loader.rows.get('events', 0):,} events ({time.monotonic() - t0:.0f} s)")
    if loader.postgres:
        t1 = time.monotonic()
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"ALTER TABLE events ADD CONSTRAINT {EVENTS_UNIQUE} "
                    "UNIQUE (site_id, message_id)"
                )
            )
            for index in EVENTS_INDEXES:
                index.create(conn)
        log(f"  events indexes built in {time.monotonic() - t1:.0f} s")
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    return {"rows": loader.rows, "seconds": time.monotonic() - t0}
