"""The owner's erasure of a customer in the console: confirmation, receipt, audit, roles."""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest
import sqlalchemy as sa

from accounts.schema import audit_log
from tests.conftest import count, store_events
from tests.staff_helpers import csrf_token, sign_in
from tests.test_data_rights import Planted
from tracking.schema import customers, events


@pytest.fixture
def person(app, site, db):
    planted = Planted(site, ["sku-1", "sku-2", "sku-3", "sku-4"])
    store_events(db, site.site_id, planted.events(3))
    return planted


def erase_path(site, user_id: str) -> str:
    return f"/console/{site.site_id}/erasure/{user_id}"


def test_the_owner_confirms_then_gets_a_receipt_and_the_audit_names_no_one(
    app, client, site, db, person
):
    sign_in(client, app, f"owner-{uuid.uuid4().hex[:6]}@example.com", {site.site_id: "owner"})
    page = client.get(f"/console/{site.site_id}/customers/{person.user_id}")
    assert page.status_code == 200
    assert erase_path(site, person.user_id) in unescape(page.get_data(as_text=True))
    path = erase_path(site, person.user_id)
    form = client.get(path)
    assert form.status_code == 200 and "Type the customer" in form.get_data(as_text=True)
    token = csrf_token(client, path)
    # A wrong confirmation: the form again, the error beside the field, nothing erased.
    wrong = client.post(path, data={"csrf_token": token, "confirm_id": "someone else"})
    assert wrong.status_code == 422
    html = wrong.get_data(as_text=True)
    assert 'id="confirm_id-error"' in html and 'value="someone else"' in html
    assert count(db, customers, customers.c.user_id == person.user_id) == 1
    # No CSRF token: refused, nothing erased.
    assert client.post(path, data={"confirm_id": person.user_id}).status_code == 400
    assert count(db, customers, customers.c.user_id == person.user_id) == 1

    done = client.post(path, data={"csrf_token": token, "confirm_id": person.user_id})
    assert done.status_code == 200, done.get_data(as_text=True)[:500]
    receipt_id = re.search(r'id="receipt-id">([0-9a-f]{32})<', done.get_data(as_text=True))
    assert receipt_id
    assert count(db, customers, customers.c.user_id == person.user_id) == 0
    assert count(db, events, events.c.anonymous_id == person.anonymous_id) == 0
    with db.connect() as conn:
        entry = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "customer.erase")
        ).one()
    assert entry.detail == {"receipt": receipt_id.group(1)}
    assert entry.site_id == site.site_id
    # The customer is gone: their pages are 404.
    assert client.get(path).status_code == 404
    assert client.get(f"/console/{site.site_id}/customers/{person.user_id}").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_below_owner_neither_sees_nor_uses_the_action(app, client, site, db, person, role):
    sign_in(client, app, f"{role}-{uuid.uuid4().hex[:6]}@example.com", {site.site_id: role})
    page = client.get(f"/console/{site.site_id}/customers/{person.user_id}")
    assert erase_path(site, person.user_id) not in unescape(page.get_data(as_text=True))
    assert client.get(erase_path(site, person.user_id)).status_code == 403
    token = csrf_token(client, f"/console/{site.site_id}/customers")
    post = client.post(
        erase_path(site, person.user_id), data={"csrf_token": token, "confirm_id": person.user_id}
    )
    assert post.status_code == 403
    assert count(db, customers, customers.c.user_id == person.user_id) == 1


def test_an_owner_of_another_site_gets_404_and_unknown_ids_too(app, client, site, db, person):
    from tracking.sites import create_site

    other, _ = create_site(db, "Other shop", [])
    sign_in(client, app, f"owner-{uuid.uuid4().hex[:6]}@example.com", {other.site_id: "owner"})
    assert client.get(erase_path(site, person.user_id)).status_code == 404
    assert client.get(erase_path(other, person.user_id)).status_code == 404
    assert client.get(erase_path(other, "x" * 300)).status_code == 404
