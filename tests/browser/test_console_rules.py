"""The console's rules page in Chromium: it works under the console's policy, the preview runs
without script, and item titles holding HTML show as text."""

from __future__ import annotations

import pytest

from tests.staff_helpers import PASSWORD, make_staff
from tracking.catalogue import upsert_items, validate_item

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def test_a_marketer_previews_pinned_items_and_html_titles_stay_text(shop, page, context):
    engine = shop.app.extensions["ecrm"].engine
    rows = [{"item_id": f"sku-{i}", "title": f"Item {i}", "category": "Home"} for i in range(1, 5)]
    rows.append({"item_id": "sku-evil", "title": HOSTILE, "category": "Home"})
    upsert_items(engine, shop.site.site_id, [validate_item(r) for r in rows])
    make_staff(shop.app, "mark@shop.example", {shop.site.site_id: "marketer"})
    context.add_init_script(RECORD_VIOLATIONS)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{shop.origin}/console/sign-in")
    page.fill("#email", "mark@shop.example")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{shop.origin}/console/{shop.site.site_id}/rules?placement=home")
    assert page.locator("h1").inner_text() == "Rules"

    page.fill("#f-pinned", "sku-evil")
    page.fill("#f-customer", "c-1")
    page.click("button[value=preview]")
    edited = page.locator("#preview-edited tbody tr").first
    assert edited.locator("td").nth(1).inner_text() == "sku-evil"
    assert edited.locator("td").nth(2).inner_text() == HOSTILE  # the title, as text
    assert edited.locator("td").nth(3).inner_text() == "featured"
    assert page.locator("#preview img").count() == 0
    # The form kept the unsaved value; saving it lists the placement with its pin.
    assert page.locator("#f-pinned").input_value() == "sku-evil"
    page.click("button[value=save]")
    assert "home: saved as version 1" in page.locator("p.ok").inner_text()
    assert "1 pinned" in page.locator("#placements").inner_text()
    assert dialogs == []
    assert page.evaluate("window.__csp") == []
