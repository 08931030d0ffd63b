"""Evaluating the trigger rules (analytics.triggers): score rules after a refresh, visit rules
as events are stored.

:func:`evaluate_scores` compares the site's two newest value snapshots (the scheduler's customer
value job and ``flask analytics refresh`` call it after the refresh); :func:`on_stored` is the
ingest hook, run in the transaction that stores the events, so a rule fires as the event that meets
it arrives and a redelivered batch (its events stored already) fires nothing twice. Choosing the
ingest hook over a job reading new events every minute: the firing commits with the events (no
watermark to keep), and it is one indexed query per rule per batch, none when the site has no
visit rule. The visit windows end at the newest event of the batch.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from analytics.rollups_sql import top_category
from analytics.triggers import EVENT_KINDS, SCORE_KINDS, Action, Firing, Rule, fire, rules
from analytics.value_schema import value_runs, value_scores
from tracking.db import aware
from tracking.schema import events, order_lines, orders
from tracking.store import StoredBatch

VIEWED = "Product Viewed"


# -- score rules, after a refresh ---------------------------------------------------------------


def _two_newest_days(conn: sa.Connection, site_id: int):
    days = conn.execute(
        sa.select(value_runs.c.day)
        .where(value_runs.c.site_id == site_id)
        .group_by(value_runs.c.day)
        .order_by(value_runs.c.day.desc())
        .limit(2)
    ).scalars()
    found = list(days)
    return (found[0], found[1]) if len(found) == 2 else (None, None)


def score_firings(conn: sa.Connection, site_id: int) -> list[Firing]:
    """What the site's enabled score rules find between its two newest snapshots."""
    wanted = rules(conn, site_id, enabled_only=True, kinds=SCORE_KINDS)
    if not wanted:
        return []
    day, before = _two_newest_days(conn, site_id)
    if day is None:
        return []
    new, old = value_scores.alias("new"), value_scores.alias("old")
    joined = new.outerjoin(
        old,
        sa.and_(
            old.c.site_id == new.c.site_id,
            old.c.day == before,
            old.c.currency == new.c.currency,
            old.c.user_id == new.c.user_id,
        ),
    )
    found = []
    for rule in wanted:
        base = sa.select(
            new.c.user_id,
            new.c.currency,
            new.c.segment,
            old.c.segment.label("segment_before"),
            new.c.clv,
            old.c.clv.label("clv_before"),
        ).select_from(joined)
        base = base.where(new.c.site_id == site_id, new.c.day == day)
        if rule.kind == "segment":
            segment = rule.params["segment"]
            query = base.where(
                new.c.segment == segment,
                sa.or_(old.c.segment.is_(None), old.c.segment != segment),
            )
        else:
            threshold = rule.params["threshold"]
            query = base.where(
                new.c.currency == rule.params["currency"],
                new.c.clv >= threshold,
                old.c.clv < threshold,
            )
        for row in conn.execute(query.order_by(new.c.user_id, new.c.currency)):
            values: dict[str, Any] = {
                "currency": row.currency,
                "day": day.isoformat(),
                "day_before": before.isoformat(),
            }
            if rule.kind == "segment":
                values.update(segment=row.segment, segment_before=row.segment_before)
            else:
                values.update(
                    clv=round(float(row.clv), 2),
                    clv_before=round(float(row.clv_before), 2),
                    threshold=rule.params["threshold"],
                )
            found.append(Firing(rule, row.user_id, values))
    # One firing per rule and customer (a segment rule may match in two currencies).
    return list({(f.rule.rule_id, f.user_id): f for f in found}.values())


def evaluate_scores(
    engine: sa.Engine, site_id: int, action: Action | None, now: datetime | None = None
) -> int:
    """Fire the site's score rules after a refresh, in one transaction; returns the firings."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        return sum(fire(conn, f, action, now) for f in score_firings(conn, site_id))


# -- visit rules, as events arrive ------------------------------------------------------------


def _category(row: dict[str, Any]) -> str | None:
    properties = (row.get("payload") or {}).get("properties") or {}
    category = properties.get("category")
    return category if isinstance(category, str) else None


def _matches(category: str | None, wanted: str) -> bool:
    if not category:
        return False
    wanted = wanted.casefold()
    return category.strip().casefold() == wanted or top_category(category).casefold() == wanted


def event_firings(conn: sa.Connection, batch: StoredBatch) -> list[Firing]:
    """What the site's enabled visit rules find for the customers of a stored batch."""
    users = sorted({r["user_id"] for r in batch.rows if r.get("user_id")})
    if not users:
        return []
    wanted = rules(conn, batch.site_id, enabled_only=True, kinds=EVENT_KINDS)
    if not wanted:
        return []
    end = max(aware(r["timestamp"]) for r in batch.rows)
    found = []
    for rule in wanted:
        since = end - timedelta(days=rule.params["days"])
        if rule.kind == "visits":
            query = (
                sa.select(events.c.user_id, sa.func.count(sa.distinct(events.c.session_id)))
                .where(
                    events.c.site_id == batch.site_id,
                    events.c.user_id.in_(users),
                    events.c.timestamp > since,
                    events.c.timestamp <= end,
                    events.c.session_id.is_not(None),
                )
                .group_by(events.c.user_id)
            )
            for user_id, visits in conn.execute(query):
                if visits >= rule.params["visits"]:
                    values = {"visits": visits, "days": rule.params["days"]}
                    found.append(Firing(rule, user_id, values))
        else:
            found.extend(_category_firings(conn, batch, rule, since, end))
    return found


def _category_firings(conn, batch: StoredBatch, rule: Rule, since, end) -> list[Firing]:
    category = rule.params["category"]
    # Only customers who viewed the category in this batch: the rule fires on the k-th view.
    viewers = sorted(
        {
            r["user_id"]
            for r in batch.rows
            if r.get("user_id") and r.get("event") == VIEWED and _matches(_category(r), category)
        }
    )
    if not viewers:
        return []
    views: dict[str, int] = defaultdict(int)
    query = sa.select(events.c.user_id, events.c.payload).where(
        events.c.site_id == batch.site_id,
        events.c.user_id.in_(viewers),
        events.c.event == VIEWED,
        events.c.timestamp > since,
        events.c.timestamp <= end,
    )
    for user_id, payload in conn.execute(query):
        if _matches(_category({"payload": payload}), category):
            views[user_id] += 1
    ready = [u for u in viewers if views[u] >= rule.params["views"]]
    if not ready:
        return []
    bought = set()
    query = (
        sa.select(orders.c.user_id, order_lines.c.category)
        .join(
            order_lines,
            sa.and_(
                order_lines.c.site_id == orders.c.site_id,
                order_lines.c.order_id == orders.c.order_id,
            ),
        )
        .where(
            orders.c.site_id == batch.site_id,
            orders.c.user_id.in_(ready),
            orders.c.ordered_at > since,
        )
    )
    for user_id, line_category in conn.execute(query):
        if _matches(line_category, category):
            bought.add(user_id)
    return [
        Firing(rule, u, {"category": category, "views": views[u], "days": rule.params["days"]})
        for u in ready
        if u not in bought
    ]


def on_stored(
    conn: sa.Connection, batch: StoredBatch, action: Action | None, now: datetime | None = None
) -> int:
    """The ingest hook: fire the visit rules the batch's customers now meet, in the ingest
    transaction (nothing fires when it rolls back). Returns the firings."""
    now = now or datetime.now(UTC)
    return sum(fire(conn, f, action, now) for f in event_firings(conn, batch))
