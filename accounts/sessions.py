"""Staff sign-in sessions kept server-side: start, look up, touch, end, list.

The browser's cookie holds a random token; the store keeps only its SHA-256 digest as the
session's id, so a copy of the table signs nobody in. Ending a row (sign-out, an owner's
"end session", a disabled account, too long idle) signs that browser out on its next request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accounts.schema import staff_sessions
from tracking.db import aware
from tracking.privacy import anonymise_ip
from tracking.sites import digest

TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often per session
USER_AGENT_LENGTH = 300


@dataclass(frozen=True)
class StaffSession:
    """A sign-in session as the console shows it."""

    session_id: str
    staff_id: int
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    ended_reason: str | None
    user_agent: str
    client: str | None


def _session(row) -> StaffSession:
    return StaffSession(
        session_id=row["session_id"],
        staff_id=row["staff_id"],
        created_at=aware(row["created_at"]),
        last_seen_at=aware(row["last_seen_at"]),
        ended_at=aware(row["ended_at"]) if row["ended_at"] else None,
        ended_reason=row["ended_reason"],
        user_agent=row["user_agent"] or "",
        client=row["client"],
    )


def start_session(
    engine: sa.Engine, staff_id: int, user_agent: str | None, address: str | None
) -> tuple[str, str]:
    """A new session for ``staff_id``: (token for the cookie, session id as stored)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            staff_sessions.insert(),
            {
                "session_id": digest(token),
                "staff_id": staff_id,
                "created_at": now,
                "last_seen_at": now,
                "user_agent": (user_agent or "")[:USER_AGENT_LENGTH],
                "client": anonymise_ip(address),
            },
        )
    return token, digest(token)


def lookup_session(engine: sa.Engine, token: str, idle: timedelta) -> StaffSession | None:
    """The open session a cookie's token names, touched; None when ended or idle too long.

    A session idle longer than ``idle`` is ended here ("idle"), so the console lists it as over.
    """
    if not token or len(token) > 100:
        return None
    session_id = digest(token)
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(staff_sessions).where(
                    staff_sessions.c.session_id == session_id, staff_sessions.c.ended_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    found = _session(row)
    now = datetime.now(UTC)
    if now - found.last_seen_at > idle:
        end_session(engine, session_id, "idle")
        return None
    if now - found.last_seen_at > TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(
                staff_sessions.update()
                .where(staff_sessions.c.session_id == session_id)
                .values(last_seen_at=now)
            )
    return found


def end_session(
    conn_or_engine: sa.Connection | sa.Engine, session_id: str, reason: str, staff_id=None
) -> bool:
    """End one open session (of ``staff_id`` when given); False when none was open."""
    query = (
        staff_sessions.update()
        .where(staff_sessions.c.session_id == session_id, staff_sessions.c.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC), ended_reason=reason)
    )
    if staff_id is not None:
        query = query.where(staff_sessions.c.staff_id == staff_id)
    if isinstance(conn_or_engine, sa.Engine):
        with conn_or_engine.begin() as conn:
            return conn.execute(query).rowcount == 1
    return conn_or_engine.execute(query).rowcount == 1


def end_all_sessions(conn: sa.Connection, staff_id: int, reason: str) -> int:
    """End every open session of ``staff_id``; return how many."""
    return conn.execute(
        staff_sessions.update()
        .where(staff_sessions.c.staff_id == staff_id, staff_sessions.c.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC), ended_reason=reason)
    ).rowcount


def get_session(engine: sa.Engine, session_id: str) -> StaffSession | None:
    """A session by its stored id, open or ended."""
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(staff_sessions).where(staff_sessions.c.session_id == session_id))
            .mappings()
            .first()
        )
    return _session(row) if row else None


def list_sessions(
    engine: sa.Engine, staff_ids: list[int], idle: timedelta | None = None
) -> list[StaffSession]:
    """The open sessions of ``staff_ids``, newest first (not those idle longer than ``idle``)."""
    if not staff_ids:
        return []
    query = (
        sa.select(staff_sessions)
        .where(staff_sessions.c.staff_id.in_(staff_ids), staff_sessions.c.ended_at.is_(None))
        .order_by(staff_sessions.c.last_seen_at.desc())
    )
    if idle is not None:
        query = query.where(staff_sessions.c.last_seen_at >= datetime.now(UTC) - idle)
    with engine.connect() as conn:
        return [_session(row) for row in conn.execute(query).mappings()]


def last_sign_ins(engine: sa.Engine) -> dict[int, datetime]:
    """Each staff member's latest sign-in (the start of their newest session)."""
    query = sa.select(staff_sessions.c.staff_id, sa.func.max(staff_sessions.c.created_at)).group_by(
        staff_sessions.c.staff_id
    )
    with engine.connect() as conn:
        return {staff_id: aware(at) for staff_id, at in conn.execute(query)}
