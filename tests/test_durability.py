"""Durability promises with real processes: kill -9 of workers, Redis dying, dedup, trimming.

Every test here starts real processes (ingest workers via the CLI, redis-server) and cleans
them up through fixture finalizers, even when it fails. Waits are bounded polls that fail with
the state they were waiting on and the tail of each worker's log; nothing asserts a duration.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.conftest import PROJECT_ROOT, Tracker, count, drain, make_event
from tracking.events import Limits, iso, prepare_events
from tracking.ingest import IngestSettings, IngestWorker
from tracking.redis_server import EmbeddedRedis
from tracking.schema import events, rejected_events, sessions
from tracking.stream import Spool, ensure_group, make_entry, trim_acknowledged
from webapp import create_app

pytestmark = pytest.mark.slow

WAIT_SECONDS = 60.0  # upper bound of every wait; a healthy run needs a small fraction of it
POLL_SECONDS = 0.01
TOTALS = re.compile(r"ingest worker stopped: (\d+) stored, (\d+) rejected, (\d+) duplicates")


# --- helpers ---------------------------------------------------------------------------------


class Worker:
    """One `flask --app wsgi ingest` process in its own process group, logging to a file."""

    def __init__(self, consumer: str, process: subprocess.Popen, log_path: Path):
        self.consumer, self.process, self.log_path = consumer, process, log_path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole process group and reap it."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self) -> dict[str, int]:
        """SIGTERM (a graceful stop), expect exit 0, return the totals the worker printed."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker {self.consumer} ignored SIGTERM:\n{self.log_tail()}")
        assert code == 0, f"worker {self.consumer} exited with {code}:\n{self.log_tail()}"
        found = TOTALS.search(self.log_path.read_text(errors="replace"))
        assert found, f"worker {self.consumer} printed no totals:\n{self.log_tail()}"
        stored, rejected, duplicates = map(int, found.groups())
        return {"stored": stored, "rejected": rejected, "duplicates": duplicates}


class Workers:
    """Starts ingest workers as real subprocesses against a test app's SQL store and Redis."""

    def __init__(self, app, log_dir: Path):
        self.app, self.log_dir = app, log_dir
        self.started: list[Worker] = []

    def start(self, consumer: str, **settings) -> Worker:
        """Start `python -m flask --app wsgi ingest --consumer NAME`; settings are ECRM_* names."""
        c = self.app.config
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECRM_")}
        env.update(
            PYTHONUNBUFFERED="1",
            ECRM_SECRET_KEY="durability-test-secret",
            ECRM_DATABASE_URL=c["DATABASE_URL"],
            ECRM_REDIS_URL=c["REDIS_URL"],
            ECRM_VAR_DIR=c["VAR_DIR"],
            ECRM_STREAM_KEY=c["STREAM_KEY"],
            ECRM_CONSUMER_GROUP=c["CONSUMER_GROUP"],
            ECRM_INGEST_BLOCK_MS="100",
        )
        env.update({f"ECRM_{name}": str(value) for name, value in settings.items()})
        log_path = self.log_dir / f"worker-{consumer}-{len(self.started)}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "wsgi", "ingest", "--consumer", consumer],
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches all of it
            )
        worker = Worker(consumer, process, log_path)
        self.started.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.started:
            if worker.alive():
                worker.kill()


