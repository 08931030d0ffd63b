"""POST /v1/portal/sessions and GET /v1/customers/<user_id>: the server key's portal API.

A portal URL is single use, valid 5 minutes, stored as a digest; its exchange sets a session
cookie (HttpOnly, SameSite=Lax, a server-side row) and redirects to a URL without the token,
with Referrer-Policy: no-referrer. Bad fields are 400s naming the field.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from accounts import addresses, profile
from accounts.portal_schema import portal_sessions, portal_tokens
from tests.conftest import ORIGIN
from tests.portal_helpers import add_customer, portal_url
from tracking.sites import create_site, digest


def post_session(client, key, body, **kwargs):
    return client.post("/v1/portal/sessions", json=body, auth=(key, ""), **kwargs)


def test_a_portal_url_signs_the_customer_in_once(client, site, db):
    response = post_session(
        client, site.server_key, {"user_id": "c1", "return_url": ORIGIN + "/me", "locale": "ko"}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"url", "expires_at"}
    url = urlsplit(body["url"])
    assert url.path.startswith("/account/enter/")
    token = url.path.removeprefix("/account/enter/")
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)
    with db.connect() as conn:
        stored = conn.execute(sa.select(portal_tokens)).mappings().one()
    assert stored["digest"] == digest(token) and token not in str(dict(stored))

    entered = client.get(url.path)
    assert entered.status_code == 303
    assert entered.headers["Location"] == "/account/"
    assert token not in entered.headers["Location"]
    assert entered.headers["Referrer-Policy"] == "no-referrer"
    cookie = entered.headers["Set-Cookie"]
    assert cookie.startswith("ecrm_account=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Path=/account" in cookie
    assert "Secure" not in cookie  # plain http on localhost: the run command's case
    cookie_token = cookie.split(";")[0].split("=", 1)[1]
    with db.connect() as conn:
        row = conn.execute(sa.select(portal_sessions)).mappings().one()
    assert row["session_id"] == digest(cookie_token) and row["user_id"] == "c1"
    assert row["locale"] == "ko" and row["return_url"] == ORIGIN + "/me"
    home = client.get("/account/")
    assert home.status_code == 200 and "쇼핑몰로 돌아가기" in home.get_data(as_text=True)

    again = client.get(url.path)  # single use
    assert again.status_code == 410 and again.headers["Referrer-Policy"] == "no-referrer"


def test_the_session_cookie_is_secure_outside_localhost(client, site):
    url = portal_url(client, site, "c1")
    response = client.get(urlsplit(url).path, base_url="https://portal.example")
    assert "Secure" in response.headers["Set-Cookie"]


def test_an_expired_or_made_up_token_signs_nobody_in(client, site, db):
    url = portal_url(client, site, "c1")
    path = urlsplit(url).path
    with db.begin() as conn:
        conn.execute(
            portal_tokens.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    for attempt in (path, "/account/enter/made-up", "/account/enter/" + "x" * 300):
        response = client.get(attempt)
        assert response.status_code == 410
        assert "ecrm_account" not in response.headers.get("Set-Cookie", "")
    assert client.get("/account/").status_code == 302


def test_signing_in_again_rotates_the_session(client, site, db):
    first = client.get(urlsplit(portal_url(client, site, "c1")).path)
    second = client.get(urlsplit(portal_url(client, site, "c1")).path)
    old = first.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    new = second.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert old != new
    with db.connect() as conn:
        rows = {r.session_id: r for r in conn.execute(sa.select(portal_sessions))}
    assert rows[digest(old)].ended_reason == "signed in again"
    assert rows[digest(new)].ended_at is None


def test_the_token_never_reaches_a_log(client, site, caplog):
    from webapp.portal import RedactPortalTokens

    url = portal_url(client, site, "c1")
    token = urlsplit(url).path.rsplit("/", 1)[1]
    with caplog.at_level(logging.DEBUG):
        client.get(urlsplit(url).path)
        client.get(urlsplit(url).path)  # used: the "gone" page
    assert token not in caplog.text
    # The request log of werkzeug's server (tests, `flask run`) is filtered.
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        "",
        0,
        '%s "%s" %s',
        ("127.0.0.1", f"GET /account/enter/{token} HTTP/1.1", "303"),
        None,
    )
    RedactPortalTokens().filter(record)
    assert token not in record.getMessage() and "/account/enter/[redacted]" in record.getMessage()
    assert RedactPortalTokens in {type(f) for f in logging.getLogger("werkzeug").filters}


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "body.user_id", "required"),
        ({"user_id": ""}, "body.user_id", "must be 1-255"),
        ({"user_id": "x" * 256}, "body.user_id", "must be 1-255"),
        ({"user_id": "a\nb"}, "body.user_id", "control characters"),
        ({"user_id": 5}, "body.user_id", "must be 1-255"),
        ({"user_id": "c1", "locale": "fr"}, "body.locale", "must be en or ko"),
        ({"user_id": "c1", "extra": 1}, "body.extra", ""),
        ({"user_id": "c1", "return_url": "javascript:alert(1)"}, "body.return_url", "http(s)"),
        ({"user_id": "c1", "return_url": "ftp://shop.example/x"}, "body.return_url", "http(s)"),
        ({"user_id": "c1", "return_url": "https://evil.example/"}, "body.return_url", "allowed"),
        (
            {"user_id": "c1", "return_url": "https://shop.example.evil.example/"},
            "body.return_url",
            "allowed",
        ),
        (
            {"user_id": "c1", "return_url": "https://user@shop.example/"},
            "body.return_url",
            "allowed",
        ),
        ({"user_id": "c1", "return_url": "//shop.example/"}, "body.return_url", "http(s)"),
        ({"user_id": "c1", "return_url": "https://" + "a" * 2000}, "body.return_url", "2000"),
        ([], "body", ""),
    ],
)
def test_bad_requests_name_the_field(client, site, body, field, reason):
    response = post_session(client, site.server_key, body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == field and reason in error["reason"]


def test_bad_json_and_keys(client, site):
    raw = client.post(
        "/v1/portal/sessions",
        data=b"{nope",
        content_type="application/json",
        auth=(site.server_key, ""),
    )
    assert raw.status_code == 400 and raw.get_json()["error"]["field"] == "body"
    assert post_session(client, site.write_key, {"user_id": "c1"}).status_code == 401
    assert client.post("/v1/portal/sessions", json={"user_id": "c1"}).status_code == 401
    from_page = post_session(
        client, site.server_key, {"user_id": "c1"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert from_page.status_code == 403


def test_a_site_open_to_every_origin_still_needs_its_own_for_return_urls(app, client):
    engine = app.extensions["ecrm"].engine
    site, key = create_site(engine, "Open", ["*"])
    response = post_session(client, key, {"user_id": "c1", "return_url": "https://any.example/"})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "body.return_url"


def test_the_shop_reads_its_customer(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com", plan="gold")
    with db.begin() as conn:
        profile.update_profile(conn, site.site_id, "c1", {"name": "Ana", "birthday": "1990-04-30"})
        values, problems = addresses.check_address(
            {
                "kind": "shipping",
                "name": "Ana",
                "line1": "1 Main St",
                "city": "Seoul",
                "country": "kr",
            }
        )
        assert not problems
        addresses.add_address(conn, site.site_id, "c1", values)
    response = client.get("/v1/customers/c1", auth=(site.server_key, ""))
    assert response.status_code == 200
    body = response.get_json()
    assert body["name"] == "Ana" and body["email"] == "ana@example.com"
    assert body["birthday"] == "1990-04-30" and isinstance(body["age"], int) and body["age"] >= 36
    assert body["addresses"][0]["country"] == "KR" and body["addresses"][0]["is_default"]
    assert body["orders"] == {"count": 0, "last_ordered_at": None}
    assert "plan" not in body  # the shop's own traits are not echoed

    assert client.get("/v1/customers/nobody", auth=(site.server_key, "")).status_code == 404
    assert client.get("/v1/customers/c1", auth=(site.write_key, "")).status_code == 401


def test_another_sites_key_cannot_read_the_customer(app, client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    _, other_key = create_site(db, "Other", ["https://other.example"])
    response = client.get("/v1/customers/c1", auth=(other_key, ""))
    assert response.status_code == 404
    assert "ana@" not in response.get_data(as_text=True)


def test_a_session_unused_for_two_hours_ends(client, site, db):
    client.get(urlsplit(portal_url(client, site, "c1")).path)
    assert client.get("/account/").status_code == 200
    with db.begin() as conn:
        conn.execute(
            portal_sessions.update().values(
                last_seen_at=datetime.now(UTC) - timedelta(hours=2, seconds=5)
            )
        )
    assert client.get("/account/").status_code == 302
    with db.connect() as conn:
        assert conn.execute(sa.select(portal_sessions.c.ended_reason)).scalar() == "idle"
