"""The portal's preferences, privacy and inquiry pages in Chromium: the grid and the
personalisation toggle post their forms (CSRF token included) and say what changed, inquiry
text with HTML renders as text in the list and the thread, and no policy violation or script
error happens on the way.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from accounts.prefs_schema import consent_records
from tests.browser.test_portal import RECORD_VIOLATIONS, portal_url

pytestmark = pytest.mark.browser

HOSTILE = '<img src="x" onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>'


def signed_in(shop, page, user_id: str) -> None:
    shop.app.config["PUBLIC_URL"] = shop.collector
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(portal_url(shop, user_id))
    page.wait_for_url(f"{shop.collector}/account/")


def consent_rows(shop, user_id: str) -> list[tuple[str, bool, str]]:
    with shop.app.extensions["ecrm"].engine.connect() as conn:
        rows = conn.execute(
            sa.select(consent_records.c.what, consent_records.c.granted, consent_records.c.source)
            .where(consent_records.c.user_id == user_id)
            .order_by(consent_records.c.id)
        ).all()
    return [tuple(r) for r in rows]


def test_the_preferences_and_privacy_forms_work(shop, page):
    signed_in(shop, page, "cust-21")
    page.click("nav.sections a:has-text('Preferences')")
    assert page.inner_text("h1") == "Communication preferences"
    assert not page.is_checked("input[name='email:offers']")
    assert page.is_checked("input[name='email:order_updates']")
    page.check("input[name='email:offers']")
    page.uncheck("input[name='sms:order_updates']")
    page.click("form.grid button:has-text('Save my choices')")
    page.wait_for_url("**/account/preferences?saved=1")
    assert page.is_checked("input[name='email:offers']")
    assert not page.is_checked("input[name='sms:order_updates']")
    history = page.inner_text("table.history")
    assert "Email: Offers and discounts" in history and "SMS: Updates about your orders" in history
    assert consent_rows(shop, "cust-21") == [
        ("email:offers", True, "portal"),
        ("sms:order_updates", False, "portal"),
    ]

    page.click("nav.sections a:has-text('Privacy')")
    assert "Personalisation is on" in page.inner_text("#personalisation-state")
    page.click("#personalisation-toggle")
    page.wait_for_url("**/account/privacy?saved=1")
    assert "Personalisation is off" in page.inner_text("#personalisation-state")
    assert "personalisation_off" in page.inner_text("#recommendation-source")
    assert "popular items" in page.inner_text("#recommendation-source")
    page.click("#personalisation-toggle")
    page.wait_for_url("**/account/privacy?saved=1")
    assert "Personalisation is on" in page.inner_text("#personalisation-state")
    assert consent_rows(shop, "cust-21")[2:] == [
        ("personalisation", False, "portal"),
        ("personalisation", True, "portal"),
    ]
    assert page.evaluate("window.__csp") == []


def test_inquiry_text_with_html_renders_as_text(shop, page):
    signed_in(shop, page, "cust-22")
    page.click("nav.sections a:has-text('Inquiries')")
    page.click("a:has-text('Ask the shop something')")
    page.select_option("#category", "complaint")
    page.fill("#subject", "<b>Subject</b> " + HOSTILE)
    page.fill("#body", "Body " + HOSTILE)
    page.click("form.stacked button:has-text('Send')")
    page.wait_for_url("**/account/inquiries/*")
    body = page.locator("li.message .body")
    assert body.inner_text() == "Body " + HOSTILE
    assert page.inner_text("h1") == "<b>Subject</b> " + HOSTILE
    assert page.locator("main b, main img, main script").count() == 0
    assert "Complaint" in page.inner_text("p.meta")

    page.fill("#body", "Second " + HOSTILE)
    page.click("form.stacked button:has-text('Send')")
    page.wait_for_url("**/account/inquiries/*#thread")
    assert page.locator("li.message .body").nth(1).inner_text() == "Second " + HOSTILE

    page.click("nav.sections a:has-text('Inquiries')")
    assert ("<b>Subject</b> " + HOSTILE) in page.inner_text("table.inquiries")
    assert page.locator("table.inquiries b, table.inquiries img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("window.__csp") == []
