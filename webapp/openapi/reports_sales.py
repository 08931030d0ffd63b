"""The sales and funnel reports' operations (server key): their queries and reply models.

The views (webapp/reports_api/sales.py) validate ``grain`` with :class:`GrainQuery` and answer
these models' shapes from the same analytics functions as the console's pages.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field

from webapp.openapi.parts import SERVER_KEY, SERVER_KEY_ERRORS, error, sample
from webapp.openapi.reports import ReportQuery
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply, parameters

TAG = "Reports"
AMOUNT = r"^-?[0-9]+\.[0-9]{2}$"
CURRENCY = "ISO 4217 code as the orders gave it; empty for orders that named none."
MONEY_NOTE = (
    "Amounts are decimal strings with two decimals, in the row's `currency`: money is never "
    "added across currencies."
)


class GrainQuery(ApiModel):
    """The sales report's own parameter, after the shared ones (:class:`ReportQuery`)."""

    empty_is_absent: ClassVar[tuple[str, ...]] = ("grain",)
    reasons: ClassVar[dict[str, str]] = {"grain": "must be day, week or month"}

    grain: Literal["day", "week", "month"] = Field(
        default="day",
        description="Buckets: days, ISO weeks (Monday first) or calendar months. A bucket cut "
        "by `from` or `to` counts only its days inside the period (`days`).",
        examples=["week"],
    )


class _ReportPeriod(ApiModel):
    from_: date = Field(alias="from", description="First day reported (UTC).")
    to: date = Field(description="Last day reported, included.")
    previous_from: date = Field(description="First day of the period compared with.")
    previous_to: date = Field(description="Last day of the period compared with.")


class _SalesFigures(ApiModel):
    orders: int = Field(
        ge=0,
        description="Orders; with `category`, the orders holding each of its products, added "
        "over its products (an order with two of them counts twice).",
    )
    revenue: str = Field(
        pattern=AMOUNT,
        description="Orders' revenue; with `category`, price x quantity of its products' lines.",
    )
    average_order_value: str | None = Field(
        pattern=AMOUNT, description="revenue / orders; null without orders."
    )
    units: int = Field(ge=0, description="Units sold.")
    new_buyers: int | None = Field(
        ge=0,
        description="Buyers whose first order fell on the day, each counted once per day; null "
        "with `category` (kept for whole orders only).",
    )
    returning_buyers: int | None = Field(
        ge=0, description="Buyers who had ordered before, once per day; null with `category`."
    )


class _SalesTotal(ApiModel):
    currency: str = Field(max_length=3, description=CURRENCY)
    orders: int = Field(ge=0)
    revenue: str = Field(pattern=AMOUNT)
    average_order_value: str | None = Field(pattern=AMOUNT)
    units: int = Field(ge=0)
    new_buyers: int | None = Field(ge=0)
    returning_buyers: int | None = Field(ge=0)
    previous: _SalesFigures = Field(description="The same figures for the previous period.")


class _SalesBucket(ApiModel):
    bucket: date = Field(description="The day, the week's Monday or the month's first day.")
    first_day: date = Field(description="Its first day inside the period.")
    last_day: date = Field(description="Its last day inside the period.")
    days: int = Field(ge=1, le=31, description="Days of it counted (inside the period).")
    currency: str = Field(max_length=3, description=CURRENCY)
    orders: int = Field(ge=0)
    revenue: str = Field(pattern=AMOUNT)
    average_order_value: str | None = Field(pattern=AMOUNT)
    units: int = Field(ge=0)
    new_buyers: int | None = Field(ge=0)
    returning_buyers: int | None = Field(ge=0)


class _CategorySales(ApiModel):
    category: str | None = Field(
        description="A category one level under `category` (top level without it), levels "
        "joined by `/`; `category` itself for its own products; null for products sold "
        "without a category."
    )
    sub_categories: int = Field(ge=0, description="Categories under it that sold (drill down).")
    currency: str = Field(max_length=3, description=CURRENCY)
    revenue: str = Field(pattern=AMOUNT, description="price x quantity of its lines.")
    orders: int = Field(ge=0, description="Orders holding each product, added over products.")
    units: int = Field(ge=0)


class _ProductSales(ApiModel):
    item_id: str
    title: str | None = Field(description="From the catalogue; null if it is not there.")
    category: str | None = Field(description="The category it sold under.")
    currency: str = Field(max_length=3, description=CURRENCY)
    revenue: str = Field(pattern=AMOUNT)
    orders: int = Field(ge=0)
    units: int = Field(ge=0)


class SalesReport(ApiModel):
    """Sales of a period per currency: totals against the previous period, buckets, categories
    (one level under `category`), top products by revenue in each currency."""

    period: _ReportPeriod
    grain: Literal["day", "week", "month"]
    category: str | None = Field(description="The category reported on (levels joined by `/`).")
    currencies: list[str] = Field(description="Currencies sold in, by revenue, largest first.")
    totals: list[_SalesTotal] = Field(description="One per currency.")
    buckets: list[_SalesBucket] = Field(description="One per bucket and currency, in order.")
    categories: list[_CategorySales]
    products: list[_ProductSales] = Field(description="The top 20 in each currency.")


