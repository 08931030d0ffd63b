"""Behaviour-change triggers (issue 14 item 8): the rules (analytics migration 116) and the log
of what fired (migration 117).

A rule belongs to one site; ``kind`` says what it watches and ``params`` its settings
(analytics.triggers validates both). ``trigger_fired`` holds one row per rule, customer and
cool-down window: the primary key is what makes "at most once per customer per rule within the
cool-down" hold when two transactions fire the same rule for the same customer at once.
"""

from __future__ import annotations

import sqlalchemy as sa

from tracking.schema import JSON, UtcDateTime

# Its own metadata, like analytics.value_schema (analytics.schema imports it).
metadata = sa.MetaData()

trigger_rules = sa.Table(
    "trigger_rules",
    metadata,
    sa.Column("rule_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    # "segment" | "clv" | "visits" | "category_views"
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("params", JSON, nullable=False),
    sa.Column("cooldown_hours", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(254), nullable=True),  # staff email; None from code
    sa.Column("disabled_at", UtcDateTime, nullable=True),
)
sa.Index("ix_trigger_rules_site", trigger_rules.c.site_id, trigger_rules.c.enabled)

trigger_fired = sa.Table(
    "trigger_fired",
    metadata,
    sa.Column("rule_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    # floor(fired_at in seconds since 1970 / the rule's cool-down in seconds)
    sa.Column("window", sa.BigInteger, primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("fired_at", UtcDateTime, nullable=False),
    sa.Column("values", JSON, nullable=False),  # what crossed: before and after
    sa.Column("delivery_id", sa.BigInteger, nullable=True),  # the webhook queued, if any
)
sa.Index("ix_trigger_fired_user", trigger_fired.c.site_id, trigger_fired.c.user_id)
sa.Index("ix_trigger_fired_time", trigger_fired.c.rule_id, trigger_fired.c.fired_at)


def create_rules(conn: sa.Connection) -> None:
    """Migration 116: the rules."""
    trigger_rules.create(conn, checkfirst=True)


def create_fired(conn: sa.Connection) -> None:
    """Migration 117: the fired log."""
    trigger_fired.create(conn, checkfirst=True)
