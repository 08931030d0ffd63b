"""What the interaction log costs the ingest path, against the same batches stored without it.

    python bench/interaction_log.py              # SQLite, and PostgreSQL when reachable (~2 min)
    python bench/interaction_log.py --no-pg --rounds 1 --no-results

The ingest worker stores every batch with ``tracking.store.write_entries`` in one transaction;
since migration 3 that transaction also appends one chunk to ``interaction_chunks`` (training
reads the chunks instead of scanning ``events``; see bench/RESULTS.md, "Training speed"), and
only the rows this transaction stored are logged (SQLite: ``RETURNING``; PostgreSQL: a plain
insert in a savepoint, ``RETURNING`` only after a collision; see ``tracking.db.insert_new``). For
each database, in interleaved rounds (the fastest of each mode counts):

1. ``write_entries`` as it is, and with ``interaction_log.append`` replaced by a no-op (all else
   the same), each storing a seeded demo shop's first 40,000 events (every kind the tracker
   sends: pages, product events, carts, checkouts, orders, identifies), prepared as the
   collector prepares them, in transactions of 200 events (the worker's batch), into a fresh
   store;
2. the events insert alone, the same 40,000 rows in statements of 200, with ``RETURNING
   message_id`` and without it (``rowcount``, as before the log), into a fresh table.

It prints the figures and replaces the ``## Interaction log (bench/interaction_log.py)`` section
of bench/RESULTS.md. No figure from here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.harness.machine import machine_line as machine  # noqa: E402
from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402
from demo import ShopSpec, generate_shop  # noqa: E402
from tracking import interaction_log, migrations, store  # noqa: E402
from tracking.db import insert_ignore, make_engine  # noqa: E402
from tracking.events import Limits, iso, prepare_events  # noqa: E402
from tracking.schema import events, interaction_chunks  # noqa: E402
from tracking.sites import create_site  # noqa: E402

HEADING = "## Interaction log (bench/interaction_log.py)"
PG_URL = os.environ.get("ECRM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 200
SCHEMA = "ecrm_bench_log"


def entries_of(raw: list[dict], site_id: int) -> list[list[dict]]:
    """Stream entries of 100 events, two per transaction (200 events, the worker's batch)."""
    now = dt.datetime.now(dt.UTC)
    entries = []
    for start in range(0, len(raw), BATCH // 2):
        accepted, rejected = prepare_events(
            raw[start : start + BATCH // 2],
            path="batch",
            received_at=now,
            batch_sent_at=None,
            limits=Limits(),
        )
        assert not rejected, rejected[:2]
        entries.append(
            {
                "rid": uuid.uuid4().hex,
                "site_id": site_id,
                "received_at": iso(now),
                "events": accepted,
                "rejected": [],
            }
        )
    return [entries[i : i + 2] for i in range(0, len(entries), 2)]


class Store:
    """A fresh, migrated store: a SQLite file, or a PostgreSQL schema of its own."""

    def __init__(self, kind: str, workdir: Path, pg_url: str):
        self.kind = kind
        if kind == "sqlite":
            path = workdir / f"store-{uuid.uuid4().hex[:8]}.db"
            self.engine = make_engine(f"sqlite:///{path}")
        else:
            admin = make_engine(pg_url)
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
                conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
            admin.dispose()
            options = f"-c plan_cache_mode=force_custom_plan -c search_path={SCHEMA}"
            self.engine = make_engine(pg_url, connect_args={"options": options})
        migrations.upgrade(self.engine)
        self.site_id = create_site(self.engine, "Log bench", [])[0].site_id

    def close(self) -> None:
        self.engine.dispose()


def store_all(kind: str, workdir: Path, pg_url: str, raw: list[dict], with_log: bool) -> dict:
    """write_entries over every batch into a fresh store; seconds and what was stored."""
    target = Store(kind, workdir, pg_url)
    batches = entries_of(raw, target.site_id)
    original = interaction_log.append
    if not with_log:
        interaction_log.append = lambda conn, site_id, rows: 0
    try:
        started = time.perf_counter()
        stored = 0
        for batch in batches:
            with target.engine.begin() as conn:
                stored += store.write_entries(conn, batch, dt.timedelta(minutes=30)).stored
        seconds = time.perf_counter() - started
    finally:
        interaction_log.append = original
    with target.engine.connect() as conn:
        logged = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(interaction_chunks.c.rows), 0))
        ).scalar()
    target.close()
    return {"seconds": seconds, "stored": stored, "logged": int(logged), "batches": len(batches)}


