"""Checking a staff member's email and password, the same way for every kind of failure.

Unknown accounts, accounts without a password, disabled accounts and wrong passwords all cost
one argon2 check and give the same "no", so the answer tells nobody which emails have accounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from accounts.passwords import verify
from accounts.schema import staff
from accounts.staff import InvalidStaff, Staff, get_staff, normalise_email


@dataclass(frozen=True)
class SignInResult:
    """Who signed in (None: refused) and, when refused, why (for the audit log only)."""

    staff: Staff | None
    email: str
    reason: str | None = None
    staff_id: int | None = None  # the account the email named, even when refused


def authenticate(engine: sa.Engine, email: str, password: str) -> SignInResult:
    """Check ``email`` and ``password``; rehash the stored password when its parameters changed."""
    try:
        email = normalise_email(email)
    except InvalidStaff:
        email = (email or "").strip().lower()[:254]
        verify(None, password)
        return SignInResult(None, email, "unknown account")
    with engine.connect() as conn:
        row = conn.execute(sa.select(staff).where(staff.c.email == email)).mappings().first()
    ok, new_hash = verify(row["password_hash"] if row else None, password)
    if row is None:
        return SignInResult(None, email, "unknown account")
    refused = None
    if row["password_hash"] is None:
        refused = "no password set yet"
    elif not ok:
        refused = "wrong password"
    elif row["disabled_at"] is not None:
        refused = "account disabled"
    if refused:
        return SignInResult(None, email, refused, row["staff_id"])
    with engine.begin() as conn:
        if new_hash:
            conn.execute(
                staff.update()
                .where(staff.c.staff_id == row["staff_id"])
                .values(password_hash=new_hash)
            )
        return SignInResult(get_staff(conn, row["staff_id"]), email, None, row["staff_id"])
