"""Staff accounts and their roles per site: create, grant, revoke, disable, find, list.

Roles, in ascending power: ``viewer`` (reads), ``marketer`` (reports, models, rules, segments,
inquiries), ``owner`` (everything, staff included). A staff account sees only the sites it has a
grant on. Every change is written to the audit log by whoever makes it (``actor``: the staff
member acting in the console, or None for the command line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from accounts import audit
from accounts.passwords import hash_password, password_problem
from accounts.schema import ROLE_NAMES, staff, staff_grants
from accounts.sessions import end_all_sessions
from tracking.schema import sites

ROLES = ROLE_NAMES
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_EMAIL = 254


class InvalidStaff(ValueError):
    """A staff change cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Staff:
    """A staff account with its role on each site it was granted."""

    staff_id: int
    email: str
    grants: dict[int, str]
    disabled: bool
    # No password yet: the person has not used their one-time sign-in link.
    invited: bool = field(default=False)

    def role_on(self, site_id: int) -> str | None:
        """The role on ``site_id``, or None without a grant."""
        return self.grants.get(site_id)


def role_allows(role: str | None, needed: str) -> bool:
    """True when ``role`` is at least ``needed`` (None, an unknown role: never)."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def normalise_email(email: str) -> str:
    """The stored form of an email address (trimmed, lower-cased), or InvalidStaff."""
    cleaned = (email or "").strip().lower()
    if len(cleaned) > MAX_EMAIL or not EMAIL.fullmatch(cleaned) or "\x00" in cleaned:
        raise InvalidStaff(f"{email!r} is not an email address")
    return cleaned


def check_role(role: str) -> str:
    """``role`` when it is one of :data:`ROLES`, else InvalidStaff."""
    if role not in ROLES:
        raise InvalidStaff(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def _actor(actor: Staff | None) -> dict:
    if actor is None:
        return {"staff_id": None, "email": None}
    return {"staff_id": actor.staff_id, "email": actor.email}


def _check_sites(conn: sa.Connection, site_ids: Iterable[int]) -> None:
    wanted = set(site_ids)
    if not wanted:
        return
    query = sa.select(sites.c.site_id).where(sites.c.site_id.in_(wanted))
    found = set(conn.execute(query).scalars())
    if wanted - found:
        raise InvalidStaff(f"no site #{min(wanted - found)}")


def create_staff(
    engine: sa.Engine,
    email: str,
    role: str | None = None,
    site_ids: Iterable[int] = (),
    password: str | None = None,
    *,
    actor: Staff | None = None,
) -> Staff:
    """Create a staff account with ``role`` on each of ``site_ids``; InvalidStaff if it exists."""
    email = normalise_email(email)
    site_ids = sorted(set(site_ids))
    if site_ids and role is None:
        raise InvalidStaff("say which role the account gets on its sites")
    if role is not None:
        check_role(role)
    if password is not None and (problem := password_problem(password)):
        raise InvalidStaff(f"password: {problem}")
    password_hash = hash_password(password) if password is not None else None
    with engine.begin() as conn:
        if conn.execute(sa.select(staff.c.staff_id).where(staff.c.email == email)).first():
            raise InvalidStaff(f"a staff account with email {email} exists already")
        _check_sites(conn, site_ids)
        staff_id = conn.execute(
            staff.insert().returning(staff.c.staff_id),
            {"email": email, "password_hash": password_hash, "created_at": datetime.now(UTC)},
        ).scalar_one()
        detail = {"target": email, "role": role, "sites": site_ids}
        audit.record(conn, "staff_created", **_actor(actor), detail=detail)
        for site_id in site_ids:
            conn.execute(
                staff_grants.insert(), {"staff_id": staff_id, "site_id": site_id, "role": role}
            )
            audit.record(
                conn,
                "staff_granted",
                **_actor(actor),
                site_id=site_id,
                detail={"target": email, "role": role},
            )
        return get_staff(conn, staff_id)


def _require(conn: sa.Connection, email: str) -> Staff:
    email = normalise_email(email)
    staff_id = conn.execute(sa.select(staff.c.staff_id).where(staff.c.email == email)).scalar()
    if staff_id is None:
        raise InvalidStaff(f"no staff account has email {email}")
    return get_staff(conn, staff_id)


def grant(
    engine: sa.Engine, email: str, site_id: int, role: str, *, actor: Staff | None = None
) -> Staff:
    """Give ``email`` the ``role`` on ``site_id`` (replacing any role it had there)."""
    check_role(role)
    with engine.begin() as conn:
        member = _require(conn, email)
        _check_sites(conn, [site_id])
        conn.execute(
            staff_grants.delete().where(
                staff_grants.c.staff_id == member.staff_id, staff_grants.c.site_id == site_id
            )
        )
        conn.execute(
            staff_grants.insert(),
            {"staff_id": member.staff_id, "site_id": site_id, "role": role},
        )
        detail = {"target": member.email, "role": role, "was": member.grants.get(site_id)}
        audit.record(conn, "staff_granted", **_actor(actor), site_id=site_id, detail=detail)
        return get_staff(conn, member.staff_id)


def revoke(engine: sa.Engine, email: str, site_id: int, *, actor: Staff | None = None) -> Staff:
    """Take away ``email``'s role on ``site_id``: the site disappears from their console."""
    with engine.begin() as conn:
        member = _require(conn, email)
        removed = conn.execute(
            staff_grants.delete().where(
                staff_grants.c.staff_id == member.staff_id, staff_grants.c.site_id == site_id
            )
        ).rowcount
        if removed:
            detail = {"target": member.email, "was": member.grants.get(site_id)}
            audit.record(conn, "staff_revoked", **_actor(actor), site_id=site_id, detail=detail)
        return get_staff(conn, member.staff_id)


