"""The console's customer value pages: what each role sees and may change, CSV equal to the
tables, settings errors beside their fields, and the customer 360's scores and history."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa

from accounts.schema import audit_log
from analytics import value_settings
from tests.staff_helpers import csrf_token, sign_in
from tests.test_rollups import event, store
from tests.value_helpers import BEFORE, DAY, scored_shop

PERIOD = {"range": "custom", "from": "2026-11-01", "to": "2026-11-30"}


class _Cells(HTMLParser):
    """The text of each cell of the tables inside one element id."""

    def __init__(self, section_id: str):
        super().__init__()
        self.section_id, self.depth, self.rows, self.cell = section_id, 0, [], None

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += tag not in ("input", "br", "meta", "link")
        elif dict(attrs).get("id") == self.section_id:
            self.depth = 1
        if self.depth and tag == "tr":
            self.rows.append([])
        if self.depth and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def table_cells(body: str, section_id: str) -> list[list[str]]:
    parser = _Cells(section_id)
    parser.feed(body)
    return parser.rows


def csv_rows(client, url: str, name: str, **args) -> list[list[str]]:
    response = client.get(url, query_string={**PERIOD, **args, "csv": name})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def _same_number(shown: str, raw: str) -> bool:
    if shown == "–":
        return raw == ""
    if shown.endswith("%"):
        return abs(float(shown[:-1]) - float(raw) * 100) < 0.051
    plain = shown.replace(",", "")
    try:
        return abs(float(plain) - float(raw)) < 0.0051
    except ValueError:
        return shown == raw


@pytest.fixture
def shop(db, site):
    scored_shop(db, site.site_id)
    return site


@pytest.fixture
def viewer(client, app, shop):
    sign_in(client, app, "viewer@shop.example", {shop.site_id: "viewer"})
    return client


@pytest.fixture
def marketer(client, app, shop):
    sign_in(client, app, "marketer@shop.example", {shop.site_id: "marketer"})
    return client


def test_before_any_refresh_the_pages_say_how_to_get_scores(client, app, site):
    sign_in(client, app, "viewer@shop.example", {site.site_id: "viewer"})
    for path in ("value", "value/risk", "value/forecast"):
        response = client.get(f"/console/{site.site_id}/{path}")
        assert response.status_code == 200
        assert "No scores yet: run `flask --app wsgi analytics refresh`" in response.text
    assert "Customer value" in response.text and "Churn and prospects" in response.text  # nav


def test_the_value_page_shows_every_chart_with_its_table_and_csv(viewer, shop):
    url = f"/console/{shop.site_id}/value"
    response = viewer.get(url, query_string=PERIOD)
    assert response.status_code == 200
    body = response.text
    assert f"Scores of the refresh of {DAY.isoformat()} in EUR" in body
    heat = table_cells(body, "heatmap")
    assert len(heat) == 6 and all(len(row) == 6 for row in heat)  # header + R 5..1, F 1..5
    assert len(re.findall(r'<td class="heat-[0-5]"', body)) == 25
    # Four charts drawn from JSON: segment sizes, segment revenue, Pareto, CLV distribution.
    assert body.count('class="chart-data"') == 4
    for name in ("grid", "segment_customers", "segment_revenue", "pareto", "vips", "clv"):
        shown = table_cells(body, name)
        rows = csv_rows(viewer, url, name)
        assert [c for c in shown[0]] == rows[0], name  # the same headers
        assert len(shown) == len(rows) > 1, name
        for got, raw in zip(shown[1:], rows[1:], strict=True):
            assert all(_same_number(s, r) for s, r in zip(got, raw, strict=True)), (name, got)
    grid = csv_rows(viewer, url, "grid")[1:]
    assert sum(int(r[3]) for r in grid) == 60  # every EUR buyer in one cell; USD apart
    days = [r[0] for r in csv_rows(viewer, url, "segment_customers")[1:]]
    assert days == [BEFORE.isoformat(), DAY.isoformat()]
    pareto = csv_rows(viewer, url, "pareto")[1:]
    assert pareto[-1] == ["1.0", "1.0"]
    # The VIP list: the top 20% of the 60 EUR buyers (the default rule), linked to their pages.
    vips = csv_rows(viewer, url, "vips")[1:]
    assert len(vips) == 12
    assert f'href="/console/{shop.site_id}/customers/{vips[0][0]}"' in body


def test_one_currency_at_a_time_and_an_unknown_one_is_an_error(viewer, shop):
    url = f"/console/{shop.site_id}/value"
    usd = csv_rows(viewer, url, "grid", currency="usd")
    assert usd[0][-1] == "Net revenue USD" and sum(int(r[3]) for r in usd[1:]) == 3
    assert sum(float(r[5]) for r in usd[1:]) == 120
    response = viewer.get(url, query_string={**PERIOD, "currency": "GBP"})
    assert response.status_code == 200
    assert 'id="currency-error"' in response.text and "in EUR" in response.text
    assert "No lifetime values in USD" in viewer.get(url, query_string={"currency": "USD"}).text


def test_the_risk_page_lists_slipping_customers_and_links_them(viewer, shop):
    url = f"/console/{shop.site_id}/value/risk"
    response = viewer.get(url, query_string=PERIOD)
    assert response.status_code == 200
    rows = csv_rows(viewer, url, "slipping")
    header, rows = rows[0], rows[1:]
    assert header[:3] == ["Customer id", "Segment", "Lifetime value EUR"]
    assert 0 < len(rows) <= 50
    clv = [float(r[2]) for r in rows]
    assert clv == sorted(clv, reverse=True)
    assert all(float(r[4]) < float(r[3]) for r in rows)  # P(alive) now below before
    assert f'href="/console/{shop.site_id}/customers/{rows[0][0]}"' in response.text
    assert csv_rows(viewer, url, "prospects")[1:] == []  # no sessions in this shop


def test_settings_viewer_reads_marketer_saves_audited_and_refresh_uses_them(
    app, client, marketer, shop, db
):
    url = f"/console/{shop.site_id}/value/settings"
    page = marketer.get(url)
    assert page.status_code == 200 and 'name="money_3" type="text"' in page.text
    form = {
        **value_settings.as_form(value_settings.ValueSettings()),
        "money_3": "80",
        "vip_by": "money",
        "vip_share": "10",
        "csrf_token": csrf_token(marketer, url),
    }
    response = marketer.post(url, data=form)
    assert response.status_code == 303 and response.headers["Location"].endswith("saved=1")
    assert "Saved: the next refresh" in marketer.get(response.headers["Location"]).text
    stored = value_settings.load(db, shop.site_id)
    assert stored.vip_by == "money" and stored.vip_share == 0.1
    assert stored.thresholds.money == (80.0, 50.0)
    with db.connect() as conn:
        entry = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "value.settings")
        ).one()
    assert entry.email == "marketer@shop.example" and entry.site_id == shop.site_id
    assert entry.detail["before"]["vip_by"] == "clv" and entry.detail["after"]["vip_by"] == "money"

    other = app.test_client()
    sign_in(other, app, "viewer@shop.example", {shop.site_id: "viewer"})
    read = other.get(url).text
    assert 'value="80"' in read and "readonly" in read and "Save settings" not in read
    token = csrf_token(other, url)
    assert other.post(url, data={**form, "csrf_token": token}).status_code == 403


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"recency_3": "soon"}, "recency_3"),
        ({"recency_3": "4", "recency_2": "3"}, "recency_3"),
        ({"frequency_3": "1", "frequency_2": "2"}, "frequency_3"),
        ({"money_2": "-5"}, "money_2"),
        ({"vip_share": "0"}, "vip_share"),
        ({"vip_by": "mood"}, "vip_by"),
        ({"horizon_weeks": "9999"}, "horizon_weeks"),
        ({"discount": "abc"}, "discount"),
    ],
)
def test_bad_settings_show_the_form_again_with_the_error_beside_the_field(
    marketer, shop, db, changes, field
):
    url = f"/console/{shop.site_id}/value/settings"
    form = {**value_settings.as_form(value_settings.ValueSettings()), **changes}
    response = marketer.post(url, data={**form, "csrf_token": csrf_token(marketer, url)})
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.text
    assert f'aria-describedby="{field}-error"' in response.text
    assert "Nothing was saved" in response.text
    for name, value in changes.items():
        if name != "vip_by":
            assert f'name="{name}" type="text" inputmode="decimal" value="{value}"' in response.text
    assert value_settings.load(db, shop.site_id) == value_settings.ValueSettings()


def test_the_customer_page_shows_current_scores_and_their_history(viewer, shop, db):
    when = datetime(2026, 11, 2, tzinfo=UTC)
    store(db, shop.site_id, [event("Product Viewed", when, "anon-4", "c04", product_id="p1")])
    store(db, shop.site_id, [event("Product Viewed", when, "anon-9", "never", product_id="p1")])
    url = f"/console/{shop.site_id}/customers/c04"
    body = viewer.get(url).text
    assert 'id="value-now"' in body and f"refresh of {DAY.isoformat()}" in body
    assert "churn risk" in body and "lifetime value" in body
    rows = csv_rows(viewer, url, "value_history")
    assert rows[0][:3] == ["Refresh day", "Currency", "Segment"]
    assert [r[0] for r in rows[1:]] == [DAY.isoformat(), BEFORE.isoformat()]
    shown = table_cells(body, "value_history")
    assert len(shown) == len(rows)
    for got, raw in zip(shown[1:], rows[1:], strict=True):
        assert all(_same_number(s, r) for s, r in zip(got, raw, strict=True)), got
    unscored = viewer.get(f"/console/{shop.site_id}/customers/never").text
    assert "No scores for this customer" in unscored
    assert "No refresh has scored this customer." in unscored


def test_the_forecast_page_has_its_tables_and_says_when_it_cannot_backtest(viewer, shop):
    url = f"/console/{shop.site_id}/value/forecast"
    response = viewer.get(url)
    assert response.status_code == 200 and "From the refresh of" in response.text
    ahead = csv_rows(viewer, url, "forecast")
    assert [r[0] for r in ahead[1:]] == ["4", "13", "52"]
    expected = [float(r[2]) for r in ahead[1:]]
    assert 0 < expected[0] < expected[1] < expected[2]
    shown = table_cells(response.text, "forecast")
    assert len(shown) == len(ahead)
    for got, raw in zip(shown[1:], ahead[1:], strict=True):
        assert all(_same_number(s, r) for s, r in zip(got, raw, strict=True)), got
    # The shop's two snapshots are a week apart: no snapshot 4 or 13 weeks before the newest.
    tests = csv_rows(viewer, url, "backtest")[1:]
    assert [(r[0], r[3], r[4]) for r in tests] == [("4", "0", ""), ("13", "0", "")]
    usd = viewer.get(url, query_string={"currency": "USD"}).text
    assert "No forecast in USD: its models could not be fitted." in usd
