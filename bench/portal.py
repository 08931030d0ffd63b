"""Portal pages, export and erasure of a customer with 10,000 events, serving while erasures run.

    python bench/portal.py --store-url postgresql://postgres@127.0.0.1:5432/bench10m  # 10M store
    python bench/portal.py                  # a fresh SQLite store of --others events (a quick look)

1. The store: ``--store-url`` (its site ``--site``, migrated to this code's schema), else a fresh
   SQLite file holding --others generated events. Bench customers are added through the ingest
   path's own write function (bench.portal_rights.store): one for the pages (--mine events, 20
   orders, an email, two addresses), one for export and erasure (--mine events), and
   --erasures more for the serving phase. The run erases every one of them (the pages' one at
   the end; and, should a step fail, any left), then deletes the orders erasure keeps for
   accounting, so the store keeps only their erasure receipts and tombstones.
2. Portal pages: every GET page of ``/account/`` a signed-in customer opens, timed in-process
   with Flask's test client (bench.console_pages.time_urls: server time of the WSGI call, warm,
   --calls each); target p95 under 100 ms. The slowest page is profiled (cProfile).
3. Export (accounts.export, JSON encoded) and erasure (accounts.erasure.erase) of the
   --mine-event customer, wall clock, in-process; targets under 2 s and 5 s. With --train a
   model is first trained on the whole store (recommender.training.train on the events table's
   frame, into the run's own model registry), so erasure forgets the customer in it and serving
   answers from it; the time until the model files hold no row of theirs (erasure's background
   rewrite, accounts.erasure.wait_for_models) is reported beside.
4. Serving: gunicorn (webapp/gunicorn.conf.py, --workers sync workers) on the store and an
   embedded Redis; wrk with bench/lua/recs.lua (browser calls with the write key: anonymous ids
   of the store's customers, 20% never-seen visitors) for --serve-seconds alone, then in
   5-second runs for as long as --erasures erasures take, run one after another by this process
   as the API does them: requests per second, latency and errors (non-2xx and socket errors) of
   each phase; target: no errors. The phase lasts until the model files' background rewrite
   of the last erasure is done.
5. Prints the figures and replaces the ``## Portal (bench/portal.py)`` section of RESULTS.md
   (unless --no-results).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis as redis_lib  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from accounts import addresses, erasure, export, portal_sessions  # noqa: E402
from bench.console_pages import Timing, profile, time_urls  # noqa: E402
from bench.harness.load import LUA_DIR, ensure_wrk, run_wrk  # noqa: E402
from bench.harness.machine import log, machine_line  # noqa: E402
from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402
from bench.harness.service import Gunicorn, app_env, create_store, start_redis  # noqa: E402
from bench.portal_rights import events_of, store  # noqa: E402
from tracking.db import make_engine  # noqa: E402
from tracking.events import iso  # noqa: E402
from tracking.schema import identities, sites  # noqa: E402

HEADING = "## Portal (bench/portal.py)"
PAGE_TARGET_MS = 100.0
EXPORT_TARGET_S, ERASE_TARGET_S = 2.0, 5.0
# Pages that need a step before them (a token, a code sent, an account deleted) or say only
# "no site": not a signed-in customer's page.
STATEFUL = {
    "portal.enter",
    "portal.sign_in_code",
    "portal.confirm_email",
    "portal.confirm_delete",
    "portal.deleted",
    "portal.no_site",
}
# "Download my data" is the export (accounts.export of the same customer, timed below against
# its own target of 2 s), a file download rather than a page.
DOWNLOADS = {"portal.data_export"}
ADDRESS = {
    "kind": "shipping",
    "name": "Bench Customer",
    "line1": "1 Bench Street",
    "city": "Seoul",
    "country": "KR",
}
ITEMS = 2_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store-url", help="an existing store (default: a fresh SQLite file)")
    p.add_argument("--site", type=int, default=1, help="the store's site (with --store-url)")
    p.add_argument("--others", type=int, default=200_000, help="events of a fresh store")
    p.add_argument("--mine", type=int, default=10_000, help="events of each bench customer")
    p.add_argument("--calls", type=int, default=30, help="timed calls per page (after one warm)")
    p.add_argument("--erasures", type=int, default=4, help="erasures under serving load")
    p.add_argument("--serve-seconds", type=float, default=20, help="serving alone (0: no serving)")
    p.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument(
        "--train",
        action="store_true",
        help="train a model on the whole store first (read from the events table), so erasure "
        "rewrites it and serving answers from it",
    )
    p.add_argument("--no-results", action="store_true", help="leave RESULTS.md alone")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- bench customers ---------------------------------------------------------------------------


def orders_of(user_id: str, n: int):
    """``n`` Order Completed events of the customer, a day apart, two lines each."""
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for i in range(n):
        yield {
            "type": "track",
            "event": "Order Completed",
            "messageId": uuid.uuid4().hex,
            "userId": user_id,
            "anonymousId": f"anon-{user_id}-0",
            "timestamp": iso(start + timedelta(days=i)),
            "properties": {
                "order_id": f"{user_id}-order-{i}",
                "total": 29.0,
                "currency": "KRW",
                "products": [
                    {"product_id": f"sku-{i % ITEMS}", "price": 9.5, "quantity": 2},
                    {"product_id": f"sku-{(i + 7) % ITEMS}", "price": 10.0, "quantity": 1},
                ],
            },
        }


def add_customer(engine, site_id: int, user_id: str, events: int, orders: int = 0) -> int:
    """A bench customer through the ingest write path: an identify with an email, ``events``
    views, ``orders`` orders; the events stored."""
    identify = {
        "type": "identify",
        "messageId": uuid.uuid4().hex,
        "userId": user_id,
        "anonymousId": f"anon-{user_id}-0",
        "timestamp": iso(datetime(2026, 8, 31, tzinfo=UTC)),
        "traits": {"email": f"{user_id}@bench.example", "name": "Bench Customer"},
    }
    views = events_of(events, 1, ITEMS, user_id=user_id)
    return store(engine, site_id, [identify, *views, *orders_of(user_id, orders)])


# -- the pages ---------------------------------------------------------------------------------


def page_urls(app, site_id: int, address_id: int) -> tuple[list, list]:
    """(name, URL) of the signed-in customer's GET pages, and of the pages for anyone."""
    from flask import url_for

    mine, anyone = [], []
    values = {"address_id": address_id}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("portal.") or "GET" not in rule.methods:
            continue
        if rule.endpoint in STATEFUL | DOWNLOADS or rule.arguments - values.keys():
            continue
        with app.test_request_context():
            url = url_for(rule.endpoint, **{a: values[a] for a in rule.arguments})
        name = rule.endpoint.removeprefix("portal.")
        if rule.endpoint in ("portal.sign_in", "portal.look_css"):
            anyone.append((name, f"{url}?site={site_id}"))
            continue
        mine.append((name, url))
        if rule.endpoint == "portal.orders":
            mine.append(("orders page 2", f"{url}?page=2"))
    return mine, anyone


