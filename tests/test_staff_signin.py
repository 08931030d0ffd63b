"""Staff sign-in: argon2id, the same answer for every refusal, throttling, rotation, cookies."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from accounts import audit
from accounts.schema import staff as staff_table
from accounts.staff import create_staff, disable
from tests.staff_helpers import PASSWORD, csrf_token, make_staff, sign_in
from tracking.sites import create_site


@pytest.fixture
def engine(app):
    return app.extensions["ecrm"].engine


@pytest.fixture
def shop(engine):
    site, _ = create_site(engine, "Shop A", ["https://a.example"])
    return site


def post_sign_in(client, email, password, **kwargs):
    token = csrf_token(client, "/console/sign-in")
    return client.post(
        "/console/sign-in",
        data={"email": email, "password": password, "csrf_token": token},
        **kwargs,
    )


def without_token(page: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", page)


def stored_hash(engine, email):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(staff_table.c.password_hash).where(staff_table.c.email == email)
        ).scalar()


def test_passwords_are_stored_as_argon2id_and_rehashed_when_the_parameters_change(
    app, client, engine
):
    create_staff(engine, "ada@example.test", password=PASSWORD)
    assert stored_hash(engine, "ada@example.test").startswith("$argon2id$")
    assert PASSWORD not in stored_hash(engine, "ada@example.test")
    older = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1, hash_len=16, salt_len=8)
    with engine.begin() as conn:
        conn.execute(
            staff_table.update()
            .where(staff_table.c.email == "ada@example.test")
            .values(password_hash=older.hash(PASSWORD))
        )
    assert post_sign_in(client, "ada@example.test", PASSWORD).status_code == 303
    rehashed = stored_hash(engine, "ada@example.test")
    assert rehashed.startswith("$argon2id$v=19$m=8,t=1,p=1$")  # the test profile's parameters
    PasswordHasher().verify(rehashed, PASSWORD)


def test_a_good_password_signs_in_and_the_console_knows_who(app, client, engine, shop):
    make_staff(app, "Ada@Example.test", {shop.site_id: "viewer"})
    response = post_sign_in(client, "  ADA@example.test ", PASSWORD)
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/"
    page = client.get("/console/account").get_data(as_text=True)
    assert "ada@example.test" in page
    assert [e.action for e in audit.entries(engine, None)][0] == "sign_in"


@pytest.mark.parametrize(
    "email, password",
    [
        ("ada@example.test", "wrong password!"),
        ("nobody@example.test", PASSWORD),
        ("disabled@example.test", PASSWORD),
        ("invited@example.test", ""),
        ("not an email", PASSWORD),
    ],
)
def test_every_refusal_gives_the_same_401_page(app, client, engine, email, password):
    make_staff(app, "ada@example.test", {})
    make_staff(app, "disabled@example.test", {})
    disable(engine, "disabled@example.test")
    create_staff(engine, "invited@example.test")
    reference = post_sign_in(client, "ada@example.test", "wrong password!")
    response = post_sign_in(client, email, password)
    assert response.status_code == reference.status_code == 401
    assert without_token(response.get_data(as_text=True)).replace(email, "EMAIL") == (
        without_token(reference.get_data(as_text=True)).replace("ada@example.test", "EMAIL")
    )
    assert client.get("/console/account").status_code == 302  # still signed out


def test_a_failed_sign_in_is_audited_with_the_email_tried_and_never_the_password(
    app, client, engine
):
    make_staff(app, "ada@example.test", {})
    post_sign_in(client, "ada@example.test", "hunter2-is-wrong")
    post_sign_in(client, "ghost@example.test", "hunter3-is-wrong")
    ghost, ada = audit.entries(engine, None)[:2]
    assert (ghost.action, ghost.email, ghost.staff_id) == (
        "sign_in_failed",
        "ghost@example.test",
        None,
    )
    assert ada.action == "sign_in_failed" and ada.staff_id is not None
    assert ada.detail["reason"] == "wrong password"
    assert "hunter" not in repr(ghost) + repr(ada)


def test_failed_attempts_on_one_account_are_throttled_from_any_client(app, client, engine):
    make_staff(app, "ada@example.test", {})
    for n in range(5):  # SIGN_IN_LIMIT_ACCOUNT: 5 per 15 minutes
        address = {"REMOTE_ADDR": f"10.0.{n}.1"}
        assert (
            post_sign_in(client, "ada@example.test", "no", environ_base=address).status_code == 401
        )
    blocked = post_sign_in(
        client, "ADA@example.test", PASSWORD, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    assert "Too many sign-in attempts" in blocked.get_data(as_text=True)
    assert client.get("/console/account").status_code == 302
    # Another account from the same client is not affected.
    make_staff(app, "bob@example.test", {})
    assert post_sign_in(client, "bob@example.test", PASSWORD).status_code == 303


def test_unknown_accounts_are_throttled_like_known_ones(app, client):
    for _ in range(5):
        assert post_sign_in(client, "ghost@example.test", "no").status_code == 401
    assert post_sign_in(client, "ghost@example.test", "no").status_code == 429


def test_every_attempt_from_one_client_is_throttled(app_config, redis_url):
    from webapp import create_app

    app_config["SIGN_IN_LIMIT_CLIENT"] = "3 per 15 minutes"
    application = create_app(app_config)
    application.extensions["ecrm"].redis.flushdb()
    client = application.test_client()
    try:
        for n in range(3):
            assert post_sign_in(client, f"user{n}@example.test", "no").status_code == 401
        blocked = post_sign_in(client, "someone-new@example.test", "no")
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
        other = post_sign_in(
            client, "x@example.test", "no", environ_base={"REMOTE_ADDR": "10.1.1.1"}
        )
        assert other.status_code == 401
    finally:
        application.extensions["ecrm_serving"].close()
        application.extensions["ecrm"].engine.dispose()


def test_signing_in_rotates_the_session(app, client, engine):
    make_staff(app, "ada@example.test", {})
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    before = client.get_cookie("session").value
    first = sign_in(client, app, "ada@example.test", {})
    with client.session_transaction() as session:
        assert "planted" not in session
    # The cookie from before signing in is worth nothing.
    old = app.test_client()
    old.set_cookie("session", before)
    assert old.get("/console/account").status_code == 302
    # Signing in again makes a new token and ends the old session.
    token = csrf_token(client, "/console/account")
    again = client.post(
        "/console/sign-in",
        data={"email": "ada@example.test", "password": PASSWORD, "csrf_token": token},
    )
    assert again.status_code == 303
    with client.session_transaction() as session:
        second = session["_user_id"]
    assert second != first.get_id()
    stale = app.test_client()
    with stale.session_transaction() as session:
        session["_user_id"] = first.get_id()
    assert stale.get("/console/account").status_code == 302


def set_cookie_header(response) -> str:
    return next(v for k, v in response.headers.items() if k == "Set-Cookie" and "session=" in v)


@pytest.mark.parametrize(
    "base_url, secure",
    [
        ("http://localhost", False),
        ("http://127.0.0.1:8000", False),
        ("http://[::1]:8000", False),
        ("https://console.example.com", True),
        ("http://console.example.com", True),
    ],
)
def test_the_session_cookie_is_httponly_lax_and_secure_outside_localhost(
    app, engine, base_url, secure
):
    make_staff(app, "ada@example.test", {})
    client = app.test_client()
    token = re.search(
        r'name="csrf_token" value="([^"]+)"',
        client.get("/console/sign-in", base_url=base_url).get_data(as_text=True),
    ).group(1)
    response = client.post(
        "/console/sign-in",
        data={"email": "ada@example.test", "password": PASSWORD, "csrf_token": token},
        base_url=base_url,
        headers={"Referer": f"{base_url}/console/sign-in"},  # Flask-WTF checks it over https
    )
    assert response.status_code == 303
    cookie = set_cookie_header(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure


def test_cookie_secure_can_be_forced_off_for_plain_http_on_another_host(app_config):
    from webapp import create_app

    app_config["COOKIE_SECURE"] = "0"
    application = create_app(app_config)
    try:
        client = application.test_client()
        response = client.get("/console/sign-in", base_url="http://console.example.com")
        assert "Secure" not in set_cookie_header(response)
    finally:
        application.extensions["ecrm_serving"].close()
        application.extensions["ecrm"].engine.dispose()


@pytest.mark.parametrize("path", ["/console/sign-in", "/console/welcome/no-such-token"])
def test_sign_in_pages_send_the_page_security_headers(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[-1].split(";")[0]
    assert "<script>" not in response.get_data(as_text=True)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]


@pytest.mark.parametrize(
    "next_path, expected",
    [
        ("/console/account", "/console/account"),
        ("https://evil.example/console/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/console/\\evil", "/console/"),
        ("/demo/", "/console/"),
    ],
)
def test_next_is_followed_only_to_console_paths_of_this_site(app, client, next_path, expected):
    make_staff(app, "ada@example.test", {})
    token = csrf_token(client, "/console/sign-in")
    response = client.post(
        "/console/sign-in",
        query_string={"next": next_path},
        data={"email": "ada@example.test", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == expected


def test_signed_out_console_pages_send_to_sign_in_and_come_back(app, client, shop):
    response = client.get("/console/account")
    assert response.status_code == 302 and "/console/sign-in" in response.headers["Location"]
    assert "next=%2Fconsole%2Faccount" in response.headers["Location"]


def test_sign_out_ends_the_session_row(app, client, engine):
    user = sign_in(client, app, "ada@example.test", {})
    token = csrf_token(client, "/console/account")
    assert client.post("/console/sign-out", data={"csrf_token": token}).status_code == 303
    assert client.get("/console/account").status_code == 302
    replay = app.test_client()
    with replay.session_transaction() as session:
        session["_user_id"] = user.get_id()
    assert replay.get("/console/account").status_code == 302
    assert audit.entries(engine, None)[0].action == "sign_out"


def test_disabling_an_account_ends_its_sessions_and_stops_sign_in(app, client, engine):
    sign_in(client, app, "ada@example.test", {})
    assert client.get("/console/account").status_code == 200
    disable(engine, "ada@example.test")
    assert client.get("/console/account").status_code == 302
    assert post_sign_in(app.test_client(), "ada@example.test", PASSWORD).status_code == 401


def test_a_staff_member_ends_one_of_their_own_sessions(app, engine):
    laptop, phone = app.test_client(), app.test_client()
    sign_in(laptop, app, "ada@example.test", {})
    on_phone = sign_in(phone, app, "ada@example.test", {})
    page = laptop.get("/console/account").get_data(as_text=True)
    assert on_phone.session_id in page
    token = csrf_token(laptop, "/console/account")
    ended = laptop.post(
        "/console/account/sessions/end",
        data={"csrf_token": token, "session_id": on_phone.session_id},
    )
    assert ended.status_code == 303
    assert phone.get("/console/account").status_code == 302
    assert laptop.get("/console/account").status_code == 200
