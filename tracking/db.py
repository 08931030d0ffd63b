"""Engines for the SQL store: SQLite (WAL) by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for PostgreSQL URLs that name no driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs) -> sa.Engine:
    """Create an engine; SQLite files get WAL, a busy timeout and their folder created."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, **kwargs
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # WAL lets readers run beside the ingest writers; NORMAL is durable in WAL mode
            # except for the last transactions on power loss (not on a process crash).
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # psycopg prepares a statement after five uses, and PostgreSQL may then keep a generic plan
    # made while a table was empty (a full scan for "message_id IN (...)"); plan every time.
    connect_args = {"options": "-c plan_cache_mode=force_custom_plan"}
    connect_args.update(kwargs.pop("connect_args", {}))
    return sa.create_engine(url, connect_args=connect_args, **kwargs)


def is_sqlite(engine: sa.Engine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def insert_ignore(engine: sa.Engine, table: sa.Table):
    """An INSERT that skips rows violating a unique constraint, in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def upsert(engine: sa.Engine, table: sa.Table, keys: list[str], update: list[str]):
    """An INSERT ... ON CONFLICT (keys) DO UPDATE of the named columns."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={name: stmt.excluded[name] for name in update}
    )
