"""What the customer value pages read (analytics.value_reports, analytics.value_settings), checked
against small hand-computed snapshots, funnel sessions and settings forms."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from analytics import forecast, value, value_reports, value_settings, value_summary
from analytics.rfm import SeedThresholds
from analytics.value_schema import value_scores, value_summaries
from tests.test_rollups import event, store
from tests.test_value_refresh import _order
from tests.value_helpers import BEFORE, DAY, score, store_snapshot
from tracking.schema import orders


def _hand_made(db, site_id):
    """Four EUR customers (two snapshots) and one USD one, values chosen to be added by hand."""
    store_snapshot(
        db,
        site_id,
        BEFORE,
        "EUR",
        [
            score("a", 5, 5, 100, clv=500.0, p_alive=0.9),
            score("b", 5, 5, 60, clv=300.0, p_alive=0.8),
            score("c", 1, 1, 30, clv=50.0, p_alive=0.5),
            score("d", 3, 3, 10, clv=10.0, p_alive=0.4),
        ],
    )
    store_snapshot(
        db,
        site_id,
        DAY,
        "EUR",
        [
            score("a", 5, 5, 100, clv=400.0, p_alive=0.7, vip=True),  # fell 0.2
            score("b", 4, 5, 60, clv=350.0, p_alive=0.85),  # rose
            score("c", 1, 1, 30, clv=40.0, p_alive=0.3),  # fell 0.2, worth less
            score("d", 1, 1, -20, clv=0.0, p_alive=0.4),  # refunded more than bought; no change
            score("e", 5, 1, 5, clv=20.0, p_alive=1.0),  # new: not in the previous snapshot
        ],
    )
    store_snapshot(db, site_id, DAY, "USD", [score("a", 5, 5, 999)])


def test_latest_snapshot_grid_pareto_and_history(db, site):
    with db.connect() as conn:
        assert value_reports.latest(conn, site.site_id) is None
    _hand_made(db, site.site_id)
    with db.connect() as conn:
        snapshot = value_reports.latest(conn, site.site_id)
        assert snapshot == value_reports.Snapshot(DAY, BEFORE, ["EUR", "USD"])
        cells = value_reports.grid(conn, site.site_id, DAY, "EUR")
        assert len(cells) == 25 and [c["r_score"] for c in cells[:5]] == [5] * 5
        by_cell = {(c["r_score"], c["f_score"]): c for c in cells}
        assert by_cell[(5, 5)]["customers"] == 1 and float(by_cell[(5, 5)]["revenue"]) == 100
        assert by_cell[(1, 1)]["customers"] == 2 and float(by_cell[(1, 1)]["revenue"]) == 10
        assert by_cell[(1, 1)]["segment"] == "Hibernating" and by_cell[(1, 1)]["share"] == 0.4
        assert sum(c["customers"] for c in cells) == 5  # the USD customer is not in EUR's grid
        assert by_cell[(2, 2)]["customers"] == 0 and by_cell[(2, 2)]["revenue"] == 0

        # Net revenue 100, 60, 30, 5, and -20 counted as 0: a total of 195.
        top = value_reports.pareto(conn, site.site_id, DAY, "EUR")
        assert (top.vips, top.customers) == (1, 5)
        assert top.vip_revenue_share == pytest.approx(100 / 195)  # "a" is the VIP
        assert len(top.points) == 20 and top.points[0]["customer_share"] == 0.05
        fifths = {p["customer_share"]: p["revenue_share"] for p in top.points[3::4]}
        assert list(fifths) == [0.2, 0.4, 0.6, 0.8, 1.0]
        assert list(fifths.values()) == pytest.approx([x / 195 for x in (100, 160, 190, 195, 195)])
        assert top.points[0]["revenue_share"] == pytest.approx(100 / 195)  # 5% of 5: one customer

        over_time = value_reports.segments_over_time(conn, site.site_id, "EUR", BEFORE, DAY)
        assert {(r["day"], r["segment"]): r["customers"] for r in over_time} == {
            (BEFORE, "Champions"): 2,
            (BEFORE, "Hibernating"): 1,
            (BEFORE, "Need Attention"): 1,
            (DAY, "Champions"): 1,
            (DAY, "Loyal"): 1,
            (DAY, "Hibernating"): 2,
            (DAY, "New"): 1,
        }
        assert (
            value_reports.segments_over_time(conn, site.site_id, "EUR", DAY, DAY)[0]["day"] == DAY
        )

        history = value_reports.customer_history(conn, site.site_id, "a")
        assert [(h["day"], h["currency"]) for h in history] == [
            (DAY, "EUR"),
            (DAY, "USD"),
            (BEFORE, "EUR"),
        ]
        assert history[0]["churn_risk"] == pytest.approx(0.3) and history[0]["rfm"] == "553"
        assert history[1]["churn_risk"] is None  # USD was not fitted


def test_valuable_and_slipping_lists_falls_by_lifetime_value(db, site):
    _hand_made(db, site.site_id)
    with db.connect() as conn:
        snapshot = value_reports.latest(conn, site.site_id)
        rows = value_reports.slipping(conn, site.site_id, snapshot, "EUR")
        assert [r["user_id"] for r in rows] == ["a", "c"]  # b rose, d unchanged, e is new
        assert rows[0]["change"] == pytest.approx(-0.2)
        assert rows[0]["churn_risk"] == pytest.approx(0.3)
        assert value_reports.slipping(conn, site.site_id, snapshot, "EUR", limit=1)[0]["clv"] == 400
        assert value_reports.slipping(conn, site.site_id, snapshot, "USD") == []
        first_only = value_reports.Snapshot(DAY, None, ["EUR"])
        assert value_reports.slipping(conn, site.site_id, first_only, "EUR") == []


def test_the_vip_list_ranks_the_vips_by_what_made_them_vips(db, site):
    store_snapshot(
        db,
        site.site_id,
        DAY,
        "EUR",
        [
            score("a", 5, 5, 100, clv=50.0, p_alive=0.9, vip=True),
            score("b", 5, 4, 300, clv=20.0, p_alive=0.8, vip=True),
            score("c", 4, 4, 200, clv=90.0, p_alive=0.7, vip=True),
            score("d", 4, 4, 200, clv=90.0, p_alive=0.7, vip=True),  # a tie with c: by id
            score("e", 1, 1, 999, clv=999.0, p_alive=0.1),  # not a VIP: never listed
        ],
    )
    store_snapshot(db, site.site_id, DAY, "USD", [score("x", 5, 5, 10, vip=True)])
    with db.connect() as conn:
        by_clv = value_reports.vips(conn, site.site_id, DAY, "EUR", "clv")
        by_revenue = value_reports.vips(conn, site.site_id, DAY, "EUR", "revenue")
        assert [r["user_id"] for r in by_clv] == ["c", "d", "a", "b"]
        assert [r["user_id"] for r in by_revenue] == ["b", "c", "d", "a"]
        assert [r["user_id"] for r in value_reports.vips(conn, site.site_id, DAY, "USD")] == ["x"]
        assert len(value_reports.vips(conn, site.site_id, DAY, "EUR", "clv", limit=2)) == 2
        assert value_reports.vips(conn, site.site_id, BEFORE, "EUR") == []
        fitted = value_reports.run(conn, site.site_id, DAY, "EUR")
    # The refresh ranks VIPs by lifetime value only when asked to and the models were fitted.
    assert fitted["fit_error"] is None
    assert value_reports.vip_value({**fitted, "settings": {"vip_by": "clv"}}) == "clv"
    assert value_reports.vip_value({**fitted, "settings": {"vip_by": "money"}}) == "revenue"
    unfitted = {**fitted, "settings": {"vip_by": "clv"}, "fit_error": "BG/NBD not fitted: ..."}
    assert value_reports.vip_value(unfitted) == "revenue"
    assert value_reports.vip_value(None) == "revenue"


def test_clv_distribution_bins_every_customer_once(db, site):
    values = [float(v) for v in range(100)] + [10_000.0]  # one outlier past the 99th percentile
    store_snapshot(
        db,
        site.site_id,
        DAY,
        "EUR",
        [score(f"c{i:03d}", 3, 3, 10, clv=v, p_alive=0.5) for i, v in enumerate(values)],
    )
    with db.connect() as conn:
        rows = value_reports.clv_distribution(conn, site.site_id, DAY, "EUR")
        assert value_reports.clv_distribution(conn, site.site_id, DAY, "USD") == []
    assert len(rows) == value_summary.CLV_BINS + 1
    assert sum(r["customers"] for r in rows) == 101
    assert rows[-1]["customers"] == 1 and rows[-1]["high"] is None  # the outlier alone
    assert rows[0] == {"low": 0.0, "high": 9.9, "customers": 10, "share": 10 / 101}
    assert rows[-2]["high"] == 99.0 and rows[-2]["customers"] == 10  # 90..99, 99 included


def test_prospects_are_carts_without_any_order_in_the_period(db, site):
    t = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)

    def journey(visitor, when, user=None, order=False):
        steps = [
            event("Product Viewed", when, visitor, user, product_id="p1", category="Books"),
            event("Product Added", when + timedelta(minutes=1), visitor, user, product_id="p1"),
        ]
        if order:
            steps.append(
                event(
                    "Order Completed",
                    when + timedelta(minutes=5),
                    visitor,
                    user,
                    order_id=f"o-{visitor}-{when:%j}",
                    revenue=10,
                    currency="EUR",
                    products=[{"product_id": "p1", "price": 10, "quantity": 1}],
                )
            )
        return steps

    store(
        db,
        site.site_id,
        [
            *journey("a1", t),  # a prospect
            *journey("a2", t, order=True),  # bought in the same session
            *journey("a3", t),
            *journey("a3", t + timedelta(days=2), order=True),  # bought later
            event("Product Viewed", t, "a4", product_id="p1"),  # viewed only
            *journey("a5", t, user="buyer-5"),
            *journey("a6", datetime(2026, 10, 1, tzinfo=UTC)),  # before the period
            *journey("a7", t, user="lead-7"),  # a customer who never bought, twice
            *journey("a7", t + timedelta(days=1), user="lead-7"),
        ],
        holdout_share=0.0,
    )
    with db.begin() as conn:  # buyer-5 ordered before, from another device
        conn.execute(
            sa.insert(orders), [_order(site.site_id, "buyer-5", t - timedelta(days=90), 20)]
        )
    with db.connect() as conn:
        found = value_reports.prospects(conn, site.site_id, date(2026, 11, 4), date(2026, 11, 17))
    assert [(p["visitor_id"], p["user_id"], p["sessions"]) for p in found] == [
        ("a7", "lead-7", 2),
        ("a1", None, 1),
    ]
    # Enough visitors on the newest day: the older days are never read (on PostgreSQL the
    # server-side cursor left behind must still be closed, or psycopg warns as it is collected).
    with db.connect() as conn:
        first = value_reports.prospects(
            conn, site.site_id, date(2026, 11, 4), date(2026, 11, 17), limit=1
        )
    assert [(p["visitor_id"], p["sessions"]) for p in first] == [("a7", 2)]


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"recency_3": "three"}, "recency_3", "must be a number"),
        ({"recency_3": ""}, "recency_3", "give a number"),
        ({"recency_3": "6"}, "recency_3", "the months for a 3 must be fewer than for a 2"),
        ({"frequency_2": "5"}, "frequency_3", "the threshold for a 3 must be above"),
        ({"money_2": "-1"}, "money_2", "must not be negative"),
        ({"discount": "-5"}, "discount", "must not be negative"),
        ({"money_3": "inf"}, "money_3", "must be a finite number"),
        ({"vip_by": "luck"}, "vip_by", "choose lifetime value or net revenue"),
        ({"vip_share": "0"}, "vip_share", "above 0 and at most 100"),
        ({"vip_share": "120"}, "vip_share", "above 0 and at most 100"),
        ({"horizon_weeks": "2"}, "horizon_weeks", "between 4 and 520"),
        ({"discount": "100"}, "discount", "below 100"),
    ],
)
def test_bad_settings_forms_name_the_field(changes, field, reason):
    form = {**value_settings.as_form(value_settings.ValueSettings()), **changes}
    with pytest.raises(value_settings.SettingsErrors) as caught:
        value_settings.from_form(form)
    assert field in caught.value.errors and reason in caught.value.errors[field]


def test_the_default_form_reads_back_as_todays_defaults():
    defaults = value_settings.ValueSettings()
    assert value_settings.from_form(value_settings.as_form(defaults)) == defaults
    assert value_settings.as_form(defaults) == {
        "recency_3": "1",
        "recency_2": "3",
        "frequency_3": "3",
        "frequency_2": "2",
        "money_3": "100",
        "money_2": "50",
        "vip_by": "clv",
        "vip_share": "20",
        "horizon_weeks": "52",
        "discount": "10",
    }


def test_stored_settings_are_what_the_refresh_scores_with(db, site):
    assert value_settings.load(db, site.site_id) == value_settings.ValueSettings()
    when = datetime(2026, 11, 1, tzinfo=UTC)
    with db.begin() as conn:
        conn.execute(
            sa.insert(orders),
            [_order(site.site_id, f"c{i}", when, 10 * (i + 1)) for i in range(10)],
        )
    chosen = value_settings.ValueSettings(
        thresholds=SeedThresholds(money=(90, 50)), vip_by="money", vip_share=0.3
    )
    with db.begin() as conn:
        value_settings.save(conn, site.site_id, chosen, by="m@shop.example")
    with db.begin() as conn:  # saving again replaces
        value_settings.save(conn, site.site_id, chosen, by="m@shop.example")
    assert value_settings.load(db, site.site_id) == chosen
    value.refresh(db, site.site_id, day=DAY)  # no settings given: the stored ones
    with db.connect() as conn:
        rows = {r.user_id: r for r in conn.execute(sa.select(value_scores))}
    assert sorted(u for u, r in rows.items() if r.vip) == ["c7", "c8", "c9"]
    assert rows["c8"].m_seed == 3 and rows["c7"].m_seed == 2 and rows["c3"].m_seed == 1


def _model(p4, p13, p52, spend, **extra):
    return {
        "p_alive": 0.5,
        "purchases_4w": p4,
        "purchases_13w": p13,
        "purchases_52w": p52,
        "expected_spend": spend,
        "clv": 1.0,
        **extra,
    }


def test_forecast_sums_the_models_and_the_backtest_compares_a_snapshot_4_weeks_old(db, site):
    start = DAY - timedelta(weeks=4)
    store_snapshot(
        db,
        site.site_id,
        start,
        "EUR",
        [
            score("a", 5, 5, 100, orders=2, **_model(1.5, 3, 8, 40)),
            score("b", 3, 3, 30, orders=1, **_model(0.5, 1, 2, 20)),
        ],
    )
    store_snapshot(
        db,
        site.site_id,
        DAY,
        "EUR",
        [
            score("a", 5, 5, 180, orders=4, **_model(1, 2.5, 7, 45)),
            score("b", 3, 3, 30, orders=1, **_model(0.2, 0.5, 1, 20)),
            score("c", 5, 1, 10, orders=1, **_model(0.3, 0.8, 2, 10)),  # new: not backtested
        ],
    )
    store_snapshot(db, site.site_id, DAY, "USD", [score("z", 5, 5, 50)])  # not fitted
    with db.connect() as conn:
        ahead = forecast.forecast(conn, site.site_id, DAY, "EUR")
        assert forecast.forecast(conn, site.site_id, DAY, "USD") == []
        four = forecast.backtest(conn, site.site_id, DAY, "EUR", 4)
        thirteen = forecast.backtest(conn, site.site_id, DAY, "EUR", 13)
    assert [(f["weeks"], f["until"]) for f in ahead] == [
        (4, DAY + timedelta(weeks=4)),
        (13, DAY + timedelta(weeks=13)),
        (52, DAY + timedelta(weeks=52)),
    ]
    assert [f["orders"] for f in ahead] == pytest.approx([1.5, 3.8, 10])
    assert [f["revenue"] for f in ahead] == pytest.approx([52, 130.5, 355])
    assert (four.start, four.end, four.customers) == (start, DAY, 2)
    assert four.predicted_orders == pytest.approx(2.0) and four.actual_orders == 2
    assert four.orders_error == pytest.approx(0.0)
    assert four.predicted_revenue == pytest.approx(70) and four.actual_revenue == 80
    assert four.revenue_error == pytest.approx(-0.125)
    assert thirteen.customers == 0 and thirteen.orders_error is None  # no snapshot 13 weeks back
    # The refresh keeps them with the summary (migration 121) and the page reads them back.
    with db.connect() as conn:
        assert forecast.backtests(conn, site.site_id, DAY, "EUR") == [four, thirteen]  # live
    with db.begin() as conn:
        forecast.store_backtests(conn, site.site_id, DAY, "EUR")
        conn.execute(  # the joined snapshot changes (an erasure, say): the stored ones stay
            sa.delete(value_scores).where(value_scores.c.user_id == "a")
        )
    with db.connect() as conn:
        assert forecast.backtests(conn, site.site_id, DAY, "EUR") == [four, thirteen]
        assert forecast.backtest(conn, site.site_id, DAY, "EUR", 4).customers == 1


def test_migration_113_backfills_the_summaries_the_refresh_writes(db, site):
    when = datetime(2026, 11, 1, tzinfo=UTC)
    with db.begin() as conn:
        conn.execute(
            sa.insert(orders),
            [
                _order(site.site_id, f"c{i}", when - timedelta(days=9 * k + i), 10 + i, cur)
                for i in range(30)
                for k in range(1 + i % 3)
                for cur in ("EUR", "USD")
            ],
        )
    value.refresh(db, site.site_id, day=DAY)
    with db.connect() as conn:
        written = conn.execute(sa.select(value_summaries).order_by("currency")).all()
    assert [r.currency for r in written] == ["EUR", "USD"]
    assert sum(c["customers"] for c in written[0].cells) == 30 == written[0].customers
    with db.begin() as conn:
        conn.execute(sa.delete(value_summaries))
        value_summary.backfill(conn)
    with db.connect() as conn:
        again = conn.execute(sa.select(value_summaries).order_by("currency")).all()
    for before, after in zip(written, again, strict=True):
        assert before._mapping.keys() == after._mapping.keys()
        for key in ("customers", "vips", "cells", "clv_bins"):
            assert before._mapping[key] == after._mapping[key], key
        assert before.pareto == pytest.approx(after.pareto)
        for ours, theirs in zip(before.forecast or [], after.forecast or [], strict=True):
            assert ours["weeks"] == theirs["weeks"]
            assert ours["orders"] == pytest.approx(theirs["orders"])
            assert ours["revenue"] == pytest.approx(theirs["revenue"])
        assert before.vip_revenue_share == pytest.approx(after.vip_revenue_share)
    assert written[0].forecast is not None  # EUR is fitted
    # The refresh kept the backtests too (none 4 or 13 weeks back here); the backfill does not.
    assert [(b["weeks"], b["customers"]) for b in written[0].backtests] == [(4, 0), (13, 0)]
    assert again[0].backtests is None


def test_migration_121_adds_the_backtests_to_a_store_without_them(db, site):
    from analytics.value_schema import add_backtests

    with db.begin() as conn:
        conn.execute(sa.text("ALTER TABLE value_summaries DROP COLUMN backtests"))
    with db.begin() as conn:
        add_backtests(conn)
        add_backtests(conn)  # and again: nothing to do
    store_snapshot(db, site.site_id, DAY, "EUR", [score("a", 5, 5, 10.0)])
    with db.begin() as conn:
        forecast.store_backtests(conn, site.site_id, DAY, "EUR")
    with db.connect() as conn:
        stored = conn.execute(sa.select(value_summaries.c.backtests)).scalar_one()
    assert [b["weeks"] for b in stored] == [4, 13]
