"""The ingest benchmark's drains: stored stream entries read into fresh SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import redis
import sqlalchemy as sa

from bench.harness.machine import log
from bench.ingest_figures import BATCH, DrainResult, LoadResult
from tracking import migrations
from tracking.db import make_engine
from tracking.ingest import IngestSettings, IngestWorker
from tracking.store import write_entries
from tracking.stream import parse_entry


class Drains:
    """The same entries drained by 1, 2... ingest workers into each store, one drain at a time."""

    def __init__(
        self, args, tmp: Path, client: redis.Redis, redis_url: str, wait_quiet: Callable[[], object]
    ):
        self.args, self.tmp, self.client, self.redis_url = args, tmp, client, redis_url
        self.wait_quiet = wait_quiet
        self.results: list[DrainResult] = []
        self.source = (0, 0)  # entries, events
        self.workers: list[mp.Process] = []
        self.pg_schemas: list[str] = []
        self.pg_admin: sa.Engine | None = None

    def cleanup(self) -> None:
        """Stop any worker still running and drop the PostgreSQL schemas made."""
        for p in self.workers:
            if p.is_alive():
                p.terminate()
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join()
        if self.pg_admin is not None:
            try:
                with self.pg_admin.begin() as conn:
                    for schema in self.pg_schemas:
                        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            except sa.exc.SQLAlchemyError as e:
                log(f"could not drop the PostgreSQL schemas {self.pg_schemas}: {e}")
            self.pg_admin.dispose()

    def pg_engine_url(self) -> str | None:
        """--pg-url when PostgreSQL answers there (None with --no-pg or when unreachable)."""
        if self.args.no_pg:
            return None
        url = self.args.pg_url
        try:
            admin = make_engine(url, pool_pre_ping=True)
            with admin.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as e:  # noqa: BLE001 - any failure means "no PostgreSQL here"
            log(f"PostgreSQL at {url} is unreachable ({type(e).__name__}): skipping its rows")
            return None
        self.pg_admin = admin
        return url

    def run_all(self, source: LoadResult) -> None:
        """Every drain of --drain-workers into SQLite, then PostgreSQL, from ``source``'s stream."""
        a = self.args
        plans: list[tuple[str, int]] = [("sqlite", n) for n in a.drain_workers]
        pg_url = self.pg_engine_url()
        if pg_url:
            plans += [("postgresql", n) for n in a.drain_workers]
        else:
            for n in a.drain_workers:
                why = "skipped (--no-pg)" if a.no_pg else "skipped: PostgreSQL unreachable"
                self.results.append(DrainResult("postgresql", n, note=why))
        # The drains read the first --drain-events of the best run's stream, copied as they are
        # into a stream of their own, so that the run's length does not depend on how fast the
        # collector was.
        key = "bench:drain"
        entries = self.client.xrange(
            source.stream_key, min="-", max="+", count=max(1, a.drain_events // BATCH)
        )
        pipe = self.client.pipeline(transaction=False)
        for _, fields in entries:
            pipe.xadd(key, fields)
        pipe.execute()
        self.source = (len(entries), sum(len(orjson.loads(f[b"events"])) for _, f in entries))
        # Every drain reads the same entries through its own consumer group; create them all
        # before the first drain so no worker's trimming removes entries another group needs.
        groups = {}
        for store, n in plans:
            group = f"bench-{store}-{n}"
            self.client.xgroup_create(key, group, id="0")
            groups[(store, n)] = group
        for store, n in plans:
            self.results.append(self.drain(key, store, n, groups[(store, n)], pg_url))

    def drain(self, stream_key: str, store: str, n: int, group: str, pg_url) -> DrainResult:
        """One drain: ``n`` forked ingest workers store the stream into an empty store."""
        result = DrainResult(store, n, events=self.source[1])
        connect_args = {}
        if store == "sqlite":
            url = f"sqlite:///{self.tmp / f'drain-{n}w.db'}"
        else:
            schema = f"bench_ingest_{os.getpid()}_{n}w"
            self.pg_schemas.append(schema)
            with self.pg_admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            url = pg_url
            connect_args = {"options": f"-csearch_path={schema}"}
        engine = make_engine(url, connect_args=connect_args) if connect_args else make_engine(url)
        migrations.upgrade(engine)
        settings = dict(
            stream_key=stream_key,
            group=group,
            batch_size=self.args.ingest_batch,
            block_ms=100,
        )
        ctx = mp.get_context("fork")
        ready = ctx.Barrier(n + 1)
        start, stop = ctx.Event(), ctx.Event()
        cpu_queue = ctx.Queue()
        self.workers = [
            ctx.Process(
                target=drain_worker,
                args=(
                    url,
                    connect_args,
                    self.redis_url,
                    {**settings, "consumer": f"{group}-{i}"},
                    ready,
                    start,
                    stop,
                    cpu_queue,
                ),
                daemon=True,
            )
            for i in range(n)
        ]
        self.wait_quiet()
        for p in self.workers:
            p.start()
        ready.wait(60)
        last_id = self.client.xinfo_stream(stream_key)["last-generated-id"]
        t0 = time.monotonic()
        start.set()
        deadline = t0 + self.args.drain_timeout
        while True:
            info = next(
                g for g in self.client.xinfo_groups(stream_key) if g["name"].decode() == group
            )
            if info["pending"] == 0 and info["last-delivered-id"] == last_id:
                result.seconds = time.monotonic() - t0
                break
            dead = [p for p in self.workers if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                result.seconds = time.monotonic() - t0
                result.note = "worker crashed" if dead else "timed out"
                break
            time.sleep(0.02)
        stop.set()
        for _ in self.workers:
            try:
                result.cpu_seconds += cpu_queue.get(timeout=30)
            except queue.Empty:
                pass
        for p in self.workers:
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join(5)
        self.workers = []
        with engine.connect() as conn:
            result.rows = conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
            result.distinct = conn.execute(
                sa.text("SELECT count(DISTINCT message_id) FROM events")
            ).scalar()
        engine.dispose()
        result.ok = (
            not result.note and result.rows == result.events and result.distinct == result.events
        )
        log(
            f"drain {store} x{n} worker(s): {result.events:,} events in {result.seconds:.1f} s = "
            f"{result.eps:,.0f} events/s; rows {result.rows:,} (distinct {result.distinct:,})"
            + (f" [{result.note}]" if result.note else "")
        )
        return result

    # -- profile ---------------------------------------------------------------------------------


def drain_worker(
    url, connect_args, redis_url, settings, ready, start, stop, cpu_queue, warm: int = 0
) -> None:
    """One ingest worker process: wait for the start signal, work until told to stop.

    ``warm``: first store the stream's first ``warm`` entries in a transaction that is rolled
    back, so that the timed drain runs as in a worker that has been running: its statements
    compiled (SQLAlchemy, the rollups' own) and prepared by the driver on its connection.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    kwargs = {"connect_args": connect_args} if connect_args else {}
    engine = make_engine(
        url,
        json_serializer=lambda obj: orjson.dumps(obj).decode(),
        json_deserializer=orjson.loads,
        **kwargs,
    )
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    client = redis.Redis.from_url(redis_url, socket_timeout=30)
    worker = IngestWorker(client, engine, IngestSettings(**settings))
    worker.start()
    if warm:
        s = worker.settings
        entries = client.xrange(s.stream_key, count=warm)
        with engine.connect() as conn:
            transaction = conn.begin()
            write_entries(
                conn,
                [parse_entry(fields) for _, fields in entries],
                s.session_timeout,
                holdout_share=s.holdout_share,
                attribution_window=s.attribution_window,
                on_stored=s.on_stored,
            )
            transaction.rollback()
    ready.wait(60)
    start.wait()
    cpu0 = time.process_time()
    while not stop.is_set():
        worker.run_once(block_ms=settings["block_ms"])
    cpu_queue.put(time.process_time() - cpu0)
    engine.dispose()
