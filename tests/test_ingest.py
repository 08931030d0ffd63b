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


# --- dead-letters list | show | replay ----------------------------------------------------------


def _dead_letter(db, stream_id: str, fields: dict[bytes, bytes], error: str = "ValueError: x"):
    """A dead letter as the worker writes one (say, from before a fix to the store)."""
    payload = orjson.dumps({k.decode(): v.decode() for k, v in fields.items()}).decode()
    with db.begin() as conn:
        return conn.execute(
            dead_letters.insert().returning(dead_letters.c.id),
            {
                "stream_id": stream_id,
                "error": error,
                "attempts": 3,
                "payload": payload,
                "created_at": datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
            },
        ).scalar_one()


def test_dead_letters_list_and_show(app, site, redis, db, runner):
    result = runner.invoke(args=["dead-letters", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [
        "id",
        "stream",
        "id",
        "attempts",
        "error",
        "created",
        "(0",
        "dead",
        "letters)",
    ]

    # A malformed entry (dead-lettered whole) and a poison event (dead-lettered alone).
    stream = app.config["STREAM_KEY"]
    redis.xadd(stream, {b"v": b"1", b"rid": b"x", b"site": b"not-a-number"})
    now = datetime.now(UTC)
    poison = _poison("timestamp", now)
    good, _ = _prepared([make_event(1)], now)
    redis.xadd(
        stream,
        make_entry(
            request_id="r1",
            site_id=site.site_id,
            received_at=iso(now),
            events=[poison, *good],
            rejected=[],
        ),
    )
    worker = _quarantine_worker(app, max_attempts=1)
    worker.drain()
    assert count(db, events) == 1
    letters = {letter.stream_id: letter for letter in _letters(db)}
    assert len(letters) == 2

    result = runner.invoke(args=["dead-letters", "list"])
    assert result.exit_code == 0, result.output
    header, *lines, footer = result.output.splitlines()
    assert header.split() == ["id", "stream", "id", "attempts", "error", "created"]
    assert footer == "(2 dead letters)"
    assert len(lines) == 2
    for line in lines:
        letter_id, stream_id, attempts, *rest = line.split()
        letter = letters[stream_id]
        assert int(letter_id) == letter.id
        assert attempts == "1"
        assert rest[0] == letter.error.split()[0]  # the exception's name leads the error

    event_letter = next(letter for sid, letter in letters.items() if sid.endswith("#0"))
    result = runner.invoke(args=["dead-letters", "show", str(event_letter.id)])
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.output)
    assert shown["site"] == str(site.site_id)
    assert shown["rid"] == "r1"
    assert shown["events"] == [poison]  # decoded for reading
    assert shown["rejected"] == []

    malformed = next(letter for sid, letter in letters.items() if "#" not in sid)
    result = runner.invoke(args=["dead-letters", "show", str(malformed.id)])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == {"v": "1", "rid": "x", "site": "not-a-number"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["show", "999"], "no dead letter has id 999"),
        (["show", "abc"], "is not a valid integer"),
        (["replay", "999"], "no dead letter has id 999"),
    ],
)
def test_dead_letters_bad_ids(app, runner, db, args, message):
    result = runner.invoke(args=["dead-letters", *args])
    assert result.exit_code != 0
    assert message in result.output


def _letters(db):
    with db.connect() as conn:
        return conn.execute(sa.select(dead_letters).order_by(dead_letters.c.id)).all()


def test_dead_letters_replay_stores_each_event_once(app, site, redis, db, runner):
    stream = app.config["STREAM_KEY"]
    already = _entry(site.site_id, 3)  # its events were stored meanwhile (a resend)
    fresh = _entry(site.site_id, 4)
    other = _entry(site.site_id, 2)
    redis.xadd(stream, already)
    _quarantine_worker(app).drain()
    assert count(db, events) == 3
    ids = [
        _dead_letter(db, "1-0#0", already),
        _dead_letter(db, "2-0#0", fresh),
        _dead_letter(db, "3-0", other),
    ]
    length = redis.xlen(stream)

    result = runner.invoke(args=["dead-letters", "replay", str(ids[1])])  # one of them
    assert result.exit_code == 0, result.output
    assert redis.xlen(stream) == length + 1
    assert [letter.id for letter in _letters(db)] == [ids[0], ids[2]]
    _quarantine_worker(app).drain()
    assert count(db, events) == 7

    result = runner.invoke(args=["dead-letters", "replay"])  # all the others
    assert result.exit_code == 0, result.output
    assert "2 dead letters back on" in result.output
    assert _letters(db) == []
    worker = _quarantine_worker(app)
    worker.drain()
    assert count(db, events) == 9  # the resent three were not stored again
    assert worker.totals.duplicates == 3
    assert redis.xpending(stream, app.config["CONSUMER_GROUP"])["pending"] == 0


def test_dead_letters_replay_keeps_what_redis_refused(app, site, redis, db, runner):
    stream = app.config["STREAM_KEY"]
    letter_id = _dead_letter(db, "1-0#0", _entry(site.site_id, 2))
    redis.set(stream, "not a stream")  # every XADD fails (WRONGTYPE), as if Redis refused it
    result = runner.invoke(args=["dead-letters", "replay"])
    assert result.exit_code == 1
    assert "the dead letters not replayed are kept" in result.output
    assert [letter.id for letter in _letters(db)] == [letter_id]
