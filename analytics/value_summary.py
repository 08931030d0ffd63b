"""A snapshot's summary, computed once by the refresh so the console never reads every customer.

Per site, day and currency (table ``value_summaries``, analytics migration 113): the 25 R x F
cells with their customers and net revenue, the VIP Pareto curve at 5% steps, the VIPs and their
share of net revenue, the lifetime value distribution and the sales forecast. The refresh has
every customer's numbers in memory already; a page then reads one row per snapshot instead of a
million. Pure numpy here; :func:`write` and :func:`backfill` do the SQL. No Flask.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import sqlalchemy as sa

from analytics import rfm
from analytics.value_io import MODEL_COLUMNS
from analytics.value_schema import value_runs, value_scores, value_summaries

PARETO_STEPS = 20  # the curve at 5%, 10% ... 100% of customers
CLV_BINS = 10  # equal bins below the 99th percentile (one more above it)
FORECAST_WEEKS = (4, 13, 52)  # the horizons the refresh stores expected purchases for


def summarise(revenue, r_scores, f_scores, vip, model: dict | None = None) -> dict:
    """The summary of one currency's customers (arrays of equal length; ``model`` the model
    columns by name, as analytics.value_io.MODEL_COLUMNS, or None when the models were not
    fitted). Refunds beyond purchases count as zero revenue on the curve."""
    revenue = np.asarray(revenue, dtype=np.float64)
    r = np.asarray(r_scores, dtype=np.int64)
    f = np.asarray(f_scores, dtype=np.int64)
    vip = np.asarray(vip, dtype=bool)
    cell = (r - 1) * 5 + (f - 1)
    customers = np.bincount(cell, minlength=25)
    cell_revenue = np.bincount(cell, weights=revenue, minlength=25)
    cells = [
        {
            "r": rr,
            "f": ff,
            "customers": int(customers[(rr - 1) * 5 + ff - 1]),
            "revenue": round(float(cell_revenue[(rr - 1) * 5 + ff - 1]), 2),
        }
        for rr in range(5, 0, -1)
        for ff in range(1, 6)
    ]
    positive = np.clip(revenue, 0, None)
    total = positive.sum()
    curve = rfm.pareto(positive)
    return {
        "customers": len(revenue),
        "vips": int(vip.sum()),
        "vip_revenue_share": float(positive[vip].sum() / total) if total > 0 else None,
        "cells": cells,
        "pareto": [share for _, share in curve.points(PARETO_STEPS)],
        "clv_bins": None if model is None else clv_bins(model["clv"]),
        "forecast": None if model is None else forecast(model),
    }


def forecast(model: dict) -> list[dict]:
    """Expected orders (BG/NBD purchases) and revenue (times the Gamma-Gamma spend) of all the
    customers in the next 4, 13 and 52 weeks."""
    spend = np.asarray(model["expected_spend"], dtype=np.float64)
    out = []
    for weeks in FORECAST_WEEKS:
        purchases = np.asarray(model[f"purchases_{weeks}w"], dtype=np.float64)
        out.append(
            {
                "weeks": weeks,
                "orders": float(purchases.sum()),
                "revenue": float((purchases * spend).sum()),
            }
        )
    return out


def clv_bins(clv) -> list[dict]:
    """Customers by lifetime value: ``CLV_BINS`` equal bins from 0 to the 99th percentile (the
    value at rank ceil(0.99 n); the last bin includes it), then one bin above it."""
    values = np.clip(np.asarray(clv, dtype=np.float64), 0, None)
    if len(values) == 0:
        return []
    ordered = np.sort(values)
    top = float(ordered[math.ceil(0.99 * len(values)) - 1])
    if top <= 0:
        top = float(ordered[-1]) or 1.0
    edges = np.linspace(0.0, top, CLV_BINS + 1)
    counts, _ = np.histogram(values[values <= top], bins=edges)
    rows = [
        {"low": round(float(low), 2), "high": round(float(high), 2), "customers": int(n)}
        for low, high, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]
    rows.append({"low": round(top, 2), "high": None, "customers": int((values > top).sum())})
    return rows


def write(conn: sa.Connection, site_id: int, day: date, currency: str, summary: dict) -> None:
    """Store (replace) the summary of one snapshot and currency."""
    conn.execute(
        sa.delete(value_summaries).where(
            value_summaries.c.site_id == site_id,
            value_summaries.c.day == day,
            value_summaries.c.currency == currency,
        )
    )
    conn.execute(
        sa.insert(value_summaries).values(site_id=site_id, day=day, currency=currency, **summary)
    )


def backfill(conn: sa.Connection) -> None:
    """Migration 113: summaries of the snapshots written before the refresh kept them."""
    runs = conn.execute(
        sa.select(value_runs.c.site_id, value_runs.c.day, value_runs.c.currency)
    ).all()
    for site_id, day, currency in runs:
        rows = conn.execute(
            sa.select(
                value_scores.c.revenue,
                value_scores.c.r_score,
                value_scores.c.f_score,
                value_scores.c.vip,
                *(value_scores.c[name] for name in MODEL_COLUMNS),
            ).where(
                value_scores.c.site_id == site_id,
                value_scores.c.day == day,
                value_scores.c.currency == currency,
            )
        ).all()
        fitted = bool(rows) and all(r.clv is not None for r in rows)
        model = (
            {name: [r._mapping[name] for r in rows] for name in MODEL_COLUMNS} if fitted else None
        )
        summary = summarise(
            [float(r.revenue) for r in rows],
            [r.r_score for r in rows] or np.zeros(0),
            [r.f_score for r in rows] or np.zeros(0),
            [r.vip for r in rows],
            model,
        )
        write(conn, site_id, day, currency, summary)
