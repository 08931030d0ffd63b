"""Behaviour-change triggers (issue 14 item 8): rules, what fired, and the campaign lists they fill.

The rules are analytics migration 116, the log of what fired 117, the named campaign lists and
their members 118, and what a rule does (its actions) 119.

A rule belongs to one site; ``kind`` says what it watches and ``params`` its settings
(analytics.triggers validates both). What it does when it fires: ``webhook`` (a signed
``trigger.fired``, to ``webhook_url`` when the rule has its own, else to the site's endpoint)
and/or add the customer to the campaign list ``list_id``; at least one of the two.
``trigger_fired`` holds one row per rule, customer and cool-down window: the primary key is what
makes "at most once per customer per rule within the cool-down" hold when two transactions fire
the same rule for the same customer at once.
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
    # What it does (migration 119; rules saved before it send the site's webhook).
    sa.Column("webhook", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("webhook_url", sa.String(2000), nullable=True),  # None: the site's endpoint
    sa.Column("list_id", sa.BigInteger, nullable=True),  # campaign_lists; None: no list
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

# Named campaign lists of a site (migration 118): customers put on them by trigger rules.
campaign_lists = sa.Table(
    "campaign_lists",
    metadata,
    sa.Column("list_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(254), nullable=True),  # staff email; None from code
    sa.UniqueConstraint("site_id", "name", name="uq_campaign_lists_name"),
)

# One row per list and customer: added once (the key), with when and by which rule.
campaign_list_members = sa.Table(
    "campaign_list_members",
    metadata,
    sa.Column("list_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("site_id", sa.Integer, nullable=False),
    sa.Column("added_at", UtcDateTime, nullable=False),
    sa.Column("rule_id", sa.BigInteger, nullable=True),  # None: added by code, not a rule
)
sa.Index("ix_campaign_list_members_user", campaign_list_members.c.site_id, "user_id")
sa.Index("ix_campaign_list_members_added", "list_id", "added_at")


def create_rules(conn: sa.Connection) -> None:
    """Migration 116: the rules."""
    trigger_rules.create(conn, checkfirst=True)


def create_fired(conn: sa.Connection) -> None:
    """Migration 117: the fired log."""
    trigger_fired.create(conn, checkfirst=True)


def create_lists(conn: sa.Connection) -> None:
    """Migration 118: the campaign lists and their members."""
    campaign_lists.create(conn, checkfirst=True)
    campaign_list_members.create(conn, checkfirst=True)


def add_rule_actions(conn: sa.Connection) -> None:
    """Migration 119: a rule's actions (116 creates them on a fresh store)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns("trigger_rules")}
    for name in ("webhook", "webhook_url", "list_id"):
        if name not in present:
            spec = sa.schema.CreateColumn(trigger_rules.c[name]).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE trigger_rules ADD COLUMN {spec}"))
