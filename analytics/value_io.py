"""The customer value refresh's SQL side: orders in, scores out.

Both databases go through SQLAlchemy; PostgreSQL takes a faster road for the two big transfers,
COPY out of ``orders`` and COPY into ``value_scores`` (five million orders and a million scores:
seconds, where rows through the driver take minutes and hold every value as a Python object).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import clv
from analytics.value_schema import value_scores
from tracking.schema import orders

NO_CURRENCY = "XXX"  # ISO 4217's "no currency", for orders that name none
DAY_SECONDS = 86400.0
WRITE_CHUNK = 5000
MODEL_COLUMNS = (
    "p_alive",
    "purchases_4w",
    "purchases_13w",
    "purchases_52w",
    "expected_spend",
    "clv",
)


def _epoch_seconds(dialect: str) -> sa.ColumnElement:
    if dialect == "postgresql":
        return sa.cast(sa.extract("epoch", orders.c.ordered_at), sa.Float)
    return (sa.func.julianday(orders.c.ordered_at) - 2440587.5) * DAY_SECONDS


def read_orders(engine: sa.Engine, site_id: int, before: datetime) -> dict[str, np.ndarray]:
    """The site's orders with a user id before ``before``, as arrays (one pass, streamed)."""
    money = sa.cast(sa.func.coalesce(orders.c.total, orders.c.revenue, 0), sa.Float)
    query = (
        sa.select(
            orders.c.user_id,
            sa.func.coalesce(orders.c.currency, NO_CURRENCY),
            _epoch_seconds(engine.dialect.name),
            money,
        )
        .where(
            orders.c.site_id == site_id,
            orders.c.user_id.is_not(None),
            orders.c.ordered_at < before,
        )
        .execution_options(stream_results=True, yield_per=50_000)
    )
    if engine.dialect.name == "postgresql":
        return _copy_out(engine, query)
    users: list[str] = []
    currencies: list[str] = []
    seconds: list[float] = []
    amounts: list[float] = []
    with engine.connect() as conn:
        for rows in conn.execute(query).partitions():
            u, c, s, a = zip(*rows, strict=True)
            users.extend(u)
            currencies.extend(c)
            seconds.extend(s)
            amounts.extend(a)
    return _arrays(
        np.array(users, dtype=object),
        np.array(currencies, dtype=object),
        np.array(seconds, dtype=np.float64),
        np.array(amounts, dtype=np.float64),
    )


def _arrays(users, currencies, seconds, amounts) -> dict[str, np.ndarray]:
    return {
        "user_id": users,
        "currency": np.char.upper(currencies.astype(str)).astype(object),
        "day": np.floor(seconds / DAY_SECONDS).astype(np.int64),
        "amount": amounts,
    }


def _copy_out(engine: sa.Engine, query: sa.Select) -> dict[str, np.ndarray]:
    # PostgreSQL: COPY of the compiled query, parsed by pandas (5M orders: a few seconds, where
    # rows through the driver take tens and hold every value as a Python object).
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    buffer = io.BytesIO()
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        sep="\t",
        header=None,
        names=["user_id", "currency", "seconds", "amount"],
        dtype={"user_id": object, "currency": object, "seconds": np.float64, "amount": np.float64},
        keep_default_na=False,
        quoting=3,  # csv.QUOTE_NONE: COPY's text format escapes with backslashes, never quotes
    )
    users = frame["user_id"].to_numpy(dtype=object)
    if _has_escapes(users):
        users = np.array([_unescape(u) for u in users], dtype=object)
    return _arrays(
        users,
        frame["currency"].to_numpy(dtype=object),
        frame["seconds"].to_numpy(),
        frame["amount"].to_numpy(),
    )


def _has_escapes(values: np.ndarray) -> bool:
    return bool(pd.Series(values, dtype=object).str.contains("\\", regex=False).any())


_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(text: str) -> str:
    """A COPY text-format value back to the string it was (user ids may hold tabs)."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_COPY_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass
class Scores:
    """One currency's scores, customer by customer (sorted by user id): what is written."""

    user_id: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray
    first_day: np.ndarray
    last_day: np.ndarray
    seed: tuple[np.ndarray, np.ndarray, np.ndarray]
    quintile: tuple[np.ndarray, np.ndarray, np.ndarray]
    segment: np.ndarray
    model: dict[str, np.ndarray] | None
    vip: np.ndarray
    bgnbd: clv.BgNbd | None
    gamma_gamma: clv.GammaGamma | None
    fit_error: str | None


def _at(day_number: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(day_number))


def _rows(site_id: int, day: date, currency: str, s: Scores):
    model = s.model
    for i, user in enumerate(s.user_id):
        yield {
            "site_id": site_id,
            "day": day,
            "currency": currency,
            "user_id": user,
            "orders": int(s.orders[i]),
            "revenue": round(float(s.revenue[i]), 2),
            "first_order_at": _at(s.first_day[i]),
            "last_order_at": _at(s.last_day[i]),
            "r_seed": int(s.seed[0][i]),
            "f_seed": int(s.seed[1][i]),
            "m_seed": int(s.seed[2][i]),
            "r_score": int(s.quintile[0][i]),
            "f_score": int(s.quintile[1][i]),
            "m_score": int(s.quintile[2][i]),
            "segment": s.segment[i],
            **{
                name: (float(model[name][i]) if model is not None else None)
                for name in MODEL_COLUMNS
            },
            "vip": bool(s.vip[i]),
        }


def write_scores(conn: sa.Connection, site_id: int, day: date, currency: str, s: Scores) -> None:
    if conn.dialect.name == "postgresql":
        _copy_in(conn, site_id, day, currency, s)
        return
    batch: list[dict] = []
    for row in _rows(site_id, day, currency, s):
        batch.append(row)
        if len(batch) >= WRITE_CHUNK:
            conn.execute(sa.insert(value_scores), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(value_scores), batch)


def _copy_in(conn: sa.Connection, site_id: int, day: date, currency: str, s: Scores) -> None:
    # PostgreSQL: one COPY of the whole currency (a million rows in seconds, where INSERTs take
    # minutes); psycopg formats and escapes each value.
    n = len(s.user_id)
    stamps = {
        name: [
            f"{d}T00:00:00+00:00"
            for d in (np.datetime64("1970-01-01") + days.astype("timedelta64[D]")).astype(str)
        ]
        for name, days in (("first_order_at", s.first_day), ("last_order_at", s.last_day))
    }
    columns = {
        "site_id": [site_id] * n,
        "day": [day] * n,
        "currency": [currency] * n,
        "user_id": s.user_id.tolist(),
        "orders": s.orders.tolist(),
        "revenue": np.round(s.revenue, 2).tolist(),
        **stamps,
        "r_seed": s.seed[0].tolist(),
        "f_seed": s.seed[1].tolist(),
        "m_seed": s.seed[2].tolist(),
        "r_score": s.quintile[0].tolist(),
        "f_score": s.quintile[1].tolist(),
        "m_score": s.quintile[2].tolist(),
        "segment": s.segment.tolist(),
        **{
            name: (s.model[name].tolist() if s.model is not None else [None] * n)
            for name in MODEL_COLUMNS
        },
        "vip": s.vip.tolist(),
    }
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY value_scores ({', '.join(columns)}) FROM STDIN") as copy:
        for row in zip(*columns.values(), strict=True):
            copy.write_row(row)
