"""The funnel page, ``/console/<site_id>/funnel``: sessions at each shopping step, conversions.

One :func:`analytics.funnel.funnel_report` feeds the KPIs, tables, charts and CSV here and the
report API (webapp/reports_api/sales.py).
"""

from __future__ import annotations

from flask import g, request

from analytics.funnel import (
    FunnelReport,
    checked_funnel_category,
    funnel_categories,
    funnel_report,
)
from analytics.sales import FilterError
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.tables import Chart, Column, Table, kpi, respond

COUNTED = (
    "A session counts at every step up to the furthest it reached in order, on the day it "
    "started; with a category, sessions whose steps involved its products."
)


def funnel_tables(report: FunnelReport) -> list[Table]:
    """The steps (a bar chart) and the days (a line chart), each with its CSV."""
    return [
        Table(
            "steps",
            "Sessions at each step",
            [
                Column("step", "Step", "int"),
                Column("event", "Event"),
                Column("sessions", "Sessions", "int"),
                Column("from_previous", "From the step before", "pct"),
                Column("from_first", "From Product Viewed", "pct"),
                Column("previous_sessions", "Sessions, previous period", "int"),
                Column("previous_from_previous", "From the step before, previous period", "pct"),
                Column("previous_from_first", "From Product Viewed, previous period", "pct"),
            ],
            report.steps,
            chart=Chart("bar", x="event", series=("sessions", "previous_sessions")),
            note=COUNTED,
        ),
        Table(
            "days",
            "The funnel per day",
            [
                Column("day", "Day", "date"),
                Column("viewed", "Viewed", "int"),
                Column("added", "Added", "int"),
                Column("checkout", "Checkout", "int"),
                Column("ordered", "Ordered", "int"),
                Column("added_rate", "Added / viewed", "pct"),
                Column("checkout_rate", "Checkout / added", "pct"),
                Column("ordered_rate", "Ordered / checkout", "pct"),
                Column("conversion", "Ordered / viewed", "pct"),
            ],
            report.days if any(day["viewed"] for day in report.days) else [],
            chart=Chart("line", x="day", series=("viewed", "added", "checkout", "ordered")),
        ),
    ]


def _cards(report: FunnelReport) -> list[dict]:
    viewed, *_, ordered = report.steps
    return [
        kpi("Sessions viewing a product", viewed["sessions"], viewed["previous_sessions"]),
        kpi("Sessions ordering", ordered["sessions"], ordered["previous_sessions"]),
        kpi(
            "Conversion (ordered / viewed)",
            ordered["from_first"],
            ordered["previous_from_first"],
            "pct",
        ),
    ]


@bp.get("/<int:site_id>/funnel")
@site_page("viewer")
def funnel(site_id: int):
    """Product Viewed -> Product Added -> Checkout Started -> Order Completed per session."""
    errors: dict[str, str] = {}
    with clients().engine.connect() as conn:
        try:
            category = checked_funnel_category(conn, site_id, request.args.get("category"))
        except FilterError as e:
            errors[e.field], category = e.reason, None
        report = funnel_report(conn, site_id, g.period, category)
        known = funnel_categories(conn, site_id)
    return respond(
        "console/funnel.html",
        funnel_tables(report),
        report=report,
        cards=_cards(report),
        errors=errors,
        known_categories=known,
    )
