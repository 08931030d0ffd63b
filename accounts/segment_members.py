"""The members of a segment definition (accounts.segments) in a site's newest value snapshot.

Every condition is SQL: the snapshot's (segments, cells, CLV, P(alive), last order), the store's
(last visit, category affinity from orders and views) and the customer's (traits and consent,
accounts.segment_filters), in one query over the snapshot. Members are in user id order, so a
page is the next ``limit`` after a user id (the primary key's order: a keyset page reads only
what it returns) and the live count is a count query; at a million customers neither holds the
segment in memory. An export reads the same query in chunks (:func:`chunks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from accounts import preferences
from accounts.prefs_schema import consent_records
from accounts.segment_filters import allows, has_traits
from accounts.segments import Definition, SegmentError
from analytics.value_schema import value_runs, value_scores
from tracking.schema import events, items, order_lines, orders, sessions

CHUNK = 5000  # rows per keyset query when reading a whole segment


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


@dataclass(frozen=True)
class Page:
    """Up to ``limit`` members after a user id, and how many the whole definition holds."""

    day: date | None
    currency: str | None
    members: list[Member]
    count: int
    more: bool  # members follow the last of this page


def snapshot(conn: sa.Connection, site_id: int, currency: str | None):
    """(day, currency) of the newest snapshot a definition reads, or (None, None)."""
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


def _conditions(
    conn: sa.Connection, site_id: int, d: Definition, at: datetime
) -> list[sa.ColumnElement]:
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
    if d.traits:
        where.append(has_traits(conn, site_id, s.user_id, d.traits))
    if d.consent_channel:
        where.append(allows(conn, site_id, s.user_id, d.consent_channel, d.consent_topic))
    return where


def consenting(
    conn: sa.Connection, site_id: int, users: list[str], channel: str, topic: str
) -> set[str]:
    """Those of ``users`` who allow ``channel`` x ``topic`` now: newest record, else default
    (for a list of users, as campaign lists have; a segment's members check it in SQL)."""
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


def where(
    conn: sa.Connection, site_id: int, definition: Definition, day: date, currency: str
) -> list[sa.ColumnElement]:
    """The conditions on ``value_scores`` of the members in the snapshot of ``day``."""
    at = datetime.combine(day + timedelta(days=1), time(0), UTC)  # the end of its day
    s = value_scores.c
    return [
        s.site_id == site_id,
        s.day == day,
        s.currency == currency,
        *_conditions(conn, site_id, definition, at),
    ]


COLUMNS = tuple(
    getattr(value_scores.c, name)
    for name in (
        "user_id",
        "segment",
        "r_score",
        "f_score",
        "revenue",
        "clv",
        "p_alive",
        "last_order_at",
    )
)


def _member(row) -> Member:
    return Member(
        row.user_id,
        row.segment,
        row.r_score,
        row.f_score,
        float(row.revenue),
        row.clv,
        row.p_alive,
        row.last_order_at,
    )


def _count(conn: sa.Connection, conditions: list[sa.ColumnElement]) -> int:
    query = sa.select(sa.func.count()).select_from(value_scores).where(*conditions)
    return conn.execute(query).scalar_one()


def count(conn: sa.Connection, site_id: int, definition: Definition) -> int:
    """How many are in ``definition`` now (a count query)."""
    day, currency = snapshot(conn, site_id, definition.currency)
    if day is None:
        return 0
    return _count(conn, where(conn, site_id, definition, day, currency))


def keyset(
    conditions: list[sa.ColumnElement], after: str | None, limit: int, *columns
) -> sa.Select:
    """The next ``limit`` rows after user id ``after`` (None: from the first) in user id order."""
    s = value_scores.c
    query = sa.select(*(columns or COLUMNS)).where(*conditions)
    if after is not None:
        query = query.where(s.user_id > after)
    return query.order_by(s.user_id).limit(limit)


def page(
    conn: sa.Connection,
    site_id: int,
    definition: Definition,
    after: str | None = None,
    limit: int = 100,
) -> Page:
    """The first ``limit`` members after user id ``after`` and the count of all of them."""
    day, currency = snapshot(conn, site_id, definition.currency)
    if day is None:
        return Page(None, None, [], 0, False)
    conditions = where(conn, site_id, definition, day, currency)
    rows = conn.execute(keyset(conditions, after, limit + 1)).all()
    found = [_member(r) for r in rows[:limit]]
    return Page(day, currency, found, _count(conn, conditions), len(rows) > limit)


def chunks(
    conn: sa.Connection, conditions: list[sa.ColumnElement], *columns, size: int | None = None
) -> Iterator[list[sa.Row]]:
    """Every row of the query in user id order, ``size`` (default :data:`CHUNK`) at a time:
    keyset queries, so no cursor stays open across them and no more than a chunk is held."""
    size = size or CHUNK
    after = None
    while True:
        rows = conn.execute(keyset(conditions, after, size, *columns)).all()
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = rows[-1].user_id


def members(conn: sa.Connection, site_id: int, definition: Definition) -> Members:
    """Everyone in ``definition`` in the site's newest snapshot, in user id order, held in
    memory (small segments and tests: pages and exports read :func:`page` and :func:`chunks`)."""
    day, currency = snapshot(conn, site_id, definition.currency)
    if day is None:
        return Members(None, None, [])
    conditions = where(conn, site_id, definition, day, currency)
    found = [_member(r) for rows in chunks(conn, conditions) for r in rows]
    return Members(day, currency, found)
