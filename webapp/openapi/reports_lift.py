"""The lift report's operation, its query and reply models (analytics.lift's answer)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from webapp.openapi.parts import SERVER_KEY, SERVER_KEY_ERRORS, sample
from webapp.openapi.reports import ReportQuery
from webapp.openapi.reports_recs import PERIOD_PROBLEMS, bad_query
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply

Interval = Annotated[
    list[float] | None,
    Field(
        min_length=2,
        max_length=2,
        description="[low, high] of the 95% interval; null when "
        "it cannot be computed from these data.",
    ),
]
Number = float | None


class LiftQuery(ApiModel):
    """Which days, and which currency the revenue statistics use."""

    empty_is_absent: ClassVar[tuple[str, ...]] = ("currency",)
    check_order: ClassVar[tuple[str, ...]] = ("from", "to", "currency")

    from_: date = ReportQuery.model_fields["from_"]
    to: date = ReportQuery.model_fields["to"]
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{3}$",
        description="Revenue statistics in this currency (default: the one with the most "
        "revenue in the period). Amounts in other currencies are never added to it.",
        examples=["EUR"],
    )


class _LiftGroup(ApiModel):
    visitors: int = Field(ge=0)
    conversions: int = Field(ge=0, description="Visitors with at least one order.")
    conversion_rate: Number
    revenue_per_visitor: Number = Field(description="In `currency`.")
    revenue_per_visitor_capped: Number = Field(description="Capped at `revenue.cap`.")


class _LiftPerGroup(ApiModel):
    treatment: int = Field(ge=0)
    holdout: int = Field(ge=0)


class _LiftConversion(ApiModel):
    difference: Number = Field(description="Treatment rate - holdout rate.")
    difference_ci: Interval = Field(description="Newcombe's hybrid score interval.")
    lift: Number = Field(description="Relative: treatment / holdout - 1.")
    lift_ci: Interval = Field(description="Delta method on the log ratio.")
    p_value: Number = Field(description="Two-proportion z-test.")
    visitors_needed: _LiftPerGroup | None = Field(
        description="Per group, for 80% power at a 5% lift."
    )
    visitors_more: _LiftPerGroup | None
    verdict_code: Literal["lift", "drop", "no_difference", "not_enough_data"]
    verdict: str


class _LiftRevenue(ApiModel):
    currency: str | None
    cap: Number = Field(description="The 99th percentile of revenue per visitor.")
    difference: Number
    difference_ci: Interval = Field(description="Welch's interval.")
    t: Number
    df: Number
    p_value: Number = Field(description="Welch's t-test.")
    lift: Number
    lift_ci: Interval = Field(description="Delta method on the ratio of means.")
    visitors_needed: _LiftPerGroup | None
    visitors_more: _LiftPerGroup | None
    verdict_code: Literal["lift", "drop", "no_difference", "not_enough_data"]
    verdict: str


class _LiftSampleRatio(ApiModel):
    observed_holdout_share: Number
    p_value: Number = Field(description="Chi-square against the configured share.")
    mismatch: bool = Field(description="p < 0.001: the groups are not split as configured.")


class LiftReport(ApiModel):
    """Recommendations against the holdout group, per visitor, over the period."""

    site_id: int
    from_: date = Field(alias="from")
    to: date
    holdout_share: float = Field(ge=0, le=1, description="The configured share held out.")
    visitors_excluded: int = Field(ge=0, description="Visitors whose group changed.")
    currency: str | None = Field(description="The currency of the revenue statistics.")
    currencies: list[str] = Field(description="Currencies with revenue, most first.")
    treatment: _LiftGroup
    holdout: _LiftGroup
    conversion: _LiftConversion
    revenue: _LiftRevenue
    sample_ratio: _LiftSampleRatio
    verdict_code: Literal[
        "no_holdout", "sample_ratio_mismatch", "lift", "drop", "no_difference", "not_enough_data"
    ]
    verdict: str = Field(description="One plain sentence for the marketer.")
    as_of: datetime = Field(
        description="When these numbers were computed (UTC). The last 7, 30 and 90 days are "
        "computed ahead every few minutes by the scheduler and served while fresh; other ranges "
        "and currencies are computed when asked."
    )
    stored: bool = Field(description="Whether the numbers were computed ahead (see `as_of`).")


SCHEMAS = (LiftReport,)

_NEEDED = {"treatment": 41210, "holdout": 41210}
EXAMPLE = {
    "site_id": 1,
    "from": "2026-11-01",
    "to": "2026-11-30",
    "holdout_share": 0.05,
    "visitors_excluded": 0,
    "currency": "EUR",
    "currencies": ["EUR"],
    "treatment": {
        "visitors": 9500,
        "conversions": 380,
        "conversion_rate": 0.04,
        "revenue_per_visitor": 2.1,
        "revenue_per_visitor_capped": 1.98,
    },
    "holdout": {
        "visitors": 500,
        "conversions": 18,
        "conversion_rate": 0.036,
        "revenue_per_visitor": 1.8,
        "revenue_per_visitor_capped": 1.75,
    },
    "conversion": {
        "difference": 0.004,
        "difference_ci": [-0.0142, 0.0175],
        "lift": 0.1,
        "lift_ci": [-0.37, 0.59],
        "p_value": 0.66,
        "visitors_needed": _NEEDED,
        "visitors_more": {"treatment": 31710, "holdout": 40710},
        "verdict_code": "not_enough_data",
        "verdict": "not enough data yet: about 41,000 more visitors in the holdout and 32,000 "
        "in treatment to detect a 5% lift with 80% power (conversion +10.0%, 95% CI -37.0% to "
        "+59.0%, p = 0.660)",
    },
    "revenue": {
        "currency": "EUR",
        "cap": 45.0,
        "difference": 0.23,
        "difference_ci": [-0.61, 1.07],
        "t": 0.54,
        "df": 560.2,
        "p_value": 0.59,
        "lift": 0.13,
        "lift_ci": [-0.35, 0.61],
        "visitors_needed": None,
        "visitors_more": None,
        "verdict_code": "not_enough_data",
        "verdict": "not enough data yet: no estimate",
    },
    "sample_ratio": {"observed_holdout_share": 0.05, "p_value": 1.0, "mismatch": False},
    "verdict_code": "not_enough_data",
    "verdict": "not enough data yet: about 41,000 more visitors in the holdout and 32,000 in "
    "treatment to detect a 5% lift with 80% power (conversion +10.0%, 95% CI -37.0% to "
    "+59.0%, p = 0.660)",
    "as_of": "2026-11-30T14:05:00Z",
    "stored": True,
}


def operations() -> list[Operation]:
    """``GET /v1/reports/lift``."""
    return [
        Operation(
            "get",
            "/v1/reports/lift",
            "reportLift",
            "Reports",
            "Lift of recommendations against the holdout",
            "Per visitor over the period: conversion rate and revenue per visitor of the "
            "treatment group (personal recommendations) and the holdout (popular items only), "
            "the relative lift with a 95% confidence interval and a p-value for each, a "
            "sample-ratio-mismatch check against the configured holdout share, and a "
            "plain-language verdict. Lift is over the whole site: placements do not apply. The "
            "console's Recommendations page shows these numbers.",
            SERVER_KEY,
            {
                200: Reply("The lift report.", LiftReport, EXAMPLE),
                400: bad_query(f"{PERIOD_PROBLEMS}, or `currency` is not 3 letters"),
                **SERVER_KEY_ERRORS,
            },
            query=LiftQuery,
            samples=(
                sample(
                    "GET", "/v1/reports/lift", auth="server", query="from=2026-11-01&to=2026-11-30"
                ),
            ),
        )
    ]
