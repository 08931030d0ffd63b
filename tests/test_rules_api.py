"""GET/PUT/DELETE /v1/rules: server key only, bodies checked (400 naming the field), audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from accounts.schema import audit_log
from tests.test_api_declarations import DOCUMENT
from tracking.catalogue import upsert_items, validate_item


def bearer(site) -> dict:
    return {"Authorization": f"Bearer {site.server_key}"}


@pytest.fixture
def shop(db, site):
    rows = [
        {"item_id": f"sku-000{i}", "title": f"Item {i}", "category": "Home/Kitchen", "price": 10}
        for i in range(1, 6)
    ]
    upsert_items(db, site.site_id, [validate_item(r) for r in rows])
    return site


def audit_rows(db, site_id):
    with db.connect() as conn:
        return conn.execute(
            sa.select(audit_log).where(audit_log.c.site_id == site_id).order_by(audit_log.c.id)
        ).all()


def test_only_the_server_key_reads_and_writes_rules(client, shop):
    assert client.get("/v1/rules").status_code == 401
    assert client.get("/v1/rules", auth=(shop.write_key, "")).status_code == 401
    r = client.put("/v1/rules/home", json={}, auth=(shop.write_key, ""))
    assert r.status_code == 401 and r.get_json()["error"]["field"] == "Authorization"
    from_a_page = client.get(
        "/v1/rules", headers={**bearer(shop), "Origin": "https://evil.example"}
    )
    assert from_a_page.status_code == 403
    assert client.get("/v1/rules", headers=bearer(shop)).status_code == 200


def test_put_get_delete_round_trip_with_versions_and_audit(client, db, shop):
    empty = client.get("/v1/rules", headers=bearer(shop)).get_json()
    assert empty["version"] == 0 and empty["placements"] == {} and empty["updated"] == {}
    assert empty["default"]["exclude_purchased"] is True
    body = {"max_price": 50, "pinned": ["sku-0001"], "exclude_categories": ["Garden"]}
    r = client.put("/v1/rules/home", json=body, headers=bearer(shop))
    assert r.status_code == 200, r.get_json()
    written = r.get_json()
    assert written["version"] == 1 and written["placement"] == "home"
    assert written["rules"]["max_price"] == 50 and written["rules"]["pinned"] == ["sku-0001"]
    assert written["warnings"] == ["exclude_categories: no item is in category 'Garden' (yet)"]
    r = client.put("/v1/rules/default", json={"max_per_category": 2}, headers=bearer(shop))
    assert r.status_code == 200 and r.get_json()["version"] == 2
    book = client.get("/v1/rules", headers=bearer(shop)).get_json()
    assert book["version"] == 2 and list(book["placements"]) == ["home"]
    assert book["default"]["max_per_category"] == 2
    assert book["updated"]["home"]["by"] == "api" and book["updated"]["default"]["version"] == 2
    r = client.delete("/v1/rules/home", headers=bearer(shop))
    assert r.status_code == 200 and r.get_json()["version"] == 3
    r = client.delete("/v1/rules/home", headers=bearer(shop))
    assert r.status_code == 404 and r.get_json()["error"]["field"] == "placement"
    entries = audit_rows(db, shop.site_id)
    assert [e.action for e in entries] == ["rules.update"] * 3
    assert [e.detail for e in entries] == [
        {"placement": "home", "version": 1, "source": "api"},
        {"placement": "default", "version": 2, "source": "api"},
        {"placement": "home", "version": 3, "source": "api", "removed": True},
    ]
    assert all(e.staff_id is None for e in entries)


BAD = [
    ({"min_price": -1}, "body.min_price"),
    ({"min_price": 30, "max_price": 10}, "body.max_price"),
    ({"pinned": ["no-such-item"]}, "body.pinned"),
    ({"boosts": {"no-such-item": 2}}, "body.boosts"),
    ({"boosts": {"sku-0001": -2}}, "body.boosts.sku-0001"),
    (
        {"campaigns": [{"pinned": ["sku-0001"], "starts": "2026-12-10", "ends": "2026-12-01"}]},
        "body.campaigns[0].ends",
    ),
    ({"campaigns": [{"pinned": ["sku-0001"], "starts": "2026-13-40"}]}, "body.campaigns[0].starts"),
    ({"campaigns": [{"pinned": ["nope"]}]}, "body.campaigns[0].pinned"),
    ({"max_per_category": "3"}, "body.max_per_category"),
    ({"colour": "red"}, "body.colour"),
    (["not", "an", "object"], "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_bodies_are_a_400_naming_the_field_and_store_nothing(client, db, shop, body, field):
    r = client.put("/v1/rules/home", json=body, headers=bearer(shop))
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["field"] == field
    assert client.get("/v1/rules", headers=bearer(shop)).get_json()["version"] == 0
    assert audit_rows(db, shop.site_id) == []


def test_bad_placements_and_bodies_that_are_not_json(client, shop):
    r = client.put("/v1/rules/a%20b", json={}, headers=bearer(shop))
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "placement"
    r = client.put("/v1/rules/" + "p" * 65, json={}, headers=bearer(shop))
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "placement"
    r = client.put(
        "/v1/rules/home",
        data="{nope",
        headers={**bearer(shop), "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "body"


def test_the_documented_example_is_accepted_and_the_operations_declared(client, shop):
    operations = DOCUMENT["paths"]["/v1/rules/{placement}"]
    assert set(operations) == {"put", "delete"} and "get" in DOCUMENT["paths"]["/v1/rules"]
    put = operations["put"]
    assert put["security"] == [{"serverKey": []}, {"serverKeyBearer": []}]
    assert "curl" in put["x-codeSamples"][0]["source"]
    example = put["requestBody"]["content"]["application/json"]["example"]
    r = client.put("/v1/rules/home", json=example, headers=bearer(shop))
    assert r.status_code == 200, r.get_json()
    documented = put["responses"]["200"]["content"]["application/json"]["example"]["rules"]
    assert r.get_json()["rules"] == documented
