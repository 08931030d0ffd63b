"""The tables analytics/ owns (daily rollups), migrated from version 101.

Reports read these, never ``events`` (DESIGN.md, "Marketers' console"). Every rollup is keyed by
site and UTC day; text dimensions use ``''`` for "none" so they can sit in primary keys. Money is
per currency: a currency is part of the key, never summed with another. The ingest worker and the
scheduled job keep them up to date incrementally (:mod:`analytics.rollups`); ``rebuild`` recomputes
them from the raw tables and must give the same rows.

Changes go through a new entry at the end of :data:`MIGRATIONS`, never by editing a shipped table.
"""

from __future__ import annotations

import sqlalchemy as sa

from analytics import trigger_schema, value_schema, value_summary
from tracking.migrations import Migration

metadata = sa.MetaData()
Money = sa.Numeric(16, 2)


def _key(*columns: sa.Column) -> list[sa.Column]:
    return [
        sa.Column("site_id", sa.Integer, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        *columns,
    ]


def _dim(name: str, length: int = 200) -> sa.Column:
    return sa.Column(name, sa.String(length), primary_key=True, default="")


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=False, default=0)


# Recommendations per day, placement, model version, source and group (holdout: popularity only).
# served: answers the API gave; impressions/clicks: "Recommendation Shown"/"Clicked" events;
# adds_after_click: "Product Added" of a clicked item by the same visitor within the
# attribution window.
rollup_recs = sa.Table(
    "rollup_recs",
    metadata,
    *_key(
        _dim("placement"),
        _dim("model_version"),
        _dim("source", 64),
        sa.Column("holdout", sa.Boolean, primary_key=True, default=False),
        _count("served"),
        _count("impressions"),
        _count("clicks"),
        _count("adds_after_click"),
    ),
)

# Attributed orders and revenue (tracking.attribution's rows), per currency, same dimensions.
rollup_rec_revenue = sa.Table(
    "rollup_rec_revenue",
    metadata,
    *_key(
        _dim("placement"),
        _dim("model_version"),
        _dim("source", 64),
        sa.Column("holdout", sa.Boolean, primary_key=True, default=False),
        _dim("currency", 3),
        _count("orders"),
        sa.Column("revenue", Money, nullable=False, default=0),
    ),
)

# Items shown in and clicked from recommendations (top items, catalogue coverage).
rollup_rec_items = sa.Table(
    "rollup_rec_items",
    metadata,
    *_key(
        _dim("placement"),
        _dim("item_id", 255),
        _count("impressions"),
        _count("clicks"),
    ),
)

# Sales per day and currency. Buyers are user ids, else anonymous ids; a new buyer's first order
# ever falls on this day, a returning buyer had ordered before; each buyer counts once per day.
rollup_sales = sa.Table(
    "rollup_sales",
    metadata,
    *_key(
        _dim("currency", 3),
        _count("orders"),
        sa.Column("revenue", Money, nullable=False, default=0),
        _count("units"),
        _count("new_buyers"),
        _count("returning_buyers"),
    ),
)

# Sales per day, item and currency, with the item's category as ordered (drill-down by prefix).
rollup_item_sales = sa.Table(
    "rollup_item_sales",
    metadata,
    *_key(
        _dim("item_id", 255),
        _dim("currency", 3),
        sa.Column("category", sa.String(500), nullable=False, default=""),
        _count("orders"),
        _count("units"),
        sa.Column("revenue", Money, nullable=False, default=0),
    ),
)

# The funnel per session, by the day the session started: sessions that reached each step in
# order (Product Viewed -> Product Added -> Checkout Started -> Order Completed). category ''
# counts every session; a top-level category counts sessions whose steps involved it.
rollup_funnel = sa.Table(
    "rollup_funnel",
    metadata,
    *_key(
        _dim("category", 500),
        _count("viewed"),
        _count("added"),
        _count("checkout"),
        _count("ordered"),
    ),
)

