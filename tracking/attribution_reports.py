"""Attribution reports: impressions, clicks, CTR, attributed orders and revenue, and holdout lift.

What marketers read of :mod:`tracking.attribution`: per placement and model version, and split by
group, ``treatment`` (personalised) against ``holdout`` (popularity only,
:mod:`tracking.holdout`), whose visitors, orders and revenue are the basis of lift.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tracking.attribution import RECOMMENDATION_CLICKED, RECOMMENDATION_SHOWN
from tracking.events import CENT
from tracking.orders import money
from tracking.schema import attributions, events, orders

ZERO = Decimal("0.00")


def _property(name: str) -> sa.ColumnElement:
    return events.c.payload[("properties", name)].as_string()


def _group() -> dict[str, Any]:
    return {"impressions": 0, "clicks": 0, "orders": 0, "revenue": ZERO}


def attribution_summary(
    conn: sa.Connection, site_id: int, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Per placement and model version: impressions, clicks, CTR, attributed orders and revenue.

    Each row also splits the counts by group: ``treatment`` (personalised) and ``holdout``
    (popularity only). ``currencies`` lists the order currencies summed into ``revenue``.
    """
    rows: dict[tuple, dict[str, Any]] = {}

    def row(placement, model_version) -> dict[str, Any]:
        key = (placement, model_version)
        if key not in rows:
            rows[key] = {
                "placement": placement,
                "model_version": model_version,
                **_group(),
                "currencies": set(),
                "treatment": _group(),
                "holdout": _group(),
            }
        return rows[key]

    placement, model_version = _property("placement"), _property("model_version")
    query = (
        sa.select(placement, model_version, events.c.event, events.c.holdout, sa.func.count())
        .where(
            events.c.site_id == site_id,
            events.c.event.in_([RECOMMENDATION_SHOWN, RECOMMENDATION_CLICKED]),
        )
        .group_by(placement, model_version, events.c.event, events.c.holdout)
    )
    if since is not None:
        query = query.where(events.c.timestamp >= since)
    for place, version, name, holdout, n in conn.execute(query):
        target = row(place, version)
        measure = "impressions" if name == RECOMMENDATION_SHOWN else "clicks"
        target[measure] += n
        target["holdout" if holdout else "treatment"][measure] += n

    a = attributions.c
    query = sa.select(
        a.placement,
        a.model_version,
        a.holdout,
        a.currency,
        sa.func.count(sa.distinct(a.order_id)),
        sa.func.sum(a.revenue),
    ).where(a.site_id == site_id)
    if since is not None:
        query = query.where(a.ordered_at >= since)
    query = query.group_by(a.placement, a.model_version, a.holdout, a.currency)
    for place, version, holdout, currency, n_orders, revenue in conn.execute(query):
        target = row(place, version)
        for bucket in (target, target["holdout" if holdout else "treatment"]):
            bucket["orders"] += n_orders
            bucket["revenue"] += money(revenue) or ZERO
        if currency:
            target["currencies"].add(currency)

    result = []
    for key in sorted(rows, key=lambda k: tuple((v is None, str(v or "")) for v in k)):
        target = rows[key]
        target["currencies"] = sorted(target["currencies"])
        for bucket in (target, target["treatment"], target["holdout"]):
            shown = bucket["impressions"]
            bucket["ctr"] = bucket["clicks"] / shown if shown else None
        result.append(target)
    return result


def holdout_summary(
    conn: sa.Connection, site_id: int, since: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """All visitors, orders and revenue of the treatment and holdout groups: the basis of lift."""
    groups = {
        name: {"visitors": 0, "orders": 0, "revenue": ZERO} for name in ("treatment", "holdout")
    }
    visitor = sa.func.coalesce(events.c.anonymous_id, events.c.user_id)
    query = (
        sa.select(events.c.holdout, sa.func.count(sa.distinct(visitor)))
        .where(events.c.site_id == site_id)
        .group_by(events.c.holdout)
    )
    if since is not None:
        query = query.where(events.c.timestamp >= since)
    for holdout, n in conn.execute(query):
        groups["holdout" if holdout else "treatment"]["visitors"] += n
    query = (
        sa.select(orders.c.holdout, sa.func.count(), sa.func.sum(orders.c.revenue))
        .where(orders.c.site_id == site_id)
        .group_by(orders.c.holdout)
    )
    if since is not None:
        query = query.where(orders.c.ordered_at >= since)
    for holdout, n, revenue in conn.execute(query):
        group = groups["holdout" if holdout else "treatment"]
        group["orders"] += n
        group["revenue"] += money(revenue) or ZERO
    for group in groups.values():
        visitors = group["visitors"]
        group["revenue_per_visitor"] = (
            (group["revenue"] / visitors).quantize(CENT) if visitors else None
        )
        group["orders_per_visitor"] = group["orders"] / visitors if visitors else None
    return groups
