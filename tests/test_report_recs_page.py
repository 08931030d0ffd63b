"""The console's Recommendations page: viewers, CSV files, bad filters, the API's numbers."""

from __future__ import annotations

import csv
import io

import pytest

from tests.staff_helpers import sign_in
from tests.test_report_recs import HTML_TITLE, seed
from tests.test_report_recs_api import get as api_get
from tracking.sites import create_site

WEEK = {"range": "custom", "from": "2026-11-01", "to": "2026-11-07"}
API_WEEK = {"from": "2026-11-01", "to": "2026-11-07"}


@pytest.fixture
def other(db):
    created, server_key = create_site(db, "Other shop", ["https://other.example"])
    object.__setattr__(created, "server_key", server_key)
    return created


@pytest.fixture
def seeded(db, site, other):
    seed(db, site.site_id, other.site_id)
    return site


@pytest.fixture
def viewer(client, app, seeded):
    sign_in(client, app, "viewer@shop.example", {seeded.site_id: "viewer"})
    return client


def path(site) -> str:
    return f"/console/{site.site_id}/recommendations"


def rows_of(client, site, table: str, **query) -> list[dict[str, str]]:
    response = client.get(path(site), query_string={**WEEK, **query, "csv": table})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_a_viewer_sees_the_page_with_every_section(viewer, seeded):
    response = viewer.get(path(seeded), query_string=WEEK)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for section in (
        "daily",
        "ctr",
        "revenue",
        "daily_revenue",
        "groups",
        "breakdown",
        "top_shown",
        "top_clicked",
        "coverage",
    ):
        assert f'id="{section}"' in html, section
    assert "Attributed revenue (EUR)" in html and "Attributed revenue (USD)" in html
    # An item title holding HTML is text: escaped in the table, never markup.
    assert HTML_TITLE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_signed_out_is_sent_to_sign_in_and_other_sites_are_404(client, app, seeded, other):
    assert client.get(path(seeded)).status_code == 302
    sign_in(client, app, "viewer@shop.example", {seeded.site_id: "viewer"})
    assert client.get(path(other)).status_code == 404


def test_csv_of_the_daily_table_is_exactly_its_rows(viewer, seeded):
    rows = rows_of(viewer, seeded, "daily")
    assert [r["Day"] for r in rows] == [f"2026-11-0{d}" for d in range(1, 8)]
    first = rows[0]
    assert (first["Answers served"], first["Impressions"], first["Clicks"]) == ("12", "48", "5")
    assert rows[1]["CTR"] == ""  # no impressions that day: no rate, not 0


def test_money_is_per_currency_never_summed(viewer, seeded):
    revenue = {r["Currency"]: r for r in rows_of(viewer, seeded, "revenue")}
    assert set(revenue) == {"EUR", "GBP", "USD"}
    assert revenue["EUR"]["Attributed revenue"] == "44.75"
    assert revenue["USD"]["Attributed revenue"] == "20.00"
    assert revenue["EUR"]["Attributed, previous period"] == "7.00"
    day = rows_of(viewer, seeded, "daily_revenue")[0]
    assert day["Attributed revenue (EUR)"] == "35.50"
    assert day["Attributed revenue (USD)"] == "20.00"
    assert "55.50" not in viewer.get(path(seeded), query_string=WEEK).get_data(as_text=True)


def test_page_csv_and_api_json_give_the_same_numbers(viewer, seeded):
    body = api_get(viewer, seeded, **API_WEEK).get_json()
    daily = rows_of(viewer, seeded, "daily")
    assert len(daily) == len(body["daily"])
    for row, day in zip(daily, body["daily"], strict=True):
        assert row["Day"] == day["day"]
        assert int(row["Answers served"]) == day["served"]
        assert int(row["Impressions"]) == day["impressions"]
        assert int(row["Clicks"]) == day["clicks"]
        assert int(row["Added to cart after a click"]) == day["adds_after_click"]
        assert (float(row["CTR"]) if row["CTR"] else None) == (
            pytest.approx(day["ctr"], abs=1e-6) if day["ctr"] is not None else None
        )
    breakdown = rows_of(viewer, seeded, "breakdown")
    assert [
        (r["Placement"], r["Model version"], r["Source"], r["Group"], int(r["Impressions"]))
        for r in breakdown
    ] == [
        (b["placement"], b["model_version"], b["source"], b["group"], b["impressions"])
        for b in body["breakdown"]
    ]
    for row, api in zip(breakdown, body["breakdown"], strict=True):
        revenue = {e["currency"]: e["revenue"] for e in api["revenue"]}
        for currency in body["currencies"]:
            assert row[f"Attributed revenue ({currency})"] == revenue.get(currency, "0.00")
    revenue = rows_of(viewer, seeded, "revenue")
    assert [(r["Currency"], r["Attributed revenue"], r["All revenue"]) for r in revenue] == [
        (e["currency"], e["revenue"], e["all_revenue"]) for e in body["totals"]["revenue"]
    ]
    shown = rows_of(viewer, seeded, "top_shown")
    assert [(r["Item id"], int(r["Impressions"])) for r in shown] == [
        (i["item_id"], i["impressions"]) for i in body["top_shown"]
    ]
    assert shown[0]["Title"] == HTML_TITLE  # the file holds the title as the shop wrote it
    (coverage,) = rows_of(viewer, seeded, "coverage")
    assert int(coverage["Items shown"]) == body["coverage"]["items_shown"]
    assert float(coverage["Coverage"]) == pytest.approx(body["coverage"]["coverage"], abs=1e-6)


def test_the_placement_filter_matches_the_apis(viewer, seeded):
    body = api_get(viewer, seeded, placement="cart", **API_WEEK).get_json()
    rows = rows_of(viewer, seeded, "daily", placement="cart")
    assert [int(r["Impressions"]) for r in rows] == [d["impressions"] for d in body["daily"]]
    html = viewer.get(path(seeded), query_string={**WEEK, "placement": "cart"}).get_data(
        as_text=True
    )
    assert '<option value="cart" selected>' in html


@pytest.mark.parametrize(
    ("query", "field_id", "words"),
    [
        (
            {"range": "custom", "from": "2026-11-07", "to": "2026-11-01"},
            "period-to-error",
            "before the start",
        ),
        (
            {"range": "custom", "from": "2026-11-01", "to": "someday"},
            "period-to-error",
            "is not a date",
        ),
        (
            {"range": "custom", "from": "2020-01-01", "to": "2026-11-01"},
            "period-to-error",
            "longer than two years",
        ),
        ({**WEEK, "placement": "footer"}, "placement-error", "unknown placement"),
    ],
    ids=["to before from", "not a date", "over two years", "unknown placement"],
)
def test_bad_filters_show_an_error_beside_the_field(viewer, seeded, query, field_id, words):
    response = viewer.get(path(seeded), query_string=query)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'id="{field_id}"' in html
    start = html.index(f'id="{field_id}"')
    assert words in html[start : start + 300]


def test_an_unknown_csv_table_is_a_404(viewer, seeded):
    assert viewer.get(path(seeded), query_string={**WEEK, "csv": "nope"}).status_code == 404
