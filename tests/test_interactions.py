"""The interaction matrix and the event frames it is built from, on tiny data worked by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from recommender.event_frames import ANONYMOUS_PREFIX, frame_from_segment, read_events
from recommender.interactions import EventWeights, build_interactions
from recommender.models import PopularityModel
from tracking import interaction_log, migrations, schema
from tracking.db import make_engine

T0 = datetime(2026, 11, 1, tzinfo=UTC)


# The interaction matrix


def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": ["ann", "ann", "ann", "bob", "bob", "bob"],
            "item_id": ["mug", "mug", "mug", "tea", "mug", "tea"],
            "event": [
                "Product Viewed",
                "Product Viewed",
                "Order Completed",
                "Product Added",
                "Recommendation Shown",
                "Product Clicked",
            ],
            "timestamp": [
                T0,
                T0 + timedelta(days=1),
                T0 + timedelta(days=2),
                T0 + timedelta(days=3),
                T0 + timedelta(days=3),
                T0 + timedelta(days=4),
            ],
        }
    )


def test_weights_without_decay_or_saturation_add_up():
    built = build_interactions(tiny_frame(), EventWeights(saturation=False))
    assert list(built.user_ids) == ["ann", "bob"]
    assert list(built.item_ids) == ["mug", "tea"]  # bob's impression of mug carries no weight
    dense = built.user_items.toarray()
    assert dense.dtype == np.float32
    np.testing.assert_allclose(dense, [[1 + 1 + 8, 0], [0, 4 + 2]])
    assert built.now == (T0 + timedelta(days=4)).timestamp()
    assert built.last_seen[0, 0] == (T0 + timedelta(days=2)).timestamp()


def test_saturation_and_decay_match_the_formula():
    weights = EventWeights(half_life_days=2.0, epsilon=2.0)
    now = T0 + timedelta(days=4)
    built = build_interactions(tiny_frame(), weights, now=now)
    # ann: views 4 and 3 days old, order 2 days old; bob: add 1 day old, click today.
    ann = 1 * 2**-2 + 1 * 2**-1.5 + 8 * 2**-1
    bob = 4 * 2**-0.5 + 2 * 1
    np.testing.assert_allclose(
        built.user_items.toarray(),
        [[math.log1p(ann / 2), 0], [0, math.log1p(bob / 2)]],
        rtol=1e-6,
    )


def test_customer_relative_decay_ignores_when_the_customer_was_last_seen():
    weights = EventWeights(half_life_days=1.0, saturation=False, decay_reference="customer")
    built = build_interactions(tiny_frame(), weights, now=T0 + timedelta(days=400))
    # ann's latest event is her order (day 2): the views are 2 and 1 days older.
    np.testing.assert_allclose(
        built.user_items.toarray(), [[0.25 + 0.5 + 8, 0], [0, 4 * 0.5 + 2]], rtol=1e-6
    )


def test_vocabulary_is_fixed_when_given_and_since_keeps_recent_pairs():
    built = build_interactions(
        tiny_frame(),
        EventWeights(saturation=False),
        user_ids=["bob", "cat"],
        item_ids=["tea", "mug", "pen"],
    )
    np.testing.assert_allclose(built.user_items.toarray(), [[6, 0, 0], [0, 0, 0]])
    full = build_interactions(tiny_frame(), EventWeights(saturation=False))
    recent = full.since(T0 + timedelta(days=3))
    np.testing.assert_allclose(recent.user_items.toarray(), [[0, 0], [0, 6]])
    assert list(full.user_positions(["bob", "nobody"])) == [1, -1]
    assert list(full.items([1, -1])) == ["tea", None]
    trending = PopularityModel.trending(full, window_days=1.5)
    assert trending.popularity[1] == 1.0 and trending.popularity[0] == 0.0


def test_frame_from_segment_stitches_and_expands_orders():
    events = [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "a1",
            "timestamp": "2026-11-01T10:00:00Z",
            "properties": {"product_id": "p1"},
        },
        {
            "type": "identify",
            "anonymousId": "a1",
            "userId": "cust-1",
            "timestamp": "2026-11-01T10:05:00Z",
        },
        {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": "a1",
            "userId": "cust-1",
            "timestamp": "2026-11-01T10:09:00Z",
            "properties": {"products": [{"product_id": "p1"}, {"product_id": "p2"}]},
        },
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "a2",
            "timestamp": "2026-11-01T11:00:00Z",
            "properties": {"product_id": "p3"},
        },
    ]
    frame = frame_from_segment(events)
    assert list(frame["user_id"]) == ["cust-1", "cust-1", "cust-1", ANONYMOUS_PREFIX + "a2"]
    assert list(frame["item_id"]) == ["p1", "p1", "p2", "p3"]
    assert list(frame["event"]) == ["Product Viewed"] + ["Order Completed"] * 2 + ["Product Viewed"]


# Reading the SQL store


def test_read_events_stitches_anonymous_ids_and_drops_hidden_items(tmp_path):
    engine = make_engine("sqlite:///" + str(tmp_path / "store.db"))
    migrations.upgrade(engine)
    now = datetime(2026, 11, 20, tzinfo=UTC)

    def event(n, name, item, user=None, anonymous=None, kind="track", site=1):
        return {
            "site_id": site,
            "message_id": f"m{n}",
            "type": kind,
            "event": name,
            "anonymous_id": anonymous,
            "user_id": user,
            "item_id": item,
            "timestamp": now + timedelta(minutes=n),
            "received_at": now,
            "payload": {},
        }

    def item(item_id, hidden=False):
        return {
            "site_id": 1,
            "item_id": item_id,
            "title": item_id,
            "hidden": hidden,
            "attributes": {},
            "updated_at": now,
        }

    def link(anonymous, user, minutes):
        return {
            "site_id": 1,
            "anonymous_id": anonymous,
            "user_id": user,
            "source": "identify",
            "first_seen_at": now + timedelta(minutes=minutes),
        }

    with engine.begin() as conn:
        conn.execute(schema.items.insert(), [item("mug"), item("tea"), item("gone", hidden=True)])
        conn.execute(
            schema.identities.insert(),
            [link("a-1", "cust-1", 0), link("a-2", "cust-3", 5), link("a-2", "cust-2", 1)],
        )
        conn.execute(
            schema.events.insert(),
            [
                event(1, "Product Viewed", "mug", user="cust-1", anonymous="a-1"),
                event(2, "Product Viewed", "tea", anonymous="a-1"),  # before sign-in: cust-1
                event(3, "Product Added", "tea", anonymous="a-2"),  # earliest link: cust-2
                event(4, "Product Viewed", "mug", anonymous="a-9"),  # never linked
                event(5, "Product Viewed", "gone", user="cust-1"),  # hidden item
                event(6, "Recommendation Shown", "tea", user="cust-1"),  # an impression
                event(7, "Order Completed", None, user="cust-2"),  # lines come from orders
                event(8, "Product Viewed", "mug", user="cust-7", site=2),  # another site
            ],
        )
        conn.execute(
            schema.orders.insert(),
            [
                {
                    "site_id": 1,
                    "order_id": "o-1",
                    "user_id": "cust-2",
                    "anonymous_id": "a-2",
                    "message_id": "m7",
                    "ordered_at": now + timedelta(minutes=7),
                }
            ],
        )
        conn.execute(
            schema.order_lines.insert(),
            [
                {"site_id": 1, "order_id": "o-1", "position": 1, "item_id": "mug", "quantity": 1},
                {"site_id": 1, "order_id": "o-1", "position": 2, "item_id": "gone", "quantity": 2},
            ],
        )

    # Tables written directly, as a bulk load would: the log is rebuilt from them.
    with engine.begin() as conn:
        assert interaction_log.rebuild(conn, 1, rows_per_chunk=2) == 8  # 6 events, 2 lines
    frame = read_events(engine, site_id=1)
    scanned = read_events(engine, site_id=1, chunksize=2, source="store")
    for column in ("user_id", "item_id", "event"):
        assert list(scanned[column].astype(str)) == list(frame[column].astype(str))
    assert list(scanned["timestamp"]) == list(frame["timestamp"])
    got = sorted(zip(frame["user_id"], frame["item_id"], frame["event"].astype(str), strict=True))
    assert got == [
        ("anon:a-9", "mug", "Product Viewed"),
        ("cust-1", "mug", "Product Viewed"),
        ("cust-1", "tea", "Product Viewed"),
        ("cust-2", "mug", "Order Completed"),
        ("cust-2", "tea", "Product Added"),
    ]
    pairs = zip(frame["user_id"], frame["item_id"], strict=True)
    stamps = dict(zip(pairs, frame["timestamp"], strict=True))
    assert stamps[("cust-1", "tea")] == pd.Timestamp(now + timedelta(minutes=2))
    assert stamps[("cust-2", "mug")] == pd.Timestamp(now + timedelta(minutes=7))
    built = build_interactions(frame, EventWeights(saturation=False))
    assert built.user_items[built.user_index["cust-2"], built.item_index["mug"]] == 8.0
    engine.dispose()