def insert_only(kind: str, workdir: Path, pg_url: str, raw: list[dict], returning: bool) -> dict:
    """The events insert alone, in statements of BATCH rows, with or without RETURNING."""
    target = Store(kind, workdir, pg_url)
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "site_id": target.site_id,
            "message_id": event["messageId"],
            "type": event["type"],
            "event": event.get("event"),
            "anonymous_id": event.get("anonymousId"),
            "user_id": event.get("userId"),
            "item_id": (event.get("properties") or {}).get("product_id"),
            "timestamp": now,
            "received_at": now,
            "payload": event,
        }
        for event in raw
    ]
    statement = insert_ignore(target.engine, events)
    if returning:
        statement = statement.returning(events.c.message_id)
    else:
        statement = statement.execution_options(preserve_rowcount=True)
    started = time.perf_counter()
    stored = 0
    for start in range(0, len(rows), BATCH):
        with target.engine.begin() as conn:
            result = conn.execute(statement, rows[start : start + BATCH])
            stored += len(result.all()) if returning else result.rowcount
    seconds = time.perf_counter() - started
    target.close()
    return {"seconds": seconds, "stored": stored}


def pg_reachable(url: str) -> bool:
    """True when PostgreSQL answers at ``url``."""
    try:
        engine = make_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def machine_line() -> str:
    """The Machine line, with the SQLAlchemy and SQLite versions that matter here."""
    import sqlite3

    return f"{machine()}, SQLAlchemy {sa.__version__}, SQLite {sqlite3.sqlite_version}"


def main(argv=None) -> int:
    """Run the benchmark, print the section and write it (unless --no-results)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=40_000, help="events stored per measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (fastest counts)")
    p.add_argument("--no-pg", action="store_true", help="SQLite only")
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = p.parse_args(argv)
    started_at = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    shop = generate_shop(ShopSpec(seed=11, n_customers=1200, n_items=800, n_clusters=8, days=21))
    raw = shop.events[: args.events]
    kinds = ["sqlite"] + ([] if args.no_pg or not pg_reachable(args.pg_url) else ["postgresql"])
    modes = {
        "write_entries, as it is (with the log)": lambda kind, d: store_all(
            kind, d, args.pg_url, raw, True
        ),
        "write_entries, interaction_log.append a no-op": lambda kind, d: store_all(
            kind, d, args.pg_url, raw, False
        ),
        "events insert alone, with RETURNING": lambda kind, d: insert_only(
            kind, d, args.pg_url, raw, True
        ),
        "events insert alone, rowcount (no RETURNING)": lambda kind, d: insert_only(
            kind, d, args.pg_url, raw, False
        ),
    }
    best: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory(prefix="log-bench-") as tmp:
        for round_ in range(args.rounds):
            for kind in kinds:
                for mode, run in modes.items():
                    result = run(kind, Path(tmp))
                    print(f"[{kind} round {round_ + 1}] {mode}: {result}", flush=True)
                    key = (kind, mode)
                    seen = best.get(key, {}).get("all", [])
                    result["all"] = seen + [result["seconds"]]
                    if key not in best or result["seconds"] < best[key]["seconds"]:
                        best[key] = result
                    else:
                        best[key]["all"] = result["all"]
    if "postgresql" in kinds:  # leave the database as it was
        admin = make_engine(args.pg_url)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        admin.dispose()
    total = time.perf_counter() - clock
    n = len(raw)
    lines = [
        *header(
            HEADING,
            command_line("bench/interaction_log.py", argv),
            f"{total / 60:.1f} minutes",
            machine_line(),
            f"{started_at:%Y-%m-%d %H:%M} UTC",
        ),
        f"- Data: the first {n:,} events of `generate_shop(ShopSpec(seed=11, n_customers=1200, "
        "n_items=800, n_clusters=8, days=21))` (every kind the tracker sends), prepared as the "
        f"collector prepares them, stored in transactions of {BATCH} events into a fresh store "
        f"per measurement; {args.rounds} interleaved rounds, the fastest counts (every round "
        "in brackets).",
        "",
        "| database | what | seconds (fastest; each round) | events/s | stored | logged |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind in kinds:
        for mode in modes:
            r = best[(kind, mode)]
            rounds = ", ".join(f"{v:.2f}" for v in r["all"])
            lines.append(
                f"| {kind} | {mode} | **{r['seconds']:.2f}** ({rounds}) | {n / r['seconds']:,.0f} "
                f"| {r['stored']:,} | {r.get('logged', '-')} |"
            )
    lines.append("")
    for kind in kinds:
        with_log = best[(kind, "write_entries, as it is (with the log)")]["seconds"]
        without = best[(kind, "write_entries, interaction_log.append a no-op")]["seconds"]
        ret = best[(kind, "events insert alone, with RETURNING")]["seconds"]
        plain = best[(kind, "events insert alone, rowcount (no RETURNING)")]["seconds"]
        how = (
            "`write_entries` uses it on SQLite, so it is inside both figures above"
            if kind == "sqlite"
            else "so `write_entries` does not use it on PostgreSQL: a plain insert inside a "
            "savepoint stores the usual batch, and RETURNING runs only after a collision"
        )
        lines.append(
            f"- {kind}: appending the log costs {with_log / without - 1:+.1%} of `write_entries`"
            f" ({with_log:.2f} s against {without:.2f} s, the same run). RETURNING on the events "
            f"insert costs {ret / plain - 1:+.1%} of that insert alone ({ret:.2f} s against "
            f"{plain:.2f} s); {how}."
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if not args.no_results:
        write_section(RESULTS, HEADING, text)
        print(f"wrote the '{HEADING}' section of bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
