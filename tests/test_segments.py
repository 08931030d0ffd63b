"""Customer segments: definitions checked field by field, members from the newest snapshot and
the SQL tables, saved by name, and exports of the consenting members with a seeded control."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts import preferences, segment_exports, segments
from accounts.schema import audit_log
from accounts.segment_members import count, members
from analytics.value_schema import segment_export_members
from tests.value_helpers import BEFORE, DAY, score, store_snapshot
from tracking.schema import customers, events, items, order_lines, orders, sessions

NOW = datetime(2026, 12, 1, tzinfo=UTC)  # the end of the snapshot's day (DAY)


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days, hours=1)


@pytest.fixture
def shop(db, site):
    """Six EUR customers in the newest snapshot (and an older one that must not count)."""
    sid = site.site_id
    store_snapshot(db, sid, BEFORE, "EUR", [score("old", 5, 5, 10.0)])
    rows = [
        score("a", 5, 5, 500.0, clv=900.0, p_alive=0.95, last_order_at=ago(3)),  # Champions
        score("b", 5, 4, 300.0, clv=400.0, p_alive=0.9, last_order_at=ago(10)),  # Champions
        score("c", 3, 3, 100.0, clv=120.0, p_alive=0.5, last_order_at=ago(60)),  # Need Attention
        score("d", 1, 1, 20.0, clv=5.0, p_alive=0.05, last_order_at=ago(300)),  # Hibernating
        score("e", 2, 5, 800.0, clv=50.0, p_alive=0.2, last_order_at=ago(200)),  # Can't Lose
        score("f", 4, 1, 30.0, clv=60.0, p_alive=0.7, last_order_at=ago(30)),  # Promising
    ]
    store_snapshot(db, sid, DAY, "EUR", rows)
    store_snapshot(db, sid, DAY, "USD", [score("u", 5, 5, 40.0, clv=10.0, p_alive=0.5)])
    return site


def ids(db, site_id, data) -> list[str]:
    definition = segments.parse(data)
    with db.connect() as conn:
        found = [m.user_id for m in members(conn, site_id, definition).members]
        assert count(conn, site_id, definition) == len(found)  # SQL's count agrees
    return found


def test_snapshot_conditions_select_from_the_newest_snapshot_only(db, shop):
    sid = shop.site_id
    assert ids(db, sid, {}) == ["a", "b", "c", "d", "e", "f"]
    assert ids(db, sid, {"segments": ["Champions"]}) == ["a", "b"]
    assert ids(db, sid, {"segments": ["Champions"], "cells": ["1-1"]}) == ["a", "b", "d"]
    assert ids(db, sid, {"cells": "3-3, 4-1"}) == ["c", "f"]
    assert ids(db, sid, {"clv_min": 100, "clv_max": 400}) == ["b", "c"]
    assert ids(db, sid, {"p_alive_max": 0.2}) == ["d", "e"]
    assert ids(db, sid, {"last_order_days_max": 30}) == ["a", "b", "f"]
    assert ids(db, sid, {"last_order_days_min": 30, "last_order_days_max": 30}) == ["f"]
    assert ids(db, sid, {"last_order_days_min": 4, "last_order_days_max": 29}) == ["b"]
    assert ids(db, sid, {"last_order_days_min": 31, "last_order_days_max": 250}) == ["c", "e"]
    assert ids(db, sid, {"currency": "usd"}) == ["u"]


def test_visits_categories_traits_and_consent(db, shop):
    sid = shop.site_id
    with db.begin() as conn:
        conn.execute(
            sa.insert(sessions),
            [
                {
                    "session_id": f"s{u}",
                    "site_id": sid,
                    "visitor_id": u,
                    "user_id": u,
                    "started_at": ago(d),
                    "last_seen_at": ago(d),
                    "event_count": 1,
                }
                for u, d in (("a", 40), ("b", 2), ("c", 5))
            ],
        )
        conn.execute(
            sa.insert(items),
            [
                {
                    "site_id": sid,
                    "item_id": "p1",
                    "title": "Kettle",
                    "category": "Home/Kitchen",
                    "attributes": {},
                    "updated_at": NOW,
                },
                {
                    "site_id": sid,
                    "item_id": "p2",
                    "title": "Lamp",
                    "category": "Homeware",
                    "attributes": {},
                    "updated_at": NOW,
                },
            ],
        )
        conn.execute(
            sa.insert(events),
            [
                {
                    "site_id": sid,
                    "message_id": f"m{u}",
                    "type": "track",
                    "event": "Product Viewed",
                    "user_id": u,
                    "item_id": item,
                    "timestamp": NOW,
                    "received_at": NOW,
                    "payload": {},
                }
                for u, item in (("c", "p1"), ("d", "p2"))
            ],
        )
        conn.execute(
            sa.insert(orders),
            {
                "site_id": sid,
                "order_id": "o1",
                "user_id": "e",
                "message_id": "mo1",
                "total": 10,
                "currency": "EUR",
                "ordered_at": ago(200),
            },
        )
        conn.execute(
            sa.insert(order_lines),
            {"site_id": sid, "order_id": "o1", "position": 0, "category": "Home", "quantity": 1},
        )
        conn.execute(
            sa.insert(customers),
            [
                {
                    "site_id": sid,
                    "user_id": u,
                    "traits": traits,
                    "first_seen_at": NOW,
                    "last_seen_at": NOW,
                }
                for u, traits in (
                    ("a", {"plan": "gold", "age": 40}),
                    ("b", {"plan": "gold", "age": 25}),
                    ("c", {"plan": "free", "age": 33}),
                )
            ],
        )
        preferences.set_preferences(
            conn, sid, "a", {"email:offers": True}, source="api", wording="Offers by email"
        )
        preferences.set_preferences(
            conn, sid, "b", {"email:offers": True}, source="api", wording="Offers by email"
        )
        preferences.set_preferences(
            conn, sid, "b", {"email:offers": False}, source="api", wording="Offers by email"
        )
    assert ids(db, sid, {"last_visit_days_max": 7}) == ["b", "c"]
    assert ids(db, sid, {"last_visit_days_min": 30}) == ["a"]
    assert ids(db, sid, {"category": "Home"}) == ["c", "e"]  # viewed, ordered; not Homeware
    assert ids(db, sid, {"traits": {"plan": "gold"}}) == ["a", "b"]
    assert ids(db, sid, {"traits": {"age": {"min": 30, "max": 50}}}) == ["a", "c"]
    assert ids(db, sid, {"consent_channel": "email"}) == ["a"]  # b withdrew; default is no
    assert ids(db, sid, {"consent_channel": "email", "consent_topic": "order_updates"}) == list(
        "abcdef"
    )  # that topic's default is granted


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"segments": ["Sleepy"]}, "segments"),
        ({"cells": ["6-1"]}, "cells"),
        ({"clv_min": 500, "clv_max": 100}, "clv_max"),
        ({"p_alive_min": 1.5}, "p_alive_min"),
        ({"p_alive_max": "often"}, "p_alive_max"),
        ({"last_order_days_min": 2.5}, "last_order_days_min"),
        ({"last_visit_days_min": 9, "last_visit_days_max": 3}, "last_visit_days_max"),
        ({"traits": {"age": {"min": 5, "max": 1}}}, "traits.age.max"),
        ({"traits": {"age": {"least": 5}}}, "traits.age"),
        ({"traits": {"tags": ["a"]}}, "traits.tags"),
        ({"consent_channel": "fax"}, "consent_channel"),
        ({"currency": "euro"}, "currency"),
    ],
)
def test_unknown_fields_and_impossible_ranges_are_errors_naming_the_field(data, field):
    with pytest.raises(segments.SegmentError) as raised:
        segments.parse(data)
    assert raised.value.field == field


def test_a_currency_the_snapshot_lacks_is_an_error_and_no_snapshot_no_members(db, shop, site):
    with db.connect() as conn:
        with pytest.raises(segments.SegmentError) as raised:
            members(conn, shop.site_id, segments.parse({"currency": "GBP"}))
        assert raised.value.field == "currency"
        nothing = members(conn, shop.site_id + 999, segments.Definition())
    assert nothing.day is None and nothing.count == 0


def test_saved_by_name_per_site(db, shop):
    sid = shop.site_id
    with db.begin() as conn:
        first = segments.save(conn, sid, " Best ", segments.parse({"segments": ["Champions"]}))
        with pytest.raises(segments.SegmentError) as raised:
            segments.save(conn, sid, "Best", segments.Definition())
        assert raised.value.field == "name"
        segments.save(conn, sid, "Best", segments.parse({"cells": ["1-1"]}), segment_id=first)
        segments.save(conn, sid + 1, "Best", segments.Definition())  # another site's
    with db.connect() as conn:
        saved = segments.listing(conn, sid)
        assert [(s.id, s.name, s.definition.cells) for s in saved] == [(first, "Best", ("1-1",))]
        with pytest.raises(segments.UnknownSegment):
            segments.get(conn, sid + 1, first)


def test_an_export_holds_back_a_seeded_control_and_records_everything(db, shop):
    sid = shop.site_id
    with db.begin() as conn:
        for u in "abcdef":
            preferences.set_preferences(
                conn, sid, u, {"sms:offers": u != "f"}, source="api", wording="Offers by SMS"
            )
        seg = segments.save(conn, sid, "All", segments.Definition())
        conn.execute(  # phone numbers on file for all but c
            sa.insert(customers),
            [
                {
                    "site_id": sid,
                    "user_id": u,
                    "traits": {"phone": f"+8210000000{k}"},
                    "first_seen_at": NOW,
                    "last_seen_at": NOW,
                }
                for k, u in enumerate("abdef")
            ],
        )
        out = io.StringIO()
        done = segment_exports.export(
            conn, sid, seg, "sms", control_share=0.4, seed=7, by="m@shop.example", out=out
        )
        again = segment_exports.export(conn, sid, seg, "sms", control_share=0.4, seed=7)
    assert done.targets == 3 and done.controls == 2  # 5 consented, 40% held back
    rows = out.getvalue().splitlines()
    assert rows[0].startswith("user_id,phone,segment") and len(rows) == 4
    phones = {row.split(",")[0]: row.split(",")[1] for row in rows[1:]}
    assert "c" in phones  # a target without a phone number: a blank
    assert phones == {u: "" if u == "c" else f"+8210000000{'abdef'.index(u)}" for u in phones}
    assert list(phones) == sorted(phones)  # in user id order
    with db.connect() as conn:
        stored = segment_exports.export_members(conn, done.id)
        assert segment_exports.export_members(conn, again.id) == stored  # seeded
        assert "f" not in stored and len(stored) == 5
        assert {u for u, control in stored.items() if not control} == set(phones)
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(segment_export_members)).scalar()
            == 10
        )
        entry = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "segment.export")
        ).first()
        listed = segment_exports.exports(conn, sid, seg)
    assert entry.email == "m@shop.example" and entry.detail["seed"] == 7
    assert entry.detail["targets"] == 3 and entry.detail["controls"] == 2
    assert [e["id"] for e in listed] == [again.id, done.id] and listed[0]["seed"] == 7


@pytest.mark.parametrize(
    ("channel", "share", "field"),
    [("fax", 0, "channel"), ("email", 0.9, "control_share"), ("email", "x", "control_share")],
)
def test_bad_export_choices_are_errors(db, shop, channel, share, field):
    with db.begin() as conn:
        seg = segments.save(conn, shop.site_id, "All", segments.Definition())
        with pytest.raises(segments.SegmentError) as raised:
            segment_exports.export(conn, shop.site_id, seg, channel, control_share=share)
    assert raised.value.field == field
