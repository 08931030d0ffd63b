"""The catalogue API's edges: odd ids in paths, listing and search, import messages."""

from __future__ import annotations

import pytest

from tracking.catalogue import import_items, read_items_file
from tracking.sites import create_site

ITEM = {"title": "Kind of Blue", "category": "Music/Jazz", "price": 12.5}


def auth(site) -> dict:
    return {"Authorization": f"Bearer {site.server_key}"}


def put(client, site, item_id: str, **fields):
    response = client.put(f"/v1/items/{item_id}", json={**ITEM, **fields}, headers=auth(site))
    assert response.status_code == 200, response.get_json()
    return response


def error_field(response) -> str:
    return response.get_json()["error"]["field"]


# Item ids in the path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/items/%00"),
        ("DELETE", "/v1/items/%00"),
        ("PUT", "/v1/items/%00"),
        ("GET", "/v1/items/a%00b"),
        ("GET", "/v1/items/" + "x" * 256),
        ("DELETE", "/v1/items/" + "x" * 256),
    ],
)
def test_bad_ids_in_the_path_are_a_400_naming_item_id(client, site, method, path):
    response = client.open(path, method=method, json=ITEM, headers=auth(site))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_field(response) == "item_id"


@pytest.mark.parametrize("sent", ["music%2Fjazz%2Fkob", "music/jazz/kob"])
def test_ids_with_slashes_are_addressable(client, site, sent):
    response = client.put(f"/v1/items/{sent}", json=ITEM, headers=auth(site))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["item"]["item_id"] == "music/jazz/kob"
    for path in ("/v1/items/music%2Fjazz%2Fkob", "/v1/items/music/jazz/kob"):
        read = client.get(path, headers=auth(site))
        assert read.status_code == 200 and read.get_json()["item_id"] == "music/jazz/kob"
    hidden = client.delete(f"/v1/items/{sent}", headers=auth(site))
    assert hidden.get_json() == {"success": True, "item_id": "music/jazz/kob", "hidden": True}
    assert client.get("/v1/items/music/jazz/kob", headers=auth(site)).get_json()["hidden"]


def test_bulk_imported_ids_with_slashes_can_be_read_and_hidden(client, site):
    body = {"items": [{**ITEM, "item_id": "a/b"}, {**ITEM, "item_id": "a/b/c"}]}
    assert client.post("/v1/items", json=body, headers=auth(site)).status_code == 200
    assert client.get("/v1/items/a/b", headers=auth(site)).get_json()["item_id"] == "a/b"
    assert client.get("/v1/items/a%2Fb%2Fc", headers=auth(site)).get_json()["item_id"] == "a/b/c"
    assert client.delete("/v1/items/a/b", headers=auth(site)).get_json()["item_id"] == "a/b"
    # the similar-items route of the recommendation API takes the same ids
    similar = client.get("/v1/items/a/b/c/similar", headers=auth(site))
    assert similar.status_code == 200, similar.get_json()


# Listing and search ---------------------------------------------------------------------------


def test_listing_pages_through_every_item_once(client, site):
    body = {"items": [{**ITEM, "item_id": f"sku-{i:03d}"} for i in range(7)]}
    client.post("/v1/items", json=body, headers=auth(site))
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        answer = client.get("/v1/items", query_string=query, headers=auth(site)).get_json()
        seen += [item["item_id"] for item in answer["items"]]
        pages += 1
        cursor = answer["next_cursor"]
        if cursor is None:
            break
        if pages == 1:  # writes between pages: one new before the cursor, one after
            client.put("/v1/items/sku-000a", json=ITEM, headers=auth(site))
            client.put("/v1/items/sku-999", json=ITEM, headers=auth(site))
            client.delete("/v1/items/sku-004", headers=auth(site))
    # Keyset paging: nothing repeated or skipped; a hidden item leaves, a new one ahead appears.
    assert seen == ["sku-000", "sku-001", "sku-002", "sku-003", "sku-005", "sku-006", "sku-999"]
    assert pages == 3
    default = client.get("/v1/items", headers=auth(site)).get_json()
    assert len(default["items"]) == 8 and default["next_cursor"] is None
    assert set(default["items"][0]) >= {"item_id", "title", "price", "hidden"}


def test_search_by_id_or_title_category_prefix_and_hidden(client, site):
    put(client, site, "kob", title="Kind of Blue", category="Music/Jazz")
    put(client, site, "blue-train", title="Blue Train", category="Music/Jazz/Hard bop")
    put(client, site, "mug", title="Mug 100%", category="Home/Kitchen")
    put(client, site, "mug_2", title="Other mug", category="Home")
    client.delete("/v1/items/blue-train", headers=auth(site))

    def ids(**query) -> list[str]:
        answer = client.get("/v1/items", query_string=query, headers=auth(site))
        assert answer.status_code == 200, answer.get_json()
        return [item["item_id"] for item in answer.get_json()["items"]]

    assert ids(q="BLUE") == ["kob"]
    assert ids(q="blue", include_hidden="true") == ["blue-train", "kob"]
    assert ids(q="KOB") == ["kob"]
    assert ids(q="100%") == ["mug"]  # LIKE wildcards are matched literally
    assert ids(q="g_") == ["mug_2"]
    assert ids(category="Music", include_hidden="1") == ["blue-train", "kob"]
    assert ids(category="Music/Jazz/") == []
    assert ids(category="Home") == ["mug", "mug_2"]
    assert ids(category="Mus") == []
    assert ids(category="home") == []  # categories are paths, matched as written


@pytest.mark.parametrize(
    "query, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"include_hidden": "maybe"}, "include_hidden"),
        ({"q": "a\x00b"}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"category": "Music\x00"}, "category"),
    ],
)
def test_bad_listing_parameters_are_a_400_naming_the_field(client, site, query, field):
    response = client.get("/v1/items", query_string=query, headers=auth(site))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_field(response) == field


def test_listing_needs_the_server_key(client, site):
    response = client.get("/v1/items", auth=(site.write_key, ""))
    assert response.status_code == 401 and error_field(response) == "Authorization"
    response = client.get("/v1/items")
    assert response.status_code == 401 and error_field(response) == "Authorization"


def test_listing_shows_only_the_calling_sites_items(app, client, site):
    other, other_key = create_site(app.extensions["ecrm"].engine, "Other shop", [])
    object.__setattr__(other, "server_key", other_key)
    put(client, site, "mine")
    put(client, other, "theirs")
    for caller, expected in ((site, ["mine"]), (other, ["theirs"])):
        listed = client.get("/v1/items", headers=auth(caller)).get_json()["items"]
        assert [item["item_id"] for item in listed] == expected
    # Another site's key cannot read, replace or hide this site's item either.
    assert client.get("/v1/items/mine", headers=auth(other)).status_code == 404
    assert client.delete("/v1/items/mine", headers=auth(other)).status_code == 404


# The import command's messages ----------------------------------------------------------------


def test_import_names_line_and_field_as_people_read_them(app, site, tmp_path):
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text(
        '{"item_id": "b1", "title": "Gamma", "price": "cheap"}\n'
        "[1, 2]\n"
        '{"item_id": "b3", "title": "Delta", "colour": "red"}\n'
    )
    _, errors = import_items(app.extensions["ecrm"].engine, site.site_id, read_items_file(jsonl))
    assert [str(e) for e in errors] == [
        "line 1, field price: must be a number",
        "line 2: must be a JSON object",
        "line 3, field colour: unknown field",
    ]
