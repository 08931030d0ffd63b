"""One customer's 360 view: their row and stitched ids, sessions and timeline, paged newest first.

Every query reads one customer's rows through an index: the customers key, ix_identities_user,
ix_events_user / ix_events_anonymous, ix_sessions_visitor, the items key; never a scan of
``events`` nor of other customers' traits. Lists come newest first, a page at a time, by keyset:
a page's cursor names its last row (an event id, a session id, an order's row id), so a page
costs the same however far back it is. Orders, attributions and recommendations shown are in
:mod:`analytics.customer_orders`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tracking.db import aware, chunks
from tracking.errors import FieldError
from tracking.schema import customers, events, identities, items, orders, sessions

EVENTS_PAGE = 50
SESSIONS_PAGE = 20
MAX_ANONYMOUS_IDS = 1000  # the ids stitched to one customer that the page reads events of
ACTIVITY_WEEKS = 26
PAGE_TEXT = 300  # characters of a page URL shown in the timeline


class CursorError(FieldError):
    """A page position that is not one of this customer's rows: ``field`` names the input."""


@dataclass(frozen=True)
class Customer:
    """A customer's row and the anonymous ids stitched to them (newest first)."""

    site_id: int
    user_id: str
    traits: dict[str, Any]
    unverified_traits: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime
    anonymous_ids: list[dict[str, Any]] = field(default_factory=list)

    @property
    def anonymous(self) -> list[str]:
        return [row["anonymous_id"] for row in self.anonymous_ids]

    def owns(self, user_id: str | None, anonymous_id: str | None) -> bool:
        """True for a row of this customer: their user id, or an anonymous id stitched to them."""
        return user_id == self.user_id or (
            anonymous_id is not None and anonymous_id in set(self.anonymous)
        )

    def where(self, table: sa.Table) -> list[sa.ColumnElement]:
        """One condition per index to read: the user id, then the anonymous ids in chunks."""
        site = table.c.site_id == self.site_id
        return [sa.and_(site, table.c.user_id == self.user_id)] + [
            sa.and_(site, table.c.anonymous_id.in_(chunk)) for chunk in chunks(self.anonymous)
        ]