class _FunnelStep(ApiModel):
    step: int = Field(ge=1, le=4)
    event: Literal["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]
    sessions: int = Field(ge=0, description="Sessions that reached this step in order.")
    from_previous: float | None = Field(
        ge=0, le=1, description="sessions / the previous step's; null when that is 0."
    )
    from_first: float | None = Field(ge=0, le=1, description="sessions / Product Viewed's.")
    previous_sessions: int = Field(ge=0, description="The same in the previous period.")
    previous_from_previous: float | None = Field(ge=0, le=1)
    previous_from_first: float | None = Field(ge=0, le=1)


class _FunnelDay(ApiModel):
    day: date = Field(description="The day the sessions started.")
    viewed: int = Field(ge=0)
    added: int = Field(ge=0)
    checkout: int = Field(ge=0)
    ordered: int = Field(ge=0)
    added_rate: float | None = Field(ge=0, le=1, description="added / viewed.")
    checkout_rate: float | None = Field(ge=0, le=1, description="checkout / added.")
    ordered_rate: float | None = Field(ge=0, le=1, description="ordered / checkout.")
    conversion: float | None = Field(ge=0, le=1, description="ordered / viewed.")


class FunnelReport(ApiModel):
    """The funnel Product Viewed -> Product Added -> Checkout Started -> Order Completed per
    session (counted on the day it started), for the period and each of its days."""

    period: _ReportPeriod
    category: str | None
    steps: list[_FunnelStep]
    days: list[_FunnelDay]


EXAMPLE_PERIOD = {
    "from": "2026-11-01",
    "to": "2026-11-30",
    "previous_from": "2026-10-02",
    "previous_to": "2026-10-31",
}
FIGURES = {
    "orders": 4,
    "revenue": "120.00",
    "average_order_value": "30.00",
    "units": 6,
    "new_buyers": 3,
    "returning_buyers": 1,
}
EXAMPLE_SALES = {
    "period": EXAMPLE_PERIOD,
    "grain": "month",
    "category": None,
    "currencies": ["EUR"],
    "totals": [{"currency": "EUR", **FIGURES, "previous": {**FIGURES, "orders": 2}}],
    "buckets": [
        {
            "bucket": "2026-11-01",
            "first_day": "2026-11-01",
            "last_day": "2026-11-30",
            "days": 30,
            "currency": "EUR",
            **FIGURES,
        }
    ],
    "categories": [
        {
            "category": "Books",
            "sub_categories": 2,
            "currency": "EUR",
            "revenue": "100.00",
            "orders": 3,
            "units": 5,
        }
    ],
    "products": [
        {
            "item_id": "sku-0001",
            "title": "Dune",
            "category": "Books/Fiction",
            "currency": "EUR",
            "revenue": "60.00",
            "orders": 2,
            "units": 3,
        }
    ],
}
EXAMPLE_FUNNEL = {
    "period": EXAMPLE_PERIOD,
    "category": None,
    "steps": [
        {
            "step": 1,
            "event": "Product Viewed",
            "sessions": 200,
            "from_previous": 1.0,
            "from_first": 1.0,
            "previous_sessions": 180,
            "previous_from_previous": 1.0,
            "previous_from_first": 1.0,
        },
        {
            "step": 2,
            "event": "Product Added",
            "sessions": 50,
            "from_previous": 0.25,
            "from_first": 0.25,
            "previous_sessions": 36,
            "previous_from_previous": 0.2,
            "previous_from_first": 0.2,
        },
    ],
    "days": [
        {
            "day": "2026-11-01",
            "viewed": 10,
            "added": 4,
            "checkout": 2,
            "ordered": 1,
            "added_rate": 0.4,
            "checkout_rate": 0.5,
            "ordered_rate": 0.5,
            "conversion": 0.1,
        }
    ],
}


def _bad(description: str, field: str, reason: str) -> Reply:
    return error(400, description, "invalid_request", field, reason)


def operations() -> list[Operation]:
    """The sales and funnel reports."""
    return [
        Operation(
            "get",
            "/v1/reports/sales",
            "salesReport",
            TAG,
            "Sales per currency by day, week or month, by category and product",
            "Revenue, orders, average order value, units, new and returning buyers per bucket "
            "and currency, with the period's totals against the previous period; sales of the "
            "categories one level under `category` (drill down by passing one of them) and the "
            f"top products by revenue. {MONEY_NOTE} With `category`, figures come from the "
            "lines of its products (and the categories under it), not whole orders. "
            "`placement` is refused: sales are not kept per placement.",
            SERVER_KEY,
            {
                200: Reply("The report.", SalesReport, EXAMPLE_SALES),
                400: _bad(
                    "A bad date, a range over two years, an unknown category, a bad grain, or a "
                    "placement; `field` names it.",
                    "grain",
                    "must be day, week or month",
                ),
                **SERVER_KEY_ERRORS,
            },
            query=ReportQuery,
            parameters=tuple(parameters(GrainQuery, "query")),
            samples=(
                sample(
                    "GET",
                    "/v1/reports/sales",
                    auth="server",
                    query="from=2026-11-01&to=2026-11-30&grain=week",
                ),
            ),
        ),
        Operation(
            "get",
            "/v1/reports/funnel",
            "funnelReport",
            TAG,
            "The shopping funnel per session, with each step's conversion",
            "Sessions that reached Product Viewed, Product Added, Checkout Started and Order "
            "Completed in that order, counted on the day each session started, for the period "
            "(against the previous period) and per day. `category` is a top-level category: "
            "sessions whose steps involved its products. `placement` is refused.",
            SERVER_KEY,
            {
                200: Reply("The funnel.", FunnelReport, EXAMPLE_FUNNEL),
                400: _bad(
                    "A bad date, a range over two years, an unknown category or a placement; "
                    "`field` names it.",
                    "to",
                    "the range is longer than two years; choose a shorter one",
                ),
                **SERVER_KEY_ERRORS,
            },
            query=ReportQuery,
            samples=(
                sample(
                    "GET",
                    "/v1/reports/funnel",
                    auth="server",
                    query="from=2026-11-01&to=2026-11-30",
                ),
            ),
        ),
    ]
