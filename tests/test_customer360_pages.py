"""Customer 360 in the console: the search page and the customer page, for whom they open.

The customer is test_customer360's story (fed through the collector and the ingest worker).
"""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest

from tests.conftest import store_events
from tests.staff_helpers import sign_in
from tests.test_customer360 import REC_ID, Story, tell_story


@pytest.fixture
def story(app, client, site) -> Story:
    return tell_story(app, client, site)


@pytest.fixture
def viewer(app, client, story):
    sign_in(client, app, "vera@shop.example", {story.site.site_id: "viewer"})
    return client


def text_of(response) -> str:
    """The page's visible text, tags dropped and entities decoded (for plain assertions)."""
    body = response.get_data(as_text=True)
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def search_page(client, story, **query):
    return client.get(f"/console/{story.site.site_id}/customers", query_string=query)


def customer_page(client, story, user_id="cust-42", **query):
    return client.get(f"/console/{story.site.site_id}/customers/{user_id}", query_string=query)


def test_search_finds_by_email_and_links_to_the_customer(viewer, story):
    response = search_page(viewer, story, q="ADA@example")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert f'href="/console/{story.site.site_id}/customers/cust-42"' in body
    text = text_of(response)
    assert "Ada Lovelace" in text and "email: ada@example.test" in text


@pytest.mark.parametrize(
    ("query", "found"),
    [("cust-42", True), ("lovelace", True), ("ada lo", True), ("gold", False), ("nine", False)],
)
def test_search_by_id_and_name_never_claims_nor_another_site(viewer, story, query, found):
    # "gold" is only a claim of a browser; nine@o.example a customer of another site.
    body = search_page(viewer, story, q=query).get_data(as_text=True)
    assert (f"/console/{story.site.site_id}/customers/cust-42" in body) is found
    assert "cust-99" not in body


def test_an_empty_or_short_query_shows_the_form_with_a_hint(viewer, story):
    empty = text_of(search_page(viewer, story))
    assert "at least 2 characters" in empty and "matching" not in empty
    short = search_page(viewer, story, q="a")
    assert short.status_code == 200
    assert 'id="q-error"' in short.get_data(as_text=True)
    assert "matching" not in text_of(short)


def test_search_results_are_paged(app, viewer, story):
    store_events(
        app.extensions["ecrm"].engine,
        story.site.site_id,
        [
            {
                "type": "identify",
                "messageId": str(uuid.uuid4()),
                "userId": f"kim-{i:02d}",
                "traits": {"name": f"Kim K{i:02d}"},
                "timestamp": "2026-11-20T10:00:00.000Z",
            }
            for i in range(60)
        ],
    )
    first = search_page(viewer, story, q="kim").get_data(as_text=True)
    assert first.count(f"/console/{story.site.site_id}/customers/kim-") == 50
    after = re.search(r'href="[^"]*after=([^"&]+)"', first).group(1)
    second = search_page(viewer, story, q="kim", after=unescape(after)).get_data(as_text=True)
    assert second.count(f"/console/{story.site.site_id}/customers/kim-") == 10
    mangled = search_page(viewer, story, q="kim", after="garbage!")
    assert mangled.status_code == 200
    assert "not a position from this search" in text_of(mangled)


