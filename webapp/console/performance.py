"""The console's Recommendations page: performance per day, placement, model and source; lift.

Every number comes from :func:`analytics.recommendations.recommendation_report`, the same answer
``GET /v1/reports/recommendations`` gives, laid out as :class:`~webapp.console.tables.Table`
objects (each an HTML table, a chart where one helps, and a CSV download).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import current_app, g, request, url_for

from analytics.recommendations import placement_problem, placements, recommendation_report
from webapp.clients import get_engine
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.performance_lift import lift_tables, page_lift, verdict_class
from webapp.console.period import period_args
from webapp.console.tables import Chart, Column, Table, kpi, respond

COUNT_COLUMNS = (
    Column("served", "Answers served", "int"),
    Column("impressions", "Impressions", "int"),
    Column("clicks", "Clicks", "int"),
    Column("ctr", "CTR", "pct"),
    Column("adds_after_click", "Added to cart after a click", "int"),
    Column("add_to_cart_rate", "Add-to-cart rate", "pct"),
)


def currency_label(currency: str) -> str:
    return currency or "no currency"


def _with_currencies(row: dict[str, Any], currencies: list[str]) -> dict[str, Any]:
    """A report row with its per-currency orders and revenue as columns of their own."""
    flat = {k: v for k, v in row.items() if k != "revenue"}
    entries = {entry["currency"]: entry for entry in row["revenue"]}
    for currency in currencies:
        entry = entries.get(currency)
        flat[f"orders_{currency}"] = entry["orders"] if entry else 0
        flat[f"revenue_{currency}"] = entry["revenue"] if entry else "0.00"
    return flat


def _per_currency(currencies: list[str]) -> list[Column]:
    columns: list[Column] = []
    for currency in currencies:
        label = currency_label(currency)
        columns += [
            Column(f"orders_{currency}", f"Attributed orders ({label})", "int"),
            Column(f"revenue_{currency}", f"Attributed revenue ({label})", "money"),
        ]
    return columns


def performance_tables(report: dict[str, Any]) -> list[Table]:
    """The page's tables (and thus its charts and CSV files) from one report."""
    currencies = report["currencies"]
    days = [_with_currencies(row, currencies) for row in report["daily"]]
    previous = {e["currency"]: e for e in report["previous"]["revenue"]}
    revenue_rows = [
        {
            **entry,
            "previous_revenue": previous.get(entry["currency"], {}).get("revenue", "0.00"),
            "previous_share": previous.get(entry["currency"], {}).get("share"),
            "currency": currency_label(entry["currency"]),
        }
        for entry in report["totals"]["revenue"]
    ]
    groups = [
        {"group": name, **_with_currencies(counts, currencies)}
        for name, counts in report["totals"]["groups"].items()
    ]
    item_columns = [
        Column("item_id", "Item id"),
        Column("title", "Title"),
        Column("impressions", "Impressions", "int"),
        Column("clicks", "Clicks", "int"),
        Column("ctr", "CTR", "pct"),
    ]
    coverage = report["coverage"]
    daily_money = [Column("day", "Day", "date"), *_per_currency(currencies)]
    return [
        Table(
            "daily",
            "Answers served, impressions and clicks per day",
            [Column("day", "Day", "date"), *COUNT_COLUMNS],
            days,
            chart=Chart("line", x="day", series=("impressions", "clicks", "served")),
        ),
        Table(
            "ctr",
            "Click-through and add-to-cart rates per day",
            [
                Column("day", "Day", "date"),
                Column("ctr", "CTR", "pct"),
                Column("add_to_cart_rate", "Add-to-cart rate", "pct"),
            ],
            [{k: row[k] for k in ("day", "ctr", "add_to_cart_rate")} for row in days],
            chart=Chart("line", x="day", series=("ctr", "add_to_cart_rate")),
            note="Days without impressions (or clicks) have no rate.",
        ),
        Table(
            "revenue",
            "Attributed revenue per currency, against all revenue",
            [
                Column("currency", "Currency"),
                Column("orders", "Attributed orders", "int"),
                Column("revenue", "Attributed revenue", "money"),
                Column("all_orders", "All orders", "int"),
                Column("all_revenue", "All revenue", "money"),
                Column("share", "Share attributed", "pct"),
                Column("previous_revenue", "Attributed, previous period", "money"),
                Column("previous_share", "Share, previous period", "pct"),
            ],
            revenue_rows,
            note="Each currency is its own row; amounts in different currencies are never added.",
        ),
        Table(
            "daily_revenue",
            "Attributed revenue per day",
            daily_money,
            [{c.key: row[c.key] for c in daily_money} for row in days],
            chart=Chart(
                "bar", x="day", series=tuple(f"revenue_{currency}" for currency in currencies)
            )
            if currencies
            else None,
            note="One series per currency, side by side, never stacked or added.",
        ),
        Table(
            "groups",
            "Treatment and holdout",
            [Column("group", "Group"), *COUNT_COLUMNS, *_per_currency(currencies)],
            groups,
            note="The holdout group is served popular items only; lift compares the groups "
            "per visitor below.",
        ),
        Table(
            "breakdown",
            "By placement, model version and source",
            [
                Column("placement", "Placement"),
                Column("model_version", "Model version"),
                Column("source", "Source"),
                Column("group", "Group"),
                *COUNT_COLUMNS,
                *_per_currency(currencies),
            ],
            [_with_currencies(row, currencies) for row in report["breakdown"]],
        ),
        Table(
            "top_shown",
            "Most recommended items",
            item_columns,
            report["top_shown"],
            chart=Chart("bar", x="item_id", series=("impressions", "clicks"), horizontal=True),
        ),
        Table(
            "top_clicked",
            "Most clicked items",
            item_columns,
            report["top_clicked"],
            chart=Chart("bar", x="item_id", series=("clicks",), horizontal=True),
        ),
        Table(
            "coverage",
            "Catalogue coverage",
            [
                Column("items_shown", "Items shown", "int"),
                Column("items_shown_for_sale", "Of them for sale today", "int"),
                Column("catalogue_items", "Items for sale", "int"),
                Column("coverage", "Coverage", "pct"),
            ],
            [coverage] if coverage["items_shown"] or coverage["catalogue_items"] else [],
            note="Distinct items shown in the period that are for sale (active, not hidden), "
            "out of every item for sale.",
        ),
    ]


