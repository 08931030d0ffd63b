"""Customer search for staff: by id, email or name, through the indexed search keys, paged.

A query is case-folded like the keys (tracking.customer_lookup) and matched as a prefix of any
key: a customer id, a verified email, a whole name or any word of it ("ann" finds Ann Lee,
Joanne Ann and ann.lee@example.com). That is a range on the (site, value) index, read in order
and cut at a page, so a search costs the same with a thousand customers or a million; the exact
id, as typed, comes first. Queries shorter than :data:`MIN_QUERY` are refused before any read.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tracking.customer_lookup import normalise, prefix_bounds
from tracking.db import aware
from tracking.errors import FieldError
from tracking.schema import customer_lookup, customers

MIN_QUERY = 2
PAGE = 50


class SearchError(FieldError):
    """A search that cannot run: ``field`` (``q`` or ``after``) says which input, ``reason`` why."""


@dataclass
class Results:
    """One page of matching customers (each once, across pages too), and the next page's cursor."""

    query: str
    rows: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(value: str, user_id: str, kind: str) -> str:
    """An opaque cursor: the last key a page showed."""
    raw = json.dumps([value, user_id, kind], ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, user_id, kind = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise SearchError("after", "not a position from this search; search again") from None
    if not all(_storable(part) for part in (value, user_id, kind)):
        raise SearchError("after", "not a position from this search; search again")
    return value, user_id, kind


def _storable(text: object) -> bool:
    """A string both databases can compare: no NUL, no lone surrogate (a JSON escape can)."""
    if not isinstance(text, str) or "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def display_name(traits: dict[str, Any]) -> str | None:
    """A customer's name from verified traits: ``name``, else first and last name."""
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [
        traits.get(key)
        for key in ("first_name", "firstName", "last_name", "lastName")
        if isinstance(traits.get(key), str)
    ]
    return " ".join(p.strip() for p in parts if p.strip()) or None


def search(
    conn: sa.Connection, site_id: int, text: str, after: str | None = None, limit: int = PAGE
) -> Results:
    """Customers of ``site_id`` matching ``text`` (see the module docstring), a page at a time."""
    query = normalise(text or "")
    if len(query) < MIN_QUERY:
        raise SearchError(
            "q", f"type at least {MIN_QUERY} characters of a customer id, an email or a name"
        )
    position = _decode_cursor(after) if after else None
    exact = None
    if text.strip() and "\x00" not in text:  # no stored id holds one, and PostgreSQL cannot
        exact = conn.execute(
            sa.select(customers.c.user_id).where(
                customers.c.site_id == site_id, customers.c.user_id == text.strip()
            )
        ).scalar()
    matched: dict[str, list[tuple[str, str]]] = {}
    if exact is not None and position is None:
        matched[exact] = [("id", exact)]
    firsts, cursor = _first_matches(conn, site_id, query, position, limit, skip=exact)
    for user_id, keys in firsts:
        matched.setdefault(user_id, []).extend(keys)
    return Results(query, _rows(conn, site_id, matched), cursor)


def _first_matches(
    conn: sa.Connection,
    site_id: int,
    query: str,
    position: tuple[str, str, str] | None,
    limit: int,
    skip: str | None,
) -> tuple[list[tuple[str, list[tuple[str, str]]]], str | None]:
    """Up to ``limit`` customers after ``position`` with their matching (kind, value) keys.

    Each customer is listed at their first key with the prefix.

    A customer often matches twice (ann.lee@... and Ann Lee); listing them only at their first
    key in (value, user, kind) order shows each once across all the pages. Keys are read along
    the index a page at a time until ``limit + 1`` customers are found (the last one only says
    whether there is a next page); each batch's customers' own keys are one lookup by key.
    """
    low, high = prefix_bounds(query)
    key = sa.tuple_(customer_lookup.c.value, customer_lookup.c.user_id, customer_lookup.c.kind)
    in_range = [customer_lookup.c.site_id == site_id, customer_lookup.c.value >= low]
    if high is not None:
        in_range.append(customer_lookup.c.value < high)
    found: list[tuple[str, list[tuple[str, str]]]] = []
    at: list[tuple[str, str, str]] = []  # where each customer was found
    last = position
    while len(found) <= limit:
        select = sa.select(
            customer_lookup.c.value, customer_lookup.c.user_id, customer_lookup.c.kind
        ).where(*in_range)
        if last is not None:
            select = select.where(key > sa.tuple_(*last))
        batch = conn.execute(select.order_by(*key.clauses).limit(limit + 1)).all()
        keys = _matching_keys(conn, site_id, in_range, {row.user_id for row in batch})
        for value, user_id, kind in batch:
            last = (value, user_id, kind)
            if user_id != skip and keys[user_id][0] == (kind, value):
                found.append((user_id, keys[user_id]))
                at.append(last)
                if len(found) > limit:
                    break
        if len(batch) <= limit:
            break
    if len(found) <= limit:
        return found, None
    return found[:limit], encode_cursor(*at[limit - 1])


def _matching_keys(
    conn: sa.Connection, site_id: int, in_range: list, user_ids: set[str]
) -> dict[str, list[tuple[str, str]]]:
    """Each customer's (kind, value) keys with the prefix, the first in index order first."""
    keys: dict[str, list[tuple[str, str]]] = {}
    if user_ids:
        for value, user_id, kind in conn.execute(
            sa.select(
                customer_lookup.c.value, customer_lookup.c.user_id, customer_lookup.c.kind
            ).where(*in_range, customer_lookup.c.user_id.in_(sorted(user_ids)))
        ):
            keys.setdefault(user_id, []).append((value, kind))
    return {user: [(kind, value) for value, kind in sorted(found)] for user, found in keys.items()}


def _rows(
    conn: sa.Connection, site_id: int, matched: dict[str, list[tuple[str, str]]]
) -> list[dict[str, Any]]:
    """The page's customers in match order, with their verified name and email."""
    if not matched:
        return []
    found = {
        row["user_id"]: row
        for row in conn.execute(
            sa.select(customers.c.user_id, customers.c.traits, customers.c.last_seen_at).where(
                customers.c.site_id == site_id, customers.c.user_id.in_(list(matched))
            )
        ).mappings()
    }
    rows = []
    for user_id, keys in matched.items():
        row = found.get(user_id)
        if row is None:  # the customer went (erased) since the key was read
            continue
        traits = row["traits"] if isinstance(row["traits"], dict) else {}
        email = traits.get("email")
        rows.append(
            {
                "user_id": user_id,
                "name": display_name(traits),
                "email": email if isinstance(email, str) else None,
                "last_seen_at": aware(row["last_seen_at"]),
                "matched": list(dict.fromkeys(keys)),
            }
        )
    return rows
