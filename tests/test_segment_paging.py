"""Segment members in SQL pages (issue 14 at 1M customers): every condition, traits and consent
included, is one keyset query, and its pages, count and exports hold the same members in the same
order as the previous way (every member computed in Python, then filtered and sliced), written
here as the reference."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts import preferences, segment_exports, segments
from accounts.prefs_schema import consent_records
from accounts.segment_members import consenting, count, members, page
from analytics.value_schema import value_scores
from tests.value_helpers import DAY, score, store_snapshot
from tracking.schema import customers

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CELLS = [(r, f) for r in range(1, 6) for f in range(1, 6)]
# Trait values of every JSON type, so a wanted value must match its type as Python's == does.
AGES = [30, 30.0, "30", True, None, 45, -2, 1e6, [30], {"v": 30}]
PLANS = ["gold", "Gold", 1, True, "", "gold "]


def _trait_ok(have, want) -> bool:
    """The reference: the test the members had in Python before they were SQL."""
    if isinstance(want, dict):
        if isinstance(have, bool) or not isinstance(have, (int, float)):
            return False
        return (want["min"] is None or have >= want["min"]) and (
            want["max"] is None or have <= want["max"]
        )
    if isinstance(want, bool) or isinstance(have, bool):
        return have is want
    return have == want


@pytest.fixture
def crowd(db, site):
    """60 scored customers with traits of every type and consent histories with ties."""
    sid = site.site_id
    rng = random.Random(14)
    rows, people, records = [], [], []
    for i in range(60):
        user = f"u{rng.randrange(10**6):06d}-{i}"  # not in creation order
        r, f = CELLS[i % len(CELLS)]
        rows.append(score(user, r, f, 10.0 + i, clv=float(i * 7 % 50), p_alive=(i % 10) / 10))
        traits = {"age": AGES[i % len(AGES)], "plan": PLANS[i % len(PLANS)]}
        if i % 7 == 0:
            traits = {}  # no traits at all
        if i % 11 != 5:  # some customers have no row (never identified)
            people.append({"site_id": sid, "user_id": user, "traits": traits})
        for k in range(i % 4):  # 0-3 records; ties on the time are broken by id
            at = NOW - timedelta(days=10 - (k if i % 3 else 0))
            records.append((user, "email:offers", rng.random() < 0.5, at))
        if i % 5 == 0:
            records.append((user, "email:order_updates", False, NOW))
    store_snapshot(db, sid, DAY, "EUR", rows)
    with db.begin() as conn:
        conn.execute(
            sa.insert(customers),
            [{**p, "first_seen_at": NOW, "last_seen_at": NOW} for p in people],
        )
        conn.execute(
            sa.insert(consent_records),
            [
                {
                    "site_id": sid,
                    "user_id": u,
                    "what": what,
                    "granted": granted,
                    "at": at,
                    "source": "api",
                    "wording": "Mail",
                }
                for u, what, granted, at in records
            ],
        )
    return site


def reference(conn, site_id: int, data: dict) -> list[str]:
    """The members as they were computed before: SQL's conditions, then traits and consent in
    Python on every row (the newest record by time, then id; else the topic's default)."""
    sql_only = {k: v for k, v in data.items() if k not in ("traits", "consent_channel")}
    found = [m.user_id for m in members(conn, site_id, segments.parse(sql_only)).members]
    definition = segments.parse(data)
    traits = dict(conn.execute(sa.select(customers.c.user_id, customers.c.traits)).all())
    if definition.traits:
        found = [
            u
            for u in found
            if u in traits
            and all(_trait_ok(traits[u].get(k), v) for k, v in definition.traits.items())
        ]
    if definition.consent_channel:
        found = [u for u in found if u in allowed(conn, site_id, definition)]
    return found


def allowed(conn, site_id: int, d: segments.Definition) -> set[str]:
    default = {t.topic: t.default_granted for t in preferences.topics(conn, site_id)}
    newest: dict[str, bool] = {}
    rows = conn.execute(
        sa.select(consent_records.c.user_id, consent_records.c.granted)
        .where(consent_records.c.what == f"{d.consent_channel}:{d.consent_topic}")
        .order_by(consent_records.c.at, consent_records.c.id)
    )
    for user_id, granted in rows:
        newest[user_id] = bool(granted)
    scored = sa.select(value_scores.c.user_id).where(value_scores.c.site_id == site_id)
    everyone = conn.execute(scored)
    return {u for (u,) in everyone if newest.get(u, default.get(d.consent_topic, False))}


DEFINITIONS = [
    {},
    {"segments": ["Champions", "Hibernating"]},
    {"clv_min": 10, "p_alive_max": 0.6},
    {"traits": {"age": 30}},
    {"traits": {"age": "30"}},
    {"traits": {"age": True}},
    {"traits": {"age": {"min": 0, "max": 40}}},
    {"traits": {"age": {"min": 40}}},
    {"traits": {"plan": "gold"}},
    {"traits": {"plan": 1}},
    {"traits": {"plan": ""}, "clv_max": 30},
    {"traits": {"age": {"max": 100}, "plan": "Gold"}},
    {"traits": {"missing": False}},
    {"consent_channel": "email"},
    {"consent_channel": "email", "consent_topic": "order_updates"},
    {"consent_channel": "sms"},
    {"consent_channel": "email", "consent_topic": "no_such_topic"},
    {"consent_channel": "email", "traits": {"age": {"min": -5}}, "cells": ["1-1", "3-2"]},
]


@pytest.mark.parametrize("data", DEFINITIONS, ids=[str(d) for d in DEFINITIONS])
def test_pages_and_counts_agree_with_the_reference(db, crowd, data):
    sid, definition = crowd.site_id, segments.parse(data)
    with db.connect() as conn:
        want = reference(conn, sid, data)
        assert count(conn, sid, definition) == len(want)
        assert [m.user_id for m in members(conn, sid, definition).members] == want
        for limit in (1, 4, 7):
            seen, after = [], None
            while True:
                found = page(conn, sid, definition, after, limit)
                assert found.count == len(want) and len(found.members) <= limit
                seen += [m.user_id for m in found.members]
                if not found.more:
                    break
                after = found.members[-1].user_id
            assert seen == want


def test_the_list_check_of_consent_agrees_with_the_sql_one(db, crowd):
    """accounts.segment_members.consenting (for lists such as campaign lists) and the SQL
    condition choose the same customers."""
    sid = crowd.site_id
    with db.connect() as conn:
        everyone = [m.user_id for m in members(conn, sid, segments.Definition()).members]
        for topic in ("offers", "order_updates"):
            chosen = consenting(conn, sid, everyone, "email", topic)
            data = {"consent_channel": "email", "consent_topic": topic}
            assert sorted(chosen) == reference(conn, sid, data) == ids_of(conn, sid, data)


def ids_of(conn, site_id: int, data: dict) -> list[str]:
    return [m.user_id for m in members(conn, site_id, segments.parse(data)).members]


def test_the_definitions_are_not_all_empty_or_everyone(db, crowd):
    """The table above is a real test: most definitions keep some and drop some."""
    with db.connect() as conn:
        sizes = [len(reference(conn, crowd.site_id, d)) for d in DEFINITIONS]
    assert sizes[0] == 60
    assert sum(0 < n < 60 for n in sizes) >= len(DEFINITIONS) - 4


@pytest.mark.parametrize("share", [0.0, 0.3])
def test_an_export_holds_back_the_control_the_seed_always_chose(db, crowd, monkeypatch, share):
    """The same seed picks the same control as before (a shuffle of the eligible members'
    positions in user id order), though the members now come in chunks."""
    monkeypatch.setattr("accounts.segment_members.CHUNK", 4)  # several chunks
    monkeypatch.setattr("accounts.segment_exports.CHUNK", 4)
    sid = crowd.site_id
    with db.begin() as conn:
        seg = segments.save(conn, sid, "Some", segments.parse({"p_alive_min": 0.2}))
        out = io.StringIO()
        done = segment_exports.export(conn, sid, seg, "email", control_share=share, seed=5, out=out)
    with db.connect() as conn:
        eligible = reference(conn, sid, {"p_alive_min": 0.2, "consent_channel": "email"})
        stored = segment_exports.export_members(conn, done.id)
    order = list(range(len(eligible)))
    random.Random(5).shuffle(order)
    held = set(order[: round(share * len(eligible))])
    assert stored == {u: i in held for i, u in enumerate(eligible)}
    assert (done.targets, done.controls) == (len(eligible) - len(held), len(held))
    rows = out.getvalue().splitlines()
    targets = [u for i, u in enumerate(eligible) if i not in held]
    assert [r.split(",")[0] for r in rows[1:]] == targets
