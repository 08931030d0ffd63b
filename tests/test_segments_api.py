"""``GET /v1/segments/{id}/members``: the server key, pages that follow each other, 404 for
another site's or an unknown segment, 400 for bad paging; every answer as documented."""

from __future__ import annotations

import pytest

from accounts import segments
from tests.test_openapi import assert_documented, server_auth
from tests.value_helpers import DAY, score, store_snapshot
from tracking.sites import create_site
from webapp.openapi.segments import MEMBERS

PATH = "/v1/segments/{}/members"


@pytest.fixture
def saved(db, site):
    rows = [
        score(f"c{i:02d}", 5, 5 if i % 2 else 4, 10.0 + i, clv=i, p_alive=0.5) for i in range(7)
    ]
    rows += [score("z", 1, 1, 5.0)]
    store_snapshot(db, site.site_id, DAY, "EUR", rows)
    with db.begin() as conn:
        return segments.save(
            conn, site.site_id, "Champs", segments.parse({"segments": ["Champions"]})
        )


@pytest.fixture
def document(client):
    return client.get("/v1/openapi.json").get_json()


def test_pages_follow_each_other_and_count_the_whole_segment(client, site, saved, document):
    seen, cursor = [], None
    for _ in range(4):
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        answer = client.get(PATH.format(saved), query_string=query, headers=server_auth(site))
        assert answer.status_code == 200
        assert_documented(document, MEMBERS, "get", answer)
        body = answer.get_json()
        assert body["count"] == 7 and body["snapshot_day"] == DAY.isoformat()
        assert body["currency"] == "EUR" and body["name"] == "Champs"
        seen += [m["user_id"] for m in body["members"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i:02d}" for i in range(7)]
    first = client.get(PATH.format(saved), headers=server_auth(site)).get_json()["members"][0]
    assert first["segment"] == "Champions" and first["last_order_at"].endswith("Z")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
    ],
)
def test_bad_paging_is_a_400_naming_the_parameter(client, site, saved, document, query, field):
    answer = client.get(PATH.format(saved), query_string=query, headers=server_auth(site))
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == field
    assert_documented(document, MEMBERS, "get", answer)


def test_unknown_and_foreign_segments_are_404_and_the_key_is_needed(
    app, client, site, saved, db, document
):
    other, other_key = create_site(db, "Other shop", ["https://other.example"])
    for path, auth in (
        (PATH.format(saved + 1000), server_auth(site)),
        (PATH.format("abc"), server_auth(site)),
        (PATH.format(saved), {"Authorization": f"Bearer {other_key}"}),
    ):
        answer = client.get(path, headers=auth)
        assert answer.status_code == 404, path
        assert answer.get_json()["error"]["field"] == "segment_id"
        assert_documented(document, MEMBERS, "get", answer)
    answer = client.get(PATH.format(saved))
    assert answer.status_code == 401
    answer = client.get(PATH.format(saved), auth=(site.write_key, ""))
    assert answer.status_code == 401
