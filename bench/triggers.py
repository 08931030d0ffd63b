"""What the ingest hook's visit-rule checks cost per batch on the shared 10M-event store.

    python bench/triggers.py                        # batches of 4,000 events, 5 batches
    python bench/triggers.py --batch 500 --no-results

Reads only: the newest events of the store (``--url``, default the shared ``bench10m``) are cut
into batches of ``--batch`` events, as the ingest worker hands them to its hook, and for each
batch analytics.trigger_checks.event_firings runs the queries of two rules ("5 visits in 30
days" and "viewed Shoes 3 times in 30 days without buying") in a transaction that is rolled
back. The firing itself (one insert per customer fired, and the webhook's) is not timed: it is
written only for customers who meet a rule. Each batch is timed once after one warm-up batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from analytics import trigger_checks  # noqa: E402
from analytics.triggers import Rule  # noqa: E402
from bench.harness.machine import log  # noqa: E402
from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402
from tracking.schema import events  # noqa: E402
from tracking.store import StoredBatch  # noqa: E402

HEADING = "## Trigger checks per ingest batch (bench/triggers.py)"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench10m"


def _rules(site_id: int) -> list[Rule]:
    made = datetime.now(UTC)
    return [
        Rule(1, site_id, "regulars", "visits", {"visits": 5, "days": 30}, 720, True, made, None),
        Rule(
            2,
            site_id,
            "shoe browsers",
            "category_views",
            {"category": "Shoes", "views": 3, "days": 30},
            720,
            True,
            made,
            None,
        ),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    engine = sa.create_engine(args.url)
    columns = [events.c[n] for n in ("site_id", "user_id", "event", "timestamp", "payload")]
    with engine.connect() as conn:
        site_id = conn.execute(sa.select(sa.func.min(events.c.site_id))).scalar()
        total = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar()
        wanted = args.batch * (args.batches + 1)
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(*columns)
                .where(events.c.site_id == site_id)
                .order_by(events.c.id.desc())
                .limit(wanted)
            ).mappings()
        ]
    rows.reverse()
    rules = _rules(site_id)
    trigger_checks.rules = lambda *a, **k: rules  # the store is not migrated: no rules table
    seconds, found, customers = [], [], []
    for n in range(args.batches + 1):
        part = rows[n * args.batch : (n + 1) * args.batch]
        batch = StoredBatch(site_id, part, set(), attribution_window=None)
        with engine.connect() as conn:
            t0 = time.perf_counter()
            firings = trigger_checks.event_firings(conn, batch)
            spent = time.perf_counter() - t0
            conn.rollback()
        if n == 0:
            continue  # warm-up
        seconds.append(spent)
        found.append(len(firings))
        customers.append(len({r["user_id"] for r in part if r["user_id"]}))
        log(f"batch {n}: {spent * 1000:.0f} ms, {customers[-1]} customers, {found[-1]} met a rule")
    ms = [s * 1000 for s in seconds]
    lines = header(
        HEADING,
        command_line("bench/triggers.py", argv),
        f"{time.monotonic() - started:.0f} s",
    )
    lines += [
        "",
        f"Store: {total:,} events (site {site_id}); {args.batches} batches of {args.batch:,} of "
        "its newest events, after one warm-up batch; rules: 5 visits in 30 days, and Shoes "
        "viewed 3 times in 30 days without buying. Read-only (rolled back); the firing's insert "
        "and webhook are not timed.",
        "",
        "| batch | customers in it | met a rule | ms |",
        "|---|---|---|---|",
        *(f"| {i + 1} | {customers[i]} | {found[i]} | {ms[i]:.0f} |" for i in range(len(ms))),
        "",
        f"Median {statistics.median(ms):.0f} ms per batch, min {min(ms):.0f}, max {max(ms):.0f}.",
    ]
    print("\n".join(lines))
    if not args.no_results:
        write_section(RESULTS, HEADING, "\n".join(lines))


if __name__ == "__main__":
    main()
