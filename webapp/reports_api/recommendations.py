"""``/v1/reports/recommendations`` and ``/v1/reports/lift``: the Recommendations page as JSON."""

from __future__ import annotations

from flask import current_app, jsonify

from analytics.lift_archive import current_lift
from analytics.recommendations import placement_problem, recommendation_report
from webapp.clients import get_engine
from webapp.errors import ApiError
from webapp.openapi.parse import parse_query
from webapp.openapi.reports_lift import LiftQuery
from webapp.reports_api import bp, period_json, report_request


@bp.get("/recommendations")
def recommendations():
    """Recommendation performance of the calling site (shape: analytics.recommendations)."""
    ask = report_request()
    with get_engine().connect() as conn:
        problem = placement_problem(conn, ask.site.site_id, ask.placement)
        if problem is not None:
            raise ApiError(400, "placement", problem, "invalid_request")
        report = recommendation_report(conn, ask.site.site_id, ask.period, ask.placement)
    return jsonify({"period": period_json(ask.period), **report})


@bp.get("/lift")
def lift():
    """Lift against the holdout over the period (shape: analytics.lift_archive.current_lift)."""
    ask = report_request()
    currency = parse_query(LiftQuery).currency
    with get_engine().connect() as conn:
        report = current_lift(
            conn,
            ask.site.site_id,
            ask.period.start,
            ask.period.end,
            current_app.config["HOLDOUT_SHARE"],
            currency,
            current_app.config["LIFT_FRESH_SECONDS"],
        )
    return jsonify(report)
