"""The table of data rights (accounts migration 203): erasure receipts.

A receipt proves an erasure happened without keeping whom it erased: its id, the site, when it
was asked and finished, who asked (``api`` or ``staff:<id>``) and how many rows or entries each
store gave up. ``subject`` is the tombstone's digest of the erased user id
(tracking.erased.digest), so asking again answers with the same receipt; it is not the id.
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.schema import JSON, UtcDateTime

metadata = sa.MetaData()

erasure_receipts = sa.Table(
    "erasure_receipts",
    metadata,
    sa.Column("receipt_id", sa.String(32), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),  # digest, never the id
    sa.Column("requested_by", sa.String(64), nullable=False),  # "api" or "staff:<id>"
    sa.Column("requested_at", UtcDateTime, nullable=False),
    sa.Column("completed_at", UtcDateTime, nullable=True),  # None: started, not finished
    sa.Column("counts", JSON, nullable=False),  # store -> rows or entries erased
    sa.UniqueConstraint("site_id", "subject", name="uq_erasure_receipts_subject"),
)


def create(conn: sa.Connection) -> None:
    """Migration 203."""
    metadata.create_all(conn)


DATA_TABLES: tuple[sa.Table, ...] = (erasure_receipts,)
