"""The lift report on rows written into the visitor rollups, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pytest

from analytics import stats
from analytics.lift import lift_report
from analytics.schema import rollup_visitor_revenue, rollup_visitors

SITE = 7
DAY = date(2026, 11, 10)


def write(db, visitors=(), revenue=()):
    """Insert (day, visitor_id, holdout, orders) and (day, visitor_id, currency, revenue) rows."""
    with db.begin() as conn:
        if visitors:
            conn.execute(
                rollup_visitors.insert(),
                [
                    {"site_id": site, "day": day, "visitor_id": visitor, "holdout": holdout}
                    | {"events": 3, "orders": orders}
                    for site, day, visitor, holdout, orders in visitors
                ],
            )
        if revenue:
            conn.execute(
                rollup_visitor_revenue.insert(),
                [
                    {"site_id": site, "day": day, "visitor_id": visitor}
                    | {"currency": currency, "revenue": amount}
                    for site, day, visitor, currency, amount in revenue
                ],
            )


def report(db, start=DAY, end=DAY + timedelta(days=6), share=0.2, currency=None):
    with db.connect() as conn:
        result = lift_report(conn, SITE, start, end, share, currency)
    json.dumps(result, allow_nan=False)  # JSON-ready: no NaN, no Decimal, no date
    return result


def group(prefix, n, holdout, buyers, day=DAY):
    """n visitors of one group; the first ``buyers`` of them ordered once."""
    return [(SITE, day, f"{prefix}{i}", holdout, int(i < buyers)) for i in range(n)]


def test_counts_rates_and_revenue_per_visitor(db):
    visitors = group("t", 40, False, 4) + group("h", 10, True, 1)
    # t0 comes back the next day and orders again; t5 returns without ordering: converted once.
    visitors += [(SITE, DAY + timedelta(days=1), "t0", False, 1)]
    visitors += [(SITE, DAY + timedelta(days=1), "t5", False, 0)]
    # Outside the range, another site, and a visitor whose group changed (share changed).
    visitors += [(SITE, DAY - timedelta(days=1), "t9", False, 1)]
    visitors += [(SITE + 1, DAY, "t1", True, 1)]
    visitors += [(SITE, DAY, "mixed", False, 1), (SITE, DAY + timedelta(days=2), "mixed", True, 0)]
    revenue = [(SITE, DAY, f"t{i}", "EUR", 30) for i in range(4)] + [(SITE, DAY, "h0", "EUR", 25)]
    revenue += [(SITE, DAY + timedelta(days=1), "t0", "EUR", Decimal("12.50"))]
    revenue += [(SITE, DAY - timedelta(days=1), "t9", "EUR", 1000), (SITE, DAY, "mixed", "EUR", 99)]
    write(db, visitors, revenue)

    result = report(db)
    assert result["from"] == "2026-11-10" and result["to"] == "2026-11-16"
    assert result["visitors_excluded"] == 1
    assert result["currency"] == "EUR" and result["currencies"] == ["EUR"]
    treatment, holdout = result["treatment"], result["holdout"]
    assert (treatment["visitors"], treatment["conversions"]) == (40, 4)
    assert (holdout["visitors"], holdout["conversions"]) == (10, 1)
    assert treatment["conversion_rate"] == pytest.approx(0.1)
    assert treatment["revenue_per_visitor"] == pytest.approx((4 * 30 + 12.5) / 40)
    assert holdout["revenue_per_visitor"] == pytest.approx(2.5)

    difference, low, high = stats.newcombe_difference(4, 40, 1, 10)
    assert result["conversion"]["difference"] == pytest.approx(0.0)
    assert result["conversion"]["difference_ci"] == pytest.approx([low, high])
    assert result["conversion"]["lift"] == pytest.approx(
        float(stats.conversion_lift(4, 40, 1, 10)[0])
    )
    # Revenue is capped at the 99th percentile of all 50 visitors' revenue (t0's 42.50 is cut).
    per_visitor = np.array([42.5, 30, 30, 30] + [0] * 36 + [25] + [0] * 9)
    cap = np.percentile(per_visitor, 99)
    assert result["revenue"]["cap"] == pytest.approx(cap)
    assert treatment["revenue_per_visitor_capped"] == pytest.approx((min(42.5, cap) + 90) / 40)
    assert result["revenue"]["currency"] == "EUR"
    assert result["sample_ratio"]["observed_holdout_share"] == pytest.approx(0.2)
    assert result["sample_ratio"]["mismatch"] is False
    # 5 conversions cannot show a 5% lift: the verdict says how many more visitors it takes.
    assert result["verdict_code"] == "not_enough_data"
    assert result["verdict"].startswith("not enough data yet: about ")
    assert "more visitors in the holdout and" in result["verdict"]
    more = result["conversion"]["visitors_more"]
    needed = result["conversion"]["visitors_needed"]
    assert more == {"treatment": needed["treatment"] - 40, "holdout": needed["holdout"] - 10}


def test_an_empty_range_says_there_is_nothing_yet(db):
    write(db, group("t", 5, False, 1, day=DAY - timedelta(days=30)))
    result = report(db)
    assert result["treatment"] == {
        "visitors": 0,
        "conversions": 0,
        "conversion_rate": None,
        "revenue_per_visitor": None,
        "revenue_per_visitor_capped": None,
    }
    assert result["currency"] is None and result["currencies"] == []
    for metric in ("conversion", "revenue"):
        assert result[metric]["lift"] is None and result[metric]["lift_ci"] is None
        assert result[metric]["p_value"] is None
    assert result["sample_ratio"] == {
        "observed_holdout_share": None,
        "p_value": None,
        "mismatch": False,
    }
    assert (result["verdict_code"], result["verdict"]) == (
        "not_enough_data",
        "not enough data yet: no visitors in this range",
    )


def test_one_group_empty(db):
    write(db, group("t", 30, False, 3), [(SITE, DAY, "t0", "USD", 10)])
    result = report(db)
    assert result["holdout"]["visitors"] == 0
    assert result["conversion"]["difference_ci"] is None
    assert result["revenue"]["lift"] is None
    assert result["verdict"] == "not enough data yet: no visitors in the holdout in this range"
    assert result["revenue"]["verdict"] == result["verdict"]


def test_no_conversions_in_the_holdout(db):
    write(db, group("t", 80, False, 6) + group("h", 20, True, 0))
    result = report(db)
    assert result["conversion"]["lift"] is None
    assert result["conversion"]["difference_ci"] is not None  # Newcombe works with zero
    assert result["verdict"] == "not enough data yet: no conversions in the holdout yet"
    assert result["revenue"]["verdict"] == "not enough data yet: no revenue yet"


def test_revenue_that_does_not_vary(db):
    visitors = group("t", 20, False, 20) + group("h", 5, True, 5)
    revenue = [(SITE, DAY, v, "EUR", 10) for _, _, v, _, _ in visitors]
    write(db, visitors, revenue)
    result = report(db)
    assert result["revenue"]["p_value"] is None and result["revenue"]["lift_ci"] is None
    assert result["revenue"]["verdict"] == "not enough data yet: revenue per visitor does not vary"


def test_several_currencies_are_listed_and_one_is_measured(db):
    visitors = group("t", 40, False, 6) + group("h", 10, True, 2)
    revenue = [(SITE, DAY, f"t{i}", "KRW", 30_000 + i) for i in range(3)]
    revenue += [(SITE, DAY, f"t{i}", "USD", 20 + i) for i in range(3, 6)]
    revenue += [(SITE, DAY, "h0", "KRW", 25_000), (SITE, DAY, "h1", "USD", 22)]
    write(db, visitors, revenue)

    result = report(db)
    assert result["currencies"] == ["KRW", "USD"]  # most revenue first
    assert result["currency"] == result["revenue"]["currency"] == "KRW"
    assert result["treatment"]["revenue_per_visitor"] == pytest.approx((90_000 + 3) / 40)
    assert result["holdout"]["revenue_per_visitor"] == pytest.approx(2_500)

    result = report(db, currency="usd")
    assert result["currency"] == "USD"
    assert result["treatment"]["revenue_per_visitor"] == pytest.approx((23 + 24 + 25) / 40)
    assert result["holdout"]["revenue_per_visitor"] == pytest.approx(2.2)
    assert result["conversion"]["lift"] == report(db)["conversion"]["lift"]  # not by currency

    result = report(db, currency="JPY")
    assert result["currency"] == "JPY" and result["revenue"]["lift"] is None
    assert result["revenue"]["verdict"] == "not enough data yet: no revenue in JPY yet"


def test_a_real_lift_is_reported_with_its_interval(db):
    write(db, group("t", 2000, False, 300) + group("h", 2000, True, 200))
    result = report(db, share=0.5)
    conversion = result["conversion"]
    assert conversion["p_value"] < 0.001
    low, high = conversion["lift_ci"]
    assert low < conversion["lift"] < high and low > 0
    assert result["verdict_code"] == "lift"
    assert result["verdict"] == (
        f"recommendations lift conversion by {conversion['lift'] * 100:.1f}% "
        f"(95% CI {stats.percent(low)} to {stats.percent(high)}, p < 0.001)"
    )


def test_a_sample_ratio_mismatch_overrides_the_lift(db):
    write(db, group("t", 5000, False, 150) + group("h", 1000, True, 10))
    result = report(db, share=0.05)
    assert result["sample_ratio"]["mismatch"] is True
    assert result["verdict_code"] == "sample_ratio_mismatch"
    assert result["verdict"].startswith(
        "sample ratio mismatch: 1,000 holdout visitors of 6,000 where a holdout share of 5.0% "
        "expects about 300 (p < 0.001)"
    )
    assert result["verdict"].endswith("results are not trustworthy until it is explained")
    # The statistics are still there, for whoever investigates.
    assert result["conversion"]["p_value"] is not None


def test_without_a_holdout_share_there_is_no_lift(db):
    write(db, group("t", 30, False, 3))
    result = report(db, share=0.0)
    assert result["verdict_code"] == "no_holdout"
    assert result["conversion"]["visitors_needed"] is None


def test_the_range_must_not_end_before_it_starts(db):
    with pytest.raises(ValueError, match="before it starts"):
        report(db, start=DAY, end=DAY - timedelta(days=1))
