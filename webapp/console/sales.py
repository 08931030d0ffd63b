"""The sales page, ``/console/<site_id>/sales``: revenue, orders and buyers by day, week or month.

One :func:`analytics.sales.sales_report` feeds the KPIs, every table, chart and CSV here, and the
report API (webapp/reports_api/sales.py). Each currency keeps its own columns.
"""

from __future__ import annotations

from typing import Any

from flask import g, request, url_for

from analytics.sales import (
    GRAINS,
    FilterError,
    SalesReport,
    categories,
    category_name,
    category_path,
    checked_category,
    checked_grain,
    sales_report,
)
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.period import period_args
from webapp.console.tables import Chart, Column, Table, kpi, respond

GRAIN_WORDS = {"day": "day", "week": "week (ISO, Monday first)", "month": "month"}
CUT_NOTE = (
    "The first and last {grain}s may fall partly outside the period: they count only the days "
    "inside it (the Days column)."
)
CATEGORY_NOTE = (
    "With a category, figures come from the lines of its products (and of the categories under "
    "it): revenue is price x quantity, and an order holding two of its products counts once for "
    "each. Buyers are kept for whole orders only."
)


def currency_label(currency: str) -> str:
    """A currency as a column header says it."""
    return currency or "no currency"


def sales_url(site_id: int, **args: Any) -> str:
    """This page with the current period and grain, and other arguments."""
    keep = period_args(g.period, request.args)
    if request.args.get("grain"):
        keep["grain"] = request.args["grain"]
    return url_for("console.sales", site_id=site_id, **{**keep, **args})


def _cards(report: SalesReport) -> list[dict]:
    cards = []
    for total in report.totals:
        cur, before = currency_label(total["currency"]), total["previous"]
        cards += [
            kpi(f"Revenue ({cur})", total["revenue"], before["revenue"], "money"),
            kpi(f"Orders ({cur})", total["orders"], before["orders"]),
            kpi(
                f"Average order value ({cur})",
                total["average_order_value"],
                before["average_order_value"],
                "money",
            ),
            kpi(f"Units ({cur})", total["units"], before["units"]),
        ]
        if report.category is None:
            cards += [
                kpi(f"New buyers ({cur})", total["new_buyers"], before["new_buyers"]),
                kpi(
                    f"Returning buyers ({cur})",
                    total["returning_buyers"],
                    before["returning_buyers"],
                ),
            ]
    return cards


