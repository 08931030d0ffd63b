"""The SQL tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Changes to these tables go through :mod:`tracking.migrations`, never by editing a table that has
shipped without adding a migration.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLAlchemy's JSON is TEXT on SQLite and json on PostgreSQL.
JSON = sa.JSON()
UtcDateTime = sa.DateTime(timezone=True)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("write_key", sa.String(64), nullable=False, unique=True),
    # Only a digest of the secret server key is kept; the key is shown once at creation.
    sa.Column("server_key_digest", sa.String(64), nullable=False, unique=True),
    sa.Column("allowed_origins", JSON, nullable=False),
    # True: requests with DNT: 1 or Sec-GPC: 1 are acknowledged but not stored.
    sa.Column("honour_dnt", sa.Boolean, nullable=False, default=True),
    # Requests per second per collector process; 0 means no limit.
    sa.Column("rate_limit", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    # Identity verification (tracking.identity): the key of the HMAC a shop's server signs user
    # ids with. Kept in clear, unlike the server key, since verifying an HMAC needs the key
    # itself. Set at creation (and by migration 4 for older sites); rotatable.
    sa.Column("identity_secret", sa.String(64), nullable=True),
    # False: every user id a browser sends is believed, as before identity verification.
    sa.Column(
        "verify_identity", sa.Boolean, nullable=False, default=True, server_default=sa.true()
    ),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("event", sa.String(200), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("anonymous_id", sa.String(255), nullable=True),
    sa.Column("user_id", sa.String(255), nullable=True),
    sa.Column("session_id", sa.String(32), nullable=True),
    sa.Column("item_id", sa.String(255), nullable=True),
    sa.Column("order_id", sa.String(255), nullable=True),
    sa.Column("timestamp", UtcDateTime, nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=True),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("payload", JSON, nullable=False),
    # The visitor belongs to the holdout group (tracking.holdout): measured, not personalised.
    sa.Column("holdout", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.UniqueConstraint("site_id", "message_id", name="uq_events_site_message"),
)
sa.Index("ix_events_user", events.c.site_id, events.c.user_id, events.c.timestamp)
sa.Index("ix_events_anonymous", events.c.site_id, events.c.anonymous_id, events.c.timestamp)
sa.Index("ix_events_time", events.c.site_id, events.c.timestamp)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("traits", JSON, nullable=False),  # verified: from the server or a signed user id
    # Traits from browser calls whose user id was not verified: kept, never trusted (no rule
    # reads them, and they never overwrite ``traits``).
    sa.Column("unverified_traits", JSON, nullable=True),
    sa.Column("first_seen_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
)

# The search keys of each customer (tracking.customer_lookup): id, verified email, name words,
# case-folded. Compared by code point ("C" on PostgreSQL, BINARY on SQLite), so a prefix is a
# range on the (site, value) index whatever the database's collation.
customer_lookup = sa.Table(
    "customer_lookup",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(8), primary_key=True),  # id, email, name
    sa.Column(
        "value",
        sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql"),
        primary_key=True,
    ),
)
sa.Index(
    "ix_customer_lookup_value",
    customer_lookup.c.site_id,
    customer_lookup.c.value,
    customer_lookup.c.user_id,
    customer_lookup.c.kind,
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("anonymous_id", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),  # identify, alias, event
    sa.Column("first_seen_at", UtcDateTime, nullable=False),
)
sa.Index("ix_identities_user", identities.c.site_id, identities.c.user_id)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("session_id", sa.String(32), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("visitor_id", sa.String(255), nullable=False),
    sa.Column("anonymous_id", sa.String(255), nullable=True),
    sa.Column("user_id", sa.String(255), nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False),
)
sa.Index("ix_sessions_visitor", sessions.c.site_id, sessions.c.visitor_id, sessions.c.last_seen_at)

items = sa.Table(
    "items",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String(255), primary_key=True),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("category", sa.String(500), nullable=True),
    sa.Column("price", sa.Numeric(14, 2), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("url", sa.String(2000), nullable=True),
    sa.Column("image_url", sa.String(2000), nullable=True),
    sa.Column("in_stock", sa.Boolean, nullable=False, default=True),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    # DELETE /v1/items/{id} hides an item: kept for history, never recommended.
    sa.Column("hidden", sa.Boolean, nullable=False, default=False),
    sa.Column("attributes", JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("order_id", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=True),
    sa.Column("anonymous_id", sa.String(255), nullable=True),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("total", sa.Numeric(14, 2), nullable=True),
    sa.Column("revenue", sa.Numeric(14, 2), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("ordered_at", UtcDateTime, nullable=False),
    # The ordering visitor belongs to the holdout group (the order event's visitor).
    sa.Column("holdout", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.UniqueConstraint("site_id", "order_id", name="uq_orders_site_order"),
)
sa.Index("ix_orders_user", orders.c.site_id, orders.c.user_id)
# Late recommendation clicks look up the orders of an anonymous visitor.
sa.Index("ix_orders_anonymous", orders.c.site_id, orders.c.anonymous_id)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("order_id", sa.String(255), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String(255), nullable=True),
    sa.Column("sku", sa.String(255), nullable=True),
    sa.Column("name", sa.String(500), nullable=True),
    sa.Column("category", sa.String(500), nullable=True),
    sa.Column("price", sa.Numeric(14, 2), nullable=True),
    sa.Column("quantity", sa.Integer, nullable=False),
)

# An order line credited to the last recommendation click on its item by the same customer within
# the attribution window (tracking.attribution). One row per (site, order, item).
attributions = sa.Table(
    "attributions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("order_id", sa.String(255), nullable=False),
    sa.Column("item_id", sa.String(255), nullable=False),
    sa.Column("rec_id", sa.String(32), nullable=False),
    sa.Column("placement", sa.String(200), nullable=True),
    sa.Column("model_version", sa.String(200), nullable=True),
    sa.Column("source", sa.String(64), nullable=True),
    sa.Column("clicked_at", UtcDateTime, nullable=False),
    sa.Column("ordered_at", UtcDateTime, nullable=False),
    # The item's lines of the order: price x quantity, in the order's currency.
    sa.Column("revenue", sa.Numeric(14, 2), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("holdout", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("site_id", "order_id", "item_id", name="uq_attributions_site_order_item"),
)
sa.Index("ix_attributions_time", attributions.c.site_id, attributions.c.ordered_at)

# The interaction log (tracking.interaction_log): item events and order lines as columnar chunks,
# appended by the ingest worker with the events, read by training.
interaction_chunks = sa.Table(
    "interaction_chunks",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("first_second", sa.Float, nullable=True),  # epoch seconds of the earliest row
    sa.Column("last_second", sa.Float, nullable=True),
    sa.Column("vocabulary", sa.Text, nullable=False),  # JSON: each code column's distinct ids
    sa.Column("codes", sa.LargeBinary, nullable=False),  # int32 (4, rows), little endian
    sa.Column("seconds", sa.LargeBinary, nullable=False),  # float64 (rows,), little endian
)
sa.Index("ix_interaction_chunks_site", interaction_chunks.c.site_id, interaction_chunks.c.id)

rejected_events = sa.Table(
    "rejected_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=True),
    # Site and the event's messageId (or a digest of its raw payload and reason): a redelivered
    # entry or a resent request stores its rejections once (tracking.rejections.rejection_ref).
    sa.Column("source_ref", sa.String(64), nullable=False, unique=True),
    sa.Column("batch_index", sa.Integer, nullable=True),
    sa.Column("field", sa.String(200), nullable=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("raw", sa.Text, nullable=False),  # truncated raw payload
    sa.Column("received_at", UtcDateTime, nullable=False),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("stream_id", sa.String(64), nullable=False, unique=True),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

# Customers who turned personalisation off (accounts.privacy writes it; the recommender reads it:
# they are served popular items and left out of training). A row exists while it is off.
personalisation_opt_outs = sa.Table(
    "personalisation_opt_outs",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("since", UtcDateTime, nullable=False),
)

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
)

# Tables holding data (for tests that empty the store, and for erasure later).
DATA_TABLES = (
    personalisation_opt_outs,
    events,
    customers,
    customer_lookup,
    identities,
    sessions,
    items,
    orders,
    order_lines,
    attributions,
    interaction_chunks,
    rejected_events,
    dead_letters,
    sites,
)
