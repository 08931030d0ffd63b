"""Owners' staff and audit pages, who may open them, and CSRF on every form this adds."""

from __future__ import annotations

import re

import pytest

from accounts import audit
from accounts.links import issue_link
from accounts.staff import create_staff, find_staff
from tests.staff_helpers import PASSWORD, csrf_token, make_staff, sign_in
from tracking.sites import create_site


@pytest.fixture
def engine(app):
    return app.extensions["ecrm"].engine


@pytest.fixture
def shops(engine):
    a, _ = create_site(engine, "Shop A", ["https://a.example"])
    b, _ = create_site(engine, "Shop B", ["https://b.example"])
    return a, b


@pytest.fixture
def owner(app, client, shops):
    a, _ = shops
    return sign_in(client, app, "owner@a.example", {a.site_id: "owner"})


def test_an_owner_sees_the_sites_staff_and_their_open_sessions(app, client, shops, owner):
    a, b = shops
    colleague = app.test_client()
    seen = sign_in(colleague, app, "vera@a.example", {a.site_id: "viewer"})
    make_staff(app, "only-b@b.example", {b.site_id: "owner"})
    page = client.get(f"/console/{a.site_id}/staff")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "vera@a.example" in text and "owner@a.example" in text
    assert "only-b@b.example" not in text
    assert seen.session_id in text


def test_an_owner_ends_a_session_and_that_browser_is_signed_out_at_once(
    app, client, engine, shops, owner
):
    a, _ = shops
    colleague = app.test_client()
    seen = sign_in(colleague, app, "vera@a.example", {a.site_id: "viewer"})
    assert colleague.get("/console/account").status_code == 200
    token = csrf_token(client, f"/console/{a.site_id}/staff")
    ended = client.post(
        f"/console/{a.site_id}/staff/sessions/end",
        data={"csrf_token": token, "session_id": seen.session_id},
    )
    assert ended.status_code == 303
    assert colleague.get("/console/account").status_code == 302
    entry = audit.entries(engine, [a.site_id])[0]
    assert (entry.action, entry.site_id, entry.detail["target"]) == (
        "session_ended",
        a.site_id,
        "vera@a.example",
    )


def test_an_owner_cannot_end_sessions_of_another_sites_staff(app, client, shops, owner):
    a, b = shops
    other = app.test_client()
    theirs = sign_in(other, app, "bob@b.example", {b.site_id: "owner"})
    token = csrf_token(client, f"/console/{a.site_id}/staff")
    response = client.post(
        f"/console/{a.site_id}/staff/sessions/end",
        data={"csrf_token": token, "session_id": theirs.session_id},
    )
    assert response.status_code == 404
    assert other.get("/console/account").status_code == 200


def test_inviting_a_new_email_shows_a_one_time_link_once(app, client, engine, shops, owner):
    a, _ = shops
    token = csrf_token(client, f"/console/{a.site_id}/staff")
    page = client.post(
        f"/console/{a.site_id}/staff/grant",
        data={"csrf_token": token, "email": "New@A.example", "role": "marketer"},
    )
    assert page.status_code == 200
    link = re.search(
        r"http://127\.0\.0\.1:8000(/console/welcome/[\w-]+)", page.get_data(as_text=True)
    )
    assert link
    assert find_staff(engine, "new@a.example").grants == {a.site_id: "marketer"}
    assert app.test_client().get(link.group(1)).status_code == 200
    assert "/console/welcome/" not in client.get(f"/console/{a.site_id}/staff").get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    "form, field, message",
    [
        ({"email": "x@a.example", "role": "king"}, "grant-role", "Choose one of"),
        ({"email": "not an email", "role": "viewer"}, "grant-email", "is not an email address"),
        ({"email": "owner@a.example", "role": "viewer"}, "grant-email", "your own role"),
    ],
)
def test_a_bad_grant_form_is_shown_again_with_the_error_beside_the_field(
    app, client, shops, owner, form, field, message
):
    a, _ = shops
    token = csrf_token(client, f"/console/{a.site_id}/staff")
    response = client.post(f"/console/{a.site_id}/staff/grant", data={"csrf_token": token, **form})
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert f'id="{field}-error"' in text and message in text


def test_grant_revoke_and_disable_from_the_console(app, client, engine, shops, owner):
    a, b = shops
    make_staff(app, "vera@a.example", {a.site_id: "viewer"})
    vera = find_staff(engine, "vera@a.example")
    token = csrf_token(client, f"/console/{a.site_id}/staff")
    client.post(
        f"/console/{a.site_id}/staff/grant",
        data={"csrf_token": token, "email": "vera@a.example", "role": "marketer"},
    )
    assert find_staff(engine, "vera@a.example").grants == {a.site_id: "marketer"}
    colleague = app.test_client()
    sign_in(colleague, app, "vera@a.example", {})
    disabled = client.post(
        f"/console/{a.site_id}/staff/{vera.staff_id}/disable", data={"csrf_token": token}
    )
    assert disabled.status_code == 303
    assert find_staff(engine, "vera@a.example").disabled
    assert colleague.get("/console/account").status_code == 302
    revoked = client.post(
        f"/console/{a.site_id}/staff/{vera.staff_id}/revoke", data={"csrf_token": token}
    )
    assert revoked.status_code == 303
    assert find_staff(engine, "vera@a.example").grants == {}
    actions = {e.action for e in audit.entries(engine, [a.site_id])}
    assert {"staff_granted", "staff_disabled", "staff_revoked", "sign_in"} <= actions


