"""Delete my account from the portal, and the shop's customer.deleted notice from every erasure.

The portal flow: what goes, a code to the email on file, a confirm form (wrong, expired, dead
and throttled codes are form errors), erasure as the console and the API do it, the session
ended, a receipt that names no one. The notice: queued once by every path (portal, console,
API), delivered signed to a real local receiver, and without the person's id once delivered
or given up.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts import portal_schema, webhooks
from accounts.messaging_schema import webhook_deliveries
from accounts.portal_schema import portal_codes
from accounts.rights_schema import erasure_receipts
from accounts.webhook_delivery import Deliverer, DeliverySettings
from tests.conftest import count, store_events
from tests.portal_helpers import add_customer, csrf_token, enter, outbox_rows
from tests.staff_helpers import sign_in as staff_sign_in
from tests.test_data_rights import Planted, auth
from tests.test_portal_pages import last_code, post
from tests.test_webhooks import Receiver
from tracking.schema import customers

EMAIL = "dana@example.com"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def dana(client, site, db):
    """Customer "dana" with an email on file, signed in from the shop (in Korean)."""
    add_customer(db, site.site_id, "dana", email=EMAIL, name="Dana Marker")
    enter(client, site, "dana", return_url="https://shop.example/account?who=dana")
    return "dana"


def notices(db) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(webhook_deliveries)
            .where(webhook_deliveries.c.event_type == "customer.deleted")
            .order_by(webhook_deliveries.c.id)
        ).mappings()
        return [dict(r) for r in rows]


def ask_delete_code(client):
    return post(client, "/account/delete", {}, form_path="/account/delete")


def test_a_customer_deletes_their_account_with_a_code(client, site, db, dana, receiver):
    webhooks.set_endpoint(db, site.site_id, receiver.url, allow_private=True)
    page = client.get("/account/delete")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and EMAIL in html
    assert "Your orders stay" in html and "accounting" in html
    assert "/account/delete" in client.get("/account/").get_data(as_text=True)

    sent = ask_delete_code(client)
    assert sent.status_code == 303 and sent.headers["Location"] == "/account/delete/confirm"
    (mail,) = outbox_rows(db, EMAIL)
    assert mail["template"] == "delete_account_code" and mail["user_id"] == "dana"
    code = last_code(db, EMAIL)
    with db.connect() as conn:
        stored = conn.execute(sa.select(portal_codes)).mappings().one()
    assert stored["purpose"] == "delete_account" and code not in str(dict(stored))

    # A wrong code: the form again with the error beside the field; nothing erased.
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = post(client, "/account/delete/confirm", {"code": wrong})
    assert response.status_code == 400
    assert 'id="code-error"' in response.get_data(as_text=True)
    assert count(db, customers, customers.c.user_id == "dana") == 1
    # Without the CSRF token: refused.
    assert client.post("/account/delete/confirm", data={"code": code}).status_code == 400
    assert count(db, customers, customers.c.user_id == "dana") == 1

    done = post(client, "/account/delete/confirm", {"code": code})
    assert done.status_code == 303 and done.headers["Location"] == "/account/deleted"
    assert "ecrm_account=;" in done.headers["Set-Cookie"]  # the cookie is dropped
    assert count(db, customers, customers.c.user_id == "dana") == 0
    receipt_page = client.get("/account/deleted")
    html = receipt_page.get_data(as_text=True)
    assert receipt_page.status_code == 200
    receipt_id = re.search(r'id="receipt-id">([0-9a-f]{32})<', html).group(1)
    for personal in ("dana", "Dana", EMAIL, "who="):
        assert personal not in html
    assert 'href="https://shop.example/"' in html  # the shop's origin, not its return URL
    with db.connect() as conn:
        receipt = conn.execute(sa.select(erasure_receipts)).mappings().one()
    assert receipt["receipt_id"] == receipt_id and receipt["requested_by"] == "portal"
    assert receipt["counts"]["customers"] == 1
    # Signed out: the account's pages lead to sign-in.
    assert client.get("/account/").status_code == 302
    assert client.get("/account/delete").status_code == 302

    # The shop hears of it once, with the user id, the receipt and when; nothing more.
    (notice,) = notices(db)
    data = json.loads(notice["body"])["data"]
    assert set(data) == {"user_id", "receipt_id", "erased_at"}
    assert data["user_id"] == "dana" and data["receipt_id"] == receipt_id
    assert Deliverer(db, DeliverySettings(timeout=5.0)).run_once() == 1
    (request,) = receiver.requests
    assert request["headers"]["Ecrm-Event-Type"] == "customer.deleted"
    assert json.loads(request["body"])["data"]["user_id"] == "dana"
    endpoint = webhooks.get_endpoint(db, site.site_id)
    signature = request["headers"][webhooks.SIGNATURE_HEADER]
    assert webhooks.verify_signature(endpoint.secret, signature, request["body"])
    # Delivered: the stored notice keeps status, attempts and times, not the id.
    (kept,) = notices(db)
    assert kept["status"] == "delivered" and kept["attempts"] == 1 and kept["delivered_at"]
    assert kept["user_id"] is None and "dana" not in kept["body"]
    assert json.loads(kept["body"])["data"] == {
        "receipt_id": receipt_id,
        "erased_at": data["erased_at"],
    }


def test_the_pages_speak_korean(app, client, site, db):
    add_customer(db, site.site_id, "kim", email="kim@example.com")
    enter(client, site, "kim", locale="ko")
    html = client.get("/account/delete").get_data(as_text=True)
    assert "계정 삭제" in html and "Deleting your account" not in html
    ask_delete_code(client)
    assert "코드" in client.get("/account/delete/confirm").get_data(as_text=True)
    assert outbox_rows(db, "kim@example.com")[0]["subject"].endswith("계정 삭제 확인 코드")
    done = post(client, "/account/delete/confirm", {"code": last_code(db, "kim@example.com")})
    assert done.status_code == 303
    assert "영수증" in client.get("/account/deleted").get_data(as_text=True)


def test_without_an_email_on_file_the_page_says_how_to_go_on(client, site, db):
    add_customer(db, site.site_id, "noemail", name="No Mail")
    enter(client, site, "noemail")
    html = client.get("/account/delete").get_data(as_text=True)
    assert "We have no email address for you" in html and "ask the shop" in html
    assert 'action="/account/delete"' not in html  # no button that cannot work
    refused = ask_delete_code(client)
    assert refused.status_code == 400 and 'id="confirm-error"' in refused.get_data(as_text=True)
    assert outbox_rows(db) == []
    assert client.get("/account/delete/confirm").status_code == 302  # no code was sent
    assert count(db, customers, customers.c.user_id == "noemail") == 1


def test_an_expired_or_dead_code_is_a_form_error(client, site, db, dana):
    ask_delete_code(client)
    code = last_code(db, EMAIL)
    with db.begin() as conn:
        conn.execute(portal_codes.update().values(expires_at=datetime.now(UTC) - timedelta(1)))
    response = post(client, "/account/delete/confirm", {"code": code})
    assert response.status_code == 400 and "no longer be used" in response.get_data(as_text=True)
    # A new code, then five wrong tries: dead, even for the right code.
    ask_delete_code(client)
    code = last_code(db, EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert post(client, "/account/delete/confirm", {"code": wrong}).status_code == 400
    response = post(client, "/account/delete/confirm", {"code": code})
    assert response.status_code == 400 and "no longer be used" in response.get_data(as_text=True)
    assert count(db, customers, customers.c.user_id == "dana") == 1


def test_a_sign_in_code_does_not_delete(client, site, db, dana):
    ask_delete_code(client)
    with db.begin() as conn:
        from accounts import codes

        sign_in_code = codes.issue_code(
            conn, client.application.config["SECRET_KEY"], site.site_id, "sign_in", EMAIL, "dana"
        )
    response = post(client, "/account/delete/confirm", {"code": sign_in_code})
    assert response.status_code == 400
    assert count(db, customers, customers.c.user_id == "dana") == 1


def test_codes_and_tries_are_throttled(app, client, site, db, dana):
    app.config["PORTAL_CODE_LIMIT_ADDRESS"] = "2 per hour"
    app.config["PORTAL_TRY_LIMIT_CLIENT"] = "3 per 15 minutes"
    assert ask_delete_code(client).status_code == 303
    assert ask_delete_code(client).status_code == 303
    third = ask_delete_code(client)
    assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0
    assert 'id="confirm-error"' in third.get_data(as_text=True)  # the form, with the reason
    assert len(outbox_rows(db, EMAIL)) == 2
    for _ in range(3):
        assert post(client, "/account/delete/confirm", {"code": "000000x"}).status_code == 400
    response = post(client, "/account/delete/confirm", {"code": last_code(db, EMAIL)})
    assert response.status_code == 429 and 'id="code-error"' in response.get_data(as_text=True)
    assert count(db, customers, customers.c.user_id == "dana") == 1


def test_another_sessions_note_does_not_confirm(app, client, site, db, dana):
    """A code asked for in one session is entered in that session only."""
    ask_delete_code(client)
    code = last_code(db, EMAIL)
    other = app.test_client()
    enter(other, site, "dana")
    assert other.get("/account/delete/confirm").status_code == 302
    response = other.post(
        "/account/delete/confirm",
        data={"code": code, "csrf_token": csrf_token(other, "/account/delete")},
    )
    assert response.status_code == 302 and count(db, customers, customers.c.user_id == "dana")


def test_the_console_and_the_api_queue_the_notice_once(app, client, site, db, receiver):
    webhooks.set_endpoint(db, site.site_id, receiver.url, allow_private=True)
    by_api, by_staff = (Planted(site, ["sku-1", "sku-2", "sku-3", "sku-4"]) for _ in range(2))
    for person in (by_api, by_staff):
        store_events(db, site.site_id, person.events(2))
    headers = auth(site.server_key)
    assert client.delete(f"/v1/customers/{by_api.user_id}", headers=headers).status_code == 200
    # Asking again answers the same receipt and tells the shop nothing new.
    assert client.delete(f"/v1/customers/{by_api.user_id}", headers=headers).status_code == 200
    staff = app.test_client()
    staff_sign_in(staff, app, f"owner-{uuid.uuid4().hex[:6]}@example.com", {site.site_id: "owner"})
    path = f"/console/{site.site_id}/erasure/{by_staff.user_id}"
    done = staff.post(
        path, data={"csrf_token": csrf_token(staff, path), "confirm_id": by_staff.user_id}
    )
    assert done.status_code == 200
    found = notices(db)
    assert [n["user_id"] for n in found] == [by_api.user_id, by_staff.user_id]
    # The receiver fails every attempt: once given up, the notice forgets the id too.
    receiver.statuses = [500] * 10
    deliverer = Deliverer(db, DeliverySettings(timeout=5.0, max_attempts=2, retry_seconds=0.0))
    assert deliverer.run_once() == 2
    pending = notices(db)
    assert [n["status"] for n in pending] == ["pending", "pending"]
    assert [n["user_id"] for n in pending] == [by_api.user_id, by_staff.user_id]  # on its way
    with db.begin() as conn:
        conn.execute(webhook_deliveries.update().values(next_attempt_at=datetime.now(UTC)))
    assert deliverer.run_once() == 2
    for notice in notices(db):
        assert notice["status"] == "failed" and notice["attempts"] == 2
        assert notice["user_id"] is None and "rights-user" not in notice["body"]


def test_migration_207_lets_old_stores_keep_delete_codes(db):
    """A store made before 207 refuses the purpose; after the migration it takes it."""
    old = "purpose IN ('sign_in', 'email_change')"
    with db.begin() as conn:
        if db.dialect.name == "sqlite":
            made = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = 'portal_codes'")
            ).scalar()
            conn.execute(sa.text("DROP TABLE portal_codes"))
            conn.execute(sa.text(made.replace(portal_schema.PURPOSE_CHECK, old)))
        else:
            conn.execute(sa.text("ALTER TABLE portal_codes DROP CONSTRAINT ck_portal_code_purpose"))
            conn.execute(
                sa.text(
                    f"ALTER TABLE portal_codes ADD CONSTRAINT ck_portal_code_purpose CHECK ({old})"
                )
            )
    row = {
        "site_id": 1,
        "purpose": "delete_account",
        "email": "a@example.com",
        "user_id": "a",
        "code_digest": "0" * 64,
        "created_at": datetime.now(UTC),
        "expires_at": datetime.now(UTC),
        "attempts": 0,
    }
    with pytest.raises(sa.exc.IntegrityError), db.begin() as conn:
        conn.execute(portal_codes.insert(), row)
    with db.begin() as conn:
        conn.execute(portal_codes.insert(), {**row, "purpose": "sign_in"})
        portal_schema.widen_code_purposes(conn)
        conn.execute(portal_codes.insert(), row)
        purposes = conn.execute(sa.select(portal_codes.c.purpose).order_by(portal_codes.c.id))
        assert purposes.scalars().all() == ["sign_in", "delete_account"]
        names = {i["name"] for i in sa.inspect(conn).get_indexes("portal_codes")}
    assert {"ix_portal_codes_email", "ix_portal_codes_user"} <= names
