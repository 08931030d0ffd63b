"""Ingest with rollups on against off: the same stream entries drained into like stores.

The entries are real collector output: generated shop events (bench.console_data) posted to
``/v1/batch`` in batches of 20. Each drain is one forked ``IngestWorker`` (bench.ingest_drain's
``drain_worker``) reading the stream through its own consumer group into its own store, with
the hook the worker command runs (``webapp.cli.ingest_hook``): with ``ECRM_ROLLUPS=1`` consent
records, the rollups and the trigger rules (on), with ``ECRM_ROLLUPS=0`` the same without the
rollups (off). Rounds alternate which goes first. The store is empty (a fresh PostgreSQL schema,
or a SQLite file), or with ``history`` a copy of one generated store of that scale, rolled up
and ``ANALYZE``d, as a running shop's store is (a PostgreSQL database made from it as a
template, or a copy of the SQLite file): every drain starts from the same one.
"""

from __future__ import annotations

import base64
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import queue
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis
import sqlalchemy as sa

from analytics import rollups
from analytics.schema import rollup_visitors
from bench.console_data import SCALES, Generator, Scale, load
from bench.harness.load import interleaved
from bench.harness.machine import log
from bench.ingest_drain import drain_worker
from tracking.db import make_engine
from tracking.ingest import IngestSettings, IngestWorker
from tracking.sites import create_site
from webapp import database
from webapp.cli import ingest_hook

STREAM = "bench:console-ingest"
# Entries each worker stores and rolls back before its timed drain (a batch: its statements
# compiled and prepared, as in a worker that has been running; bench.ingest_drain).
WARM = 200