def disable(engine: sa.Engine, email: str, *, actor: Staff | None = None) -> Staff:
    """Disable an account: it cannot sign in any more and its open sessions end now."""
    with engine.begin() as conn:
        member = _require(conn, email)
        if not member.disabled:
            conn.execute(
                staff.update()
                .where(staff.c.staff_id == member.staff_id)
                .values(disabled_at=datetime.now(UTC))
            )
        ended = end_all_sessions(conn, member.staff_id, "account disabled")
        audit.record(
            conn,
            "staff_disabled",
            **_actor(actor),
            detail={"target": member.email, "sessions_ended": ended},
        )
        return get_staff(conn, member.staff_id)


def _load(conn: sa.Connection, where) -> list[Staff]:
    rows = conn.execute(sa.select(staff).where(where).order_by(staff.c.email)).mappings().all()
    if not rows:
        return []
    ids = [r["staff_id"] for r in rows]
    grants: dict[int, dict[int, str]] = {i: {} for i in ids}
    for g in conn.execute(
        sa.select(staff_grants).where(staff_grants.c.staff_id.in_(ids))
    ).mappings():
        grants[g["staff_id"]][g["site_id"]] = g["role"]
    return [
        Staff(
            staff_id=r["staff_id"],
            email=r["email"],
            grants=dict(sorted(grants[r["staff_id"]].items())),
            disabled=r["disabled_at"] is not None,
            invited=r["password_hash"] is None,
        )
        for r in rows
    ]


def get_staff(conn_or_engine: sa.Connection | sa.Engine, staff_id: int) -> Staff | None:
    """The staff account ``staff_id`` with its grants, or None."""
    if isinstance(conn_or_engine, sa.Engine):
        with conn_or_engine.connect() as conn:
            return get_staff(conn, staff_id)
    found = _load(conn_or_engine, staff.c.staff_id == staff_id)
    return found[0] if found else None


def find_staff(engine: sa.Engine, email: str) -> Staff | None:
    """The staff account with ``email`` (any case), or None."""
    try:
        email = normalise_email(email)
    except InvalidStaff:
        return None
    with engine.connect() as conn:
        found = _load(conn, staff.c.email == email)
    return found[0] if found else None


def list_staff(engine: sa.Engine) -> list[Staff]:
    """Every staff account, by email."""
    with engine.connect() as conn:
        return _load(conn, sa.true())


def staff_of_site(engine: sa.Engine, site_id: int) -> list[Staff]:
    """The staff accounts with a grant on ``site_id``, by email."""
    granted = sa.select(staff_grants.c.staff_id).where(staff_grants.c.site_id == site_id)
    with engine.connect() as conn:
        return _load(conn, staff.c.staff_id.in_(granted))
