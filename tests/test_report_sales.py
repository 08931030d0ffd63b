"""analytics.sales on rollup rows whose answers are known (tests/sales_helpers.py), both stores."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from analytics.periods import Period
from analytics.sales import (
    FilterError,
    buckets,
    categories,
    category_path,
    checked_category,
    checked_grain,
    sales_report,
)
from tests.sales_helpers import HTML_CATEGORY, HTML_TITLE, PERIOD, seed

D = date.fromisoformat


@pytest.fixture
def shop(db, site):
    seed(db, site.site_id)
    return site


def report(db, site_id, **kwargs):
    with db.connect() as conn:
        return sales_report(conn, site_id, PERIOD, **kwargs)


def by(rows, *keys):
    return {tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]: row for row in rows}


def test_weeks_start_on_monday_and_are_cut_to_the_period():
    weeks = buckets(PERIOD, "week")
    assert [(b.start, b.first, b.last, b.days) for b in weeks] == [
        (D("2026-11-02"), D("2026-11-04"), D("2026-11-08"), 5),
        (D("2026-11-09"), D("2026-11-09"), D("2026-11-15"), 7),
        (D("2026-11-16"), D("2026-11-16"), D("2026-11-17"), 2),
    ]
    months = buckets(Period(D("2026-01-30"), D("2026-03-02")), "month")
    assert [(b.start, b.days) for b in months] == [
        (D("2026-01-01"), 2),
        (D("2026-02-01"), 28),
        (D("2026-03-01"), 2),
    ]
    assert len(buckets(PERIOD, "day")) == PERIOD.days


def test_totals_per_currency_against_the_previous_period(db, shop):
    r = report(db, shop.site_id)
    assert r.currencies == ["EUR", "USD"]  # by revenue: never added together
    eur, usd = r.totals
    assert eur["currency"] == "EUR"
    assert (eur["orders"], eur["revenue"], eur["units"]) == (6, Decimal("145.50"), 9)
    assert eur["average_order_value"] == Decimal("24.25")
    assert (eur["new_buyers"], eur["returning_buyers"]) == (3, 3)
    assert eur["previous"]["orders"] == 1 and eur["previous"]["revenue"] == Decimal("10.00")
    assert (usd["currency"], usd["orders"], usd["revenue"]) == ("USD", 1, Decimal("20.00"))
    assert usd["previous"]["orders"] == 0 and usd["previous"]["average_order_value"] is None


def test_weekly_buckets_count_only_the_days_inside(db, shop):
    r = report(db, shop.site_id, grain="week")
    rows = by(r.buckets, "bucket", "currency")
    assert len(r.buckets) == 3 * 2  # every bucket for every currency, zeros included
    first = rows[(D("2026-11-02"), "EUR")]
    assert (first["first_day"], first["last_day"], first["days"]) == (
        D("2026-11-04"),
        D("2026-11-08"),
        5,
    )
    assert (first["orders"], first["revenue"]) == (2, Decimal("30.00"))  # not 2026-11-03's
    last = rows[(D("2026-11-16"), "EUR")]
    assert (last["days"], last["orders"], last["revenue"]) == (2, 3, Decimal("100.00"))
    assert rows[(D("2026-11-09"), "USD")]["revenue"] == Decimal("20.00")
    assert rows[(D("2026-11-02"), "USD")]["orders"] == 0
    assert rows[(D("2026-11-02"), "USD")]["average_order_value"] is None
    monthly = report(db, shop.site_id, grain="month")
    assert [(b["bucket"], b["currency"], b["orders"]) for b in monthly.buckets] == [
        (D("2026-11-01"), "EUR", 6),
        (D("2026-11-01"), "USD", 1),
    ]


def test_top_level_categories_and_drill_down(db, shop):
    top = by(report(db, shop.site_id).categories, "category", "currency")
    assert set(top) == {
        ("Books", "EUR"),
        ("Music", "EUR"),
        (None, "EUR"),
        (HTML_CATEGORY, "EUR"),
        ("Books", "USD"),
    }
    books = top[("Books", "EUR")]
    # "Books/Fiction", "Books > Fiction > SciFi" and "Books" are all Books.
    assert (books["revenue"], books["orders"], books["units"]) == (Decimal("43.50"), 4, 4)
    assert books["sub_categories"] == 1
    assert top[(None, "EUR")]["revenue"] == Decimal("2.00")

    r = report(db, shop.site_id, category="Books")
    under = by(r.categories, "category", "currency")
    assert set(under) == {("Books/Fiction", "EUR"), ("Books", "EUR"), ("Books/Fiction", "USD")}
    fiction = under[("Books/Fiction", "EUR")]
    assert (fiction["revenue"], fiction["sub_categories"]) == (Decimal("28.00"), 1)
    assert under[("Books", "EUR")]["revenue"] == Decimal("15.50")  # its own products
    # With a category the buckets read the item rollup: no buyers there.
    day = by(r.buckets, "bucket", "currency")[(D("2026-11-04"), "EUR")]
    assert (day["orders"], day["revenue"], day["units"]) == (3, Decimal("28.00"), 3)
    assert day["new_buyers"] is None
    assert [t["revenue"] for t in r.totals] == [Decimal("43.50"), Decimal("20.00")]


def test_top_products_per_currency_with_titles(db, shop):
    r = report(db, shop.site_id, category="Books")
    assert [(p["currency"], p["item_id"], p["revenue"]) for p in r.products] == [
        ("EUR", "sku-1", Decimal("20.00")),
        ("EUR", "sku-3", Decimal("15.50")),
        ("EUR", "sku-2", Decimal("8.00")),
        ("USD", "sku-1", Decimal("20.00")),
    ]
    first = r.products[0]
    assert (first["title"], first["category"]) == (HTML_TITLE, "Books/Fiction")
    assert r.products[2]["title"] is None  # not in the catalogue
    assert r.products[2]["category"] == "Books/Fiction/SciFi"
    assert [p["item_id"] for p in report(db, shop.site_id, top=1).products] == ["sku-4", "sku-1"]


def test_categories_come_from_the_catalogue_and_the_period(db, shop):
    with db.connect() as conn:
        known = categories(conn, shop.site_id, PERIOD)
        assert {"Books", "Books/Fiction", "Books/Fiction/SciFi", "Music/Jazz"} <= set(known)
        assert "Home/Kitchen" in known and "Home" in known  # catalogue only
        assert checked_category(conn, shop.site_id, " Books > Fiction ", PERIOD) == "Books/Fiction"
        assert checked_category(conn, shop.site_id, "", PERIOD) is None
        with pytest.raises(FilterError) as e:
            checked_category(conn, shop.site_id, "Toys", PERIOD)
        assert e.value.field == "category"
        # Music/Jazz only sold on days outside this period, and is not in the catalogue.
        with pytest.raises(FilterError):
            checked_category(conn, shop.site_id, "Music", Period(D("2026-11-01"), D("2026-11-02")))


def test_other_sites_are_not_counted(db, shop, app):
    from tracking.sites import create_site

    other, _ = create_site(db, "Other shop", ["https://other.example"])
    r = report(db, other.site_id)
    assert (r.currencies, r.buckets, r.totals, r.categories, r.products) == ([], [], [], [], [])


@pytest.mark.parametrize("grain", ["hour", "Week", "0"])
def test_bad_grain_is_named(grain):
    with pytest.raises(FilterError) as e:
        checked_grain(grain)
    assert e.value.field == "grain"


def test_category_paths():
    assert category_path("Books > Fiction / SciFi") == ("Books", "Fiction", "SciFi")
    assert category_path("") == () and category_path(None) == ()
