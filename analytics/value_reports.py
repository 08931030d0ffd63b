"""What the console's customer value pages read from the dated snapshots (``value_scores``).

Every function takes one site and, where money is involved, one currency: money is never summed
across currencies. The snapshots are written by the refresh (analytics.value); a page reads the
newest one (and the one before it, for changes), the snapshot's summary the refresh stored
(analytics.value_summary: cells, Pareto curve, CLV bins) and the rows of the customers it lists
by index, never every customer's row. Prospects come from the funnel rollup
(``funnel_sessions``), not from events. No Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from analytics import rfm
from analytics.schema import funnel_sessions
from analytics.value_schema import value_runs, value_scores, value_summaries
from tracking.db import aware
from tracking.schema import orders, sessions

LIST_ROWS = 50  # customers in the churn-risk and prospect lists
VIEWED, ADDED, ORDERED = 1, 2, 8  # funnel_sessions.steps bits


@dataclass(frozen=True)
class Snapshot:
    """The newest refresh day of a site, the one before it (or None), and its currencies."""

    day: date
    previous: date | None
    currencies: list[str]


def latest(conn: sa.Connection, site_id: int) -> Snapshot | None:
    """The site's newest snapshot, or None before the first refresh."""
    days = (
        conn.execute(
            sa.select(value_runs.c.day)
            .where(value_runs.c.site_id == site_id)
            .group_by(value_runs.c.day)
            .order_by(value_runs.c.day.desc())
            .limit(2)
        )
        .scalars()
        .all()
    )
    if not days:
        return None
    currencies = (
        conn.execute(
            sa.select(value_runs.c.currency)
            .where(value_runs.c.site_id == site_id, value_runs.c.day == days[0])
            .order_by(value_runs.c.currency)
        )
        .scalars()
        .all()
    )
    return Snapshot(days[0], days[1] if len(days) > 1 else None, list(currencies))


def run(conn: sa.Connection, site_id: int, day: date, currency: str) -> dict[str, Any] | None:
    """The refresh's record of one currency on ``day`` (fit, or why there is none)."""
    row = conn.execute(
        sa.select(value_runs).where(
            value_runs.c.site_id == site_id,
            value_runs.c.day == day,
            value_runs.c.currency == currency,
        )
    ).first()
    return None if row is None else dict(row._mapping)


def _day_of(site_id: int, day: date, currency: str):
    return (
        value_scores.c.site_id == site_id,
        value_scores.c.day == day,
        value_scores.c.currency == currency,
    )


def summary(conn: sa.Connection, site_id: int, day: date, currency: str):
    """The snapshot's summary row (analytics.value_summary), or None."""
    return conn.execute(
        sa.select(value_summaries).where(
            value_summaries.c.site_id == site_id,
            value_summaries.c.day == day,
            value_summaries.c.currency == currency,
        )
    ).first()


def grid(conn: sa.Connection, site_id: int, day: date, currency: str) -> list[dict[str, Any]]:
    """The 5x5 R x F grid: all 25 cells (R 5..1, F 1..5), customers, net revenue and segment."""
    found = summary(conn, site_id, day, currency)
    cells = found.cells if found is not None else []
    total = sum(c["customers"] for c in cells) or 1
    return [
        {
            "r_score": c["r"],
            "f_score": c["f"],
            "segment": rfm.SEGMENTS[(c["r"], c["f"])],
            "customers": c["customers"],
            "share": c["customers"] / total,
            "revenue": c["revenue"],
        }
        for c in cells
    ]


