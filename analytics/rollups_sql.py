"""What the rollup writers share: the UTC day of a time, top-level categories, batched upserts,
and the ingest hook's reads (:func:`read`: compiled once per process on PostgreSQL).

Every incremental change is a delta added to a counter by ``INSERT ... ON CONFLICT DO UPDATE``
(one statement per table per batch, rows in key order so concurrent workers lock alike), which
both SQLite and PostgreSQL run; totals read earlier are never written back. On PostgreSQL a
batch's rows travel as one array per column and ``unnest`` turns them back into rows, so the
server parses, plans and runs one statement per table instead of one per row (the array
literals are tracking.db's, which look-ups by many ids share). SQLite, in-process, runs the same
upserts by executemany.
"""

from __future__ import annotations

import functools
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tracking.db import ArrayLiteral, array_literal, plain_type

CATEGORY_SPLIT = re.compile(r" > |/")


def day_of(moment: datetime) -> date:
    """The UTC day of a stored time (SQLite hands back naive UTC times)."""
    return moment.date()  # = aware(moment).date(): giving a naive time its zone keeps its day


def top_category(category: Any) -> str:
    """The top-level category: text before the first " > " or "/" ("Music/Jazz" -> "Music")."""
    if not isinstance(category, str):
        return ""
    return _top_of(category)


@functools.lru_cache(maxsize=4096)  # a shop has few categories; every funnel event names one
def _top_of(category: str) -> str:
    if not category.strip():
        return ""
    return CATEGORY_SPLIT.split(category, maxsplit=1)[0].strip()[:500]


def text(value: Any, length: int) -> str:
    """A text dimension as the rollups key it: ``''`` for none, cut to the column."""
    return "" if value is None or value == "" else str(value)[:length]


def visitor_of(anonymous_id: str | None, user_id: str | None) -> str:
    """The holdout identity (tracking.holdout): the anonymous id, else the user id."""
    return (anonymous_id or user_id or "")[:255]


def buyer_of(user_id: str | None, anonymous_id: str | None) -> str:
    """Who bought: the user id, else the anonymous id."""
    return (user_id or anonymous_id or "")[:255]


# The hook's reads on PostgreSQL, compiled once per process: key -> (SQL, constant parameters).
_PG_READS: dict[Any, tuple[str, dict[str, Any]]] = {}
Match = Callable[[sa.ColumnElement, str], sa.ColumnElement[bool]]


def read(
    conn: sa.Connection,
    key: Any,
    build: Callable[[Match], sa.Select | sa.CompoundSelect],
    params: dict[str, Any],
) -> list[dict[str, Any]]:
    """The rows, as dicts, of ``build(match)`` run with ``params``, where ``match(column,
    name)`` is the condition "column is one of the list ``params[name]``" (a text column).
    ``key`` names the statement ``build`` makes: one key per statement, not per call.

    PostgreSQL: the statement is built and compiled once per process (under ``key``) and run by
    the driver, each list sent as one array literal (tracking.db.any_of). Built and compiled by
    SQLAlchemy on every call, with their results set up, the hook's few reads a batch were a
    tenth of its worker CPU for a few hundred rows. SQLite: run by SQLAlchemy, lists as IN
    lists (callers keep them to tracking.db.batches' size).
    """
    if conn.dialect.name != "postgresql":
        query = build(lambda column, name: column.in_(sa.bindparam(name, expanding=True)))
        return [dict(row) for row in conn.execute(query, params).mappings()]
    found = _PG_READS.get(key)
    if found is None:
        query = build(
            lambda column, name: (
                column == sa.any_(sa.bindparam(name, type_=ArrayLiteral(sa.Text())))
            )
        )
        compiled = query.compile(dialect=conn.dialect)
        # Values the statement holds itself (an event name, a JSON key): those it was built with.
        constants = {name: v for name, v in compiled.params.items() if v is not None}
        found = _PG_READS[key] = (str(compiled), constants)
    sql, constants = found
    return read_pg(conn, sql, {**constants, **params})


