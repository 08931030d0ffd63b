"""What the rollup writers share: the UTC day of a time, top-level categories, batched upserts.

Every incremental change is a delta added to a counter by ``INSERT ... ON CONFLICT DO UPDATE``
(one statement per table per batch, rows in key order so concurrent workers lock alike), which
both SQLite and PostgreSQL run; totals read earlier are never written back. On PostgreSQL a
batch's rows travel as one array per column and ``unnest`` turns them back into rows, so the
server parses, plans and runs one statement per table instead of one per row; lookups by many ids
are one ``= ANY(array)`` likewise. SQLite, in-process, runs the same upserts by executemany.
"""

from __future__ import annotations

import functools
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa

from tracking.db import aware, chunks

CATEGORY_SPLIT = re.compile(r" > |/")


def day_of(moment: datetime) -> date:
    """The UTC day of a stored time (SQLite hands back naive UTC times)."""
    return aware(moment).date()


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


def _plain(column: sa.Column) -> sa.types.TypeEngine:
    # Text, not VARCHAR(n): a cast to VARCHAR(n) would cut a longer value instead of failing
    # (an insert) or not matching (a lookup).
    return sa.Text() if isinstance(column.type, sa.String) else column.type


def _array_of(column: sa.Column) -> sa.types.TypeEngine:
    from sqlalchemy.dialects.postgresql import ARRAY

    return ARRAY(_plain(column))


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a rollup value")


# PostgreSQL upserts compiled once per process: (dialect, driver, table, columns, SET clause).
_COMPILED: dict[tuple, str] = {}


def _upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: list[dict[str, Any]],
    set_of: Callable[[Any], dict[str, Any]],
    shape: tuple,
) -> None:
    """``INSERT rows ... ON CONFLICT (primary key) DO UPDATE SET set_of(excluded)``.

    ``rows`` are dicts of the same columns, in the order to lock them; ``shape`` names what
    ``set_of`` writes (the cache key of the compiled statement). PostgreSQL: one ``INSERT ...
    SELECT ... FROM json_to_recordset(rows)`` whose one parameter is the rows as a JSON array
    (orjson writes it far faster than psycopg dumps a Python list per column), compiled once per
    process. SQLite: the same upsert by executemany.
    """
    keys = _key_names(table)
    if conn.dialect.name != "postgresql":
        from sqlalchemy.dialects.sqlite import insert

        stmt = insert(table)
        conn.execute(
            stmt.on_conflict_do_update(index_elements=keys, set_=set_of(stmt.excluded)), rows
        )
        return
    names = tuple(rows[0])
    cache_key = (conn.dialect.name, conn.dialect.driver, table.name, names, shape)
    sql = _COMPILED.get(cache_key)
    if sql is None:
        from sqlalchemy.dialects.postgresql import insert

        source = (
            sa.func.json_to_recordset(sa.cast(sa.bindparam("rows", type_=sa.Text), sa.JSON))
            .table_valued(*[sa.column(name, _plain(table.c[name])) for name in names])
            .render_derived(with_types=True)
        )
        stmt = insert(table).from_select(names, sa.select(*source.c))
        upsert = stmt.on_conflict_do_update(index_elements=keys, set_=set_of(stmt.excluded))
        sql = _COMPILED[cache_key] = str(upsert.compile(dialect=conn.dialect))
    document = orjson.dumps(rows, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
    conn.exec_driver_sql(sql, {"rows": document.decode()})


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
    number of values (the server plans it as the IN list); elsewhere an IN list."""
    if conn.dialect.name != "postgresql":
        return column.in_(values)
    if all(type(v) is str for v in values):
        # Text ids go as one array literal: psycopg's list dumper quotes value by value.
        literal = sa.bindparam(None, text_array(values), type_=sa.Text)
        return column == sa.any_(sa.cast(literal, _array_of(column)))
    return column == sa.any_(sa.bindparam(None, list(values), type_=_array_of(column)))


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of these strings: each quoted, its backslashes and quotes
    escaped (the only characters that are special inside a quoted array element)."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


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
        self.rows: dict[tuple, dict[str, Any]] = {}
        self._blank = {
            **{name: 0 for name in self.counters},
            **{name: False for name in self.flags},
            **{name: "" for name in self.greatest},
        }

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
        for name, amount in amounts.items():
            row[name] += amount
        for name, value in (flags or {}).items():
            row[name] = row[name] or bool(value)
        for name, value in (texts or {}).items():
            row[name] = max(row[name], value)

    def count(self, name: str, counts: Mapping[tuple, int]) -> None:
        """Add ``counts[key]`` to the counter ``name`` of each key: :meth:`add` for many keys."""
        rows, blank = self.rows, self._blank
        for key, amount in counts.items():
            row = rows.get(key)
            if row is None:
                row = rows[key] = blank.copy()
            row[name] += amount

    def write(self, conn: sa.Connection, site_id: int) -> None:
        """Apply every delta in one statement (rows whose deltas are all zero are skipped)."""
        rows, emptied = [], []
        counters, flags, keys = self.counters, self.flags, self.keys
        for key in _in_order(self.rows):
            row = self.rows[key]
            amounts = [row[name] for name in counters]
            if not any(amounts) and not any([row[name] for name in flags]):
                continue
            out = {"site_id": site_id, **dict(zip(keys, key, strict=True)), **row}
            rows.append(out)
            if min(amounts, default=0) < 0:
                emptied.append(out)
        self.rows = {}
        if not rows:
            return
        t = self.table.c

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

        _upsert(
            conn, self.table, rows, set_of, ("add", tuple(counters), tuple(flags), *self.greatest)
        )
        # A row taken back to nothing (a session whose start moved to another day, say) goes,
        # so the table holds exactly the rows a rebuild makes.
        if emptied:
            conn.execute(
                self.table.delete().where(
                    *[t[name] == sa.bindparam(f"k_{name}") for name in ["site_id", *keys]],
                    *[t[name] == 0 for name in counters],
                ),
                [{f"k_{name}": r[name] for name in ["site_id", *keys]} for r in emptied],
            )


def _sortable(key: tuple) -> tuple:
    return tuple(str(part) for part in key)


def _in_order(keys: Iterable[tuple]) -> list[tuple]:
    """Keys in one order every worker agrees on (so concurrent upserts lock rows alike)."""
    try:
        return sorted(keys)  # a key's parts have one type per position: dates, text, flags
    except TypeError:
        return sorted(keys, key=_sortable)


def replace_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite whole rows by primary key (per-session and per-line state)."""
    if not rows:
        return
    keys = _key_names(table)
    key_of = operator.itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    by_key = {key_of(row): row for row in rows}
    rows = [by_key[key] for key in _in_order(by_key)]
    others = [c.name for c in table.columns if c.name not in keys]
    _upsert(conn, table, rows, lambda new: {name: new[name] for name in others}, ("replace",))


def money_or_zero(value: Decimal | None) -> Decimal:
    """A stored amount, or 0 when the store has none."""
    return Decimal(0) if value is None else Decimal(value)


def grouped(rows: Iterable[dict], key: str) -> dict[Any, list[dict]]:
    """Rows grouped by one field."""
    out: dict[Any, list[dict]] = defaultdict(list)
    for row in rows:
        out[row[key]].append(row)
    return out
