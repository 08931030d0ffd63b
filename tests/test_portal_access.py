"""Who may read or change what in the portal: every /account/ route and the portal API, walked
by {signed out, customer A, customer B of the same site, a customer of another site (with the
same user id as A), staff signed in to the console}.

Only A reads A's profile, addresses, orders, preferences, privacy choices and inquiries, and
only A changes them; an id of A's in a URL is a 404 for everyone else. A's data carries markers
that must appear nowhere else.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from accounts import addresses, consent, inquiries, privacy, profile
from accounts.portal_schema import customer_addresses
from accounts.prefs_schema import consent_records, inquiry_messages
from tests.portal_helpers import add_customer, csrf_token, enter
from tests.staff_helpers import sign_in as staff_sign_in
from tests.test_portal_pages import ADDRESS, add_orders
from tracking.schema import customers
from tracking.sites import create_site

MARKERS = (
    "Alice-Marker",
    "Alice-Street-Marker",
    "a-o00",
    "alice@example.com",
    "+821011112222",
    "Alice-Inquiry-Marker",
    "Alice-Message-Marker",
    "Alice-Consent-Marker",
)
ACTORS = ("signed_out", "customer_a", "customer_b", "other_site", "staff")


@pytest.fixture
def world(app, site, db):
    """Customer A with a profile, an address and an order; B on the same site; a customer of
    another site with A's user id; a staff owner of A's site."""
    add_customer(db, site.site_id, "a", email="alice@example.com")
    add_customer(db, site.site_id, "b", email="bob@example.com")
    other, other_key = create_site(db, "Other shop", ["https://other.example"])
    object.__setattr__(other, "server_key", other_key)
    add_customer(db, other.site_id, "a", email="other-a@example.com")
    with db.begin() as conn:
        profile.update_profile(
            conn, site.site_id, "a", {"name": "Alice-Marker", "phone": "+821011112222"}
        )
        values, _ = addresses.check_address({**ADDRESS, "line1": "Alice-Street-Marker"})
        address_id = addresses.add_address(conn, site.site_id, "a", values)["address_id"]
    add_orders(db, site.site_id, "a", 1)
    with db.begin() as conn:
        inquiry_id = inquiries.open_inquiry(
            conn,
            site.site_id,
            "a",
            category="return",
            subject="Alice-Inquiry-Marker",
            body="Alice-Message-Marker",
            order_id="a-o00",
        )
        consent.record(
            conn,
            site.site_id,
            "a",
            consent.TRACKING,
            True,
            source="api",
            wording="Alice-Consent-Marker",
        )
        consent.record(
            conn,
            site.site_id,
            "a",
            "email:offers",
            True,
            source="api",
            wording="Alice-Consent-Marker",
        )
    clients = {name: app.test_client() for name in ACTORS}
    enter(clients["customer_a"], site, "a")
    enter(clients["customer_b"], site, "b")
    enter(clients["other_site"], other, "a")
    staff_sign_in(clients["staff"], app, "owner@shop.example", {site.site_id: "owner"})
    return {
        "site": site,
        "other": other,
        "address_id": address_id,
        "inquiry_id": inquiry_id,
        "clients": clients,
    }


# --- delete my account (webapp/portal/delete.py) --------------------------------------------
# Everyone but A: B and the other site's "a" ask for a code to their own address and enter a
# code that is never a code; nothing of A's is touched and A's markers are shown to no one.
DELETE_ROUTES = [
    ("GET", "/account/delete", {}),
    ("POST", "/account/delete", {}),
    ("GET", "/account/delete/confirm", {}),
    ("POST", "/account/delete/confirm", {"code": "not-a-code"}),
    ("GET", "/account/deleted", {}),
]
# --- end of delete my account ------------------------------------------------------------------


def routes(world) -> list[tuple[str, str, dict]]:
    """(method, path, form) for every /account/ route, A's address id where one is needed."""
    site_id, address_id = world["site"].site_id, world["address_id"]
    inquiry_id = world["inquiry_id"]
    return [
        ("GET", "/account/", {}),
        ("GET", "/account/profile", {}),
        ("GET", "/account/addresses", {}),
        ("GET", "/account/addresses/new", {}),
        ("GET", f"/account/addresses/{address_id}/edit", {}),
        ("GET", "/account/orders", {}),
        ("GET", "/account/email/confirm", {}),
        ("GET", "/account/preferences", {}),
        ("GET", "/account/privacy", {}),
        ("GET", "/account/inquiries", {}),
        ("GET", "/account/inquiries/new", {}),
        ("GET", f"/account/inquiries/{inquiry_id}", {}),
        ("GET", "/account/data", {}),
        ("GET", "/account/data/export.json", {}),
        ("GET", f"/account/look.css?site={site_id}", {}),
        ("GET", f"/account/sign-in?site={site_id}", {}),
        ("GET", "/account/sign-in/code", {}),
        ("GET", "/account/sign-in/site", {}),
        ("GET", "/account/enter/not-a-token", {}),
        ("POST", "/account/profile", {"name": "Mallory", "phone": "", "birthday": ""}),
        ("POST", "/account/email", {"email": "mallory@example.com"}),
        ("POST", "/account/email/confirm", {"code": "123456"}),
        ("POST", "/account/addresses/new", {**ADDRESS, "line1": "Mallory Street"}),
        (
            "POST",
            f"/account/addresses/{address_id}/edit",
            {**ADDRESS, "line1": "Mallory Street"},
        ),
        ("POST", f"/account/addresses/{address_id}/delete", {}),
        ("POST", "/account/preferences", {"email:offers": "1", "shown_locale": "en"}),
        ("POST", "/account/privacy", {"personalisation": "off", "shown_locale": "en"}),
        (
            "POST",
            "/account/inquiries/new",
            {"category": "question", "subject": "Mallory", "body": "hi", "order_id": "a-o00"},
        ),
        ("POST", f"/account/inquiries/{inquiry_id}", {"body": "Mallory was here"}),
        ("POST", f"/account/sign-in?site={site_id}", {"email": "alice@example.com"}),
        ("POST", "/account/sign-in/code", {"code": "123456"}),
        *DELETE_ROUTES,
        ("POST", "/account/sign-out", {}),
    ]


