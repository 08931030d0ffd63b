"""The console benchmark's generated store is data the rollups agree with; its report merges."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import orjson
import pytest
import sqlalchemy as sa

from analytics import rollups
from analytics.schema import rollup_sales, rollup_visitors
from bench import console
from bench.console_data import HOLDOUT_SHARE, Generator, Scale, load
from tracking.holdout import in_holdout
from tracking.schema import attributions, events, order_lines, orders


def test_generated_store_is_consistent_and_rolls_up(db, site):
    result = load(db, site.site_id, Scale(3000, 200, 40, days=20), seed=3)
    assert result["rows"]["events"] == 3000
    written = rollups.rebuild(db, site.site_id)
    assert written["rollup_visitors"] > 0
    with db.connect() as conn:
        rows = conn.execute(sa.select(events)).mappings().all()
        assert len({r["message_id"] for r in rows}) == 3000
        for r in rows:
            assert r["holdout"] == in_holdout(site.site_id, r["anonymous_id"], HOLDOUT_SHARE)
        # Every event is counted once in the visitors' rollup, every order once.
        counted = conn.execute(sa.select(sa.func.sum(rollup_visitors.c.events))).scalar()
        assert counted == 3000
        n_orders = conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar()
        completed = sum(r["event"] == "Order Completed" for r in rows)
        assert n_orders == completed > 0
        assert conn.execute(sa.select(sa.func.sum(rollup_sales.c.orders))).scalar() == n_orders
        # An order's total is its lines; the rollups' revenue is the orders' per currency.
        lines = defaultdict(Decimal)
        for line in conn.execute(sa.select(order_lines)).mappings():
            lines[line["order_id"]] += Decimal(str(line["price"])) * line["quantity"]
        by_currency = defaultdict(Decimal)
        for order in conn.execute(sa.select(orders)).mappings():
            assert Decimal(str(order["total"])) == lines[order["order_id"]]
            by_currency[order["currency"]] += Decimal(str(order["total"]))
        rolled = conn.execute(
            sa.select(rollup_sales.c.currency, sa.func.sum(rollup_sales.c.revenue)).group_by(
                rollup_sales.c.currency
            )
        ).all()
        assert {c: Decimal(str(v)) for c, v in rolled} == dict(by_currency)
        # Each attribution credits a click on the same item earlier in the same session.
        clicks = {
            (r["session_id"], r["item_id"], orjson_rec(r["payload"])): r["timestamp"]
            for r in rows
            if r["event"] == "Recommendation Clicked"
        }
        order_session = {r["order_id"]: r["session_id"] for r in rows if r["order_id"]}
        found = conn.execute(sa.select(attributions)).mappings().all()
        assert found
        for a in found:
            assert (order_session[a["order_id"]], a["item_id"], a["rec_id"]) in clicks


def orjson_rec(payload) -> str:
    data = orjson.loads(payload) if isinstance(payload, str) else payload
    return data["properties"]["rec_id"]


def test_a_run_replaces_only_its_own_subsections(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# Benchmark results\n\n## Other\n\nkept\n\n"
        f"{console.HEADING}\n\nold intro\n\n### 100k events, sqlite\n\nold sqlite\n\n"
        "### Ingest with rollups on against off (same run)\n\nold ingest\n\n## After\n\nalso kept\n"
    )
    merged = console.merge_section(
        path, {"### 100k events, sqlite": ["### 100k events, sqlite", "", "new sqlite"]}
    )
    assert "new sqlite" in merged and "old sqlite" not in merged
    assert "old ingest" in merged and console.INTRO in merged
    assert merged.index("new sqlite") < merged.index("old ingest")
    console.write_section(path, console.HEADING, merged)
    text = path.read_text()
    assert "kept" in text and "also kept" in text and "old intro" not in text


def test_a_big_store_is_loaded_once_and_timed_again():
    loading = console.parse_args(["--scale", "10m", "--db-name", "big", "--load-only"])
    assert (loading.db, loading.keep, loading.no_results) == ("postgresql", True, True)
    again = console.parse_args(["--scale", "10m", "--db-name", "big", "--reuse"])
    assert again.reuse and again.keep and not again.no_results
    # A 100k run with a named database times PostgreSQL only (that is where the name lives).
    assert console.parse_args(["--scale", "100k", "--db-name", "big", "--reuse"]).db == "postgresql"
    for argv in (["--scale", "10m", "--reuse"], ["--scale", "10m", "--load-only"]):
        with pytest.raises(SystemExit):
            console.parse_args(argv)


def test_a_history_and_a_stream_share_one_store(db, site):
    """--ingest-history: the history's message and order ids start with "h", so none is an id
    of the stream the benchmark posts (the same generator, unprefixed) and all of it stores."""
    small = Scale(400, 30, 20, days=5)
    load(db, site.site_id, small, seed=3, prefix="h")
    with db.connect() as conn:
        stored = set(conn.execute(sa.select(events.c.message_id)).scalars())
        stored |= set(conn.execute(sa.select(orders.c.order_id)).scalars())
    assert len(stored) > 400 and all(i.startswith("h") for i in stored)
    stream = [
        orjson.loads(row[13])
        for batch in Generator(site.site_id, small, seed=3).event_batches()
        for row in batch["events"]
    ]
    sent = {e["messageId"] for e in stream}
    sent |= {e["properties"]["order_id"] for e in stream if "order_id" in e.get("properties", {})}
    assert len(sent) > 400 and not sent & stored
