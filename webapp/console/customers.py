"""Customer 360 pages: search customers by id, email or name; one customer's whole story.

Both are read-only (viewer). The search reads the indexed search keys (analytics.customer_search),
the customer page one customer's rows by index (analytics.customers, analytics.customer_orders);
an id unknown on this site is a 404, whether it exists on another site or nowhere.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, render_template, request

from accounts.inquiries import customer_summary
from analytics import customer_orders, value_reports
from analytics import customers as customer_360
from analytics.customer_search import MIN_QUERY, SearchError, search
from analytics.periods import utc_today
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.tables import Chart, Column, Table, respond

MAX_QUERY = 200  # characters of a search kept (a key holds at most 255)
CURSORS = ("events_before", "sessions_before", "orders_before")


@bp.get("/<int:site_id>/customers")
@site_page("viewer")
def customers(site_id: int):
    """Search by customer id, email or name; results link to each customer's page."""
    text = request.args.get("q", "")[:MAX_QUERY]
    errors: dict[str, str] = {}
    results = None
    if text.strip():
        with clients().engine.connect() as conn:
            try:
                results = search(conn, site_id, text, after=request.args.get("after") or None)
            except SearchError as e:
                errors[e.field] = e.reason
                if e.field == "after":  # a mangled link: the first page instead
                    results = search(conn, site_id, text)
    return render_template(
        "console/customers.html", q=text, results=results, errors=errors, min_query=MIN_QUERY
    )


def _text(value: Any) -> str:
    """A trait's value as the page shows it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _pages(conn, customer, errors: dict[str, str]) -> dict[str, customer_360.Page]:
    """The timeline, sessions and orders at the positions the query string asks for."""
    lists = {
        "events_before": customer_360.timeline,
        "sessions_before": customer_360.customer_sessions,
        "orders_before": customer_orders.customer_orders,
    }
    pages = {}
    for name, read in lists.items():
        try:
            pages[name] = read(conn, customer, before=request.args.get(name) or None)
        except customer_360.CursorError as e:  # a mangled link: the newest rows instead
            errors[e.field] = e.reason
            pages[name] = read(conn, customer)
    return pages


def _activity_table(rows: list[dict[str, Any]]) -> Table:
    return Table(
        "activity",
        f"Activity by week, the last {customer_360.ACTIVITY_WEEKS} weeks",
        [
            Column("week", "Week from", "date"),
            Column("sessions", "Sessions", "int"),
            Column("events", "Events in them", "int"),
            Column("orders", "Orders", "int"),
        ],
        rows,
        chart=Chart("bar", x="week", series=("sessions", "orders")),
        note="Weeks run Monday to Sunday (UTC); a session counts in the week of its last event.",
    )


def value_history_table(history: list[dict[str, Any]]) -> Table:
    """The customer's scores on every refresh day (value_scores), newest first."""
    return Table(
        "value_history",
        "Customer value history",
        [
            Column("day", "Refresh day", "date"),
            Column("currency", "Currency"),
            Column("segment", "Segment"),
            Column("rfm", "R F M (1-5)"),
            Column("seed", "R F M (1-3)"),
            Column("orders", "Orders", "int"),
            Column("revenue", "Net revenue", "money"),
            Column("p_alive", "P(alive)", "float"),
            Column("churn_risk", "Churn risk", "pct"),
            Column("clv", "Lifetime value", "money"),
            Column("vip", "VIP"),
        ],
        history,
        note="One row per refresh and currency; '–' where the currency's models could not be "
        "fitted.",
        empty="No refresh has scored this customer.",
    )


@bp.get("/<int:site_id>/customers/<path:user_id>")
@site_page("viewer")
def customer(site_id: int, user_id: str):
    """One customer: traits, claims, stitched ids, orders, recommendations, inquiries, sessions,
    events."""
    errors: dict[str, str] = {}
    with clients().engine.connect() as conn:
        found = customer_360.find_customer(conn, site_id, user_id)
        if found is None:
            abort(404, "This site has no customer with that id.")
        pages = _pages(conn, found, errors)
        totals = customer_orders.order_totals(conn, found)
        credited = customer_orders.attributed_orders(conn, found)
        answers = customer_orders.recommendations(conn, found)
        activity = customer_360.weekly_activity(conn, found, utc_today())
        inquiries = customer_summary(conn, site_id, found.user_id)
        history = value_reports.customer_history(conn, site_id, found.user_id)
    value_now = [row for row in history if history and row["day"] == history[0]["day"]]
    keep = {name: request.args[name] for name in CURSORS if request.args.get(name)}
    return respond(
        "console/customer.html",
        [_activity_table(activity), value_history_table(history)],
        customer=found,
        traits=sorted((key, _text(value)) for key, value in found.traits.items()),
        claims=sorted((key, _text(value)) for key, value in found.unverified_traits.items()),
        timeline=pages["events_before"],
        sessions=pages["sessions_before"],
        orders=pages["orders_before"],
        totals=totals,
        credited=credited,
        answers=answers,
        inquiries=inquiries,
        value_now=value_now,
        keep=keep,
        errors=errors,
    )