@pytest.fixture
def workers(app, tmp_path):
    """Start ingest worker subprocesses; every one still running is killed at teardown."""
    started = Workers(app, tmp_path)
    yield started
    started.close()


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (AOF on), which the test may kill and restart."""
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        try:
            os.killpg(server.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.process.wait(timeout=10)


def wait_until(condition, state, workers=(), timeout: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` until true; fail with ``state()`` and the workers' logs otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            if not worker.alive():
                pytest.fail(
                    f"worker {worker.consumer} exited ({worker.process.returncode}) while "
                    f"waiting; state: {state()}\n{worker.log_tail()}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {w.consumer}:\n{w.log_tail()}" for w in workers)
            pytest.fail(f"gave up after {timeout:.0f}s; state: {state()}\n{logs}")
        time.sleep(POLL_SECONDS)


def pending(client: redis_lib.Redis, app) -> int:
    """Entries delivered to the ingest group and not yet acknowledged."""
    return client.xpending(app.config["STREAM_KEY"], app.config["CONSUMER_GROUP"])["pending"]


def pending_of(client: redis_lib.Redis, app, consumer: str) -> int:
    """Entries delivered to one consumer and not yet acknowledged."""
    info = client.xinfo_consumers(app.config["STREAM_KEY"], app.config["CONSUMER_GROUP"])
    return next((c["pending"] for c in info if c["name"].decode() == consumer), 0)


def stored_message_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(events.c.message_id)).scalars())


def assert_stored_exactly_once(engine: sa.Engine, expected: set[str]) -> None:
    """Every expected message id is in ``events`` once, and nothing else is."""
    ids = stored_message_ids(engine)
    with engine.connect() as conn:
        distinct = conn.execute(sa.select(sa.func.count(sa.distinct(events.c.message_id)))).scalar()
    assert len(ids) == distinct == len(set(ids)), "a message is stored more than once"
    missing, extra = expected - set(ids), set(ids) - expected
    assert not missing, f"{len(missing)} accepted events are not stored, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} stored events were never sent, e.g. {sorted(extra)[:3]}"
    assert len(ids) == len(expected)


def post_batches(tracker, batches: list[list[dict]]) -> set[str]:
    """POST each batch; every one must get 2xx. Returns the message ids of the valid events."""
    accepted = set()
    for batch in batches:
        response = tracker.batch(batch)
        assert 200 <= response.status_code < 300, response.get_json()
        rejected = {r["index"] for r in response.get_json().get("rejected", [])}
        accepted.update(e["messageId"] for i, e in enumerate(batch) if i not in rejected)
    return accepted


def good_batches(n_batches: int, size: int, *, bad_per_batch: int = 0) -> list[list[dict]]:
    """Batches of fresh valid events, each followed by ``bad_per_batch`` invalid ones."""
    batches = []
    for b in range(n_batches):
        batch = [make_event(b * size + i) for i in range(size)]
        batch += [make_event(i, timestamp="not a time") for i in range(bad_per_batch)]
        batches.append(batch)
    return batches


def session_event_total(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(sessions.c.event_count), 0))
        ).scalar()


def in_process_worker(
    app, consumer: str, batch_size: int, trim_every_seconds: float = 5.0
) -> IngestWorker:
    """An ingest worker on the app's own clients (thread-safe pools), small batches."""
    c, config = app.extensions["ecrm"], app.config
    settings = IngestSettings(
        stream_key=config["STREAM_KEY"],
        group=config["CONSUMER_GROUP"],
        consumer=consumer,
        batch_size=batch_size,
        block_ms=10,
        claim_idle_ms=config["INGEST_CLAIM_IDLE_MS"],
        trim_every_seconds=trim_every_seconds,
    )
    return IngestWorker(c.redis, c.engine, settings, spool=c.spool)


# --- 1. kill -9 of an ingest worker mid-batch --------------------------------------------------


@pytest.mark.parametrize("restart_as", ["w1", "w2"], ids=["same-consumer", "other-consumer"])
def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    app, tracker, db, redis, workers, restart_as
):
    n_requests, per_request = 60, 50
    accepted = post_batches(tracker, good_batches(n_requests, per_request, bad_per_batch=1))
    total = n_requests * per_request
    assert len(accepted) == total

    # 4 entries (200 events) per transaction: about 15 commits, so the kill lands mid-work.
    settings = {"INGEST_BATCH_SIZE": 4, "INGEST_CLAIM_IDLE_MS": 300}
    stored_at_kill = 0
    for _ in range(5):
        # Kill once it has stored something and holds a batch it has not acknowledged. A kill
        # that lands in the instant between an XACK and the next read leaves nothing pending:
        # that is the easy case, so restart it under the same name and kill it again.
        stored_before = stored_at_kill
        first = workers.start("w1", **settings)
        wait_until(
            lambda before=stored_before: (
                count(db, events) > before and pending_of(redis, app, "w1") > 0
            ),
            lambda: f"{count(db, events)} of {total} stored, {pending(redis, app)} pending",
            [first],
        )
        first.kill()
        stored_at_kill = count(db, events)
        assert stored_at_kill < total, "the worker finished before the kill; make the load larger"
        if pending_of(redis, app, "w1") > 0:
            break
    else:
        pytest.fail("five kills in a row left nothing pending; the kill never landed mid-batch")

    second = workers.start(restart_as, **settings)
    wait_until(
        lambda: count(db, events) >= total and pending(redis, app) == 0,
        lambda: f"{count(db, events)} of {total} stored, {pending(redis, app)} pending",
        [second],
    )
    second.stop()

    assert_stored_exactly_once(db, accepted)
    assert count(db, rejected_events) == n_requests  # received = stored + rejected
    assert session_event_total(db) == total  # derived rows were not counted twice either
    assert pending(redis, app) == 0
    # The dead consumer's entries were finished (same name) or claimed (other name).
    assert pending_of(redis, app, "w1") == 0


