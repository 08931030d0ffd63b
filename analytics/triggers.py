"""Behaviour-change triggers (issue 14 item 8): rules per site that fire once per customer.

Four kinds of rule:

- ``segment``: the customer enters RFM segment ``segment`` between the site's two newest value
  snapshots (in any currency; a customer absent from the older snapshot enters too);
- ``clv``: the customer's lifetime value in ``currency`` crosses ``threshold`` upward between the
  two newest snapshots (below it before, at or above it now; a customer without a value before
  has not crossed anything);
- ``visits``: ``visits`` or more sessions in the last ``days`` days;
- ``category_views``: ``views`` or more "Product Viewed" events of category ``category`` (the
  category itself or its top level, any case) in the last ``days`` days, and no order of an item
  of that category in those days.

Score rules are evaluated after each refresh, visit rules inside the ingest transaction that
stores the events (analytics.trigger_checks).

A rule fires at most once per customer within its cool-down: :func:`fire` skips a customer whose
last firing of the rule is younger than the cool-down, and the fired log's key (rule, customer,
cool-down window) stops two transactions firing together in the same window.

What a rule does (its actions, at least one): ``webhook``, a signed ``trigger.fired`` to the
rule's own URL or else the site's endpoint, and ``list``, adding the customer to a named campaign
list (analytics.campaign_lists). A form without action fields means the site's webhook, as before
rules had actions. Carrying them out is the caller's ``action`` (analytics imports tracking only):
webapp passes accounts.trigger_actions.act. A rule's own URL is checked against the site's
webhook rules by the ``check_url`` that accounts.trigger_actions.create_rule passes in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from analytics import campaign_lists, rfm
from analytics.trigger_schema import campaign_lists as lists_table
from analytics.trigger_schema import trigger_fired, trigger_rules
from tracking.db import aware, insert_ignore
from tracking.errors import FieldError

KINDS = {
    "segment": "enters RFM segment",
    "clv": "lifetime value crosses a threshold",
    "visits": "visits in a number of days",
    "category_views": "views of a category without buying",
}
SCORE_KINDS = ("segment", "clv")
EVENT_KINDS = ("visits", "category_views")
MAX_NAME = 100
MAX_DAYS = 366
MAX_COUNT = 10_000
MAX_COOLDOWN_HOURS = 24 * 366
DEFAULT_COOLDOWN_HOURS = 24 * 30
VIEWED = "Product Viewed"
ACTIONS = {"webhook": "send a signed webhook", "list": "add the customer to a campaign list"}
MAX_URL = 2000


class InvalidTrigger(FieldError):
    """A rule that cannot be saved; ``field`` names the input."""


@dataclass(frozen=True)
class Rule:
    """One trigger rule."""

    rule_id: int
    site_id: int
    name: str
    kind: str
    params: dict[str, Any]
    cooldown_hours: int
    enabled: bool
    created_at: datetime
    created_by: str | None
    webhook: bool = True
    webhook_url: str | None = None  # None: the site's endpoint
    list_id: int | None = None
    list_name: str | None = None

    def describe_actions(self) -> list[str]:
        """What the rule does, in words, one entry per action."""
        done = []
        if self.webhook:
            done.append(f"webhook to {self.webhook_url or 'the site endpoint'}")
        if self.list_id is not None:
            done.append(f"add to the list {self.list_name}")
        return done

    def describe(self) -> str:
        """The rule in words, for the console and the webhook."""
        p = self.params
        if self.kind == "segment":
            return f"enters the segment {p['segment']}"
        if self.kind == "clv":
            return f"lifetime value crosses {p['threshold']:g} {p['currency']} upward"
        if self.kind == "visits":
            return f"{p['visits']} visits or more in {p['days']} days"
        return f"views {p['category']} {p['views']} times or more in {p['days']} days, no order"


@dataclass(frozen=True)
class Firing:
    """A rule met by a customer, with the values that met it."""

    rule: Rule
    user_id: str
    values: dict[str, Any]


# (conn, firing) -> the webhook delivery id, or None when nothing was queued.
Action = Callable[[sa.Connection, Firing], int | None]


@dataclass(frozen=True)
class Draft:
    """A checked rule, not saved yet (the URL still to be checked against the site's rules)."""

    name: str
    kind: str
    params: dict[str, Any]
    cooldown_hours: int
    webhook: bool
    webhook_url: str | None
    list_name: str | None


def _whole(form: dict, field: str, low: int, high: int, what: str) -> int:
    raw = form.get(field)
    text = str(raw).strip() if raw is not None else ""
    if not text:
        raise InvalidTrigger(field, f"enter {what}")
    try:
        number = int(text)
    except ValueError:
        raise InvalidTrigger(field, f"{what} must be a whole number") from None
    if number < low or number > high:
        raise InvalidTrigger(field, f"{what} must be between {low} and {high}")
    return number


def _actions(form: dict[str, Any]) -> tuple[bool, str | None, str | None]:
    """(webhook, webhook_url, list_name): only the chosen actions' fields are read."""
    raw = form.get("actions")
    if raw is None:
        chosen = ["webhook"]  # no action fields: the site's webhook
    else:
        chosen = [str(a).strip() for a in ([raw] if isinstance(raw, str) else raw)]
    for action in chosen:
        if action not in ACTIONS:
            shown = action[:40] or "(blank)"
            raise InvalidTrigger("actions", f"unknown action {shown}; one of {', '.join(ACTIONS)}")
    if not chosen:
        raise InvalidTrigger("actions", "choose what the rule does: a webhook, a list or both")
    url = None
    if "webhook" in chosen:
        url = str(form.get("webhook_url") or "").strip() or None
        if url is not None and len(url) > MAX_URL:
            raise InvalidTrigger("webhook_url", f"the URL is longer than {MAX_URL} characters")
    list_name = None
    if "list" in chosen:
        try:
            list_name = campaign_lists.check_name(form.get("list_name"))
        except campaign_lists.InvalidList as e:
            raise InvalidTrigger("list_name", e.reason) from None
    return "webhook" in chosen, url, list_name


def validate(form: dict[str, Any]) -> Draft:
    """The rule a form or JSON describes, or InvalidTrigger naming the input that is wrong.
    Only the kind's own fields, and the chosen actions', are read."""
    name = str(form.get("name") or "").strip()
    if not name:
        raise InvalidTrigger("name", "give the rule a name")
    if len(name) > MAX_NAME:
        raise InvalidTrigger("name", f"the name is longer than {MAX_NAME} characters")
    kind = str(form.get("kind") or "").strip()
    if kind not in KINDS:
        raise InvalidTrigger("kind", f"unknown kind; one of {', '.join(KINDS)}")
    params: dict[str, Any]
    if kind == "segment":
        segment = str(form.get("segment") or "").strip()
        if segment not in rfm.SEGMENT_CELLS:
            raise InvalidTrigger(
                "segment", f"unknown segment; one of {', '.join(rfm.SEGMENT_CELLS)}"
            )
        params = {"segment": segment}
    elif kind == "clv":
        currency = str(form.get("currency") or "").strip().upper()
        if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
            raise InvalidTrigger("currency", "enter a three-letter currency code such as EUR")
        raw = str(form.get("threshold") or "").strip()
        try:
            threshold = float(raw)
        except ValueError:
            raise InvalidTrigger("threshold", "enter a number (the lifetime value)") from None
        if not math.isfinite(threshold) or threshold < 0:
            raise InvalidTrigger("threshold", "the threshold must be a number of 0 or more")
        params = {"currency": currency, "threshold": threshold}
    elif kind == "visits":
        params = {
            "visits": _whole(form, "visits", 1, MAX_COUNT, "the number of visits"),
            "days": _whole(form, "days", 1, MAX_DAYS, "the number of days"),
        }
    else:
        category = str(form.get("category") or "").strip()
        if not category:
            raise InvalidTrigger("category", "enter the category")
        if len(category) > 500:
            raise InvalidTrigger("category", "the category is longer than 500 characters")
        params = {
            "category": category,
            "views": _whole(form, "views", 1, MAX_COUNT, "the number of views"),
            "days": _whole(form, "days", 1, MAX_DAYS, "the number of days"),
        }
    raw_cooldown = form.get("cooldown_hours")
    if raw_cooldown is None or str(raw_cooldown).strip() == "":
        cooldown = DEFAULT_COOLDOWN_HOURS
    else:
        cooldown = _whole(form, "cooldown_hours", 1, MAX_COOLDOWN_HOURS, "the cool-down in hours")
    return Draft(name, kind, params, cooldown, *_actions(form))


def _rule(row) -> Rule:
    return Rule(
        rule_id=int(row.rule_id),
        site_id=row.site_id,
        name=row.name,
        kind=row.kind,
        params=dict(row.params),
        cooldown_hours=row.cooldown_hours,
        enabled=row.enabled,
        created_at=aware(row.created_at),
        created_by=row.created_by,
        webhook=row.webhook,
        webhook_url=row.webhook_url,
        list_id=int(row.list_id) if row.list_id is not None else None,
        list_name=row.list_name,
    )


def _select():
    joined = trigger_rules.outerjoin(lists_table, lists_table.c.list_id == trigger_rules.c.list_id)
    return sa.select(trigger_rules, lists_table.c.name.label("list_name")).select_from(joined)


def create_rule(
    conn: sa.Connection,
    site_id: int,
    form: dict[str, Any],
    created_by: str | None = None,
    check_url: Callable[[str], str] | None = None,
) -> Rule:
    """Validate and save a rule (InvalidTrigger when it cannot be: nothing is saved).

    A rule's own webhook URL needs ``check_url`` (the URL as it may be used, or InvalidTrigger
    naming ``webhook_url``); a rule that adds to a list creates the list when it is new.
    """
    draft = validate(form)
    url = draft.webhook_url
    if url is not None:
        if check_url is None:
            raise InvalidTrigger("webhook_url", "a rule's own URL must be checked when saved")
        url = check_url(url)
    list_id = None
    if draft.list_name is not None:
        list_id = campaign_lists.find_or_create(conn, site_id, draft.list_name, created_by)
    inserted = conn.execute(
        trigger_rules.insert().values(
            site_id=site_id,
            name=draft.name,
            kind=draft.kind,
            params=draft.params,
            cooldown_hours=draft.cooldown_hours,
            enabled=True,
            created_at=datetime.now(UTC),
            created_by=created_by,
            webhook=draft.webhook,
            webhook_url=url,
            list_id=list_id,
        )
    )
    return get_rule(conn, site_id, int(inserted.inserted_primary_key[0]))


def get_rule(conn: sa.Connection, site_id: int, rule_id: int) -> Rule | None:
    """The site's rule ``rule_id``, or None (another site's rule is None too)."""
    row = conn.execute(
        _select().where(trigger_rules.c.site_id == site_id, trigger_rules.c.rule_id == rule_id)
    ).first()
    return _rule(row) if row else None


def rules(conn: sa.Connection, site_id: int, *, enabled_only: bool = False, kinds=None):
    """The site's rules, oldest first."""
    query = _select().where(trigger_rules.c.site_id == site_id)
    if enabled_only:
        query = query.where(trigger_rules.c.enabled.is_(True))
    if kinds:
        query = query.where(trigger_rules.c.kind.in_(kinds))
    return [_rule(r) for r in conn.execute(query.order_by(trigger_rules.c.rule_id))]


def disable_rule(conn: sa.Connection, site_id: int, rule_id: int) -> Rule | None:
    """Stop a rule firing (it and its log stay); None when the site has no such rule."""
    conn.execute(
        trigger_rules.update()
        .where(trigger_rules.c.site_id == site_id, trigger_rules.c.rule_id == rule_id)
        .values(enabled=False, disabled_at=datetime.now(UTC))
    )
    return get_rule(conn, site_id, rule_id)


def enable_rule(conn: sa.Connection, site_id: int, rule_id: int) -> Rule | None:
    """Let a disabled rule fire again (each customer's cool-down still counts from their last
    firing); None when the site has no such rule."""
    conn.execute(
        trigger_rules.update()
        .where(trigger_rules.c.site_id == site_id, trigger_rules.c.rule_id == rule_id)
        .values(enabled=True, disabled_at=None)
    )
    return get_rule(conn, site_id, rule_id)


def fired_counts(conn: sa.Connection, site_id: int) -> dict[int, int]:
    """Firings so far per rule of the site."""
    query = (
        sa.select(trigger_fired.c.rule_id, sa.func.count())
        .where(trigger_fired.c.site_id == site_id)
        .group_by(trigger_fired.c.rule_id)
    )
    return {int(rule_id): n for rule_id, n in conn.execute(query)}


def recent_firings(conn: sa.Connection, site_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The newest firings of the site's rules."""
    query = (
        sa.select(trigger_fired, trigger_rules.c.name)
        .join(trigger_rules, trigger_rules.c.rule_id == trigger_fired.c.rule_id)
        .where(trigger_fired.c.site_id == site_id)
        .order_by(trigger_fired.c.fired_at.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# -- firing -----------------------------------------------------------------------------------


def fire(conn: sa.Connection, firing: Firing, action: Action | None, now: datetime) -> bool:
    """Log ``firing`` and run ``action`` unless the rule fired for the customer within its
    cool-down (or a concurrent transaction logs it first). True when it fired."""
    rule = firing.rule
    cooldown = timedelta(hours=rule.cooldown_hours)
    recent = conn.execute(
        sa.select(trigger_fired.c.fired_at)
        .where(
            trigger_fired.c.rule_id == rule.rule_id,
            trigger_fired.c.user_id == firing.user_id,
            trigger_fired.c.fired_at > now - cooldown,
        )
        .limit(1)
    ).first()
    if recent is not None:
        return False
    window = int(now.timestamp() // cooldown.total_seconds())
    stored = conn.execute(
        insert_ignore(conn.engine, trigger_fired).returning(trigger_fired.c.rule_id),
        [
            {
                "rule_id": rule.rule_id,
                "user_id": firing.user_id,
                "window": window,
                "site_id": rule.site_id,
                "fired_at": now,
                "values": firing.values,
            }
        ],
    ).first()
    if stored is None:
        return False
    delivery_id = action(conn, firing) if action is not None else None
    if delivery_id is not None:
        conn.execute(
            trigger_fired.update()
            .where(
                trigger_fired.c.rule_id == rule.rule_id,
                trigger_fired.c.user_id == firing.user_id,
                trigger_fired.c.window == window,
            )
            .values(delivery_id=delivery_id)
        )
    return True
