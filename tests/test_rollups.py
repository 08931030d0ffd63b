"""Rollups: kept incrementally inside the ingest transaction, equal to a rebuild from raw tables.

Events go through the collector's validation and the store's real write path (the ingest worker
calls the same ``write_entries``), in random batches, out of order and with duplicates.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from analytics import rollups
from analytics.schema import (
    funnel_sessions,
    rollup_funnel,
    rollup_item_sales,
    rollup_rec_items,
    rollup_rec_revenue,
    rollup_recs,
    rollup_sales,
    rollup_visitor_revenue,
    rollup_visitors,
)
from tests.conftest import drain, make_event
from tracking import db as tracking_db
from tracking.attribution import attribute_since
from tracking.events import Limits, iso, prepare_events
from tracking.sites import create_site
from tracking.store import write_entries

WINDOW = timedelta(days=7)
START = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)  # sessions cross midnight
CATEGORIES = ["Music/Jazz", "Books/Crime", "Grocery/Coffee", "Home > Kitchen", None]


def store(engine, site_id, raw_events, *, holdout_share=0.3):
    """Validate like the collector, then store in one transaction with the rollups hook."""
    accepted, rejected = prepare_events(
        raw_events,
        path="batch",
        received_at=datetime.now(UTC),
        batch_sent_at=None,
        limits=Limits(),
    )
    assert not rejected, rejected[:3]
    entry = {
        "rid": uuid.uuid4().hex,
        "site_id": site_id,
        "received_at": iso(datetime.now(UTC)),
        "events": accepted,
        "rejected": [],
    }
    with engine.begin() as conn:
        write_entries(
            conn,
            [entry],
            timedelta(minutes=30),
            holdout_share=holdout_share,
            attribution_window=WINDOW,
            on_stored=rollups.on_stored,
        )


def snapshot(engine, site_id):
    """Every rebuilt table's rows of a site, comparable across runs."""
    out = {}
    with engine.connect() as conn:
        for table in rollups.REBUILT_TABLES:
            rows = conn.execute(sa.select(table).where(table.c.site_id == site_id)).mappings()
            out[table.name] = sorted(
                tuple(
                    (k, Decimal(v).quantize(Decimal("0.01")) if isinstance(v, Decimal) else v)
                    for k, v in sorted(r.items())
                )
                for r in rows
            )
    return out


def event(kind, when, visitor, user=None, **properties):
    e = {
        "type": "track",
        "event": kind,
        "messageId": str(uuid.uuid4()),
        "timestamp": iso(when),
        "properties": properties,
    }
    if visitor:
        e["anonymousId"] = visitor
    if user:
        e["userId"] = user
    return e


def random_events(rng: random.Random, n_visitors: int) -> list[dict]:
    """Shopping journeys with recommendation chains, several currencies, users and guests."""
    out = []
    for v in range(n_visitors):
        user = f"user-{v % 7}" if rng.random() < 0.5 else None
        # Some signed-in customers' events come from the shop's server: a user id, no anonymous
        # id (their visitor is the user id, read back by ix_events_user).
        visitor = None if user and rng.random() < 0.3 else f"anon-{v}"
        currency = rng.choice(["EUR", "USD", "GBP"])
        when = START + timedelta(minutes=rng.randint(0, 3 * 24 * 60))
        for _ in range(rng.randint(1, 4)):  # visits
            basket = []
            for _ in range(rng.randint(1, 6)):
                when += timedelta(minutes=rng.randint(1, 20))
                item = f"sku-{rng.randint(0, 12)}"
                category = rng.choice(CATEGORIES)
                rec = {
                    "rec_id": uuid.uuid4().hex,
                    "placement": rng.choice(["home", "product"]),
                    "model_version": rng.choice(["v1", "v2", None]),
                    "source": rng.choice(["personal", "popular"]),
                }
                roll = rng.random()
                if roll < 0.3:
                    out.append(
                        event(
                            "Recommendation Shown",
                            when,
                            visitor,
                            user,
                            product_ids=[item, f"sku-{rng.randint(0, 12)}"],
                            **rec,
                        )
                    )
                    if rng.random() < 0.6:
                        when += timedelta(seconds=rng.randint(1, 60))
                        out.append(
                            event(
                                "Recommendation Clicked",
                                when,
                                visitor,
                                user,
                                product_id=item,
                                **rec,
                            )
                        )
                out.append(
                    event("Product Viewed", when, visitor, user, product_id=item, category=category)
                )
                if rng.random() < 0.6:
                    when += timedelta(minutes=1)
                    out.append(
                        event(
                            "Product Added", when, visitor, user, product_id=item, category=category
                        )
                    )
                    basket.append(
                        {
                            "product_id": item,
                            "category": category,
                            "price": rng.choice([5, 9.99, 20.5]),
                            "quantity": rng.randint(1, 3),
                        }
                    )
            if basket and rng.random() < 0.7:
                when += timedelta(minutes=2)
                out.append(event("Checkout Started", when, visitor, user, products=basket))
                if rng.random() < 0.8:
                    when += timedelta(minutes=3)
                    total = sum(Decimal(str(p["price"])) * p["quantity"] for p in basket)
                    out.append(
                        event(
                            "Order Completed",
                            when,
                            visitor,
                            user,
                            order_id=uuid.uuid4().hex[:12],
                            revenue=float(total),
                            currency=currency,
                            products=basket,
                        )
                    )
            when += timedelta(hours=rng.randint(1, 30))
    return out


