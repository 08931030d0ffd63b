"""Recommendation performance read from rollup rows whose right answer is worked out by hand.

``seed`` writes the rows the API and page tests (test_report_recs_*.py) read too: two
placements, two groups, three currencies, a previous period, a day after the period and another
site, so anything summed across a boundary it must not cross shows up as a wrong number.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from analytics.periods import Period
from analytics.recommendations import placement_problem, placements, recommendation_report
from analytics.schema import rollup_rec_items, rollup_rec_revenue, rollup_recs, rollup_sales
from tracking.catalogue import hide_item, upsert_items, validate_item

PERIOD = Period(date(2026, 11, 1), date(2026, 11, 7))
NOV = {day: date(2026, 11, day) for day in range(1, 9)}
OCT28 = date(2026, 10, 28)
HTML_TITLE = "<img src=x onerror=alert(1)>"


def _recs(site_id, day, placement, version, source, holdout, served, shown, clicks, adds):
    return {
        "site_id": site_id,
        "day": day,
        "placement": placement,
        "model_version": version,
        "source": source,
        "holdout": holdout,
        "served": served,
        "impressions": shown,
        "clicks": clicks,
        "adds_after_click": adds,
    }


def _revenue(site_id, day, placement, version, source, holdout, currency, orders, revenue):
    return {
        "site_id": site_id,
        "day": day,
        "placement": placement,
        "model_version": version,
        "source": source,
        "holdout": holdout,
        "currency": currency,
        "orders": orders,
        "revenue": Decimal(revenue),
    }


def _sales(site_id, day, currency, orders, revenue):
    return {
        "site_id": site_id,
        "day": day,
        "currency": currency,
        "orders": orders,
        "revenue": Decimal(revenue),
        "units": orders,
        "new_buyers": 0,
        "returning_buyers": 0,
    }


def _items(site_id, day, placement, item_id, shown, clicks):
    return {
        "site_id": site_id,
        "day": day,
        "placement": placement,
        "item_id": item_id,
        "impressions": shown,
        "clicks": clicks,
    }


def seed(engine, site_id: int, other_site_id: int) -> None:
    """The rows every recommendation-report test reads (see the expectations below)."""
    s, o = site_id, other_site_id
    with engine.begin() as conn:
        conn.execute(
            rollup_recs.insert(),
            [
                _recs(s, NOV[1], "home", "v2", "personal", False, 10, 40, 4, 1),
                _recs(s, NOV[1], "home", "v2", "popular", True, 2, 8, 1, 0),
                _recs(s, NOV[3], "cart", "v1", "personal", False, 5, 20, 2, 2),
                _recs(s, OCT28, "home", "v1", "personal", False, 3, 10, 5, 0),
                _recs(s, NOV[8], "home", "v2", "personal", False, 900, 1000, 100, 10),
                _recs(o, NOV[1], "home", "v2", "personal", False, 999, 999, 999, 999),
            ],
        )
        conn.execute(
            rollup_rec_revenue.insert(),
            [
                _revenue(s, NOV[1], "home", "v2", "personal", False, "EUR", 2, "30.50"),
                _revenue(s, NOV[1], "home", "v2", "personal", False, "USD", 1, "20.00"),
                _revenue(s, NOV[3], "cart", "v1", "personal", False, "EUR", 1, "9.25"),
                _revenue(s, NOV[1], "home", "v2", "popular", True, "EUR", 1, "5.00"),
                _revenue(s, OCT28, "home", "v1", "personal", False, "EUR", 1, "7.00"),
                _revenue(s, NOV[8], "home", "v2", "personal", False, "EUR", 50, "999.00"),
                _revenue(o, NOV[1], "home", "v2", "personal", False, "EUR", 9, "999.00"),
            ],
        )
        conn.execute(
            rollup_sales.insert(),
            [
                _sales(s, NOV[1], "EUR", 10, "200.00"),
                _sales(s, NOV[4], "EUR", 5, "100.00"),
                _sales(s, NOV[1], "USD", 2, "80.00"),
                _sales(s, NOV[2], "GBP", 1, "15.00"),
                _sales(s, OCT28, "EUR", 4, "70.00"),
                _sales(s, NOV[8], "EUR", 99, "9999.00"),
                _sales(o, NOV[1], "EUR", 99, "9999.00"),
            ],
        )
        conn.execute(
            rollup_rec_items.insert(),
            [
                _items(s, NOV[1], "home", "sku-1", 30, 1),
                _items(s, NOV[1], "home", "sku-2", 10, 3),
                _items(s, NOV[3], "cart", "sku-1", 10, 0),
                _items(s, NOV[3], "cart", "sku-3", 8, 2),
                _items(s, NOV[3], "cart", "sku-gone", 2, 0),
                _items(s, OCT28, "home", "sku-4", 10, 5),
                _items(s, NOV[8], "home", "sku-5", 500, 50),
                _items(o, NOV[1], "home", "sku-9", 999, 999),
            ],
        )
    catalogue = [
        {"item_id": "sku-1", "title": HTML_TITLE},
        {"item_id": "sku-2", "title": "Blue mug"},
        {"item_id": "sku-3", "title": "Red mug"},
        {"item_id": "sku-4", "title": "Green mug"},
        {"item_id": "sku-5", "title": "Old mug", "active": False},
    ]
    upsert_items(engine, s, [validate_item(item) for item in catalogue])
    upsert_items(engine, o, [validate_item({"item_id": "sku-9", "title": "Theirs"})])
    hide_item(engine, s, "sku-3")


@pytest.fixture
def seeded(db, site):
    from tracking.sites import create_site

    other, _ = create_site(db, "Other shop", ["https://other.example"])
    seed(db, site.site_id, other.site_id)
    return site


def report(db, site, **options):
    with db.connect() as conn:
        return recommendation_report(conn, site.site_id, PERIOD, **options)


def test_totals_count_the_period_only_and_keep_each_currency_apart(db, seeded):
    totals = report(db, seeded)["totals"]
    assert {k: totals[k] for k in ("served", "impressions", "clicks", "adds_after_click")} == {
        "served": 17,
        "impressions": 68,
        "clicks": 7,
        "adds_after_click": 3,
    }
    assert totals["ctr"] == pytest.approx(7 / 68)
    assert totals["add_to_cart_rate"] == pytest.approx(3 / 7)
    by_currency = {entry["currency"]: entry for entry in totals["revenue"]}
    assert list(by_currency) == ["EUR", "GBP", "USD"]
    assert by_currency["EUR"] == {
        "currency": "EUR",
        "orders": 4,
        "revenue": "44.75",
        "all_orders": 15,
        "all_revenue": "300.00",
        "share": pytest.approx(44.75 / 300),
    }
    assert by_currency["USD"]["revenue"] == "20.00"
    assert by_currency["USD"]["share"] == pytest.approx(0.25)
    assert by_currency["GBP"] == {
        "currency": "GBP",
        "orders": 0,
        "revenue": "0.00",
        "all_orders": 1,
        "all_revenue": "15.00",
        "share": 0.0,
    }


def test_treatment_and_holdout_are_kept_apart(db, seeded):
    groups = report(db, seeded)["totals"]["groups"]
    assert groups["treatment"]["impressions"] == 60
    assert groups["treatment"]["served"] == 15
    assert groups["treatment"]["revenue"] == [
        {"currency": "EUR", "orders": 3, "revenue": "39.75"},
        {"currency": "USD", "orders": 1, "revenue": "20.00"},
    ]
    assert groups["holdout"]["impressions"] == 8
    assert groups["holdout"]["clicks"] == 1
    assert groups["holdout"]["ctr"] == pytest.approx(1 / 8)
    assert groups["holdout"]["revenue"] == [{"currency": "EUR", "orders": 1, "revenue": "5.00"}]


def test_previous_period_is_the_same_length_just_before(db, seeded):
    previous = report(db, seeded)["previous"]
    assert (previous["served"], previous["impressions"], previous["clicks"]) == (3, 10, 5)
    assert previous["revenue"] == [
        {
            "currency": "EUR",
            "orders": 1,
            "revenue": "7.00",
            "all_orders": 4,
            "all_revenue": "70.00",
            "share": pytest.approx(0.1),
        }
    ]


def test_every_day_of_the_period_is_a_row(db, seeded):
    daily = report(db, seeded)["daily"]
    assert [row["day"] for row in daily] == [d.isoformat() for d in PERIOD.each_day()]
    first, second, third = daily[:3]
    assert (first["served"], first["impressions"], first["clicks"]) == (12, 48, 5)
    assert first["revenue"] == [
        {"currency": "EUR", "orders": 3, "revenue": "35.50"},
        {"currency": "USD", "orders": 1, "revenue": "20.00"},
    ]
    assert second == {
        "day": "2026-11-02",
        "served": 0,
        "impressions": 0,
        "clicks": 0,
        "adds_after_click": 0,
        "ctr": None,
        "add_to_cart_rate": None,
        "revenue": [],
    }
    assert third["adds_after_click"] == 2
    assert third["add_to_cart_rate"] == pytest.approx(1.0)


def test_breakdown_by_placement_model_source_and_group(db, seeded):
    rows = report(db, seeded)["breakdown"]
    keys = [(r["placement"], r["model_version"], r["source"], r["group"]) for r in rows]
    assert keys == [
        ("cart", "v1", "personal", "treatment"),
        ("home", "v2", "personal", "treatment"),
        ("home", "v2", "popular", "holdout"),
    ]
    home = rows[1]
    assert (home["served"], home["impressions"], home["clicks"]) == (10, 40, 4)
    assert home["revenue"] == [
        {"currency": "EUR", "orders": 2, "revenue": "30.50"},
        {"currency": "USD", "orders": 1, "revenue": "20.00"},
    ]


def test_a_placement_narrows_every_part_but_the_shops_sales(db, seeded):
    result = report(db, seeded, placement="home")
    totals = result["totals"]
    assert (totals["served"], totals["impressions"], totals["clicks"]) == (12, 48, 5)
    eur = next(e for e in totals["revenue"] if e["currency"] == "EUR")
    assert (eur["revenue"], eur["all_revenue"]) == ("35.50", "300.00")
    assert {r["placement"] for r in result["breakdown"]} == {"home"}
    assert [i["item_id"] for i in result["top_shown"]] == ["sku-1", "sku-2"]
    assert result["coverage"]["items_shown"] == 2


def test_top_items_with_titles_as_stored(db, seeded):
    result = report(db, seeded)
    assert [(i["item_id"], i["impressions"], i["clicks"]) for i in result["top_shown"]] == [
        ("sku-1", 40, 1),
        ("sku-2", 10, 3),
        ("sku-3", 8, 2),
        ("sku-gone", 2, 0),
    ]
    assert result["top_shown"][0]["title"] == HTML_TITLE
    assert result["top_shown"][3]["title"] is None  # not in the catalogue
    assert [i["item_id"] for i in result["top_clicked"]] == ["sku-2", "sku-3", "sku-1"]
    assert result["top_clicked"][0]["ctr"] == pytest.approx(0.3)
    with db.connect() as conn:
        top_two = recommendation_report(conn, seeded.site_id, PERIOD, top=2)
    assert [i["item_id"] for i in top_two["top_shown"]] == ["sku-1", "sku-2"]


def test_coverage_counts_items_for_sale_only(db, seeded):
    # Shown: sku-1, sku-2, sku-3 (hidden since), sku-gone (never in the catalogue). For sale:
    # sku-1, sku-2, sku-4 (sku-3 hidden, sku-5 inactive).
    assert report(db, seeded)["coverage"] == {
        "items_shown": 4,
        "items_shown_for_sale": 2,
        "catalogue_items": 3,
        "coverage": pytest.approx(2 / 3),
    }


def test_an_empty_site_reports_zeros_not_errors(db, site):
    result = report(db, site)
    assert result["totals"]["impressions"] == 0
    assert result["totals"]["ctr"] is None
    assert result["totals"]["revenue"] == []
    assert result["currencies"] == []
    assert len(result["daily"]) == 7
    assert result["breakdown"] == result["top_shown"] == []
    assert result["coverage"]["coverage"] is None


def test_placements_are_the_sites_own(db, seeded):
    with db.connect() as conn:
        assert placements(conn, seeded.site_id) == ["cart", "home"]
        assert placement_problem(conn, seeded.site_id, "home") is None
        assert placement_problem(conn, seeded.site_id, None) is None
        reason = placement_problem(conn, seeded.site_id, "footer")
    assert "unknown placement 'footer'" in reason and "cart, home" in reason
