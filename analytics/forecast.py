"""Sales forecast from the fitted models, and its backtest against what happened since.

The forecast (summed by the refresh, analytics.value_summary) adds up, over a snapshot's
customers, the BG/NBD expected purchases in the next 4, 13 and 52 weeks and those times the
Gamma-Gamma expected spend: the orders and revenue the site's current customers are expected to
bring (new customers are not in it). The backtest takes the
snapshot of ``weeks`` weeks before a later one, its customers' predictions for those weeks, and
compares them with what the same customers did in between (orders and net revenue gained from one
snapshot to the other): a true holdout, since the earlier prediction never saw those weeks.

The models count days with a purchase (as FHL's CDNOW summaries do); the actuals count orders,
so a shop where customers often order twice a day sees a backtest a little below the actuals.
Each currency on its own. No Flask.

A backtest joins two snapshots of every customer (over a second at a million customers), so the
refresh computes a new snapshot's backtests once (:func:`store_backtests`, kept with its summary,
migration 121) and the page reads them back (:func:`backtests`); a summary without them (older
than 121) is computed as the page is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

import sqlalchemy as sa

from analytics.value_schema import value_scores, value_summaries

BACKTEST_WEEKS = (4, 13)
PURCHASES = {
    4: value_scores.c.purchases_4w,
    13: value_scores.c.purchases_13w,
    52: value_scores.c.purchases_52w,
}


@dataclass(frozen=True)
class Backtest:
    """One holdout: the prediction made on ``start`` for ``weeks`` weeks against ``end``."""

    weeks: int
    start: date
    end: date
    customers: int
    predicted_orders: float | None
    actual_orders: int | None
    predicted_revenue: float | None
    actual_revenue: float | None

    @property
    def orders_error(self) -> float | None:
        """(predicted - actual) / actual orders; None without actuals."""
        return _error(self.predicted_orders, self.actual_orders)

    @property
    def revenue_error(self) -> float | None:
        """(predicted - actual) / actual net revenue; None without actuals."""
        return _error(self.predicted_revenue, self.actual_revenue)


def _error(predicted, actual) -> float | None:
    if predicted is None or not actual:
        return None
    return (float(predicted) - float(actual)) / float(actual)


def forecast(conn: sa.Connection, site_id: int, day: date, currency: str) -> list[dict]:
    """Expected orders and revenue in the next 4 / 13 / 52 weeks from ``day``'s snapshot (its
    summary, analytics.value_summary); empty when the currency's models were not fitted."""
    stored = conn.execute(
        sa.select(value_summaries.c.forecast).where(
            value_summaries.c.site_id == site_id,
            value_summaries.c.day == day,
            value_summaries.c.currency == currency,
        )
    ).scalar()
    return [{**f, "until": day + timedelta(weeks=f["weeks"])} for f in stored or []]


def backtest(conn: sa.Connection, site_id: int, day: date, currency: str, weeks: int) -> Backtest:
    """The snapshot of ``weeks`` weeks before ``day`` against ``day``'s: predicted and actual
    orders and revenue of the earlier snapshot's fitted customers. Without a snapshot on that
    exact day, or without a fit then, the counts are None."""
    start = day - timedelta(weeks=weeks)
    then, now = value_scores.alias("then"), value_scores.alias("now")
    purchases = getattr(then.c, PURCHASES[weeks].name)
    row = conn.execute(
        sa.select(
            sa.func.count().label("customers"),
            sa.func.sum(purchases).label("predicted_orders"),
            sa.func.sum(purchases * then.c.expected_spend).label("predicted_revenue"),
            # A customer absent on ``day`` (erased since) brought nothing we can count.
            sa.func.sum(sa.func.coalesce(now.c.orders, then.c.orders) - then.c.orders).label(
                "actual_orders"
            ),
            sa.func.sum(sa.func.coalesce(now.c.revenue, then.c.revenue) - then.c.revenue).label(
                "actual_revenue"
            ),
        )
        .select_from(
            then.outerjoin(
                now,
                sa.and_(
                    now.c.site_id == then.c.site_id,
                    now.c.day == day,
                    now.c.currency == then.c.currency,
                    now.c.user_id == then.c.user_id,
                ),
            )
        )
        .where(
            then.c.site_id == site_id,
            then.c.day == start,
            then.c.currency == currency,
            then.c.p_alive.is_not(None),
        )
    ).one()
    if not row.customers:
        return Backtest(weeks, start, day, 0, None, None, None, None)
    return Backtest(
        weeks,
        start,
        day,
        row.customers,
        float(row.predicted_orders),
        int(row.actual_orders),
        float(row.predicted_revenue),
        float(row.actual_revenue),
    )


def _stored(item: dict) -> Backtest:
    return Backtest(
        item["weeks"],
        date.fromisoformat(item["start"]),
        date.fromisoformat(item["end"]),
        item["customers"],
        item["predicted_orders"],
        item["actual_orders"],
        item["predicted_revenue"],
        item["actual_revenue"],
    )


def _summary(site_id: int, day: date, currency: str) -> list:
    return [
        value_summaries.c.site_id == site_id,
        value_summaries.c.day == day,
        value_summaries.c.currency == currency,
    ]


def store_backtests(conn: sa.Connection, site_id: int, day: date, currency: str) -> None:
    """Compute ``day``'s backtests (:data:`BACKTEST_WEEKS`) and keep them with its summary (the
    refresh, once it has written the snapshot and its summary)."""
    found = [{**asdict(backtest(conn, site_id, day, currency, weeks))} for weeks in BACKTEST_WEEKS]
    for item in found:
        item["start"], item["end"] = item["start"].isoformat(), item["end"].isoformat()
    conn.execute(
        value_summaries.update().where(*_summary(site_id, day, currency)).values(backtests=found)
    )


def backtests(conn: sa.Connection, site_id: int, day: date, currency: str) -> list[Backtest]:
    """``day``'s backtests (:data:`BACKTEST_WEEKS`): as the refresh kept them, else computed."""
    stored = conn.execute(
        sa.select(value_summaries.c.backtests).where(*_summary(site_id, day, currency))
    ).scalar()
    if stored is not None and [b["weeks"] for b in stored] == list(BACKTEST_WEEKS):
        return [_stored(b) for b in stored]
    return [backtest(conn, site_id, day, currency, weeks) for weeks in BACKTEST_WEEKS]