def test_the_walk_covers_every_account_route(app, world):
    walked = {(m, p.split("?")[0]) for m, p, _ in routes(world)}
    address_id = world["address_id"]
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/account"):
            continue
        path = rule.rule.replace("<int:address_id>", str(address_id))
        path = path.replace("<int:inquiry_id>", str(world["inquiry_id"]))
        path = path.replace("<token>", "not-a-token")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in walked, f"{method} {rule.rule} is not in the access walk"


def a_data(db, site_id):
    """What A has: traits, addresses, consent records, inquiry messages (and opt-out state)."""
    with db.connect() as conn:
        records = conn.execute(
            sa.select(consent_records.c.what, consent_records.c.granted)
            .where(consent_records.c.site_id == site_id, consent_records.c.user_id == "a")
            .order_by(consent_records.c.id)
        ).all()
        messages = conn.execute(
            sa.select(inquiry_messages.c.body).order_by(inquiry_messages.c.id)
        ).all()
        personalised = privacy.personalisation_enabled(conn, site_id, "a")
        traits = conn.execute(
            sa.select(customers.c.traits).where(
                customers.c.site_id == site_id, customers.c.user_id == "a"
            )
        ).scalar()
        rows = conn.execute(
            sa.select(customer_addresses.c.line1).where(
                customer_addresses.c.site_id == site_id, customer_addresses.c.user_id == "a"
            )
        ).all()
    return traits, [r.line1 for r in rows], records, messages, personalised