@pytest.mark.parametrize("seed, in_chunk", [(1, None), (2, None), (3, 4)])
def test_incremental_rollups_equal_a_rebuild(db, seed, in_chunk, monkeypatch):
    if in_chunk:  # SQLite's look-ups by many ids in several IN lists (PostgreSQL takes one array)
        monkeypatch.setattr(tracking_db, "IN_CHUNK", in_chunk)
    rng = random.Random(seed)
    sites = [create_site(db, f"shop {i}", ["https://shop.example"])[0].site_id for i in range(2)]
    for site_id in sites:
        evts = random_events(rng, 40)
        rng.shuffle(evts)  # late arrivals: clicks after orders, views after adds...
        evts += rng.sample(evts, len(evts) // 10)  # redelivered duplicates
        position = 0
        while position < len(evts):
            size = rng.randint(1, 60)
            store(db, site_id, evts[position : position + size])
            position += size
        with db.begin() as conn:  # the scheduled repair sweep
            attribute_since(conn, site_id, START - timedelta(days=1), WINDOW)
            rollups.sync_attributions_since(conn, site_id, START - timedelta(days=1))
    for site_id in sites:
        incremental = snapshot(db, site_id)
        assert incremental["rollup_recs"] and incremental["rollup_rec_revenue"]
        assert incremental["rollup_funnel"] and incremental["rollup_sales"]
        rollups.rebuild(db, site_id, WINDOW)
        rebuilt = snapshot(db, site_id)
        for name in incremental:
            assert incremental[name] == rebuilt[name], name


def rows(engine, table, *columns):
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(*[table.c[c] for c in columns]).order_by(*[table.c[c] for c in columns])
            )
        ]