def time_pages(app, engine, site_id: int, user_id: str, calls: int) -> list[Timing]:
    """Every page, signed in as ``user_id`` with a portal session (as from the shop)."""
    from webapp.portal import COOKIE, COOKIE_PATH

    with engine.begin() as conn:
        values, _ = addresses.check_address(ADDRESS)
        address_id = addresses.add_address(conn, site_id, user_id, values)["address_id"]
        addresses.add_address(conn, site_id, user_id, {**values, "kind": "billing"})
    token = portal_sessions.start_session(engine, site_id, user_id, how="token", locale="ko")
    client = app.test_client()
    client.set_cookie(COOKIE, token, path=COOKIE_PATH)
    mine, anyone = page_urls(app, site_id, address_id)
    timings = time_urls(client, mine, calls)
    return timings + time_urls(app.test_client(), anyone, calls)


# -- serving while erasures run ------------------------------------------------------------------


def recs_paths(engine, site_id: int, work: Path) -> tuple[Path, str, str]:
    """bench/lua/recs.lua's paths file (customers' anonymous ids, 20% cold), cold prefix, origin."""
    with engine.connect() as conn:
        site = conn.execute(sa.select(sites).where(sites.c.site_id == site_id)).one()
        anonymous = (
            conn.execute(
                sa.select(identities.c.anonymous_id)
                .where(identities.c.site_id == site_id)
                .limit(4000)
            )
            .scalars()
            .all()
        )
    origins = [o for o in site.allowed_origins if o != "*"]
    origin = origins[0] if origins else "https://bench.example"
    base = f"/v1/recommendations?write_key={site.write_key}&n=8"
    lines = [f"{base}&anonymous_id={a}" for a in anonymous] or [f"{base}&anonymous_id=x"]
    lines += ["COLD"] * max(1, len(lines) // 4)
    path = work / "paths.txt"
    path.write_text("\n".join(lines) + "\n")
    return path, f"{base}&anonymous_id=", origin


def load(url: str, paths: Path, cold: str, origin: str, seconds: float, connections: int):
    env = {"BENCH_PATHS": str(paths), "BENCH_COLD_PREFIX": cold, "BENCH_ORIGIN": origin}
    return run_wrk(
        url, seconds, script=LUA_DIR / "recs.lua", env=env, connections=connections, threads=2
    )


WARM_RUNS = 8  # at most, of 5 s each


def warm_up(url: str, paths: Path, cold: str, origin: str, connections: int) -> float:
    """Load until each worker has its model and caches: a 5-second run in which answers came
    back with p99 under a second (at most WARM_RUNS runs); seconds spent."""
    clock = time.perf_counter()
    for _ in range(WARM_RUNS):
        run = load(url, paths, cold, origin, 5, connections)
        p99_ms = run.summary["latency_us"]["p99"] / 1000 if run.summary["requests"] else None
        log(f"warming: {run.summary['requests']:,} answers, p99 {p99_ms} ms")
        if p99_ms is not None and p99_ms < 1000:
            break
    return time.perf_counter() - clock


def phase(runs) -> dict:
    """Requests per second, worst p99, median p50 and errors over wrk runs."""
    seconds = sum(r.seconds for r in runs)
    served = [r for r in runs if r.summary["requests"]]
    return {
        "seconds": seconds,
        "requests": sum(r.summary["requests"] for r in runs),
        "rps": sum(r.summary["requests"] for r in runs) / seconds if seconds else 0.0,
        # A run in which no answer came back has no latency: counted apart, not as 0 ms.
        "p50_ms": sorted(r.summary["latency_us"]["p50"] for r in served)[len(served) // 2] / 1000
        if served
        else float("nan"),
        "p99_ms": max((r.summary["latency_us"]["p99"] for r in served), default=0) / 1000,
        "silent_runs": len(runs) - len(served),
        "runs": len(runs),
        "errors": sum(r.error_count for r in runs),
        "error_kinds": {
            k: sum(r.summary["errors"][k] for r in runs) for k in runs[0].summary["errors"]
        },
    }


def serve_while_erasing(a, stores, site_id: int, people: list[str], env: dict, work: Path):
    """Serving alone, then while ``people`` are erased one after another; both phases."""
    ensure_wrk()
    paths, cold, origin = recs_paths(stores.engine, site_id, work)
    server = Gunicorn(
        env, work / "gunicorn.log", workers=a.workers, options=["--log-level", "warning"]
    )
    try:
        warm_s = warm_up(server.url, paths, cold, origin, a.connections)
        # Alone in runs of about 5 s too, so both phases' medians and worst p99 compare.
        runs = max(1, round(a.serve_seconds / 5))
        seconds = a.serve_seconds / runs
        alone = phase(
            [load(server.url, paths, cold, origin, seconds, a.connections) for _ in range(runs)]
        )
        erase_times: list[float] = []
        failures: list[str] = []
        files: dict[str, float] = {}

        def erase_all():
            for person in people:
                clock = time.perf_counter()
                try:
                    erasure.erase(stores, site_id, person, requested_by="bench")
                except Exception as e:  # counted and reported, never hidden
                    failures.append(f"{type(e).__name__}: {e}")
                erase_times.append(time.perf_counter() - clock)
            # The model files' rewrite (a process of its own, erasures coalesced) under load too.
            clock = time.perf_counter()
            files["clean"] = erasure.wait_for_models(stores, site_id)
            files["after_s"] = time.perf_counter() - clock

        worker = threading.Thread(target=erase_all)
        runs = []
        worker.start()
        while worker.is_alive() or not runs:
            runs.append(load(server.url, paths, cold, origin, 5, a.connections))
        worker.join()
        during = phase(runs)
    finally:
        server.stop()
    return {
        "warm_s": warm_s,
        "alone": alone,
        "during": during,
        "erase_s": erase_times,
        "failures": failures,
        "files": files,
    }


def train_model(engine, site_id: int, models: Path) -> dict:
    """A model of the whole store in the run's registry (recommender.training, no tuning)."""
    from recommender import training
    from recommender.event_frames import read_events

    clock = time.perf_counter()
    frame = read_events(engine, site_id, source="store")
    read_s = time.perf_counter() - clock
    log(f"read {len(frame):,} interactions in {read_s:.1f} s; training")
    # The generated stores have no taste for a model to learn, so it may score below
    # popularity, which training refuses to promote. The bench needs a model of the store's
    # size for erasure to rewrite, not a good one: every other check of check_model stays.
    checks = training.check_model

    def without_popularity(model, interactions, metrics=None, baseline=None, K=10, **rest):
        return checks(model, interactions, metrics, None, K, **rest)

    training.check_model = without_popularity
    clock = time.perf_counter()
    settings = training.TrainSettings(site_id, models / str(site_id), tune_seconds=0)
    try:
        report = training.train(engine, settings, frame=frame)
    finally:
        training.check_model = checks
    if not report.promoted:
        raise SystemExit(f"training did not promote a model: {report.failures}")
    seconds = time.perf_counter() - clock
    log(f"trained and promoted {report.version} in {seconds:.1f} s")
    return {
        "rows": len(frame),
        "read_s": read_s,
        "train_s": seconds,
        "customers": report.n_users,
        "ndcg": report.metrics.get("ndcg@10", float("nan")),
        "popularity_ndcg": report.baseline.get("ndcg@10", float("nan")),
    }


def clean_up(stores, site_id: int, people: list[str]) -> None:
    """Erase the bench customers still in the store; delete their (unlinked) orders."""
    from accounts.personal_data import find_person
    from tracking.schema import order_lines, orders

    for person in people:
        with stores.engine.connect() as conn:
            left = find_person(conn, site_id, person)
        if left is not None:
            erasure.erase(stores, site_id, person, requested_by="bench")
    erasure.wait_for_models(stores, site_id)  # the run's model folder is about to go
    theirs = sa.or_(*(orders.c.order_id.like(f"{person}-order-%") for person in people))
    with stores.engine.begin() as conn:
        ids = sa.select(orders.c.order_id).where(orders.c.site_id == site_id, theirs)
        conn.execute(
            order_lines.delete().where(
                order_lines.c.site_id == site_id, order_lines.c.order_id.in_(ids)
            )
        )
        conn.execute(orders.delete().where(orders.c.site_id == site_id, theirs))


# -- the run -----------------------------------------------------------------------------------


def main(argv=None) -> dict:
    a = parse_args(argv)
    started = time.monotonic()
    figures: dict = {"args": vars(a) | {"results": None}}
    with tempfile.TemporaryDirectory(prefix="ecrm-portal-") as tmp:
        work = Path(tmp)
        url = a.store_url
        if url is None:
            url = f"sqlite:///{work / 'portal.db'}"
            site, _ = create_store(url, "Portal bench", ["https://shop.example"])
            a.site = site.site_id
        from webapp import create_app, database

        engine = make_engine(url)
        database.upgrade(engine)
        if a.store_url is None:
            clock = time.perf_counter()
            n = store(engine, a.site, events_of(a.others, 20_000, ITEMS))
            log(f"stored {n:,} other customers' events in {time.perf_counter() - clock:.1f} s")
        with engine.connect() as conn:
            figures["store_events"] = conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
        run = uuid.uuid4().hex[:8]
        pages_person, rights_person = f"bench-portal-{run}", f"bench-rights-{run}"
        erased = [f"bench-erase-{run}-{i}" for i in range(a.erasures)]
        clock = time.perf_counter()
        add_customer(engine, a.site, pages_person, a.mine, orders=20)
        for person in [rights_person, *erased]:
            add_customer(engine, a.site, person, a.mine)
        log(f"added {2 + len(erased)} bench customers in {time.perf_counter() - clock:.1f} s")
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE events, customers, identities, sessions, orders"))

        redis_server = start_redis(work / "redis")
        var = work / "var"
        app = create_app(
            {
                "DATABASE_URL": url,
                "REDIS_URL": redis_server.url,
                "SECRET_KEY": "bench-" + uuid.uuid4().hex,
                "VAR_DIR": str(var),
                "COOKIE_SECURE": "0",
                "HOLDOUT_SHARE": 0.0,
            }
        )
        client = redis_lib.Redis.from_url(redis_server.url)
        stores = erasure.Stores(
            engine,
            client,
            app.config["STREAM_KEY"],
            Path(app.config["SPOOL_DIR"]),
            var / "models",
        )
        try:
            figures["load_before"] = os.getloadavg()
            if a.train:
                figures["training"] = train_model(engine, a.site, var / "models")
            log(f"timing portal pages ({a.calls} calls each, warm)")
            timings = time_pages(app, engine, a.site, pages_person, a.calls)
            figures["pages"] = timings
            slowest = max((t for t in timings if t.ms), key=lambda t: t.p95, default=None)
            if slowest is not None and slowest.p95 > PAGE_TARGET_MS:
                figures["profile"] = profile(app.test_client(), slowest, None)

            clock = time.perf_counter()
            document = export.export(stores, a.site, rights_person)
            size = len(export.encode(document))
            figures["export_s"] = time.perf_counter() - clock
            figures["export_events"] = len(document["tables"]["events"]["rows"])
            figures["export_mb"] = size / 1e6
            clock = time.perf_counter()
            receipt = erasure.erase(stores, a.site, rights_person, requested_by="bench")
            figures["erase_s"] = time.perf_counter() - clock
            figures["erase_counts"] = receipt["counts"]
            figures["files_clean"] = erasure.wait_for_models(stores, a.site)
            figures["files_s"] = time.perf_counter() - clock
            log(
                f"export {figures['export_s']:.2f} s ({figures['export_events']:,} events, "
                f"{size / 1e6:.1f} MB); erasure {figures['erase_s']:.2f} s {receipt['counts']}; "
                f"model files rewritten {figures['files_s']:.2f} s after it began"
            )
            if a.serve_seconds > 0 and erased:
                env = app_env(redis_server.url, url, var, ECRM_HOLDOUT_SHARE="0")
                figures["serving"] = serve_while_erasing(a, stores, a.site, erased, env, work)
            else:
                for person in erased:
                    erasure.erase(stores, a.site, person, requested_by="bench")
            erasure.erase(stores, a.site, pages_person, requested_by="bench")
            erasure.wait_for_models(stores, a.site)  # before the run's folder goes
            figures["load_after"] = os.getloadavg()
            with engine.connect() as conn:
                left = conn.execute(
                    sa.text("SELECT count(*) FROM events WHERE site_id = :s AND user_id LIKE :p"),
                    {"s": a.site, "p": f"bench-%-{run}%"},
                ).scalar()
            assert left == 0, f"{left} events of the bench customers are left"
        finally:
            # Whatever failed, the store is left as the run found it: bench customers still
            # there are erased, and the orders erasure keeps for accounting are removed.
            clean_up(stores, a.site, [pages_person, rights_person, *erased])
            app.extensions["ecrm_served"].close()
            app.extensions["ecrm_serving"].close()
            app.extensions["ecrm"].engine.dispose()
            app.extensions["ecrm"].redis.close()
            engine.dispose()
            client.close()
            redis_server.stop()
    run_time = f"{(time.monotonic() - started) / 60:.1f} min"
    lines = report(a, figures, run_time, url)
    print("\n".join(lines))
    if not a.no_results:
        write_section(a.results, HEADING, "\n".join(lines))
    return figures


def report(a, figures: dict, run_time: str, url: str) -> list[str]:
    """The RESULTS.md section of this run."""
    store_kind = sa.engine.make_url(url).get_backend_name()
    training = figures.get("training")
    where = sa.engine.make_url(url).database if a.store_url else "a fresh SQLite file"
    lines = header(HEADING, command_line("bench/portal.py"), run_time, machine_line())
    lines += [
        "",
        f"Store: {store_kind} `{where}` (site {a.site}), {figures['store_events']:,} events "
        f"when the run began, bench customers of {a.mine:,} events each added through the "
        "ingest write path and erased by the run. Targets (issue 13): p95 of each portal page "
        f"under {PAGE_TARGET_MS:.0f} ms; export under {EXPORT_TARGET_S:.0f} s and erasure under "
        f"{ERASE_TARGET_S:.0f} s for a customer with {a.mine:,} events; no serving errors while "
        "erasures run.",
        "",
        f"Portal pages, server time per call (Flask test client, warm, {a.calls} calls), signed "
        f"in as a customer with {a.mine:,} events, 20 orders and two addresses (the download "
        "`/account/data/export.json` is the export, timed below):",
        "",
        "| page | URL | status | p50 ms | p95 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for t in figures["pages"]:
        flag = f" **over {PAGE_TARGET_MS:.0f} ms**" if t.p95 > PAGE_TARGET_MS else ""
        lines.append(f"| {t.name} | `{t.url}` | {t.status} | {t.p50:.1f} | {t.p95:.1f}{flag} |")
    over = [t.name for t in figures["pages"] if t.p95 > PAGE_TARGET_MS]
    lines += ["", f"Over {PAGE_TARGET_MS:.0f} ms at p95: {', '.join(over) or 'none'}.", ""]
    if figures.get("profile"):
        lines += ["Profile of the slowest page (cProfile, 5 calls):", "", "```"]
        lines += [line.rstrip() for line in figures["profile"].strip().splitlines()[:40]]
        lines += ["```", ""]
    lines += [
        f"Export of a customer with {figures['export_events']:,} events (accounts.export, JSON "
        f"encoded, {figures['export_mb']:.1f} MB): **{figures['export_s']:.2f} s** (target "
        f"{EXPORT_TARGET_S:.0f} s). Erasure (accounts.erasure.erase, every store): "
        f"**{figures['erase_s']:.2f} s** (target {ERASE_TARGET_S:.0f} s); counts "
        f"`{figures['erase_counts']}`. The model files held no row of theirs "
        f"{figures['files_s']:.2f} s after the erasure began (its background rewrite in a "
        "process of its own, recommender.forget; serving forgot them in memory during erase(), "
        "before the caches were scrubbed"
        + ("" if figures["files_clean"] else "; **rows still pending**")
        + "). One run each, wall clock, in-process; "
        + (
            f"the model erasure forgot them in was trained in this run on the whole store "
            f"({training['rows']:,} interactions of {training['customers']:,} customers read from "
            f"the events table in {training['read_s']:.0f} s, the default blend trained and "
            f"promoted in {training['train_s']:.0f} s; validation nDCG@10 "
            f"{training['ndcg']:.4f} against popularity's {training['popularity_ndcg']:.4f}: "
            "promoted whatever that comparison says, since the generated store has no taste "
            "to learn and the bench needs a model of its size, not a good one)."
            if training
            else "no model was trained in this run (no --train), so erasure's model step found "
            "no version to rewrite."
        ),
        "",
        "Load average (1, 5, 15 min) when the timings began: "
        + ", ".join(f"{x:.1f}" for x in figures["load_before"])
        + "; at the end: "
        + ", ".join(f"{x:.1f}" for x in figures["load_after"])
        + " (the machine is shared).",
        "",
    ]
    serving = figures.get("serving")
    answers = (
        "the model trained above answers"
        if training
        else "no model: the catalogue and trending answer"
    )
    if serving:
        alone, during = serving["alone"], serving["during"]
        times = ", ".join(f"{s:.2f}" for s in serving["erase_s"])
        lines += [
            f"Serving `GET /v1/recommendations` (gunicorn, {a.workers} sync workers; wrk, "
            f"{a.connections} connections, browser calls with the write key, the store's "
            f"customers' anonymous ids and 20% never-seen visitors; {answers}; after "
            f"{serving['warm_s']:.0f} s of warm-up load, until a 5-second run answered with "
            "p99 under a second), alone "
            "and while this process erased "
            f"{len(serving['erase_s'])} customers of {a.mine:,} events one after another "
            f"({times} s each):",
            "",
            "| phase | seconds | requests | req/s | p50 ms | p99 ms | errors | runs without an "
            "answer |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, p in (("alone", alone), ("during erasures", during)):
            lines.append(
                f"| {name} | {p['seconds']:.0f} | {p['requests']:,} | {p['rps']:,.0f} | "
                f"{p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} | "
                f"{p['silent_runs']} of {p['runs']} |"
            )
        files = serving["files"]
        lines += [
            "",
            "The web processes blanked each customer's rows in the model they hold (no reload); "
            "the background rewrite of the model files was done "
            f"{files.get('after_s', float('nan')):.2f} s after the last erasure returned"
            + ("" if files.get("clean") else " (**rows still pending**)")
            + ", within the 'during erasures' phase.",
            "",
            f"Errors while erasing: {during['errors']} ({during['error_kinds']}); erasures that "
            f"failed: {len(serving['failures'])}"
            + (f" ({'; '.join(serving['failures'][:3])})" if serving["failures"] else "")
            + ".",
            "",
        ]
    return lines


if __name__ == "__main__":
    main()
