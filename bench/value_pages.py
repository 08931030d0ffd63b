"""What the console's customer value pages cost to read at 1M customers (PostgreSQL).

    python bench/value_pages.py                       # 1M customers, two snapshots 4 weeks apart
    python bench/value_pages.py --customers 100000 --no-results
    python bench/value_pages.py --prospects-url postgresql://postgres@127.0.0.1:5432/bench10m

Writes two snapshots of ``value_scores`` (the newest and one 4 weeks older, so the backtest and
"valuable and slipping" have something to compare) into a database of its own on the server
(COPY, not timed) and their summaries (timed: migration 113's backfill) with the newest one's
backtests (timed: what the refresh adds), then times each
reader the pages call (analytics.value_reports, analytics.forecast): median of 3 runs after one
warm-up, in one process. The rendering of the
HTML is not included. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.harness.machine import log  # noqa: E402
from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402

HEADING = "## Customer value pages (bench/value_pages.py)"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "ecrm_bench_value_pages"
DAY = date(2026, 11, 30)
BEFORE = DAY - timedelta(weeks=4)


def _database(server_url: str, drop_only: bool = False) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        if not drop_only:
            conn.exec_driver_sql(f'CREATE DATABASE "{DATABASE}"')
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + DATABASE


def _snapshot(conn, site_id: int, day: date, n: int, rng, shift: int) -> None:
    """n customers' plausible scores on ``day`` (cells, money and model columns drawn at random)."""
    from analytics import rfm

    r, f = rng.integers(1, 6, n), rng.integers(1, 6, n)
    orders = 1 + rng.poisson(2.0, n) + shift * (rng.random(n) < 0.3)
    revenue = np.round(orders * rng.gamma(4.0, 12.0, n), 2)
    p_alive = rng.beta(2.0, 1.0, n) * (0.9 if shift else 1.0)
    p4 = p_alive * rng.gamma(1.0, 0.3, n)
    spend = rng.gamma(4.0, 12.0, n)
    first = datetime(2025, 1, 1, tzinfo=UTC).isoformat()
    last = datetime(2026, 10, 1, tzinfo=UTC).isoformat()
    cursor = conn.connection.driver_connection.cursor()
    columns = (
        "site_id, day, currency, user_id, orders, revenue, first_order_at, last_order_at, "
        "r_seed, f_seed, m_seed, r_score, f_score, m_score, segment, p_alive, purchases_4w, "
        "purchases_13w, purchases_52w, expected_spend, clv, vip"
    )
    with cursor.copy(f"COPY value_scores ({columns}) FROM STDIN") as copy:
        for i in range(n):
            copy.write_row(
                (
                    site_id,
                    day,
                    "EUR",
                    f"c{i:07d}",
                    int(orders[i]),
                    float(revenue[i]),
                    first,
                    last,
                    2,
                    2,
                    2,
                    int(r[i]),
                    int(f[i]),
                    3,
                    rfm.SEGMENTS[(int(r[i]), int(f[i]))],
                    float(p_alive[i]),
                    float(p4[i]),
                    float(p4[i] * 3),
                    float(p4[i] * 10),
                    float(spend[i]),
                    float(p4[i] * 10 * spend[i]),
                    bool(i % 5 == 0),
                )
            )


def build(db_url: str, customers: int):
    import sqlalchemy as sa

    from analytics import forecast, value_summary
    from analytics.value_schema import value_runs
    from bench.harness.service import create_store
    from tracking.db import make_engine

    site, _ = create_store(db_url, "value pages bench", ["http://localhost"])
    engine = make_engine(db_url)
    rng = np.random.default_rng(20261204)
    for shift, day in ((0, BEFORE), (1, DAY)):
        with engine.begin() as conn:
            _snapshot(conn, site.site_id, day, customers, rng, shift)
            conn.execute(
                sa.insert(value_runs).values(
                    site_id=site.site_id,
                    day=day,
                    currency="EUR",
                    customers=customers,
                    orders=0,
                    revenue=0,
                    settings={},
                    seconds=0.0,
                    computed_at=datetime.now(UTC),
                )
            )
    with engine.begin() as conn:  # as the refresh does after writing a snapshot
        conn.exec_driver_sql("ANALYZE value_scores")
    started = time.perf_counter()
    with engine.begin() as conn:  # the summaries, as migration 113 makes them for old snapshots
        value_summary.backfill(conn)
    backfill_s = time.perf_counter() - started
    started = time.perf_counter()
    with engine.begin() as conn:  # what the refresh adds for the newest snapshot
        forecast.store_backtests(conn, site.site_id, DAY, "EUR")
    backtests_s = time.perf_counter() - started
    return engine, site.site_id, backfill_s, backtests_s


