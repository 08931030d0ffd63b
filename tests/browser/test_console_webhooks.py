"""The owner's Webhooks page in Chromium: set a URL, see and rotate the secret, read the log,
re-enable a disabled endpoint; all under the console's policy, without script."""

from __future__ import annotations

import pytest

from accounts.webhook_delivery import Deliverer, DeliverySettings
from accounts.webhooks import emit, get_endpoint, set_endpoint
from tests.staff_helpers import PASSWORD, make_staff

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def test_an_owner_sets_the_url_rotates_the_secret_and_re_enables(shop, page, context):
    engine = shop.app.extensions["ecrm"].engine
    site_id = shop.site.site_id
    make_staff(shop.app, "olga@shop.example", {site_id: "owner"})
    context.add_init_script(RECORD_VIOLATIONS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{shop.origin}/console/sign-in")
    page.fill("#email", "olga@shop.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.click("nav.sections >> text=Webhooks")
    assert page.locator("h1").inner_text() == "Webhooks"

    page.fill("#webhook-url", "http://192.168.0.10/hooks")
    page.click("text=Create endpoint")
    assert "a private address" in page.locator("#url-error").inner_text()
    assert page.locator("#webhook-url").input_value() == "http://192.168.0.10/hooks"

    page.fill("#webhook-url", "https://8.8.8.8/hooks")
    page.click("text=Create endpoint")
    first = page.locator("#webhook-secret").inner_text()
    assert first == get_endpoint(engine, site_id).secret
    page.click("text=Rotate the secret")
    second = page.locator("#webhook-secret").inner_text()
    assert second != first and second == get_endpoint(engine, site_id).secret

    # Nothing listens on port 9: one failure disables the endpoint here (disable_after=1).
    set_endpoint(engine, site_id, "http://127.0.0.1:9/hooks", allow_private=True)
    with engine.begin() as conn:
        emit(conn, site_id=site_id, event_type="customer.updated", data={"user_id": "c-1"})
    Deliverer(engine, DeliverySettings(timeout=2.0, disable_after=1)).run_once()
    page.goto(f"{shop.origin}/console/{site_id}/webhooks")
    assert "1 failed attempts in a row" in page.locator("#endpoint-state").inner_text()
    assert "customer.updated" in page.locator("#attempts").inner_text()
    page.click("text=Re-enable the endpoint")
    assert page.locator("#endpoint-state").inner_text().startswith("State: enabled")
    assert dialogs == []
    assert page.evaluate("window.__csp") == []
