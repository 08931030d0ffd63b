"""Claiming due rows of a work queue (the email outbox, webhook deliveries) safely across senders.

A row is due when it is ``pending`` and its ``next_attempt_at`` has come, or ``sending`` with a
lease (``claimed_until``) that has run out: its sender died mid-send. One UPDATE ... RETURNING
claims a batch: on PostgreSQL its inner SELECT takes the rows FOR UPDATE SKIP LOCKED, so senders
running at once take different rows without waiting for each other; SQLite runs one writing
statement at a time, so the same statement is an atomic claim there. Each claim adds one to
``attempts``, which then identifies it: a sender settles only the rows whose attempt is still
the one it claimed (:func:`settle`), so a row re-claimed after its lease ran out is not settled
twice. A message may be sent twice when a sender dies after sending and before settling (at
least once, never lost).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa


def claim_due(
    engine: sa.Engine,
    table: sa.Table,
    *,
    lease_seconds: float,
    limit: int,
    where: tuple = (),
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` due rows of ``table`` (oldest first); return them as claimed."""
    now = now or datetime.now(UTC)
    due = sa.or_(
        sa.and_(table.c.status == "pending", table.c.next_attempt_at <= now),
        sa.and_(table.c.status == "sending", table.c.claimed_until < now),
    )
    pick = sa.select(table.c.id).where(due, *where).order_by(table.c.id).limit(limit)
    if engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    claim = (
        table.update()
        .where(table.c.id.in_(pick.scalar_subquery()))
        .values(
            status="sending",
            claimed_until=now + timedelta(seconds=lease_seconds),
            attempts=table.c.attempts + 1,
        )
        .returning(*table.c)
    )
    with engine.begin() as conn:
        rows = [dict(r) for r in conn.execute(claim).mappings()]
    return sorted(rows, key=lambda r: r["id"])


def settle(conn: sa.Connection, table: sa.Table, row: dict[str, Any], **values) -> bool:
    """Record the outcome of the claimed ``row``; False when it is no longer this claim's."""
    done = conn.execute(
        table.update()
        .where(
            table.c.id == row["id"],
            table.c.status == "sending",
            table.c.attempts == row["attempts"],
        )
        .values(claimed_until=None, **values)
    )
    return done.rowcount == 1


def backoff(attempts: int, base_seconds: float, cap_seconds: float) -> timedelta:
    """The wait before the next attempt after ``attempts`` failed ones: base x 2^(n-1), capped."""
    return timedelta(seconds=min(base_seconds * 2 ** max(attempts - 1, 0), cap_seconds))
