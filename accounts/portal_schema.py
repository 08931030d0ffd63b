"""The self-service portal's tables (migration 202): portal tokens and sessions, one-time codes,
addresses, and each site's portal look.

Nothing here holds a secret in clear: portal tokens and session cookies are kept as SHA-256
digests, one-time codes as an HMAC under the app's secret key. A session's client is its
address cut to the network (tracking.privacy), never a raw IP.
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.migrations import Migration
from tracking.schema import UtcDateTime

metadata = sa.MetaData()

ADDRESS_KINDS = ("shipping", "billing")
CODE_PURPOSES = ("sign_in", "email_change", "delete_account")  # delete_account: migration 207
PURPOSE_CHECK = "purpose IN ({})".format(", ".join(f"'{p}'" for p in CODE_PURPOSES))

# A shop's backend asks for one (POST /v1/portal/sessions): single use, 5 minutes.
portal_tokens = sa.Table(
    "portal_tokens",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),  # sha256 hex of the URL's token
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("return_url", sa.String(2000), nullable=True),
    sa.Column("locale", sa.String(8), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=True),
)
sa.Index("ix_portal_tokens_user", portal_tokens.c.site_id, portal_tokens.c.user_id)

# A signed-in customer's browser: ending the row signs it out at its next request.
portal_sessions = sa.Table(
    "portal_sessions",
    metadata,
    sa.Column("session_id", sa.String(64), primary_key=True),  # sha256 hex of the cookie's token
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("locale", sa.String(8), nullable=True),
    sa.Column("return_url", sa.String(2000), nullable=True),
    sa.Column("how", sa.String(16), nullable=False),  # token (from the shop) or code (email)
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("ended_reason", sa.String(32), nullable=True),
    sa.Column("client", sa.String(64), nullable=True),  # IPv4 /24 or IPv6 /48 network
)
sa.Index("ix_portal_sessions_user", portal_sessions.c.site_id, portal_sessions.c.user_id)

# One-time codes sent by email: sign-in (user_id None when the address is unknown: nothing is
# sent, but the answer is the same), confirming a new email address (email is the new one) or
# confirming that the account is to be deleted (sent to the email on file).
portal_codes = sa.Table(
    "portal_codes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),  # lower-cased
    sa.Column("user_id", sa.String(255), nullable=True),
    sa.Column("code_digest", sa.String(64), nullable=False),  # HMAC-SHA256 under SECRET_KEY
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("used_at", UtcDateTime, nullable=True),
    sa.CheckConstraint(PURPOSE_CHECK, name="ck_portal_code_purpose"),
)
sa.Index("ix_portal_codes_email", portal_codes.c.site_id, portal_codes.c.email)
sa.Index("ix_portal_codes_user", portal_codes.c.site_id, portal_codes.c.user_id)

# The address book: shipping and billing addresses, at most one default of each kind.
customer_addresses = sa.Table(
    "customer_addresses",
    metadata,
    sa.Column("address_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("line1", sa.String(200), nullable=False),
    sa.Column("line2", sa.String(200), nullable=True),
    sa.Column("city", sa.String(100), nullable=False),
    sa.Column("region", sa.String(100), nullable=True),
    sa.Column("postal_code", sa.String(20), nullable=True),
    sa.Column("country", sa.String(2), nullable=False),  # ISO 3166-1 alpha-2, upper case
    sa.Column("phone", sa.String(32), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.CheckConstraint(
        "kind IN ({})".format(", ".join(f"'{k}'" for k in ADDRESS_KINDS)),
        name="ck_customer_address_kind",
    ),
)
sa.Index("ix_customer_addresses_user", customer_addresses.c.site_id, customer_addresses.c.user_id)

# How a site's portal looks: its colours (the name is the site's own).
portal_settings = sa.Table(
    "portal_settings",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("brand_colour", sa.String(7), nullable=False),  # #rrggbb
    sa.Column("accent_colour", sa.String(7), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)


def _portal(conn: sa.Connection) -> None:
    metadata.create_all(conn)


MIGRATION: Migration = (202, "portal sessions, codes, addresses, portal settings", _portal)


def widen_code_purposes(conn: sa.Connection) -> None:
    """Migration 207: codes may confirm an account's deletion (``delete_account``).

    PostgreSQL replaces the check constraint; SQLite, which cannot alter one, copies the table
    into a new one made as :data:`portal_codes` says (a store made after 202 changed has it).
    """
    if conn.dialect.name != "sqlite":
        conn.execute(
            sa.text("ALTER TABLE portal_codes DROP CONSTRAINT IF EXISTS ck_portal_code_purpose")
        )
        conn.execute(
            sa.text(
                "ALTER TABLE portal_codes ADD CONSTRAINT ck_portal_code_purpose "
                f"CHECK ({PURPOSE_CHECK})"
            )
        )
        return
    made = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'portal_codes'")
    ).scalar()
    if made is None or "'delete_account'" in made:
        return
    conn.execute(sa.text("ALTER TABLE portal_codes RENAME TO portal_codes_before_207"))
    for index in portal_codes.indexes:  # they moved with the old table; the new one makes them
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {index.name}"))
    portal_codes.create(conn)
    columns = ", ".join(column.name for column in portal_codes.columns)
    conn.execute(
        sa.text(
            f"INSERT INTO portal_codes ({columns}) SELECT {columns} FROM portal_codes_before_207"
        )
    )
    conn.execute(sa.text("DROP TABLE portal_codes_before_207"))


# Tables holding data (for tests that empty the store), children before the tables they name.
DATA_TABLES: tuple[sa.Table, ...] = tuple(reversed(metadata.sorted_tables))