@dataclass
class Drain:
    """One drain: events stored, seconds, and whether every event (and rollup) is there."""

    rollups: bool
    round: int
    events: int = 0
    seconds: float = 0.0
    rows: int = 0
    rollup_events: int = 0
    note: str = ""
    worker_cpu: float = 0.0  # CPU seconds of the worker process from the start signal to stop
    backend_cpu: float | None = None  # of its PostgreSQL backend over the drain (local servers)

    @property
    def eps(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu(self) -> float | None:
        """Worker and backend CPU seconds: what the drain cost, whoever else used the cores."""
        return None if self.backend_cpu is None else self.worker_cpu + self.backend_cpu


@dataclass
class IngestComparison:
    """Every drain of the run, and the figures the report shows."""

    store: str
    events: int
    drains: list[Drain] = field(default_factory=list)
    history: str = ""  # what each drain's store held before it (empty: nothing)
    profile: str = ""  # cProfile of a drain with rollups on

    def rate(self, on: bool) -> float:
        """Events per second over all rounds of one configuration."""
        chosen = [d for d in self.drains if d.rollups == on]
        return sum(d.events for d in chosen) / sum(d.seconds for d in chosen)

    def cpu_per_round(self) -> list[float]:
        """off / on CPU per round (as events/s per CPU second: on / off), where measured."""
        out = []
        for r in sorted({d.round for d in self.drains}):
            on = next(d for d in self.drains if d.round == r and d.rollups)
            off = next(d for d in self.drains if d.round == r and not d.rollups)
            if on.cpu and off.cpu:
                out.append(off.cpu / on.cpu)
        return out

    def per_round(self) -> list[float]:
        """on / off rate per round."""
        rounds = sorted({d.round for d in self.drains})
        out = []
        for r in rounds:
            on = next(d for d in self.drains if d.round == r and d.rollups)
            off = next(d for d in self.drains if d.round == r and not d.rollups)
            out.append(on.eps / off.eps if off.eps else 0.0)
        return out


def fill_stream(app, write_key: str, client: redis.Redis, events: int) -> int:
    """Post ``events`` generated shop events to /v1/batch (20 a request); returns entries."""
    client.delete(STREAM)
    gen = Generator(1, Scale(events, max(10, events // 10), 300, days=1), seed=5)
    payloads = [orjson.loads(row[13]) for batch in gen.event_batches() for row in batch["events"]]
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    web = app.test_client()
    for start in range(0, len(payloads), 20):
        batch = payloads[start : start + 20]
        for event in batch:
            event.pop("receivedAt", None)
        response = web.post("/v1/batch", json={"batch": batch}, headers=auth)
        if response.status_code != 200:
            raise RuntimeError(f"/v1/batch answered {response.status_code}: {response.data!r}")
    return client.xlen(STREAM)


class IngestBench:
    """Fresh stores and forked workers for each drain; PostgreSQL schemas are dropped at the end."""

    def __init__(
        self,
        tmp: Path,
        redis_url: str,
        pg_url: str | None,
        batch_size: int,
        history: str | None = None,
    ):
        self.tmp, self.redis_url, self.pg_url = tmp, redis_url, pg_url
        self.batch_size = batch_size
        self.client = redis.Redis.from_url(redis_url)
        self.schemas: list[str] = []
        self.databases: list[str] = []
        self.history = history  # a SCALES name: each drain's store starts as a copy of one
        self.template: str | None = None  # that store: a database name, or a SQLite file
        self.before = (0, 0)  # its events, and the events its rollup_visitors count

    def _history_store(self, scale: str) -> str:
        """Generate the store every drain starts from: events of ``scale`` over 90 days, rolled
        up and ANALYZEd. Its message and order ids start with "h", so none is the stream's."""
        if self.pg_url:
            name = f"bench_ingest_{os.getpid()}_history"
            self._create_database(name)
            url = sa.engine.make_url(self.pg_url).set(database=name).render_as_string(False)
        else:
            name = str(self.tmp / "history.db")
            url = f"sqlite:///{name}"
        engine = make_engine(url)
        database.upgrade(engine)
        site_id = create_site(engine, "bench", ["https://shop.example"])[0].site_id
        loaded = load(engine, site_id, SCALES[scale], prefix="h")
        written = rollups.rebuild(engine, site_id)
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))  # as autovacuum would have by now in a running shop
            self.before = (
                conn.execute(sa.text("SELECT count(*) FROM events")).scalar(),
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(rollup_visitors.c.events), 0))
                ).scalar(),
            )
            conn.commit()
        engine.dispose()
        log(f"ingest: history store of {scale} events loaded ({loaded['rows']}); rollups {written}")
        return name

    def _create_database(self, name: str, template: str | None = None) -> None:
        admin = make_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            # A file copy: the default (PostgreSQL 15) writes the whole template through the
            # WAL, minutes for the 10M-event store.
            like = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{like}'))
        admin.dispose()
        self.databases.append(name)

    def run(self, events: int, rounds: int, app, write_key: str) -> IngestComparison:
        """``rounds`` rounds of (on, off) in rotating order over the same stream entries."""
        entries = fill_stream(app, write_key, self.client, events)
        log(f"ingest: {events:,} events in {entries:,} stream entries")
        if self.history:
            self.template = self._history_store(self.history)
        plans = list(interleaved([True, False], rounds))
        for r, on in plans:
            self.client.xgroup_create(STREAM, f"g{r}-{int(on)}", id="0")
        # Every group exists before the first drain, so no worker trims entries another needs.
        self.client.xgroup_create(STREAM, "profile", id="0")
        result = IngestComparison("postgresql" if self.pg_url else "sqlite", events)
        if self.history:
            scale = SCALES[self.history]
            result.history = (
                f"{self.before[0]:,} generated events of {scale.customers:,} customers on "
                f"{scale.items:,} items over {scale.days} days (bench.console_data, the "
                f"`--scale {self.history}` store), its rollups rebuilt and `ANALYZE` run"
            )
        for r, on in plans:
            result.drains.append(self.drain(r, on, events))
        result.profile = self.profile_rollups(rounds)
        return result

    def _store(self, name: str) -> tuple[str, dict]:
        if not self.pg_url:
            if self.template:
                shutil.copyfile(self.template, self.tmp / f"{name}.db")
            return f"sqlite:///{self.tmp / f'{name}.db'}", {}
        if self.template:
            db = f"bench_ingest_{os.getpid()}_{name}".replace("-", "_")
            self._create_database(db, self.template)
            url = sa.engine.make_url(self.pg_url).set(database=db).render_as_string(False)
            return url, {"application_name": db}
        schema = f"bench_console_{os.getpid()}_{name}"
        self.schemas.append(schema)
        admin = make_engine(self.pg_url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        # The application name finds the worker's backend (its CPU is read from /proc).
        return self.pg_url, {"options": f"-csearch_path={schema}", "application_name": schema}

    def _drop_database(self, name: str) -> None:
        admin = make_engine(self.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        self.databases.remove(name)

    def _backends(self, name: str) -> list[int]:
        """PostgreSQL backend pids of the drain's store connections (local server only)."""
        if not self.pg_url:
            return []
        admin = make_engine(self.pg_url)
        with admin.connect() as conn:
            pids = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": name},
            ).scalars()
            pids = [pid for pid in pids if Path(f"/proc/{pid}/stat").exists()]
        admin.dispose()
        return pids

    def drain(self, r: int, on: bool, events: int) -> Drain:
        """One forked ingest worker drains the stream into an empty store."""
        result = Drain(on, r, events)
        group = f"g{r}-{int(on)}"
        url, connect_args = self._store(group)
        engine = make_engine(url, connect_args=connect_args) if connect_args else make_engine(url)
        if not self.template:
            database.upgrade(engine)
            create_site(engine, "bench", ["https://shop.example"])
        settings = dict(
            stream_key=STREAM,
            group=group,
            consumer=f"{group}-0",
            batch_size=self.batch_size,
            block_ms=100,
            on_stored=ingest_hook(on),
        )
        ctx = mp.get_context("fork")
        ready, start, stop, cpu = ctx.Barrier(2), ctx.Event(), ctx.Event(), ctx.Queue()
        args = (url, connect_args, self.redis_url, settings, ready, start, stop, cpu, WARM)
        worker = ctx.Process(target=drain_worker, args=args, daemon=True)
        worker.start()
        ready.wait(120)
        backends = self._backends(connect_args.get("application_name", ""))
        backend_cpu0 = sum(_process_cpu(pid) for pid in backends)
        last_id = self.client.xinfo_stream(STREAM)["last-generated-id"]
        t0 = time.monotonic()
        start.set()
        while True:
            info = next(g for g in self.client.xinfo_groups(STREAM) if g["name"].decode() == group)
            if info["pending"] == 0 and info["last-delivered-id"] == last_id:
                break
            if worker.exitcode not in (None, 0) or time.monotonic() - t0 > 900:
                result.note = "worker crashed" if worker.exitcode else "timed out"
                break
            time.sleep(0.02)
        result.seconds = time.monotonic() - t0
        if backends:
            result.backend_cpu = sum(_process_cpu(pid) for pid in backends) - backend_cpu0
        stop.set()
        try:
            result.worker_cpu = cpu.get(timeout=60)
        except queue.Empty:
            result.note = result.note or "the worker reported no CPU time"
        worker.join(60)
        if worker.is_alive():
            worker.terminate()
            worker.join(5)
        with engine.connect() as conn:
            result.rows = conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
            result.rollup_events = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(rollup_visitors.c.events), 0))
            ).scalar()
        # What the store held before the drain is not the drain's.
        result.rows -= self.before[0]
        result.rollup_events -= self.before[1]
        engine.dispose()
        if self.pg_url and self.template:  # a copy of the 10M-event store: about 7 GB
            self._drop_database(sa.engine.make_url(url).database)
        if result.rows != events:
            result.note = result.note or f"{result.rows} rows stored of {events}"
        cpu_note = f", CPU {result.cpu:.2f} s" if result.cpu is not None else ""
        log(
            f"ingest round {r + 1} rollups {'on ' if on else 'off'}: {result.eps:,.0f} events/s "
            f"({result.seconds:.1f} s{cpu_note}), rows {result.rows:,}, "
            f"in rollups {result.rollup_events:,}" + (f" [{result.note}]" if result.note else "")
        )
        return result

    def profile_rollups(self, rounds: int) -> str:
        """cProfile of one in-process drain with rollups on: where the rollup time goes."""
        group = "profile"
        url, connect_args = self._store(group)
        engine = make_engine(url, connect_args=connect_args) if connect_args else make_engine(url)
        if not self.template:
            database.upgrade(engine)
            create_site(engine, "bench", ["https://shop.example"])
        settings = IngestSettings(
            stream_key=STREAM,
            group=group,
            consumer="profile-0",
            batch_size=self.batch_size,
            block_ms=100,
            on_stored=rollups.on_stored,
        )
        worker = IngestWorker(self.client, engine, settings)
        worker.start()
        prof = cProfile.Profile()
        prof.enable()
        while worker.run_once(block_ms=100):
            pass
        prof.disable()
        engine.dispose()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).sort_stats("cumulative")
        spent = {name: ct for (_, _, name), (_, _, _, ct, _) in stats.stats.items()}
        hook, store = spent.get("on_stored", 0.0), spent.get("write_entries", 0.0)
        share = hook / store if store else 0.0
        out.write(
            f"on_stored (the rollups) took {hook:.2f} s of write_entries' {store:.2f} s "
            f"({share:.0%}) in this drain, so without it the drain would run {1 - share:.2f}x "
            "as long.\n\n"
        )
        stats.print_stats(r"(analytics/rollups|tracking/(store|ingest))", 16)
        return out.getvalue()

    def cleanup(self) -> None:
        """Drop the PostgreSQL schemas and databases made."""
        if self.pg_url and self.schemas:
            admin = make_engine(self.pg_url)
            for schema in self.schemas:
                # One transaction each: the locks of fifty schemas' tables in one ran out of
                # PostgreSQL's lock table (max_locks_per_transaction) at --rounds 25.
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        if self.pg_url:
            for name in reversed(list(self.databases)):  # the template last
                self._drop_database(name)
        self.client.close()


def _process_cpu(pid: int) -> float:
    """CPU seconds of a local process so far, 0 once it is gone: /proc/PID/schedstat (in
    nanoseconds), else user + system time from /proc/PID/stat (in clock ticks, 10 ms)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
