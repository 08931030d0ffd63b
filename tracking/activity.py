"""What visitors just did, told to the serving layer right after the ingest worker commits it.

For every visitor a stored batch touched, one Redis pipeline:

- appends their newest item events to a short list (``recent_key``), which the serving layer folds
  into that visitor's recommendations without waiting for a retrain;
- increments their generation counter (``generation_key``): a cached recommendation remembers the
  generation it was computed at and is void once the counter moves, so a purchase or a view
  changes the next answer even if a stale value is still in Redis;
- publishes the visitors on ``INVALIDATION_CHANNEL``, so every web process drops its in-process
  copy at once.

A visitor is ``u:<user_id>`` or ``a:<anonymous_id>``; an event carrying both touches both.
Nothing here is needed for durability: the events are in SQL already, so a failure is logged and
the caches catch up by their TTLs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
import redis

from tracking.identity import is_verified

log = logging.getLogger("ecrm.tracking.activity")

INVALIDATION_CHANNEL = "ecrm:invalidate"
CATALOGUE_CHANNEL = "ecrm:catalogue"  # message "<site_id>": that site's catalogue changed
RECENT_LIMIT = 50  # newest item events kept per visitor
RECENT_TTL_SECONDS = 14 * 24 * 3600
GENERATION_TTL_SECONDS = 30 * 24 * 3600
# Events that say something about taste; the recommender weighs them (recommender.interactions).
ITEM_EVENTS = {"Product Viewed", "Product Clicked", "Product Added", "Recommendation Clicked"}


def recent_key(site_id: int, visitor: str) -> str:
    """The list of a visitor's newest item events."""
    return f"ecrm:recent:{site_id}:{visitor}"


def generation_key(site_id: int, visitor: str) -> str:
    """A visitor's generation counter."""
    return f"ecrm:gen:{site_id}:{visitor}"


def visitors_of(event: dict[str, Any]) -> list[str]:
    """The visitor keys an event belongs to (an unverified user id is not one of them)."""
    found = []
    if event.get("userId") not in (None, "") and is_verified(event):
        found.append(f"u:{event['userId']}")
    if event.get("anonymousId") not in (None, ""):
        found.append(f"a:{event['anonymousId']}")
    return found


def _epoch(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def item_events(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The (item_id, event, timestamp) records an event contributes to a visitor's recent list."""
    name = event.get("event")
    properties = event.get("properties") or {}
    if not isinstance(properties, dict):
        return []
    when = _epoch(event.get("timestamp"))
    if name in ITEM_EVENTS and properties.get("product_id") not in (None, ""):
        # A click on a recommendation is a product click for the recommender.
        label = "Product Clicked" if name == "Recommendation Clicked" else name
        return [{"item_id": str(properties["product_id"]), "event": label, "timestamp": when}]
    if name == "Order Completed" and isinstance(properties.get("products"), list):
        return [
            {"item_id": str(p["product_id"]), "event": name, "timestamp": when}
            for p in properties["products"]
            if isinstance(p, dict) and p.get("product_id") not in (None, "")
        ]
    return []


def publish_activity(client: redis.Redis, entries: Iterable[dict[str, Any]]) -> int:
    """Tell the serving layer about the visitors in stored entries; returns how many."""
    touched: dict[tuple[int, str], list[bytes]] = defaultdict(list)
    for entry in entries:
        site_id = entry["site_id"]
        for event in entry["events"]:
            records = [orjson.dumps(r) for r in item_events(event)]
            for visitor in visitors_of(event):
                touched[(site_id, visitor)].extend(records)
    if not touched:
        return 0
    try:
        pipe = client.pipeline(transaction=False)
        for (site_id, visitor), records in touched.items():
            if records:
                key = recent_key(site_id, visitor)
                pipe.rpush(key, *records)
                pipe.ltrim(key, -RECENT_LIMIT, -1)
                pipe.expire(key, RECENT_TTL_SECONDS)
            gen = generation_key(site_id, visitor)
            pipe.incr(gen)
            pipe.expire(gen, GENERATION_TTL_SECONDS)
        message = "\n".join(f"{site_id}\t{visitor}" for site_id, visitor in touched)
        pipe.publish(INVALIDATION_CHANNEL, message)
        pipe.execute()
    except redis.RedisError as e:
        log.warning("could not publish activity of %d visitors: %s", len(touched), e)
        return 0
    return len(touched)
