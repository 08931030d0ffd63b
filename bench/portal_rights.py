"""Export and erasure of one customer with 10,000 events, in a store of other customers' events.

    python bench/portal_rights.py                       # SQLite, 500k other events
    python bench/portal_rights.py --others 2000000 --db postgresql://postgres@127.0.0.1/bench

Issue 13's targets are export under 2 s and erasure under 5 s for such a customer in a store of
10M events; this script runs smaller stores on this machine (the size is a flag) and says so.
The store is written through the ingest path's own function (tracking.store.write_entries), so
sessions, identities, orders and the interaction log's chunks are what ingest makes. A model is
trained on the store (so erasure rewrites a real model version), answers are cached for the
customer in a real embedded Redis, then ``accounts.export.export`` and ``accounts.erasure.erase``
are timed in-process (wall clock, one run each: erasure is not repeatable on the same person).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis as redis_lib  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from accounts import erasure, export  # noqa: E402
from bench.harness.service import create_store, start_redis  # noqa: E402
from recommender.training import TrainSettings, train  # noqa: E402
from tracking.db import make_engine  # noqa: E402
from tracking.events import Limits, iso, prepare_events  # noqa: E402
from tracking.store import write_entries  # noqa: E402

BATCH = 2000


def events_of(n: int, users: int, items: int, *, user_id: str | None = None, seed: int = 0):
    """``n`` Product Viewed events (every 20th an identify-stitched one), oldest first."""
    start = datetime(2026, 9, 1, tzinfo=UTC)
    for i in range(n):
        k = (i * 7919 + seed) % users
        uid = user_id or f"user-{k}"
        yield {
            "type": "track",
            "event": "Product Viewed",
            "messageId": uuid.uuid4().hex,
            "userId": uid,
            "anonymousId": f"anon-{uid}-{i % 3}",
            "timestamp": iso(start + timedelta(seconds=i * 3)),
            "properties": {"product_id": f"sku-{(i * 31 + k) % items}", "price": 9.5},
        }


def store(engine, site_id: int, events) -> int:
    received = datetime.now(UTC)
    batch, total = [], 0

    def flush():
        nonlocal batch, total
        accepted, rejected = prepare_events(
            batch, path="batch", received_at=received, batch_sent_at=None, limits=Limits()
        )
        entry = {
            "rid": uuid.uuid4().hex,
            "site_id": site_id,
            "received_at": iso(received),
            "events": accepted,
            "rejected": rejected,
        }
        with engine.begin() as conn:
            write_entries(conn, [entry], timedelta(minutes=30))
        total += len(batch)
        batch = []

    for event in events:
        batch.append(event)
        if len(batch) == BATCH:
            flush()
    if batch:
        flush()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--others", type=int, default=500_000, help="other customers' events")
    parser.add_argument("--mine", type=int, default=10_000, help="the customer's events")
    parser.add_argument("--db", default=None, help="SQL URL (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ecrm-rights-") as tmp:
        root = Path(tmp)
        url = args.db or f"sqlite:///{root / 'bench.db'}"
        site, _ = create_store(url, "Rights bench", [])
        engine = make_engine(url)
        redis_server = start_redis(root / "redis")
        client = redis_lib.Redis.from_url(redis_server.url)
        try:
            clock = time.perf_counter()
            n = store(engine, site.site_id, events_of(args.others, 20_000, 2_000))
            person = "bench-person"
            n += store(engine, site.site_id, events_of(args.mine, 1, 2_000, user_id=person))
            print(
                f"stored {n:,} events in {time.perf_counter() - clock:.1f} s ({url.split(':')[0]})"
            )
            models = root / "models"
            clock = time.perf_counter()
            report = train(
                engine, TrainSettings(site.site_id, models / str(site.site_id), tune_seconds=0)
            )
            print(f"trained {report.version} in {time.perf_counter() - clock:.1f} s")
            for visitor in (f"u:{person}", f"a:anon-{person}-0"):
                client.set(f"ecrm:recs:{site.site_id}:{report.version}:{visitor}", b'{"c":[]}')
            stores = erasure.Stores(engine, client, "ecrm:events", root / "spool", models)
            clock = time.perf_counter()
            document = export.export(stores, site.site_id, person)
            size = len(export.encode(document))
            exported = time.perf_counter() - clock
            rows = len(document["tables"]["events"]["rows"])
            print(f"export: {exported:.2f} s (JSON encoded), {rows:,} events, {size / 1e6:.1f} MB")
            clock = time.perf_counter()
            receipt = erasure.erase(stores, site.site_id, person, requested_by="bench")
            erased = time.perf_counter() - clock
            print(f"erasure: {erased:.2f} s, counts {receipt['counts']}")
            with engine.connect() as conn:
                left = conn.execute(
                    sa.text("SELECT count(*) FROM events WHERE user_id = :u"), {"u": person}
                ).scalar()
            assert left == 0, left
        finally:
            engine.dispose()
            redis_server.stop()


if __name__ == "__main__":
    main()
