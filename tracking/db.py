"""Engines for the SQL store, and the helpers its writers and readers share.

SQLite (WAL) by default, PostgreSQL through psycopg 3. The helpers: dialect-neutral INSERT ...
ON CONFLICT statements, look-ups by many ids (IN (...) lists cut to a size SQLite takes; on
PostgreSQL one ``= ANY(array)`` parameter, :func:`any_of`), and stored times made aware (SQLite
hands back naive ones; every time in the store is UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

IN_CHUNK = 500  # ids per IN (...) list; well below SQLite's variable limit


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


def insert_new(conn: sa.Connection, table: sa.Table, rows: list[dict], key: str) -> set[str]:
    """Insert ``rows``, skipping those whose unique key is stored already; return the stored keys.

    SQLite: INSERT ... ON CONFLICT DO NOTHING RETURNING (about +10% on the insert). PostgreSQL:
    RETURNING made the events insert 2.5x slower (bench/RESULTS.md, "Interaction log"), so the
    usual batch, which collides with nothing, goes in by a plain executemany inside a
    savepoint; only when a row collides (a concurrent worker, an order sent again) is the
    savepoint rolled back and the batch inserted again with ON CONFLICT DO NOTHING RETURNING.
    (pysqlite's implicit transactions make savepoints unsafe here, hence the two paths.)
    """
    if conn.dialect.name == "postgresql":
        try:
            with conn.begin_nested():
                conn.execute(table.insert(), rows)
            return {row[key] for row in rows}
        except sa.exc.IntegrityError:
            pass  # rolled back to the savepoint: nothing of this insert remains
    insert = insert_ignore(conn.engine, table).returning(table.c[key])
    return set(conn.execute(insert, rows).scalars())


def chunks(values: list, size: int | None = None) -> Iterator[list]:
    """``values`` in slices of ``size`` (:data:`IN_CHUNK`): one IN (...) list each."""
    size = size or IN_CHUNK
    for start in range(0, len(values), size):
        yield values[start : start + size]


def aware(moment: datetime) -> datetime:
    """The stored time as an aware UTC datetime (SQLite hands back naive ones)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def plain_type(column: sa.Column) -> sa.types.TypeEngine:
    """The type of ``column`` as an array parameter's element: text for strings."""
    # Text, not VARCHAR(n): a cast to VARCHAR(n) would cut a longer value instead of failing
    # (an insert) or not matching (a lookup).
    return sa.Text() if isinstance(column.type, sa.String) else column.type


def batches(conn: sa.Connection, values: Iterable) -> list[list]:
    """``values`` (sorted, once each) cut into the lists one lookup takes (:func:`any_of`).

    PostgreSQL takes them all in one array parameter; SQLite, IN lists of tracking.db.IN_CHUNK.
    """
    values = sorted(set(values))
    if conn.dialect.name == "postgresql":
        return [values] if values else []
    return list(chunks(values))


def any_of(conn: sa.Connection, column: sa.Column, values: list) -> sa.ColumnElement[bool]:
    """``column IN values``: on PostgreSQL ``column = ANY(array)``, one parameter whatever the
    number of values; elsewhere an IN list."""
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    # One array literal (psycopg's list dumper quotes value by value), sent typed as an array
    # so that the planner sees a constant array, as it does an IN list.
    is_text = isinstance(column.type, sa.String)
    literal = array_literal([str(v) for v in values] if is_text else values, is_text)
    return column == sa.any_(sa.bindparam(None, literal, type_=ArrayLiteral(plain_type(column))))


def array_literal(values: Iterable[Any], quote: bool) -> str:
    """A PostgreSQL array literal: text quoted with its backslashes and double quotes escaped
    (the only characters special inside a quoted element); numbers, dates and flags as their
    text; None as NULL."""
    values = values if isinstance(values, list | tuple) else list(values)
    if quote and None not in values:
        # Most text columns hold no backslash or double quote: join once, escape only if needed
        # (a per-value escape was a tenth of the rollups hook's CPU).
        texts = [v if type(v) is str else str(v) for v in values]
        plain = "".join(texts)
        if "\\" not in plain and '"' not in plain:
            return '{"' + '","'.join(texts) + '"}' if texts else "{}"
    if quote:
        parts = (
            "NULL" if v is None else '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
    elif None in values:
        parts = (_plain_element(v) for v in values)
    elif values and (type(values[0]) is date or values.count(values[0]) == len(values)):
        # Days and site ids, a few distinct values in thousands: each turned into text once
        # (date's own str() was most of what a rollup batch's arrays cost to write).
        text_of = {v: str(v) for v in set(values)}
        parts = map(text_of.__getitem__, values)
    else:
        # Most columns of a rollup batch: numbers and flags (PostgreSQL reads "True" and
        # "False" as booleans), turned into text by map() without a Python call per value.
        parts = map(str, values)
    return "{" + ",".join(parts) + "}"


def _plain_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    return str(value)  # int, Decimal, date: their text is PostgreSQL's input form


class ArrayLiteral(sa.types.TypeDecorator):
    """A PostgreSQL array parameter given as its literal (:func:`array_literal`), passed on as
    is and cast to an array of ``item_type``."""

    impl = sa.Text
    cache_ok = True

    def __init__(self, item_type: sa.types.TypeEngine):
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect):
        from sqlalchemy.dialects.postgresql import ARRAY

        return dialect.type_descriptor(ARRAY(self.item_type))

    def bind_processor(self, dialect):
        return None
