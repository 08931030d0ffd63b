"""Issue 14's "Done when", walked in Chromium against a live server, on SQLite and PostgreSQL.

The demo shop (six weeks of generated events, stored by the ingest worker) is scored by the
refresh command as the nightly job would have: four weeks ago, a week ago and today. A marketer
(not an owner) signs in and reads the RFM grid, the VIPs, churn risk and prospects, the lifetime
value distribution and the forecast with its backtest, each table's numbers checked against what
analytics returns; builds a segment, saves it and exports it for email with a 20% control; sets
a "3 visits in 7 days" trigger whose signed webhook reaches a local HTTP server once the rule
fires on events sent through the collector; and later reads the export's campaign report once
orders have come in for some targets and some of the control. No page breaks its
Content-Security-Policy or logs a script error on the way.

Unlike the other browser tests (SQLite only, tests/browser/conftest.py), this walk runs on both
stores, as the rest of the suite does: the reports' SQL differs by dialect (on PostgreSQL the
prospects list reads through a server-side cursor, which this walk first caught left open).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from accounts import preferences, segment_exports, segment_report, segments
from accounts.schema import audit_log
from accounts.segment_members import count, members
from accounts.webhook_delivery import Deliverer, DeliverySettings
from accounts.webhooks import get_endpoint, verify_signature
from analytics import forecast, value_reports
from analytics.value_schema import value_scores
from demo.load import load_demo
from tests.browser.walk_helpers import (
    charts_drawn,
    collect,
    event,
    expected,
    shown,
    signed_in,
    watched_context,
    webhook_receiver,
)
from tests.conftest import database_url, drain  # noqa: F401 (database_url: both stores)
from tests.staff_helpers import PASSWORD, make_staff
from webapp.console.tables import format_cell

pytestmark = pytest.mark.browser

MARKETER = "mia@demo.example"
OWNER = "olu@demo.example"
DEMO_DAYS = 42  # six weeks: the refresh of four weeks ago has two weeks of orders to fit
CONTROL_PERCENT = 20
WORDING = "Offers and discounts by email"
SEGMENT = "Valuable, still here"
RULE = "Back three times this week"


@pytest.fixture
def demo(shop):
    """The demo shop stored and scored: (site, server key, the ids allowing email offers)."""
    app = shop.app
    engine, redis = app.extensions["ecrm"].engine, app.extensions["ecrm"].redis
    site, server_key, generated, _ = load_demo(
        engine, redis, app.config["STREAM_KEY"], [shop.collector], days=DEMO_DAYS
    )
    drain(app)  # the ingest worker's job in production
    # The customers' own choices (made in the portal or relayed by the shop's server): a third
    # allow offers by email, a third refuse them, a third never said (offers default to no).
    consenting = set()
    with engine.begin() as conn:
        for i, customer in enumerate(generated.customers):
            if i % 3 != 2:
                choice = {"email:offers": i % 3 == 0}
                preferences.set_preferences(
                    conn, site.site_id, customer["user_id"], choice, source="api", wording=WORDING
                )
            if i % 3 == 0:
                consenting.add(customer["user_id"])
    # The nightly refresh as it ran four weeks ago, a week ago, and today: the same command.
    today = datetime.now(UTC).date()
    for day in (today - timedelta(weeks=4), today - timedelta(weeks=1), today):
        args = ["analytics", "refresh", "--site", site.write_key, "--day", day.isoformat()]
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0 and "lifetime value fitted" in result.output, result.output
    shop.site = site
    return site, server_key, consenting


def test_a_marketer_walks_customer_value_from_scores_to_campaign_response(shop, browser, demo):
    app = shop.app
    site, server_key, consenting = demo
    make_staff(app, MARKETER, {site.site_id: "marketer"})
    make_staff(app, OWNER, {site.site_id: "owner"})
    violations: list[str] = []
    context = watched_context(browser, violations)
    try:
        page = signed_in(context, shop.collector, MARKETER)
        _value_pages(page, app, site)
        export_id, targets, controls = _segment_and_export(page, app, site, consenting)
        _owner_reads_the_export_in_the_audit_log(browser, violations, shop, export_id)
        with webhook_receiver() as receiver:
            _trigger_fires_a_signed_webhook(page, shop, server_key, receiver)
        _campaign_report(page, shop, server_key, export_id, targets, controls)
        assert violations == []
        assert not page.watch.errors and not page.watch.console, page.watch.console
    finally:
        context.close()


def _value_pages(page, app, site) -> None:
    """The RFM grid and heat map, the VIP curve and list, CLV, churn risk, prospects, forecast:
    every number the tables show is what analytics returns."""
    engine = app.extensions["ecrm"].engine
    page.click("nav.sections a:text-is('Customer value')")
    page.wait_for_url("**/value?**")
    assert charts_drawn(page) == 4  # segment sizes and revenue over time, Pareto, CLV
    with engine.connect() as conn:
        snapshot = value_reports.latest(conn, site.site_id)
        day = snapshot.day
        cells = value_reports.grid(conn, site.site_id, day, "EUR")
        top = value_reports.pareto(conn, site.site_id, day, "EUR")
        fit = value_reports.run(conn, site.site_id, day, "EUR")
        vips = value_reports.vips(conn, site.site_id, day, "EUR", value_reports.vip_value(fit))
        bins = value_reports.clv_distribution(conn, site.site_id, day, "EUR")
        # Counted from the scores themselves, not from the refresh's summary the page reads.
        per_cell = dict(
            conn.execute(
                sa.select(value_scores.c.r_score * 10 + value_scores.c.f_score, sa.func.count())
                .where(value_scores.c.site_id == site.site_id, value_scores.c.day == day)
                .group_by(value_scores.c.r_score, value_scores.c.f_score)
            ).all()
        )
    assert snapshot.currencies == ["EUR"] and snapshot.previous == day - timedelta(weeks=1)
    scored = sum(per_cell.values())
    assert scored > 100 and fit["fit_error"] is None
    kpi = ".kpis div:has(dt:text-is('{}')) dd.value"
    assert page.inner_text(kpi.format("Customers scored")) == str(scored)

    grid = shown(page, "grid")
    assert grid == expected(
        cells, "r_score:int f_score:int segment customers:int share:pct revenue:money"
    )
    assert {int(r[0]) * 10 + int(r[1]): int(r[3]) for r in grid if r[3] != "0"} == per_cell
    heat = page.locator("table.heatmap td")
    assert heat.locator(".count").all_inner_texts() == [f"{r[3]} customers" for r in grid]
    assert page.locator("#pareto canvas").count() == 1
    assert shown(page, "pareto") == expected(top.points, "customer_share:pct revenue_share:pct")
    assert shown(page, "pareto")[-1] == ["100.0%", "100.0%"]
    assert 0 < len(vips) <= top.vips == int(page.inner_text(kpi.format("VIPs")))
    assert shown(page, "vips") == expected(
        vips, "user_id segment orders:int revenue:money clv:money p_alive:float last_order_at:date"
    )
    assert shown(page, "clv") == expected(bins, "low:money high:money customers:int share:pct")
    assert sum(b["customers"] for b in bins) == scored

    page.click("nav.sections a:text-is('Churn and prospects')")
    page.wait_for_url("**/value/risk?**")
    start = datetime.fromisoformat(page.input_value("#period-from")).date()
    end = datetime.fromisoformat(page.input_value("#period-to")).date()
    with engine.connect() as conn:
        slipping = value_reports.slipping(conn, site.site_id, snapshot, "EUR")
        prospects = value_reports.prospects(conn, site.site_id, start, end)
    assert slipping and prospects, "the demo has valuable customers slipping and open carts"
    assert shown(page, "slipping") == expected(
        slipping,
        "user_id segment clv:money p_alive_before:float p_alive:float change:float "
        "churn_risk:pct revenue:money last_order_at:date",
    )
    assert shown(page, "prospects") == expected(
        prospects, "visitor_id user_id sessions:int last_seen_at:date"
    )

    page.click("nav.sections a:text-is('Forecast')")
    page.wait_for_url("**/value/forecast?**")
    assert charts_drawn(page) == 2
    with engine.connect() as conn:
        ahead = forecast.forecast(conn, site.site_id, day, "EUR")
        tests = [forecast.backtest(conn, site.site_id, day, "EUR", w) for w in (4, 13)]
    assert [f["weeks"] for f in ahead] == [4, 13, 52]
    assert shown(page, "forecast") == expected(
        ahead, "weeks:int until:date orders:float revenue:money"
    )
    # Four weeks ago's forecast against what its customers did since; no refresh 13 weeks ago.
    assert tests[0].customers > 50 and tests[0].actual_orders > 0
    assert tests[1].customers == 0
    backtests = [
        {**asdict(t), "orders_error": t.orders_error, "revenue_error": t.revenue_error}
        for t in tests
    ]
    assert shown(page, "backtest") == expected(
        backtests,
        "weeks:int start:date end:date customers:int predicted_orders:float actual_orders:int "
        "orders_error:pct predicted_revenue:money actual_revenue:money revenue_error:pct",
    )
    assert shown(page, "backtest")[1][4:] == ["–"] * 6


def _segment_and_export(page, app, site, consenting) -> tuple[int, list[str], list[str]]:
    """Count, save and export a segment with a 20% control; the export's id, targets, controls."""
    engine = app.extensions["ecrm"].engine
    page.click("nav.sections a:text-is('Segments')")
    page.wait_for_url("**/segments?**")
    assert page.inner_text("#saved").endswith("No segment saved yet.")
    chosen = ("Champions", "Loyal", "Potential Loyalists", "Can't Lose Them", "At Risk")
    for name in chosen:
        page.check(f'#builder input[name=segments][value="{name}"]')
    page.fill("#p_alive_min", "0.2")
    page.click("#builder button:text-is('Count')")
    live = int(page.inner_text("#live-count strong"))
    definition = segments.parse({"segments": list(chosen), "p_alive_min": 0.2})
    with engine.connect() as conn:
        found = members(conn, site.site_id, definition)
        assert live == found.count == count(conn, site.site_id, definition) > 40
    # The members table shows the first 50 of them, by user id.
    shown_ids = [row[0] for row in shown(page, "members")]
    assert shown_ids == sorted(m.user_id for m in found.members)[:50]

    page.fill("#name", SEGMENT)
    page.click("#builder button:text-is('Save segment')")
    page.wait_for_url("**/segments/*")
    segment_id = int(page.url.split("?")[0].rsplit("/", 1)[1])
    assert [row[:3] for row in shown(page, "saved")] == [[str(segment_id), SEGMENT, str(live)]]
    assert int(page.inner_text("#live-count strong")) == live

    page.select_option("#channel", "email")
    page.fill("#topic", "offers")
    page.fill("#control_share", str(CONTROL_PERCENT))
    with page.expect_download() as download:
        page.click("#export button:text-is('Export CSV')")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    in_file = [r["user_id"] for r in rows]
    everyone = {m.user_id for m in found.members}
    eligible = everyone & consenting
    assert everyone - consenting, "some members never allowed email offers"
    with engine.connect() as conn:
        (done,) = segment_exports.exports(conn, site.site_id, segment_id)
        sides = segment_exports.export_members(conn, done["id"])
        (entry,) = conn.execute(sa.select(audit_log).where(audit_log.c.action == "segment.export"))
    targets = {u for u, control in sides.items() if not control}
    controls = {u for u, control in sides.items() if control}
    # Only consenting members, each either in the file or held back, never both.
    assert len(in_file) == len(set(in_file)) and set(in_file) == targets
    assert targets | controls == eligible and not targets & controls
    assert len(controls) == round(CONTROL_PERCENT / 100 * len(eligible)) > 0
    scores = {m.user_id: m for m in found.members}  # the file's rows carry the members' scores
    assert all(r["segment"] == scores[r["user_id"]].segment for r in rows)
    assert entry.email == MARKETER and entry.detail["export_id"] == done["id"]
    assert (entry.detail["targets"], entry.detail["controls"]) == (len(targets), len(controls))

    page.reload()
    (listed,) = shown(page, "exports")
    assert listed[0] == str(done["id"]) and listed[3] == "email:offers"
    assert listed[5:7] == [str(len(targets)), str(len(controls))]
    return done["id"], sorted(targets), sorted(controls)


