"""Search keys of customers: their id, verified email and name words, normalised and indexed.

Staff find a customer by id, email or name (the console's customer search) without reading any
customer's JSON traits: each customer has rows in ``customer_lookup`` (kind ``id``, ``email`` or
``name``; the value case-folded, control characters dropped, whitespace collapsed), indexed by
(site, value) so a prefix is a range scan. Only verified traits make keys: unverified ones are
claims (DESIGN.md, "Identity and trust"). :func:`refresh` keeps the rows in step with
``customers`` in the same transaction that writes traits; :func:`fill` writes them for a store
that predates the table.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from tracking.db import chunks, insert_ignore
from tracking.events import CONTROL_CHARACTERS
from tracking.schema import customer_lookup, customers

KINDS = ("id", "email", "name")
VALUE_LENGTH = 255  # customer_lookup.value's length
MAX_NAME_KEYS = 24  # a name with hundreds of words makes no more keys than this
WORD = re.compile(r"\w+")
# Code points UTF-8 cannot carry (surrogates): the successor of U+D7FF is U+E000.
SURROGATES = (0xD800, 0xDFFF)

Key = tuple[str, str]  # (kind, value)


def normalise(text: str) -> str:
    """Case-folded (NFKC), without control characters, whitespace collapsed, at most 255 chars."""
    text = CONTROL_CHARACTERS.sub(" ", unicodedata.normalize("NFKC", text))
    return " ".join(text.casefold().split())[:VALUE_LENGTH]


def prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """(low, high): the values starting with ``prefix`` are those with low <= value < high.

    By code point, which is how SQLite's BINARY and PostgreSQL's "C" collations compare UTF-8
    text; ``high`` is None when no string is above every value with the prefix.
    """
    for cut in range(len(prefix), 0, -1):
        point = ord(prefix[cut - 1]) + 1
        if SURROGATES[0] <= point <= SURROGATES[1]:
            point = SURROGATES[1] + 1
        if point <= 0x10FFFF:
            return prefix, prefix[: cut - 1] + chr(point)
    return prefix, None


def _text(value: Any) -> str:
    return normalise(value) if isinstance(value, str) else ""


def keys_of(user_id: str, traits: Mapping[str, Any] | None) -> set[Key]:
    """The search keys of a customer: id, verified email, whole names and each name's words."""
    keys: set[Key] = set()
    if value := normalise(user_id):
        keys.add(("id", value))
    traits = traits if isinstance(traits, Mapping) else {}
    if email := _text(traits.get("email")):
        keys.add(("email", email))
    first = _text(traits.get("first_name")) or _text(traits.get("firstName"))
    last = _text(traits.get("last_name")) or _text(traits.get("lastName"))
    names = [_text(traits.get("name")), normalise(f"{first} {last}")]
    words = [w for name in names for w in name.split(" ") + WORD.findall(name)]
    # Whole names first, then every word and its parts (Smith-Jones: smith, jones), capped.
    values = [value for value in dict.fromkeys([*names, *words]) if value]
    keys.update(("name", value) for value in values[:MAX_NAME_KEYS])
    return keys


def _rows(site_id: int, user_id: str, keys: Iterable[Key]) -> list[dict]:
    return [
        {"site_id": site_id, "user_id": user_id, "kind": kind, "value": value}
        for kind, value in sorted(keys)
    ]


def refresh(
    conn: sa.Connection,
    site_id: int,
    written: Mapping[str, Mapping[str, Any]],
    before: Mapping[str, Mapping[str, Any] | None],
) -> None:
    """Bring the keys of customers just written in step with their verified traits.

    ``written`` maps user ids to the traits just stored; ``before`` to the traits they had (a
    user id missing from it is a new customer). Customers whose keys did not change cost nothing
    here, which is most of them (an event of a known customer rewrites the same traits).
    """
    rows = []
    changed = []
    for user_id, traits in written.items():
        keys = keys_of(user_id, traits)
        if user_id in before:
            if keys == keys_of(user_id, before[user_id]):
                continue
            changed.append(user_id)
        rows += _rows(site_id, user_id, keys)
    for chunk in chunks(sorted(changed)):
        conn.execute(
            customer_lookup.delete().where(
                customer_lookup.c.site_id == site_id, customer_lookup.c.user_id.in_(chunk)
            )
        )
    if rows:
        # Ignore: a worker writing the same new customer at once stored the same keys.
        conn.execute(insert_ignore(conn.engine, customer_lookup), rows)


def fill(conn: sa.Connection, batch: int = 2000) -> int:
    """Write the keys of every stored customer (a store that predates the table); return rows."""
    written = 0
    after: tuple[int, str] | None = None
    key = sa.tuple_(customers.c.site_id, customers.c.user_id)
    while True:
        query = sa.select(customers.c.site_id, customers.c.user_id, customers.c.traits)
        if after is not None:
            query = query.where(key > sa.tuple_(*after))
        page = conn.execute(query.order_by(*key.clauses).limit(batch)).all()
        if not page:
            return written
        rows = [row for s, u, traits in page for row in _rows(s, u, keys_of(u, traits))]
        conn.execute(insert_ignore(conn.engine, customer_lookup), rows)
        written += len(rows)
        after = (page[-1].site_id, page[-1].user_id)
