"""The shopping funnel from ``rollup_funnel``: sessions at each step and each step's conversion.

Product Viewed -> Product Added -> Checkout Started -> Order Completed, per session, counted on
the day the session started. A session counts at every step up to the furthest it reached in
order, so each step holds at most the sessions of the one before. Categories are top-level ones
(the rollup keeps no deeper level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from analytics.periods import Period
from analytics.sales import FilterError, category_path
from analytics.schema import rollup_funnel

# (the rollup's column, the event that marks the step)
STEPS = (
    ("viewed", "Product Viewed"),
    ("added", "Product Added"),
    ("checkout", "Checkout Started"),
    ("ordered", "Order Completed"),
)
COUNTS = tuple(name for name, _ in STEPS)
RATE_DIGITS = 6


@dataclass(frozen=True)
class FunnelReport:
    """The funnel of a period (``steps``) and of each of its days (``days``)."""

    period: Period
    category: str | None
    steps: list[dict[str, Any]]  # per step: sessions and conversions, now and the period before
    days: list[dict[str, Any]]  # per day: sessions at each step, conversions from the previous


def funnel_categories(conn: sa.Connection, site_id: int) -> list[str]:
    """The top-level categories the funnel has counted sessions for."""
    t = rollup_funnel
    return sorted(
        conn.execute(
            sa.select(t.c.category).where(t.c.site_id == site_id, t.c.category != "").distinct()
        ).scalars()
    )


def checked_funnel_category(conn: sa.Connection, site_id: int, category: str | None) -> str | None:
    """The category as the funnel keeps it, None for all, or a FilterError naming ``category``."""
    if category is None or not category.strip():
        return None
    name = category.strip()
    known = funnel_categories(conn, site_id)
    if name in known:
        return name
    reason = f"{category[:60]!r} has no sessions in the funnel"
    path = category_path(name)
    top = path[0] if path else ""
    if top != name and top in known:
        reason += f"; the funnel is kept per top-level category: use {top!r}"
    raise FilterError("category", reason + "; leave it empty for every category")


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` rounded as the reports give it; None when nothing was there to convert."""
    return round(part / whole, RATE_DIGITS) if whole else None


def _daily(conn: sa.Connection, site_id: int, period: Period, category: str | None) -> dict:
    t = rollup_funnel
    rows = conn.execute(
        sa.select(t.c.day, *(sa.func.sum(t.c[n]).label(n) for n in COUNTS))
        .where(
            t.c.site_id == site_id,
            t.c.category == (category or ""),
            t.c.day >= period.start,
            t.c.day <= period.end,
        )
        .group_by(t.c.day)
    ).mappings()
    return {row["day"]: {n: int(row[n] or 0) for n in COUNTS} for row in rows}


def _total(daily: dict) -> dict[str, int]:
    return {n: sum(day[n] for day in daily.values()) for n in COUNTS}


def funnel_report(
    conn: sa.Connection, site_id: int, period: Period, category: str | None = None
) -> FunnelReport:
    """Sessions at each step in the period and per day, each step's conversion from the step
    before and from the first, and the previous period's (a checked category expected:
    :func:`checked_funnel_category`)."""
    daily = _daily(conn, site_id, period, category)
    now, then = _total(daily), _total(_daily(conn, site_id, period.previous(), category))
    steps = []
    for i, (name, event) in enumerate(STEPS):
        before = COUNTS[i - 1] if i else name
        steps.append(
            {
                "step": i + 1,
                "event": event,
                "sessions": now[name],
                "from_previous": rate(now[name], now[before]),
                "from_first": rate(now[name], now[COUNTS[0]]),
                "previous_sessions": then[name],
                "previous_from_previous": rate(then[name], then[before]),
                "previous_from_first": rate(then[name], then[COUNTS[0]]),
            }
        )
    days = []
    for day in period.each_day():
        counts = daily.get(day, dict.fromkeys(COUNTS, 0))
        row: dict[str, Any] = {"day": day, **counts}
        for i, name in enumerate(COUNTS[1:], start=1):
            row[f"{name}_rate"] = rate(counts[name], counts[COUNTS[i - 1]])
        row["conversion"] = rate(counts["ordered"], counts["viewed"])
        days.append(row)
    return FunnelReport(period=period, category=category, steps=steps, days=days)
