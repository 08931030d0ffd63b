"""Lift on the Recommendations page and ``GET /v1/reports/lift``: one report, the same numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from analytics.lift import lift_report
from analytics.schema import rollup_visitor_revenue, rollup_visitors
from tests.staff_helpers import sign_in
from tests.test_openapi import assert_documented, document, server_auth  # noqa: F401 (fixture)
from tests.test_report_recs import NOV, PERIOD

PATH = "/v1/reports/lift"
WEEK = {"from": "2026-11-01", "to": "2026-11-07"}
PAGE_WEEK = {"range": "custom", **WEEK}
SHARE = 0.1


@pytest.fixture
def app_config(app_config):
    app_config["HOLDOUT_SHARE"] = SHARE
    return app_config


def visitors(db, site_id: int) -> None:
    """300 treatment visitors (30 bought, EUR) and 30 holdout (2 bought), and some USD."""
    rows, revenue = [], []
    for group, count, buyers in (("t", 300, 30), ("h", 30, 2)):
        for n in range(count):
            visitor = f"{group}-{n}"
            bought = n < buyers
            rows.append(
                {
                    "site_id": site_id,
                    "day": NOV[1 + n % 7],
                    "visitor_id": visitor,
                    "holdout": group == "h",
                    "events": 3,
                    "orders": 1 if bought else 0,
                }
            )
            if bought:
                revenue.append(
                    {
                        "site_id": site_id,
                        "day": NOV[1 + n % 7],
                        "visitor_id": visitor,
                        "currency": "USD" if n == 0 else "EUR",
                        "revenue": Decimal(10 + n % 5),
                    }
                )
    with db.begin() as conn:
        conn.execute(rollup_visitors.insert(), rows)
        conn.execute(rollup_visitor_revenue.insert(), revenue)


@pytest.fixture
def seeded(db, site):
    visitors(db, site.site_id)
    return site


def expected(db, site, currency=None) -> dict:
    with db.connect() as conn:
        return lift_report(conn, site.site_id, PERIOD.start, PERIOD.end, SHARE, currency)


def test_the_api_answers_lift_report_for_the_period(client, seeded, db, document):  # noqa: F811
    response = client.get(PATH, query_string=WEEK, headers=server_auth(seeded))
    assert response.status_code == 200, response.get_json()
    assert_documented(document, PATH, "get", response)
    body = response.get_json()
    assert body.pop("stored") is False  # a custom range: computed when asked
    assert body.pop("as_of").endswith("Z")
    assert body == expected(db, seeded)  # floats survive JSON exactly
    assert (body["treatment"]["visitors"], body["holdout"]["visitors"]) == (300, 30)
    assert body["holdout_share"] == SHARE
    assert body["currency"] == "EUR" and body["currencies"] == ["EUR", "USD"]
    usd = client.get(PATH, query_string={**WEEK, "currency": "usd"}, headers=server_auth(seeded))
    assert usd.get_json()["revenue"]["currency"] == "USD"
    assert {k: v for k, v in usd.get_json().items() if k not in ("as_of", "stored")} == expected(
        db, seeded, "USD"
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-11-07", "to": "2026-11-01"}, "to"),
        ({"from": "2020-01-01", "to": "2026-11-01"}, "to"),
        ({"from": "soon", "to": "2026-11-01"}, "from"),
        ({**WEEK, "currency": "EURO"}, "currency"),
    ],
    ids=["to before from", "over two years", "not a date", "currency not 3 letters"],
)
def test_bad_queries_are_a_400_naming_the_field(client, seeded, document, query, field):  # noqa: F811
    response = client.get(PATH, query_string=query, headers=server_auth(seeded))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field
    assert_documented(document, PATH, "get", response)


@pytest.mark.parametrize("key", [None, "write"])
def test_only_the_server_key(client, seeded, key):
    auth = (seeded.write_key, "") if key else None
    assert client.get(PATH, query_string=WEEK, auth=auth).status_code == 401


def csv_rows(client, site, table: str, **query) -> list[dict[str, str]]:
    response = client.get(
        f"/console/{site.site_id}/recommendations",
        query_string={**PAGE_WEEK, **query, "csv": table},
    )
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_page_shows_the_verdict_and_the_apis_numbers(client, app, seeded):
    sign_in(client, app, "viewer@shop.example", {seeded.site_id: "viewer"})
    body = client.get(PATH, query_string=WEEK, headers=server_auth(seeded)).get_json()
    html = client.get(
        f"/console/{seeded.site_id}/recommendations", query_string=PAGE_WEEK
    ).get_data(as_text=True)
    verdict = body["verdict"]
    assert (verdict[:1].upper() + verdict[1:]).replace("'", "&#39;") in html
    groups = {r["Group"]: r for r in csv_rows(client, seeded, "lift_groups")}
    for name in ("treatment", "holdout"):
        assert int(groups[name]["Visitors"]) == body[name]["visitors"]
        assert int(groups[name]["Visitors who ordered"]) == body[name]["conversions"]
    conversion, revenue = csv_rows(client, seeded, "lift_tests")
    for row, result in ((conversion, body["conversion"]), (revenue, body["revenue"])):
        for column, value in (
            ("Relative lift", result["lift"]),
            ("Lift, 95% CI low", (result["lift_ci"] or [None])[0]),
            ("p-value", result["p_value"]),
        ):
            assert (float(row[column]) if row[column] else None) == (
                None if value is None else pytest.approx(value, abs=1e-6)
            ), column
    (ratio,) = csv_rows(client, seeded, "sample_ratio")
    assert float(ratio["Configured holdout share"]) == SHARE
    assert float(ratio["Observed holdout share"]) == pytest.approx(30 / 330, abs=1e-6)
    assert ratio["Mismatch"] == ("yes" if body["sample_ratio"]["mismatch"] else "no")


def test_the_page_offers_the_other_currency_and_refuses_a_bad_one(client, app, seeded):
    sign_in(client, app, "viewer@shop.example", {seeded.site_id: "viewer"})
    page = f"/console/{seeded.site_id}/recommendations"
    html = client.get(page, query_string=PAGE_WEEK).get_data(as_text=True)
    assert "currency=USD" in html
    usd = csv_rows(client, seeded, "lift_tests", currency="USD")[1]
    assert "USD" in usd["Measure"]
    response = client.get(page, query_string={**PAGE_WEEK, "currency": "<b>x"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="currency-error"' in html and "<b>x" not in html
