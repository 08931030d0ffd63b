"""The customer value refresh's SQL side: orders in, scores out.

Both databases go through SQLAlchemy; PostgreSQL takes a faster road for the two big transfers,
COPY out of ``orders`` and COPY into ``value_scores`` (five million orders and a million scores:
seconds, where rows through the driver take minutes and hold every value as a Python object).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
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


def _day(dialect: str) -> sa.ColumnElement:
    """The UTC day number (days since 1970-01-01) of an order."""
    if dialect == "postgresql":
        epoch = sa.extract("epoch", orders.c.ordered_at)
        return sa.cast(sa.func.floor(epoch / DAY_SECONDS), sa.BigInteger)
    return sa.cast(sa.func.julianday(orders.c.ordered_at) - 2440587.5, sa.Integer)


def read_customers(
    engine: sa.Engine, site_id: int, before: datetime, recent_from_day: int
) -> dict[str, np.ndarray]:
    """One row per customer and currency, summed by the database from the site's orders with a
    user id before ``before``: first and last purchase day, days with a purchase, orders, net
    revenue, orders from ``recent_from_day`` on, and the amount of the first purchase day.

    The database reduces millions of orders to a row per customer, so what crosses the wire (and
    sits in memory here) is customers, not orders.
    """
    money = sa.cast(sa.func.coalesce(orders.c.total, orders.c.revenue, 0), sa.Float)
    currency = sa.func.upper(sa.func.coalesce(orders.c.currency, NO_CURRENCY))
    day = _day(engine.dialect.name)
    days = (
        sa.select(
            orders.c.user_id.label("user_id"),
            currency.label("currency"),
            day.label("day"),
            sa.func.sum(money).label("amount"),
            sa.func.count().label("orders"),
        )
        .where(
            orders.c.site_id == site_id,
            orders.c.user_id.is_not(None),
            orders.c.ordered_at < before,
        )
        .group_by(orders.c.user_id, currency, day)
        .cte("customer_days")
    )
    recent = sa.case((days.c.day >= recent_from_day, days.c.orders), else_=0)
    per_customer = (
        sa.select(
            days.c.user_id,
            days.c.currency,
            sa.func.min(days.c.day).label("first_day"),
            sa.func.max(days.c.day).label("last_day"),
            sa.func.count().label("days"),
            sa.func.sum(days.c.orders).label("orders"),
            sa.func.sum(days.c.amount).label("revenue"),
            sa.func.sum(recent).label("recent_orders"),
        )
        .group_by(days.c.user_id, days.c.currency)
        .cte("customers")
    )
    first = days.alias("first_days")
    query = (
        sa.select(*per_customer.c, first.c.amount.label("first_amount"))
        .join_from(
            per_customer,
            first,
            sa.and_(
                first.c.user_id == per_customer.c.user_id,
                first.c.currency == per_customer.c.currency,
                first.c.day == per_customer.c.first_day,
            ),
        )
        .execution_options(stream_results=True, yield_per=50_000)
    )
    names = [c.name for c in query.selected_columns]
    columns: dict[str, list] = {name: [] for name in names}
    with engine.connect() as conn:
        for rows in conn.execute(query).partitions():
            for name, values in zip(names, zip(*rows, strict=True), strict=True):
                columns[name].extend(values)
    return {name: np.array(values, dtype=_DTYPES[name]) for name, values in columns.items()}


_DTYPES = {
    "user_id": object,
    "currency": object,
    "first_day": np.int64,
    "last_day": np.int64,
    "days": np.int64,
    "orders": np.int64,
    "revenue": np.float64,
    "recent_orders": np.int64,
    "first_amount": np.float64,
}


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
