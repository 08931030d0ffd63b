"""The tables of preferences, consent records and inquiries (accounts migration 205).

Consent records are append-only: the current state of a choice is its newest record
(:mod:`accounts.consent`). Inquiries hold a thread of messages (:mod:`accounts.inquiries`).
Nothing here holds a password, a token or a raw IP.
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.schema import UtcDateTime

metadata = sa.MetaData()

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# One line per change of a customer's choice: what (``email:offers``, ``personalisation``,
# ``tracking``), granted or withdrawn, when, from where, and the exact words they were shown.
consent_records = sa.Table(
    "consent_records",
    metadata,
    sa.Column("id", BIG_ID, primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("what", sa.String(80), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("wording", sa.Text, nullable=False),
    sa.CheckConstraint(
        "source IN ('portal', 'api', 'console', 'import')", name="ck_consent_source"
    ),
)
sa.Index("ix_consent_records_person", consent_records.c.site_id, consent_records.c.user_id)

# A site's own list of topics; a site without rows uses accounts.preferences.DEFAULT_TOPICS.
communication_topics = sa.Table(
    "communication_topics",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("topic", sa.String(40), primary_key=True),
    sa.Column("label", sa.String(120), nullable=False),
    sa.Column("default_granted", sa.Boolean, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)

inquiries = sa.Table(
    "inquiries",
    metadata,
    sa.Column("id", BIG_ID, primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("order_id", sa.String(255), nullable=True),  # the shop's id of one of their orders
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("assignee_staff_id", sa.Integer, nullable=True),  # no foreign key: outlives staff
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("first_reply_at", UtcDateTime, nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.CheckConstraint(
        "category IN ('question', 'complaint', 'return', 'suggestion')", name="ck_inquiry_category"
    ),
    sa.CheckConstraint(
        "status IN ('open', 'waiting', 'answered', 'closed')", name="ck_inquiry_status"
    ),
)
sa.Index("ix_inquiries_queue", inquiries.c.site_id, inquiries.c.status, inquiries.c.id)
sa.Index("ix_inquiries_person", inquiries.c.site_id, inquiries.c.user_id, inquiries.c.id)
sa.Index("ix_inquiries_created", inquiries.c.site_id, inquiries.c.created_at)

inquiry_messages = sa.Table(
    "inquiry_messages",
    metadata,
    sa.Column("id", BIG_ID, primary_key=True),
    sa.Column("inquiry_id", BIG_ID, sa.ForeignKey("inquiries.id"), nullable=False),
    sa.Column("author", sa.String(8), nullable=False),  # customer | staff
    sa.Column("staff_id", sa.Integer, nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.CheckConstraint("author IN ('customer', 'staff')", name="ck_inquiry_author"),
)
sa.Index("ix_inquiry_messages_thread", inquiry_messages.c.inquiry_id, inquiry_messages.c.id)

# Children before the tables they name (for tests that empty the store).
DATA_TABLES = (consent_records, communication_topics, inquiry_messages, inquiries)


def migrate(conn: sa.Connection) -> None:
    """Migration 205: create the tables (and their indexes) that are missing."""
    metadata.create_all(conn, checkfirst=True)
