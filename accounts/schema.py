"""The tables accounts/ owns (staff, roles, sessions, audit log), migrated from version 201.

Changes go through a new entry at the end of :data:`MIGRATIONS`, never by editing a shipped table.
Nothing here holds a secret in clear: passwords are argon2id hashes, session and sign-in link
tokens are kept as SHA-256 digests (only the browser's cookie or the link holds the token), and a
session's client is its address cut to the network (tracking.privacy), never a raw IP.
"""

from __future__ import annotations

import sqlalchemy as sa

from accounts import messaging_schema, portal_schema, prefs_schema, rights_schema
from tracking.migrations import Migration
from tracking.schema import JSON, UtcDateTime

metadata = sa.MetaData()

ROLE_NAMES = ("viewer", "marketer", "owner")  # accounts.staff.ROLES, ascending power

staff = sa.Table(
    "staff",
    metadata,
    sa.Column("staff_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),  # lower-cased
    # None until the person sets one through a one-time sign-in link.
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("disabled_at", UtcDateTime, nullable=True),
)

# A role per site: a staff account sees only the sites it has a row for.
staff_grants = sa.Table(
    "staff_grants",
    metadata,
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff.staff_id"), primary_key=True),
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.CheckConstraint(
        "role IN ({})".format(", ".join(f"'{r}'" for r in ROLE_NAMES)), name="ck_staff_role"
    ),
)
sa.Index("ix_staff_grants_site", staff_grants.c.site_id)

# Server-side sign-in sessions: ending a row signs that browser out on its next request.
staff_sessions = sa.Table(
    "staff_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),  # sha256 hex of the cookie's token
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff.staff_id"), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    # signed out, ended by an owner or by its owner, account disabled, idle too long
    sa.Column("ended_reason", sa.String(32), nullable=True),
    sa.Column("user_agent", sa.String(300), nullable=True),
    sa.Column("client", sa.String(64), nullable=True),  # IPv4 /24 or IPv6 /48 network
)
sa.Index("ix_staff_sessions_staff", staff_sessions.c.staff_id, staff_sessions.c.ended_at)

# One-time sign-in links (set a password, then signed in): single use, 24 hours.
sign_in_links = sa.Table(
    "sign_in_links",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),  # sha256 hex of the link's token
    sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff.staff_id"), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=True),
)
sa.Index("ix_sign_in_links_staff", sign_in_links.c.staff_id)

# Who did what, when. staff_id/email: who acted (or, for a failed sign-in, the email tried);
# no foreign key, so the log outlives anything it names. site_id: None for account-wide acts.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("staff_id", sa.Integer, nullable=True),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("site_id", sa.Integer, nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("detail", JSON, nullable=True),
)
sa.Index("ix_audit_log_site", audit_log.c.site_id, audit_log.c.id)
sa.Index("ix_audit_log_staff", audit_log.c.staff_id, audit_log.c.id)


def _initial(conn: sa.Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS: list[Migration] = [
    (201, "accounts tables", _initial),
    portal_schema.MIGRATION,
    (203, "data rights: erasure receipts", rights_schema.create),
    (204, "email outbox, webhook endpoints and deliveries", messaging_schema.create_tables),
    (205, "consent records, communication topics, inquiries", prefs_schema.migrate),
    (207, "one-time codes confirm an account's deletion", portal_schema.widen_code_purposes),
    (208, "consent records from the tracker", prefs_schema.tracker_consent),
    (209, "webhook deliveries to a trigger rule's own URL", messaging_schema.add_delivery_targets),
]

# Tables holding data (for tests that empty the store), children before the tables they name.
DATA_TABLES: tuple[sa.Table, ...] = tuple(reversed(metadata.sorted_tables))
