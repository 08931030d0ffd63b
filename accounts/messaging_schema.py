"""Tables of the messages sent on a site's behalf: the email outbox and the webhooks to the shop.

Created by accounts migration 204 (:data:`accounts.schema.MIGRATIONS`). Both queues are claimed
by the sender process (:mod:`accounts.mailer`) with a lease (``claimed_until``), so a sender that
dies mid-send leaves its rows to be claimed again once the lease has run out.
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.schema import UtcDateTime

metadata = sa.MetaData()

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# pending: waiting for its next attempt (next_attempt_at); sending: claimed by a sender until
# claimed_until; sent / delivered: done; failed: gave up after the last attempt (last_error kept).
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")
DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed")


def _status_check(name: str, statuses: tuple[str, ...]) -> sa.CheckConstraint:
    return sa.CheckConstraint(
        "status IN ({})".format(", ".join(f"'{s}'" for s in statuses)), name=name
    )


# One email, rendered when it was queued (accounts.outbox.enqueue_email). user_id and to_address
# are what erasure looks for (accounts.outbox.erase_recipient); eml_path is the file the sender
# wrote under var/mail/ when no SMTP relay is configured.
email_outbox = sa.Table(
    "email_outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String(255), nullable=True),
    sa.Column("to_address", sa.String(254), nullable=False),
    sa.Column("template", sa.String(40), nullable=False),
    sa.Column("locale", sa.String(8), nullable=False),
    sa.Column("from_name", sa.String(200), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("body_text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("eml_path", sa.String(500), nullable=True),
    _status_check("ck_email_outbox_status", OUTBOX_STATUSES),
)
sa.Index("ix_email_outbox_due", email_outbox.c.status, email_outbox.c.next_attempt_at)
sa.Index("ix_email_outbox_user", email_outbox.c.site_id, email_outbox.c.user_id)
sa.Index("ix_email_outbox_to", email_outbox.c.site_id, email_outbox.c.to_address)

# A site's webhook endpoint (one per site). The secret signs every delivery; it is kept in clear
# because computing an HMAC needs the key itself (like sites.identity_secret). allow_private:
# the URL may name a private or loopback address (testing only; set from the command line).
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("endpoint_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.Integer, nullable=False, unique=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", sa.String(80), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("allow_private", sa.Boolean, nullable=False, default=False),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("disabled_at", UtcDateTime, nullable=True),
    sa.Column("disabled_reason", sa.String(300), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("secret_rotated_at", UtcDateTime, nullable=True),
)

# One event for one endpoint: the exact body that is signed and POSTed, built when the event was
# emitted. user_id: the customer the event is about (data["user_id"]), for erasure. target_url
# (migration 209): a trigger rule's own URL, POSTed to instead of the endpoint's and signed with
# its secret; its failures never count toward disabling the endpoint (accounts.webhook_delivery).
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.Integer, nullable=False),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claimed_until", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("target_url", sa.String(2000), nullable=True),  # None: the endpoint's URL
    _status_check("ck_webhook_deliveries_status", DELIVERY_STATUSES),
)
sa.Index(
    "ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at
)
sa.Index("ix_webhook_deliveries_site", webhook_deliveries.c.site_id, webhook_deliveries.c.id)
sa.Index("ix_webhook_deliveries_user", webhook_deliveries.c.site_id, webhook_deliveries.c.user_id)

# The delivery log: one row per attempt (the console shows it).
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", BigId, nullable=False),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
)
sa.Index("ix_webhook_attempts_site", webhook_attempts.c.site_id, webhook_attempts.c.id)
sa.Index("ix_webhook_attempts_delivery", webhook_attempts.c.delivery_id)


def create_tables(conn: sa.Connection) -> None:
    """Migration 204: the outbox and webhook tables."""
    metadata.create_all(conn)


def add_delivery_targets(conn: sa.Connection) -> None:
    """Migration 209: a delivery's own target URL (204 creates it on a fresh store)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns("webhook_deliveries")}
    if "target_url" not in present:
        column = webhook_deliveries.c.target_url
        spec = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE webhook_deliveries ADD COLUMN {spec}"))


# Tables holding data (for tests that empty the store).
DATA_TABLES: tuple[sa.Table, ...] = tuple(reversed(metadata.sorted_tables))