@dataclass
class Page:
    """Rows newest first, and the cursor of the next (older) page, None on the last."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def find_customer(conn: sa.Connection, site_id: int, user_id: str) -> Customer | None:
    """The customer of this site with this exact id, or None (another site's is never found)."""
    if "\x00" in user_id:  # no stored id holds one, and PostgreSQL text cannot
        return None
    row = (
        conn.execute(
            sa.select(customers).where(
                customers.c.site_id == site_id, customers.c.user_id == user_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    stitched = conn.execute(
        sa.select(identities.c.anonymous_id, identities.c.source, identities.c.first_seen_at)
        .where(identities.c.site_id == site_id, identities.c.user_id == user_id)
        .order_by(identities.c.first_seen_at.desc(), identities.c.anonymous_id)
        .limit(MAX_ANONYMOUS_IDS)
    ).mappings()
    return Customer(
        site_id=site_id,
        user_id=row["user_id"],
        traits=row["traits"] if isinstance(row["traits"], dict) else {},
        unverified_traits=row["unverified_traits"]
        if isinstance(row["unverified_traits"], dict)
        else {},
        first_seen_at=aware(row["first_seen_at"]),
        last_seen_at=aware(row["last_seen_at"]),
        anonymous_ids=[{**r, "first_seen_at": aware(r["first_seen_at"])} for r in stitched],
    )


def newest(
    conn: sa.Connection,
    columns: list[sa.ColumnElement],
    branches: Iterable[sa.ColumnElement],
    time: sa.Column,
    key: sa.Column,
    before: tuple[datetime, Any] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit + 1`` rows newest first (time, then key), older than ``before``.

    One query per branch, each ordered and limited along its own index, merged here: one OR
    over two indexes would make the database read all of the customer's rows to sort them.
    """
    found: dict[Any, dict[str, Any]] = {}
    for where in branches:
        query = sa.select(*columns).where(where)
        if before is not None:
            moment, last = before
            query = query.where(time <= moment, sa.or_(time < moment, key < last))
        query = query.order_by(time.desc(), key.desc()).limit(limit + 1)
        for row in conn.execute(query).mappings():
            found[row[key.name]] = {**row, time.name: aware(row[time.name])}
    ordered = sorted(found.values(), key=lambda r: (r[time.name], r[key.name]), reverse=True)
    return ordered[: limit + 1]


def cursor_position(
    conn: sa.Connection,
    table: sa.Table,
    time: sa.Column,
    key: sa.Column,
    cursor: Any,
    owns: Callable[[dict[str, Any]], bool],
    site_id: int,
    name: str,
) -> tuple[datetime, Any]:
    """The (time, key) a cursor stands for, if it is one of this customer's rows."""
    if isinstance(cursor, str) and "\x00" in cursor:  # PostgreSQL text cannot hold it
        raise CursorError(name, "not a position in this customer's list; showing the newest")
    row = (
        conn.execute(sa.select(table).where(table.c.site_id == site_id, key == cursor))
        .mappings()
        .first()
    )
    if row is None or not owns(row):
        raise CursorError(name, "not a position in this customer's list; showing the newest")
    return aware(row[time.name]), row[key.name]


def int_cursor(value: str, name: str) -> int:
    try:
        cursor = int(value)
    except ValueError:
        raise CursorError(name, "must be a row number from an 'older' link") from None
    if not 0 < cursor < 2**63:
        raise CursorError(name, "must be a row number from an 'older' link")
    return cursor


def page_of(rows: list[dict[str, Any]], key: str, limit: int) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, str(rows[-1][key]) if more and rows else None)


def item_titles(
    conn: sa.Connection, site_id: int, item_ids: Iterable[str | None]
) -> dict[str, str]:
    """The catalogue titles of these items (those it has)."""
    titles: dict[str, str] = {}
    for chunk in chunks(sorted({i for i in item_ids if i is not None})):
        titles.update(
            conn.execute(
                sa.select(items.c.item_id, items.c.title).where(
                    items.c.site_id == site_id, items.c.item_id.in_(chunk)
                )
            ).all()
        )
    return titles


def _page_url(payload: dict[str, Any]) -> str | None:
    """The page an event happened on: a page call's URL or path, else its context's page."""
    candidates = []
    properties = payload.get("properties")
    if payload.get("type") == "page" and isinstance(properties, dict):
        candidates += [properties.get("url"), properties.get("path")]
    context = payload.get("context")
    page = context.get("page") if isinstance(context, dict) else None
    if isinstance(page, dict):
        candidates += [page.get("url"), page.get("path")]
    text = next((c for c in candidates if isinstance(c, str) and c), None)
    return text[:PAGE_TEXT] if text else None


def event_label(row: dict[str, Any]) -> str:
    """What an event is called on the timeline: a track's event, a page's name, else its type."""
    if row.get("event"):
        return row["event"]
    if row.get("type") in ("page", "screen"):
        return f"{row['type']}: {row['name']}" if row.get("name") else f"{row['type']} view"
    return row.get("type") or ""


def timeline(
    conn: sa.Connection, customer: Customer, before: str | None = None, limit: int = EVENTS_PAGE
) -> Page:
    """The customer's events (their own and their stitched anonymous ids'), newest first."""
    position = None
    if before:
        position = cursor_position(
            conn,
            events,
            events.c.timestamp,
            events.c.id,
            int_cursor(before, "events_before"),
            lambda row: customer.owns(row["user_id"], row["anonymous_id"]),
            customer.site_id,
            "events_before",
        )
    columns = [
        events.c.id,
        events.c.type,
        events.c.event,
        events.c.name,
        events.c.anonymous_id,
        events.c.user_id,
        events.c.session_id,
        events.c.item_id,
        events.c.timestamp,
        events.c.payload,
    ]
    rows = newest(
        conn,
        columns,
        customer.where(events),
        events.c.timestamp,
        events.c.id,
        position,
        limit,
    )
    titles = item_titles(conn, customer.site_id, (row["item_id"] for row in rows))
    for row in rows:
        payload = row["payload"] if isinstance(row["payload"], dict) else {}
        row["label"] = event_label(row)
        row["item_title"] = titles.get(row["item_id"])
        row["page"] = _page_url(payload)
        row["details"] = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)
    return page_of(rows, "id", limit)


def customer_sessions(
    conn: sa.Connection, customer: Customer, before: str | None = None, limit: int = SESSIONS_PAGE
) -> Page:
    """The customer's sessions (as a user and on every stitched anonymous id), newest first."""
    visitors = [customer.user_id, *customer.anonymous]
    mine = set(visitors)
    position = None
    if before:
        position = cursor_position(
            conn,
            sessions,
            sessions.c.last_seen_at,
            sessions.c.session_id,
            before[:64],
            lambda row: row["visitor_id"] in mine or row["user_id"] == customer.user_id,
            customer.site_id,
            "sessions_before",
        )
    site = sessions.c.site_id == customer.site_id
    rows = newest(
        conn,
        [
            sessions.c.session_id,
            sessions.c.visitor_id,
            sessions.c.started_at,
            sessions.c.last_seen_at,
            sessions.c.event_count,
        ],
        [sa.and_(site, sessions.c.visitor_id.in_(chunk)) for chunk in chunks(visitors)],
        sessions.c.last_seen_at,
        sessions.c.session_id,
        position,
        limit,
    )
    for row in rows:
        row["started_at"] = aware(row["started_at"])
        row["minutes"] = round((row["last_seen_at"] - row["started_at"]).total_seconds() / 60, 1)
    return page_of(rows, "session_id", limit)


def weekly_activity(
    conn: sa.Connection, customer: Customer, today: date, weeks: int = ACTIVITY_WEEKS
) -> list[dict[str, Any]]:
    """Sessions, their events, and orders per week (Monday to Sunday, UTC), the last ``weeks``.

    A session counts in the week of its last activity; read through ix_sessions_visitor and the
    orders' indexes from the first week on.
    """
    first = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    rows = {
        first + timedelta(weeks=n): {
            "week": first + timedelta(weeks=n),
            "sessions": 0,
            "events": 0,
            "orders": 0,
        }
        for n in range(weeks)
    }

    def week_of(moment: datetime) -> dict[str, Any] | None:
        day = aware(moment).date()
        return rows.get(day - timedelta(days=day.weekday()))

    visitors = [customer.user_id, *customer.anonymous]
    for chunk in chunks(visitors):
        for last_seen_at, event_count in conn.execute(
            sa.select(sessions.c.last_seen_at, sessions.c.event_count).where(
                sessions.c.site_id == customer.site_id,
                sessions.c.visitor_id.in_(chunk),
                sessions.c.last_seen_at >= start,
            )
        ):
            if (row := week_of(last_seen_at)) is not None:
                row["sessions"] += 1
                row["events"] += event_count
    ordered: dict[str, datetime] = {}
    for where in customer.where(orders):
        ordered.update(
            conn.execute(
                sa.select(orders.c.order_id, orders.c.ordered_at).where(
                    where, orders.c.ordered_at >= start
                )
            ).all()
        )
    for ordered_at in ordered.values():
        if (row := week_of(ordered_at)) is not None:
            row["orders"] += 1
    return list(rows.values())
