"""Campaign lists (issue 14 item 8): named lists of a site's customers, filled by trigger rules.

A list is created by name when a rule that adds to it is saved (analytics.triggers), and a rule
that fires adds the customer (accounts.trigger_actions). Adding is idempotent per list and
customer: the first addition stays, with when and by which rule; a later one changes nothing.
Members are personal data: accounts.personal_data registers them (erasure deletes them, the data
export includes them). The consented members' CSV is accounts.campaign_exports (consent lives in
accounts/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from analytics.trigger_schema import campaign_list_members, campaign_lists, trigger_rules
from tracking.db import aware, insert_ignore
from tracking.errors import FieldError

MAX_NAME = 100
PAGE_SIZE = 50


class InvalidList(FieldError):
    """A list setting that cannot be accepted; ``field`` names the input."""


@dataclass(frozen=True)
class CampaignList:
    """One named list and how many customers are on it."""

    list_id: int
    site_id: int
    name: str
    created_at: datetime
    created_by: str | None
    members: int


@dataclass(frozen=True)
class Member:
    """A customer on a list: when and by which rule they were added."""

    user_id: str
    added_at: datetime
    rule_id: int | None
    rule_name: str | None


def check_name(raw: object, field: str = "list_name") -> str:
    """The list name, stripped, or InvalidList naming ``field``."""
    name = raw.strip() if isinstance(raw, str) else ""
    if not name:
        raise InvalidList(field, "enter the campaign list's name")
    if len(name) > MAX_NAME:
        raise InvalidList(field, f"the list name is longer than {MAX_NAME} characters")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        raise InvalidList(field, "the list name may not hold control characters")
    return name


def find_or_create(
    conn: sa.Connection, site_id: int, name: str, created_by: str | None = None
) -> int:
    """The id of the site's list ``name`` (checked with :func:`check_name`), created if new."""
    name = check_name(name)
    row = {
        "site_id": site_id,
        "name": name,
        "created_at": datetime.now(UTC),
        "created_by": created_by,
    }
    conn.execute(insert_ignore(conn.engine, campaign_lists), [row])
    return int(
        conn.execute(
            sa.select(campaign_lists.c.list_id).where(
                campaign_lists.c.site_id == site_id, campaign_lists.c.name == name
            )
        ).scalar_one()
    )


def add(
    conn: sa.Connection,
    site_id: int,
    list_id: int,
    user_id: str,
    rule_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Put the customer on the list unless they are on it already; True when added now."""
    stored = conn.execute(
        insert_ignore(conn.engine, campaign_list_members).returning(
            campaign_list_members.c.user_id
        ),
        [
            {
                "list_id": list_id,
                "user_id": user_id,
                "site_id": site_id,
                "added_at": now or datetime.now(UTC),
                "rule_id": rule_id,
            }
        ],
    ).first()
    return stored is not None


def _lists_query(site_id: int):
    m = campaign_list_members
    counts = (
        sa.select(m.c.list_id, sa.func.count().label("members"))
        .where(m.c.site_id == site_id)
        .group_by(m.c.list_id)
        .subquery()
    )
    return (
        sa.select(campaign_lists, sa.func.coalesce(counts.c.members, 0).label("members"))
        .select_from(campaign_lists.outerjoin(counts, counts.c.list_id == campaign_lists.c.list_id))
        .where(campaign_lists.c.site_id == site_id)
    )


def _list(row) -> CampaignList:
    return CampaignList(
        list_id=int(row.list_id),
        site_id=row.site_id,
        name=row.name,
        created_at=aware(row.created_at),
        created_by=row.created_by,
        members=int(row.members),
    )


def lists(conn: sa.Connection, site_id: int) -> list[CampaignList]:
    """The site's lists by name, with their member counts."""
    query = _lists_query(site_id).order_by(campaign_lists.c.name)
    return [_list(r) for r in conn.execute(query)]


def get_list(conn: sa.Connection, site_id: int, list_id: int) -> CampaignList | None:
    """The site's list ``list_id``, or None (another site's list is None too)."""
    row = conn.execute(_lists_query(site_id).where(campaign_lists.c.list_id == list_id)).first()
    return _list(row) if row else None


def members(
    conn: sa.Connection, list_id: int, after: str | None = None, limit: int | None = PAGE_SIZE
) -> list[Member]:
    """Up to ``limit`` (None: all) members by user id, those after ``after`` (the previous
    page's last)."""
    m = campaign_list_members
    query = (
        sa.select(m.c.user_id, m.c.added_at, m.c.rule_id, trigger_rules.c.name)
        .select_from(m.outerjoin(trigger_rules, trigger_rules.c.rule_id == m.c.rule_id))
        .where(m.c.list_id == list_id)
        .order_by(m.c.user_id)
    )
    if limit is not None:
        query = query.limit(limit)
    if after is not None:
        query = query.where(m.c.user_id > after)
    return [
        Member(user_id, aware(added_at), rule_id, name)
        for user_id, added_at, rule_id, name in conn.execute(query)
    ]


def member_ids(conn: sa.Connection, list_id: int) -> list[str]:
    """Every member's user id, in order."""
    m = campaign_list_members
    query = sa.select(m.c.user_id).where(m.c.list_id == list_id).order_by(m.c.user_id)
    return list(conn.execute(query).scalars())
