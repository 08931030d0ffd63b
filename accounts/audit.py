"""The audit log of staff actions: who did what, when, on which site.

Anyone acting on the store on a person's behalf calls :func:`record` (sign-ins, staff changes,
model rollbacks and training, rules changes, exports). Owners read :func:`entries` in the console.
Entries never hold a password, a token or a raw IP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from accounts.schema import audit_log, staff_grants
from tracking.db import aware

MAX_LIMIT = 500


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    at: datetime
    staff_id: int | None
    email: str | None
    site_id: int | None
    action: str
    detail: dict[str, Any]


def record(
    conn_or_engine: sa.Connection | sa.Engine,
    action: str,
    *,
    staff_id: int | None = None,
    email: str | None = None,
    site_id: int | None = None,
    detail: dict | None = None,
) -> None:
    """Append one entry; inside the caller's transaction when given a connection."""
    row = {
        "at": datetime.now(UTC),
        "staff_id": staff_id,
        "email": email[:254] if email else email,
        "site_id": site_id,
        "action": action[:64],
        "detail": detail or {},
    }
    if isinstance(conn_or_engine, sa.Engine):
        with conn_or_engine.begin() as conn:
            conn.execute(audit_log.insert(), row)
    else:
        conn_or_engine.execute(audit_log.insert(), row)


def entries(
    engine: sa.Engine,
    site_ids: list[int] | None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """The newest entries first: those of ``site_ids`` and the site-less ones of their staff.

    ``site_ids=None`` reads every entry (the CLI). Page on with ``before_id`` = the last id seen.
    """
    query = sa.select(audit_log).order_by(audit_log.c.id.desc())
    query = query.limit(max(1, min(limit, MAX_LIMIT)))
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    if site_ids is not None:
        their_staff = sa.select(staff_grants.c.staff_id).where(staff_grants.c.site_id.in_(site_ids))
        query = query.where(
            sa.or_(
                audit_log.c.site_id.in_(site_ids),
                sa.and_(audit_log.c.site_id.is_(None), audit_log.c.staff_id.in_(their_staff)),
            )
        )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        AuditEntry(
            id=r["id"],
            at=aware(r["at"]),
            staff_id=r["staff_id"],
            email=r["email"],
            site_id=r["site_id"],
            action=r["action"],
            detail=r["detail"] or {},
        )
        for r in rows
    ]
