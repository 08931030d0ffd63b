"""The Triggers page in Chromium: a marketer's wrong rule comes back with the error beside its
field, the corrected one is listed, and disabling it says so."""

from __future__ import annotations

import pytest

from tests.browser.test_console_sales import signed_in
from tests.staff_helpers import make_staff

pytestmark = pytest.mark.browser


def test_a_marketer_saves_fixes_and_disables_a_rule(app, shop, page):
    signed_in(page, shop, "marketer@shop.example")  # signs in as a viewer...
    make_staff(shop.app, "marketer@shop.example", {shop.site.site_id: "marketer"})  # ...promoted
    page.goto(f"{shop.origin}/console/{shop.site.site_id}/value/triggers")
    assert page.locator("#rules .empty").inner_text() == "No rules yet."

    page.fill("#name", "Shoe browsers")
    page.check("input[name=kind][value=category_views]")
    page.fill("#category", "Shoes")
    page.fill("#views", "0")
    page.fill("#days", "7")
    page.click("#new-rule button[type=submit]")
    error = page.locator("#views-error")
    assert "between 1 and" in error.inner_text()
    assert page.locator("#views").get_attribute("aria-invalid") == "true"
    assert page.locator("#name").input_value() == "Shoe browsers"  # what was typed stays

    page.fill("#views", "3")
    page.click("#new-rule button[type=submit]")
    page.wait_for_selector("#saved")
    row = page.locator("#rules tbody tr").first
    assert "views Shoes 3 times or more in 7 days, no order" in row.inner_text()
    assert "active" in row.inner_text()

    row.locator("button", has_text="Disable").click()
    page.wait_for_load_state()
    row = page.locator("#rules tbody tr").first
    assert "disabled" in row.inner_text()
    assert row.locator("button").all_inner_texts() == ["Enable"]

    row.locator("button", has_text="Enable").click()
    page.wait_for_load_state()
    row = page.locator("#rules tbody tr").first
    assert "active" in row.inner_text()
    assert row.locator("button").all_inner_texts() == ["Disable"]
