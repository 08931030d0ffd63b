"""The interaction log: every item event and order line, kept as compact columnar chunks.

Training needs four columns of every interaction (who, which item, what, when), and reading them
row by row out of ``events`` costs more than fitting the model: at a million interactions
SQLite scans twice as many event rows and the driver builds a Python tuple for each, 2.7 s
against a 2.2 s ALS fit (bench/RESULTS.md, "Training speed"). So the ingest worker also appends,
in the same transaction as the events themselves, one chunk per stored batch: the batch's
distinct ids once, as JSON, and integer codes and times as packed arrays. Reading the log is
then a few rows per hundred thousand interactions and no per-row Python objects.

A chunk row holds::

    vocabulary  JSON {"users": [...], "anonymous": [...], "items": [...], "events": [...]}
    codes       int32 (4, n) little endian: user, anonymous, item, event (into vocabulary; -1 none)
    seconds     float64 (n,) little endian: epoch seconds of each interaction

A row's user is the event's ``userId``; its anonymous id is kept only when there is none, and
is resolved through ``identities`` when read (stitching can happen long after the event). Order
lines count as ``Order Completed`` events of the order's visitor at the order's time.

The log holds exactly what :func:`scan_store` reads from ``events`` and ``order_lines``:
:func:`rebuild` writes it from there (migration 3 does so for stores that predate it; so must
anything that writes those tables directly). :func:`compact` merges the small chunks that a
quiet shop's many small batches leave. Erasing a customer must drop their rows here as well as
in ``events`` (rewrite the chunks that hold them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tracking.schema import events, interaction_chunks, order_lines, orders

ORDER_EVENT = "Order Completed"
DAY_SECONDS = 86_400.0
# Columns of a chunk's codes, in order.
CODE_COLUMNS = ("users", "anonymous", "items", "events")
REBUILD_ROWS = 200_000  # interactions per chunk when (re)building
COMPACT_BELOW = 20_000  # chunks smaller than this are merged by compact()
COMPACT_MIN_CHUNKS = 32  # ... once there are at least this many of them


@dataclass
class Chunk:
    """Decoded interactions: four code columns into their own key lists, and times."""

    keys: dict[str, np.ndarray]  # name -> (k,) object array of ids (strings)
    codes: np.ndarray  # (4, n) int32; -1 where the row has no such id
    seconds: np.ndarray  # (n,) float64 epoch seconds

    def __len__(self) -> int:
        return len(self.seconds)

    def column(self, name: str) -> np.ndarray:
        """(n,) object array of one column's ids (None where missing)."""
        keys = np.append(self.keys[name], None)  # code -1 indexes the None
        return keys[self.codes[CODE_COLUMNS.index(name)]]


def chunk_of(
    users: Sequence[str | None],
    anonymous: Sequence[str | None],
    item_ids: Sequence[str],
    names: Sequence[str],
    seconds: Sequence[float] | np.ndarray,
) -> Chunk:
    """A :class:`Chunk` from rows' columns: each id column coded against its distinct ids."""
    columns = (users, anonymous, item_ids, names)
    seconds = np.asarray(seconds, dtype=np.float64)
    codes = np.empty((4, len(seconds)), dtype=np.int32)
    keys = {}
    for position, (name, values) in enumerate(zip(CODE_COLUMNS, columns, strict=True)):
        local, uniques = pd.factorize(np.asarray(values, dtype=object))
        codes[position] = local
        keys[name] = np.array([str(value) for value in uniques], dtype=object)
    return Chunk(keys, codes, seconds)


def encode(*columns: Sequence[Any] | np.ndarray) -> dict[str, Any]:
    """A chunk row's columns (vocabulary, codes, seconds, rows, first/last second) from rows'
    columns, as :func:`chunk_of` takes them."""
    chunk = chunk_of(*columns)
    seconds = chunk.seconds
    return {
        "rows": len(chunk),
        "first_second": float(seconds.min()) if len(seconds) else None,
        "last_second": float(seconds.max()) if len(seconds) else None,
        "vocabulary": json.dumps(
            {name: list(keys) for name, keys in chunk.keys.items()}, separators=(",", ":")
        ),
        "codes": chunk.codes.astype("<i4").tobytes(),
        "seconds": seconds.astype("<f8").tobytes(),
    }


def decode(row: Mapping[str, Any] | sa.Row) -> Chunk:
    """The :class:`Chunk` of a stored row (any mapping with vocabulary, codes and seconds)."""
    row = row._mapping if isinstance(row, sa.Row) else row
    keys = json.loads(row["vocabulary"])
    seconds = np.frombuffer(bytes(row["seconds"]), dtype="<f8").astype(np.float64)
    codes = np.frombuffer(bytes(row["codes"]), dtype="<i4").reshape(4, len(seconds))
    return Chunk(
        {name: np.array(keys[name], dtype=object) for name in CODE_COLUMNS},
        codes.astype(np.int32),
        seconds,
    )


