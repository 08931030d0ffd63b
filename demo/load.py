"""Loading the demo shop into a store: its site, its catalogue, and its events queued for ingest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from demo.generate import generate_shop, iter_batches
from demo.spec import ShopSpec
from tracking.catalogue import upsert_items, validate_item
from tracking.events import Limits, iso, prepare_events
from tracking.sites import Site, create_site, list_sites
from tracking.stream import make_entry

DEMO_SITE_NAME = "Demo shop"


def demo_site(engine: sa.Engine) -> Site | None:
    """The demo shop's site (created by the run command), or None."""
    for site in list_sites(engine):
        if site.name == DEMO_SITE_NAME and not site.revoked:
            return site
    return None


def load_demo(
    engine, redis_client, stream_key: str, origins: list[str], customers: int = 500, days: int = 28
):
    """Create the demo site, its catalogue and ``days`` days of events up to today (queued on the
    stream)."""
    site, server_key = create_site(engine, DEMO_SITE_NAME, origins)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    spec = ShopSpec(seed=42, n_customers=customers, days=days, start=today - timedelta(days=days))
    shop = generate_shop(spec)
    upsert_items(engine, site.site_id, [validate_item(item) for item in shop.items])
    received_at = datetime.now(UTC)
    queued = 0
    pipe = redis_client.pipeline(transaction=False)
    for batch in iter_batches(shop.events, 200):
        accepted, rejected = prepare_events(
            batch, path="batch", received_at=received_at, batch_sent_at=None, limits=Limits()
        )
        pipe.xadd(
            stream_key,
            make_entry(
                request_id=uuid.uuid4().hex,
                site_id=site.site_id,
                received_at=iso(received_at),
                events=accepted,
                rejected=[r.as_dict() for r in rejected],
            ),
        )
        queued += len(accepted)
    pipe.execute()
    return site, server_key, shop, queued
