"""Tracking consent from the shop's page to the customer's privacy page, in Chromium.

ecrm('consent', ...) tells the server (Segment's "Segment Consent Preference Updated" event):
a choice made before sign-in is recorded for the customer once the shop's page identifies them
with its server's signature, a withdrawal is sent once before the tracker stops, and both show
on /account/privacy with the shop's words. With Do Not Track, nothing is sent.
"""

from __future__ import annotations

import pytest

from tests.browser.test_portal_pages import consent_rows, signed_in
from tests.browser.test_tracker import (
    OPT_OUT,
    OPTED_OUT,
    PRIVACY_SIGNALS,
    TRACKER_STORAGE,
    by_event,
    tracker_cookies,
)
from tracking.consent_event import CONSENT_EVENT

pytestmark = pytest.mark.browser

GIVEN = "We use cookies to learn what you like, so that we can recommend products."
WITHDRAWN = "You turned off tracking: we no longer record what you do here."


def test_consent_given_and_withdrawn_reaches_the_privacy_page(shop, page, context):
    page.goto(shop.url("home", require_consent=""))
    page.evaluate(f"ecrm('consent', true, {{wording: {GIVEN!r}}})")
    rows = shop.wait_rows(lambda rows: by_event(rows, CONSENT_EVENT))
    [given] = by_event(rows, CONSENT_EVENT)
    assert given["user_id"] is None  # a visitor's, until the shop says who they are
    assert given["payload"]["properties"] == {"wording": GIVEN}
    assert given["payload"]["context"]["consent"] == {"categoryPreferences": {"tracking": True}}
    assert consent_rows(shop, "cust-42") == []
    # Consent already given: saying it again on the next page sends nothing new.
    page.goto(shop.url("signin", require_consent=""))  # identifies cust-42, signed by the shop
    page.evaluate(f"ecrm('consent', true, {{wording: {GIVEN!r}}})")
    shop.wait_rows(lambda rows: [r for r in rows if r["type"] == "identify"])
    assert len(by_event(shop.rows(), CONSENT_EVENT)) == 1
    assert consent_rows(shop, "cust-42") == [("tracking", True, "tracker")]

    page.evaluate(f"ecrm('consent', false, {{wording: {WITHDRAWN!r}}})")
    rows = shop.wait_rows(lambda rows: len(by_event(rows, CONSENT_EVENT)) == 2)
    withdrawn = by_event(rows, CONSENT_EVENT)[1]
    assert withdrawn["user_id"] == "cust-42"  # signed: the customer's own
    assert withdrawn["payload"]["context"]["consent"]["categoryPreferences"] == {"tracking": False}
    assert tracker_cookies(context) == OPTED_OUT and page.evaluate(TRACKER_STORAGE) == OPT_OUT
    sent = len(page.watch.batches)
    page.evaluate(f"ecrm('consent', false, {{wording: {WITHDRAWN!r}}}); ecrm('track', 'After')")
    page.reload()
    page.wait_for_timeout(400)
    assert len(page.watch.batches) == sent  # withdrawn: nothing more, not even a second one
    assert consent_rows(shop, "cust-42") == [
        ("tracking", True, "tracker"),
        ("tracking", False, "tracker"),
    ]

    # The customer sees both on their privacy page, newest first, with the shop's words.
    signed_in(shop, page, "cust-42")
    page.goto(f"{shop.collector}/account/privacy")
    lines = page.locator("table.history").first.locator("tbody tr").all_inner_texts()
    assert len(lines) == 2
    assert "No" in lines[0] and WITHDRAWN in lines[0] and "the shop's pages" in lines[0]
    assert "Yes" in lines[1] and GIVEN in lines[1]
    assert page.evaluate("window.__csp") == []


def test_without_words_the_record_says_so(shop, page):
    page.goto(shop.url("signin"))
    page.evaluate("ecrm('consent', true)")
    shop.wait_rows(lambda rows: by_event(rows, CONSENT_EVENT))
    assert consent_rows(shop, "cust-42") == [("tracking", True, "tracker")]


def test_do_not_track_wins_over_consent(shop, page):
    page.add_init_script(PRIVACY_SIGNALS["globalPrivacyControl"])
    page.goto(shop.url("signin"))
    page.evaluate(f"ecrm('consent', true, {{wording: {GIVEN!r}}}); ecrm('consent', false)")
    page.wait_for_timeout(400)
    assert page.watch.batches == [] and shop.rows() == []
