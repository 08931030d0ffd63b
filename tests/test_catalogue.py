"""The catalogue API (server key) and the CSV / JSON Lines import command."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tracking.schema import items

ITEM = {
    "title": "Kind of Blue",
    "category": "Music/Jazz",
    "price": 12.99,
    "currency": "eur",
    "url": "https://shop.example/p/kob",
    "image_url": "https://shop.example/i/kob.jpg",
    "in_stock": True,
    "active": True,
    "attributes": {"artist": "Miles Davis", "year": 1959},
}


def auth(site):
    return {"Authorization": f"Bearer {site.server_key}"}


def test_put_get_delete(client, site, db):
    response = client.put("/v1/items/kob", json=ITEM, headers=auth(site))
    assert response.status_code == 200, response.get_json()
    item = response.get_json()["item"]
    assert item["currency"] == "EUR" and item["price"] == 12.99 and item["hidden"] is False
    assert client.get("/v1/items/kob", headers=auth(site)).get_json()["title"] == "Kind of Blue"
    assert client.delete("/v1/items/kob", headers=auth(site)).get_json()["hidden"] is True
    assert client.get("/v1/items/kob", headers=auth(site)).get_json()["hidden"] is True
    # Upserting again brings a hidden item back.
    client.put("/v1/items/kob", json=ITEM, headers=auth(site))
    assert client.get("/v1/items/kob", headers=auth(site)).get_json()["hidden"] is False


def test_bulk_upsert(client, site, db):
    batch = [{**ITEM, "item_id": f"sku-{i}", "price": i} for i in range(1000)]
    response = client.post("/v1/items", json={"items": batch}, headers=auth(site))
    assert response.get_json() == {"success": True, "upserted": 1000}
    batch[0]["title"] = "Renamed"
    client.post("/v1/items", json={"items": batch[:1]}, headers=auth(site))
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(items)).scalar() == 1000
        title = conn.execute(sa.select(items.c.title).where(items.c.item_id == "sku-0")).scalar()
    assert title == "Renamed"


@pytest.mark.parametrize(
    "body,status,field",
    [
        ({**ITEM, "price": "cheap"}, 422, "body.price"),
        ({**ITEM, "price": -1}, 422, "body.price"),
        # Under 1e12, but 1e12 once rounded to cents: Numeric(14, 2) cannot hold it.
        ({**ITEM, "price": 999999999999.9999}, 422, "body.price"),
        ({**ITEM, "price": "999999999999.999"}, 422, "body.price"),
        ({**ITEM, "currency": "EURO"}, 422, "body.currency"),
        ({**ITEM, "title": ""}, 422, "body.title"),
        ({**ITEM, "url": "javascript:alert(1)"}, 422, "body.url"),
        ({**ITEM, "in_stock": "maybe"}, 422, "body.in_stock"),
        ({**ITEM, "attributes": [1]}, 422, "body.attributes"),
        ({**ITEM, "colour": "red"}, 422, "body.colour"),
        ({**ITEM, "item_id": "other"}, 422, "body.item_id"),
        ([ITEM], 422, "body"),
    ],
)
def test_bad_items(client, site, body, status, field):
    response = client.put("/v1/items/kob", json=body, headers=auth(site))
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field


def test_bulk_limits_and_errors(client, site):
    too_many = [{**ITEM, "item_id": f"s{i}"} for i in range(1001)]
    response = client.post("/v1/items", json={"items": too_many}, headers=auth(site))
    assert response.status_code == 413 and response.get_json()["error"]["field"] == "items"
    bad = [{**ITEM, "item_id": "a"}, {**ITEM, "item_id": "b", "price": "x"}]
    response = client.post("/v1/items", json={"items": bad}, headers=auth(site))
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "items[1].price"
    response = client.post(
        "/v1/items", data="{", headers={**auth(site), "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "body"


def test_catalogue_needs_the_server_key(client, site):
    assert client.put("/v1/items/kob", json=ITEM).status_code == 401
    public = {"Authorization": f"Bearer {site.write_key}"}
    response = client.put("/v1/items/kob", json=ITEM, headers=public)
    assert response.status_code == 401
    assert response.get_json()["error"]["field"] == "Authorization"
    assert client.delete("/v1/items/none", headers=auth(site)).status_code == 404


def test_import_csv_and_jsonl(runner, site, db, tmp_path):
    csv_file = tmp_path / "items.csv"
    csv_file.write_text(
        "item_id,title,category,price,currency,in_stock,attributes\n"
        'a1,Alpha,Books/Crime,5.50,EUR,true,"{""pages"": 320}"\n'
        "a2,Beta,Books/Crime,7,EUR,false,\n"
        "a3,,Books/Crime,7,EUR,true,\n"
    )
    result = runner.invoke(args=["items", "import", str(csv_file), "--site", site.write_key])
    assert "imported 2 items, skipped 1" in result.output
    assert "skipped line 4, field title: required" in result.output
    assert result.exit_code == 1
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text(
        '{"item_id": "b1", "title": "Gamma", "price": 3}\n\n{"item_id": "b2", "title": "D"}\n'
    )
    result = runner.invoke(args=["items", "import", str(jsonl), "--site", site.write_key])
    assert result.exit_code == 0 and "imported 2 items" in result.output
    with db.connect() as conn:
        rows = {r.item_id: r for r in conn.execute(sa.select(items))}
    assert set(rows) == {"a1", "a2", "b1", "b2"}
    assert rows["a1"].attributes == {"pages": 320} and rows["a2"].in_stock is False


def test_import_counts_in_the_singular_and_the_plural(runner, site, tmp_path):
    one = tmp_path / "one.jsonl"
    one.write_text('{"item_id": "c1", "title": "Solo", "price": 3}\n')
    result = runner.invoke(args=["items", "import", str(one), "--site", site.write_key])
    assert result.exit_code == 0 and "imported 1 item, skipped 0 lines" in result.output
    two_bad = tmp_path / "bad.jsonl"
    two_bad.write_text('{"item_id": "c2"}\n{"item_id": "c3", "title": "T"}\n')
    result = runner.invoke(args=["items", "import", str(two_bad), "--site", site.write_key])
    assert "imported 1 item, skipped 1 line" in result.output
