"""analytics.funnel on rollup rows whose answers are known (tests/sales_helpers.py), both stores."""

from __future__ import annotations

from datetime import date

import pytest

from analytics.funnel import checked_funnel_category, funnel_categories, funnel_report
from analytics.sales import FilterError
from tests.sales_helpers import HTML_CATEGORY, PERIOD, seed


@pytest.fixture
def shop(db, site):
    seed(db, site.site_id)
    return site


def test_steps_with_their_conversions_now_and_before(db, shop):
    with db.connect() as conn:
        r = funnel_report(conn, shop.site_id, PERIOD)
    assert [(s["event"], s["sessions"]) for s in r.steps] == [
        ("Product Viewed", 15),
        ("Product Added", 5),
        ("Checkout Started", 3),
        ("Order Completed", 2),
    ]
    viewed, added, checkout, ordered = r.steps
    assert viewed["from_previous"] == 1.0 and viewed["from_first"] == 1.0
    assert added["from_previous"] == round(5 / 15, 6)
    assert checkout["from_previous"] == 0.6
    assert ordered["from_previous"] == round(2 / 3, 6)
    assert ordered["from_first"] == round(2 / 15, 6)
    assert [s["previous_sessions"] for s in r.steps] == [4, 2, 0, 0]
    assert added["previous_from_first"] == 0.5
    assert ordered["previous_from_previous"] is None  # nobody reached checkout before


def test_every_day_of_the_period(db, shop):
    with db.connect() as conn:
        r = funnel_report(conn, shop.site_id, PERIOD)
    assert [d["day"] for d in r.days] == PERIOD.each_day()
    first = r.days[0]
    assert (first["viewed"], first["added"], first["checkout"], first["ordered"]) == (10, 4, 2, 1)
    assert (first["added_rate"], first["checkout_rate"], first["ordered_rate"]) == (0.4, 0.5, 0.5)
    assert first["conversion"] == 0.1
    quiet = r.days[1]
    assert quiet["viewed"] == 0 and quiet["added_rate"] is None and quiet["conversion"] is None


def test_a_top_level_category(db, shop):
    with db.connect() as conn:
        assert funnel_categories(conn, shop.site_id) == sorted(["Books", HTML_CATEGORY])
        assert checked_funnel_category(conn, shop.site_id, " Books ") == "Books"
        r = funnel_report(conn, shop.site_id, PERIOD, "Books")
        assert [s["sessions"] for s in r.steps] == [6, 2, 1, 1]
        assert r.days[0]["day"] == date(2026, 11, 4) and r.days[0]["viewed"] == 6
        with pytest.raises(FilterError) as e:
            checked_funnel_category(conn, shop.site_id, "Books/Fiction")
        assert e.value.field == "category" and "'Books'" in e.value.reason
        with pytest.raises(FilterError):
            checked_funnel_category(conn, shop.site_id, "Toys")
        assert checked_funnel_category(conn, shop.site_id, None) is None
