"""The registry of personal data (accounts.personal_data) against the live schema.

Every table of every package (webapp.database knows them all) that has a column linking to a
customer must be registered (found, exported, erased) or excluded with a reason. A table added
by anyone later fails here until it is one or the other.
"""

from __future__ import annotations

import sqlalchemy as sa

from accounts import personal_data
from accounts.personal_data import EXCLUDED, HOLDINGS, LINK_COLUMNS, Holding, unregistered
from webapp import database


def every_table() -> list[sa.Table]:
    return [table for metadata in database.METADATA for table in metadata.sorted_tables]


def test_every_table_linking_to_a_customer_is_registered_or_excluded_with_a_reason():
    assert unregistered(every_table()) == []
    names = {table.name for table in every_table()}
    # Nothing registered or excluded that the schema does not have (a renamed table).
    assert {entry.name for entry in HOLDINGS} <= names
    assert set(EXCLUDED) <= names
    assert all(len(reason) > 20 for reason in EXCLUDED.values())
    # The tables the issue names are all there.
    registered = {entry.name for entry in HOLDINGS}
    for name in ("customers", "events", "identities", "sessions", "orders", "order_lines"):
        assert name in registered
    assert personal_data.holding("orders").erase == "unlink"


def test_a_new_table_with_a_customer_column_fails_until_registered():
    metadata = sa.MetaData()
    profiles = sa.Table(
        "profiles",
        metadata,
        sa.Column("site_id", sa.Integer),
        sa.Column("user_id", sa.String(255)),
        sa.Column("email", sa.String(254)),
    )
    problems = unregistered([profiles])
    assert len(problems) == 1 and problems[0].startswith("profiles has email, user_id")
    # Registered but one linking column left out: still a problem.
    partial = Holding(profiles, {"user_id": "user"})
    original = personal_data.HOLDINGS
    try:
        personal_data.HOLDINGS = (*original, partial)
        assert "profiles.email" in personal_data.unregistered([profiles])[0]
        personal_data.HOLDINGS = (
            *original,
            Holding(profiles, {"user_id": "user", "email": "email"}),
        )
        assert personal_data.unregistered([profiles]) == []
    finally:
        personal_data.HOLDINGS = original


def test_link_columns_and_unlinks_are_real():
    for table in every_table():
        assert personal_data.link_columns(table) <= LINK_COLUMNS
    broken = Holding(
        database.tracking_schema.events, {"nope": "user"}, erase="unlink", unlink=("id",)
    )
    problems = unregistered([database.tracking_schema.events]) + [p for p in _check(broken)]
    assert any("no column nope" in p for p in problems)
    assert any("events.id cannot be set to NULL" in p for p in problems)


def _check(entry: Holding) -> list[str]:
    original = personal_data.HOLDINGS
    try:
        personal_data.HOLDINGS = tuple(e for e in original if e.name != entry.name) + (entry,)
        return personal_data.unregistered([entry.table])
    finally:
        personal_data.HOLDINGS = original
