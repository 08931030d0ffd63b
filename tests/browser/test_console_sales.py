"""The sales and funnel pages in Chromium: every chart drawn, HTML in data shown as text."""

from __future__ import annotations

import pytest

from tests.sales_helpers import HTML_CATEGORY, HTML_TITLE, seed
from tests.staff_helpers import PASSWORD, make_staff

pytestmark = pytest.mark.browser

RANGE = "range=custom&from=2026-11-04&to=2026-11-17"


def signed_in(page, shop, email: str = "viewer@shop.example") -> None:
    make_staff(shop.app, email, {shop.site.site_id: "viewer"})
    page.goto(f"{shop.origin}/console/sign-in")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/console/**")


def test_sales_and_funnel_draw_their_charts_and_show_html_as_text(app, shop, page):
    seed(app.extensions["ecrm"].engine, shop.site.site_id)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    signed_in(page, shop)
    base = f"{shop.origin}/console/{shop.site.site_id}"

    page.goto(f"{base}/sales?{RANGE}&grain=week")
    figures = page.locator("figure.chart")
    assert figures.count() == 3  # revenue, buyers, categories
    page.wait_for_function("document.querySelectorAll('figure.chart[data-drawn]').length === 3")
    assert page.locator("#categories td", has_text=HTML_CATEGORY).count() == 1
    assert page.locator("#products td", has_text=HTML_TITLE).count() == 2  # EUR and USD
    assert page.locator("main img, main script:not([type='application/json'])").count() == 0

    # A category's name is a link to the level under it; the grain and period stay.
    page.click("#categories a:text-is('Books')")
    page.wait_for_url("**category=Books**")
    assert "grain=week" in page.url and "range=custom" in page.url
    assert page.locator("h2", has_text="Under Books").count() == 1
    page.wait_for_function("document.querySelectorAll('figure.chart[data-drawn]').length === 2")

    page.goto(f"{base}/funnel?{RANGE}")
    page.wait_for_function("document.querySelectorAll('figure.chart[data-drawn]').length === 2")
    assert page.locator("#category option", has_text=HTML_CATEGORY).count() == 1
    page.select_option("#category", HTML_CATEGORY)
    page.click("form.period button[type=submit]")
    page.wait_for_url("**category=**")
    assert page.locator("#category option:checked").inner_text() == HTML_CATEGORY
    assert page.locator("main img").count() == 0
    page.wait_for_function("document.querySelectorAll('figure.chart[data-drawn]').length >= 1")
    assert dialogs == []
