"""The lift report: treatment against holdout, per visitor, read from the daily visitor rollups.

It reads only ``rollup_visitors`` and ``rollup_visitor_revenue`` (analytics/schema.py). A visitor
is one ``visitor_id`` over the whole range: converted when their orders sum above zero, their
revenue the sum of their days in one currency (money is never summed across currencies). A
visitor whose group changed within the range (the holdout share was changed) belongs to neither
group: they are counted in ``visitors_excluded`` and left out.

The keys of :func:`lift_report`'s answer (every value a str, int, float, bool, list or None):

- ``site_id``, ``from``, ``to`` (ISO dates, both included), ``holdout_share`` (as configured),
  ``visitors_excluded``;
- ``currency``: the currency of the revenue statistics (the one asked for, else the one with the
  most revenue in the range; None when there is no revenue), ``currencies``: every currency
  with revenue in the range, most revenue first;
- ``treatment`` and ``holdout``: ``visitors``, ``conversions``, ``conversion_rate``,
  ``revenue_per_visitor`` and ``revenue_per_visitor_capped`` (in ``currency``);
- ``conversion``: ``difference`` (rate, treatment - holdout) and ``difference_ci`` (Newcombe's
  hybrid score interval), ``lift`` (relative, treatment / holdout - 1, bias-corrected) and
  ``lift_ci`` (delta method on the log ratio), ``p_value`` (two-proportion z-test),
  ``visitors_needed`` and ``visitors_more`` ({treatment, holdout}: for 80% power at a 5% lift),
  ``verdict_code`` and ``verdict``;
- ``revenue``: the same for revenue per visitor capped at ``cap`` (the 99th percentile of both
  groups' per-visitor revenue): ``difference`` with Welch's interval, ``t``, ``df``,
  ``p_value`` (Welch's t-test), ``lift`` and ``lift_ci`` (delta method on the ratio of means);
- ``sample_ratio``: ``observed_holdout_share``, ``p_value`` (chi-square against the configured
  share) and ``mismatch`` (p < 0.001);
- ``verdict_code`` (``no_holdout``, ``sample_ratio_mismatch``, else conversion's) and
  ``verdict``: one plain sentence for the marketer.

Intervals are ``[low, high]`` or None. None means "cannot be computed from these data"; the
verdicts say why.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

from analytics import stats
from analytics.schema import Money, rollup_visitor_revenue, rollup_visitors

GROUPS = ("treatment", "holdout")


def _per_visitor(site_id: int, start: date, end: date):
    """Each visitor of the range: lowest and highest holdout flag (0/1) and orders."""
    v = rollup_visitors
    flag = sa.cast(v.c.holdout, sa.Integer)
    return (
        sa.select(
            v.c.visitor_id,
            sa.func.min(flag).label("low"),
            sa.func.max(flag).label("high"),
            sa.func.sum(v.c.orders).label("orders"),
        )
        .where(v.c.site_id == site_id, v.c.day >= start, v.c.day <= end)
        .group_by(v.c.visitor_id)
        .cte("visitors")
    )


def _currencies(conn: sa.Connection, site_id: int, start: date, end: date) -> list[str]:
    """Currencies with revenue in the range, most revenue first."""
    r = rollup_visitor_revenue
    total = sa.func.sum(r.c.revenue)
    query = (
        sa.select(r.c.currency)
        .where(r.c.site_id == site_id, r.c.day >= start, r.c.day <= end)
        .group_by(r.c.currency)
        .having(total != 0)
        .order_by(total.desc(), r.c.currency)
    )
    return list(conn.execute(query).scalars())


def _visitors(
    conn: sa.Connection, site_id: int, start: date, end: date, currency: str | None
) -> tuple[dict[str, list[int]], int, dict[str, list[float]]]:
    """Group counts, visitors whose group changed, and each group's non-zero revenues.

    ``{group: [visitors, conversions]}``, the number of visitors in neither group, and
    ``{group: revenues}`` in ``currency``, from one statement: the visitors of the range are
    aggregated once (a common table expression) for both the counts and the revenues.
    """
    visitors = _per_visitor(site_id, start, end)
    converted = sa.case((visitors.c.orders > 0, 1), else_=0)
    no_revenue = sa.cast(sa.null(), Money).label("revenue")
    query = sa.select(
        visitors.c.low,
        visitors.c.high,
        sa.func.count().label("n"),
        sa.func.sum(converted).label("conversions"),
        no_revenue,
    ).group_by(visitors.c.low, visitors.c.high)
    if currency is not None:
        r = rollup_visitor_revenue
        revenue = sa.func.sum(r.c.revenue).label("revenue")
        per_visitor = (
            sa.select(r.c.visitor_id, revenue)
            .where(
                r.c.site_id == site_id, r.c.day >= start, r.c.day <= end, r.c.currency == currency
            )
            .group_by(r.c.visitor_id)
            .subquery()
        )
        revenues = (
            sa.select(
                visitors.c.high,
                visitors.c.high,
                sa.cast(sa.null(), sa.BigInteger),
                sa.cast(sa.null(), sa.BigInteger),
                per_visitor.c.revenue,
            )
            .join(per_visitor, per_visitor.c.visitor_id == visitors.c.visitor_id)
            .where(visitors.c.low == visitors.c.high, per_visitor.c.revenue != 0)
        )
        query = sa.union_all(query, revenues)
    counts = {group: [0, 0] for group in GROUPS}
    excluded = 0
    found: dict[str, list[float]] = {group: [] for group in GROUPS}
    for low, high, n, conversions, amount in conn.execute(query):
        if n is None:
            found[GROUPS[high]].append(float(amount))
        elif low != high:
            excluded += n
        else:
            counts[GROUPS[high]] = [int(n), int(conversions or 0)]
    return counts, excluded, found


def _interval(low: Any, high: Any) -> list[float] | None:
    low, high = stats.finite(low), stats.finite(high)
    return None if low is None or high is None else [low, high]


def _needed(needed: tuple[Any, Any], have: tuple[int, int]) -> tuple[dict | None, dict | None]:
    more = stats.more_visitors(needed, have)
    if more is None:
        return None, None
    return (
        {g: int(np.ceil(float(n))) for g, n in zip(GROUPS, needed, strict=True)},
        dict(zip(GROUPS, more, strict=True)),
    )


def _conversion(counts: dict[str, list[int]], share: float) -> dict[str, Any]:
    (n1, x1), (n2, x2) = counts["treatment"], counts["holdout"]
    difference, low, high = stats.newcombe_difference(x1, n1, x2, n2)
    lift, lift_low, lift_high = stats.conversion_lift(x1, n1, x2, n2)
    result: dict[str, Any] = {
        "difference": stats.finite(difference),
        "difference_ci": _interval(low, high),
        "lift": stats.finite(lift),
        "lift_ci": _interval(lift_low, lift_high),
        "p_value": stats.finite(stats.two_proportion_p_value(x1, n1, x2, n2)),
    }
    baseline = x2 / n2 if n2 else np.nan
    needed = stats.visitors_needed_conversion(baseline, share)
    result["visitors_needed"], result["visitors_more"] = _needed(needed, (n1, n2))
    reason = _missing(n1, n2) or (
        f"no conversions in the {_empty_group(x1, x2)} yet" if not (x1 and x2) else None
    )
    result["verdict_code"], result["verdict"] = stats.metric_verdict(
        "conversion", result, _more(result), reason
    )
    return result


def _missing(n1: int, n2: int) -> str | None:
    """Why a comparison is impossible for lack of visitors, or None."""
    if not n1 and not n2:
        return "no visitors in this range"
    if not n1 or not n2:
        return f"no visitors in the {_empty_group(n1, n2)} in this range"
    return None


def _empty_group(treatment: float, holdout: float) -> str:
    if not treatment and not holdout:
        return "treatment group or the holdout"
    return "treatment group" if not treatment else "holdout"


def _revenue(
    counts: dict[str, list[int]], found: dict[str, list[float]], currency: str | None, share: float
) -> tuple[dict[str, Any], dict[str, dict[str, float | None]]]:
    """Welch and delta-method statistics on capped revenue per visitor, and per-group means."""
    n1, n2 = counts["treatment"][0], counts["holdout"][0]
    values, means = [], {}
    for group, n in zip(GROUPS, (n1, n2), strict=True):
        per_visitor = np.zeros(n)
        per_visitor[: len(found[group])] = found[group]
        values.append(per_visitor)
        means[group] = {"raw": float(per_visitor.mean()) if n else None, "capped": None}
    result: dict[str, Any] = dict.fromkeys(
        ("cap", "difference", "difference_ci", "t", "df", "p_value", "lift", "lift_ci"), None
    )
    result |= {"currency": currency, "visitors_needed": None, "visitors_more": None}
    reason = _missing(n1, n2)
    if reason is None and min(n1, n2) < 2:
        reason = f"too few visitors in the {'treatment group' if n1 < 2 else 'holdout'}"
    if reason is None and not (found["treatment"] or found["holdout"]):
        reason = f"no revenue in {currency} yet" if currency else "no revenue yet"
    if reason is None:
        m1, v1, m2, v2, cap = stats.capped_moments(*values)
        means["treatment"]["capped"], means["holdout"]["capped"] = float(m1), float(m2)
        difference, low, high, t, df, p = stats.welch_test(m1, v1, n1, m2, v2, n2)
        lift, lift_low, lift_high = stats.mean_lift(m1, v1, n1, m2, v2, n2)
        result |= {
            "cap": stats.finite(cap),
            "difference": stats.finite(difference),
            "difference_ci": _interval(low, high),
            "t": stats.finite(t),
            "df": stats.finite(df),
            "p_value": stats.finite(p),
            "lift": stats.finite(lift),
            "lift_ci": _interval(lift_low, lift_high),
        }
        if not found["holdout"]:
            reason = "no revenue in the holdout yet"
        elif result["p_value"] is None:
            reason = "revenue per visitor does not vary"
        else:
            needed = stats.visitors_needed_mean(m2, v1, v2, share)
            result["visitors_needed"], result["visitors_more"] = _needed(needed, (n1, n2))
    result["verdict_code"], result["verdict"] = stats.metric_verdict(
        "revenue per visitor", result, _more(result), reason
    )
    return result, means


def _more(result: dict[str, Any]) -> tuple[int, int] | None:
    more = result["visitors_more"]
    return None if more is None else (more["treatment"], more["holdout"])


def lift_report(
    conn: sa.Connection,
    site_id: int,
    start: date,
    end: date,
    holdout_share: float,
    currency: str | None = None,
) -> dict[str, Any]:
    """Lift of recommendations against the holdout, per visitor, from ``start`` to ``end``.

    ``holdout_share`` is the configured share of visitors held out (the sample-ratio check
    compares the groups' sizes with it); ``currency`` picks the revenue currency (default: the
    one with the most revenue). The module docstring lists the answer's keys.
    """
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    currencies = _currencies(conn, site_id, start, end)
    chosen = currency.upper() if currency else (currencies[0] if currencies else None)
    counts, excluded, found = _visitors(conn, site_id, start, end, chosen)
    conversion = _conversion(counts, holdout_share)
    revenue, means = _revenue(counts, found, chosen, holdout_share)
    report: dict[str, Any] = {
        "site_id": site_id,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "holdout_share": float(holdout_share),
        "visitors_excluded": excluded,
        "currency": chosen,
        "currencies": currencies,
    }
    for group in GROUPS:
        n, conversions = counts[group]
        report[group] = {
            "visitors": n,
            "conversions": conversions,
            "conversion_rate": conversions / n if n else None,
            "revenue_per_visitor": means[group]["raw"],
            "revenue_per_visitor_capped": means[group]["capped"],
        }
    report["conversion"], report["revenue"] = conversion, revenue
    report["sample_ratio"] = _sample_ratio(counts, holdout_share)
    report["verdict_code"], report["verdict"] = _verdict(report)
    return report


def _sample_ratio(counts: dict[str, list[int]], share: float) -> dict[str, Any]:
    n1, n2 = counts["treatment"][0], counts["holdout"][0]
    p = stats.finite(stats.sample_ratio_mismatch(n1, n2, share))
    return {
        "observed_holdout_share": n2 / (n1 + n2) if n1 + n2 else None,
        "p_value": p,
        "mismatch": p is not None and p < stats.SRM_ALPHA,
    }


def _verdict(report: dict[str, Any]) -> tuple[str, str]:
    share = report["holdout_share"]
    if not 0 < share < 1:
        return "no_holdout", (
            f"no holdout group is configured (holdout share {share:.0%}): "
            "lift cannot be measured; set a holdout share between 0 and 1"
        )
    srm = report["sample_ratio"]
    if srm["mismatch"]:
        n1, n2 = report["treatment"]["visitors"], report["holdout"]["visitors"]
        expected = (n1 + n2) * share
        return "sample_ratio_mismatch", (
            f"sample ratio mismatch: {n2:,} holdout visitors of {n1 + n2:,} where a holdout "
            f"share of {share:.1%} expects about {expected:,.0f} "
            f"({stats.p_text(srm['p_value'])}); results are not trustworthy until it is explained"
        )
    return report["conversion"]["verdict_code"], report["conversion"]["verdict"]
