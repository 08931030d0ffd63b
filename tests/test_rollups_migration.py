"""Migrations the rollups rely on: 120 (funnel_sessions from a row per session and category to
one per session) and 8 (fewer common values kept of the visitor and item ids they look up)."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from analytics.schema import funnel_sessions
from tracking.schema import schema_migrations
from webapp.database import upgrade

# The table as migrations 101, 102 and 113 left it.
OLD_TABLE = """CREATE TABLE funnel_sessions (
    site_id INTEGER NOT NULL,
    session_id VARCHAR(32) NOT NULL,
    category VARCHAR(500) NOT NULL DEFAULT '',
    day DATE NOT NULL,
    step SMALLINT NOT NULL,
    steps SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, session_id, category)
)"""
OLD_INDEX = "CREATE INDEX ix_funnel_sessions_day ON funnel_sessions (site_id, category, day)"


def test_migration_120_keeps_every_sessions_steps(db, site):
    d1, d2 = date(2026, 11, 20), date(2026, 11, 21)
    old_rows = [
        # (session, category, day, step, steps)
        ("s1", "", d1, 4, 15),
        ("s1", "Music", d1, 4, 15),
        ("s1", "Books", d1, 1, 1),
        ("s2", "", d2, 0, 8),  # only bought: step 0
        ("s2", 'Say "hi" \\ bye', d2, 0, 8),
        ("s3", "", d2, 2, 3),
    ]
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE funnel_sessions"))
        conn.execute(sa.text(OLD_TABLE))
        conn.execute(sa.text(OLD_INDEX))
        conn.execute(
            sa.text(
                "INSERT INTO funnel_sessions (site_id, session_id, category, day, step, steps) "
                "VALUES (:site, :session, :category, :day, :step, :steps)"
            ),
            [
                dict(
                    zip(("session", "category", "day", "step", "steps"), r, strict=True),
                    site=site.site_id,
                )
                for r in old_rows
            ],
        )
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 120))
    assert upgrade(db) == [120]
    assert upgrade(db) == []
    t = funnel_sessions.c
    with db.connect() as conn:
        got = conn.execute(
            sa.select(t.site_id, t.session_id, t.day, t.step, t.steps, t.categories).order_by(
                t.session_id
            )
        ).all()
        indexes = {
            ix["name"]: ix["column_names"] for ix in sa.inspect(conn).get_indexes("funnel_sessions")
        }
        tables = set(sa.inspect(conn).get_table_names())
    assert [tuple(r) for r in got] == [
        (site.site_id, "s1", d1, 4, 15, '{"Books":1,"Music":15}'),
        (site.site_id, "s2", d2, 0, 8, '{"Say \\"hi\\" \\\\ bye":8}'),
        (site.site_id, "s3", d2, 2, 3, "{}"),
    ]
    assert indexes["ix_funnel_sessions_day"] == ["site_id", "day"]
    assert "funnel_sessions_102" not in tables
    if db.dialect.name == "postgresql":
        # The new table is planned on real statistics at once, not after autovacuum.
        with db.connect() as conn:
            analyzed = conn.execute(
                sa.text(
                    "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'funnel_sessions'"
                )
            ).scalar()
        assert analyzed is not None


def test_migration_8_keeps_ten_common_values_of_visitor_and_item_ids(db):
    if db.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no per-column statistics targets; migration 8 does nothing there")
    columns = ("anonymous_id", "user_id", "item_id")
    targets = sa.text(
        "SELECT attname, attstattarget FROM pg_attribute"
        " WHERE attrelid = 'events'::regclass AND attname = ANY(:names)"
    )
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "ALTER TABLE events "
                + ", ".join(f"ALTER COLUMN {c} SET STATISTICS -1" for c in columns)
            )
        )
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 8))
        assert dict(conn.execute(targets, {"names": list(columns)}).all()) == dict.fromkeys(
            columns, -1
        )
    assert upgrade(db) == [8]
    with db.connect() as conn:
        assert dict(conn.execute(targets, {"names": list(columns)}).all()) == dict.fromkeys(
            columns, 10
        )
