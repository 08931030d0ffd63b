"""Sessions: each visitor's events cut at a stretch of inactivity, counted as they are stored.

A session is one visitor's run of events with no gap longer than the session timeout. The ingest
worker assigns every new event (but aliases) to a session before inserting the events, then adds
the events its transaction stored to their sessions as increments, so redelivered and concurrently
stored events count once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from tracking.db import aware, chunks
from tracking.schema import sessions


def _visitor(event: dict[str, Any]) -> str:
    return event.get("anonymousId") or event["userId"]


def assign_sessions(
    conn: sa.Connection, site_id: int, new_events: list[dict], timeout: timedelta
) -> tuple[dict[str, str], dict[str, dict], set[str]]:
    """Cut each visitor's events into sessions at ``timeout`` of inactivity; write nothing.

    Returns each event's session id, each session's visitor, and the sessions begun here (new
    ids, which no other transaction can touch before this one commits). The sessions are written
    by :func:`count_sessions` once the events insert has said which events this transaction
    stored: a worker storing the same message at the same time must not count it again.
    """
    by_visitor: dict[str, list[dict]] = defaultdict(list)
    for event in new_events:
        if event["type"] == "alias":
            continue
        by_visitor[_visitor(event)].append(event)
    if not by_visitor:
        return {}, {}, set()
    latest: dict[str, dict] = {}
    for chunk in chunks(list(by_visitor)):
        for row in conn.execute(
            sa.select(
                sessions.c.session_id,
                sessions.c.visitor_id,
                sessions.c.anonymous_id,
                sessions.c.started_at,
                sessions.c.last_seen_at,
            ).where(sessions.c.site_id == site_id, sessions.c.visitor_id.in_(chunk))
        ).mappings():
            current = latest.get(row["visitor_id"])
            if current is None or row["last_seen_at"] > current["last_seen_at"]:
                latest[row["visitor_id"]] = dict(row)
    visitor_of: dict[str, dict] = {}
    session_of: dict[str, str] = {}
    begun: set[str] = set()
    for visitor, visitor_events in by_visitor.items():
        current = latest.get(visitor)
        if current is not None:
            for name in ("started_at", "last_seen_at"):
                current[name] = aware(current[name])
        for event in visitor_events:
            ts = event["_ts"]
            if (
                current is None
                or ts > current["last_seen_at"] + timeout
                or ts < current["started_at"] - timeout
            ):
                current = {
                    "session_id": uuid.uuid4().hex,
                    "visitor_id": visitor,
                    "anonymous_id": event.get("anonymousId"),
                    "started_at": ts,
                    "last_seen_at": ts,
                }
                begun.add(current["session_id"])
            current["started_at"] = min(current["started_at"], ts)
            current["last_seen_at"] = max(current["last_seen_at"], ts)
            visitor_of[current["session_id"]] = {
                "visitor_id": visitor,
                "anonymous_id": current["anonymous_id"],
            }
            session_of[event["messageId"]] = current["session_id"]
    return session_of, visitor_of, begun


def count_sessions(
    conn: sa.Connection, site_id: int, stored_rows: list[dict], visitor_of: dict[str, dict]
) -> None:
    """Add the event rows this transaction stored to their sessions, as increments.

    Increments (count + n, earliest start, latest activity) rather than totals read earlier, so
    two workers adding to one session at once both count.
    """
    changed: dict[str, dict] = {}
    for row in stored_rows:
        session_id = row["session_id"]
        if session_id is None:  # alias: belongs to no session
            continue
        ts = row["timestamp"]
        session = changed.get(session_id)
        if session is None:
            session = changed[session_id] = {
                "session_id": session_id,
                "site_id": site_id,
                **visitor_of[session_id],
                "user_id": None,
                "started_at": ts,
                "last_seen_at": ts,
                "event_count": 0,
            }
        session["started_at"] = min(session["started_at"], ts)
        session["last_seen_at"] = max(session["last_seen_at"], ts)
        session["event_count"] += 1
        session["user_id"] = row["user_id"] or session["user_id"]
    if changed:
        # In key order: two transactions updating the same sessions lock them in one order.
        conn.execute(_session_upsert(conn), [changed[key] for key in sorted(changed)])


def _session_upsert(conn: sa.Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        earliest, latest = sa.func.least, sa.func.greatest
    else:
        from sqlalchemy.dialects.sqlite import insert

        earliest, latest = sa.func.min, sa.func.max  # SQLite's two-argument scalar forms
    stmt = insert(sessions)
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["session_id"],
        set_={
            "user_id": sa.func.coalesce(new.user_id, sessions.c.user_id),
            "started_at": earliest(sessions.c.started_at, new.started_at),
            "last_seen_at": latest(sessions.c.last_seen_at, new.last_seen_at),
            "event_count": sessions.c.event_count + new.event_count,
        },
    )
