"""The Recommendations page in Chromium: its charts drawn, HTML in titles and placements as text."""

from __future__ import annotations

import os

import pytest

from analytics.schema import rollup_recs
from tests.staff_helpers import PASSWORD, make_staff
from tests.test_report_recs import HTML_TITLE, NOV, seed
from tests.test_report_recs_lift import visitors
from tracking.sites import create_site

pytestmark = pytest.mark.browser

RANGE = "range=custom&from=2026-11-01&to=2026-11-07"
HTML_PLACEMENT = "<b onmouseover=alert(2)>promo</b>"


def signed_in(page, shop, email: str = "viewer@shop.example") -> None:
    make_staff(shop.app, email, {shop.site.site_id: "viewer"})
    page.goto(f"{shop.origin}/console/sign-in")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/console/**")


def test_charts_are_drawn_and_html_in_data_is_text(app, shop, page):
    engine = app.extensions["ecrm"].engine
    other, _ = create_site(engine, "Other shop", ["https://other.example"])
    seed(engine, shop.site.site_id, other.site_id)
    visitors(engine, shop.site.site_id)
    with engine.begin() as conn:
        conn.execute(
            rollup_recs.insert(),
            {
                "site_id": shop.site.site_id,
                "day": NOV[2],
                "placement": HTML_PLACEMENT,
                "model_version": "v2",
                "source": "personal",
                "holdout": False,
                "served": 1,
                "impressions": 3,
                "clicks": 0,
                "adds_after_click": 0,
            },
        )
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    signed_in(page, shop)

    page.goto(f"{shop.origin}/console/{shop.site.site_id}/recommendations?{RANGE}")
    drawn = "document.querySelectorAll('figure.chart[data-drawn]').length"
    assert page.locator("figure.chart").count() == 6  # with the lift's groups
    page.wait_for_function(f"{drawn} === 6")
    # The tests' app holds nobody out: the verdict says lift cannot be measured, as a warning.
    assert page.locator("p.verdict.warning#verdict").inner_text().startswith("No holdout group")
    assert page.locator("#top_shown td", has_text=HTML_TITLE).count() == 1
    assert page.locator("#breakdown td", has_text=HTML_PLACEMENT).count() == 1
    assert page.locator("#placement option", has_text=HTML_PLACEMENT).count() == 1
    assert page.locator("main img, main b, main script:not([type='application/json'])").count() == 0
    if os.environ.get("ECRM_SCREENSHOTS"):
        page.screenshot(path=os.environ["ECRM_SCREENSHOTS"] + "/performance.png", full_page=True)

    # The placement filter, chosen in the form, narrows the page and stays selected.
    page.select_option("#placement", HTML_PLACEMENT)
    page.click("form.period button[type=submit]")
    page.wait_for_url("**placement=**")
    assert page.locator("#placement option:checked").inner_text() == HTML_PLACEMENT
    page.wait_for_function(f"{drawn} >= 2")
    assert page.locator("#breakdown tbody tr").count() == 1
    assert page.locator("main b, main img").count() == 0
    assert dialogs == []
