"""What the console's customer value pages read from the dated snapshots (``value_scores``).

Every function takes one site and, where money is involved, one currency: money is never summed
across currencies. The snapshots are written by the refresh (analytics.value); a page reads the
newest one (and the one before it, for changes), the rows of the customers it lists by index, or
per-segment sums. Prospects come from the funnel rollup (``funnel_sessions``), not from events.
No Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

from analytics import rfm
from analytics.schema import funnel_sessions
from analytics.value_schema import value_runs, value_scores
from tracking.schema import orders, sessions

LIST_ROWS = 50  # customers in the churn-risk and prospect lists
CLV_BINS = 10  # bars of the CLV distribution below its 99th percentile (one more above it)
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


def grid(conn: sa.Connection, site_id: int, day: date, currency: str) -> list[dict[str, Any]]:
    """The 5x5 R x F grid: all 25 cells (R 5..1, F 1..5), customers, net revenue and segment."""
    found = {
        (row.r_score, row.f_score): row
        for row in conn.execute(
            sa.select(
                value_scores.c.r_score,
                value_scores.c.f_score,
                sa.func.count().label("customers"),
                sa.func.sum(value_scores.c.revenue).label("revenue"),
            )
            .where(*_day_of(site_id, day, currency))
            .group_by(value_scores.c.r_score, value_scores.c.f_score)
        )
    }
    total = sum(row.customers for row in found.values()) or 1
    cells = []
    for r in range(5, 0, -1):
        for f in range(1, 6):
            row = found.get((r, f))
            customers = row.customers if row else 0
            cells.append(
                {
                    "r_score": r,
                    "f_score": f,
                    "segment": rfm.SEGMENTS[(r, f)],
                    "customers": customers,
                    "share": customers / total,
                    "revenue": row.revenue if row else 0,
                }
            )
    return cells


def segments_over_time(
    conn: sa.Connection, site_id: int, currency: str, start: date, end: date
) -> list[dict[str, Any]]:
    """Customers and net revenue per segment on each snapshot day from ``start`` to ``end``."""
    rows = conn.execute(
        sa.select(
            value_scores.c.day,
            value_scores.c.segment,
            sa.func.count().label("customers"),
            sa.func.sum(value_scores.c.revenue).label("revenue"),
        )
        .where(
            value_scores.c.site_id == site_id,
            value_scores.c.currency == currency,
            value_scores.c.day.between(start, end),
        )
        .group_by(value_scores.c.day, value_scores.c.segment)
        .order_by(value_scores.c.day, value_scores.c.segment)
    )
    return [dict(row._mapping) for row in rows]


@dataclass(frozen=True)
class ParetoReport:
    """The Pareto curve's points, the VIPs (by the site's rule) and their share of net revenue."""

    points: list[dict[str, float]]
    vips: int
    customers: int
    vip_revenue_share: float | None


def pareto(
    conn: sa.Connection, site_id: int, day: date, currency: str, steps: int = 20
) -> ParetoReport:
    """The share of net revenue of the top x% of customers at ``steps`` even steps, and the
    VIPs' count and share; refunds beyond purchases count as zero revenue."""
    rows = conn.execute(
        sa.select(value_scores.c.revenue, value_scores.c.vip).where(
            *_day_of(site_id, day, currency)
        )
    ).all()
    revenue = np.clip(np.array([float(r.revenue) for r in rows], dtype=np.float64), 0, None)
    vip = np.array([bool(r.vip) for r in rows], dtype=bool)
    curve = rfm.pareto(revenue)
    points = [
        {"customer_share": share, "revenue_share": revenue_share}
        for share, revenue_share in curve.points(steps)
    ]
    total = revenue.sum()
    share = float(revenue[vip].sum() / total) if total > 0 else None
    return ParetoReport(points, int(vip.sum()), len(rows), share)


def clv_distribution(
    conn: sa.Connection, site_id: int, day: date, currency: str
) -> list[dict[str, Any]]:
    """Customers by lifetime value: equal bins from 0 to the 99th percentile, then one above it
    (the few largest values would squeeze every other bar into one). Empty without a fit."""
    values = np.array(
        conn.execute(
            sa.select(value_scores.c.clv).where(
                *_day_of(site_id, day, currency), value_scores.c.clv.is_not(None)
            )
        )
        .scalars()
        .all(),
        dtype=np.float64,
    )
    if len(values) == 0:
        return []
    values = np.clip(values, 0, None)  # no spend is expected of refunders: a value of 0
    top = float(np.quantile(values, 0.99))
    if top <= 0:
        top = float(values.max()) or 1.0
    edges = np.linspace(0.0, top, CLV_BINS + 1)
    counts, _ = np.histogram(values, bins=edges)  # the last bin holds its right edge
    rows = [
        {"low": round(float(low), 2), "high": round(float(high), 2), "customers": int(n)}
        for low, high, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]
    rows.append({"low": round(top, 2), "high": None, "customers": int((values > top).sum())})
    for row in rows:
        row["share"] = row["customers"] / len(values)
    return rows


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
    the sessions with most such carts first, then the latest."""
    intent = sa.and_(
        funnel_sessions.c.steps.op("&")(VIEWED) == VIEWED,
        funnel_sessions.c.steps.op("&")(ADDED) == ADDED,
        funnel_sessions.c.steps.op("&")(ORDERED) == 0,
    )
    visitor = sessions.c.visitor_id
    bought_as_user = sa.exists().where(
        orders.c.site_id == site_id,
        orders.c.user_id == sessions.c.user_id,
    )
    bought_as_visitor = sa.exists().where(
        orders.c.site_id == site_id,
        orders.c.anonymous_id == sessions.c.anonymous_id,
    )
    query = (
        sa.select(
            visitor.label("visitor_id"),
            sa.func.max(sessions.c.user_id).label("user_id"),
            sa.func.count().label("sessions"),
            sa.func.max(sessions.c.last_seen_at).label("last_seen_at"),
        )
        .join_from(funnel_sessions, sessions, sessions.c.session_id == funnel_sessions.c.session_id)
        .where(
            funnel_sessions.c.site_id == site_id,
            funnel_sessions.c.category == "",
            funnel_sessions.c.day.between(start, end),
            intent,
            sessions.c.site_id == site_id,
            ~bought_as_user,
            ~bought_as_visitor,
        )
        .group_by(visitor)
        .order_by(sa.desc("sessions"), sa.desc("last_seen_at"), visitor)
        .limit(limit)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


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
