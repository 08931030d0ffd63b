"""The console's date range: 7 / 30 / 90 days or custom, read from the query string.

A bad custom range keeps the page working on the last 30 days and shows the error beside the
field (``g.period_errors``), never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping

from analytics.periods import (
    PRESETS,
    Period,
    PeriodError,
    checked,
    last_days,
    parse_day,
    utc_today,
)

DEFAULT_DAYS = 30


def period_from_args(args: Mapping[str, str]) -> tuple[Period, dict[str, str]]:
    """The period the query string asks for, and errors by field (``range``, ``from``, ``to``)."""
    now = utc_today()
    choice = args.get("range", str(DEFAULT_DAYS))
    if choice == "custom":
        try:
            start = parse_day(args.get("from"), "from")
            end = parse_day(args.get("to"), "to")
            return checked(start, end, now), {}
        except PeriodError as e:
            return last_days(DEFAULT_DAYS, now), {e.field: e.reason}
    if choice in {str(days) for days in PRESETS}:
        return last_days(int(choice), now), {}
    return last_days(DEFAULT_DAYS, now), {"range": "choose 7, 30 or 90 days, or custom"}


def period_args(period: Period, args: Mapping[str, str]) -> dict[str, str]:
    """The query arguments that keep this period on links to other pages."""
    choice = args.get("range", str(DEFAULT_DAYS))
    if choice == "custom":
        return {"range": "custom", "from": period.start.isoformat(), "to": period.end.isoformat()}
    return {"range": choice} if choice in {str(d) for d in PRESETS} else {}