def timings(engine, site_id: int) -> list[tuple[str, float]]:
    from analytics import forecast, value_reports

    snapshot_of = {}

    def latest(conn):
        snapshot_of["s"] = value_reports.latest(conn, site_id)

    readers = [
        ("latest snapshot (every page)", latest),
        ("RFM grid", lambda c: value_reports.grid(c, site_id, DAY, "EUR")),
        (
            "segments over time (30 days)",
            lambda c: value_reports.segments_over_time(
                c, site_id, "EUR", DAY - timedelta(days=29), DAY
            ),
        ),
        ("Pareto curve and VIPs", lambda c: value_reports.pareto(c, site_id, DAY, "EUR")),
        ("CLV distribution", lambda c: value_reports.clv_distribution(c, site_id, DAY, "EUR")),
        (
            "valuable and slipping (top 50)",
            lambda c: value_reports.slipping(c, site_id, snapshot_of["s"], "EUR"),
        ),
        ("forecast 4/13/52 weeks", lambda c: forecast.forecast(c, site_id, DAY, "EUR")),
        ("backtest 4 weeks, computed", lambda c: forecast.backtest(c, site_id, DAY, "EUR", 4)),
        (
            "backtests 4 and 13 weeks, as the refresh kept them (the page)",
            lambda c: forecast.backtests(c, site_id, DAY, "EUR"),
        ),
        (
            "one customer's history",
            lambda c: value_reports.customer_history(c, site_id, "c0000042"),
        ),
    ]
    out = []
    with engine.connect() as conn:
        for name, read in readers:
            read(conn)  # warm-up
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                read(conn)
                runs.append(time.perf_counter() - started)
            out.append((name, statistics.median(runs)))
            log(f"{name}: {out[-1][1]:.3f} s")
    return out


def prospect_timings(db_url: str, site_id: int) -> tuple[list[tuple[int, int, float]], str]:
    """The prospects list on an existing store (read only): 7, 30 and 90 days up to its newest
    funnel day; (days, prospects listed, median seconds of 3 after a warm-up) and the store."""
    import sqlalchemy as sa

    from analytics import value_reports
    from analytics.schema import funnel_sessions
    from tracking.db import make_engine

    engine = make_engine(db_url)
    out = []
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        last, sessions = conn.execute(
            sa.select(sa.func.max(funnel_sessions.c.day), sa.func.count()).where(
                funnel_sessions.c.site_id == site_id
            )
        ).one()
        indexed = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_funnel_sessions_day'"
        ).scalar()
        for days in (7, 30, 90):
            start = last - timedelta(days=days - 1)
            value_reports.prospects(conn, site_id, start, last)
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                found = value_reports.prospects(conn, site_id, start, last)
                runs.append(time.perf_counter() - started)
            out.append((days, len(found), statistics.median(runs)))
            log(f"prospects, {days} days: {out[-1][2]:.2f} s")
    engine.dispose()
    store = (
        f"{sessions:,} sessions of site {site_id} up to {last.isoformat()} in "
        f"`{db_url.rsplit('/', 1)[-1]}`, "
        + (
            "with migration 113's index"
            if indexed
            else "**without** migration 113's index (that store is not migrated)"
        )
    )
    return out, store


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="a PostgreSQL server (db made)")
    parser.add_argument("--no-results", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--prospects-url", help="also time the prospects list on this store")
    parser.add_argument("--prospects-site", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    db_url = _database(args.pg_url)
    try:
        engine, site_id, backfill_s, backtests_s = build(db_url, args.customers)
        log(f"loaded two snapshots of {args.customers:,} customers")
        measured = timings(engine, site_id)
        engine.dispose()
    finally:
        _database(args.pg_url, drop_only=True)
    pages = {
        "value": ("latest snapshot (every page)", "RFM grid", "segments over time (30 days)"),
        "value+": ("Pareto curve and VIPs", "CLV distribution"),
    }
    by_name = dict(measured)
    value_page = sum(by_name[n] for group in pages.values() for n in group)
    risk_page = by_name["latest snapshot (every page)"] + by_name["valuable and slipping (top 50)"]
    lines = header(
        HEADING,
        command_line("bench/value_pages.py", argv),
        f"{time.perf_counter() - started:.0f} s",
    )
    lines += [
        f"- Data: two snapshots of {args.customers:,} customers (one currency) 4 weeks apart, "
        "written with COPY (not timed); PostgreSQL on the same machine",
        f"- Their summaries (`analytics.value_summary.backfill`, migration 113's path; the "
        f"refresh writes them from memory as it scores): {backfill_s:.1f} s for both",
        "- The backtests the refresh now computes once and keeps with the newest snapshot's "
        f"summary (`analytics.forecast.store_backtests`, migration 121): {backtests_s:.1f} s",
        "",
        "| reader | seconds (median of 3, after a warm-up) |",
        "|---|---:|",
        *(f"| {name} | {seconds:.3f} |" for name, seconds in measured),
        "",
        f"The value page's readers add up to {value_page:.3f} s; the churn page's slipping list "
        f"(without prospects, which read the funnel rollup) to {risk_page:.2f} s.",
        "",
    ]
    if args.prospects_url:
        found, store = prospect_timings(args.prospects_url, args.prospects_site)
        lines += [
            f"Prospects (`analytics.value_reports.prospects`, read only) on {store}:",
            "",
            "| period | prospects listed | seconds (median of 3, after a warm-up) |",
            "|---|---:|---:|",
            *(f"| {days} days | {n} | {seconds:.2f} |" for days, n, seconds in found),
            "",
        ]
    print("\n".join(lines))
    if not args.no_results:
        write_section(RESULTS, HEADING, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
