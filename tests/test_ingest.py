"""Ingest worker: poison entries go to dead letters, unexpected errors crash the worker."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
import sqlalchemy as sa

from tests.conftest import count, drain, make_event
from tracking.events import Limits, iso, prepare_events
from tracking.ingest import IngestSettings, IngestWorker
from tracking.schema import dead_letters, events, rejected_events
from tracking.stream import make_entry, parse_entry


def _entry(site_id: int, n: int) -> dict:
    now = datetime.now(UTC)
    accepted, _ = prepare_events(
        [make_event(i) for i in range(n)],
        path="batch",
        received_at=now,
        batch_sent_at=None,
        limits=Limits(),
    )
    return make_entry(
        request_id=uuid.uuid4().hex,
        site_id=site_id,
        received_at=iso(now),
        events=accepted,
        rejected=[],
    )


def _worker(app, consumer="w1", **overrides) -> IngestWorker:
    c = app.extensions["ecrm"]
    settings = IngestSettings(
        stream_key=app.config["STREAM_KEY"],
        group=app.config["CONSUMER_GROUP"],
        consumer=consumer,
        **{"claim_idle_ms": 50, "max_attempts": 3, **overrides},
    )
    return IngestWorker(c.redis, c.engine, settings)


def test_poison_entry_is_dead_lettered_and_the_rest_flows(app, site, redis, db):
    stream = app.config["STREAM_KEY"]
    redis.xadd(stream, _entry(site.site_id, 5))
    poison_id = redis.xadd(stream, {b"v": b"1", b"rid": b"x", b"site": b"not-a-number"})
    redis.xadd(stream, _entry(site.site_id, 7))
    worker = _worker(app)
    worker.drain()
    assert count(db, events) == 12
    assert count(db, dead_letters) == 0  # first failure: left pending for a retry
    for _ in range(10):
        time.sleep(0.06)
        worker.drain()
        if count(db, dead_letters):
            break
    with db.connect() as conn:
        letter = conn.execute(sa.select(dead_letters)).one()
    assert letter.stream_id == poison_id.decode()
    assert letter.attempts == 3
    assert "malformed stream entry" in letter.error
    pending = redis.xpending(stream, app.config["CONSUMER_GROUP"])
    assert pending["pending"] == 0


def test_unexpected_error_crashes_and_redelivers(app, site, redis, db):
    stream = app.config["STREAM_KEY"]
    redis.xadd(stream, _entry(site.site_id, 4))
    worker = _worker(app)
    # The store disappears under the worker: not the entry's fault, so the worker must crash.
    with db.begin() as conn:
        conn.execute(sa.text("ALTER TABLE events RENAME TO events_away"))
    try:
        with pytest.raises(sa.exc.SQLAlchemyError):
            worker.drain()
    finally:
        with db.begin() as conn:
            conn.execute(sa.text("ALTER TABLE events_away RENAME TO events"))
    assert count(db, dead_letters) == 0
    assert redis.xpending(stream, app.config["CONSUMER_GROUP"])["pending"] == 1
    # A restarted worker with the same name re-reads its own pending entry first.
    restarted = _worker(app)
    restarted.drain()
    assert count(db, events) == 4
    assert redis.xpending(stream, app.config["CONSUMER_GROUP"])["pending"] == 0


def test_drain_helper_replays_spool(app, site, redis, db):
    entry = _entry(site.site_id, 3)
    app.extensions["ecrm"].spool.append(entry)
    assert app.extensions["ecrm"].spool.depth() == 1
    drain(app)
    assert count(db, events) == 3
    assert app.extensions["ecrm"].spool.depth() == 0


def test_deleted_pending_entries_are_acknowledged(app, site, redis, db):
    stream = app.config["STREAM_KEY"]
    group = app.config["CONSUMER_GROUP"]
    first = redis.xadd(stream, _entry(site.site_id, 2))
    worker = _worker(app)
    worker.start()
    redis.xreadgroup(group, "w1", {stream: ">"}, count=10)  # delivered, then the worker "dies"
    redis.xdel(stream, first)  # erased while pending
    redis.xadd(stream, _entry(site.site_id, 3))
    _worker(app).drain()
    assert count(db, events) == 3
    assert redis.xpending(stream, group)["pending"] == 0


# --- a poison event is quarantined alone; its request's other events are stored ---------------


def _prepared(raw_events: list[dict], now: datetime) -> tuple[list[dict], list[dict]]:
    accepted, rejected = prepare_events(
        raw_events, path="batch", received_at=now, batch_sent_at=None, limits=Limits()
    )
    return accepted, [r.as_dict() for r in rejected]


def _poison(kind: str, now: datetime) -> dict:
    """An event as the collector accepted it, changed so that storing it fails."""
    if kind == "order-quantity":
        order = make_event(
            1,
            event="Order Completed",
            properties={"order_id": "o-poison", "products": [{"product_id": "sku-1"}]},
        )
        (event,), _ = _prepared([order], now)
        event["properties"]["products"][0]["quantity"] = "abc"
        return event
    (event,), _ = _prepared([make_event(2)], now)
    if kind == "timestamp":
        event["timestamp"] = "not a time"
    elif kind == "too-long":  # fits SQLite, not PostgreSQL's varchar(200)
        event["event"] = "x" * 300
    return event


def _quarantine_worker(app, consumer="q1", **overrides) -> IngestWorker:
    # claim_idle_ms=0: the next round redelivers a pending entry at once, no waiting.
    return _worker(app, consumer, **{"claim_idle_ms": 0, "max_attempts": 2, **overrides})


@pytest.mark.parametrize("kinds", [["timestamp"], ["order-quantity", "timestamp"], ["too-long"]])
def test_poison_event_is_dead_lettered_alone(app, site, redis, db, kinds):
    if "too-long" in kinds and db.dialect.name != "postgresql":
        pytest.skip("SQLite stores strings of any length; this poison is PostgreSQL's")
    stream, group = app.config["STREAM_KEY"], app.config["CONSUMER_GROUP"]
    now = datetime.now(UTC)
    good, rejected = _prepared(
        [make_event(i) for i in range(40)] + [make_event(99, timestamp="garbage")], now
    )
    poisons = [_poison(kind, now) for kind in kinds]
    events_in_entry = list(good)
    positions = []
    for k, poison in enumerate(poisons):  # spread out, so the search has to find each one
        position = 7 + 23 * k
        events_in_entry.insert(position, poison)
        positions.append(position)
    entry_id = redis.xadd(
        stream,
        make_entry(
            request_id=uuid.uuid4().hex,
            site_id=site.site_id,
            received_at=iso(now),
            events=events_in_entry,
            rejected=rejected,
        ),
    )
    worker = _quarantine_worker(app)
    worker.drain()
    # First delivery: every good event stored at once; the poison waits for its last attempt.
    assert count(db, events) == len(good)
    assert count(db, rejected_events) == 1
    assert count(db, dead_letters) == 0
    assert redis.xpending(stream, group)["pending"] == 1

    worker.drain()  # second and last delivery: the poison events are dead-lettered, one each
    assert count(db, events) == len(good)
    assert count(db, rejected_events) == 1
    assert redis.xpending(stream, group)["pending"] == 0
    with db.connect() as conn:
        letters = conn.execute(sa.select(dead_letters).order_by(dead_letters.c.id)).all()
    assert sorted(letter.stream_id for letter in letters) == sorted(
        f"{entry_id.decode()}#{p}" for p in positions
    )
    for letter in letters:
        assert letter.attempts == 2
        payload = parse_entry(
            {k.encode(): v.encode() for k, v in orjson.loads(letter.payload).items()}
        )
        assert payload["site_id"] == site.site_id
        assert payload["rejected"] == []
        (event,) = payload["events"]
        assert event in poisons
    t = worker.totals
    assert t.dead_lettered == len(poisons)
    assert t.received == t.stored + t.duplicates + t.rejected + t.dead_lettered
