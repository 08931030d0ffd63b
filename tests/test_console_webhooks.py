"""The owner's Webhooks page: set the URL, see and rotate the secret, the log, re-enable."""

from __future__ import annotations

import html
import re

import pytest
from markupsafe import escape

from accounts import audit
from accounts.messaging_schema import webhook_endpoints
from accounts.webhook_delivery import Deliverer, DeliverySettings
from accounts.webhooks import emit, get_endpoint, set_endpoint
from tests.staff_helpers import csrf_token, sign_in
from tests.test_webhooks import Receiver
from tracking.sites import create_site

PUBLIC_URL = "https://8.8.8.8/hooks/ecrm"  # an address literal: no DNS needed to check it


@pytest.fixture
def shops(db):
    a, _ = create_site(db, "Shop A", ["https://a.example"])
    b, _ = create_site(db, "Shop B", ["https://b.example"])
    return a, b


@pytest.fixture
def owner(app, client, shops):
    a, _ = shops
    return sign_in(client, app, "owner@a.example", {a.site_id: "owner"})


def _post(client, site_id: int, action: str, **data):
    token = csrf_token(client, f"/console/{site_id}/webhooks")
    return client.post(f"/console/{site_id}/webhooks/{action}", data={"csrf_token": token, **data})


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_an_owner_sets_the_url_and_then_sees_the_secret(client, db, shops, owner):
    a, _ = shops
    page = client.get(f"/console/{a.site_id}/webhooks")
    assert page.status_code == 200
    assert "Create endpoint" in _text(page) and 'id="webhook-secret"' not in _text(page)
    assert f'href="/console/{a.site_id}/webhooks' in _text(page)  # in the navigation
    answer = _post(client, a.site_id, "url", url=PUBLIC_URL)
    assert answer.status_code == 303
    endpoint = get_endpoint(db, a.site_id)
    assert endpoint.url == PUBLIC_URL and endpoint.enabled and not endpoint.allow_private
    text = _text(client.get(f"/console/{a.site_id}/webhooks"))
    assert f'<code id="webhook-secret">{endpoint.secret}</code>' in text
    assert "State: <strong>enabled</strong>" in text
    [entry] = [e for e in audit.entries(db, [a.site_id]) if e.action == "webhook_url_set"]
    assert entry.email == "owner@a.example" and entry.detail["host"] == "8.8.8.8"
    assert endpoint.secret not in str(entry.detail)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter the https:// address"),
        ("http://127.0.0.1:8000/hooks", "a loopback address"),
        ("http://10.0.0.7/hooks", "a private address"),
        ("ftp://8.8.8.8/x", "must start with https://"),
        ('https://8.8.8.8/"><script>alert(1)</script>', "must be percent-encoded"),
        ("https://8.8.8.8/?" + "a" * 2100, "longer than 2000"),
    ],
)
def test_a_url_that_is_refused_is_shown_again_with_the_reason_beside_it(
    client, db, shops, owner, url, message
):
    a, _ = shops
    answer = _post(client, a.site_id, "url", url=url)
    assert answer.status_code == 422
    text = _text(answer)
    error = re.search(r'<span class="error" id="url-error">([^<]*)</span>', text)
    assert error and message in html.unescape(error.group(1))
    assert 'aria-describedby="url-error"' in text
    assert "<script>alert(1)</script>" not in text
    if url and len(url) < 200:
        assert f'value="{escape(url)}"' in text
    assert get_endpoint(db, a.site_id) is None


def test_rotating_the_secret_replaces_it_and_is_audited(client, db, shops, owner):
    a, _ = shops
    answer = _post(client, a.site_id, "rotate")
    assert answer.status_code == 422 and "Set a webhook URL first." in _text(answer)
    _post(client, a.site_id, "url", url=PUBLIC_URL)
    before = get_endpoint(db, a.site_id).secret
    assert _post(client, a.site_id, "rotate").status_code == 303
    after = get_endpoint(db, a.site_id).secret
    assert after != before
    text = _text(client.get(f"/console/{a.site_id}/webhooks"))
    assert after in text and before not in text and "Rotated " in text
    actions = [(e.action, e.email) for e in audit.entries(db, [a.site_id])]
    assert actions[0] == ("webhook_secret_rotated", "owner@a.example")


def test_a_disabled_endpoint_says_why_and_the_owner_re_enables_it(client, db, shops, owner):
    a, _ = shops
    assert _post(client, a.site_id, "enable").status_code == 422
    set_endpoint(db, a.site_id, PUBLIC_URL)
    from datetime import UTC, datetime

    with db.begin() as conn:
        conn.execute(
            webhook_endpoints.update().values(
                enabled=False,
                disabled_at=datetime.now(UTC),
                disabled_reason="20 failed attempts in a row; the last: HTTP <500>",
                consecutive_failures=20,
            )
        )
    text = _text(client.get(f"/console/{a.site_id}/webhooks"))
    assert "the last: HTTP &lt;500&gt;" in text and "Re-enable the endpoint" in text
    assert _post(client, a.site_id, "enable").status_code == 303
    endpoint = get_endpoint(db, a.site_id)
    assert endpoint.enabled and endpoint.consecutive_failures == 0
    assert "Re-enable the endpoint" not in _text(client.get(f"/console/{a.site_id}/webhooks"))
    entry = audit.entries(db, [a.site_id])[0]
    assert (entry.action, entry.email, entry.detail) == (
        "webhook_enabled",
        "owner@a.example",
        {"was_disabled": True},
    )


def test_the_page_shows_the_latest_events_and_the_delivery_log(client, db, shops, owner):
    a, _ = shops
    receiver = Receiver()
    try:
        receiver.statuses = [500]
        set_endpoint(db, a.site_id, receiver.url, allow_private=True)
        with db.begin() as conn:
            emit(conn, site_id=a.site_id, event_type="address.created", data={"user_id": "c"})
        settings = DeliverySettings(retry_seconds=600.0)
        Deliverer(db, settings).run_once()
        text = _text(client.get(f"/console/{a.site_id}/webhooks"))
    finally:
        receiver.close()
    assert "address.created" in text and "HTTP 500" in text
    assert re.search(r'<td class="number">500</td>', text)
    assert "may use a private or loopback address" in text
    assert "No attempts yet." not in text


def test_only_owners_of_the_site_open_the_page(app, db, shops):
    a, b = shops
    for email, grants, expected in [
        ("viewer@a.example", {a.site_id: "viewer"}, 403),
        ("marketer@a.example", {a.site_id: "marketer"}, 403),
        ("owner@b.example", {b.site_id: "owner"}, 404),
    ]:
        client = app.test_client()
        sign_in(client, app, email, grants)
        assert client.get(f"/console/{a.site_id}/webhooks").status_code == expected
        if expected == 403:  # and the navigation does not offer it
            page = client.get(f"/console/{a.site_id}/", follow_redirects=True)
            assert page.status_code == 200 and "/webhooks" not in _text(page)
    assert app.test_client().get(f"/console/{a.site_id}/webhooks").status_code == 302
