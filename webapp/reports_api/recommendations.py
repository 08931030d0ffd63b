"""``GET /v1/reports/recommendations``: the console's recommendation performance, as JSON."""

from __future__ import annotations

from flask import jsonify

from analytics.recommendations import placement_problem, recommendation_report
from webapp.clients import get_engine
from webapp.errors import ApiError
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
