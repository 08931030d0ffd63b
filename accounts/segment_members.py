"""The members of a segment definition (accounts.segments) in a site's newest value snapshot.

The snapshot's conditions (segments, cells, CLV, P(alive), last order) and the SQL ones (last
visit, category affinity from orders and views) are one query; traits and consent are checked
on the rows it returns. Members are in user id order, so pages can follow each other by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from accounts import preferences
from accounts.prefs_schema import consent_records
from accounts.segments import Definition, SegmentError
from analytics.value_schema import value_runs, value_scores
from tracking.schema import customers, events, items, order_lines, orders, sessions


@dataclass(frozen=True)
class Member:
    user_id: str
    segment: str
    r_score: int
    f_score: int
    revenue: float
    clv: float | None
    p_alive: float | None
    last_order_at: datetime


@dataclass(frozen=True)
class Members:
    """The members of a definition in one snapshot, in user id order (None: no snapshot yet)."""

    day: date | None
    currency: str | None
    members: list[Member]

    @property
    def count(self) -> int:
        return len(self.members)


def _snapshot(conn: sa.Connection, site_id: int, currency: str | None):
    day = conn.execute(
        sa.select(sa.func.max(value_runs.c.day)).where(value_runs.c.site_id == site_id)
    ).scalar()
    if day is None:
        return None, None
    currencies = (
        conn.execute(
            sa.select(value_runs.c.currency)
            .where(value_runs.c.site_id == site_id, value_runs.c.day == day)
            .order_by(value_runs.c.currency)
        )
        .scalars()
        .all()
    )
    if currency is not None and currency not in currencies:
        raise SegmentError("currency", f"the snapshot of {day} has no scores in {currency}")
    return day, currency or currencies[0]


def _in_category(column: sa.ColumnElement, category: str) -> sa.ColumnElement:
    escaped = category.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.or_(column == category, column.like(f"{escaped}/%", escape="\\"))


def _conditions(site_id: int, d: Definition, at: datetime) -> list[sa.ColumnElement]:
    s = value_scores.c
    where: list[sa.ColumnElement] = []
    cells = [tuple(int(x) for x in c.split("-")) for c in d.cells]
    if d.segments or cells:
        where.append(
            sa.or_(
                s.segment.in_(d.segments),
                *[sa.and_(s.r_score == r, s.f_score == f) for r, f in cells],
            )
        )
    for column, low, high in (
        (s.clv, d.clv_min, d.clv_max),
        (s.p_alive, d.p_alive_min, d.p_alive_max),
    ):
        if low is not None:
            where.append(column >= low)
        if high is not None:
            where.append(column <= high)
    # Last order N days ago: within [at - max, at - min].
    if d.last_order_days_min is not None:
        where.append(s.last_order_at <= at - timedelta(days=d.last_order_days_min))
    if d.last_order_days_max is not None:
        where.append(s.last_order_at > at - timedelta(days=d.last_order_days_max + 1))
    if d.last_visit_days_min is not None or d.last_visit_days_max is not None:
        visited = (
            sa.select(sa.func.max(sessions.c.last_seen_at))
            .where(sessions.c.site_id == site_id, sessions.c.user_id == s.user_id)
            .scalar_subquery()
        )
        if d.last_visit_days_min is not None:
            where.append(visited <= at - timedelta(days=d.last_visit_days_min))
        if d.last_visit_days_max is not None:
            where.append(visited > at - timedelta(days=d.last_visit_days_max + 1))
    if d.category:
        ordered = (
            sa.select(orders.c.id)
            .join(
                order_lines,
                sa.and_(
                    order_lines.c.site_id == orders.c.site_id,
                    order_lines.c.order_id == orders.c.order_id,
                ),
            )
            .where(
                orders.c.site_id == site_id,
                orders.c.user_id == s.user_id,
                _in_category(order_lines.c.category, d.category),
            )
        )
        viewed = (
            sa.select(events.c.id)
            .join(
                items,
                sa.and_(items.c.site_id == events.c.site_id, items.c.item_id == events.c.item_id),
            )
            .where(
                events.c.site_id == site_id,
                events.c.user_id == s.user_id,
                events.c.event == "Product Viewed",
                _in_category(items.c.category, d.category),
            )
        )
        where.append(sa.or_(ordered.exists(), viewed.exists()))
    return where


def _trait_ok(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if isinstance(have, bool) or not isinstance(have, (int, float)):
            return False
        return (want["min"] is None or have >= want["min"]) and (
            want["max"] is None or have <= want["max"]
        )
    if isinstance(want, bool) or isinstance(have, bool):
        return have is want
    return have == want


def _with_traits(conn, site_id: int, users: list[str], traits: dict) -> set[str]:
    kept = set()
    for start in range(0, len(users), 1000):
        rows = conn.execute(
            sa.select(customers.c.user_id, customers.c.traits).where(
                customers.c.site_id == site_id, customers.c.user_id.in_(users[start : start + 1000])
            )
        )
        for user_id, have in rows:
            have = have or {}
            if all(_trait_ok(have.get(k), v) for k, v in traits.items()):
                kept.add(user_id)
    return kept


def consenting(
    conn: sa.Connection, site_id: int, users: list[str], channel: str, topic: str
) -> set[str]:
    """Those of ``users`` who allow ``channel`` x ``topic`` now: newest record, else default."""
    default = next(
        (t.default_granted for t in preferences.topics(conn, site_id) if t.topic == topic), None
    )
    if default is None:
        return set()  # a topic the site does not have
    newest: dict[str, bool] = {}
    for start in range(0, len(users), 1000):
        rows = conn.execute(
            sa.select(consent_records.c.user_id, consent_records.c.granted)
            .where(
                consent_records.c.site_id == site_id,
                consent_records.c.what == f"{channel}:{topic}",
                consent_records.c.user_id.in_(users[start : start + 1000]),
            )
            .order_by(consent_records.c.at, consent_records.c.id)
        )
        for user_id, granted in rows:
            newest[user_id] = bool(granted)
    return {u for u in users if newest.get(u, default)}


def _where(site_id: int, definition: Definition, day: date, currency: str) -> list:
    at = datetime.combine(day + timedelta(days=1), time(0), UTC)  # the end of its day
    s = value_scores.c
    return [
        s.site_id == site_id,
        s.day == day,
        s.currency == currency,
        *_conditions(site_id, definition, at),
    ]


def count(conn: sa.Connection, site_id: int, definition: Definition) -> int:
    """How many are in ``definition`` now: counted by the database when every condition is
    SQL's (no traits, no consent), else by :func:`members`."""
    if definition.traits or definition.consent_channel:
        return members(conn, site_id, definition).count
    day, currency = _snapshot(conn, site_id, definition.currency)
    if day is None:
        return 0
    query = sa.select(sa.func.count()).select_from(value_scores)
    return conn.execute(query.where(*_where(site_id, definition, day, currency))).scalar_one()


def members(conn: sa.Connection, site_id: int, definition: Definition) -> Members:
    """Everyone in ``definition`` in the site's newest snapshot, in user id order."""
    day, currency = _snapshot(conn, site_id, definition.currency)
    if day is None:
        return Members(None, None, [])
    s = value_scores.c
    query = (
        sa.select(
            s.user_id, s.segment, s.r_score, s.f_score, s.revenue, s.clv, s.p_alive, s.last_order_at
        )
        .where(*_where(site_id, definition, day, currency))
        .order_by(s.user_id)
    )
    found = [
        Member(
            r.user_id,
            r.segment,
            r.r_score,
            r.f_score,
            float(r.revenue),
            r.clv,
            r.p_alive,
            r.last_order_at,
        )
        for r in conn.execute(query)
    ]
    users = [m.user_id for m in found]
    keep = set(users)
    if definition.traits:
        keep &= _with_traits(conn, site_id, users, definition.traits)
    if definition.consent_channel:
        keep &= consenting(
            conn, site_id, users, definition.consent_channel, definition.consent_topic
        )
    return Members(day, currency, [m for m in found if m.user_id in keep])