def _owner_reads_the_export_in_the_audit_log(browser, violations, shop, export_id: int) -> None:
    context = watched_context(browser, violations)
    try:
        owner = signed_in(context, shop.collector, OWNER)
        owner.click("nav.sections a:text-is('Audit log')")
        row = owner.locator("main tr", has=owner.locator("td:text-is('segment.export')"))
        assert row.count() == 1
        assert MARKETER in row.inner_text() and f"export_id: {export_id}" in row.inner_text()
        assert not owner.watch.errors and not owner.watch.console
    finally:
        context.close()


def _trigger_fires_a_signed_webhook(page, shop, server_key, receiver) -> None:
    """A "3 visits in 7 days" rule set on the Triggers page fires on the third visit; the signed
    webhook reaches the shop's endpoint and the firing is listed."""
    app, site = shop.app, shop.site
    engine = app.extensions["ecrm"].engine
    url = f"http://127.0.0.1:{receiver.server_port}/hooks/ecrm"
    # A loopback endpoint is allowed from the command line only: the operator's command.
    result = app.test_cli_runner().invoke(
        args=["webhooks", "set", site.write_key, url, "--allow-private"]
    )
    assert result.exit_code == 0, result.output
    secret = get_endpoint(engine, site.site_id).secret

    page.click("nav.sections a:text-is('Triggers')")
    page.wait_for_url("**/value/triggers**")
    page.fill("#name", RULE)
    page.check("input[name=kind][value=visits]")
    page.fill("#visits", "3")
    page.fill("#days", "7")
    page.click("#new-rule button[type=submit]")
    page.wait_for_selector("#saved")
    assert "3 visits or more in 7 days" in page.inner_text("#rules tbody tr")

    # A shopper's visits, an hour apart (the session timeout is 30 minutes): two, then a third.
    regular = f"walk-regular-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    visits = [
        event(regular, "Product Viewed", now - timedelta(hours=h), product_id="walk-1")
        for h in (3, 2, 1)
    ]
    collect(shop.collector, server_key, visits[:2])
    drain(app)
    page.reload()
    assert page.inner_text("#firings .empty") == "Nothing fired yet."
    collect(shop.collector, server_key, visits[2:])
    drain(app)

    assert Deliverer(engine, DeliverySettings.from_config(app.config)).run_once() == 1
    ((headers, body),) = receiver.received
    assert verify_signature(secret, headers["Ecrm-Signature"], body)
    sent = json.loads(body)
    assert sent["type"] == "trigger.fired" and sent["data"]["rule_name"] == RULE
    assert sent["data"]["user_id"] == regular and sent["data"]["values"]["visits"] == 3

    page.reload()
    headers = page.locator("#rules thead th").all_inner_texts()
    (rule_row,) = shown(page, "rules")
    assert rule_row[headers.index("Fired")] == "1"
    (firing,) = shown(page, "firings")
    assert firing[1:] == [RULE, regular, "visits 3, days 7", "delivered"]


