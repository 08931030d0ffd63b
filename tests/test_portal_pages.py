"""The /account/ pages: sign-in by emailed code, profile, email change, addresses, orders.

Codes are read from the email outbox (what the mailer would send); throttling runs on the real
Redis through Flask-Limiter; every form posts its CSRF token.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts.portal_schema import customer_addresses, portal_codes, portal_sessions
from recommender.serving import customer_traits
from tests.conftest import ORIGIN
from tests.portal_helpers import add_customer, csrf_token, enter, outbox_rows
from tracking.activity import generation_key
from tracking.customers import age_on
from tracking.schema import customer_lookup, order_lines, orders
from tracking.sites import create_site

CODE = re.compile(r"\b(\d{6})\b")


def last_code(engine, to: str) -> str:
    rows = outbox_rows(engine, to)
    assert rows, f"no email to {to}"
    return CODE.search(rows[-1]["body_text"]).group(1)


def post(client, path, data, form_path=None):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, form_path or path)})


# -- sign-in by code ---------------------------------------------------------------------------


def ask_code(client, site_id, email):
    path = f"/account/sign-in?site={site_id}"
    return post(client, path, {"email": email})


def test_a_known_address_gets_a_code_that_signs_in(client, site, db):
    add_customer(db, site.site_id, "c1", email="Ana@Example.com")
    response = ask_code(client, site.site_id, "ana@example.com")
    assert response.status_code == 303 and response.headers["Location"] == "/account/sign-in/code"
    rows = outbox_rows(db, "ana@example.com")
    assert len(rows) == 1 and rows[0]["template"] == "sign_in_code" and rows[0]["user_id"] == "c1"
    code = last_code(db, "ana@example.com")
    with db.connect() as conn:
        stored = conn.execute(sa.select(portal_codes)).mappings().one()
    assert code not in str(dict(stored))  # an HMAC, not the code

    page = client.get("/account/sign-in/code").get_data(as_text=True)
    assert "ana@example.com" in page
    signed_in = post(client, "/account/sign-in/code", {"code": code})
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/account/"
    assert "HttpOnly" in signed_in.headers["Set-Cookie"]
    assert client.get("/account/").status_code == 200
    with db.connect() as conn:
        session = conn.execute(sa.select(portal_sessions)).mappings().one()
    assert session["user_id"] == "c1" and session["how"] == "code"
    # Used: the code is spent, and the form's note of the address is gone.
    with db.connect() as conn:
        assert conn.execute(sa.select(portal_codes.c.used_at)).scalar() is not None
    assert client.get("/account/sign-in/code").status_code == 302


def test_an_unknown_address_gets_the_same_answer_and_no_email(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    known = ask_code(client, site.site_id, "ana@example.com")
    unknown = ask_code(client, site.site_id, "nobody@example.com")
    assert (known.status_code, known.headers["Location"]) == (
        unknown.status_code,
        unknown.headers["Location"],
    )
    page = client.get("/account/sign-in/code").get_data(as_text=True)
    assert "If nobody@example.com belongs to an account here" in page
    assert outbox_rows(db, "nobody@example.com") == []
    for guess in ("000000", "123456"):
        response = post(client, "/account/sign-in/code", {"code": guess})
        assert response.status_code == 400


def test_a_wrong_code_five_times_kills_the_code(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    ask_code(client, site.site_id, "ana@example.com")
    code = last_code(db, "ana@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for attempt in range(5):
        response = post(client, "/account/sign-in/code", {"code": wrong})
        assert response.status_code == 400
        text = response.get_data(as_text=True)
        assert ("not right" in text) if attempt < 4 else ("no longer be used" in text)
    response = post(client, "/account/sign-in/code", {"code": code})
    assert response.status_code == 400 and "no longer be used" in response.get_data(as_text=True)
    assert client.get("/account/").status_code == 302


def test_an_expired_code_does_not_sign_in(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    ask_code(client, site.site_id, "ana@example.com")
    code = last_code(db, "ana@example.com")
    with db.begin() as conn:
        conn.execute(
            portal_codes.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = post(client, "/account/sign-in/code", {"code": code})
    assert response.status_code == 400 and "no longer be used" in response.get_data(as_text=True)


def test_code_requests_are_throttled_per_address_and_per_client(app, client, site, db):
    app.config["PORTAL_CODE_LIMIT_ADDRESS"] = "2 per hour"
    app.config["PORTAL_CODE_LIMIT_CLIENT"] = "4 per hour"
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    for _ in range(2):
        assert ask_code(client, site.site_id, "ana@example.com").status_code == 303
    third = ask_code(client, site.site_id, "ana@example.com")
    assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0
    assert "Too many attempts" in third.get_data(as_text=True)
    # An unknown address is throttled alike (the same answer).
    for _ in range(2):
        assert ask_code(client, site.site_id, "nobody@example.com").status_code == 303
    assert ask_code(client, site.site_id, "nobody@example.com").status_code == 429
    # Per client: a fifth request from this client, any address.
    assert ask_code(client, site.site_id, "zed@example.com").status_code == 429
    assert len(outbox_rows(db, "ana@example.com")) == 2


def test_code_tries_are_throttled_per_client(app, client, site, db):
    app.config["PORTAL_TRY_LIMIT_CLIENT"] = "3 per 15 minutes"
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    ask_code(client, site.site_id, "ana@example.com")
    for _ in range(3):
        post(client, "/account/sign-in/code", {"code": "999999"})
    response = post(client, "/account/sign-in/code", {"code": last_code(db, "ana@example.com")})
    assert response.status_code == 429


@pytest.mark.parametrize(
    "email",
    ["", "no-at-sign", "a@b", "a b@example.com", "x" * 250 + "@e.co", "ünï@example.com"],
)
def test_a_bad_address_is_shown_beside_the_field(client, site, email):
    response = ask_code(client, site.site_id, email)
    assert response.status_code == 400
    assert 'id="email-error"' in response.get_data(as_text=True)


def test_sign_in_needs_an_existing_site(client, site):
    assert client.get("/account/sign-in").status_code == 404
    assert client.get("/account/sign-in?site=999").status_code == 404
    assert client.get(f"/account/sign-in?site={site.site_id}").status_code == 200


def test_forms_without_the_csrf_token_are_refused(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    response = client.post(f"/account/sign-in?site={site.site_id}", data={"email": "a@e.com"})
    assert response.status_code == 400 and "text/html" in response.content_type
    enter(client, site, "c1")
    assert client.post("/account/profile", data={"name": "Eve"}).status_code == 400
    assert client.post("/account/sign-out").status_code == 400
    assert client.get("/account/").status_code == 200  # still signed in


def test_sign_out_ends_the_session_and_returns_to_the_shop(client, site, db):
    enter(client, site, "c1", return_url=ORIGIN + "/account")
    response = post(client, "/account/sign-out", {}, "/account/")
    assert response.status_code == 303 and response.headers["Location"] == ORIGIN + "/account"
    assert client.get("/account/").status_code == 302
    with db.connect() as conn:
        assert conn.execute(sa.select(portal_sessions.c.ended_reason)).scalar() == "signed out"


# -- profile -----------------------------------------------------------------------------------


def test_the_age_the_rules_read_follows_the_birth_date_not_the_day_it_was_saved(site, db):
    # Saved years ago: the stored age was right then, and is not now.
    add_customer(db, site.site_id, "c9", birthday="1990-04-30", age=20)
    today = datetime.now(UTC).date()
    assert customer_traits(db, site.site_id, "c9")["age"] == age_on(date(1990, 4, 30), today)
    add_customer(db, site.site_id, "c10", birthday="not a date", age=33)
    assert customer_traits(db, site.site_id, "c10")["age"] == 33  # nothing better to go on


def test_profile_changes_are_verified_traits_with_age_and_search_keys(client, site, db, redis):
    add_customer(db, site.site_id, "c1", email="ana@example.com", plan="gold")
    enter(client, site, "c1")
    response = post(
        client,
        "/account/profile",
        {"name": "Kim Minji", "phone": "+82 (2) 1234-5678", "birthday": "2000-01-02"},
    )
    assert response.status_code == 303
    traits = customer_traits(db, site.site_id, "c1")
    assert redis.get(generation_key(site.site_id, "u:c1")) == b"1"  # cached answers are void
    today = datetime.now(UTC).date()
    expected_age = today.year - 2000 - ((today.month, today.day) < (1, 2))
    assert traits["age"] == expected_age  # what the rules' age constraint reads
    assert traits["phone"] == "+82212345678" and traits["name"] == "Kim Minji"
    assert traits["plan"] == "gold" and traits["email"] == "ana@example.com"
    with db.connect() as conn:
        keys = set(
            conn.execute(
                sa.select(customer_lookup.c.kind, customer_lookup.c.value).where(
                    customer_lookup.c.user_id == "c1"
                )
            ).all()
        )
    assert ("name", "kim minji") in keys and ("name", "minji") in keys
    page = client.get("/account/profile?saved=1").get_data(as_text=True)
    assert 'value="Kim Minji"' in page and "Saved." in page
    # Clearing the birth date clears the age.
    post(client, "/account/profile", {"name": "Kim Minji", "phone": "", "birthday": ""})
    traits = customer_traits(db, site.site_id, "c1")
    assert "age" not in traits and "birthday" not in traits and "phone" not in traits


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", "x" * 201, "at most 200"),
        ("name", "bad\x07name", "control characters"),
        ("phone", "12", "7 to 15 digits"),
        ("phone", "+82 2 abc 5678", "7 to 15 digits"),
        ("phone", "1" * 16, "7 to 15 digits"),
        ("birthday", "30/04/1990", "a date like"),
        ("birthday", "1990-02-30", "a date like"),
        ("birthday", "1899-12-31", "between 1900-01-01"),
        ("birthday", (date.today() + timedelta(days=2)).isoformat(), "between 1900-01-01"),
    ],
)
def test_profile_errors_are_shown_beside_the_field(client, site, db, field, value, reason):
    add_customer(db, site.site_id, "c1", name="Ana")
    enter(client, site, "c1")
    data = {"name": "Ana", "phone": "", "birthday": "", field: value}
    response = post(client, "/account/profile", data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    found = re.search(rf'<span class="error" id="{field}-error">([^<]*)</span>', page)
    assert found and reason in found.group(1)
    assert customer_traits(db, site.site_id, "c1") == {"name": "Ana"}  # nothing written


def test_errors_and_pages_in_korean(client, site, db):
    add_customer(db, site.site_id, "c1")
    enter(client, site, "c1", locale="ko")
    response = post(client, "/account/profile", {"name": "", "phone": "12", "birthday": ""})
    page = response.get_data(as_text=True)
    assert '<html lang="ko">' in page and "7~15자리 전화번호" in page and "프로필" in page


def test_accept_language_chooses_without_a_locale(client, site):
    page = client.get(
        f"/account/sign-in?site={site.site_id}", headers={"Accept-Language": "ko-KR,ko;q=0.9"}
    )
    assert "내 계정에 로그인" in page.get_data(as_text=True)
    page = client.get(f"/account/sign-in?site={site.site_id}", headers={"Accept-Language": "fr"})
    assert "Sign in to your account" in page.get_data(as_text=True)


def test_a_new_email_is_confirmed_by_a_code_sent_to_it(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    enter(client, site, "c1")
    response = post(client, "/account/email", {"email": "Ana.New@Example.com"}, "/account/profile")
    assert response.status_code == 303
    assert customer_traits(db, site.site_id, "c1")["email"] == "ana@example.com"  # not yet
    rows = outbox_rows(db, "ana.new@example.com")
    assert rows[-1]["template"] == "email_change_code"
    code = last_code(db, "ana.new@example.com")
    wrong = post(client, "/account/email/confirm", {"code": "000000" if code != "000000" else "1"})
    assert wrong.status_code == 400 and 'id="code-error"' in wrong.get_data(as_text=True)
    done = post(client, "/account/email/confirm", {"code": code})
    assert done.status_code == 303
    assert customer_traits(db, site.site_id, "c1")["email"] == "ana.new@example.com"
    with db.connect() as conn:
        emails = set(
            conn.execute(
                sa.select(customer_lookup.c.value).where(customer_lookup.c.kind == "email")
            ).scalars()
        )
    assert emails == {"ana.new@example.com"}


def test_an_email_change_code_only_works_for_its_customer(app, client, site, db):
    add_customer(db, site.site_id, "a", email="a@example.com")
    add_customer(db, site.site_id, "b", email="b@example.com")
    enter(client, site, "a")
    post(client, "/account/email", {"email": "new@example.com"}, "/account/profile")
    code = last_code(db, "new@example.com")
    other = app.test_client()
    enter(other, site, "b")
    # b never asked: the confirm page sends them back to the profile.
    assert other.get("/account/email/confirm").status_code == 302
    assert customer_traits(db, site.site_id, "b")["email"] == "b@example.com"
    assert post(client, "/account/email/confirm", {"code": code}).status_code == 303


# -- addresses ---------------------------------------------------------------------------------

ADDRESS = {
    "kind": "shipping",
    "name": "Kim Minji",
    "line1": "12 Sejong-daero",
    "line2": "",
    "city": "Seoul",
    "region": "",
    "postal_code": "04524",
    "country": "kr",
    "phone": "",
}


def address_rows(db):
    with db.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(customer_addresses).order_by(customer_addresses.c.address_id)
            ).mappings()
        ]


def test_the_address_book_keeps_one_default_per_kind(client, site, db):
    enter(client, site, "c1")
    for city in ("Seoul", "Busan"):
        assert post(client, "/account/addresses/new", {**ADDRESS, "city": city}).status_code == 303
    post(client, "/account/addresses/new", {**ADDRESS, "kind": "billing", "city": "Incheon"})
    rows = address_rows(db)
    assert [(r["kind"], r["city"], r["is_default"]) for r in rows] == [
        ("shipping", "Seoul", True),
        ("shipping", "Busan", False),
        ("billing", "Incheon", True),
    ]
    assert rows[0]["country"] == "KR"
    busan = rows[1]["address_id"]
    edit = f"/account/addresses/{busan}/edit"
    assert post(client, edit, {**ADDRESS, "city": "Busan", "is_default": "1"}).status_code == 303
    assert [r["is_default"] for r in address_rows(db)] == [False, True, True]
    page = client.get("/account/addresses").get_data(as_text=True)
    assert page.index("Busan") < page.index("Seoul")  # the default first
    delete = post(client, f"/account/addresses/{busan}/delete", {}, "/account/addresses")
    assert delete.status_code == 303
    assert [(r["city"], r["is_default"]) for r in address_rows(db)] == [
        ("Seoul", True),
        ("Incheon", True),
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", "", "is required"),
        ("line1", "x" * 201, "at most 200"),
        ("city", "", "is required"),
        ("country", "Korea", "at most 2"),
        ("country", "k1", "two-letter"),
        ("postal_code", "<script>", "letters, digits"),
        ("phone", "call me", "7 to 15 digits"),
        ("kind", "home", "shipping or billing"),
    ],
)
def test_address_errors_are_shown_beside_the_field(client, site, db, field, value, reason):
    enter(client, site, "c1")
    response = post(client, "/account/addresses/new", {**ADDRESS, field: value})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    found = re.search(rf'<span class="error" id="{field}-error">([^<]*)</span>', page)
    assert found and reason in found.group(1), page[-1500:]
    assert address_rows(db) == []


def test_address_text_is_shown_as_text(client, site, db):
    enter(client, site, "c1")
    post(client, "/account/addresses/new", {**ADDRESS, "name": "<b>Ana</b>"})
    page = client.get("/account/addresses").get_data(as_text=True)
    assert "&lt;b&gt;Ana&lt;/b&gt;" in page and "<b>Ana</b>" not in page


# -- orders ------------------------------------------------------------------------------------


def add_orders(db, site_id, user_id, count, start=datetime(2026, 1, 1, tzinfo=UTC)):
    with db.begin() as conn:
        for n in range(count):
            order_id = f"{user_id}-o{n:02d}"
            conn.execute(
                orders.insert(),
                {
                    "site_id": site_id,
                    "order_id": order_id,
                    "user_id": user_id,
                    "message_id": f"m-{order_id}",
                    "total": 10 + n,
                    "revenue": 10 + n,
                    "currency": "KRW" if n % 2 else "EUR",
                    "ordered_at": start + timedelta(days=n),
                },
            )
            conn.execute(
                order_lines.insert(),
                {
                    "site_id": site_id,
                    "order_id": order_id,
                    "position": 0,
                    "item_id": "sku-1",
                    "name": f"Record {n}",
                    "price": 10 + n,
                    "quantity": 1,
                },
            )


def test_orders_newest_first_paged_with_lines_and_currency(client, site, db):
    add_orders(db, site.site_id, "c1", 12)
    add_orders(db, site.site_id, "c2", 1)
    enter(client, site, "c1")
    first = client.get("/account/orders").get_data(as_text=True)
    shown = re.findall(r"Order (c\d-o\d\d)", first)
    assert shown == [f"c1-o{n:02d}" for n in range(11, 1, -1)]
    assert "Record 11" in first and "€" in first and "₩" in first
    assert "Page 1 of 2" in first
    second = client.get("/account/orders?page=2").get_data(as_text=True)
    assert re.findall(r"Order (c\d-o\d\d)", second) == ["c1-o01", "c1-o00"]
    assert "c2-o00" not in first + second
    assert client.get("/account/orders?page=3").status_code == 404
    assert client.get("/account/orders?page=-1").status_code == 404


def test_unknown_account_paths_are_pages(client, site):
    response = client.get("/account/nothing-here")
    assert response.status_code == 404 and "text/html" in response.content_type


def test_portal_pages_carry_a_strict_policy(client, site):
    enter(client, site, "c1")
    response = client.get("/account/profile")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script>" not in response.get_data(as_text=True)  # no inline script


def test_the_sites_colours_are_its_portal_look(app, client, site, db):
    from accounts.portal_settings import InvalidLook, set_look

    set_look(db, site.site_id, brand="#AA0000")
    css = client.get(f"/account/look.css?site={site.site_id}").get_data(as_text=True)
    assert "--brand: #aa0000" in css and "--accent: #2e7d32" in css
    with pytest.raises(InvalidLook):
        set_look(db, site.site_id, brand="red; }")
    other, _ = create_site(db, "Other", [])
    assert "--brand: #1f5fa8" in client.get(f"/account/look.css?site={other.site_id}").get_data(
        as_text=True
    )
    enter(client, site, "c1")
    page = client.get("/account/").get_data(as_text=True)
    assert f"/account/look.css?site={site.site_id}" in page and "Test shop" in page


def test_the_look_command_sets_a_sites_colours(runner, site, db):
    result = runner.invoke(args=["portal", "look", site.write_key, "--brand", "#112233"])
    assert result.exit_code == 0, result.output
    assert "brand #112233, accent #2e7d32" in result.output
    bad = runner.invoke(args=["portal", "look", site.write_key, "--accent", "blue"])
    assert bad.exit_code == 1 and "accent colour" in bad.output
    assert runner.invoke(args=["portal", "look", "wk_nope"]).exit_code == 1


def test_a_new_email_the_outbox_cannot_send_to_is_refused_beside_the_field(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    enter(client, site, "c1")
    response = post(client, "/account/email", {"email": "ünï@example.com"}, "/account/profile")
    assert response.status_code == 400
    assert 'id="email-error"' in response.get_data(as_text=True)
    assert outbox_rows(db) == []
