"""The shop stays in step: portal changes and preference changes queue signed webhooks."""

from __future__ import annotations

import json

import sqlalchemy as sa

from accounts import preferences, privacy
from accounts.messaging_schema import webhook_deliveries
from accounts.webhooks import set_endpoint
from tests.portal_helpers import add_customer, csrf_token, enter
from tests.test_portal_pages import ADDRESS


def _events(db) -> list[tuple[str, dict]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(webhook_deliveries).order_by(webhook_deliveries.c.id)).all()
    return [(row.event_type, json.loads(row.body)["data"]) for row in rows]


def _post(client, path, data, form_path=None):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, form_path or path)})


def test_portal_changes_reach_the_shop_as_webhooks(client, site, db):
    set_endpoint(db, site.site_id, "http://127.0.0.1:9/hooks", allow_private=True)
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    enter(client, site, "c1")
    assert (
        _post(client, "/account/profile", {"name": "Kim", "phone": "", "birthday": ""}).status_code
        == 303
    )
    assert _post(client, "/account/addresses/new", ADDRESS).status_code == 303
    ((kind, created),) = [e for e in _events(db) if e[0] == "address.created"]
    address_id = created["address"]["address_id"]
    edit = f"/account/addresses/{address_id}/edit"
    assert _post(client, edit, {**ADDRESS, "city": "Busan"}).status_code == 303
    delete = f"/account/addresses/{address_id}/delete"
    assert _post(client, delete, {}, form_path="/account/addresses").status_code == 303

    events = _events(db)
    assert [e[0] for e in events] == [
        "customer.updated",
        "address.created",
        "address.updated",
        "address.deleted",
    ]
    assert events[0][1]["user_id"] == "c1" and events[0][1]["name"] == "Kim"
    assert events[2][1]["address"]["city"] == "Busan"
    assert events[3][1] == {"user_id": "c1", "address": {"address_id": address_id}}


def test_no_endpoint_no_webhook(client, site, db):
    add_customer(db, site.site_id, "c1")
    enter(client, site, "c1")
    assert (
        _post(client, "/account/profile", {"name": "Kim", "phone": "", "birthday": ""}).status_code
        == 303
    )
    assert _events(db) == []


def test_preference_and_personalisation_changes_queue_preferences_updated(db, site):
    set_endpoint(db, site.site_id, "http://127.0.0.1:9/hooks", allow_private=True)
    with db.begin() as conn:
        preferences.set_preferences(
            conn,
            site.site_id,
            "c1",
            {"email:offers": True},
            source="portal",
            wording="Offers by email",
        )
        # The same choice again changes nothing and tells the shop nothing.
        preferences.set_preferences(
            conn,
            site.site_id,
            "c1",
            {"email:offers": True},
            source="portal",
            wording="Offers by email",
        )
        privacy.set_personalisation(
            conn, site.site_id, "c1", False, source="portal", wording="Personalise my shop"
        )
    events = _events(db)
    assert [e[0] for e in events] == ["preferences.updated", "preferences.updated"]
    assert events[0][1]["preferences"]["email:offers"] is True
    assert events[1][1] == {"user_id": "c1", "personalisation": False, "source": "portal"}
