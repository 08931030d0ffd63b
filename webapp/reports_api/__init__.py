"""The report API, ``/v1/reports/...``: the console's numbers for a shop's BI tools (server key).

One blueprint; each report's views live in their own module here and call the same
``analytics`` functions as the console pages, so both show the same numbers. Every call takes
``from`` and ``to`` (ISO dates, both included) and may take ``placement`` or ``category``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint

from analytics.periods import Period, PeriodError, checked, utc_today
from tracking.sites import Site
from webapp.auth import site_for_server
from webapp.errors import ApiError
from webapp.openapi.parse import parse_query
from webapp.openapi.reports import ReportQuery

bp = Blueprint("reports_api", __name__, url_prefix="/v1/reports")


@dataclass(frozen=True)
class ReportRequest:
    """A checked report call: whose, which days, which placement or category."""

    site: Site
    period: Period
    placement: str | None
    category: str | None


def report_request() -> ReportRequest:
    """The calling site (server key) and its checked query, or the API's 401/403/400."""
    site = site_for_server()
    query = parse_query(ReportQuery)
    try:
        period = checked(query.from_, query.to, utc_today())
    except PeriodError as e:
        raise ApiError(400, e.field, e.reason, "invalid_request") from None
    return ReportRequest(site, period, query.placement, query.category)


def period_json(period: Period) -> dict[str, str]:
    """The period as every report states it: its days and the previous period compared."""
    previous = period.previous()
    return {
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "previous_from": previous.start.isoformat(),
        "previous_to": previous.end.isoformat(),
    }


# Each report module registers its views on bp when imported.
from webapp.reports_api import (  # noqa: E402,F401
    recommendations,
    sales,
)