def test_an_owner_cannot_disable_someone_who_also_works_on_a_site_they_do_not_own(
    app, client, engine, shops, owner
):
    a, b = shops
    make_staff(app, "bob@b.example", {a.site_id: "viewer", b.site_id: "owner"})
    bob = find_staff(engine, "bob@b.example")
    token = csrf_token(client, f"/console/{a.site_id}/staff")
    response = client.post(
        f"/console/{a.site_id}/staff/{bob.staff_id}/disable", data={"csrf_token": token}
    )
    assert response.status_code == 422
    assert "sites you do not own" in response.get_data(as_text=True)
    assert not find_staff(engine, "bob@b.example").disabled
    self_disable = client.post(
        f"/console/{a.site_id}/staff/{owner.staff_id}/disable", data={"csrf_token": token}
    )
    assert self_disable.status_code == 422


@pytest.mark.parametrize("page", ["staff", "audit"])
@pytest.mark.parametrize("role", ["viewer", "marketer"])
def test_viewers_and_marketers_cannot_open_owner_pages(app, client, shops, page, role):
    a, _ = shops
    sign_in(client, app, "someone@a.example", {a.site_id: role})
    assert client.get(f"/console/{a.site_id}/{page}").status_code == 403


@pytest.mark.parametrize("page", ["staff", "audit"])
def test_the_owner_of_site_b_cannot_open_site_a(app, client, shops, page):
    a, b = shops
    sign_in(client, app, "bob@b.example", {b.site_id: "owner"})
    assert client.get(f"/console/{b.site_id}/{page}").status_code == 200
    assert client.get(f"/console/{a.site_id}/{page}").status_code == 404


def test_signed_out_owner_pages_send_to_sign_in(client, shops):
    a, _ = shops
    response = client.get(f"/console/{a.site_id}/audit")
    assert response.status_code == 302 and "/console/sign-in" in response.headers["Location"]


def test_the_audit_page_shows_the_sites_entries_and_its_staffs_sign_ins_paged(
    app, client, engine, shops, owner
):
    a, b = shops
    for n in range(55):
        audit.record(engine, "rules_changed", site_id=a.site_id, detail={"n": n})
    audit.record(engine, "rules_changed", site_id=b.site_id, detail={"n": "other shop"})
    audit.record(engine, "sign_in", staff_id=999, email="stranger@b.example")
    first = client.get(f"/console/{a.site_id}/audit").get_data(as_text=True)
    assert "n: 54" in first and "other shop" not in first and "stranger" not in first
    older = re.search(r'href="([^"]+before=\d+)"', first).group(1).replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert "n: 4" in second and "n: 54" not in second
    assert "owner@a.example" in second and "sign in" in second  # the owner's own sign-in


def test_html_in_audit_details_renders_as_text(app, client, engine, shops, owner):
    a, _ = shops
    audit.record(engine, "rules_changed", site_id=a.site_id, detail={"x": "<img src=x>"})
    page = client.get(f"/console/{a.site_id}/audit").get_data(as_text=True)
    assert "<img src=x>" not in page and "&lt;img src=x&gt;" in page


def state_changing_routes(a_site_id: int, staff_id: int, session_id: str, link: str):
    return [
        ("/console/sign-in", {"email": "owner@a.example", "password": PASSWORD}),
        ("/console/sign-out", {}),
        (link, {"password": PASSWORD, "confirm": PASSWORD}),
        ("/console/account/sessions/end", {"session_id": session_id}),
        (f"/console/{a_site_id}/staff/grant", {"email": "x@a.example", "role": "viewer"}),
        (f"/console/{a_site_id}/staff/{staff_id}/revoke", {}),
        (f"/console/{a_site_id}/staff/{staff_id}/disable", {}),
        (f"/console/{a_site_id}/staff/sessions/end", {"session_id": session_id}),
    ]


@pytest.mark.parametrize("token", ["missing", "forged"])
def test_every_form_of_sign_in_and_staff_pages_refuses_a_post_without_its_csrf_token(
    app, client, engine, shops, owner, token
):
    a, _ = shops
    colleague = app.test_client()
    theirs = sign_in(colleague, app, "vera@a.example", {a.site_id: "viewer"})
    invited = create_staff(engine, "new@a.example", "viewer", [a.site_id])
    link = "/console/welcome/" + issue_link(engine, invited)
    before = len(audit.entries(engine, None, limit=500))
    for path, form in state_changing_routes(a.site_id, theirs.staff_id, theirs.session_id, link):
        if token == "forged":
            form = {**form, "csrf_token": "forged-token"}
        response = client.post(path, data=form)
        assert response.status_code == 400, path
        assert response.mimetype == "text/html", path
        assert "CSRF" in response.get_data(as_text=True), path
    assert len(audit.entries(engine, None, limit=500)) == before  # nothing happened
    assert colleague.get("/console/account").status_code == 200
    assert client.get("/console/account").status_code == 200
    assert find_staff(engine, "vera@a.example").grants == {a.site_id: "viewer"}
    assert find_staff(engine, "new@a.example").invited  # the link was not used
