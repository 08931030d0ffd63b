"""One-time codes sent by email: 6 digits, 10 minutes, 5 tries, only the newest one works.

Used to sign in (shops without accounts of their own) and to confirm a new email address. The
store keeps an HMAC of the code under the app's secret key, never the code. A sign-in code for an
address no customer has is stored too (with no customer and never sent), so asking for one looks
the same whether the address is known or not; no code entered for it can ever match.
Throttling requests per address and per client is the web layer's (Flask-Limiter).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accounts.portal_schema import CODE_PURPOSES, portal_codes
from tracking.customer_lookup import normalise
from tracking.db import aware
from tracking.schema import customer_lookup, customers

CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5
DIGITS = 6


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of entering a code: ``user_id`` when it matched, else why not."""

    user_id: str | None
    email: str | None
    problem: str | None  # None, "wrong", "expired", "too_many", "none"

    @property
    def ok(self) -> bool:
        return self.problem is None


def _digest(secret: str, site_id: int, purpose: str, email: str, code: str) -> str:
    message = f"{site_id}\0{purpose}\0{email}\0{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def new_code() -> str:
    """Six random digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def customer_by_email(conn: sa.Connection, site_id: int, email: str) -> str | None:
    """The customer whose verified email is ``email`` (the latest seen when several are)."""
    value = normalise(email)
    if not value:
        return None
    return conn.execute(
        sa.select(customer_lookup.c.user_id)
        .join(
            customers,
            sa.and_(
                customers.c.site_id == customer_lookup.c.site_id,
                customers.c.user_id == customer_lookup.c.user_id,
            ),
        )
        .where(
            customer_lookup.c.site_id == site_id,
            customer_lookup.c.kind == "email",
            customer_lookup.c.value == value,
        )
        .order_by(customers.c.last_seen_at.desc(), customers.c.user_id)
        .limit(1)
    ).scalar()


def issue_code(
    conn: sa.Connection,
    secret: str,
    site_id: int,
    purpose: str,
    email: str,
    user_id: str | None,
    *,
    now: datetime | None = None,
) -> str:
    """Store a new code for (site, purpose, email[, customer]) and return it; older ones die."""
    if purpose not in CODE_PURPOSES:
        raise ValueError(f"purpose: one of {', '.join(CODE_PURPOSES)}")
    email = email.strip().lower()
    now = now or datetime.now(UTC)
    code = new_code()
    conn.execute(
        portal_codes.update()
        .where(
            portal_codes.c.site_id == site_id,
            portal_codes.c.purpose == purpose,
            portal_codes.c.email == email,
            portal_codes.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    conn.execute(
        portal_codes.insert(),
        {
            "site_id": site_id,
            "purpose": purpose,
            "email": email,
            "user_id": user_id,
            "code_digest": _digest(secret, site_id, purpose, email, code),
            "created_at": now,
            "expires_at": now + CODE_LIFETIME,
            "attempts": 0,
        },
    )
    return code


def check_code(
    engine: sa.Engine,
    secret: str,
    site_id: int,
    purpose: str,
    email: str,
    code: str,
    *,
    user_id: str | None = None,
) -> CodeCheck:
    """Try ``code`` against the newest unused code of the address; a match uses it up.

    ``user_id``: for an email change, the code must have been sent for this customer.
    """
    email = email.strip().lower()
    code = code.strip().replace(" ", "")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        query = (
            sa.select(portal_codes)
            .where(
                portal_codes.c.site_id == site_id,
                portal_codes.c.purpose == purpose,
                portal_codes.c.email == email,
                portal_codes.c.used_at.is_(None),
            )
            .order_by(portal_codes.c.id.desc())
            .limit(1)
        )
        if user_id is not None:
            query = query.where(portal_codes.c.user_id == user_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # two tries at once count as two
        row = conn.execute(query).first()
        if row is None:
            return CodeCheck(None, None, "none")
        if aware(row.expires_at) <= now:
            return CodeCheck(None, None, "expired")
        if row.attempts >= MAX_ATTEMPTS:
            return CodeCheck(None, None, "too_many")
        expected = row.code_digest
        given = _digest(secret, site_id, purpose, email, code)
        if row.user_id is None or not hmac.compare_digest(expected, given):
            attempts = row.attempts + 1
            values = {"attempts": attempts}
            if attempts >= MAX_ATTEMPTS:
                values["used_at"] = now  # dead: a new code must be asked for
            conn.execute(portal_codes.update().where(portal_codes.c.id == row.id).values(values))
            return CodeCheck(None, None, "too_many" if attempts >= MAX_ATTEMPTS else "wrong")
        conn.execute(portal_codes.update().where(portal_codes.c.id == row.id).values(used_at=now))
        return CodeCheck(row.user_id, row.email, None)