@pytest.mark.parametrize("actor", [a for a in ACTORS if a != "customer_a"])
def test_nobody_else_reads_or_changes_customer_as_data(app, db, world, actor):
    client = world["clients"][actor]
    site = world["site"]
    before = a_data(db, site.site_id)
    signed_in = actor in ("customer_b", "other_site")
    token = csrf_token(
        client, "/account/profile" if signed_in else f"/account/sign-in?site={site.site_id}"
    )
    for method, path, form in routes(world):
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, data={**form, "csrf_token": token})
        text = response.get_data(as_text=True)
        for marker in MARKERS:
            if marker == "alice@example.com" and path.startswith("/account/sign-in"):
                continue  # the address this actor typed, shown back to them
            assert marker not in text, f"{actor} {method} {path} shows {marker}"
        if f"/{world['address_id']}/" in path or path.endswith(f"/{world['inquiry_id']}"):
            expected = {"signed_out": 302, "staff": 302}.get(actor, 404)
            assert response.status_code == expected, f"{actor} {method} {path}"
        assert response.status_code < 500, f"{actor} {method} {path}: {response.status_code}"
        if actor in ("signed_out", "staff") and path.split("?")[0] in (
            "/account/",
            "/account/profile",
            "/account/addresses",
            "/account/orders",
            "/account/preferences",
            "/account/privacy",
            "/account/inquiries",
            "/account/inquiries/new",
            "/account/data",
            "/account/data/export.json",
        ):
            assert response.status_code == 302  # to sign in: staff are not customers
    assert a_data(db, site.site_id) == before


def test_customer_a_reads_and_changes_their_own(db, world):
    client = world["clients"]["customer_a"]
    assert "Alice-Marker" in client.get("/account/profile").get_data(as_text=True)
    assert "Alice-Street-Marker" in client.get("/account/addresses").get_data(as_text=True)
    assert "a-o00" in client.get("/account/orders").get_data(as_text=True)
    edit = f"/account/addresses/{world['address_id']}/edit"
    response = client.post(
        edit, data={**ADDRESS, "line1": "New Street", "csrf_token": csrf_token(client, edit)}
    )
    assert response.status_code == 303
    assert a_data(db, world["site"].site_id)[1] == ["New Street"]
    assert "Alice-Consent-Marker" in client.get("/account/preferences").get_data(as_text=True)
    assert "Alice-Consent-Marker" in client.get("/account/privacy").get_data(as_text=True)
    assert "Alice-Inquiry-Marker" in client.get("/account/inquiries").get_data(as_text=True)
    thread = client.get(f"/account/inquiries/{world['inquiry_id']}").get_data(as_text=True)
    assert "Alice-Message-Marker" in thread
    assert "a-o00" in client.get("/account/inquiries/new").get_data(as_text=True)
    exported = client.get("/account/data/export.json").get_data(as_text=True)
    for marker in ("Alice-Marker", "New Street", "Alice-Consent-Marker", "a-o00"):
        assert marker in exported, marker


def test_the_customer_api_takes_no_cookies_and_no_other_sites_key(world):
    site, other = world["site"], world["other"]
    for actor in ACTORS:
        client = world["clients"][actor]
        assert client.get("/v1/customers/a").status_code == 401
        assert client.post("/v1/portal/sessions", json={"user_id": "a"}).status_code == 401
    client = world["clients"]["signed_out"]
    theirs = client.get("/v1/customers/a", auth=(other.server_key, "")).get_json()
    assert theirs["email"] == "other-a@example.com"
    assert not set(MARKERS) & set(str(theirs).split("'"))
    assert "Alice-Marker" not in str(theirs)
    mine = client.get("/v1/customers/a", auth=(site.server_key, "")).get_json()
    assert mine["name"] == "Alice-Marker"
    # A portal URL from the other site signs in the other site's "a", never A.
    other_client = world["clients"]["other_site"]
    assert "Alice-Marker" not in other_client.get("/account/profile").get_data(as_text=True)


def test_ids_too_big_for_any_column_are_a_404_not_a_database_error(world):
    client = world["clients"]["customer_a"]
    for big in (2**63, 10**30):
        for path in (f"/account/addresses/{big}/edit", f"/account/inquiries/{big}"):
            assert client.get(path).status_code == 404, path
