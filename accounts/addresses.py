"""A customer's address book: shipping and billing addresses, a default of each kind.

Every function takes the customer (site id and user id) as well as an address id: an id that
belongs to someone else is the same as one that does not exist (None / False).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from accounts.portal_schema import ADDRESS_KINDS, customer_addresses
from accounts.profile import Problems, check_phone, clean_text

MAX_ADDRESSES = 50  # per customer
POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{0,19}$")
COUNTRY = re.compile(r"^[A-Za-z]{2}$")
FIELDS = ("name", "line1", "line2", "city", "region", "postal_code", "country", "phone")
PUBLIC = ("address_id", "kind", "is_default", *FIELDS)


class TooManyAddresses(ValueError):
    """The customer has MAX_ADDRESSES already."""


def check_address(form: Mapping[str, Any]) -> tuple[dict[str, Any], Problems]:
    """An address form's values, cleaned, and the problems per field."""
    problems: Problems = {}
    kind = form.get("kind")
    if kind not in ADDRESS_KINDS:
        problems["kind"] = "must be shipping or billing"
    values: dict[str, Any] = {
        "kind": kind,
        "name": clean_text(form.get("name"), "name", 200, problems, required=True),
        "line1": clean_text(form.get("line1"), "line1", 200, problems, required=True),
        "line2": clean_text(form.get("line2"), "line2", 200, problems) or None,
        "city": clean_text(form.get("city"), "city", 100, problems, required=True),
        "region": clean_text(form.get("region"), "region", 100, problems) or None,
        "postal_code": clean_text(form.get("postal_code"), "postal_code", 20, problems) or None,
        "country": clean_text(form.get("country"), "country", 2, problems, required=True).upper(),
        "phone": check_phone(form.get("phone"), problems) or None,
        "is_default": form.get("is_default") in ("1", "on", "true", True),
    }
    if "postal_code" not in problems and values["postal_code"]:
        if not POSTAL_CODE.match(values["postal_code"]):
            problems["postal_code"] = "must be letters, digits, spaces or dashes"
    if "country" not in problems and not COUNTRY.match(values["country"]):
        problems["country"] = "must be a two-letter country code like KR or DE"
    return values, problems


def _mine(site_id: int, user_id: str):
    return sa.and_(customer_addresses.c.site_id == site_id, customer_addresses.c.user_id == user_id)


def _public(row) -> dict[str, Any]:
    return {name: row._mapping[name] for name in PUBLIC}


def list_addresses(conn: sa.Connection, site_id: int, user_id: str) -> list[dict[str, Any]]:
    """The customer's addresses: shipping first, defaults first, then oldest first."""
    rows = conn.execute(
        sa.select(customer_addresses)
        .where(_mine(site_id, user_id))
        .order_by(
            customer_addresses.c.kind.desc(),  # shipping before billing
            customer_addresses.c.is_default.desc(),
            customer_addresses.c.address_id,
        )
    )
    return [_public(row) for row in rows]


def get_address(
    conn: sa.Connection, site_id: int, user_id: str, address_id: int
) -> dict[str, Any] | None:
    """One of the customer's addresses; None when it is not theirs or does not exist."""
    row = conn.execute(
        sa.select(customer_addresses).where(
            _mine(site_id, user_id), customer_addresses.c.address_id == address_id
        )
    ).first()
    return _public(row) if row else None


def _only_default(conn, site_id, user_id, kind, address_id) -> None:
    conn.execute(
        customer_addresses.update()
        .where(
            _mine(site_id, user_id),
            customer_addresses.c.kind == kind,
            customer_addresses.c.address_id != address_id,
        )
        .values(is_default=False)
    )


def _has_default(conn, site_id, user_id, kind) -> bool:
    return (
        conn.execute(
            sa.select(sa.func.count()).where(
                _mine(site_id, user_id),
                customer_addresses.c.kind == kind,
                customer_addresses.c.is_default,
            )
        ).scalar()
        > 0
    )


def add_address(
    conn: sa.Connection, site_id: int, user_id: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Add a checked address; the first of its kind becomes the default. Returns it."""
    count = conn.execute(sa.select(sa.func.count()).where(_mine(site_id, user_id))).scalar()
    if count >= MAX_ADDRESSES:
        raise TooManyAddresses(f"at most {MAX_ADDRESSES} addresses")
    now = datetime.now(UTC)
    row = {name: values[name] for name in ("kind", *FIELDS)}
    row["is_default"] = bool(values["is_default"]) or not _has_default(
        conn, site_id, user_id, values["kind"]
    )
    address_id = conn.execute(
        customer_addresses.insert().values(
            site_id=site_id, user_id=user_id, created_at=now, updated_at=now, **row
        )
    ).inserted_primary_key[0]
    if row["is_default"]:
        _only_default(conn, site_id, user_id, row["kind"], address_id)
    return get_address(conn, site_id, user_id, address_id)


def update_address(
    conn: sa.Connection, site_id: int, user_id: str, address_id: int, values: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Replace one of the customer's addresses with checked values; None when not theirs.

    Unticking "default" keeps it the default when it is the only one of its kind (a kind with
    addresses always has a default); moving it to the other kind hands its default on.
    """
    before = get_address(conn, site_id, user_id, address_id)
    if before is None:
        return None
    row = {name: values[name] for name in ("kind", *FIELDS)}
    row["is_default"] = bool(values["is_default"])
    conn.execute(
        customer_addresses.update()
        .where(_mine(site_id, user_id), customer_addresses.c.address_id == address_id)
        .values(updated_at=datetime.now(UTC), **row)
    )
    if row["is_default"]:
        _only_default(conn, site_id, user_id, row["kind"], address_id)
    for kind in {before["kind"], row["kind"]}:
        _ensure_default(conn, site_id, user_id, kind)
    return get_address(conn, site_id, user_id, address_id)


def _ensure_default(conn, site_id, user_id, kind) -> None:
    """A kind with addresses keeps a default: its oldest address when none is."""
    if _has_default(conn, site_id, user_id, kind):
        return
    oldest = conn.execute(
        sa.select(sa.func.min(customer_addresses.c.address_id)).where(
            _mine(site_id, user_id), customer_addresses.c.kind == kind
        )
    ).scalar()
    if oldest is not None:
        conn.execute(
            customer_addresses.update()
            .where(customer_addresses.c.address_id == oldest)
            .values(is_default=True)
        )


def delete_address(conn: sa.Connection, site_id: int, user_id: str, address_id: int) -> bool:
    """Delete one of the customer's addresses; False when not theirs. The default moves on."""
    before = get_address(conn, site_id, user_id, address_id)
    if before is None:
        return False
    conn.execute(
        customer_addresses.delete().where(
            _mine(site_id, user_id), customer_addresses.c.address_id == address_id
        )
    )
    _ensure_default(conn, site_id, user_id, before["kind"])
    return True
