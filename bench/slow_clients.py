"""Slow clients: does the service keep answering while connections trickle in a byte a second?

``python bench/slow_clients.py`` (about 4 minutes, loopback only):

1. prepares a SQLite store with one site and a 300-item catalogue (no model: recommendations
   come from the catalogue fallback, so this measures the server in front of the app, not the
   model; bench/serve.py measures that) and an embedded Redis;
2. for each setup (gunicorn with the repo's webapp/gunicorn.conf.py and the config's worker
   count; nginx with deploy/nginx/ecrm.conf when the setup has it, skipped when nginx is
   missing):

   a. throughput without slow clients: wrk, 2 threads, 32 connections, ``--wrk-seconds`` each
      on POST /v1/batch (bench/lua/batch.lua, 20 events a request) and on
      GET /v1/recommendations (what the worker model costs a healthy server);
   b. N slow connections held open by another process: half send their headers a byte a second
      (slowloris), half send complete headers and then a 100 KB body a byte a second; a
      connection the server closes is opened again at once, so N stay open;
   c. meanwhile one normal client, one request at a time on a fresh connection with a 10 s
      timeout, cycles through GET /healthz, POST /v1/batch (one event) and
      GET /v1/recommendations for ``--seconds``: p50 / p99 / max per route, timeouts counted
      as 10 s;

3. prints the figures and replaces the ``## Slow clients (bench/slow_clients.py)`` section of
   bench/RESULTS.md.

Nothing here is asserted by the tests (tests/test_slow_clients.py checks behaviour only).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness.load import LUA_DIR, parse_text_summary, run_wrk  # noqa: E402
from bench.harness.machine import log, machine_line  # noqa: E402
from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402
from bench.harness.service import (  # noqa: E402
    Gunicorn,
    Process,
    app_env,
    create_store,
    free_port,
    start_redis,
)

SECTION = "## Slow clients (bench/slow_clients.py)"
ORIGIN = "https://shop.example"
TIMEOUT = 10.0  # the normal client's patience per request


@dataclass
class Setup:
    """One way of serving the app."""

    name: str
    server: str  # a key of SERVERS
    slow: int


@dataclass
class Outcome:
    """What one setup measured."""

    setup: Setup
    latency: dict = field(default_factory=dict)  # route -> [ms, ...] (timeouts as TIMEOUT)
    failures: dict = field(default_factory=dict)  # route -> timeouts and errors
    statuses: dict = field(default_factory=dict)  # route -> {status: count}
    reopened: int = 0  # slow connections the server closed (and the trickler opened again)
    skipped: str = ""


# -- the store ---------------------------------------------------------------------------------


def prepare(work: Path) -> dict:
    """Embedded Redis, a migrated SQLite store, one site with a catalogue."""
    from demo import ShopSpec, generate_shop
    from tracking.catalogue import upsert_items, validate_item
    from tracking.db import make_engine

    redis_server = start_redis(work / "redis")
    url = f"sqlite:///{work / 'ecrm.db'}"
    site, _ = create_store(url, "Slow clients bench", [ORIGIN])
    engine = make_engine(url)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    shop = generate_shop(ShopSpec(seed=7, n_customers=50, days=3, start=start))
    upsert_items(engine, site.site_id, [validate_item(item) for item in shop.items])
    engine.dispose()
    return {"redis": redis_server, "db_url": url, "write_key": site.write_key, "work": work}


# -- servers -----------------------------------------------------------------------------------


def start_gunicorn(store: dict, worker_class: str) -> tuple[Gunicorn, int]:
    """gunicorn with the config's worker count and this worker class, ready."""
    var = store["work"] / f"var-{worker_class}"
    env = app_env(
        store["redis"].url,
        store["db_url"],
        var,
        ECRM_WEB_WORKER_CLASS=worker_class,
        ECRM_HOLDOUT_SHARE="0",
    )
    log_path = store["work"] / f"gunicorn-{worker_class}.log"
    server = Gunicorn(env, log_path, options=["--log-level", "warning"], timeout=90)
    return server, server.port


def nginx_binary() -> str | None:
    """nginx's path (None when it is not installed)."""
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