def test_hand_checked_shop_day(db):
    site_id = create_site(db, "shop", ["https://shop.example"])[0].site_id
    t = datetime(2026, 11, 20, 23, 50, tzinfo=UTC)
    rec = {"rec_id": "a" * 32, "placement": "home", "model_version": "v1", "source": "personal"}
    order = {
        "order_id": "o-1",
        "revenue": 30,
        "currency": "EUR",
        "products": [{"product_id": "p1", "category": "Music/Jazz", "price": 10, "quantity": 3}],
    }
    late_click = event("Recommendation Clicked", t, "a1", product_id="p1", **rec)
    store(
        db,
        site_id,
        [
            event("Recommendation Shown", t, "a1", product_ids=["p1", "p2"], **rec),
            event(
                "Product Viewed",
                t + timedelta(minutes=1),
                "a1",
                product_id="p1",
                category="Music/Jazz",
            ),
            event(
                "Product Added",
                t + timedelta(minutes=2),
                "a1",
                product_id="p1",
                category="Music/Jazz",
            ),
            event("Order Completed", t + timedelta(minutes=15), "a1", **order),
        ],
        holdout_share=0.0,
    )
    # Before the click arrives: no add after a click, no attributed revenue.
    assert rows(db, rollup_recs, "impressions", "clicks", "adds_after_click") == [(1, 0, 0)]
    assert rows(db, rollup_rec_revenue, "orders") == []
    store(db, site_id, [late_click], holdout_share=0.0)  # a browser queue flushed late
    day1, day2 = date(2026, 11, 20), date(2026, 11, 21)
    assert rows(
        db, rollup_recs, "day", "placement", "impressions", "clicks", "adds_after_click"
    ) == [(day1, "home", 1, 1, 1)]
    assert rows(db, rollup_rec_revenue, "day", "currency", "orders", "revenue") == [
        (day2, "EUR", 1, Decimal("30.00"))
    ]
    assert rows(
        db,
        rollup_sales,
        "day",
        "currency",
        "orders",
        "revenue",
        "units",
        "new_buyers",
        "returning_buyers",
    ) == [(day2, "EUR", 1, Decimal("30.00"), 3, 1, 0)]
    assert rows(db, rollup_item_sales, "item_id", "category", "orders", "units") == [
        ("p1", "Music/Jazz", 1, 3)
    ]
    # The session started on the 20th; it skipped Checkout Started, so it stops at "added".
    assert rows(db, rollup_funnel, "day", "category", "viewed", "added", "checkout", "ordered") == [
        (day1, "", 1, 1, 0, 0),
        (day1, "Music", 1, 1, 0, 0),
    ]
    assert rows(db, rollup_visitors, "day", "visitor_id", "events", "orders") == [
        (day1, "a1", 4, 0),
        (day2, "a1", 1, 1),
    ]
    assert rows(db, rollup_visitor_revenue, "day", "revenue") == [(day2, Decimal("30.00"))]
    # An earlier order stored late makes the buyer returning on the 21st.
    store(
        db,
        site_id,
        [event("Order Completed", t - timedelta(days=2), "a1", **{**order, "order_id": "o-0"})],
        holdout_share=0.0,
    )
    assert rows(db, rollup_sales, "day", "new_buyers", "returning_buyers") == [
        (date(2026, 11, 18), 1, 0),
        (day2, 0, 1),
    ]
    # The checkout arriving late completes the funnel of the session, counted once.
    store(
        db,
        site_id,
        [event("Checkout Started", t + timedelta(minutes=10), "a1", products=order["products"])],
        holdout_share=0.0,
    )
    assert rows(db, rollup_funnel, "category", "viewed", "added", "checkout", "ordered") == [
        ("", 1, 1, 1, 1),
        ("Music", 1, 1, 1, 1),
    ]
    # The session of the late order (two days earlier) has only bought: step 0, counted nowhere.
    # One row per session: every category's steps, then each top-level category's.
    assert rows(db, funnel_sessions, "step", "steps", "categories") == [
        (0, 8, '{"Music":8}'),
        (4, 15, '{"Music":15}'),
    ]
    before = snapshot(db, site_id)
    rollups.rebuild(db, site_id, WINDOW)
    assert snapshot(db, site_id) == before


def test_ingest_worker_keeps_rollups(app, tracker, site, db):
    evts = [make_event(i) for i in range(5)]
    assert tracker.batch(evts).status_code == 200
    drain(app)
    assert sum(r[0] for r in rows(db, rollup_visitors, "events")) == 5
    assert tracker.batch(evts).status_code == 200  # sent again: stored once, counted once
    drain(app)
    assert sum(r[0] for r in rows(db, rollup_visitors, "events")) == 5


@pytest.mark.parametrize("app_config_extra", [{"ROLLUPS": False}])
def test_rollups_switch_off(app_config, app_config_extra):
    from webapp import cli, create_app
    from webapp.cli import ingest_settings

    app = create_app({**app_config, **app_config_extra})
    with app.app_context():
        # Only the tracker's consent records and the visit triggers then, no rollup.
        assert ingest_settings().on_stored is cli._consent_and_triggers


def test_a_later_click_moves_attributed_revenue(db):
    site_id = create_site(db, "shop", ["https://shop.example"])[0].site_id
    t = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

    def rec_click(minutes, placement):
        rec = {"rec_id": uuid.uuid4().hex, "placement": placement, "source": "personal"}
        return event(
            "Recommendation Clicked", t + timedelta(minutes=minutes), "a1", product_id="p1", **rec
        )

    order = event(
        "Order Completed",
        t + timedelta(minutes=30),
        "a1",
        order_id="o-1",
        revenue=20,
        currency="USD",
        products=[{"product_id": "p1", "price": 20, "quantity": 1}],
    )
    store(db, site_id, [rec_click(0, "home"), order], holdout_share=0.0)
    assert rows(db, rollup_rec_revenue, "placement", "orders", "revenue") == [
        ("home", 1, Decimal("20.00"))
    ]
    store(db, site_id, [rec_click(10, "product")], holdout_share=0.0)  # later, stored late
    assert rows(db, rollup_rec_revenue, "placement", "orders", "revenue") == [
        ("product", 1, Decimal("20.00"))
    ]
    assert rows(db, rollup_rec_items, "placement", "item_id", "clicks") == [
        ("home", "p1", 1),
        ("product", "p1", 1),
    ]


