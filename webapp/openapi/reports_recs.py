"""The recommendation report's operation, its query and reply models (analytics.recommendations)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from webapp.openapi.parts import SERVER_KEY, SERVER_KEY_ERRORS, error, sample
from webapp.openapi.reports import ReportQuery
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply

Amount = Annotated[
    str,
    StringConstraints(pattern=r"^-?[0-9]+\.[0-9]{2}$"),
    Field(description="Money as a decimal string with two decimals.", examples=["44.75"]),
]
Rate = Annotated[float | None, Field(ge=0, description="From 0 to 1; null when undefined.")]
Count = Annotated[int, Field(ge=0)]


class RecommendationsQuery(ApiModel):
    """Which days, and optionally which placement, to report on."""

    empty_is_absent: ClassVar[tuple[str, ...]] = ("placement",)
    check_order: ClassVar[tuple[str, ...]] = ("from", "to", "placement")

    from_: date = ReportQuery.model_fields["from_"]
    to: date = ReportQuery.model_fields["to"]
    placement: str | None = ReportQuery.model_fields["placement"]


class _RecRevenue(ApiModel):
    currency: str = Field(description="ISO 4217 code as the orders gave it ('' for none).")
    orders: Count = Field(description="Orders with a line credited to a recommendation click.")
    revenue: Amount


class _RecRevenueShare(ApiModel):
    currency: str = Field(description="ISO 4217 code as the orders gave it ('' for none).")
    orders: Count = Field(description="Orders with a line credited to a recommendation click.")
    revenue: Amount = Field(description="Revenue of the credited lines.")
    all_orders: Count = Field(description="Every order of the shop in this currency.")
    all_revenue: Amount = Field(description="The shop's whole revenue in this currency.")
    share: float | None = Field(description="revenue / all_revenue; null without sales.")


class _RecCounts(ApiModel):
    served: Count = Field(description="Answers the recommendation API gave.")
    impressions: Count = Field(
        description="`Recommendation Shown` events (a list of recommendations on screen)."
    )
    clicks: Count = Field(description="`Recommendation Clicked` events.")
    adds_after_click: Count = Field(description="`Product Added` of a clicked item after it.")
    ctr: Rate = Field(description="clicks / impressions.")
    add_to_cart_rate: Rate = Field(description="adds_after_click / clicks.")
    revenue: list[_RecRevenue] = Field(description="Attributed orders and revenue, per currency.")


class _RecGroups(ApiModel):
    treatment: _RecCounts = Field(description="Visitors served personal recommendations.")
    holdout: _RecCounts = Field(description="The holdout group, served popular items only.")


class _RecTotals(ApiModel):
    served: Count
    impressions: Count
    clicks: Count
    adds_after_click: Count
    ctr: Rate
    add_to_cart_rate: Rate
    revenue: list[_RecRevenueShare] = Field(
        description="Per currency (never summed across currencies): attributed against all."
    )
    groups: _RecGroups


class _RecDay(_RecCounts):
    day: date


class _RecSlice(_RecCounts):
    placement: str = Field(description="'' when the widget gave none.")
    model_version: str = Field(description="'' for answers without a model (fallbacks).")
    source: str = Field(description="Which link of the fallback chain answered.")
    group: str = Field(description="`treatment` or `holdout`.", examples=["treatment"])


class _RecItem(ApiModel):
    item_id: str
    title: str | None = Field(description="From the catalogue; null if it is not there.")
    impressions: Count = Field(description="Shown lists the item was in.")
    clicks: Count
    ctr: Rate


class _RecCoverage(ApiModel):
    items_shown: Count = Field(description="Distinct items shown in the period.")
    items_shown_for_sale: Count = Field(description="Of those, active and not hidden today.")
    catalogue_items: Count = Field(description="Items active and not hidden today.")
    coverage: Rate = Field(description="items_shown_for_sale / catalogue_items.")


class _RecPeriod(ApiModel):
    from_: date = Field(alias="from")
    to: date
    previous_from: date
    previous_to: date


class RecommendationReport(ApiModel):
    """Recommendation performance over the period, compared with the period before it."""

    period: _RecPeriod
    placement: str | None = Field(description="The placement asked for; null for all.")
    currencies: list[str] = Field(description="Currencies with sales or attributed revenue.")
    totals: _RecTotals
    previous: _RecTotals = Field(description="The same for the period before (same length).")
    daily: list[_RecDay] = Field(description="Every day of the period, days without data as 0.")
    breakdown: list[_RecSlice] = Field(
        description="Per placement, model version, source and group (treatment, holdout)."
    )
    top_shown: list[_RecItem] = Field(description="The 10 items shown most.")
    top_clicked: list[_RecItem] = Field(description="The 10 items clicked most.")
    coverage: _RecCoverage


SCHEMAS = (RecommendationReport,)

_COUNTS = {"served": 12, "impressions": 48, "clicks": 5, "adds_after_click": 1}
_RATES = {"ctr": 0.1042, "add_to_cart_rate": 0.2}
_EUR = {"currency": "EUR", "orders": 3, "revenue": "35.50"}
EXAMPLE = {
    "period": {
        "from": "2026-11-01",
        "to": "2026-11-07",
        "previous_from": "2026-10-25",
        "previous_to": "2026-10-31",
    },
    "placement": None,
    "currencies": ["EUR"],
    "totals": {
        **_COUNTS,
        **_RATES,
        "revenue": [
            {**_EUR, "all_orders": 15, "all_revenue": "300.00", "share": 0.1183},
        ],
        "groups": {
            "treatment": {**_COUNTS, **_RATES, "revenue": [_EUR]},
            "holdout": {
                **dict.fromkeys(_COUNTS, 0),
                "ctr": None,
                "add_to_cart_rate": None,
                "revenue": [],
            },
        },
    },
    "previous": {
        **dict.fromkeys(_COUNTS, 0),
        "ctr": None,
        "add_to_cart_rate": None,
        "revenue": [],
        "groups": {
            name: {
                **dict.fromkeys(_COUNTS, 0),
                "ctr": None,
                "add_to_cart_rate": None,
                "revenue": [],
            }
            for name in ("treatment", "holdout")
        },
    },
    "daily": [{"day": "2026-11-01", **_COUNTS, **_RATES, "revenue": [_EUR]}],
    "breakdown": [
        {
            "placement": "home",
            "model_version": "20261024T101500Z-ab12",
            "source": "personal",
            "group": "treatment",
            **_COUNTS,
            **_RATES,
            "revenue": [_EUR],
        }
    ],
    "top_shown": [
        {"item_id": "sku-0001", "title": "Blue mug", "impressions": 30, "clicks": 3, "ctr": 0.1}
    ],
    "top_clicked": [
        {"item_id": "sku-0001", "title": "Blue mug", "impressions": 30, "clicks": 3, "ctr": 0.1}
    ],
    "coverage": {
        "items_shown": 40,
        "items_shown_for_sale": 38,
        "catalogue_items": 120,
        "coverage": 0.3167,
    },
}

PERIOD_PROBLEMS = (
    "`from` or `to` is not a date, `to` is before `from` or in the future, or the range is "
    "over two years"
)


def bad_query(problems: str) -> Reply:
    """The 400 of a report call: which query parameter is wrong, and why."""
    return error(
        400,
        f"{problems}; `field` names which.",
        "invalid_request",
        "to",
        "2026-10-01 is before the start 2026-11-01",
    )


def operations() -> list[Operation]:
    """``GET /v1/reports/recommendations``."""
    return [
        Operation(
            "get",
            "/v1/reports/recommendations",
            "reportRecommendations",
            "Reports",
            "Recommendation performance",
            "Per day, and per placement, model version, source and group: answers served, "
            "impressions, clicks, CTR, adds to cart after a click, attributed orders and "
            "revenue per currency and their share of all revenue; the most shown and most "
            "clicked items; catalogue coverage; the same totals for the period before. The "
            "console's Recommendations page shows these numbers. An order credited to "
            "recommendations in two placements counts once in each.",
            SERVER_KEY,
            {
                200: Reply("The report.", RecommendationReport, EXAMPLE),
                400: bad_query(f"{PERIOD_PROBLEMS}, or the placement is unknown"),
                **SERVER_KEY_ERRORS,
            },
            query=RecommendationsQuery,
            samples=(
                sample(
                    "GET",
                    "/v1/reports/recommendations",
                    auth="server",
                    query="from=2026-11-01&to=2026-11-30",
                ),
            ),
        )
    ]
