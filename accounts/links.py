"""One-time sign-in links: a new account (or one that lost its password) sets a password.

A link is good once, for 24 hours, and only the newest one of an account works. The store keeps
the SHA-256 digest of its token; the token itself is printed once (CLI, ``make run``).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accounts import audit
from accounts.passwords import hash_password, password_problem
from accounts.schema import sign_in_links, staff
from accounts.staff import InvalidStaff, Staff, get_staff
from tracking.db import aware
from tracking.sites import digest

LINK_LIFETIME = timedelta(hours=24)
PATH = "/console/welcome/"


def issue_link(engine: sa.Engine, member: Staff, *, actor: Staff | None = None) -> str:
    """A new one-time token for ``member`` (older unused links stop working)."""
    if member.disabled:
        raise InvalidStaff(f"{member.email} is disabled: no sign-in link can be issued")
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sign_in_links.update()
            .where(sign_in_links.c.staff_id == member.staff_id, sign_in_links.c.used_at.is_(None))
            .values(used_at=now)
        )
        conn.execute(
            sign_in_links.insert(),
            {
                "digest": digest(token),
                "staff_id": member.staff_id,
                "created_at": now,
                "expires_at": now + LINK_LIFETIME,
            },
        )
        audit.record(
            conn,
            "link_issued",
            staff_id=actor.staff_id if actor else None,
            email=actor.email if actor else None,
            detail={"target": member.email, "expires_at": (now + LINK_LIFETIME).isoformat()},
        )
    return token


def link_url(public_url: str, token: str) -> str:
    """The link to print: the service's public address and the token."""
    return public_url.rstrip("/") + PATH + token


def _usable(conn: sa.Connection, token: str):
    if not token or len(token) > 100:
        return None
    row = (
        conn.execute(sa.select(sign_in_links).where(sign_in_links.c.digest == digest(token)))
        .mappings()
        .first()
    )
    if row is None or row["used_at"] is not None:
        return None
    if aware(row["expires_at"]) <= datetime.now(UTC):
        return None
    member = get_staff(conn, row["staff_id"])
    if member is None or member.disabled:
        return None
    return member


def link_staff(engine: sa.Engine, token: str) -> Staff | None:
    """The account a usable link belongs to; None when unknown, used, expired or disabled."""
    with engine.connect() as conn:
        return _usable(conn, token)


def redeem_link(engine: sa.Engine, token: str, password: str) -> Staff | None:
    """Use the link once to set ``password``; None when the link is no longer usable.

    InvalidStaff when the password is refused (the link stays usable then).
    """
    if problem := password_problem(password):
        raise InvalidStaff(f"password: {problem}")
    password_hash = hash_password(password)
    with engine.begin() as conn:
        member = _usable(conn, token)
        if member is None:
            return None
        claimed = conn.execute(
            sign_in_links.update()
            .where(sign_in_links.c.digest == digest(token), sign_in_links.c.used_at.is_(None))
            .values(used_at=datetime.now(UTC))
        ).rowcount
        if claimed != 1:  # a concurrent request used it first
            return None
        conn.execute(
            staff.update()
            .where(staff.c.staff_id == member.staff_id)
            .values(password_hash=password_hash)
        )
        audit.record(conn, "password_set", staff_id=member.staff_id, email=member.email)
        return get_staff(conn, member.staff_id)