def test_an_order_sent_again_keeps_its_first_lines(db):
    """The same order id in a second event (new messageId, more products): only the event
    that stored the order counts, in the lines and in the rollups, in one batch or a later one."""
    from tracking.schema import order_lines

    site_id = create_site(db, "shop", ["https://shop.example"])[0].site_id
    t = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    one = [{"product_id": "p1", "category": "Music/Jazz", "price": 10, "quantity": 1}]
    two = [*one, {"product_id": "p2", "category": "Books/Crime", "price": 7, "quantity": 4}]

    def completed(order_id, minutes, products):
        total = sum(p["price"] * p["quantity"] for p in products)
        return event(
            "Order Completed",
            t + timedelta(minutes=minutes),
            "a1",
            order_id=order_id,
            revenue=total,
            currency="EUR",
            products=products,
        )

    store(db, site_id, [completed("o-1", 0, one)])
    # o-1 again in a later batch; o-2 twice in one batch, its earlier event first to be stored.
    store(db, site_id, [completed("o-1", 5, two)])
    store(db, site_id, [completed("o-2", 30, two), completed("o-2", 10, one)])
    assert rows(db, order_lines, "order_id", "position", "item_id") == [
        ("o-1", 0, "p1"),
        ("o-2", 0, "p1"),
    ]
    assert rows(db, rollup_sales, "orders", "units", "revenue") == [(2, 2, Decimal("20.00"))]
    assert rows(db, rollup_item_sales, "item_id", "orders", "units") == [("p1", 2, 2)]
    incremental = snapshot(db, site_id)
    rollups.rebuild(db, site_id, WINDOW)
    assert snapshot(db, site_id) == incremental


def test_the_repair_sweep_catches_what_no_batch_saw(db):
    """A click stored without the hook (as by a transaction that could not see the order)."""
    site_id = create_site(db, "shop", ["https://shop.example"])[0].site_id
    t = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    order = event(
        "Order Completed",
        t,
        "a1",
        order_id="o-1",
        revenue=5,
        currency="EUR",
        products=[{"product_id": "p1", "price": 5, "quantity": 1}],
    )
    store(db, site_id, [order], holdout_share=0.0)
    with db.begin() as conn:  # the click's transaction credits the order, rollups unaware
        accepted, _ = prepare_events(
            [
                event(
                    "Recommendation Clicked",
                    t - timedelta(minutes=5),
                    "a1",
                    product_id="p1",
                    rec_id="b" * 32,
                    placement="home",
                )
            ],
            path="batch",
            received_at=datetime.now(UTC),
            batch_sent_at=None,
            limits=Limits(),
        )
        entry = {
            "rid": "r",
            "site_id": site_id,
            "received_at": iso(datetime.now(UTC)),
            "events": accepted,
            "rejected": [],
        }
        write_entries(conn, [entry], timedelta(minutes=30), attribution_window=WINDOW)
    assert rows(db, rollup_rec_revenue, "orders") == []
    with db.begin() as conn:
        attribute_since(conn, site_id, t - timedelta(days=1), WINDOW)
        rollups.sync_attributions_since(conn, site_id, t - timedelta(days=1))
    assert rows(db, rollup_rec_revenue, "placement", "currency", "orders", "revenue") == [
        ("home", "EUR", 1, Decimal("5.00"))
    ]


def test_holdout_visitors_and_item_categories(db):
    site_id = create_site(db, "shop", ["https://shop.example"])[0].site_id
    t = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    lines = [
        {"product_id": "p1", "category": "Books/Crime", "price": 4, "quantity": 1},
        {"product_id": "p1", "category": "Books/Thriller", "price": 4, "quantity": 2},
    ]
    store(
        db,
        site_id,
        [
            event("Product Viewed", t, "h1", product_id="p1"),
            event(
                "Order Completed",
                t,
                "h1",
                order_id="o-9",
                revenue=12,
                currency="EUR",
                products=lines,
            ),
        ],
        holdout_share=1.0,
    )
    assert rows(db, rollup_visitors, "visitor_id", "holdout", "events", "orders") == [
        ("h1", True, 2, 1)
    ]
    # One order of the item (two lines), its units and revenue; the greatest category kept.
    assert rows(db, rollup_item_sales, "item_id", "category", "orders", "units", "revenue") == [
        ("p1", "Books/Thriller", 1, 3, Decimal("12.00"))
    ]


