"""Recommendation performance over a period, read from the daily rollups (never from ``events``).

:func:`recommendation_report` answers "do recommendations earn money, and where?" for one site
and :class:`~analytics.periods.Period`, optionally for one placement. It reads
``rollup_recs``, ``rollup_rec_revenue`` and ``rollup_sales`` here, ``rollup_rec_items`` and the
``items`` table in :mod:`analytics.recs_items`. The console page and ``GET
/v1/reports/recommendations`` both show this one answer, so their numbers cannot differ.

The answer is JSON-ready: days are ISO strings, money is a string with two decimals, rates are
floats from 0 to 1 (None when their denominator is zero). Money is never summed across
currencies: each amount sits in a ``{"currency", ...}`` entry of its own. Its keys:

- ``placement``: the placement reported on (None: every placement), ``currencies``: every
  currency with sales or attributed revenue in the period;
- ``totals`` and ``previous`` (the period before, same length): ``served`` (answers the API
  gave), ``impressions`` (``Recommendation Shown`` events: a list of recommendations on
  screen), ``clicks`` (``Recommendation Clicked``), ``ctr`` (clicks / impressions),
  ``adds_after_click`` (``Product Added`` of a clicked item),
  ``add_to_cart_rate`` (adds / clicks), ``revenue``: per currency ``orders`` and ``revenue``
  attributed, ``all_orders`` and ``all_revenue`` of the shop, ``share`` (attributed / all
  revenue); and ``groups``: ``treatment`` (personalised) and ``holdout`` (popularity only),
  each with the same counts and its own ``revenue`` (per currency ``orders`` and ``revenue``);
- ``daily``: every day of the period (zeros included) with the counts, rates and ``revenue``;
- ``breakdown``: per ``placement`` x ``model_version`` x ``source`` x ``group`` the counts,
  rates and ``revenue``; ``''`` is "not given";
- ``top_shown``, ``top_clicked`` and ``coverage``: see :mod:`analytics.recs_items`.

An order credited to recommendations in two placements counts once in each of them.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from analytics.periods import Period
from analytics.recs_items import item_summary
from analytics.schema import rollup_rec_revenue, rollup_recs, rollup_sales
from tracking.orders import money

COUNTS = ("served", "impressions", "clicks", "adds_after_click")
GROUPS = ("treatment", "holdout")
DIMENSIONS = ("placement", "model_version", "source")
ZERO = Decimal("0.00")


def placements(conn: sa.Connection, site_id: int) -> list[str]:
    """Every placement recommendations of this site were served or shown in, by name."""
    r = rollup_recs.c
    query = (
        sa.select(r.placement)
        .where(r.site_id == site_id, r.placement != "")
        .distinct()
        .order_by(r.placement)
    )
    return list(conn.execute(query).scalars())


def placement_problem(conn: sa.Connection, site_id: int, placement: str | None) -> str | None:
    """Why ``placement`` cannot be reported on (unknown to this site), or None when it can."""
    if placement is None:
        return None
    known = placements(conn, site_id)
    if placement in known:
        return None
    listed = ", ".join(known[:20]) if known else "none yet"
    return f"unknown placement {placement[:60]!r}; this site's placements: {listed}"


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or None when there is no whole to divide by."""
    return part / whole if whole else None


def _group(holdout: bool) -> str:
    return "holdout" if holdout else "treatment"


def _where(table: sa.Table, site_id: int, period: Period, placement: str | None) -> list:
    c = table.c
    where = [c.site_id == site_id, c.day >= period.start, c.day <= period.end]
    if placement is not None:
        where.append(c.placement == placement)
    return where


class _Rows:
    """The rollup rows of the period and the one before it, read in two statements.

    ``rollup_recs`` and ``rollup_rec_revenue`` hold one row per day and dimension (a few
    hundred a month, whatever the shop's size), so every total, day and breakdown of the report
    is summed here from one read of each table rather than by eight grouped queries.
    """

    def __init__(self, conn: sa.Connection, site_id: int, period: Period, placement: str | None):
        span = Period(period.previous().start, period.end)
        r = rollup_recs.c
        self.counts = [
            (row[:5], dict(zip(COUNTS, (int(n or 0) for n in row[5:]), strict=True)))
            for row in conn.execute(
                sa.select(
                    r.day, *(r[d] for d in DIMENSIONS), r.holdout, *(r[n] for n in COUNTS)
                ).where(*_where(rollup_recs, site_id, span, placement))
            )
        ]
        v = rollup_rec_revenue.c
        self.revenue = [
            (row[:5], row[5], int(row[6] or 0), money(row[7]) or ZERO)
            for row in conn.execute(
                sa.select(
                    v.day, *(v[d] for d in DIMENSIONS), v.holdout, v.currency, v.orders, v.revenue
                ).where(*_where(rollup_rec_revenue, site_id, span, placement))
            )
        ]

    def counts_by(self, period: Period, pick) -> list[tuple[tuple, dict[str, int]]]:
        """The four counts of the period's rows, each keyed by ``pick(day, placement, model
        version, source, holdout)``."""
        return [
            (pick(*key), counts)
            for key, counts in self.counts
            if period.start <= key[0] <= period.end
        ]

    def revenue_by(self, period: Period, pick) -> list[tuple[tuple, str, int, Decimal]]:
        """Attributed orders and revenue per currency of the period's rows, keyed by ``pick``."""
        return [
            (pick(*key), currency, orders, revenue)
            for key, currency, orders, revenue in self.revenue
            if period.start <= key[0] <= period.end
        ]


