"""bench/portal.py at a tiny scale, on the test store, so it cannot rot (no figure is asserted)."""

from __future__ import annotations

import shutil

import sqlalchemy as sa

from bench import portal
from tracking.schema import customers, events, order_lines, orders


def test_the_portal_benchmark_runs_end_to_end(app, site, db, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    serve = "1" if shutil.which("wrk") else "0"  # the serving phase needs wrk
    argv = ["--store-url", app.config["DATABASE_URL"], "--site", str(site.site_id)]
    argv += ["--mine", "120", "--calls", "2", "--erasures", "1", "--serve-seconds", serve]
    figures = portal.main(
        [*argv, "--workers", "2", "--connections", "4", "--results", str(results)]
    )

    pages = {t.name: t for t in figures["pages"]}
    assert {"home", "profile_page", "address_book", "orders", "delete_account"} <= set(pages)
    assert all(t.status == 200 and len(t.ms) == 2 for t in pages.values()), pages
    assert figures["export_events"] == 121  # the views and the identify
    assert figures["erase_counts"]["events"] == 121 and figures["erase_counts"]["customers"] == 1
    assert figures["files_clean"]  # no model trained: nothing pending either
    if serve == "1":
        during = figures["serving"]["during"]
        assert during["requests"] > 0 and during["errors"] == 0
        assert figures["serving"]["failures"] == []
    # Every bench customer was erased, their orders too; the section was written beside the
    # others.
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0
        for table in (orders, order_lines):  # kept by erasure, removed by the bench
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
    text = results.read_text()
    assert portal.HEADING in text and "kept" in text and "| orders |" in text
