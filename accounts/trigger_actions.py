"""What a trigger rule does when it fires (analytics.triggers): a signed webhook and/or a list.

analytics/ imports tracking only, so the actions live here and webapp hands :func:`act` to
analytics.triggers. Both run in the transaction that logs the firing:

- the webhook goes through accounts.webhooks.emit: the same signature (the site's secret),
  retries and delivery log as every other webhook. A rule with its own URL gets a delivery that
  carries that URL (``webhook_deliveries.target_url``): checked when the rule is saved by the
  same rules as the site's endpoint (http(s), no credentials, no private or loopback address
  unless the site's endpoint allows them for testing) and against DNS again at each attempt. The
  site must have an endpoint (its secret signs), enabled or not; a failing rule URL is given up
  after the last attempt and never counts toward disabling the site's endpoint, so the shop's
  customer events keep flowing (accounts.webhook_delivery);
- the list action puts the customer on the rule's campaign list once (analytics.campaign_lists).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from accounts.webhooks import InvalidWebhook, check_url, emit, get_endpoint
from analytics import campaign_lists, triggers
from analytics.triggers import Firing, InvalidTrigger, Rule


def send_webhook(conn: sa.Connection, firing: Firing) -> int | None:
    """Queue ``trigger.fired`` for the rule's URL or the site's endpoint (when the rule sends a
    webhook); the delivery id, or None when nothing was queued."""
    rule = firing.rule
    if not rule.webhook:
        return None
    data: dict[str, Any] = {
        "rule_id": rule.rule_id,
        "rule_name": rule.name,
        "rule": rule.describe(),
        "kind": rule.kind,
        "user_id": firing.user_id,
        "values": firing.values,
    }
    if rule.list_name is not None:
        data["campaign_list"] = rule.list_name
    return emit(
        conn,
        site_id=rule.site_id,
        event_type="trigger.fired",
        data=data,
        target_url=rule.webhook_url,
    )


def act(conn: sa.Connection, firing: Firing) -> int | None:
    """Everything the rule does: the customer onto its list (once), then its webhook; the
    delivery id, or None when no webhook was queued."""
    rule = firing.rule
    if rule.list_id is not None:
        campaign_lists.add(conn, rule.site_id, rule.list_id, firing.user_id, rule.rule_id)
    return send_webhook(conn, firing)


def create_rule(
    conn: sa.Connection, site_id: int, form: dict[str, Any], created_by: str | None = None
) -> Rule:
    """analytics.triggers.create_rule with a rule's own URL checked like the site's endpoint:
    InvalidTrigger naming ``webhook_url`` when it may not be used (nothing is saved)."""
    endpoint = get_endpoint(conn, site_id)

    def check(url: str) -> str:
        allow_private = endpoint is not None and endpoint.allow_private
        try:
            url = check_url(url, allow_private)
        except InvalidWebhook as e:
            raise InvalidTrigger("webhook_url", e.reason) from e
        if endpoint is None:
            raise InvalidTrigger(
                "webhook_url",
                "an owner must set the site's webhook endpoint first (Webhooks page): its "
                "secret signs this URL's deliveries too",
            )
        return url

    return triggers.create_rule(conn, site_id, form, created_by, check_url=check)
