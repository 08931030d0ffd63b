"""What a customer segment's members and an export cost at 1M customers (PostgreSQL).

    python bench/segments.py                          # 1M customers in the newest snapshot
    python bench/segments.py --customers 100000 --no-results

Writes one snapshot of ``value_scores`` (bench/value_pages.py's generator) and an email:offers
consent record for every third customer into a database of its own on the server (COPY, not
timed), then times, for a few definitions, the members API's first page and a page halfway, each
with the whole count (accounts.segment_members.page), and the count alone; then two exports by
email with a 10% control (accounts.segment_exports.export, the CSV written to its spooled file,
rolled back): median of 3 runs after one warm-up, in one process. The database is dropped at
the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench import value_pages  # noqa: E402
from bench.harness.machine import log  # noqa: E402
from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402

HEADING = "## Customer segments (bench/segments.py)"
DATABASE = "ecrm_bench_segments"
DEFINITIONS = (
    ("everyone", {}),
    ("Champions", {"segments": ["Champions"]}),
    ("CLV >= 100 and P(alive) >= 0.5", {"clv_min": 100, "p_alive_min": 0.5}),
    ("At Risk who allow email", {"segments": ["At Risk"], "consent_channel": "email"}),
    ("everyone who allows email", {"consent_channel": "email"}),
)


def build(db_url: str, customers: int):
    import sqlalchemy as sa

    from analytics.value_schema import value_runs
    from bench.harness.service import create_store
    from tracking.db import make_engine

    site, _ = create_store(db_url, "segments bench", ["http://localhost"])
    engine = make_engine(db_url)
    rng = np.random.default_rng(20261204)
    day = value_pages.DAY
    with engine.begin() as conn:
        value_pages._snapshot(conn, site.site_id, day, customers, rng, 1)
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
        cursor = conn.connection.driver_connection.cursor()
        at = datetime(2026, 6, 1, tzinfo=UTC)
        columns = "site_id, user_id, what, granted, at, source, wording"
        with cursor.copy(f"COPY consent_records ({columns}) FROM STDIN") as copy:
            for i in range(0, customers, 3):
                copy.write_row((site.site_id, f"c{i:07d}", "email:offers", True, at, "api", "Mail"))
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE value_scores")
        conn.exec_driver_sql("ANALYZE consent_records")
    return engine, site.site_id


def _median(run) -> tuple[float, int]:
    found = run()  # warm-up
    times = []
    for _ in range(3):
        started = time.perf_counter()
        found = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), found


def timings(engine, site_id: int, customers: int) -> list[tuple[str, int, float]]:
    from accounts import segment_exports, segments
    from accounts.segment_members import count as count_of
    from accounts.segment_members import page

    middle = f"c{customers // 2:07d}"  # a cursor halfway through the user ids
    out = []
    with engine.connect() as conn:
        for name, data in DEFINITIONS:
            definition = segments.parse(data)
            seconds, n = _median(lambda d=definition: page(conn, site_id, d, limit=100).count)
            out.append((f"first page of 100 and the count: {name}", n, seconds))
            log(f"{name}: first page, {n:,} members, {seconds:.2f} s")
            seconds, _ = _median(
                lambda d=definition: len(page(conn, site_id, d, middle, limit=1000).members)
            )
            out.append((f"a page of 1,000 halfway and the count: {name}", n, seconds))
            log(f"{name}: page halfway, {seconds:.2f} s")
            seconds, n = _median(lambda d=definition: count_of(conn, site_id, d))
            out.append((f"count only: {name}", n, seconds))
            log(f"{name}: counted {n:,}, {seconds:.2f} s")
    exports = []
    with engine.begin() as conn:
        for name, index in (("At Risk", 3), ("everyone", 0)):
            definition = segments.parse(DEFINITIONS[index][1])
            exports.append((name, segments.save(conn, site_id, name, definition)))

    for name, seg in exports:

        def export(seg=seg) -> int:
            out_file = segment_exports.csv_file()
            with engine.connect() as conn:
                with conn.begin() as tx:
                    done = segment_exports.export(
                        conn, site_id, seg, "email", control_share=0.1, out=out_file
                    )
                    tx.rollback()
            out_file.close()
            return done.targets + done.controls

        seconds, n = _median(export)
        out.append(
            (f"export {name} by email, 10% control (stored, CSV written, rolled back)", n, seconds)
        )
        log(f"export {name}: {n:,} members, {seconds:.2f} s")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=value_pages.DEFAULT_PG, help="a PostgreSQL server")
    parser.add_argument("--no-results", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    value_pages.DATABASE = DATABASE
    db_url = value_pages._database(args.pg_url)
    try:
        engine, site_id = build(db_url, args.customers)
        log(f"loaded a snapshot of {args.customers:,} customers")
        measured = timings(engine, site_id, args.customers)
        engine.dispose()
    finally:
        value_pages._database(args.pg_url, drop_only=True)
    lines = header(
        HEADING, command_line("bench/segments.py", argv), f"{time.perf_counter() - started:.0f} s"
    )
    lines += [
        f"- Data: one snapshot of {args.customers:,} customers (one currency), an email:offers "
        "consent for every third, written with COPY (not timed); PostgreSQL on the same machine",
        "",
        "| what | members | seconds (median of 3, after a warm-up) |",
        "|---|---:|---:|",
        *(f"| {name} | {n:,} | {seconds:.2f} |" for name, n, seconds in measured),
        "",
    ]
    print("\n".join(lines))
    if not args.no_results:
        write_section(RESULTS, HEADING, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