def append(conn: sa.Connection, site_id: int, rows: Iterable[Sequence[Any]]) -> int:
    """Store (user, anonymous, item, event, epoch seconds) rows as one chunk; return the count.

    Rows without an item, or with neither a user nor an anonymous id, are not interactions and
    are skipped (the store's scan would skip them too).
    """
    kept = [r for r in rows if r[2] is not None and (r[0] is not None or r[1] is not None)]
    if not kept:
        return 0
    users, anonymous, item_ids, names, seconds = zip(*kept, strict=True)
    # The anonymous id only where there is no user id, as the scan selects it.
    anonymous = [a if u is None else None for u, a in zip(users, anonymous, strict=True)]
    conn.execute(
        interaction_chunks.insert(),
        {"site_id": site_id, **encode(users, anonymous, item_ids, names, seconds)},
    )
    return len(kept)


def epoch(moment: datetime) -> float:
    """Epoch seconds of a datetime (naive ones are UTC, as the store keeps them)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read(
    conn: sa.Connection,
    site_id: int,
    since: float | None = None,
    until: float | None = None,
) -> Iterator[Chunk]:
    """The site's chunks in the order they were written, limited to [since, until) seconds."""
    query = sa.select(
        interaction_chunks.c.vocabulary, interaction_chunks.c.codes, interaction_chunks.c.seconds
    ).where(interaction_chunks.c.site_id == site_id)
    if since is not None:
        query = query.where(interaction_chunks.c.last_second >= since)
    if until is not None:
        query = query.where(interaction_chunks.c.first_second < until)
    for row in conn.execute(query.order_by(interaction_chunks.c.id)):
        chunk = decode(row)
        if since is not None or until is not None:
            keep = np.ones(len(chunk), dtype=bool)
            if since is not None:
                keep &= chunk.seconds >= since
            if until is not None:
                keep &= chunk.seconds < until
            if not keep.all():
                chunk = Chunk(chunk.keys, chunk.codes[:, keep], chunk.seconds[keep])
        if len(chunk):
            yield chunk


def row_count(conn: sa.Connection, site_id: int) -> int:
    """How many interactions the site's log holds."""
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(interaction_chunks.c.rows), 0)).where(
            interaction_chunks.c.site_id == site_id
        )
    ).scalar()
    return int(total or 0)


def merge(chunks: Sequence[Chunk]) -> dict[str, Any]:
    """One chunk row's columns holding every row of ``chunks``, in order."""
    columns = {name: [] for name in CODE_COLUMNS}
    for chunk in chunks:
        for name in CODE_COLUMNS:
            columns[name].append(chunk.column(name))
    seconds = np.concatenate([c.seconds for c in chunks]) if chunks else np.empty(0)
    return encode(
        *(np.concatenate(columns[name]) if chunks else [] for name in CODE_COLUMNS), seconds
    )


def compact(
    conn: sa.Connection,
    site_id: int,
    below: int = COMPACT_BELOW,
    min_chunks: int = COMPACT_MIN_CHUNKS,
) -> int:
    """Merge the site's chunks of fewer than ``below`` rows into one; return how many merged.

    Nothing happens until there are ``min_chunks`` such chunks. Runs in ``conn``'s transaction:
    a batch stored meanwhile gets a higher id and is not touched. Order between chunks does not
    matter to readers (every row carries its time), so the merged chunk takes a new id.
    """
    small = interaction_chunks.c.rows < below
    where = sa.and_(interaction_chunks.c.site_id == site_id, small)
    count = conn.execute(sa.select(sa.func.count()).where(where)).scalar() or 0
    if count < max(min_chunks, 2):  # merging fewer than two chunks changes nothing
        return 0
    rows = conn.execute(
        sa.select(
            interaction_chunks.c.id,
            interaction_chunks.c.vocabulary,
            interaction_chunks.c.codes,
            interaction_chunks.c.seconds,
        )
        .where(where)
        .order_by(interaction_chunks.c.id)
    ).all()
    ids = [row.id for row in rows]
    merged = merge([decode(row) for row in rows])
    for start in range(0, len(ids), 500):
        conn.execute(
            interaction_chunks.delete().where(interaction_chunks.c.id.in_(ids[start : start + 500]))
        )
    conn.execute(interaction_chunks.insert(), {"site_id": site_id, **merged})
    return len(ids)


