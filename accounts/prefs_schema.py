"""The tables of preferences, consent records and inquiries (accounts migrations 205 and 208).

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
    # The tracker's consent event a record came from (migration 208), so that an event is
    # recorded once for a customer however often its anonymous id is stitched to them.
    sa.Column("message_id", sa.String(100), nullable=True),
    sa.CheckConstraint(
        "source IN ('portal', 'api', 'console', 'import', 'tracker')", name="ck_consent_source"
    ),
)
sa.Index("ix_consent_records_person", consent_records.c.site_id, consent_records.c.user_id)
sa.Index(
    "ux_consent_records_event",
    consent_records.c.site_id,
    consent_records.c.user_id,
    consent_records.c.message_id,
    unique=True,
)

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


def tracker_consent(conn: sa.Connection) -> None:
    """Migration 208: consent records from the tracker (source ``tracker``, ``message_id``).

    A store that migration 205 created from this module already has both. An older one gets the
    column, the unique index and the wider check: PostgreSQL alters the table; SQLite cannot
    change a check, so the table is rebuilt under the same name with its rows.
    """
    columns = {c["name"] for c in sa.inspect(conn).get_columns(consent_records.name)}
    if "message_id" in columns:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE consent_records ADD COLUMN message_id VARCHAR(100)"))
        conn.execute(sa.text("ALTER TABLE consent_records DROP CONSTRAINT ck_consent_source"))
        conn.execute(
            sa.text(
                "ALTER TABLE consent_records ADD CONSTRAINT ck_consent_source CHECK "
                "(source IN ('portal', 'api', 'console', 'import', 'tracker'))"
            )
        )
        for index in consent_records.indexes:
            if index.name == "ux_consent_records_event":
                index.create(conn)
        return
    kept = [c.name for c in consent_records.columns if c.name != "message_id"]
    names = ", ".join(kept)
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_consent_records_person"))
    conn.execute(sa.text("ALTER TABLE consent_records RENAME TO consent_records_205"))
    consent_records.create(conn)  # with its indexes
    conn.execute(
        sa.text(f"INSERT INTO consent_records ({names}) SELECT {names} FROM consent_records_205")
    )
    conn.execute(sa.text("DROP TABLE consent_records_205"))