# --- 2. Redis dies while the collector takes events ------------------------------------------


def own_app(app_config, tmp_path: Path, redis_url: str, **overrides):
    """An app like the ``app`` fixture's (same SQL store) but on another Redis and VAR_DIR."""
    config = {
        **app_config,
        "REDIS_URL": redis_url,
        "REDIS_TIMEOUT_SECONDS": 0.5,
        "VAR_DIR": str(tmp_path / "own-var"),
        **overrides,
    }
    return create_app(config)


def test_redis_crash_spools_events_and_loses_none(app, app_config, site, db, own_redis, tmp_path):
    crash_app = own_app(app_config, tmp_path, own_redis.url)
    try:
        tracker = Tracker(crash_app.test_client(), site)
        stream_key = crash_app.config["STREAM_KEY"]
        spool_dir = Path(crash_app.config["SPOOL_DIR"])

        before = post_batches(tracker, good_batches(10, 20))
        own_redis.kill()  # SIGKILL: a crash, no shutdown save

        during_batches = good_batches(15, 20)
        during = post_batches(tracker, during_batches)  # each one asserted 2xx
        spool_files = [p for p in spool_dir.glob("spool-*") if p.stat().st_size > 0]
        assert spool_files, f"no non-empty spool file in {spool_dir}"
        assert Spool(spool_dir).depth() == len(during_batches)  # one fsynced line per request

        own_redis.start()  # same directory: the AOF is reloaded
        probe = redis_lib.Redis.from_url(own_redis.url)
        try:
            # Every entry acknowledged before the crash survived it.
            assert probe.xlen(stream_key) == 10
        finally:
            probe.close()
        after = post_batches(tracker, good_batches(5, 20))  # stream or spool: both durable

        drain(crash_app)  # replays the spool into the stream, then ingests
        assert_stored_exactly_once(db, before | during | after)
        assert Spool(spool_dir).depth() == 0
        assert pending(crash_app.extensions["ecrm"].redis, crash_app) == 0
    finally:
        crash_app.extensions["ecrm"].engine.dispose()
        crash_app.extensions["ecrm"].redis.close()


def test_redis_down_and_spool_unwritable_answers_503(app, app_config, site, own_redis, tmp_path):
    # A spool path under a regular file cannot be created, even by root (chmod would not stop it).
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broken_app = own_app(app_config, tmp_path, own_redis.url, SPOOL_DIR=str(blocker / "spool"))
    try:
        tracker = Tracker(broken_app.test_client(), site)
        # Redis up: the stream takes the events, the broken spool does not matter.
        assert tracker.batch([make_event(1)]).status_code == 200
        own_redis.kill()
        for _ in range(3):  # the first request meets the dead server, the next the breaker
            response = tracker.batch([make_event(2)])
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.headers["Retry-After"] == str(broken_app.config["RETRY_AFTER_SECONDS"])
            body = response.get_json()
            assert body["success"] is False
            assert body["error"]["field"] == "server"
            assert body["error"]["reason"]
            assert body["retry"] is True
    finally:
        broken_app.extensions["ecrm"].engine.dispose()
        broken_app.extensions["ecrm"].redis.close()


# --- 3. two workers in one consumer group ----------------------------------------------------


