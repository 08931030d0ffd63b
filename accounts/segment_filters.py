"""A segment's trait and consent conditions as SQL (accounts.segment_members), so that a page of
members is a keyset query with a LIMIT and a count is a count query, however big the segment.

Both read a correlated user id (``value_scores.user_id`` of the members' query):

- :func:`allows`: the customer's newest consent record for ``channel:topic`` (by time, then id,
  as accounts.consent orders them) grants it, or they have none and the topic's default grants
  it; written as EXISTS / NOT EXISTS so PostgreSQL can plan a count over a million customers as
  a hash semi-join and a page as index look-ups;
- :func:`has_traits`: the customer's verified traits match every wanted value (the same type:
  ``true`` is not ``1``, ``"1"`` is not ``1``) or range (numbers only), read with the JSON
  functions of PostgreSQL or SQLite (``json_each`` there, so any trait name is safe).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accounts import preferences
from accounts.prefs_schema import consent_records
from tracking.schema import customers


def allows(
    conn: sa.Connection, site_id: int, user_id: sa.ColumnElement, channel: str, topic: str
) -> sa.ColumnElement:
    """True for the customers (``user_id``, a correlated column) who allow ``channel:topic``."""
    default = next(
        (t.default_granted for t in preferences.topics(conn, site_id) if t.topic == topic), None
    )
    if default is None:
        return sa.false()  # a topic the site does not have
    record, later = consent_records.alias("record"), consent_records.alias("later")
    newer = (
        sa.select(sa.literal(1))
        .where(
            later.c.site_id == record.c.site_id,
            later.c.user_id == record.c.user_id,
            later.c.what == record.c.what,
            sa.or_(
                later.c.at > record.c.at,
                sa.and_(later.c.at == record.c.at, later.c.id > record.c.id),
            ),
        )
        .correlate(record)
    )
    # The newest record says the opposite of the default: that decides; else the default holds.
    says = record.c.granted if not default else sa.not_(record.c.granted)
    newest_differs = sa.select(sa.literal(1)).where(
        record.c.site_id == site_id,
        record.c.user_id == user_id,
        record.c.what == f"{channel}:{topic}",
        says,
        ~newer.exists(),
    )
    return ~newest_differs.exists() if default else newest_differs.exists()


def _matches(kind, text, number, want: Any, *, sqlite: bool) -> sa.ColumnElement:
    """One trait's condition given its JSON type, text and numeric value expressions."""
    numeric = kind.in_(("integer", "real")) if sqlite else kind == "number"
    if isinstance(want, dict):
        bounds = [numeric]
        if want["min"] is not None:
            bounds.append(number >= want["min"])
        if want["max"] is not None:
            bounds.append(number <= want["max"])
        return sa.and_(*bounds)
    if isinstance(want, bool):
        if sqlite:
            return kind == ("true" if want else "false")
        return sa.and_(kind == "boolean", text == ("true" if want else "false"))
    if isinstance(want, str):
        return sa.and_(kind == ("text" if sqlite else "string"), text == want)
    return sa.and_(numeric, number == want)


def has_traits(
    conn: sa.Connection, site_id: int, user_id: sa.ColumnElement, traits: dict[str, Any]
) -> sa.ColumnElement:
    """True for the customers (``user_id``, a correlated column) whose verified traits match."""
    sqlite = conn.dialect.name == "sqlite"
    person = customers.alias("person")  # never correlated with a customers table outside
    conditions = []
    for key, want in traits.items():
        if sqlite:
            each = sa.func.json_each(person.c.traits).table_valued("key", "value", "type")
            each = each.alias("trait")
            match = _matches(each.c.type, each.c.value, each.c.value, want, sqlite=True)
            conditions.append(
                sa.select(sa.literal(1)).select_from(each).where(each.c.key == key, match).exists()
            )
        else:
            field = person.c.traits.op("->")(sa.literal(key, sa.Text))
            kind = sa.func.json_typeof(field)
            text = person.c.traits.op("->>")(sa.literal(key, sa.Text))
            number = sa.case((kind == "number", sa.cast(text, sa.Numeric)))
            conditions.append(_matches(kind, text, number, want, sqlite=False))
    return (
        sa.select(sa.literal(1))
        .where(person.c.site_id == site_id, person.c.user_id == user_id, *conditions)
        .exists()
    )


def text_trait(conn: sa.Connection, traits: sa.ColumnElement, key: str) -> sa.ColumnElement:
    """A verified trait's value when it is a JSON string, else NULL (``key``: a plain name)."""
    if conn.dialect.name == "sqlite":
        path = f'$."{key}"'
        is_text = sa.func.json_type(traits, path) == "text"
        return sa.case((is_text, sa.func.json_extract(traits, path)))
    field = traits.op("->")(sa.literal(key, sa.Text))
    return sa.case(
        (sa.func.json_typeof(field) == "string", traits.op("->>")(sa.literal(key, sa.Text)))
    )