# Each session's funnel steps, so increments are counted once: one row per session (migration
# 120; it had one per session and category, four times the rows the ingest hook upserts).
funnel_sessions = sa.Table(
    "funnel_sessions",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("session_id", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date, nullable=False),  # the day the session started
    # Of every category together: the furthest step whose predecessors were all seen (1 viewed
    # .. 4 ordered; 0 before a product view), and the steps seen as bits (migration 102: 1
    # viewed, 2 added, 4 checkout, 8 ordered), whatever their order of arrival.
    sa.Column("step", sa.SmallInteger, nullable=False),
    sa.Column("steps", sa.SmallInteger, nullable=False, default=0, server_default="0"),
    # Each top-level category's step bits, as a JSON object with sorted keys
    # (analytics.rollups_funnel.categories_text): '{"Music":3}'.
    sa.Column("categories", sa.Text, nullable=False, default="{}", server_default="{}"),
)
# Migration 113: the console's prospects read a site's recent sessions by day, not all of them.
ix_funnel_sessions_day = sa.Index(
    "ix_funnel_sessions_day",
    funnel_sessions.c.site_id,
    funnel_sessions.c.day,
)

# Visitors per day with their group, orders and revenue: the per-visitor basis of lift.
# visitor_id is the holdout identity (tracking.holdout: anonymous id, else user id).
rollup_visitors = sa.Table(
    "rollup_visitors",
    metadata,
    *_key(
        _dim("visitor_id", 255),
        sa.Column("holdout", sa.Boolean, nullable=False, default=False),
        _count("events"),
        _count("orders"),
    ),
)
rollup_visitor_revenue = sa.Table(
    "rollup_visitor_revenue",
    metadata,
    *_key(
        _dim("visitor_id", 255),
        _dim("currency", 3),
        sa.Column("revenue", Money, nullable=False, default=0),
    ),
)

