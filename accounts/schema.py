"""The tables accounts/ owns (staff, roles, sessions, audit log), migrated from version 201.

Changes go through a new entry at the end of :data:`MIGRATIONS`, never by editing a shipped table.
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.migrations import Migration

metadata = sa.MetaData()


def _initial(conn: sa.Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS: list[Migration] = [
    (201, "accounts tables", _initial),
]

# Tables holding data (for tests that empty the store).
DATA_TABLES: tuple[sa.Table, ...] = ()
