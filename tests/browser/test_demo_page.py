"""The demo shop in Chromium: it works under its Content-Security-Policy (the tracker and the
widget still send and render, and the browser reports no violation), and its header fits a
390 px wide phone."""

from __future__ import annotations

import pytest

from demo.load import DEMO_SITE_NAME
from tracking.catalogue import upsert_items, validate_item
from tracking.schema import events
from tracking.sites import create_site

READY = "[data-ecrm-recs][data-ecrm-state=ready]"
# Collected before any page script runs (init scripts are not subject to the page's policy).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


@pytest.fixture
def demo(shop):
    """The live app with the demo site (on the collector's origin) and a small catalogue."""
    engine = shop.app.extensions["ecrm"].engine
    shop.site, _ = create_site(engine, DEMO_SITE_NAME, [shop.collector])
    items = [
        {
            "item_id": f"sku-{i}",
            "title": f"Record {i}",
            "category": "Music/Jazz",
            "price": 10 + i,
            "url": f"/demo/products/sku-{i}",
            "image_url": f"/demo/img/sku-{i}.svg",
        }
        for i in range(1, 6)
    ]
    upsert_items(engine, shop.site.site_id, [validate_item(i) for i in items])
    return shop


def violations(page) -> list[str]:
    return page.evaluate("window.__csp")


def test_the_demo_works_under_its_policy_with_no_violation(demo, page, context):
    context.add_init_script(RECORD_VIOLATIONS)
    console = []
    page.on("console", lambda m: console.append(m.text))
    page.goto(f"{demo.collector}/demo/")
    page.wait_for_selector(READY)
    assert violations(page) == []
    page.click(".card-link >> nth=0")
    page.wait_for_url("**/products/sku-*")
    page.wait_for_selector(READY)
    assert violations(page) == []
    page.click("#add-to-cart")
    page.wait_for_url("**/cart")
    page.wait_for_selector(READY)
    assert violations(page) == []
    for path in ("/demo/checkout", "/demo/signin", "/demo/products/nope"):
        page.goto(f"{demo.collector}{path}")
        page.wait_for_load_state("load")
        assert violations(page) == [], path
    assert not [m for m in console if "Content Security Policy" in m], console
    # The tracker's events arrived (the widget drew from the API above).
    demo.wait_event("Cart Viewed")
    assert demo.rows(events.c.event == "Product Added")


def test_the_policy_is_enforced(demo, page, context):
    """The control: an inline script the policy does not allow is refused and reported."""
    context.add_init_script(RECORD_VIOLATIONS)
    page.goto(f"{demo.collector}/demo/")
    page.evaluate(
        "document.head.append(Object.assign(document.createElement('script'),"
        " {textContent: 'window.__ran = 1'}))"
    )
    page.wait_for_function("window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None
    assert violations(page)[0].startswith("script-src")
    page.watch.console.clear()  # the browser logs the refusal; that is this test's point


def boxes_overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


@pytest.mark.parametrize("signed_in", [False, True], ids=["signed-out", "signed-in"])
def test_the_header_fits_a_390px_phone(demo, browser, signed_in):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        if signed_in:
            page.goto(f"{demo.collector}/demo/signin")
            page.fill("#email", "ada@example.test")
            page.click("#signin-submit")
            page.wait_for_url("**/demo/")
        else:
            page.goto(f"{demo.collector}/demo/")
        search = page.locator(".search button").bounding_box()
        account = page.locator("#signout" if signed_in else "#signin").bounding_box()
        cart = page.locator("#cart-link").bounding_box()
        assert not boxes_overlap(search, account), (search, account)
        assert not boxes_overlap(search, cart), (search, cart)
        assert not boxes_overlap(page.locator(".search input").bounding_box(), account)
        # Nothing sticks out sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for box in (search, account, cart):
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    finally:
        context.close()


def test_my_account_opens_the_portal_and_leads_back(demo, page, context):
    context.add_init_script(RECORD_VIOLATIONS)
    page.goto(f"{demo.collector}/demo/signin")
    page.fill("#email", "ada@example.test")
    page.click("#signin-submit")
    page.wait_for_url(f"{demo.collector}/demo/")
    page.click("#my-account")
    page.wait_for_url(f"{demo.collector}/account/")
    assert "/enter/" not in page.url
    assert page.inner_text("header.top .brand") == DEMO_SITE_NAME
    assert violations(page) == []
    page.click("text=Back to the shop")
    page.wait_for_url(f"{demo.collector}/demo/")
    assert violations(page) == []