def read_pg(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows, as dicts, of a PostgreSQL statement written for the driver (``%(name)s``
    parameters); list values are sent as text array literals (``%(name)s::text[]``)."""
    values = {
        name: array_literal([str(v) for v in value], True)
        if isinstance(value, list | tuple | set | frozenset)
        else value
        for name, value in params.items()
    }
    # The driver's own cursor, in the connection's transaction: SQLAlchemy's result object,
    # fetching row by row, cost more than the rows' decoding.
    with conn.connection.dbapi_connection.cursor() as cursor:
        cursor.execute(sql, values)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# PostgreSQL upserts compiled once per process: (dialect, driver, table, columns, SET clause).
_COMPILED: dict[tuple, str] = {}


def _upsert(
    conn: sa.Connection,
    table: sa.Table,
    names: Sequence[str],
    columns: Sequence[Sequence[Any]],
    set_of: Callable[[Any], dict[str, Any]],
    shape: tuple,
) -> None:
    """``INSERT ... ON CONFLICT (primary key) DO UPDATE SET set_of(excluded)`` of rows given
    column by column (``columns[i]`` holds the values of ``names[i]``, rows in locking order).

    ``shape`` names what ``set_of`` writes (the cache key of the compiled statement).
    PostgreSQL: one ``INSERT ... SELECT * FROM unnest(array, ...)``, compiled once per process,
    each column sent as one array literal (far cheaper to write than a parameter per value, and
    for the server to read than JSON). SQLite: the same upsert by executemany.
    """
    if conn.dialect.name != "postgresql":
        from sqlalchemy.dialects.sqlite import insert

        keys = _key_names(table)
        stmt = insert(table)
        rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        conn.execute(
            stmt.on_conflict_do_update(index_elements=keys, set_=set_of(stmt.excluded)), rows
        )
        return
    conn.exec_driver_sql(*_pg_upsert(conn, table, names, columns, set_of, shape))


def _pg_upsert(
    conn: sa.Connection,
    table: sa.Table,
    names: Sequence[str],
    columns: Sequence[Sequence[Any]],
    set_of: Callable[[Any], dict[str, Any]],
    shape: tuple,
    prefix: str = "",
) -> tuple[str, dict[str, str]]:
    """:func:`_upsert`'s PostgreSQL statement and parameters (named ``{prefix}c0``...)."""
    keys = _key_names(table)
    # Columns left out get their default here (what SQLAlchemy does for an executemany).
    missing = [c for c in table.columns if c.name not in names and c.default is not None]
    if missing:
        n = len(columns[0])
        names = [*names, *[c.name for c in missing]]
        columns = [*columns, *[[c.default.arg] * n for c in missing]]
    cache_key = (conn.dialect.name, conn.dialect.driver, table.name, tuple(names), shape, prefix)
    sql = _COMPILED.get(cache_key)
    if sql is None:
        from sqlalchemy.dialects.postgresql import insert

        arrays = [
            sa.bindparam(f"{prefix}c{i}", type_=ArrayLiteral(plain_type(table.c[name])))
            for i, name in enumerate(names)
        ]
        source = sa.func.unnest(*arrays).table_valued(*names).render_derived()
        stmt = insert(table).from_select(names, sa.select(*source.c), include_defaults=False)
        upsert = stmt.on_conflict_do_update(index_elements=keys, set_=set_of(stmt.excluded))
        sql = _COMPILED[cache_key] = str(upsert.compile(dialect=conn.dialect))
    return sql, {
        f"{prefix}c{i}": array_literal(values, isinstance(table.c[name].type, sa.String))
        for i, (name, values) in enumerate(zip(names, columns, strict=True))
    }


class Upserts:
    """The upserts of one ingest batch, sent to PostgreSQL as one statement.

    Each upsert becomes a data-modifying ``WITH`` query of that statement (they touch different
    tables, and PostgreSQL runs each to completion), so a batch pays one round trip, parse and
    plan for all its rollup tables instead of one per table. What must follow them (deleting
    rows a batch took back to nothing) runs after, in order. SQLite, in-process, runs each
    upsert as it comes.
    """

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.merged = conn.dialect.name == "postgresql"
        self.parts: list[tuple] = []
        self.after: list[Callable[[], None]] = []

    def upsert(self, table, names, columns, set_of, shape) -> None:
        if self.merged:
            self.parts.append((table, names, columns, set_of, shape))
        else:
            _upsert(self.conn, table, names, columns, set_of, shape)

    def then(self, step: Callable[[], None]) -> None:
        if self.merged:
            self.after.append(step)
        else:
            step()

    def flush(self) -> None:
        parts, after, self.parts, self.after = self.parts, self.after, [], []
        if len(parts) == 1:
            _upsert(self.conn, *parts[0])
        elif parts:
            sqls, params = [], {}
            for i, part in enumerate(parts):
                sql, values = _pg_upsert(self.conn, *part, prefix=f"u{i}_")
                sqls.append(f"u{i} AS ({sql})")
                params.update(values)
            self.conn.exec_driver_sql("WITH " + ", ".join(sqls) + " SELECT 1", params)
        for step in after:
            step()


def _key_names(table: sa.Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


class Deltas:
    """Counter deltas for one rollup table, summed by key and written in one upsert."""

    def __init__(
        self,
        table: sa.Table,
        counters: Iterable[str],
        flags: Iterable[str] = (),
        greatest: Iterable[str] = (),
    ):
        self.table = table
        self.keys = [name for name in _key_names(table) if name != "site_id"]
        self.counters = list(counters)
        # Boolean columns outside the key: OR-ed (a visitor seen in the holdout stays there).
        self.flags = list(flags)
        # Text columns outside the key: the greatest value wins, whatever the order of arrival.
        self.greatest = list(greatest)
        # Each key's values, in the order of self.values: counters, flags, greatest texts.
        self.values = [*self.counters, *self.flags, *self.greatest]
        self._at = {name: i for i, name in enumerate(self.values)}
        self._blank = (
            [0] * len(self.counters) + [False] * len(self.flags) + [""] * len(self.greatest)
        )
        self.rows: dict[tuple, list[Any]] = {}

    def add(
        self,
        key: tuple,
        flags: dict[str, bool] | None = None,
        texts: dict[str, str] | None = None,
        **amounts,
    ) -> None:
        """Add ``amounts`` to the counters of ``key`` (in primary-key column order)."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = self._blank.copy()
        at = self._at
        for name, amount in amounts.items():
            row[at[name]] += amount
        for name, value in (flags or {}).items():
            row[at[name]] = row[at[name]] or bool(value)
        for name, value in (texts or {}).items():
            row[at[name]] = max(row[at[name]], value)

    def count(self, name: str, counts: Mapping[tuple, int]) -> None:
        """Add ``counts[key]`` to the counter ``name`` of each key: :meth:`add` for many keys."""
        rows, blank, i = self.rows, self._blank, self._at[name]
        for key, amount in counts.items():
            row = rows.get(key)
            if row is None:
                row = rows[key] = blank.copy()
            row[i] += amount

    def write(self, conn: sa.Connection, site_id: int, upserts: Upserts | None = None) -> None:
        """Apply every delta in one statement (rows whose deltas are all zero are skipped);
        with ``upserts``, as part of the batch's one statement (:class:`Upserts`)."""
        counted, flagged = len(self.counters), len(self.counters) + len(self.flags)
        keys = _in_order(self.rows)
        rows = list(map(self.rows.__getitem__, keys))
        self.rows = {}
        # Rows whose counters and flags are all zero (moves that cancelled out) are left out.
        # Rare, and a batch has thousands of rows: found by map/zip/any, which loop in C.
        columns = list(zip(*rows, strict=True)) if rows else []
        counts_something = list(map(any, zip(*columns[:flagged], strict=True)))
        if not all(counts_something):
            kept = [i for i, row_counts in enumerate(counts_something) if row_counts]
            keys = [keys[i] for i in kept]
            rows = [rows[i] for i in kept]
            columns = list(zip(*rows, strict=True)) if rows else []
        if not rows:
            return
        # Keys taken below zero somewhere: those rows may be left holding nothing.
        emptied = []
        if any(min(column) < 0 for column in columns[:counted]):
            emptied = [key for key, row in zip(keys, rows, strict=True) if min(row[:counted]) < 0]
        t, counters, flags = self.table.c, self.counters, self.flags

        def set_of(new) -> dict[str, Any]:
            set_ = {name: t[name] + new[name] for name in counters}
            set_.update({name: sa.or_(t[name], new[name]) for name in flags})
            set_.update(
                {
                    name: sa.case((new[name] > t[name], new[name]), else_=t[name])
                    for name in self.greatest
                }
            )
            return set_

        own = upserts is None
        upserts = Upserts(conn) if own else upserts
        upserts.upsert(
            self.table,
            ["site_id", *self.keys, *self.values],
            [[site_id] * len(keys), *zip(*keys, strict=True), *columns],
            set_of,
            ("add", tuple(counters), tuple(flags), *self.greatest),
        )
        # A row taken back to nothing (a session whose start moved to another day, say) goes,
        # so the table holds exactly the rows a rebuild makes.
        if emptied:
            names = ["site_id", *self.keys]
            delete = self.table.delete().where(
                *[t[name] == sa.bindparam(f"k_{name}") for name in names],
                *[t[name] == 0 for name in counters],
            )
            params = [
                {f"k_{name}": v for name, v in zip(names, (site_id, *key), strict=True)}
                for key in emptied
            ]
            upserts.then(lambda: conn.execute(delete, params))
        if own:
            upserts.flush()


def _sortable(key: tuple) -> tuple:
    return tuple(str(part) for part in key)


def _in_order(keys: Iterable[tuple]) -> list[tuple]:
    """Keys in one order every worker agrees on (so concurrent upserts lock rows alike)."""
    try:
        return sorted(keys)  # a key's parts have one type per position: dates, text, flags
    except TypeError:
        return sorted(keys, key=_sortable)


def replace_rows(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], upserts: Upserts | None = None
) -> None:
    """Insert or overwrite whole rows by primary key (per-session and per-line state); with
    ``upserts``, as part of the batch's one statement (:class:`Upserts`)."""
    if not rows:
        return
    keys = _key_names(table)
    key_of = operator.itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    by_key = {key_of(row): row for row in rows}
    rows = [by_key[key] for key in _in_order(by_key)]
    names = list(rows[0])
    others = [c.name for c in table.columns if c.name not in keys]
    (upserts.upsert if upserts is not None else functools.partial(_upsert, conn))(
        table,
        names,
        [[row[name] for row in rows] for name in names],
        lambda new: {name: new[name] for name in others},
        ("replace",),
    )


def money_or_zero(value: Decimal | None) -> Decimal:
    """A stored amount, or 0 when the store has none."""
    return Decimal(0) if value is None else Decimal(value)


def grouped(rows: Iterable[dict], key: str) -> dict[Any, list[dict]]:
    """Rows grouped by one field."""
    out: dict[Any, list[dict]] = defaultdict(list)
    for row in rows:
        out[row[key]].append(row)
    return out