def _by_group(day, placement, model_version, source, holdout) -> tuple:
    return (holdout,)


def _by_day(day, placement, model_version, source, holdout) -> tuple:
    return (day,)


def _by_dimensions(day, placement, model_version, source, holdout) -> tuple:
    return (placement, model_version, source, holdout)


def _sales(conn: sa.Connection, site_id: int, period: Period) -> dict[str, dict[str, Any]]:
    """All orders and revenue of the shop per currency (rollup_sales)."""
    c = rollup_sales.c
    query = (
        sa.select(c.currency, sa.func.sum(c.orders), sa.func.sum(c.revenue))
        .where(c.site_id == site_id, c.day >= period.start, c.day <= period.end)
        .group_by(c.currency)
    )
    return {
        currency: {"orders": int(orders or 0), "revenue": money(revenue) or ZERO}
        for currency, orders, revenue in conn.execute(query)
    }


class _Bucket:
    """Counts and per-currency revenue being summed for one row of the report."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNTS, 0)
        self.orders: dict[str, int] = defaultdict(int)
        self.revenue: dict[str, Decimal] = defaultdict(lambda: ZERO)

    def add_counts(self, counts: dict[str, int]) -> None:
        for name in COUNTS:
            self.counts[name] += counts[name]

    def add_revenue(self, currency: str, orders: int, revenue: Decimal) -> None:
        self.orders[currency] += orders
        self.revenue[currency] += revenue

    def json(self) -> dict[str, Any]:
        counts = self.counts
        return {
            **counts,
            "ctr": rate(counts["clicks"], counts["impressions"]),
            "add_to_cart_rate": rate(counts["adds_after_click"], counts["clicks"]),
            "revenue": [
                {
                    "currency": currency,
                    "orders": self.orders[currency],
                    "revenue": str(self.revenue[currency]),
                }
                for currency in sorted(self.revenue)
            ],
        }


def _totals(conn: sa.Connection, site_id: int, period: Period, rows: _Rows) -> dict[str, Any]:
    """The period's counts and revenue, in all and per group, against the shop's sales."""
    whole = _Bucket()
    groups = {name: _Bucket() for name in GROUPS}
    for (holdout,), counts in rows.counts_by(period, _by_group):
        whole.add_counts(counts)
        groups[_group(holdout)].add_counts(counts)
    for (holdout,), currency, orders, revenue in rows.revenue_by(period, _by_group):
        whole.add_revenue(currency, orders, revenue)
        groups[_group(holdout)].add_revenue(currency, orders, revenue)
    sales = _sales(conn, site_id, period)
    totals = whole.json()
    totals["revenue"] = [
        {
            "currency": currency,
            "orders": whole.orders.get(currency, 0),
            "revenue": str(whole.revenue.get(currency, ZERO)),
            "all_orders": sales.get(currency, {}).get("orders", 0),
            "all_revenue": str(sales.get(currency, {}).get("revenue", ZERO)),
            "share": _share(whole.revenue.get(currency, ZERO), sales.get(currency)),
        }
        for currency in sorted(set(whole.revenue) | set(sales))
    ]
    totals["groups"] = {name: bucket.json() for name, bucket in groups.items()}
    return totals


def _share(attributed: Decimal, sales: dict[str, Any] | None) -> float | None:
    if not sales or not sales["revenue"]:
        return None
    return float(attributed / sales["revenue"])


def _daily(period: Period, rows: _Rows) -> list[dict[str, Any]]:
    days = {day: _Bucket() for day in period.each_day()}
    for (day,), counts in rows.counts_by(period, _by_day):
        days[day].add_counts(counts)
    for (day,), currency, orders, revenue in rows.revenue_by(period, _by_day):
        days[day].add_revenue(currency, orders, revenue)
    return [{"day": day.isoformat(), **bucket.json()} for day, bucket in days.items()]


def _breakdown(period: Period, read: _Rows) -> list[dict[str, Any]]:
    rows: dict[tuple, _Bucket] = defaultdict(_Bucket)
    for key, counts in read.counts_by(period, _by_dimensions):
        rows[key].add_counts(counts)
    for key, currency, orders, revenue in read.revenue_by(period, _by_dimensions):
        rows[key].add_revenue(currency, orders, revenue)
    return [
        {
            "placement": placement_,
            "model_version": model_version,
            "source": source,
            "group": _group(holdout),
            **rows[placement_, model_version, source, holdout].json(),
        }
        for placement_, model_version, source, holdout in sorted(rows, key=_breakdown_order)
    ]


def _breakdown_order(key: tuple) -> tuple:
    placement, model_version, source, holdout = key
    # Newest model versions first (their ids start with the training time).
    return (placement, _descending(model_version), source, bool(holdout))


def _descending(text: str) -> tuple[int, ...]:
    return tuple(-ord(ch) for ch in text) + (1,)


def recommendation_report(
    conn: sa.Connection,
    site_id: int,
    period: Period,
    placement: str | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Recommendation performance of one site over ``period`` (see the module docstring)."""
    rows = _Rows(conn, site_id, period, placement)
    totals = _totals(conn, site_id, period, rows)
    previous = _totals(conn, site_id, period.previous(), rows)
    return {
        "placement": placement,
        "currencies": [entry["currency"] for entry in totals["revenue"]],
        "totals": totals,
        "previous": previous,
        "daily": _daily(period, rows),
        "breakdown": _breakdown(period, rows),
        **item_summary(conn, site_id, period, placement, top),
    }
