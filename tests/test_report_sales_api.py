"""GET /v1/reports/sales and /v1/reports/funnel: server key, bad input named, documented answers."""

from __future__ import annotations

import pytest

from tests.sales_helpers import HTML_CATEGORY, HTML_TITLE, seed
from tests.test_openapi import assert_documented, server_auth
from webapp.openapi.health import JSON_PATH

PERIOD = {"from": "2026-11-04", "to": "2026-11-17"}
PATHS = ("/v1/reports/sales", "/v1/reports/funnel")


@pytest.fixture
def shop(db, site):
    seed(db, site.site_id)
    return site


def get(client, site, path, **query):
    return client.get(path, query_string={**PERIOD, **query}, headers=server_auth(site))


def test_sales_numbers_per_currency(client, shop):
    response = get(client, shop, "/v1/reports/sales", grain="week")
    assert response.status_code == 200
    body = response.get_json()
    assert body["period"] == {
        "from": "2026-11-04",
        "to": "2026-11-17",
        "previous_from": "2026-10-21",
        "previous_to": "2026-11-03",
    }
    assert (body["grain"], body["category"], body["currencies"]) == ("week", None, ["EUR", "USD"])
    eur = body["totals"][0]
    assert (eur["currency"], eur["orders"], eur["revenue"]) == ("EUR", 6, "145.50")
    assert eur["average_order_value"] == "24.25"
    assert eur["previous"]["revenue"] == "10.00"
    first = body["buckets"][0]
    assert (first["bucket"], first["days"], first["currency"], first["revenue"]) == (
        "2026-11-02",
        5,
        "EUR",
        "30.00",
    )
    assert len(body["buckets"]) == 6


def test_sales_drill_down_by_category(client, shop):
    body = get(client, shop, "/v1/reports/sales", category="Books > Fiction").get_json()
    assert body["category"] == "Books/Fiction"
    assert [(c["category"], c["currency"], c["revenue"]) for c in body["categories"]] == [
        ("Books/Fiction", "EUR", "20.00"),
        ("Books/Fiction/SciFi", "EUR", "8.00"),
        ("Books/Fiction", "USD", "20.00"),
    ]
    assert body["products"][0]["title"] == HTML_TITLE  # data, as given
    assert body["totals"][0]["new_buyers"] is None
    top = get(client, shop, "/v1/reports/sales").get_json()["categories"]
    assert HTML_CATEGORY in {c["category"] for c in top}


def test_funnel_numbers(client, shop):
    body = get(client, shop, "/v1/reports/funnel").get_json()
    assert [s["sessions"] for s in body["steps"]] == [15, 5, 3, 2]
    assert body["steps"][3]["from_first"] == round(2 / 15, 6)
    assert len(body["days"]) == 14 and body["days"][0]["added_rate"] == 0.4
    books = get(client, shop, "/v1/reports/funnel", category="Books").get_json()
    assert books["category"] == "Books"
    assert [s["sessions"] for s in books["steps"]] == [6, 2, 1, 1]


@pytest.mark.parametrize("path", PATHS)
def test_answers_fit_the_document(client, shop, path):
    document = client.get(JSON_PATH).get_json()
    assert_documented(document, path, "get", get(client, shop, path))
    assert_documented(document, path, "get", get(client, shop, path, category="Nope"))
    assert_documented(document, path, "get", client.get(path, query_string=PERIOD))
    cross = client.get(
        path, query_string=PERIOD, headers={**server_auth(shop), "Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert_documented(document, path, "get", cross)


@pytest.mark.parametrize("path", PATHS)
def test_the_server_key_is_needed(client, shop, path):
    assert client.get(path, query_string=PERIOD).status_code == 401
    write_key = client.get(path, query_string=PERIOD, auth=(shop.write_key, ""))
    assert write_key.status_code == 401
    assert write_key.get_json()["error"]["field"] == "Authorization"


BAD = [
    ({"from": "2026-13-01"}, "from"),
    ({"from": ""}, "from"),
    ({"to": "2026-11-01"}, "to"),  # before from
    ({"from": "2024-01-01", "to": "2026-11-17"}, "to"),  # over two years
    ({"to": "2099-01-01"}, "to"),  # in the future
    ({"category": "Toys"}, "category"),
    ({"category": "x" * 501}, "category"),
    ({"placement": "home"}, "placement"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("query", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_input_is_a_400_naming_the_field(client, shop, path, query, field):
    response = get(client, shop, path, **query)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == field and error["reason"]


@pytest.mark.parametrize("grain", ["hour", "WEEK", "1"])
def test_bad_grain_is_a_400(client, shop, grain):
    response = get(client, shop, "/v1/reports/sales", grain=grain)
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "invalid_request",
        "field": "grain",
        "reason": "must be day, week or month",
        "message": "grain: must be day, week or month",
    }


def test_a_sub_category_is_refused_by_the_funnel(client, shop):
    response = get(client, shop, "/v1/reports/funnel", category="Books/Fiction")
    assert response.status_code == 400
    assert "top-level" in response.get_json()["error"]["reason"]


def test_another_sites_key_reads_only_its_own(client, shop, db):
    from tracking.sites import create_site

    other, key = create_site(db, "Other", ["https://other.example"])
    body = client.get(
        "/v1/reports/sales", query_string=PERIOD, headers={"Authorization": f"Bearer {key}"}
    ).get_json()
    assert body["totals"] == [] and body["categories"] == []
