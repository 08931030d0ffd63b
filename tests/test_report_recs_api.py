"""GET /v1/reports/recommendations: server key only, checked dates and placement."""

from __future__ import annotations

import pytest

from tests.conftest import ORIGIN
from tests.test_openapi import assert_documented, document, server_auth  # noqa: F401 (fixture)
from tests.test_report_recs import HTML_TITLE, seed
from tracking.sites import create_site

PATH = "/v1/reports/recommendations"
WEEK = {"from": "2026-11-01", "to": "2026-11-07"}


@pytest.fixture
def other(db):
    created, server_key = create_site(db, "Other shop", ["https://other.example"])
    object.__setattr__(created, "server_key", server_key)
    return created


@pytest.fixture
def seeded(db, site, other):
    seed(db, site.site_id, other.site_id)
    return site


def get(client, site, **query):
    return client.get(PATH, query_string=query, headers=server_auth(site))


def test_the_report_with_the_server_key(client, seeded, document):  # noqa: F811
    response = get(client, seeded, **WEEK)
    assert response.status_code == 200, response.get_json()
    assert_documented(document, PATH, "get", response)
    body = response.get_json()
    assert body["period"] == {
        "from": "2026-11-01",
        "to": "2026-11-07",
        "previous_from": "2026-10-25",
        "previous_to": "2026-10-31",
    }
    assert body["totals"]["impressions"] == 68
    assert body["previous"]["impressions"] == 10
    eur = next(e for e in body["totals"]["revenue"] if e["currency"] == "EUR")
    assert (eur["revenue"], eur["all_revenue"]) == ("44.75", "300.00")  # strings, 2 decimals
    assert body["top_shown"][0]["title"] == HTML_TITLE
    assert len(body["daily"]) == 7


def test_basic_auth_with_the_server_key_works_too(client, seeded):
    response = client.get(PATH, query_string=WEEK, auth=(seeded.server_key, ""))
    assert response.status_code == 200


def test_a_placement_narrows_the_report(client, seeded, document):  # noqa: F811
    response = get(client, seeded, placement="cart", **WEEK)
    assert response.status_code == 200
    assert_documented(document, PATH, "get", response)
    body = response.get_json()
    assert body["placement"] == "cart"
    assert (body["totals"]["served"], body["totals"]["impressions"]) == (5, 20)


def test_an_empty_placement_means_every_placement(client, seeded):
    assert get(client, seeded, placement="", **WEEK).get_json()["totals"]["impressions"] == 68


def test_another_sites_key_reads_only_that_sites_numbers(client, seeded, other):
    body = get(client, other, **WEEK).get_json()
    assert body["totals"]["impressions"] == 999
    assert [i["item_id"] for i in body["top_shown"]] == ["sku-9"]
    # Our placement is unknown to the other site: nothing about it leaks, not even a zero row.
    response = get(client, other, placement="cart", **WEEK)
    assert response.status_code == 400
    assert "cart" not in response.get_json()["error"]["reason"].split("placements:")[1]


@pytest.mark.parametrize(
    ("auth", "headers", "status"),
    [
        (None, {}, 401),
        ("write", {}, 401),
        ("bogus", {}, 401),
        ("server", {"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"}, 403),
    ],
    ids=["no key", "write key", "unknown key", "server key from a web page"],
)
def test_only_the_server_key_from_a_backend(client, seeded, document, auth, headers, status):  # noqa: F811
    key = {"write": seeded.write_key, "server": seeded.server_key, "bogus": "sk_nope"}.get(auth)
    response = client.get(PATH, query_string=WEEK, headers=headers, auth=(key, "") if key else None)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == "Authorization"
    assert_documented(document, PATH, "get", response)


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ({"from": "2026-11-07", "to": "2026-11-01"}, "to", "before the start"),
        ({"from": "2024-01-01", "to": "2026-11-01"}, "to", "longer than two years"),
        ({"from": "2026-11-01", "to": "yesterday"}, "to", ""),
        ({"from": "1 Nov", "to": "2026-11-07"}, "from", ""),
        ({"to": "2026-11-07"}, "from", ""),
        ({"from": "2026-11-01"}, "to", ""),
        ({"from": "2026-11-01", "to": "2999-01-01"}, "to", "in the future"),
        ({**WEEK, "placement": "footer"}, "placement", "unknown placement 'footer'"),
        ({**WEEK, "placement": "x" * 201}, "placement", ""),
    ],
    ids=[
        "to before from",
        "over two years",
        "to not a date",
        "from not a date",
        "no from",
        "no to",
        "future",
        "unknown placement",
        "placement too long",
    ],
)
def test_bad_queries_are_a_400_naming_the_field(
    client,
    seeded,
    document,  # noqa: F811
    query,
    field,
    words,
):
    response = get(client, seeded, **query)
    assert response.status_code == 400
    assert_documented(document, PATH, "get", response)
    error = response.get_json()["error"]
    assert error["field"] == field
    assert words in error["reason"]
