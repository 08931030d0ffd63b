"""The tables recommender/ owns (merchandising rules per site and placement), migrated from 301.

Changes go through a new entry at the end of :data:`MIGRATIONS`, never by editing a shipped table.
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.migrations import Migration

metadata = sa.MetaData()

# One rules document per site and placement; placement '' is the site's default, used by every
# placement without its own. ``version`` is the site's rules version when this row last changed;
# ``updated_by`` a staff email or "api".
merch_rules = sa.Table(
    "merch_rules",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("placement", sa.String(64), primary_key=True),
    sa.Column("document", sa.JSON(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(254), nullable=False),
)

# A site's rules version, bumped by every change: web processes compare it to reload.
merch_rules_versions = sa.Table(
    "merch_rules_versions",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def _initial(conn: sa.Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS: list[Migration] = [
    (301, "merchandising rules per site and placement", _initial),
]

# Tables holding data (for tests that empty the store).
DATA_TABLES: tuple[sa.Table, ...] = (merch_rules, merch_rules_versions)