def start_nginx(store: dict, upstream: int) -> tuple[Process, int]:
    """nginx with deploy/nginx/ecrm.conf (its two marked lines rewritten) on a free port."""
    port = free_port()
    work = store["work"] / f"nginx-{port}"
    work.mkdir()
    site = (ROOT / "deploy" / "nginx" / "ecrm.conf").read_text()
    site = re.sub(r".*# ecrm:listen.*", f"    listen 127.0.0.1:{port} backlog=4096;", site)
    site = re.sub(r".*# ecrm:upstream.*", f"    server 127.0.0.1:{upstream};", site)
    (work / "ecrm.conf").write_text(site)
    temp = "".join(
        f"  {kind}_temp_path {work / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {work / 'nginx.pid'};\n"
        f"error_log {work / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n  access_log off;\n{temp}  include {work / 'ecrm.conf'};\n}}\n"
    )
    argv = [nginx_binary(), "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"]
    process = Process(argv, dict(os.environ), work / "nginx.log")
    process.wait_ready(port, timeout=90)
    return process, port


# -- slow clients (run in a child process: python bench/slow_clients.py --trickle PORT N) -------


def trickle(port: int, n: int) -> None:
    """Hold ``n`` slow connections open until stdin closes; print how many were reopened."""
    import selectors

    def open_one(i: int) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        else:
            s.sendall(
                b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
        s.setblocking(False)
        return s

    socks = [open_one(i) for i in range(n)]
    print("ready", flush=True)
    reopened = 0
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    while not sel.select(timeout=1.0):
        for i, s in enumerate(socks):
            try:
                s.send(b"a")
                continue
            except BlockingIOError:
                continue  # its buffer is full: the server is not reading it, which is fine
            except OSError:
                pass
            s.close()
            try:
                socks[i] = open_one(i)
                reopened += 1
            except OSError:
                pass
    print(json.dumps({"reopened": reopened}), flush=True)


class Trickler:
    """The child process holding the slow connections (``--trickle PORT N``)."""

    def __init__(self, port: int, n: int):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--trickle", str(port), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(30)
        return json.loads(out.strip().splitlines()[-1])["reopened"]


# -- the normal client and wrk -----------------------------------------------------------------


def one_event() -> bytes:
    """A one-event Segment batch with a fresh messageId."""
    return json.dumps(
        {
            "batch": [
                {
                    "type": "track",
                    "event": "Product Viewed",
                    "messageId": uuid.uuid4().hex,
                    "anonymousId": "bench-normal",
                    "properties": {"product_id": "sku-0001", "price": 9.5},
                }
            ]
        }
    ).encode()


def normal_client(port: int, write_key: str, seconds: float, outcome: Outcome) -> None:
    """One request at a time, in turn on each route, for ``seconds``: into ``outcome``."""
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    routes = {
        "GET /healthz": lambda: ("GET", "/healthz", None, {}),
        "POST /v1/batch": lambda: (
            "POST",
            "/v1/batch",
            one_event(),
            {"Authorization": auth, "Content-Type": "application/json"},
        ),
        "GET /v1/recommendations": lambda: (
            "GET",
            f"/v1/recommendations?write_key={write_key}&anonymous_id=a-{uuid.uuid4().hex[:6]}&n=10",
            None,
            {"Origin": ORIGIN},
        ),
    }
    for name in routes:
        outcome.latency[name], outcome.failures[name], outcome.statuses[name] = [], 0, {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, make in routes.items():
            method, path, body, headers = make()
            start = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                conn.close()
                status = response.status
                outcome.statuses[name][status] = outcome.statuses[name].get(status, 0) + 1
                if status >= 500:
                    outcome.failures[name] += 1
                outcome.latency[name].append((time.monotonic() - start) * 1000)
            except OSError:
                outcome.failures[name] += 1
                outcome.latency[name].append(max(TIMEOUT, time.monotonic() - start) * 1000)


def wrk(port: int, write_key: str, route: str, seconds: float) -> tuple[float, int, int]:
    """(requests/s, non-2xx, socket errors) of one wrk run, from wrk's own summary."""
    url = f"http://127.0.0.1:{port}"
    if route == "batch":
        env = {"BENCH_WRITE_KEY": write_key, "BENCH_RUN": uuid.uuid4().hex[:8]}
        run = run_wrk(f"{url}/v1/batch", seconds, script=LUA_DIR / "batch.lua", env=env)
    else:
        path = f"/v1/recommendations?write_key={write_key}&anonymous_id=w-1&n=10"
        run = run_wrk(url + path, seconds, headers=[f"Origin: {ORIGIN}"])
    found = parse_text_summary(run.text)
    errors = found["errors"]
    return found["rps"], errors["status"], sum(errors.values()) - errors["status"]


SERVERS = {  # what each setup's name in the tables is served by
    "sync": "gunicorn, sync workers",
    "gevent": "gunicorn, gevent workers",
    "nginx": "nginx + gunicorn sync workers",
}


def start_servers(store: dict) -> tuple[dict[str, int], list[Process]]:
    """Every server at once (idle ones cost nothing): {server: port}, and their processes."""
    ports: dict[str, int] = {}
    processes: list[Process] = []
    for kind in ("sync", "gevent"):
        process, ports[kind] = start_gunicorn(store, kind)
        processes.append(process)
    if nginx_binary() is not None:
        process, ports["nginx"] = start_nginx(store, ports["sync"])
        processes.append(process)
    return ports, processes


def throughput(ports: dict[str, int], store: dict, args) -> dict:
    """{server: {route: [(requests/s, non-2xx, errors) per round]}}, servers interleaved."""
    results: dict = {name: {"batch": [], "recommendations": []} for name in ports}
    if not shutil.which("wrk") or args.wrk_seconds <= 0:
        return results
    for port in ports.values():  # warm-up: caches, connections, code paths
        for route in ("batch", "recommendations"):
            wrk(port, store["write_key"], route, 1)
    names = list(ports)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for route in ("batch", "recommendations"):
                results[name][route].append(
                    wrk(ports[name], store["write_key"], route, args.wrk_seconds)
                )
            log(
                f"  round {r + 1}, {SERVERS[name]}: batch "
                f"{results[name]['batch'][-1][0]:,.0f}/s, recommendations "
                f"{results[name]['recommendations'][-1][0]:,.0f}/s"
            )
    return results


def measure(setup: Setup, ports: dict[str, int], store: dict, args) -> Outcome:
    """The normal client's latencies while ``setup.slow`` slow connections are held."""
    outcome = Outcome(setup)
    if setup.server not in ports:
        outcome.skipped = "nginx is not installed (apt-get install nginx)"
        return outcome
    port = ports[setup.server]
    trickler = Trickler(port, setup.slow)
    try:
        time.sleep(args.settle)
        normal_client(port, store["write_key"], args.seconds, outcome)
    finally:
        outcome.reopened = trickler.stop()
    return outcome


# -- report ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of the values (nearest rank; 0 when empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def ms(value: float) -> str:
    """Milliseconds as the table shows them (timeouts as >= the timeout)."""
    return f"≥{TIMEOUT * 1000:,.0f}" if value >= TIMEOUT * 1000 else f"{value:,.1f}"


def median(values: list[float]) -> float:
    """The upper median (0 when empty)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def report(outcomes: list[Outcome], rates: dict, args, started: float, when: str) -> str:
    """The ``## Slow clients (bench/slow_clients.py)`` section."""
    run_time = f"{time.monotonic() - started:.0f} s"
    lines = [
        *header(SECTION, args.command, run_time, machine_line(), when),
        "- Servers, all started at once: `python -m gunicorn -c webapp/gunicorn.conf.py` with the "
        f"config's worker count ({os.cpu_count() * 2}: two per core), `ECRM_WEB_WORKER_CLASS` "
        "sync and gevent; nginx (1 worker process, deploy/nginx/ecrm.conf) in front of the sync "
        "one; SQLite, embedded Redis, a 300-item catalogue and no model (recommendations from the "
        "catalogue fallback)",
        "- Slow connections: held by another process, half sending headers a byte a second, "
        "half a 100 KB body a byte a second after complete headers; each one the server closes "
        "is opened again at once",
        f"- Normal client: one request at a time, a fresh connection each, {TIMEOUT:g} s timeout "
        f"(counted as {TIMEOUT:g} s), GET /healthz, POST /v1/batch (one event) and "
        f"GET /v1/recommendations in turn for {args.seconds:g} s after {args.settle:g} s of "
        "slow connections",
        "",
        "| setup | slow connections | route | answers | p50 ms | p99 ms | max ms | "
        "timeouts / 5xx | statuses |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        if o.skipped:
            lines.append(f"| {o.setup.name} | {o.setup.slow} | skipped: {o.skipped} | | | | | | |")
            continue
        for route, values in o.latency.items():
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(o.statuses[route].items()))
            lines.append(
                f"| {o.setup.name} | {o.setup.slow} | {route} | {len(values)} | "
                f"{ms(percentile(values, 0.5))} | {ms(percentile(values, 0.99))} | "
                f"{ms(max(values, default=0))} | {o.failures[route]} | {statuses or 'none'} |"
            )
    closed = "; ".join(
        f"{o.setup.name} ({o.setup.slow}): {o.reopened}" for o in outcomes if not o.skipped
    )
    lines += [
        "",
        f"Slow connections the server closed during the window (each reopened at once): {closed}.",
    ]
    if any(r["batch"] for r in rates.values()):
        base = rates.get("sync")
        lines += [
            "",
            f"Throughput without slow clients (what the choice costs a healthy server): wrk 2 "
            f"threads, 32 connections, {args.rounds} rounds of {args.wrk_seconds:g} s per server "
            "and route, the servers interleaved, after a 1 s warm-up each; POST /v1/batch of 20 "
            "events (bench/lua/batch.lua), GET /v1/recommendations. Median of the rounds, each "
            "round in brackets.",
            "",
            "| server | POST /v1/batch requests/s | vs sync | GET /v1/recommendations requests/s "
            "| vs sync | non-2xx / socket errors |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for name, routes in rates.items():
            cells = []
            for route in ("batch", "recommendations"):
                values = [r[0] for r in routes[route]]
                each = " / ".join(f"{v:,.0f}" for v in values)
                ratio = median(values) / median([r[0] for r in base[route]]) if base else 0
                cells += [f"{median(values):,.0f} ({each})", f"{ratio:.2f}x"]
            bad = sum(r[1] for rs in routes.values() for r in rs)
            errors = sum(r[2] for rs in routes.values() for r in rs)
            lines.append(f"| {SERVERS[name]} | {' | '.join(cells)} | {bad} / {errors} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark (or, with ``--trickle``, be the slow connections' process)."""
    if len(sys.argv) == 4 and sys.argv[1] == "--trickle":
        trickle(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-slow", type=int, default=50, help="slow connections for make run")
    parser.add_argument("--prod-slow", type=int, default=200, help="for the production setup")
    parser.add_argument("--seconds", type=float, default=20, help="normal client's window")
    parser.add_argument("--settle", type=float, default=5, help="slow connections first")
    parser.add_argument("--wrk-seconds", type=float, default=5, help="0: no throughput runs")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per server")
    parser.add_argument(
        "--no-write", "--no-results", action="store_true", help="do not touch RESULTS.md"
    )
    args = parser.parse_args()
    args.command = command_line("bench/slow_clients.py")
    started = time.monotonic()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # The old setup goes last: slow clients leave its workers killed and restarting.
    setups = [
        Setup("make run: gevent workers", "gevent", args.run_slow),
        Setup("production: nginx + sync workers", "nginx", args.prod_slow),
        Setup("gevent workers alone", "gevent", args.prod_slow),
        Setup("old: sync workers alone", "sync", args.run_slow),
    ]
    with tempfile.TemporaryDirectory(prefix="ecrm-slow-") as tmp:
        store = prepare(Path(tmp))
        processes: list[Process] = []
        try:
            ports, processes = start_servers(store)
            log("throughput without slow clients")
            rates = throughput(ports, store, args)
            outcomes = []
            for setup in setups:
                log(f"{setup.name}, {setup.slow} slow connections")
                outcomes.append(measure(setup, ports, store, args))
        finally:
            for process in reversed(processes):
                process.stop()
            store["redis"].stop()
    text = report(outcomes, rates, args, started, when)
    print(text)
    if not args.no_write:
        write_section(RESULTS, SECTION, text)
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