def test_the_customer_page_tells_the_whole_story(viewer, story):
    response = customer_page(viewer, story)
    assert response.status_code == 200
    text = text_of(response)
    for expected in (
        "Ada Lovelace",  # a verified trait
        "Claims (unverified)",
        "gold",  # the claim, apart
        "phone",
        "laptop",  # stitched anonymous ids
        "o-1",
        "o-2",
        "2 × Blue mug (sku-1) at 12.50",  # a line with its catalogue title
        "Orders in EUR",
        "Orders in USD",
        "Orders credited to recommendations",
        "page: Cart",
        "https://shop.example/cart",
        "Recommendation Clicked",
        REC_ID,  # inside the collapsed details
    ):
        assert expected in text, expected
    assert "o-9" not in text and "other@o.example" not in text  # the other site's cust-42
    assert "stranger" not in text
    body = response.get_data(as_text=True)
    assert "<details>" in body  # payloads collapsed
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_activity_chart_has_its_table_and_csv(viewer, story):
    body = customer_page(viewer, story).get_data(as_text=True)
    assert 'class="chart-data"' in body and "Activity by week" in body
    response = customer_page(viewer, story, csv="activity")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0] == "Week from,Sessions,Events in them,Orders"
    assert len(lines) == 27
    totals = [sum(int(line.split(",")[i]) for line in lines[1:]) for i in (1, 2, 3)]
    assert totals == [5, 8, 2]


def test_a_bad_page_position_shows_the_newest_with_the_error(viewer, story):
    response = customer_page(
        viewer, story, events_before="12abc", sessions_before="no\x00pe", orders_before="-1"
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for name in ("events_before", "sessions_before", "orders_before"):
        assert f'id="{name}-error"' in body
    assert "Recommendation Clicked" in text_of(response)


def test_timeline_pages_link_older_and_back(app, viewer, story):
    more = [
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": str(uuid.uuid4()),
            "userId": "cust-42",
            "timestamp": f"2026-10-{day:02d}T10:00:00.000Z",
            "properties": {"product_id": "sku-1"},
        }
        for day in range(1, 30)
    ] + [
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": str(uuid.uuid4()),
            "userId": "cust-42",
            "timestamp": f"2026-09-{day:02d}T10:00:00.000Z",
            "properties": {"product_id": "sku-2"},
        }
        for day in range(1, 30)
    ]
    store_events(app.extensions["ecrm"].engine, story.site.site_id, more)
    first = customer_page(viewer, story).get_data(as_text=True)
    older = re.search(r'href="([^"]*events_before=[^"]*)"[^>]*rel="next"', first).group(1)
    second = viewer.get(unescape(older))
    assert second.status_code == 200
    text = text_of(second)
    assert "2026-09-01 10:00:00" in text and "Newest" in text
    assert "2026-10-29 10:00:00" not in text


def test_an_unknown_id_and_another_sites_customer_are_404(viewer, story):
    for user_id in ("cust-99", "nobody", "CUST-42", "cust-42%00", "x" * 300):
        response = customer_page(viewer, story, user_id=user_id)
        assert response.status_code == 404
        assert "no customer with that id" in text_of(response)


def test_ids_with_slashes_and_odd_characters_have_pages(app, viewer, story):
    odd = "shop/42 ?#%"
    store_events(
        app.extensions["ecrm"].engine,
        story.site.site_id,
        [
            {
                "type": "identify",
                "messageId": str(uuid.uuid4()),
                "userId": odd,
                "traits": {"name": "Odd Id"},
                "timestamp": "2026-11-20T10:00:00.000Z",
            }
        ],
    )
    body = search_page(viewer, story, q="odd").get_data(as_text=True)
    link = re.search(rf'href="(/console/{story.site.site_id}/customers/[^"]+)"', body).group(1)
    response = viewer.get(unescape(link))
    assert response.status_code == 200
    assert "Odd Id" in text_of(response)


def test_a_viewer_of_another_site_gets_404(app, client, story):
    sign_in(client, app, "olga@other.example", {story.other.site_id: "owner"})
    assert customer_page(client, story).status_code == 404
    assert search_page(client, story, q="ada").status_code == 404
    # ...while their own site's cust-42 is theirs to read
    mine = client.get(f"/console/{story.other.site_id}/customers/cust-42")
    assert mine.status_code == 200 and "other@o.example" in text_of(mine)


def test_signed_out_goes_to_sign_in(client, story):
    response = customer_page(client, story)
    assert response.status_code in (302, 303)
    assert "/console/sign-in" in response.headers["Location"]
