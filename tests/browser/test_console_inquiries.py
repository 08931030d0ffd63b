"""Inquiries in Chromium: a customer's markup is text in the queue, the thread and the 360 page.

A customer's inquiry with markup in its subject and text is listed, opened and answered by a
marketer through the page's form (the reply holds markup too); nothing of it becomes an element,
the report's chart draws, and no page breaks the console's Content-Security-Policy.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.inquiries import get_inquiry, open_inquiry
from accounts.staff import create_staff
from tracking.schema import customers

pytestmark = pytest.mark.browser

PASSWORD = "a long enough password"
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def test_inquiry_text_with_html_renders_as_text(shop, page):
    engine = shop.app.extensions["ecrm"].engine
    site_id = shop.site.site_id
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            customers.insert().values(
                site_id=site_id, user_id="cust-1", traits={}, first_seen_at=now, last_seen_at=now
            )
        )
        inquiry_id = open_inquiry(
            conn,
            site_id,
            "cust-1",
            category="complaint",
            subject=f"Broken {IMG}",
            body=f"It arrived broken {SCRIPT}\nsecond line",
        )
    create_staff(engine, "mia@shop.example", "marketer", [site_id], password=PASSWORD)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(f"{shop.collector}/console/sign-in")
    page.fill("#email", "mia@shop.example")
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"**/console/{site_id}/**")

    page.goto(f"{shop.collector}/console/{site_id}/inquiries?status=open")
    assert f"Broken {IMG}" in page.inner_text("#queue")
    page.click("#queue a:has-text('Broken')")
    page.wait_for_url(f"**/console/{site_id}/inquiries/{inquiry_id}")
    assert f"It arrived broken {SCRIPT}\nsecond line" in page.inner_text("#thread")
    page.fill("#reply-body", f"Sorry {IMG}, a new one is on its way.")
    page.click("#reply button[type=submit]")
    page.wait_for_url(f"**/console/{site_id}/inquiries/{inquiry_id}#thread")
    assert f"Sorry {IMG}, a new one is on its way." in page.inner_text("#thread")
    assert page.inner_text("#status") == "answered"
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0

    page.goto(f"{shop.collector}/console/{site_id}/customers/cust-1")
    assert f"Broken {IMG}" in page.inner_text("#inquiries")
    assert page.locator("main img").count() == 0

    page.goto(f"{shop.collector}/console/{site_id}/inquiries/report?range=7")
    page.wait_for_selector("#by_category figure.chart[data-drawn]")
    assert "complaint" in page.inner_text("#by_category table")
    assert dialogs == []
    assert page.evaluate("window.__csp") == []
    with engine.connect() as conn:
        assert get_inquiry(conn, site_id, inquiry_id).first_reply_at is not None
