"""The customer value refresh (analytics.value) on a real SQL store: snapshots, currencies."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from analytics import rfm, value
from analytics.value_schema import value_runs, value_scores
from tracking.schema import orders

DAY = date(2026, 11, 30)


def _order(site_id, user_id, when: datetime, total, currency="EUR"):
    return {
        "site_id": site_id,
        "order_id": uuid.uuid4().hex,
        "user_id": user_id,
        "anonymous_id": None,
        "message_id": uuid.uuid4().hex,
        "total": total,
        "revenue": total,
        "currency": currency,
        "ordered_at": when,
        "holdout": False,
    }


def _shop(rng: np.random.Generator, site_id: int, customers: int = 300) -> list[dict]:
    """A shop whose buyers follow the BG/NBD story: some buy often, some stop."""
    rows = []
    start = datetime(2025, 12, 1, tzinfo=UTC)
    for c in range(customers):
        user = f"u{c:04d}"
        first = start + timedelta(days=int(rng.integers(0, 300)))
        rate = rng.gamma(0.8, 1 / 20)  # purchases per day
        when, alive = first, True
        rows.append(_order(site_id, user, when, round(float(rng.gamma(4, 10)), 2)))
        while alive:
            when = when + timedelta(days=float(rng.exponential(1 / rate)))
            if when.date() > DAY:
                break
            rows.append(_order(site_id, user, when, round(float(rng.gamma(4, 10)), 2)))
            alive = rng.random() > 0.15
    return rows


def _scores(db, site_id, day=DAY, currency="EUR"):
    with db.connect() as conn:
        return {
            row.user_id: row
            for row in conn.execute(
                sa.select(value_scores).where(
                    value_scores.c.site_id == site_id,
                    value_scores.c.day == day,
                    value_scores.c.currency == currency,
                )
            )
        }


def test_refresh_scores_every_buyer_per_currency_and_keeps_dated_snapshots(db, site):
    rng = np.random.default_rng(5)
    rows = _shop(rng, site.site_id)
    edge = datetime(2026, 11, 20, tzinfo=UTC)
    rows += [
        _order(site.site_id, "one-order", edge, 30),
        _order(site.site_id, "zero-value", edge - timedelta(days=40), 0),
        _order(site.site_id, "zero-value", edge, 0),
        _order(site.site_id, "refunder", edge - timedelta(days=10), 50),
        _order(site.site_id, "refunder", edge, -50),  # a refund: net 0
        _order(site.site_id, "u0000", edge, 25, currency="USD"),  # a second currency
        _order(site.site_id, None, edge, 99),  # anonymous: not a scored customer
        _order(site.site_id, "future", datetime(2026, 12, 2, tzinfo=UTC), 10),  # after the day
    ]
    with db.begin() as conn:
        conn.execute(sa.insert(orders), rows)

    summaries = value.refresh(db, site.site_id, day=DAY)
    by_currency = {s.currency: s for s in summaries}
    assert set(by_currency) == {"EUR", "USD"}
    assert by_currency["EUR"].fitted, by_currency["EUR"].fit_error
    assert not by_currency["USD"].fitted and "BG/NBD" in by_currency["USD"].fit_error

    eur = _scores(db, site.site_id)
    buyers = {r["user_id"] for r in rows if r["user_id"] and r["currency"] == "EUR"} - {"future"}
    assert set(eur) == buyers
    assert eur["refunder"].revenue == 0 and eur["refunder"].orders == 2
    assert eur["zero-value"].revenue == 0
    assert eur["one-order"].p_alive == 1.0  # no repeat purchase: alive by the model's definition
    for row in eur.values():
        assert 0 <= row.p_alive <= 1 and row.clv >= 0 and row.expected_spend >= 0
        assert row.purchases_4w <= row.purchases_13w <= row.purchases_52w
        assert rfm.SEGMENTS[(row.r_score, row.f_score)] == row.segment
    assert sum(r.vip for r in eur.values()) == int(np.ceil(0.2 * len(eur)))
    vip_clv = min(r.clv for r in eur.values() if r.vip)
    assert all(r.clv <= vip_clv for r in eur.values() if not r.vip)
    # USD: RFM scores, no model columns, and never summed with EUR
    usd = _scores(db, site.site_id, currency="USD")
    assert usd["u0000"].revenue == 25 and usd["u0000"].clv is None
    assert usd["u0000"].segment == rfm.SEGMENTS[(usd["u0000"].r_score, usd["u0000"].f_score)]

    with db.connect() as conn:
        run = conn.execute(sa.select(value_runs).where(value_runs.c.currency == "EUR")).one()
    assert set(run.bgnbd) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert run.settings["vip_by"] == "clv"

    # A later refresh is another snapshot; the same day again replaces, never duplicates.
    value.refresh(db, site.site_id, day=DAY + timedelta(days=1))
    value.refresh(db, site.site_id, day=DAY)
    assert len(_scores(db, site.site_id)) == len(eur)
    later = _scores(db, site.site_id, day=DAY + timedelta(days=1))
    assert set(later) == buyers
    assert later["one-order"].last_order_at == eur["one-order"].last_order_at


def test_vip_by_money_and_seed_thresholds_come_from_the_settings(db, site):
    when = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [_order(site.site_id, f"c{i}", when, 10 * (i + 1)) for i in range(10)]
    with db.begin() as conn:
        conn.execute(sa.insert(orders), rows)
    settings = value.ValueSettings(
        thresholds=rfm.SeedThresholds(
            recency_months=(0.5, 2), frequency_orders=(2, 1), money=(90, 50)
        ),
        vip_by="money",
        vip_share=0.3,
    )
    (summary,) = value.refresh(db, site.site_id, day=DAY, settings=settings)
    assert not summary.fitted  # nobody bought twice: RFM only
    scores = _scores(db, site.site_id)
    assert sorted(u for u, r in scores.items() if r.vip) == ["c7", "c8", "c9"]
    assert scores["c9"].m_seed == 3 and scores["c5"].m_seed == 2 and scores["c0"].m_seed == 1
    assert {r.r_seed for r in scores.values()} == {2}  # 29 days ago: within 2 months, not 0.5
    assert {r.f_seed for r in scores.values()} == {2}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vip_by": "luck"}, "vip_by"),
        ({"vip_share": 0}, "vip_share"),
        ({"horizon_weeks": 1000}, "horizon_weeks"),
        ({"annual_discount": 1.5}, "annual_discount"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(rfm.ThresholdError) as caught:
        value.ValueSettings(**kwargs)
    assert caught.value.field == field


def test_a_site_without_orders_has_an_empty_snapshot(db, site):
    assert value.refresh(db, site.site_id, day=DAY) == []
    assert _scores(db, site.site_id) == {}


def test_user_ids_with_awkward_characters_round_trip(db, site):
    # PostgreSQL reads and writes the scores with COPY: its text format escapes these.
    ids = ["tab\there", "back\\slash", "new\nline", 'quote"d', "NA", "\\N", "한글", "semi;colon"]
    when = datetime(2026, 11, 1, tzinfo=UTC)
    with db.begin() as conn:
        conn.execute(
            sa.insert(orders),
            [
                _order(site.site_id, u, when - timedelta(days=k * 9), 10 + k)
                for u in ids
                for k in range(2)
            ],
        )
    value.refresh(db, site.site_id, day=DAY)
    scores = _scores(db, site.site_id)
    assert set(scores) == set(ids)
    assert all(row.orders == 2 for row in scores.values())
