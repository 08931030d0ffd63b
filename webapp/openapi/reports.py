"""The report API's shared declarations: its query (``from``, ``to``, ``placement``, ``category``).

Each report's operation and reply models are declared beside it (reports_*.py here) and listed by
:func:`operations`.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field

from webapp.openapi.schema import ApiModel

TAG = (
    "The console's reports for a shop's BI tools, with the secret server key: the same numbers "
    "as the console pages. Days are UTC; `from` and `to` are both included; at most two years."
)


class ReportQuery(ApiModel):
    """Which days, and optionally which placement or category, to report on."""

    empty_is_absent: ClassVar[tuple[str, ...]] = ("placement", "category")
    check_order: ClassVar[tuple[str, ...]] = ("from", "to", "placement", "category")

    from_: date = Field(
        alias="from", description="First day (YYYY-MM-DD, UTC).", examples=["2026-11-01"]
    )
    to: date = Field(description="Last day, included (YYYY-MM-DD, UTC).", examples=["2026-11-30"])
    placement: str | None = Field(
        default=None,
        max_length=200,
        description="Only this placement (as sent by the widget); unknown ones are a 400.",
        examples=["home"],
    )
    category: str | None = Field(
        default=None,
        max_length=500,
        description="Only this category and the ones under it.",
        examples=["Books"],
    )


def operations() -> list:
    """Every report operation, in the reference's order."""
    # Imported here: their query models reuse ReportQuery's fields.
    from webapp.openapi import reports_lift, reports_recs, reports_sales

    return [*reports_recs.operations(), *reports_lift.operations(), *reports_sales.operations()]
