"""The sales forecast page, ``/console/<site_id>/value/forecast``: expected orders and revenue of
the site's current customers in the next 4 / 13 / 52 weeks, and the backtests of the earlier
forecasts against what happened (analytics.forecast). One currency at a time."""

from __future__ import annotations

from dataclasses import asdict

from flask import render_template

from analytics import forecast, value_reports
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.tables import Chart, Column, Table, respond
from webapp.console.value import NO_SCORES, currency_choice


@bp.get("/<int:site_id>/value/forecast")
@site_page("viewer")
def value_forecast(site_id: int):
    """The forecast from the newest snapshot, with its 4- and 13-week backtests."""
    errors: dict[str, str] = {}
    with clients().engine.connect() as conn:
        snapshot = value_reports.latest(conn, site_id)
        if snapshot is None:
            return render_template(
                "console/value_forecast.html", snapshot=None, no_scores=NO_SCORES
            )
        currency = currency_choice(snapshot, errors)
        ahead = forecast.forecast(conn, site_id, snapshot.day, currency)
        tests = forecast.backtests(conn, site_id, snapshot.day, currency)
    backtests = [
        {**asdict(t), "orders_error": t.orders_error, "revenue_error": t.revenue_error}
        for t in tests
    ]
    tables = [
        Table(
            "forecast",
            f"Expected orders and revenue of today's customers ({currency})",
            [
                Column("weeks", "Next weeks", "int"),
                Column("until", "Until", "date"),
                Column("orders", "Expected orders", "float"),
                Column("revenue", f"Expected revenue {currency}", "money"),
            ],
            ahead,
            chart=Chart("bar", x="weeks", series=("orders",)),
            note="BG/NBD expected purchases of every customer scored on "
            f"{snapshot.day.isoformat()}, times their Gamma-Gamma expected spend for revenue. "
            "Customers who have not bought yet are not in it.",
            empty=f"No forecast in {currency}: its models could not be fitted.",
        ),
        Table(
            "backtest",
            f"Backtest: the forecasts made weeks ago against what happened ({currency})",
            [
                Column("weeks", "Weeks", "int"),
                Column("start", "Forecast on", "date"),
                Column("end", "Checked on", "date"),
                Column("customers", "Customers", "int"),
                Column("predicted_orders", "Predicted orders", "float"),
                Column("actual_orders", "Actual orders", "int"),
                Column("orders_error", "Orders error", "pct"),
                Column("predicted_revenue", f"Predicted revenue {currency}", "money"),
                Column("actual_revenue", f"Actual net revenue {currency}", "money"),
                Column("revenue_error", "Revenue error", "pct"),
            ],
            backtests,
            chart=Chart("bar", x="weeks", series=("predicted_orders", "actual_orders")),
            note="The snapshot of that many weeks before the newest one predicted its customers' "
            "next weeks; the actuals are the orders and net revenue those customers added since. "
            "Error = (predicted - actual) / actual. '–': no fitted snapshot on that day (the "
            "refresh runs daily, so after 4 and 13 weeks of refreshes there is one). The models "
            "count days with a purchase, the actuals orders.",
        ),
    ]
    return respond(
        "console/value_forecast.html",
        tables,
        snapshot=snapshot,
        currency=currency,
        errors=errors,
    )