def enqueue_directly(client: redis_lib.Redis, app, site_id: int, batches: list[list[dict]]) -> set:
    """Validate like the collector, then XADD one entry per batch in a pipeline."""
    accepted_ids = set()
    pipe = client.pipeline(transaction=False)
    for batch in batches:
        received_at = datetime.now(UTC)
        accepted, rejected = prepare_events(
            batch, path="batch", received_at=received_at, batch_sent_at=None, limits=Limits()
        )
        assert not rejected, rejected[0]
        accepted_ids.update(e["messageId"] for e in accepted)
        entry = make_entry(
            request_id=uuid.uuid4().hex,
            site_id=site_id,
            received_at=iso(received_at),
            events=accepted,
            rejected=[],
        )
        pipe.xadd(app.config["STREAM_KEY"], entry)
    pipe.execute()
    return accepted_ids


def test_two_workers_share_ten_thousand_events(app, site, db, redis, workers):
    total = 10_000
    # A generous claim time: nobody dies here, so each entry should be worked on once.
    settings = {"INGEST_BATCH_SIZE": 5, "INGEST_CLAIM_IDLE_MS": 30_000}
    started = [workers.start(name, **settings) for name in ("alpha", "beta")]
    stream, group = app.config["STREAM_KEY"], app.config["CONSUMER_GROUP"]

    def consumers() -> set[str]:
        try:
            return {c["name"].decode() for c in redis.xinfo_consumers(stream, group)}
        except redis_lib.ResponseError:  # the group does not exist yet
            return set()

    # Both wait on the group before the events arrive, so Redis hands each of them a share.
    wait_until(
        lambda: consumers() == {"alpha", "beta"}, lambda: f"consumers {consumers()}", started
    )
    accepted = enqueue_directly(redis, app, site.site_id, good_batches(total // 50, 50))
    assert len(accepted) == total

    wait_until(
        lambda: count(db, events) >= total and pending(redis, app) == 0,
        lambda: f"{count(db, events)} of {total} stored, {pending(redis, app)} pending",
        started,
    )
    totals = {worker.consumer: worker.stop() for worker in started}

    assert_stored_exactly_once(db, accepted)
    assert pending(redis, app) == 0
    assert all(c["pending"] == 0 for c in redis.xinfo_consumers(stream, group))
    assert all(t["stored"] > 0 for t in totals.values()), f"one worker did nothing: {totals}"
    assert sum(t["stored"] for t in totals.values()) == total, totals


# --- 4. dedup under concurrency --------------------------------------------------------------


def test_same_batches_posted_twice_concurrently_stored_once(app, site, db, redis):
    batches = good_batches(20, 50, bad_per_batch=1)
    unique = {e["messageId"] for batch in batches for e in batch[:-1]}
    sends = batches * 2
    random.Random(11).shuffle(sends)
    # A client retrying after a lost response: the stream starts with two copies of a batch,
    # which the first read of 3 entries hands to one worker in a single delivery.
    retried = good_batches(1, 50, bad_per_batch=1)[0]
    retried_ids = post_batches(Tracker(app.test_client(), site), [retried, retried])
    n_threads = 4
    start = threading.Barrier(n_threads)

    def send_share(share: list[list[dict]]) -> set[str]:
        tracker = Tracker(app.test_client(), site)
        start.wait(timeout=WAIT_SECONDS)
        return post_batches(tracker, share)

    with ThreadPoolExecutor(n_threads) as pool:
        shares = [sends[i::n_threads] for i in range(n_threads)]
        accepted = set().union(*pool.map(send_share, shares))
    assert accepted == unique
    unique |= retried_ids

    # Two workers drain at once, with small batches so copies land with different workers.
    pair = [in_process_worker(app, name, batch_size=3) for name in ("left", "right")]
    go = threading.Barrier(len(pair))

    def run(worker: IngestWorker) -> int:
        worker.start()
        go.wait(timeout=WAIT_SECONDS)
        return worker.drain()

    with ThreadPoolExecutor(len(pair)) as pool:
        handled = list(pool.map(run, pair))
    assert all(handled), f"a worker got no entries: {handled}"
    pair[0].drain()  # anything one left pending (claimed after a slow commit) is finished

    assert_stored_exactly_once(db, unique)
    # Each rejected event is on record once, however often its request was sent.
    assert count(db, rejected_events) == len(batches) + 1
    assert pending(redis, app) == 0
    received = sum(w.totals.received for w in pair)
    stored = sum(w.totals.stored for w in pair)
    duplicates = sum(w.totals.duplicates for w in pair)
    rejected = sum(w.totals.rejected for w in pair)
    assert stored == len(unique)
    assert received == stored + duplicates + rejected, (received, stored, duplicates, rejected)
    assert rejected == count(db, rejected_events)
    assert session_event_total(db) == len(unique)  # no copy counted in a session twice


def test_crossed_copies_reach_two_workers_at_once(app, site, db, redis):
    # Copies of two large entries in crossed order (X Y Y X): in each round one worker gets
    # X then Y, the other Y then X, so on PostgreSQL each waits on the other's rows: a deadlock
    # that one of them must survive. (Written straight to the stream to keep the test quick.)
    rounds, size = 2, 1000  # without the retry, each round deadlocks nearly every time
    expected: set[str] = set()
    for _ in range(rounds):
        x, y = good_batches(2, size)
        expected |= enqueue_directly(redis, app, site.site_id, [x, y, y, x])
    pair = [in_process_worker(app, name, batch_size=2) for name in ("left", "right")]
    in_step = threading.Barrier(len(pair))

    def run(worker: IngestWorker) -> None:
        worker.start()
        try:
            for _ in range(rounds):
                in_step.wait(timeout=WAIT_SECONDS)
                worker.run_once(block_ms=0)
        except BaseException:
            in_step.abort()  # release the other worker at once
            raise

    with ThreadPoolExecutor(len(pair)) as pool:
        for future in [pool.submit(run, worker) for worker in pair]:
            future.result()  # a worker's exception (say, a deadlock) fails the test here
    in_process_worker(app, "left", batch_size=2).drain()

    assert_stored_exactly_once(db, expected)
    assert pending(redis, app) == 0
    assert sum(w.totals.stored for w in pair) == len(expected)


# --- 5. trimming ----------------------------------------------------------------------------


def test_trim_removes_acknowledged_entries_only(app, tracker, db, redis):
    stream, group = app.config["STREAM_KEY"], app.config["CONSUMER_GROUP"]
    accepted = post_batches(tracker, good_batches(6, 10))
    # A worker that never trims by itself, so the trimming seen here is the explicit call's.
    in_process_worker(app, "trimless", batch_size=4, trim_every_seconds=float("inf")).drain()
    assert_stored_exactly_once(db, accepted)
    assert redis.xlen(stream) == 6
    assert trim_acknowledged(redis, stream) == 6
    assert redis.xlen(stream) == 0
    assert count(db, events) == 60  # trimming the stream never touches SQL

    # Six new entries: #1 acknowledged, #2 delivered but not acknowledged (its worker died),
    # #3 and #4 acknowledged by another consumer, #5 and #6 not delivered yet.
    ids = [redis.xadd(stream, {b"n": str(i).encode()}) for i in range(1, 7)]
    ensure_group(redis, stream, group)
    read = redis.xreadgroup(group, "dead", {stream: ">"}, count=2)
    assert [eid for eid, _ in read[0][1]] == ids[:2]
    redis.xack(stream, group, ids[0])
    read = redis.xreadgroup(group, "alive", {stream: ">"}, count=2)
    assert [eid for eid, _ in read[0][1]] == ids[2:4]
    redis.xack(stream, group, *ids[2:4])

    def remaining() -> list[bytes]:
        return [eid for eid, _ in redis.xrange(stream)]

    assert trim_acknowledged(redis, stream) == 1
    assert remaining() == ids[1:], "trimming removed a pending entry or one after it"
    assert trim_acknowledged(redis, stream) == 0  # nothing more until the pending one is done

    # Once #2 is acknowledged, the slowest group decides: one that has read nothing keeps all.
    redis.xgroup_create(stream, "audit", id="0")
    redis.xack(stream, group, ids[1])
    assert trim_acknowledged(redis, stream) == 0
    assert remaining() == ids[1:]
    redis.xgroup_setid(stream, "audit", id=ids[1])  # "audit" is past #2, "ingest" past #4
    assert trim_acknowledged(redis, stream) == 1
    assert remaining() == ids[2:]
    assert pending(redis, app) == 0
