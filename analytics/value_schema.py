"""Customer value snapshots (issue 14), migrated as analytics version 111; settings as 112.

One row per customer, currency and refresh day (``value_scores``): the scores are dated snapshots,
so a change of segment or a fall of P(alive) is visible between two days. ``value_runs`` keeps
each refresh's fitted parameters, or why a fit was not possible, per site, day and currency.
Money is per currency, never summed across currencies. ``value_settings`` holds each site's
thresholds and VIP rule (analytics.value_settings); a site without a row uses the defaults.
``value_summaries`` holds what the console's charts need of each snapshot (migration 113; its
backtests 121).
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.schema import JSON, UtcDateTime

# Its own metadata, so this module imports nothing of analytics/ (analytics.schema imports it).
metadata = sa.MetaData()
Money = sa.Numeric(16, 2)

value_scores = sa.Table(
    "value_scores",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("revenue", Money, nullable=False),  # net of refunds
    sa.Column("first_order_at", UtcDateTime, nullable=False),
    sa.Column("last_order_at", UtcDateTime, nullable=False),
    # The seed's 1-3 scores (per-site thresholds) and the 1-5 quintiles with the named segment.
    sa.Column("r_seed", sa.SmallInteger, nullable=False),
    sa.Column("f_seed", sa.SmallInteger, nullable=False),
    sa.Column("m_seed", sa.SmallInteger, nullable=False),
    sa.Column("r_score", sa.SmallInteger, nullable=False),
    sa.Column("f_score", sa.SmallInteger, nullable=False),
    sa.Column("m_score", sa.SmallInteger, nullable=False),
    sa.Column("segment", sa.String(32), nullable=False),
    # BG/NBD + Gamma-Gamma; NULL when the currency's customers could not be fitted.
    sa.Column("p_alive", sa.Float, nullable=True),
    sa.Column("purchases_4w", sa.Float, nullable=True),
    sa.Column("purchases_13w", sa.Float, nullable=True),
    sa.Column("purchases_52w", sa.Float, nullable=True),
    sa.Column("expected_spend", sa.Float, nullable=True),
    sa.Column("clv", sa.Float, nullable=True),
    sa.Column("vip", sa.Boolean, nullable=False),
)
sa.Index(
    "ix_value_scores_segment",
    value_scores.c.site_id,
    value_scores.c.day,
    value_scores.c.currency,
    value_scores.c.segment,
)
sa.Index("ix_value_scores_user", value_scores.c.site_id, value_scores.c.user_id)

value_runs = sa.Table(
    "value_runs",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("customers", sa.Integer, nullable=False),
    sa.Column("orders", sa.BigInteger, nullable=False),
    sa.Column("revenue", Money, nullable=False),
    sa.Column("bgnbd", JSON, nullable=True),  # {"r", "alpha", "a", "b", "log_likelihood"}
    sa.Column("gamma_gamma", JSON, nullable=True),  # {"p", "q", "gamma", "log_likelihood"}
    sa.Column("fit_error", sa.Text, nullable=True),  # why there is no fit, in words
    sa.Column("settings", JSON, nullable=False),  # thresholds and VIP rule used
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("computed_at", UtcDateTime, nullable=False),
)


value_settings = sa.Table(
    "value_settings",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("settings", JSON, nullable=False),  # ValueSettings.as_json()
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(254), nullable=True),  # staff email, or None (CLI)
)


# Migration 113: each snapshot's summary (analytics.value_summary), what the console's charts read.
value_summaries = sa.Table(
    "value_summaries",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("customers", sa.Integer, nullable=False),
    sa.Column("vips", sa.Integer, nullable=False),
    sa.Column("vip_revenue_share", sa.Float, nullable=True),  # None: no positive revenue
    sa.Column("cells", JSON, nullable=False),  # 25 x {"r", "f", "customers", "revenue"}
    sa.Column("pareto", JSON, nullable=False),  # share of revenue of the top 5%, 10% ... 100%
    sa.Column("clv_bins", JSON, nullable=True),  # [{"low", "high", "customers"}]; None: no fit
    sa.Column("forecast", JSON, nullable=True),  # [{"weeks", "orders", "revenue"}]; None: no fit
    # Migration 121: the backtests against this snapshot, as the refresh computed them
    # (analytics.forecast.store_backtests); None: not computed (older summaries), read live.
    sa.Column("backtests", JSON, nullable=True),
)


def create(conn: sa.Connection) -> None:
    """Migration 111: the snapshots and the runs (the tables 111 shipped, nothing later)."""
    metadata.create_all(conn, tables=[value_scores, value_runs])


def create_settings(conn: sa.Connection) -> None:
    """Migration 112: per-site value settings."""
    value_settings.create(conn, checkfirst=True)


# Migration 114: saved customer segments (analytics.segments), by name per site.
segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("definition", JSON, nullable=False),  # Definition.as_json()
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("updated_by", sa.String(254), nullable=True),
    sa.UniqueConstraint("site_id", "name", name="uq_segments_site_name"),
)

# Migration 115: each export of a segment, and who was in it (targets) or held back (control).
segment_exports = sa.Table(
    "segment_exports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("segment_id", sa.Integer, nullable=False),
    sa.Column("segment_name", sa.String(100), nullable=False),
    sa.Column("definition", JSON, nullable=False),  # as it was at the export
    sa.Column("snapshot_day", sa.Date, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("topic", sa.String(40), nullable=False),
    sa.Column("control_share", sa.Float, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("targets", sa.Integer, nullable=False),
    sa.Column("controls", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(254), nullable=True),
)
sa.Index("ix_segment_exports_site", segment_exports.c.site_id, segment_exports.c.segment_id)

segment_export_members = sa.Table(
    "segment_export_members",
    metadata,
    sa.Column("export_id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("control", sa.Boolean, nullable=False),
    # The export's site again, so erasure and export find a customer's rows by (site, user id).
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Index("ix_segment_export_members_user", "site_id", "user_id"),
)


def create_segments(conn: sa.Connection) -> None:
    """Migration 114: saved segments."""
    segments.create(conn, checkfirst=True)


def add_backtests(conn: sa.Connection) -> None:
    """Migration 121: the refresh's backtests kept with a snapshot's summary."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("value_summaries")}
    if "backtests" not in columns:  # 113 made it already on a fresh store
        conn.execute(sa.text("ALTER TABLE value_summaries ADD COLUMN backtests JSON"))


def create_segment_exports(conn: sa.Connection) -> None:
    """Migration 115: segment exports and their target/control members."""
    segment_exports.create(conn, checkfirst=True)
    segment_export_members.create(conn, checkfirst=True)
