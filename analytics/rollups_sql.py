"""What the rollup writers share: the UTC day of a time, top-level categories, batched upserts.

Every incremental change is a delta added to a counter by ``INSERT ... ON CONFLICT DO UPDATE``
(one statement per table per batch, rows in key order so concurrent workers lock alike), which
both SQLite and PostgreSQL run; totals read earlier are never written back. On PostgreSQL a
batch's rows travel as one array per column and ``unnest`` turns them back into rows, so the
server parses, plans and runs one statement per table instead of one per row; lookups by many ids
are one ``= ANY(array)`` likewise. SQLite, in-process, runs the same upserts by executemany.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
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
    if not isinstance(category, str) or not category.strip():
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


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]):
    """An INSERT of ``rows`` (dicts of the same columns) and the parameters to run it with.

    PostgreSQL: ``INSERT ... SELECT ... FROM json_to_recordset(rows)``, one statement whose one
    parameter is the rows as a JSON array (orjson writes it far faster than psycopg dumps a
    Python list per column); rows go in in list order. SQLite: a plain INSERT, by executemany.
    """
    if conn.dialect.name != "postgresql":
        from sqlalchemy.dialects.sqlite import insert

        return insert(table), rows
    from sqlalchemy.dialects.postgresql import insert

    names = list(rows[0])
    document = orjson.dumps(rows, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    source = (
        sa.func.json_to_recordset(sa.cast(sa.bindparam("rows", document, type_=sa.Text), sa.JSON))
        .table_valued(*[sa.column(name, _plain(table.c[name])) for name in names])
        .render_derived(with_types=True)
    )
    return insert(table).from_select(names, sa.select(*source.c)), None


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
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=_array_of(column)))
    return column.in_(values)


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
            row = self.rows[key] = {name: 0 for name in self.counters}
            row.update({name: False for name in self.flags})
            row.update({name: "" for name in self.greatest})
        for name, amount in amounts.items():
            row[name] += amount
        for name, value in (flags or {}).items():
            row[name] = row[name] or bool(value)
        for name, value in (texts or {}).items():
            row[name] = max(row[name], value)

    def write(self, conn: sa.Connection, site_id: int) -> None:
        """Apply every delta in one statement (rows whose deltas are all zero are skipped)."""
        rows = []
        for key in sorted(self.rows, key=_sortable):
            row = self.rows[key]
            if not any(row[name] for name in self.counters) and not any(
                row[name] for name in self.flags
            ):
                continue
            rows.append({"site_id": site_id, **dict(zip(self.keys, key, strict=True)), **row})
        self.rows = {}
        if not rows:
            return
        stmt, params = _insert(conn, self.table, rows)
        t, new = self.table.c, stmt.excluded
        set_ = {name: t[name] + new[name] for name in self.counters}
        set_.update({name: sa.or_(t[name], new[name]) for name in self.flags})
        set_.update(
            {
                name: sa.case((new[name] > t[name], new[name]), else_=t[name])
                for name in self.greatest
            }
        )
        upsert = stmt.on_conflict_do_update(index_elements=["site_id", *self.keys], set_=set_)
        conn.execute(upsert, params)
        # A row taken back to nothing (a session whose start moved to another day, say) goes,
        # so the table holds exactly the rows a rebuild makes.
        emptied = [r for r in rows if any(r[name] < 0 for name in self.counters)]
        if emptied:
            t = self.table.c
            conn.execute(
                self.table.delete().where(
                    *[t[name] == sa.bindparam(f"k_{name}") for name in ["site_id", *self.keys]],
                    *[t[name] == 0 for name in self.counters],
                ),
                [{f"k_{name}": r[name] for name in ["site_id", *self.keys]} for r in emptied],
            )


def _sortable(key: tuple) -> tuple:
    return tuple(str(part) for part in key)


def replace_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite whole rows by primary key (per-session and per-line state)."""
    if not rows:
        return
    keys = _key_names(table)
    rows = sorted(rows, key=lambda r: _sortable(tuple(r[k] for k in keys)))
    stmt, params = _insert(conn, table, rows)
    others = [c.name for c in table.columns if c.name not in keys]
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=keys, set_={name: stmt.excluded[name] for name in others}
        ),
        params,
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
