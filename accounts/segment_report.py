"""The campaign report of a segment export: its targets against its control, orders and net
revenue in the N days after the export, with analytics.stats' intervals.

Each member's orders under their user id in the export's currency from the export's time to N
days later (or now, if sooner) count; a member who ordered is a buyer. The buyer rates get
Wilson intervals, their difference Newcombe's and a pooled two-proportion test's p-value, their
ratio the delta-method lift (analytics.stats.conversion_lift); net revenue per member is compared
with Welch's test and its relative lift (mean_lift), uncapped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from accounts.segments import SegmentError
from analytics import stats
from analytics.value_schema import segment_export_members, segment_exports
from tracking.db import aware
from tracking.schema import orders

MAX_DAYS = 365
NO_CURRENCY = "XXX"


class UnknownExport(LookupError):
    """No export with that id of that segment on this site."""


def check_days(value: Any) -> int:
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise SegmentError("days", f"a whole number of days from 1 to {MAX_DAYS}")
    return int(text)


def _per_member(conn, site_id: int, export, start: datetime, end: datetime):
    money = sa.cast(sa.func.coalesce(orders.c.total, orders.c.revenue, 0), sa.Float)
    currency = sa.func.upper(sa.func.coalesce(orders.c.currency, NO_CURRENCY))
    m = segment_export_members.c
    bought = (
        sa.select(
            orders.c.user_id.label("user_id"),
            sa.func.count().label("orders"),
            sa.func.sum(money).label("revenue"),
        )
        .where(
            orders.c.site_id == site_id,
            orders.c.ordered_at >= start,
            orders.c.ordered_at < end,
            currency == export.currency,
        )
        .group_by(orders.c.user_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(m.control, bought.c.orders, bought.c.revenue)
        .select_from(segment_export_members.outerjoin(bought, bought.c.user_id == m.user_id))
        .where(m.export_id == export.id)
    ).all()
    groups: dict[bool, dict[str, list[float]]] = {
        False: {"orders": [], "revenue": []},
        True: {"orders": [], "revenue": []},
    }
    for control, n_orders, revenue in rows:
        groups[bool(control)]["orders"].append(float(n_orders or 0))
        groups[bool(control)]["revenue"].append(float(revenue or 0))
    return groups


def _none(value) -> float | None:
    return stats.finite(value)


def report(
    conn: sa.Connection,
    site_id: int,
    segment_id: int,
    export_id: int,
    days: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Targets against control in the ``days`` after the export (so far, if fewer have passed)."""
    export = conn.execute(
        sa.select(segment_exports).where(
            segment_exports.c.site_id == site_id,
            segment_exports.c.segment_id == segment_id,
            segment_exports.c.id == export_id,
        )
    ).first()
    if export is None:
        raise UnknownExport(export_id)
    start = aware(export.created_at)
    end = min(start + timedelta(days=days), now or datetime.now(UTC))
    groups = _per_member(conn, site_id, export, start, end)
    rows = []
    for label, control in (("Targets", False), ("Control", True)):
        values = groups[control]
        n = len(values["orders"])
        buyers = sum(1 for v in values["orders"] if v > 0)
        low, high = stats.wilson_interval(buyers, n)
        revenue = np.array(values["revenue"])
        rows.append(
            {
                "group": label,
                "members": n,
                "buyers": buyers,
                "buyer_rate": _none(buyers / n) if n else None,
                "buyer_rate_low": _none(low),
                "buyer_rate_high": _none(high),
                "orders": int(sum(values["orders"])),
                "revenue": float(revenue.sum()),
                "revenue_per_member": float(revenue.mean()) if n else None,
            }
        )
    t, c = rows
    r1, r2 = np.array(groups[False]["revenue"]), np.array(groups[True]["revenue"])
    lift = {"buyer_rate": None, "revenue_per_member": None}
    if t["members"] and c["members"]:
        diff, d_low, d_high = stats.newcombe_difference(
            t["buyers"], t["members"], c["buyers"], c["members"]
        )
        ratio, r_low, r_high = stats.conversion_lift(
            t["buyers"], t["members"], c["buyers"], c["members"]
        )
        p = stats.two_proportion_p_value(t["buyers"], t["members"], c["buyers"], c["members"])
        lift["buyer_rate"] = {
            "difference": _none(diff),
            "difference_low": _none(d_low),
            "difference_high": _none(d_high),
            "p_value": _none(p),
            "lift": _none(ratio),
            "lift_low": _none(r_low),
            "lift_high": _none(r_high),
        }
    if len(r1) > 1 and len(r2) > 1:
        v1, v2 = r1.var(ddof=1), r2.var(ddof=1)
        diff, low, high, _, _, p = stats.welch_test(r1.mean(), v1, len(r1), r2.mean(), v2, len(r2))
        ratio, r_low, r_high = stats.mean_lift(r1.mean(), v1, len(r1), r2.mean(), v2, len(r2))
        lift["revenue_per_member"] = {
            "difference": _none(diff),
            "difference_low": _none(low),
            "difference_high": _none(high),
            "p_value": _none(p),
            "lift": _none(ratio),
            "lift_low": _none(r_low),
            "lift_high": _none(r_high),
        }
    return {
        "export_id": export.id,
        "currency": export.currency,
        "start": start,
        "end": end,
        "days": days,
        "complete": end >= start + timedelta(days=days),
        "groups": rows,
        "lift": lift,
    }
