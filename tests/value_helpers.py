"""Customer value snapshots for tests: hand-made rows of ``value_scores``, or a refreshed shop."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from analytics import rfm, value, value_summary
from analytics.value_io import MODEL_COLUMNS
from analytics.value_schema import value_runs, value_scores
from tests.test_value_refresh import _order
from tracking.schema import orders

DAY = date(2026, 11, 30)
BEFORE = date(2026, 11, 23)


def score(user_id: str, r: int, f: int, revenue: float, **extra) -> dict:
    """One customer's row (the columns a test does not name get plain values)."""
    row = {
        "user_id": user_id,
        "orders": 1,
        "revenue": revenue,
        "first_order_at": datetime(2026, 1, 1, tzinfo=UTC),
        "last_order_at": datetime(2026, 11, 1, tzinfo=UTC),
        "r_seed": 2,
        "f_seed": 1,
        "m_seed": 1,
        "r_score": r,
        "f_score": f,
        "m_score": 3,
        "segment": rfm.SEGMENTS[(r, f)],
        "p_alive": None,
        "purchases_4w": None,
        "purchases_13w": None,
        "purchases_52w": None,
        "expected_spend": None,
        "clv": None,
        "vip": False,
    }
    row.update(extra)
    return row


def store_snapshot(db, site_id: int, day: date, currency: str, rows: list[dict]) -> None:
    """Write ``rows`` as the site's snapshot of ``day`` in ``currency``, with its run and its
    summary (as the refresh does)."""
    with db.begin() as conn:
        conn.execute(
            sa.insert(value_scores),
            [{"site_id": site_id, "day": day, "currency": currency, **row} for row in rows],
        )
        conn.execute(
            sa.insert(value_runs).values(
                site_id=site_id,
                day=day,
                currency=currency,
                customers=len(rows),
                orders=sum(r["orders"] for r in rows),
                revenue=sum(r["revenue"] for r in rows),
                fit_error=None if rows and rows[0]["clv"] is not None else "BG/NBD not fitted",
                settings={},
                seconds=0.1,
                computed_at=datetime.now(UTC),
            )
        )
        fitted = bool(rows) and all(r["clv"] is not None for r in rows)
        summary = value_summary.summarise(
            [r["revenue"] for r in rows],
            [r["r_score"] for r in rows],
            [r["f_score"] for r in rows],
            [r["vip"] for r in rows],
            {name: [r[name] for r in rows] for name in MODEL_COLUMNS} if fitted else None,
        )
        value_summary.write(conn, site_id, day, currency, summary)


def scored_shop(db, site_id: int) -> None:
    """A shop of 60 EUR buyers and 3 USD ones, refreshed a week apart (two snapshots)."""
    start = datetime(2026, 6, 1, tzinfo=UTC)
    rows = []
    for c in range(60):
        for k in range(1 + c % 5):  # one to five orders, every 9 days, the last ones lately
            when = start + timedelta(days=(c * 2 + k * 9) % 170)
            rows.append(_order(site_id, f"c{c:02d}", when, 15 + c + k))
    rows += [_order(site_id, f"u{c}", start + timedelta(days=c), 40, "USD") for c in range(3)]
    with db.begin() as conn:
        conn.execute(sa.insert(orders), rows)
    value.refresh(db, site_id, day=BEFORE)
    value.refresh(db, site_id, day=DAY)
