"""Acting as a shop and its customers in portal tests: portal URLs, signing in, form tokens."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa

from accounts.messaging_schema import email_outbox
from tests.staff_helpers import csrf_token
from tracking.schema import customers
from tracking.sites import Site

__all__ = ["csrf_token", "enter", "portal_url", "add_customer", "outbox_rows"]


def portal_url(client, site: Site, user_id: str, **fields) -> str:
    """POST /v1/portal/sessions with the site's server key; the one-time URL it answers."""
    response = client.post(
        "/v1/portal/sessions", json={"user_id": user_id, **fields}, auth=(site.server_key, "")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["url"]


def enter(client, site: Site, user_id: str, **fields):
    """Sign ``client`` in as ``user_id`` of ``site`` through a portal URL; the redirect."""
    url = portal_url(client, site, user_id, **fields)
    response = client.get(urlsplit(url).path)
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    return response


def add_customer(engine: sa.Engine, site_id: int, user_id: str, **traits) -> None:
    """A customer row as the ingest worker writes it (verified traits)."""
    from datetime import UTC, datetime

    from tracking import customer_lookup

    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            customers.insert(),
            {
                "site_id": site_id,
                "user_id": user_id,
                "traits": traits,
                "first_seen_at": now,
                "last_seen_at": now,
            },
        )
        customer_lookup.refresh(conn, site_id, {user_id: traits}, {})


def outbox_rows(engine: sa.Engine, to: str | None = None) -> list[dict]:
    """What was queued in the email outbox (to ``to`` when given), oldest first."""
    query = sa.select(email_outbox).order_by(email_outbox.c.id)
    if to is not None:
        query = query.where(email_outbox.c.to_address == to)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
