"""Customer 360 in Chromium: HTML in traits, event names and item titles shows as text.

A customer whose verified traits, claimed traits, events and catalogue items hold markup is found
by search and opened; nothing of it becomes an element, the weekly activity chart draws, and the
page runs under the console's Content-Security-Policy with no violation and no console error.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts.staff import create_staff
from tests.conftest import store_events
from tracking.catalogue import upsert_items, validate_item
from tracking.events import iso

pytestmark = pytest.mark.browser

PASSWORD = "a long enough password"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def hostile_customer(shop) -> None:
    """cust-1 with markup in a verified trait, a claim, an event name, an item title."""
    engine = shop.app.extensions["ecrm"].engine
    now = datetime.now(UTC)
    upsert_items(
        engine,
        shop.site.site_id,
        [validate_item({"title": f"Mug {IMG}"}, item_id="sku-1")],
    )

    def event(**fields) -> dict:
        return {"messageId": str(uuid.uuid4()), "anonymousId": "device-1", **fields}

    store_events(
        engine,
        shop.site.site_id,
        [
            event(
                type="identify",
                userId="cust-1",
                timestamp=iso(now - timedelta(days=2)),
                traits={"name": f"Ada {IMG}", "email": "ada@example.test", "note": SCRIPT},
            ),
            event(
                type="track",
                event=IMG,
                timestamp=iso(now - timedelta(days=1)),
                properties={"detail": SCRIPT},
            ),
            event(
                type="track",
                event="Product Viewed",
                timestamp=iso(now - timedelta(hours=1)),
                properties={"product_id": "sku-1"},
            ),
        ],
    )


def sign_in(shop, page) -> None:
    engine = shop.app.extensions["ecrm"].engine
    create_staff(engine, "vera@shop.example", "viewer", [shop.site.site_id], password=PASSWORD)
    page.goto(f"{shop.collector}/console/sign-in")
    page.fill("#email", "vera@shop.example")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**/console/{shop.site.site_id}/**")


def test_markup_in_a_customers_data_is_text_and_the_chart_draws(shop, page):
    hostile_customer(shop)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script(RECORD_VIOLATIONS)
    sign_in(shop, page)

    page.goto(f"{shop.collector}/console/{shop.site.site_id}/customers")
    page.fill("#q", "ada")
    page.click("form.search button[type=submit]")
    page.wait_for_selector("#results")
    assert f"Ada {IMG}" in page.inner_text("#results")
    page.click("#results a:has-text('cust-1')")
    page.wait_for_url(f"**/console/{shop.site.site_id}/customers/cust-1")

    page.wait_for_selector("figure.chart[data-drawn]")
    assert f"Ada {IMG}" in page.inner_text("#traits")
    assert SCRIPT in page.inner_text("#traits")
    timeline = page.inner_text("#timeline")
    assert IMG in timeline  # the event's name
    assert f"Mug {IMG}" in timeline  # the item's title
    page.click("#timeline details summary >> nth=1")  # open the hostile event's payload
    assert SCRIPT in page.inner_text("#timeline details[open] pre")
    # None of it became an element, so nothing could run.
    assert page.locator("main img").count() == 0
    assert page.locator("main script:not([type='application/json'])").count() == 0
    assert dialogs == []
    assert page.evaluate("window.__csp") == []