def segments_over_time(
    conn: sa.Connection, site_id: int, currency: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Customers and net revenue per segment on each snapshot day from ``start`` to ``end``
    (segments with nobody that day left out)."""
    rows = conn.execute(
        sa.select(value_summaries.c.day, value_summaries.c.cells)
        .where(
            value_summaries.c.site_id == site_id,
            value_summaries.c.currency == currency,
            value_summaries.c.day.between(start, end),
        )
        .order_by(value_summaries.c.day)
    )
    out = []
    for day, cells in rows:
        sums: dict[str, list[float]] = {}
        for c in cells:
            into = sums.setdefault(rfm.SEGMENTS[(c["r"], c["f"])], [0, 0.0])
            into[0] += c["customers"]
            into[1] += c["revenue"]
        out += [
            {"day": day, "segment": name, "customers": n, "revenue": round(revenue, 2)}
            for name, (n, revenue) in sorted(sums.items())
            if n
        ]
    return out


@dataclass(frozen=True)
class ParetoReport:
    """The Pareto curve's points, the VIPs (by the site's rule) and their share of net revenue."""

    points: list[dict[str, float]]
    vips: int
    customers: int
    vip_revenue_share: float | None


def pareto(conn: sa.Connection, site_id: int, day: date, currency: str) -> ParetoReport:
    """The share of net revenue of the top 5%, 10% ... 100% of customers, and the VIPs' count and
    share (refunds beyond purchases count as zero revenue)."""
    found = summary(conn, site_id, day, currency)
    if found is None:
        return ParetoReport([], 0, 0, None)
    steps = len(found.pareto)
    points = [
        {"customer_share": (i + 1) / steps, "revenue_share": share}
        for i, share in enumerate(found.pareto)
    ]
    return ParetoReport(points, found.vips, found.customers, found.vip_revenue_share)


def clv_distribution(
    conn: sa.Connection, site_id: int, day: date, currency: str
) -> list[dict[str, Any]]:
    """Customers by lifetime value (analytics.value_summary.clv_bins), with each bin's share.
    Empty without a fit."""
    found = summary(conn, site_id, day, currency)
    if found is None or not found.clv_bins:
        return []
    total = sum(b["customers"] for b in found.clv_bins) or 1
    return [{**b, "share": b["customers"] / total} for b in found.clv_bins]


def vip_value(fit: dict[str, Any] | None) -> str:
    """What made a snapshot's VIPs: ``"clv"`` when its refresh ranked by lifetime value (the
    settings said so and the models were fitted), else ``"revenue"`` (analytics.value)."""
    if fit is None:
        return "revenue"
    ranked_by = (fit.get("settings") or {}).get("vip_by", "clv")
    return "clv" if ranked_by == "clv" and not fit.get("fit_error") else "revenue"


def vips(
    conn: sa.Connection,
    site_id: int,
    day: date,
    currency: str,
    by: str = "revenue",
    limit: int = LIST_ROWS,
) -> list[dict[str, Any]]:
    """The snapshot's VIPs, highest ``by`` (``"clv"`` or ``"revenue"``: what made them VIPs,
    :func:`vip_value`) first, ties by user id; at most ``limit``."""
    key = value_scores.c.clv if by == "clv" else value_scores.c.revenue
    query = (
        sa.select(
            value_scores.c.user_id,
            value_scores.c.segment,
            value_scores.c.orders,
            value_scores.c.revenue,
            value_scores.c.clv,
            value_scores.c.p_alive,
            value_scores.c.last_order_at,
        )
        .where(*_day_of(site_id, day, currency), value_scores.c.vip == sa.true())
        .order_by(key.desc(), value_scores.c.user_id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def slipping(
    conn: sa.Connection, site_id: int, snapshot: Snapshot, currency: str, limit: int = LIST_ROWS
) -> list[dict[str, Any]]:
    """ "Valuable and slipping": the customers with the highest lifetime value whose P(alive) fell
    since the previous snapshot, highest CLV first. Empty with a single snapshot."""
    if snapshot.previous is None:
        return []
    now, before = value_scores.alias("now"), value_scores.alias("before")
    query = (
        sa.select(
            now.c.user_id,
            now.c.segment,
            now.c.clv,
            now.c.p_alive,
            before.c.p_alive.label("p_alive_before"),
            now.c.revenue,
            now.c.last_order_at,
            now.c.vip,
        )
        .join_from(
            now,
            before,
            sa.and_(
                before.c.site_id == now.c.site_id,
                before.c.day == snapshot.previous,
                before.c.currency == now.c.currency,
                before.c.user_id == now.c.user_id,
            ),
        )
        .where(
            now.c.site_id == site_id,
            now.c.day == snapshot.day,
            now.c.currency == currency,
            now.c.clv.is_not(None),
            before.c.p_alive.is_not(None),
            now.c.p_alive < before.c.p_alive,
        )
        .order_by(now.c.clv.desc(), now.c.user_id)
        .limit(limit)
    )
    rows = []
    for row in conn.execute(query):
        item = dict(row._mapping)
        item["churn_risk"] = 1.0 - item["p_alive"]
        item["change"] = item["p_alive"] - item["p_alive_before"]
        rows.append(item)
    return rows


def prospects(
    conn: sa.Connection, site_id: int, start: date, end: date, limit: int = LIST_ROWS
) -> list[dict[str, Any]]:
    """Visitors who viewed a product and added one to the cart in a session that started from
    ``start`` to ``end``, with no order in it and none ever (by their user id or anonymous id):
    the latest first, each with their number of such sessions in the period.

    A period holds hundreds of thousands of such sessions at 10M events (1.3-2.6 s to group them
    all per visitor), so the sessions are read newest day first, a whole day at a time, until
    ``limit`` visitors are found; only those visitors' sessions are then counted.
    """
    intent = sa.and_(
        funnel_sessions.c.site_id == site_id,
        funnel_sessions.c.day.between(start, end),
        funnel_sessions.c.steps.op("&")(VIEWED) == VIEWED,
        funnel_sessions.c.steps.op("&")(ADDED) == ADDED,
        funnel_sessions.c.steps.op("&")(ORDERED) == 0,
        sessions.c.site_id == site_id,
        ~sa.exists().where(orders.c.site_id == site_id, orders.c.user_id == sessions.c.user_id),
        ~sa.exists().where(
            orders.c.site_id == site_id, orders.c.anonymous_id == sessions.c.anonymous_id
        ),
    )
    joined = sa.join(
        funnel_sessions, sessions, sessions.c.session_id == funnel_sessions.c.session_id
    )
    newest_first = (
        sa.select(sessions.c.visitor_id, sessions.c.last_seen_at, funnel_sessions.c.day)
        .select_from(joined)
        .where(intent)
        .order_by(funnel_sessions.c.day.desc())
    )
    seen: dict[str, Any] = {}
    day = None
    # Closed on leaving, read to the end or not: on PostgreSQL it is a server-side cursor.
    with conn.execution_options(yield_per=500).execute(newest_first) as result:
        for row in result:
            if row.day != day:
                if len(seen) >= limit:
                    break
                day = row.day
            last = aware(row.last_seen_at)
            if row.visitor_id not in seen or last > seen[row.visitor_id]:
                seen[row.visitor_id] = last
    if not seen:
        return []
    chosen = sorted(seen, key=lambda v: (-seen[v].timestamp(), v))[:limit]
    visitor = sessions.c.visitor_id
    counted = (
        sa.select(
            visitor.label("visitor_id"),
            sa.func.max(sessions.c.user_id).label("user_id"),
            sa.func.count().label("sessions"),
            sa.func.max(sessions.c.last_seen_at).label("last_seen_at"),
        )
        .select_from(joined)
        .where(intent, visitor.in_(chosen))
        .group_by(visitor)
    )
    found = [dict(row._mapping) for row in conn.execute(counted)]
    for item in found:
        item["last_seen_at"] = aware(item["last_seen_at"])
    found.sort(key=lambda p: (-p["last_seen_at"].timestamp(), p["visitor_id"]))
    return found


def customer_history(conn: sa.Connection, site_id: int, user_id: str) -> list[dict[str, Any]]:
    """One customer's scores on every snapshot day, newest first, per currency."""
    rows = conn.execute(
        sa.select(value_scores)
        .where(value_scores.c.site_id == site_id, value_scores.c.user_id == user_id)
        .order_by(value_scores.c.day.desc(), value_scores.c.currency)
    )
    history = []
    for row in rows:
        item = dict(row._mapping)
        p_alive = item["p_alive"]
        item["churn_risk"] = None if p_alive is None else 1.0 - p_alive
        item["rfm"] = f"{item['r_score']}{item['f_score']}{item['m_score']}"
        item["seed"] = f"{item['r_seed']}{item['f_seed']}{item['m_seed']}"
        history.append(item)
    return history