def _campaign_report(page, shop, server_key, export_id, targets, controls) -> None:
    """Orders after the export from a quarter of the targets and one control, through the
    collector; the campaign report compares the two groups."""
    buyers = targets[: max(2, len(targets) // 4)]
    after = datetime.now(UTC)
    orders = []
    for n, user_id in enumerate([*buyers, controls[0]]):
        total = 40.0 + n
        orders.append(
            event(
                user_id,
                "Order Completed",
                after,
                order_id=f"walk-{export_id}-{n}",
                total=total,
                revenue=total,
                currency="EUR",
                products=[{"product_id": "walk-1", "price": total, "quantity": 1}],
            )
        )
    collect(shop.collector, server_key, orders)
    drain(shop.app)

    page.click("nav.sections a:text-is('Segments')")
    page.click(f"#saved a:text-is('{SEGMENT}')")
    page.click("#exports a:text-is('Targets vs control')")
    page.wait_for_url(f"**/exports/{export_id}**")
    parts = page.url.split("?")[0].split("/")
    segment_id = int(parts[parts.index("segments") + 1])
    with shop.app.extensions["ecrm"].engine.connect() as conn:
        found = segment_report.report(conn, shop.site.site_id, segment_id, export_id, 30)
    revenue = sum(40.0 + n for n in range(len(buyers)))
    t_rate, c_rate = len(buyers) / len(targets), 1 / len(controls)
    assert [g[:4] + g[6:8] for g in shown(page, "groups")] == [
        ["Targets", str(len(targets)), str(len(buyers)), format_cell(t_rate, "pct")]
        + [str(len(buyers)), format_cell(revenue, "money")],
        ["Control", str(len(controls)), "1", format_cell(c_rate, "pct")]
        + ["1", format_cell(40.0 + len(buyers), "money")],
    ]
    # Each lift with its 95% interval and p-value, as the report computes them.
    columns = "difference:float difference_low:float difference_high:float lift:pct lift_low:pct "
    columns += "lift_high:pct p_value:float"
    lifts = found["lift"]
    assert shown(page, "lift") == [
        ["Buyer rate", *expected([lifts["buyer_rate"]], columns)[0]],
        ["Revenue/member", *expected([lifts["revenue_per_member"]], columns)[0]],
    ]
    rate = lifts["buyer_rate"]
    assert rate["difference_low"] < rate["difference"] < rate["difference_high"]
    assert 0 < rate["p_value"] < 1
    assert "so far" in page.inner_text("#so-far")


def test_an_impossible_range_is_refused_beside_its_field_and_nothing_is_saved(shop, page):
    engine = shop.app.extensions["ecrm"].engine
    make_staff(shop.app, MARKETER, {shop.site.site_id: "marketer"})
    page.goto(f"{shop.origin}/console/sign-in")
    page.fill("#email", MARKETER)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/console/*/**")
    page.goto(f"{shop.origin}/console/{shop.site.site_id}/segments")

    page.fill("#name", "Impossible")
    page.check("#builder input[name=segments][value=Champions]")
    page.fill("#clv_min", "500")
    page.fill("#clv_max", "100")
    page.click("#builder button:text-is('Save segment')")
    assert page.inner_text("#clv_max-error") == "must not be below the minimum (500)"
    assert page.get_attribute("#clv_max", "aria-invalid") == "true"
    assert page.inner_text("#builder [role=alert]").startswith("Nothing was saved")
    # What was typed stays, to be corrected.
    assert page.input_value("#name") == "Impossible" and page.input_value("#clv_min") == "500"
    assert page.is_checked("#builder input[name=segments][value=Champions]")
    assert page.inner_text("#saved").endswith("No segment saved yet.")

    page.fill("#p_alive_max", "1.5")
    page.fill("#clv_max", "")
    page.click("#builder button:text-is('Count')")
    assert page.inner_text("#p_alive_max-error") == "must be from 0 to 1"
    assert page.locator("#live-count").count() == 0
    with engine.connect() as conn:
        assert segments.listing(conn, shop.site.site_id) == []