def rebuild(conn: sa.Connection, site_id: int, rows_per_chunk: int = REBUILD_ROWS) -> int:
    """Replace the site's log with what :func:`scan_store` reads; return the interactions."""
    conn.execute(interaction_chunks.delete().where(interaction_chunks.c.site_id == site_id))
    total = 0
    for columns in scan_store(conn, site_id, rows_per_chunk):
        users, anonymous, item_ids, names, seconds = columns
        conn.execute(
            interaction_chunks.insert(),
            {"site_id": site_id, **encode(users, anonymous, item_ids, names, seconds)},
        )
        total += len(seconds)
    return total


def scan_store(
    conn: sa.Connection, site_id: int, chunksize: int = REBUILD_ROWS
) -> Iterator[tuple[np.ndarray, ...]]:
    """Every item event and order line of the site, read from the tables themselves.

    Yields (users, anonymous, item_ids, names, seconds) numpy columns, ``chunksize`` rows at a
    time: the four id columns as object arrays (the anonymous id only where the user id is
    missing), seconds as float64. This is the log's source of truth and the slow path (the
    driver makes a tuple per row).
    """
    seconds = _seconds_column(conn.engine)
    label = sa.func.coalesce(events.c.event, events.c.type)
    query = sa.select(
        events.c.user_id,
        _anonymous_only(events),
        events.c.item_id,
        label.label("event"),
        seconds(events.c.timestamp).label("timestamp"),
    ).where(
        _site(conn.engine, events.c.site_id) == site_id,
        events.c.item_id.is_not(None),
        sa.or_(events.c.user_id.is_not(None), events.c.anonymous_id.is_not(None)),
    )
    yield from _read_chunks(conn, query, chunksize)
    lines = (
        sa.select(
            orders.c.user_id,
            _anonymous_only(orders),
            order_lines.c.item_id,
            sa.literal(ORDER_EVENT).label("event"),
            seconds(orders.c.ordered_at).label("timestamp"),
        )
        .select_from(
            order_lines.join(
                orders,
                sa.and_(
                    orders.c.site_id == order_lines.c.site_id,
                    orders.c.order_id == order_lines.c.order_id,
                ),
            )
        )
        .where(
            order_lines.c.site_id == site_id,
            order_lines.c.item_id.is_not(None),
            sa.or_(orders.c.user_id.is_not(None), orders.c.anonymous_id.is_not(None)),
        )
    )
    yield from _read_chunks(conn, lines, chunksize)


def _anonymous_only(table: sa.Table):
    """The anonymous id only where there is no user id: most rows then carry a NULL, not a str."""
    return sa.case((table.c.user_id.is_(None), table.c.anonymous_id)).label("anonymous_id")


def _seconds_column(engine: sa.Engine):
    """SQL giving epoch seconds: no per-row datetime objects, which dominate read time."""
    if engine.dialect.name == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC; julianday keeps the fraction.
        return lambda column: (sa.func.julianday(column) - 2440587.5) * DAY_SECONDS
    return lambda column: sa.cast(sa.extract("epoch", column), sa.Float)


def _site(engine: sa.Engine, column):
    """The site column; on SQLite as an expression, so reading a site's whole history scans the
    table in order instead of hopping through the (site_id, timestamp) index (3x slower)."""
    return column + 0 if engine.dialect.name == "sqlite" else column


def _read_chunks(conn: sa.Connection, query, chunksize: int):
    """Yield each chunk's five columns as numpy arrays (four object, seconds float64).

    Rows are fetched with the driver's own cursor (a server-side one on PostgreSQL, so the
    result is never held whole in memory): SQLAlchemy's Row objects cost more than the reading.
    """
    statement, parameters = _driver_statement(conn, query)
    dbapi = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="ecrm_scan_store")
        cursor.itersize = chunksize
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(statement, parameters)
        while part := cursor.fetchmany(chunksize):
            users, anonymous, item_ids, names, seconds = zip(*part, strict=True)
            del part
            yield (
                np.array(users, dtype=object),
                np.array(anonymous, dtype=object),
                np.array(item_ids, dtype=object),
                np.array(names, dtype=object),
                np.array(seconds, dtype=np.float64),
            )
    finally:
        cursor.close()


def _driver_statement(conn: sa.Connection, query) -> tuple[str, Any]:
    """``query`` as the DBAPI driver takes it: SQL text and parameters, bind-processed."""
    dialect = conn.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    parameters = compiled.construct_params()
    for name, value in parameters.items():
        bind = compiled.binds.get(name)
        process = None if bind is None else bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            parameters[name] = process(value)
    if compiled.positional:
        return str(compiled), tuple(parameters[name] for name in compiled.positiontup)
    return str(compiled), parameters
