"""Sign-in returns the customer to the portal page they asked for (``?next=``), and only there.

Both ways in (a code by email, a shop's portal session) land on ``next`` when it is a path under
``/account/`` of this service; anything else (another host, a scheme, ``//``, a backslash,
``..`` however encoded, control characters) falls back to ``/account/``. The console's inquiry
reply email links to the inquiry's page through sign-in.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.portal_helpers import add_customer, outbox_rows, portal_url
from tests.staff_helpers import sign_in as staff_sign_in
from tests.test_portal_pages import ask_code, last_code, post
from webapp.portal.auth import safe_next

GOOD = ["/account/inquiries/7", "/account/", "/account/orders?page=2", "/account/privacy#why"]
OPEN_REDIRECTS = [
    "https://evil.example/account/",
    "//evil.example/account/",
    "/\\evil.example/account/",
    "/account/\\..\\..\\x",
    "\\\\evil.example",
    "javascript:alert(1)",
    "/account/../console/",
    "/account/%2e%2e/console/",
    "/account/%2E%2E%2fconsole",
    "/account//evil.example",
    "/account/%2f%2fevil.example",
    "/accountevil",
    "/console/",
    "account/inquiries/7",
    "/account/\ninquiries",
    "/account/%0d%0aSet-Cookie:x=1",
    "/account/" + "x" * 2000,
    "",
]


@pytest.mark.parametrize("value", GOOD)
def test_pages_under_account_are_kept(value):
    assert safe_next(value) == value


@pytest.mark.parametrize("value", OPEN_REDIRECTS)
def test_anything_else_is_refused(value):
    assert safe_next(value) is None


def code_sign_in(client, db, site, next_page: str):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    path = f"/account/sign-in?site={site.site_id}&next={next_page}"
    form = client.get(path)
    assert form.status_code == 200
    asked = post(client, path, {"email": "ana@example.com"})
    assert asked.status_code == 303
    return post(client, "/account/sign-in/code", {"code": last_code(db, "ana@example.com")})


def test_a_code_sign_in_lands_on_next(client, db, site):
    signed_in = code_sign_in(client, db, site, "/account/inquiries/7")
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == "/account/inquiries/7"
    # Signed in already: the link goes straight there.
    again = client.get(f"/account/sign-in?site={site.site_id}&next=/account/privacy")
    assert again.status_code == 302 and again.headers["Location"] == "/account/privacy"


@pytest.mark.parametrize("value", OPEN_REDIRECTS[:12])
def test_a_code_sign_in_never_leaves_for_another_place(client, db, site, value):
    from urllib.parse import quote

    signed_in = code_sign_in(client, db, site, quote(value, safe=""))
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/account/"
    again = client.get(f"/account/sign-in?site={site.site_id}&next={quote(value, safe='')}")
    assert again.headers["Location"] == "/account/"


def test_the_sign_in_form_keeps_next(client, site):
    page = client.get(f"/account/sign-in?site={site.site_id}&next=/account/inquiries/7")
    assert "next=/account/inquiries/7" in page.get_data(as_text=True)
    evil = client.get(f"/account/sign-in?site={site.site_id}&next=//evil.example")
    assert "evil.example" not in evil.get_data(as_text=True)
    # A bad address shows the form again, still on its way to the page.
    wrong = post(
        client, f"/account/sign-in?site={site.site_id}&next=/account/inquiries/7", {"email": "x"}
    )
    assert wrong.status_code == 400
    assert "next=/account/inquiries/7" in wrong.get_data(as_text=True)


@pytest.mark.parametrize(
    ("value", "lands"),
    [("/account/orders", "/account/orders"), ("https://evil.example/", "/account/")]
    + [(v, "/account/") for v in OPEN_REDIRECTS[1:6]],
)
def test_a_portal_session_lands_on_next(client, site, value, lands):
    from urllib.parse import quote

    url = portal_url(client, site, "cust-1")
    entered = client.get(f"{urlsplit(url).path}?next={quote(value, safe='')}")
    assert entered.status_code == 303 and entered.headers["Location"] == lands
    assert entered.headers["Referrer-Policy"] == "no-referrer"


def test_the_reply_email_links_to_the_inquirys_page(app, client, db, site):
    from accounts import inquiries

    add_customer(db, site.site_id, "c-1", email="ann@example.com")
    with db.begin() as conn:
        opened = inquiries.open_inquiry(
            conn, site.site_id, "c-1", category="question", subject="Where?", body="My parcel"
        )
    staff_sign_in(client, app, "marketer@staff.example", {site.site_id: "marketer"})
    page = f"/console/{site.site_id}/inquiries/{opened}"
    assert post(client, f"{page}/reply", {"body": "On its way."}, form_path=page).status_code == 303
    (mail,) = outbox_rows(db, "ann@example.com")  # the reply
    link = next(line for line in mail["body_text"].splitlines() if "/account/sign-in" in line)
    query = parse_qs(urlsplit(link.strip()).query)
    assert query == {"site": [str(site.site_id)], "next": [f"/account/inquiries/{opened}"]}
    # The customer follows it in their own browser: signed in by code, they land on the inquiry.
    customer = app.test_client()
    parts = urlsplit(link.strip())
    asked = post(customer, f"{parts.path}?{parts.query}", {"email": "ann@example.com"})
    assert asked.status_code == 303
    code = last_code(db, "ann@example.com")
    signed_in = post(customer, "/account/sign-in/code", {"code": code})
    assert signed_in.headers["Location"] == f"/account/inquiries/{opened}"
    assert "On its way." in customer.get(signed_in.headers["Location"]).get_data(as_text=True)


def test_ask_code_still_works_without_next(client, db, site):
    add_customer(db, site.site_id, "c1", email="ana@example.com")
    assert ask_code(client, site.site_id, "ana@example.com").status_code == 303
    signed_in = post(client, "/account/sign-in/code", {"code": last_code(db, "ana@example.com")})
    assert signed_in.headers["Location"] == "/account/"
