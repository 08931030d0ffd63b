"""The portal in Chromium: a shop's portal URL, the profile with an error beside its field, an
address added and deleted (the confirm dialog of static/portal.js), Korean, sign-out back to the
shop. No policy violation, no script error, and the session cookie is HttpOnly.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def portal_url(shop, user_id: str, **fields) -> str:
    client = shop.app.test_client()
    response = client.post(
        "/v1/portal/sessions", json={"user_id": user_id, **fields}, auth=(shop_key(shop), "")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["url"]


def shop_key(shop) -> str:
    from tracking.sites import rotate_server_key

    if not hasattr(shop, "server_key"):
        shop.server_key = rotate_server_key(shop.app.extensions["ecrm"].engine, shop.site.write_key)
    return shop.server_key


def test_a_customer_edits_their_account_from_the_shops_link(shop, page):
    shop.app.config["PUBLIC_URL"] = shop.collector
    page.add_init_script(RECORD_VIOLATIONS)
    url = portal_url(shop, "cust-7", return_url=f"{shop.origin}/shop/home")
    token = url.rsplit("/", 1)[1]

    page.goto(url)
    page.wait_for_url(f"{shop.collector}/account/")
    assert token not in page.url
    assert page.evaluate("document.cookie") == ""  # HttpOnly
    assert page.inner_text("h1") == "Your account"

    page.click("nav.sections a:has-text('Profile')")
    page.fill("#name", "Kim Minji")
    page.fill("#phone", "12")
    page.fill("#birthday", "1990-04-30")
    page.click("form.stacked button:has-text('Save')")
    assert "7 to 15 digits" in page.inner_text("#phone-error")
    assert page.get_attribute("#phone", "aria-invalid") == "true"
    page.fill("#phone", "+82 2 1234 5678")
    page.click("form.stacked button:has-text('Save')")
    page.wait_for_url("**/account/profile?saved=1")
    assert page.input_value("#phone") == "+82212345678"

    page.click("nav.sections a:has-text('Addresses')")
    page.click("a:has-text('Add a shipping address')")
    page.fill("#name", "Kim Minji")
    page.fill("#line1", "12 Sejong-daero")
    page.fill("#city", "Seoul")
    page.fill("#country", "kr")
    page.click("form.stacked button:has-text('Save')")
    page.wait_for_url("**/account/addresses")
    assert "12 Sejong-daero" in page.inner_text("li.address")
    assert "Default" in page.inner_text("li.address")

    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("li.address button:has-text('Delete')")
    assert dialogs == ["Delete this address?"]
    assert page.locator("li.address").count() == 1  # dismissed: kept
    page.once("dialog", lambda d: d.accept())
    page.click("li.address button:has-text('Delete')")
    page.wait_for_load_state()
    assert page.locator("li.address").count() == 0

    page.click("header.top button:has-text('Sign out')")
    page.wait_for_url(f"{shop.origin}/shop/home")
    page.goto(f"{shop.collector}/account/")
    assert "/account/sign-in" in page.url or page.url.endswith("/account/sign-in/site")
    page.goto(url)  # the link is spent
    assert "no longer works" in page.inner_text("main")
    page.goto(f"{shop.collector}/account/orders")  # any page: the policy held everywhere
    assert page.evaluate("window.__csp") == []


def test_the_portal_speaks_korean_when_the_shop_asks(shop, page):
    shop.app.config["PUBLIC_URL"] = shop.collector
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(portal_url(shop, "cust-8", locale="ko"))
    page.wait_for_url(f"{shop.collector}/account/")
    assert page.inner_text("h1") == "내 계정"
    assert page.get_attribute("html", "lang") == "ko"
    page.click("nav.sections a:has-text('주문 내역')")
    assert "아직 주문이 없습니다." in page.inner_text("main")
    assert page.evaluate("window.__csp") == []
