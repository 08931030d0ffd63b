"""``GET /v1/reports/sales`` and ``GET /v1/reports/funnel``: the console's sales and funnel as JSON.

Both call the analytics functions the console's pages call (analytics.sales, analytics.funnel);
:func:`sales_json` and :func:`funnel_json` are the only shaping, so page and API agree.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from flask import jsonify

from analytics.funnel import FunnelReport, checked_funnel_category, funnel_report
from analytics.sales import FilterError, SalesReport, checked_category, sales_report
from webapp.clients import clients
from webapp.errors import ApiError
from webapp.openapi.parse import parse_query
from webapp.openapi.reports_sales import GrainQuery
from webapp.reports_api import ReportRequest, bp, period_json, report_request

NO_PLACEMENT = "{report} are not kept per placement; leave placement out"


def plain(value: Any) -> Any:
    """A report value as JSON holds it: dates ISO, money a decimal string, nested rows too."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def sales_json(report: SalesReport) -> dict[str, Any]:
    """The sales report as the API answers it."""
    return {
        "period": period_json(report.period),
        "grain": report.grain,
        "category": report.category,
        "currencies": report.currencies,
        "totals": plain(report.totals),
        "buckets": plain(report.buckets),
        "categories": plain(report.categories),
        "products": plain(report.products),
    }


def funnel_json(report: FunnelReport) -> dict[str, Any]:
    """The funnel report as the API answers it."""
    return {
        "period": period_json(report.period),
        "category": report.category,
        "steps": plain(report.steps),
        "days": plain(report.days),
    }


def _without_placement(query: ReportRequest, report: str) -> None:
    if query.placement is not None:
        raise ApiError(400, "placement", NO_PLACEMENT.format(report=report))


@bp.get("/sales")
def sales():
    """Sales per currency by bucket, category and product (see the OpenAPI operation)."""
    query = report_request()
    _without_placement(query, "sales")
    grain = parse_query(GrainQuery).grain
    with clients().engine.connect() as conn:
        try:
            category = checked_category(conn, query.site.site_id, query.category, query.period)
        except FilterError as e:
            raise ApiError(400, e.field, e.reason) from None
        report = sales_report(conn, query.site.site_id, query.period, grain, category)
    return jsonify(sales_json(report))


@bp.get("/funnel")
def funnel():
    """The funnel's steps and conversions, for the period and per day."""
    query = report_request()
    _without_placement(query, "funnel steps")
    with clients().engine.connect() as conn:
        try:
            category = checked_funnel_category(conn, query.site.site_id, query.category)
        except FilterError as e:
            raise ApiError(400, e.field, e.reason) from None
        report = funnel_report(conn, query.site.site_id, query.period, category)
    return jsonify(funnel_json(report))