def performance_cards(report: dict[str, Any]) -> list[dict[str, Any]]:
    """KPI cards: the period against the one before, money per currency."""
    now, before = report["totals"], report["previous"]
    cards = [
        kpi("Answers served", now["served"], before["served"]),
        kpi("Impressions", now["impressions"], before["impressions"]),
        kpi("Clicks", now["clicks"], before["clicks"]),
        kpi("CTR", now["ctr"], before["ctr"], "pct"),
        kpi("Added to cart after a click", now["adds_after_click"], before["adds_after_click"]),
    ]
    earlier = {e["currency"]: e for e in before["revenue"]}
    for entry in now["revenue"]:
        label = currency_label(entry["currency"])
        old = earlier.get(entry["currency"], {})
        cards.append(
            kpi(
                f"Attributed revenue ({label})",
                Decimal(entry["revenue"]),
                Decimal(old.get("revenue", "0.00")),
                "money",
            )
        )
        cards.append(kpi(f"Share of revenue ({label})", entry["share"], old.get("share"), "pct"))
    cards.append(
        kpi("Catalogue coverage", report["coverage"]["coverage"], kind="pct", compare=False)
    )
    return cards


@bp.get("/<int:site_id>/recommendations")
@site_page("viewer")
def performance(site_id: int):
    """Recommendation performance of the site over the chosen period (and placement)."""
    asked = request.args.get("placement") or None
    errors: dict[str, str] = {}
    with get_engine().connect() as conn:
        known = placements(conn, site_id)
        problem = placement_problem(conn, site_id, asked)
        if problem is not None:
            errors["placement"] = problem
        placement = None if problem else asked
        report = recommendation_report(conn, site_id, g.period, placement)
        config = current_app.config
        lift, lift_errors = page_lift(
            conn,
            site_id,
            g.period,
            config["HOLDOUT_SHARE"],
            request.args.get("currency"),
            config["LIFT_FRESH_SECONDS"],
        )
    return respond(
        "console/performance.html",
        [*performance_tables(report), *lift_tables(lift)],
        lift=lift,
        verdict_class=verdict_class(lift),
        report=report,
        cards=performance_cards(report),
        placements=known,
        placement=placement,
        asked_placement=asked,
        errors={**errors, **lift_errors},
        currency_links=_currency_links(site_id, lift, placement),
    )


def _currency_links(site_id: int, lift: dict[str, Any], placement: str | None) -> list:
    """(currency, URL of this page with the lift in it) for the other currencies with revenue."""
    keep = period_args(g.period, request.args)
    if placement:
        keep["placement"] = placement
    return [
        (code, url_for("console.performance", site_id=site_id, currency=code, **keep) + "#lift")
        for code in lift["currencies"]
        if code != lift["currency"]
    ]
