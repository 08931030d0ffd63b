"""The customer value page in Chromium: the RFM heat map and the Pareto curve are drawn."""

from __future__ import annotations

import pytest

from tests.browser.test_console_sales import signed_in
from tests.value_helpers import scored_shop

pytestmark = pytest.mark.browser


def test_the_heat_map_and_the_pareto_curve_render(app, shop, page):
    scored_shop(app.extensions["ecrm"].engine, shop.site.site_id)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    signed_in(page, shop)
    page.goto(
        f"{shop.origin}/console/{shop.site.site_id}/value?range=custom&from=2026-11-01&to=2026-11-30"
    )

    cells = page.locator("table.heatmap td")
    assert cells.count() == 25
    # Shaded by count, and readable without the shade: each cell names its segment and numbers.
    shades = set(cells.evaluate_all("cs => cs.map(c => getComputedStyle(c).backgroundColor)"))
    assert len(shades) >= 2
    champions = page.locator("table.heatmap td[data-segment='Champions']")
    assert champions.count() == 2 and "customers" in champions.first.inner_text()
    box = page.locator("table.heatmap").bounding_box()
    assert box["width"] > 300 and box["height"] > 100

    page.wait_for_function("document.querySelector('#pareto figure.chart[data-drawn]') !== null")
    canvas = page.locator("#pareto canvas").bounding_box()
    assert canvas["width"] > 100 and canvas["height"] > 50
    kind = page.evaluate("document.querySelector('#pareto figure.chart').chart.config.type")
    assert kind == "line"
    points = page.evaluate(
        "document.querySelector('#pareto figure.chart').chart.data.datasets[0].data.length"
    )
    assert points == 20
    page.wait_for_function("document.querySelectorAll('figure.chart[data-drawn]').length === 4")
    assert dialogs == []