# Where the scheduled job left off (attribution ids, served-counter days), per site and source.
rollup_marks = sa.Table(
    "rollup_marks",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


# What rollup_rec_revenue holds of each attribution row (migration 102), so a row that
# tracking.attribution later credits to another click moves its revenue exactly once.
rollup_attributions = sa.Table(
    "rollup_attributions",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("order_id", sa.String(255), primary_key=True),
    sa.Column("item_id", sa.String(255), primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("placement", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("holdout", sa.Boolean, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("revenue", Money, nullable=False),
)


# The lift of the console's standard ranges (7 / 30 / 90 days ending ``end_day``), computed ahead
# by the scheduler (analytics.lift_archive, migration 103): analytics.lift's answer as JSON, for
# the configured holdout share, with the time its computation started.
lift_archive = sa.Table(
    "lift_archive",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("start_day", sa.Date, primary_key=True),
    sa.Column("end_day", sa.Date, primary_key=True),
    sa.Column("holdout_share", sa.Float, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
)


def _value_pages(conn: sa.Connection) -> None:
    # 101 creates the index on a fresh store (it is part of the table's metadata).
    ix_funnel_sessions_day.create(conn, checkfirst=True)
    value_schema.value_summaries.create(conn, checkfirst=True)
    value_summary.backfill(conn)


def _initial(conn: sa.Connection) -> None:
    metadata.create_all(conn)


def _attribution_mirror(conn: sa.Connection) -> None:
    # 101 creates the current definitions, so a fresh store has these already.
    rollup_attributions.create(conn, checkfirst=True)
    columns = {c["name"] for c in sa.inspect(conn).get_columns("funnel_sessions")}
    if "steps" not in columns:
        conn.execute(
            sa.text("ALTER TABLE funnel_sessions ADD COLUMN steps SMALLINT NOT NULL DEFAULT 0")
        )


def _funnel_per_session(conn: sa.Connection) -> None:
    """Migration 120: funnel_sessions from a row per session and category to one per session."""
    # 101 creates the current definitions, so a fresh store has it already.
    if "category" not in {c["name"] for c in sa.inspect(conn).get_columns("funnel_sessions")}:
        return
    from analytics.rollups_rebuild import convert_funnel_sessions

    conn.execute(sa.text("DROP INDEX IF EXISTS ix_funnel_sessions_day"))
    conn.execute(sa.text("ALTER TABLE funnel_sessions RENAME TO funnel_sessions_102"))
    if conn.dialect.name == "postgresql":  # index names share the tables' namespace there
        conn.execute(sa.text("ALTER INDEX funnel_sessions_pkey RENAME TO funnel_sessions_102_pkey"))
    funnel_sessions.create(conn)
    convert_funnel_sessions(conn, "funnel_sessions_102")
    conn.execute(sa.text("DROP TABLE funnel_sessions_102"))
    if conn.dialect.name == "postgresql":
        # A new table has no statistics until autovacuum comes by: planned on none, the churn
        # page's prospects sorted a month of sessions, 0.47 s a call at 10M events, not 0.16.
        conn.execute(sa.text("ANALYZE funnel_sessions"))


# The rollups the ingest worker adds to (migration 122). Their rows are updated all day (every
# batch adds to today's counters), so on PostgreSQL their pages keep room for a new version of a
# row beside the old: the update is then "heap-only", with no new index entry. Upserts of rows
# already there took 4.3 ms instead of 5.7 per 900 rows (rollup_rec_items, fillfactor 70
# against the default 100); new rows cost the same.
UPDATED_ALL_DAY = (
    "rollup_recs",
    "rollup_rec_revenue",
    "rollup_rec_items",
    "rollup_sales",
    "rollup_item_sales",
    "rollup_funnel",
    "funnel_sessions",
    "rollup_visitors",
    "rollup_visitor_revenue",
)


def _room_for_updates(conn: sa.Connection) -> None:
    if conn.dialect.name != "postgresql":  # SQLite has no such setting
        return
    for name in UPDATED_ALL_DAY:
        conn.execute(sa.text(f"ALTER TABLE {name} SET (fillfactor = 70)"))


def _lift_archive(conn: sa.Connection) -> None:
    # 101 creates the current definitions, so a fresh store has it already.
    lift_archive.create(conn, checkfirst=True)


MIGRATIONS: list[Migration] = [
    (101, "analytics: daily rollups", _initial),
    (102, "analytics: funnel steps as bits, the attribution mirror", _attribution_mirror),
    (103, "analytics: the lift of the standard ranges, computed ahead", _lift_archive),
    (111, "analytics: customer value snapshots", value_schema.create),
    (112, "analytics: per-site customer value settings", value_schema.create_settings),
    (113, "analytics: funnel sessions by day, customer value summaries", _value_pages),
    (114, "analytics: saved customer segments", value_schema.create_segments),
    (
        115,
        "analytics: segment exports with targets and control",
        value_schema.create_segment_exports,
    ),
    (116, "analytics: behaviour-change trigger rules", trigger_schema.create_rules),
    (117, "analytics: the triggers' fired log", trigger_schema.create_fired),
    (118, "analytics: campaign lists filled by triggers", trigger_schema.create_lists),
    (119, "analytics: a trigger rule's actions", trigger_schema.add_rule_actions),
    (120, "analytics: one funnel_sessions row per session", _funnel_per_session),
    (121, "analytics: backtests kept with a snapshot's summary", value_schema.add_backtests),
    (122, "analytics: room on the rollups' pages for their updates", _room_for_updates),
]

# Tables holding data (for tests that empty the store).
DATA_TABLES: tuple[sa.Table, ...] = (
    *metadata.sorted_tables,
    *value_schema.metadata.sorted_tables,  # customer value snapshots
    *trigger_schema.metadata.sorted_tables,  # trigger rules and what they fired
)
