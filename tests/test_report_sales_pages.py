"""The sales and funnel pages: what a viewer sees, CSV equal to the API's JSON, filters' errors."""

from __future__ import annotations

import csv
import io

import pytest

from tests.sales_helpers import HTML_CATEGORY, HTML_TITLE, seed
from tests.staff_helpers import sign_in
from tests.test_openapi import server_auth

RANGE = {"range": "custom", "from": "2026-11-04", "to": "2026-11-17"}
API_PERIOD = {"from": "2026-11-04", "to": "2026-11-17"}


@pytest.fixture
def shop(db, site):
    seed(db, site.site_id)
    return site


@pytest.fixture
def viewer(client, app, shop):
    sign_in(client, app, "viewer@shop.example", {shop.site_id: "viewer"})
    return client


def page(client, site, name, **args):
    return client.get(f"/console/{site.site_id}/{name}", query_string={**RANGE, **args})


def csv_rows(client, site, name, table, **args) -> list[dict[str, str]]:
    response = page(client, site, name, csv=table, **args)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def api(client, site, name, **args) -> dict:
    response = client.get(
        f"/v1/reports/{name}", query_string={**API_PERIOD, **args}, headers=server_auth(site)
    )
    assert response.status_code == 200
    return response.get_json()


def text(value) -> str:
    """A JSON value as the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def same(csv_table: list[dict], json_rows: list[dict], labels: dict[str, str]) -> None:
    assert len(csv_table) == len(json_rows)
    for got, want in zip(csv_table, json_rows, strict=True):
        assert {label: got[label] for label in labels.values()} == {
            label: text(want[key]) for key, label in labels.items()
        }


BUCKET_LABELS = {
    "first_day": "First day counted",
    "last_day": "Last day counted",
    "days": "Days",
    "currency": "Currency",
    "orders": "Orders",
    "revenue": "Revenue",
    "average_order_value": "Average order value",
    "units": "Units",
    "new_buyers": "New buyers",
    "returning_buyers": "Returning buyers",
}
PRODUCT_LABELS = {
    "currency": "Currency",
    "item_id": "Item id",
    "title": "Title",
    "category": "Category",
    "revenue": "Revenue",
    "orders": "Orders",
    "units": "Units",
}


@pytest.mark.parametrize(("grain", "category"), [("day", None), ("week", None), ("month", "Books")])
def test_sales_csv_equals_the_api(viewer, shop, grain, category):
    args = {"grain": grain, **({"category": category} if category else {})}
    body = api(viewer, shop, "sales", **args)
    label = grain.capitalize()
    same(
        csv_rows(viewer, shop, "sales", "orders", **args),
        body["buckets"],
        {"bucket": label, **BUCKET_LABELS},
    )
    same(csv_rows(viewer, shop, "sales", "products", **args), body["products"], PRODUCT_LABELS)
    revenue = csv_rows(viewer, shop, "sales", "revenue", **args)
    for row in body["buckets"]:
        line = next(r for r in revenue if r[label] == row["bucket"])
        assert line[f"Revenue {row['currency']}"] == row["revenue"]
    categories = csv_rows(viewer, shop, "sales", "categories", **args)
    assert len(categories) == len({c["category"] for c in body["categories"]})
    for row in body["categories"]:
        line = next(r for r in categories if r["Category"] == text(row["category"]))
        cur = row["currency"]
        assert (line[f"Revenue {cur}"], line[f"Orders {cur}"], line[f"Units {cur}"]) == (
            row["revenue"],
            str(row["orders"]),
            str(row["units"]),
        )
    if category is None:
        buyers = csv_rows(viewer, shop, "sales", "buyers", **args)
        for row in body["buckets"]:
            line = next(r for r in buyers if r[label] == row["bucket"])
            assert line[f"New buyers {row['currency']}"] == str(row["new_buyers"])
    else:
        assert page(viewer, shop, "sales", csv="buyers", **args).status_code == 404


@pytest.mark.parametrize("category", [None, "Books"])
def test_funnel_csv_equals_the_api(viewer, shop, category):
    args = {"category": category} if category else {}
    body = api(viewer, shop, "funnel", **args)
    same(
        csv_rows(viewer, shop, "funnel", "steps", **args),
        body["steps"],
        {
            "step": "Step",
            "event": "Event",
            "sessions": "Sessions",
            "from_previous": "From the step before",
            "from_first": "From Product Viewed",
            "previous_sessions": "Sessions, previous period",
            "previous_from_previous": "From the step before, previous period",
            "previous_from_first": "From Product Viewed, previous period",
        },
    )
    same(
        csv_rows(viewer, shop, "funnel", "days", **args),
        body["days"],
        {
            "day": "Day",
            "viewed": "Viewed",
            "added": "Added",
            "checkout": "Checkout",
            "ordered": "Ordered",
            "added_rate": "Added / viewed",
            "checkout_rate": "Checkout / added",
            "ordered_rate": "Ordered / checkout",
            "conversion": "Ordered / viewed",
        },
    )


def test_a_viewer_sees_sales_with_kpis_charts_and_drill_down(viewer, shop):
    response = page(viewer, shop, "sales", grain="week")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for words in ("Revenue (EUR)", "145.50", "Revenue (USD)", "previous period: 10.00"):
        assert words in html
    assert html.count('class="chart-data"') == 3  # revenue, buyers, categories
    assert "count only the days inside it" in html
    assert "category=Books" in html and "grain=week" in html  # drill-down keeps the grain
    assert HTML_CATEGORY not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert HTML_TITLE not in html and "&lt;script&gt;alert(1)&lt;/script&gt; Dune" in html
    drilled = page(viewer, shop, "sales", category="Books").get_data(as_text=True)
    assert "Under Books" in drilled and "counts once for each" in drilled
    assert "Books/Fiction</a>" in drilled and "Music</a>" not in drilled


def test_a_viewer_sees_the_funnel(viewer, shop):
    html = page(viewer, shop, "funnel").get_data(as_text=True)
    assert "Sessions at each step" in html and "Checkout Started" in html
    assert "13.3%" in html  # 2 of 15 sessions ordered
    assert html.count('class="chart-data"') == 2
    assert f'<option value="{HTML_CATEGORY}"' not in html


@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("sales", {"grain": "hour"}, "grain"),
        ("sales", {"category": "Toys"}, "category"),
        ("funnel", {"category": "Toys"}, "category"),
        ("funnel", {"category": "Books/Fiction"}, "category"),
        ("sales", {"from": "2026-11-40"}, "period-from"),
        ("funnel", {"to": "2026-11-01"}, "period-to"),
    ],
)
def test_bad_filters_show_the_error_beside_the_field(viewer, shop, name, args, field):
    response = page(viewer, shop, name, **args)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and 'aria-invalid="true"' in html


def test_signed_out_and_other_sites(client, app, shop, db):
    from tracking.sites import create_site

    for name in ("sales", "funnel"):
        signed_out = page(client, shop, name)
        assert signed_out.status_code == 302 and "sign-in" in signed_out.headers["Location"]
    other, _ = create_site(db, "Other", ["https://other.example"])
    sign_in(client, app, "b@shop.example", {other.site_id: "owner"})
    for name in ("sales", "funnel"):
        assert page(client, shop, name).status_code == 404
        assert page(client, other, name).status_code == 200
