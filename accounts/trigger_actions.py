"""What a trigger rule does when it fires (analytics.triggers): a signed ``trigger.fired`` webhook.

analytics/ imports tracking only, so the action lives here and webapp hands it to
analytics.triggers. The event goes through accounts.webhooks.emit: the site's endpoint, the same
signature, retries and delivery log as every other webhook, queued in the transaction that logs
the firing.
"""

from __future__ import annotations

import sqlalchemy as sa

from accounts.webhooks import emit
from analytics.triggers import Firing


def send_webhook(conn: sa.Connection, firing: Firing) -> int | None:
    """Queue ``trigger.fired`` for the site's endpoint; the delivery id, or None without one."""
    rule = firing.rule
    return emit(
        conn,
        site_id=rule.site_id,
        event_type="trigger.fired",
        data={
            "rule_id": rule.rule_id,
            "rule_name": rule.name,
            "rule": rule.describe(),
            "kind": rule.kind,
            "user_id": firing.user_id,
            "values": firing.values,
        },
    )
