"""Holdout labels on events, orders and attributions; the migration that added them."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.test_attribution import at, click, identify, order, send
from tracking import migrations, schema
from tracking.attribution_reports import holdout_summary
from tracking.db import make_engine
from tracking.events import Limits, iso, prepare_events
from tracking.holdout import in_holdout
from tracking.schema import attributions, events, orders
from tracking.store import write_entries

SHARE = 0.3


@pytest.fixture
def held_out(app_config):
    app_config["HOLDOUT_SHARE"] = SHARE
    return app_config


def test_labels_are_sticky_per_visitor_and_match_in_holdout(held_out, app, tracker, site, db):
    visitors = [f"visitor-{n}" for n in range(60)]
    # Three visits each, in separate deliveries, so labels cannot come from one batch's state.
    for visit in range(3):
        batch = [
            {
                "type": "track",
                "event": "Product Viewed",
                "messageId": str(uuid.uuid4()),
                "anonymousId": visitor,
                "timestamp": at(days=3 - visit),
                "properties": {"product_id": f"sku-{visit}"},
            }
            for visitor in visitors
        ]
        send(app, tracker, batch)
    # Backend calls without an anonymous id fall back to the user id.
    users = [f"cust-{n}" for n in range(30)]
    send(
        app,
        tracker,
        [
            order(f"o-{user}", [("sku-1", 1.0, 1)], at(days=1), anon=None, user=user)
            for user in users
        ]
        + [
            order(f"o-{v}", [("sku-1", 1.0, 1)], at(days=1), anon=v, user="cust-0")
            for v in visitors
        ],
        server=True,
    )

    with db.connect() as conn:
        labels = defaultdict(set)
        for anonymous_id, user_id, holdout in conn.execute(
            sa.select(events.c.anonymous_id, events.c.user_id, events.c.holdout).where(
                events.c.site_id == site.site_id
            )
        ):
            labels[anonymous_id or user_id].add(holdout)
        order_labels = {
            order_id: (anonymous_id or user_id, holdout)
            for order_id, anonymous_id, user_id, holdout in conn.execute(
                sa.select(
                    orders.c.order_id, orders.c.anonymous_id, orders.c.user_id, orders.c.holdout
                )
            )
        }
    assert set(labels) == set(visitors) | set(users)
    for visitor, seen in labels.items():
        assert seen == {in_holdout(site.site_id, visitor, SHARE)}, visitor
    held = {v for v in visitors if in_holdout(site.site_id, v, SHARE)}
    assert 0 < len(held) < len(visitors)  # both groups exist at this share
    assert len(order_labels) == len(users) + len(visitors)
    for visitor, holdout in order_labels.values():
        assert holdout is in_holdout(site.site_id, visitor, SHARE)


def test_attribution_carries_the_orders_holdout_label(held_out, app, tracker, site, db):
    visitors = [f"visitor-{n}" for n in range(40)]
    held = next(v for v in visitors if in_holdout(site.site_id, v, SHARE))
    treated = next(v for v in visitors if not in_holdout(site.site_id, v, SHARE))
    send(
        app,
        tracker,
        [
            click("sku-1", at(days=2), anon=held),
            click("sku-1", at(days=2), anon=treated),
            order("o-held", [("sku-1", 10.0, 1)], at(days=1), anon=held),
            order("o-treated", [("sku-1", 10.0, 1)], at(days=1), anon=treated),
        ],
    )
    with db.connect() as conn:
        labels = dict(
            conn.execute(sa.select(attributions.c.order_id, attributions.c.holdout)).all()
        )
    assert labels == {"o-held": True, "o-treated": False}


def test_holdout_summary_counts_visitors_orders_and_revenue(held_out, app, tracker, site, db):
    visitors = [f"visitor-{n}" for n in range(20)]
    held = [v for v in visitors if in_holdout(site.site_id, v, SHARE)]
    send(app, tracker, [click("sku-1", at(days=2), anon=v) for v in visitors])
    send(app, tracker, [order(f"o-{v}", [("sku-1", 10.0, 1)], at(days=1), anon=v) for v in held])
    with db.connect() as conn:
        groups = holdout_summary(conn, site.site_id)
    assert groups["holdout"]["visitors"] == len(held)
    assert groups["treatment"]["visitors"] == len(visitors) - len(held)
    assert groups["holdout"]["orders"] == len(held)
    assert groups["holdout"]["revenue_per_visitor"] == 10
    assert groups["treatment"]["orders"] == 0


def test_no_share_means_nobody_is_held_out(app, tracker, site, db):
    send(app, tracker, [click("sku-1", at(days=2), anon=f"visitor-{n}") for n in range(50)])
    with db.connect() as conn:
        assert not conn.execute(sa.select(sa.func.count()).where(events.c.holdout)).scalar()


def test_stitched_identify_keeps_the_anonymous_label(held_out, app, tracker, site, db):
    # identify carries both ids: the label follows the anonymous id, as the web layer's does.
    anonymous_id = next(
        f"visitor-{n}" for n in range(100) if in_holdout(site.site_id, f"visitor-{n}", SHARE)
    )
    send(app, tracker, [identify(anonymous_id, "cust-held", at(days=1))])
    with db.connect() as conn:
        assert conn.execute(sa.select(events.c.holdout)).scalar_one() is True


# -- migrations ---------------------------------------------------------------------------------

V1_SCHEMA = "ecrm_migration_v1"


@pytest.fixture
def empty_database(database_url, tmp_path):
    """An engine on an empty database of the same kind as the suite's (its own, not shared)."""
    if database_url.startswith("sqlite"):
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    # PostgreSQL: a schema of its own, first on the search path.
    admin = make_engine(os.environ["ECRM_TEST_DATABASE_URL"])
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {V1_SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {V1_SCHEMA}"))
    engine = make_engine(
        os.environ["ECRM_TEST_DATABASE_URL"],
        connect_args={
            "options": f"-c plan_cache_mode=force_custom_plan -c search_path={V1_SCHEMA}"
        },
    )
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {V1_SCHEMA} CASCADE"))
    admin.dispose()


def _make_version_1(engine: sa.Engine) -> None:
    """The database as migration 1 left it before the closed loop: no holdout, no attributions."""
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE attributions"))
        conn.execute(sa.text("DROP TABLE interaction_chunks"))  # migration 3's
        conn.execute(sa.text("DROP TABLE customer_lookup"))  # migration 5's
        conn.execute(sa.text("DROP INDEX ix_orders_anonymous"))
        conn.execute(sa.text("ALTER TABLE events DROP COLUMN holdout"))
        conn.execute(sa.text("ALTER TABLE orders DROP COLUMN holdout"))
        conn.execute(
            schema.schema_migrations.delete().where(schema.schema_migrations.c.version > 1)
        )
        when = datetime(2026, 11, 1, tzinfo=UTC)
        conn.execute(
            sa.text(
                "INSERT INTO events (site_id, message_id, type, event, anonymous_id, item_id,"
                " timestamp, received_at, payload) VALUES (1, 'm-old', 'track', 'Product Viewed',"
                " 'anon-old', 'sku-1', :when, :when, '{}')"
            ),
            {"when": when},
        )
        conn.execute(
            sa.text(
                "INSERT INTO orders (site_id, order_id, anonymous_id, message_id, ordered_at)"
                " VALUES (1, 'o-old', 'anon-old', 'm-old-order', :when)"
            ),
            {"when": when},
        )


def _columns(engine: sa.Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def test_upgrade_from_version_1(empty_database):
    engine = empty_database
    _make_version_1(engine)
    assert migrations.current_version(engine) == 1
    assert "holdout" not in _columns(engine, "events")

    assert migrations.upgrade(engine) == [2, 3, 4, 5, 6, 7, 8]
    assert migrations.current_version(engine) == 8
    assert migrations.upgrade(engine) == []  # nothing left to do
    assert {"holdout"} <= _columns(engine, "events") & _columns(engine, "orders")
    assert "revenue" in _columns(engine, "attributions")
    with engine.connect() as conn:
        # Rows from before the holdout existed were not held out.
        assert conn.execute(sa.select(events.c.holdout)).scalar_one() is False
        assert conn.execute(sa.select(orders.c.holdout)).scalar_one() is False
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("orders")}
    assert "ix_orders_anonymous" in indexes

    # The upgraded store takes a click and an order and credits it, with labels.
    received_at = datetime.now(UTC)
    accepted, _ = prepare_events(
        [
            click("sku-1", at(days=2), anon="anon-new"),
            order("o-new", [("sku-1", 10.0, 1)], at(days=1), anon="anon-new"),
        ],
        path="batch",
        received_at=received_at,
        batch_sent_at=None,
        limits=Limits(),
    )
    entry = {
        "rid": uuid.uuid4().hex,
        "site_id": 1,
        "received_at": iso(received_at),
        "events": accepted,
        "rejected": [],
    }
    with engine.begin() as conn:
        stats = write_entries(conn, [entry], timedelta(minutes=30), holdout_share=0.999)
    assert stats.attributed == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(attributions.c.holdout)).scalar_one() is True


def test_a_new_database_gets_every_migration(empty_database):
    assert migrations.upgrade(empty_database) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert "holdout" in _columns(empty_database, "orders")
    assert migrations.upgrade(empty_database) == []