HOSTILE = ["a", "", "NULL", 'x"y', "b\\c", "{}", "a,b", " sp ", "한글", '\\"', "e'q"]
HOSTILE += ["t\tn\nl", "'); --"]


def test_upserts_and_lookups_keep_any_text(db):
    """Keys travel to PostgreSQL as array literals: quotes, backslashes, braces and commas
    must come back as they went, and look-ups by them must find exactly them."""
    from analytics.rollups_funnel import categories_of, funnel_row
    from analytics.rollups_sql import Deltas, replace_rows
    from tracking.db import any_of, batches

    site_id = create_site(db, "shop", ["https://shop.example"])[0].site_id
    day = date(2026, 11, 20)
    items = Deltas(rollup_item_sales, ["orders", "units", "revenue"], greatest=["category"])
    for units, item in enumerate(HOSTILE, start=1):
        items.add((day, item, "EUR"), texts={"category": item}, orders=1, units=units)
        items.add((day, item, "EUR"), revenue=Decimal("1.25"))
    # funnel_sessions: hostile session ids (the key) and categories (JSON text, quotes and all).
    state = [funnel_row(site_id, s[:32], day, {"": 1, s: 1, "Music": 3}) for s in HOSTILE if s[:32]]
    with db.begin() as conn:
        items.write(conn, site_id)
        items.add((day, HOSTILE[3], "EUR"), orders=1)  # a second batch adds to the same row
        items.write(conn, site_id)
        replace_rows(conn, funnel_sessions, state)
        found = set()
        for chunk in batches(conn, HOSTILE[3:] + ["absent"]):
            found.update(
                conn.execute(
                    sa.select(funnel_sessions.c.session_id).where(
                        funnel_sessions.c.site_id == site_id,
                        any_of(conn, funnel_sessions.c.session_id, chunk),
                    )
                ).scalars()
            )
    assert found == set(HOSTILE[3:])
    stored = rows(db, rollup_item_sales, "units", "item_id", "category", "orders", "revenue")
    assert [(item, category) for _, item, category, _, _ in stored] == [(s, s) for s in HOSTILE]
    assert [orders for *_, orders, _ in stored] == [1, 1, 1, 2] + [1] * (len(HOSTILE) - 4)
    assert {revenue for *_, revenue in stored} == {Decimal("1.25")}
    stored_state = rows(db, funnel_sessions, "session_id", "steps", "categories")
    assert {s: categories_of(steps, text) for s, steps, text in stored_state} == {
        s: {"": 1, s: 1, "Music": 3} for s in HOSTILE if s
    }


def test_array_literals_come_back_as_sent(db):
    """Text with no quote or backslash takes array_literal's quick path (one join), the rest
    the escaping one: PostgreSQL must read back exactly the values sent, either way."""
    if db.dialect.name != "postgresql":
        pytest.skip("array literals are PostgreSQL's")
    from tracking.db import array_literal

    plain = [s for s in HOSTILE if '"' not in s and "\\" not in s]
    assert "NULL" in plain and "a,b" in plain and "{}" in plain
    cases = [plain, [*plain, 'x"y'], ["b\\c", *plain], [None, *plain], HOSTILE, [], [""]]
    with db.connect() as conn:
        for values in cases:
            literal = array_literal(values, True)
            back = conn.execute(sa.text("SELECT CAST(:a AS text[])"), {"a": literal}).scalar_one()
            assert back == values, literal


def test_a_rebuild_leaves_planner_statistics(db):
    """PostgreSQL plans the reports on the rows a rebuild wrote, not on what it saw before.

    Right after a rebuild without them, the lift report's join of two per-visitor aggregates
    was planned as a nested loop over rollups believed empty (1.4 s instead of 15 ms).
    """
    if db.dialect.name != "postgresql":
        pytest.skip("planner statistics (ANALYZE) are PostgreSQL's")
    site_id = create_site(db, "shop", ["https://shop.example"])[0].site_id
    store(db, site_id, random_events(random.Random(7), 40))
    rollups.rebuild(db, site_id, WINDOW)
    with db.connect() as conn:
        for table in (rollup_visitors, rollup_rec_items, funnel_sessions, rollup_item_sales):
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            estimate = conn.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE relname = :name"),
                {"name": table.name},
            ).scalar_one()
            assert count > 0 and estimate == count, table.name