def _wide(report: SalesReport, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per bucket with ``key_<n>`` per currency n (the chart draws these)."""
    rows: dict[Any, dict[str, Any]] = {}
    for row in report.buckets:
        into = rows.setdefault(row["bucket"], {"bucket": row["bucket"], "days": row["days"]})
        n = report.currencies.index(row["currency"])
        for key in keys:
            into[f"{key}_{n}"] = row[key]
    return list(rows.values())


def _per_currency(report: SalesReport, key: str, label: str, kind: str) -> list[Column]:
    return [
        Column(f"{key}_{n}", f"{label} {currency_label(c)}", kind)
        for n, c in enumerate(report.currencies)
    ]


def sales_tables(report: SalesReport, site_id: int) -> list[Table]:
    """The page's tables, each also a chart or a CSV of the same rows."""
    grain, n = report.grain, len(report.currencies)
    cut = CUT_NOTE.format(grain=grain) if grain != "day" else ""
    first = Column("bucket", grain.capitalize(), "date")
    revenue_columns = _per_currency(report, "revenue", "Revenue", "money")
    tables = [
        Table(
            "revenue",
            f"Revenue by {grain}, per currency",
            [first, Column("days", "Days", "int"), *revenue_columns],
            _wide(report, ("revenue",)),
            chart=Chart(
                "line" if grain == "day" else "bar",
                x="bucket",
                series=tuple(c.key for c in revenue_columns),
            ),
            note=cut,
        ),
    ]
    if report.category is None:
        buyer_columns = [
            column
            for i, c in enumerate(report.currencies)
            for column in (
                Column(f"new_buyers_{i}", f"New buyers {currency_label(c)}", "int"),
                Column(f"returning_buyers_{i}", f"Returning buyers {currency_label(c)}", "int"),
            )
        ]
        tables.append(
            Table(
                "buyers",
                f"New and returning buyers by {grain}",
                [first, Column("days", "Days", "int"), *buyer_columns],
                _wide(report, ("new_buyers", "returning_buyers")),
                chart=Chart("bar", x="bucket", series=tuple(c.key for c in buyer_columns)),
                note="A buyer is counted once per day they ordered on: new on the day of their "
                "first order ever, returning after it. " + cut,
            )
        )
    tables.append(
        Table(
            "orders",
            f"Orders, average order value and units by {grain}",
            [
                first,
                Column("first_day", "First day counted", "date"),
                Column("last_day", "Last day counted", "date"),
                Column("days", "Days", "int"),
                Column("currency", "Currency"),
                Column("orders", "Orders", "int"),
                Column("revenue", "Revenue", "money"),
                Column("average_order_value", "Average order value", "money"),
                Column("units", "Units", "int"),
                Column("new_buyers", "New buyers", "int"),
                Column("returning_buyers", "Returning buyers", "int"),
            ],
            report.buckets,
        )
    )
    tables.append(_category_table(report, site_id, n))
    tables.append(
        Table(
            "products",
            "Top products by revenue, per currency",
            [
                Column("currency", "Currency"),
                Column("item_id", "Item id"),
                Column("title", "Title"),
                Column("category", "Category"),
                Column("revenue", "Revenue", "money"),
                Column("orders", "Orders", "int"),
                Column("units", "Units", "int"),
            ],
            report.products,
            note="Revenue is price x quantity of the product's order lines.",
        )
    )
    return tables


def _category_table(report: SalesReport, site_id: int, n: int) -> Table:
    rows: dict[Any, dict[str, Any]] = {}
    for row in report.categories:
        into = rows.setdefault(
            row["category"],
            {"category": row["category"], "sub_categories": row["sub_categories"]},
        )
        into["sub_categories"] = max(into["sub_categories"], row["sub_categories"])
        i = report.currencies.index(row["currency"])
        for key in ("revenue", "orders", "units"):
            into[f"{key}_{i}"] = row[key]
    revenue_columns = _per_currency(report, "revenue", "Revenue", "money")
    columns = [
        Column("category", "Category"),
        Column("sub_categories", "Sub-categories", "int"),
        *(
            column
            for i, c in enumerate(report.currencies)
            for column in (
                revenue_columns[i],
                Column(f"orders_{i}", f"Orders {currency_label(c)}", "int"),
                Column(f"units_{i}", f"Units {currency_label(c)}", "int"),
            )
        ),
    ]
    title = f"Under {report.category}" if report.category else "Revenue by category"
    return Table(
        "categories",
        title,
        columns,
        list(rows.values()),
        chart=Chart("bar", x="category", series=tuple(c.key for c in revenue_columns)),
        note=category_table_note(report),
        links={"category": lambda row: sales_url(site_id, category=row["category"])},
    )


def category_table_note(report: SalesReport) -> str:
    """What the category table counts (a category's name opens the level under it)."""
    words = (
        "Revenue is price x quantity of the order lines; orders count the orders holding each "
        "product, added over the category's products. Open a category for the level under it; "
        "'–' is products sold without a category."
    )
    if report.category:
        words += f" The row named {report.category} holds its own products."
    return words


def breadcrumbs(category: str | None) -> list[tuple[str, str | None]]:
    """(label, category) from "All categories" down to ``category``."""
    crumbs: list[tuple[str, str | None]] = [("All categories", None)]
    path = category_path(category)
    crumbs += [(level, category_name(path[: i + 1])) for i, level in enumerate(path)]
    return crumbs


@bp.get("/<int:site_id>/sales")
@site_page("viewer")
def sales(site_id: int):
    """Revenue, orders, average order value, units and buyers per currency, by bucket, category
    and product, against the previous period."""
    errors: dict[str, str] = {}
    try:
        grain = checked_grain(request.args.get("grain"))
    except FilterError as e:
        errors[e.field], grain = e.reason, "day"
    with clients().engine.connect() as conn:
        try:
            category = checked_category(conn, site_id, request.args.get("category"), g.period)
        except FilterError as e:
            errors[e.field], category = e.reason, None
        report = sales_report(conn, site_id, g.period, grain, category)
        known = categories(conn, site_id, g.period)
    return respond(
        "console/sales.html",
        sales_tables(report, site_id),
        report=report,
        cards=_cards(report),
        errors=errors,
        grains=GRAINS,
        grain_words=GRAIN_WORDS,
        known_categories=known,
        crumbs=[(label, sales_url(site_id, category=c)) for label, c in breadcrumbs(category)],
        category_note=CATEGORY_NOTE if category else "",
    )
