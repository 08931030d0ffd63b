"""Ingest worker: poison entries go to dead letters, unexpected errors crash the worker."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tests.conftest import count, drain, make_event
from tracking.events import Limits, iso, prepare_events
from tracking.ingest import IngestSettings, IngestWorker
from tracking.schema import dead_letters, events
from tracking.stream import make_entry


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
        claim_idle_ms=50,
        max_attempts=3,
        **overrides,
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
