"""The customer value refresh: RFM, VIP, P(alive) and lifetime value per customer, dated.

:func:`refresh` reads a site's orders once (customers with a user id; anonymous orders belong to
prospects, not to scores), and for each currency on its own (money is never summed across
currencies) computes the seed's 1-3 scores and the quintile scores with their named segment
(analytics.rfm), fits BG/NBD and Gamma-Gamma (analytics.clv) and scores every customer: P(alive),
expected purchases in 4 / 13 / 52 weeks, expected spend and discounted CLV, then the VIP flag,
all with the site's settings (analytics.value_settings). It replaces the day's snapshot in
``value_scores``, its summary for the console in ``value_summaries`` (analytics.value_summary)
and records the fit in ``value_runs``. A currency whose customers cannot be
fitted (too few, no repeat purchase) still gets its RFM scores; the run says why the model
columns are empty.

Orders in the sums: every order with a user id up to the end of the refresh day, refunds
(negative totals) included, so money is net; an order without a currency is scored under ``XXX``
(ISO 4217's "no currency"). Times are whole UTC days; the models count days with a purchase, in
weeks, as Fader, Hardie & Lee built their CDNOW summaries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import sqlalchemy as sa

from analytics import clv, forecast, rfm, value_settings, value_summary
from analytics.value_io import Scores, read_customers, write_scores
from analytics.value_schema import value_runs, value_scores, value_summaries
from analytics.value_settings import ValueSettings

log = logging.getLogger("ecrm.analytics.value")

MONTH_DAYS = 30.4375  # a mean Gregorian month
WEEK_DAYS = 7.0
RECENT_DAYS = 91  # "orders in the last 3 months": days since, for the seed's frequency
EPOCH = date(1970, 1, 1)

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class RunSummary:
    """What one currency's refresh did."""

    currency: str
    customers: int
    orders: int
    fitted: bool
    fit_error: str | None
    seconds: float


def score_currency(rows: dict[str, np.ndarray], end_day: int, settings: ValueSettings) -> Scores:
    """Every score of one currency's customers from their per-customer sums (read_customers)."""
    order = np.argsort(rows["user_id"].astype(str), kind="stable")
    r = {name: values[order] for name, values in rows.items()}
    uniques, count, revenue = r["user_id"], r["orders"], r["revenue"]
    first_day, last_day = r["first_day"], r["last_day"]

    days_since = (end_day - last_day).astype(np.float64)
    seed = rfm.seed_scores(
        days_since / MONTH_DAYS, r["recent_orders"], revenue / count, settings.thresholds
    )
    r5, f5, m5, segment = rfm.quintile_scores(uniques, days_since, count, revenue)

    # The models' summary (FHL's CDNOW tables): repeat purchase days, in weeks.
    x = (r["days"] - 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(x > 0, (revenue - r["first_amount"]) / x, 0.0)
    summary = clv.Summary(
        customer_ids=uniques,
        frequency=x,
        recency=(last_day - first_day) / WEEK_DAYS,
        T=(end_day - first_day) / WEEK_DAYS,
        monetary=monetary,
    )
    model, bg, gg, error = _model_scores(summary, settings)
    if settings.vip_by == "clv" and model is not None:
        vip_value = model["clv"]
    else:
        vip_value = revenue
    vip = rfm.vip_mask(vip_value, uniques, settings.vip_share)
    return Scores(
        uniques,
        count,
        revenue,
        first_day,
        last_day,
        seed,
        (r5, f5, m5),
        segment,
        model,
        vip,
        bg,
        gg,
        error,
    )


def _model_scores(summary: clv.Summary, settings: ValueSettings):
    x, t_x, T = summary.frequency, summary.recency, summary.T
    try:
        bg = clv.fit_bgnbd(x, t_x, T)
    except clv.FitError as e:
        return None, None, None, f"BG/NBD not fitted: {e}"
    spend_known = (x > 0) & (summary.monetary > 0)
    try:
        gg = clv.fit_gamma_gamma(x[spend_known], summary.monetary[spend_known])
        if gg.q <= 1:
            raise clv.FitError("the fitted spend has no finite mean (q <= 1)")
    except clv.FitError as e:
        return None, bg, None, f"Gamma-Gamma not fitted: {e}"
    monetary = np.clip(summary.monetary, 0, None)  # refunds above purchases: no spend expected
    step = 4.0
    per_step = (1 + settings.annual_discount) ** (step / 52.0) - 1
    model = {
        "p_alive": clv.p_alive(bg, x, t_x, T),
        "purchases_4w": clv.expected_purchases(bg, 4, x, t_x, T),
        "purchases_13w": clv.expected_purchases(bg, 13, x, t_x, T),
        "purchases_52w": clv.expected_purchases(bg, 52, x, t_x, T),
        "expected_spend": clv.expected_spend(gg, x, monetary),
        "clv": clv.customer_value(
            bg,
            gg,
            x,
            t_x,
            T,
            monetary,
            horizon=settings.horizon_weeks,
            step=step,
            discount_rate=per_step,
        ),
    }
    return model, bg, gg, None


def refresh(
    engine: sa.Engine,
    site_id: int,
    *,
    day: date | None = None,
    settings: ValueSettings | None = None,
    progress: Progress | None = None,
) -> list[RunSummary]:
    """Recompute the site's scores as of the end of ``day`` (default today, UTC); replace that
    day's snapshot. Scores with ``settings``, else the site's stored ones (analytics.value_settings,
    the defaults when it has none). Returns one summary per currency."""
    settings = settings or value_settings.load(engine, site_id)
    day = day or datetime.now(UTC).date()
    report = progress or (lambda *_: None)
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    end_day = (day - EPOCH).days
    report("reading orders", 0, 1)
    data = read_customers(engine, site_id, end, recent_from_day=end_day - RECENT_DAYS + 1)
    currencies = sorted(set(data["currency"].tolist()))
    report("reading orders", 1, 1)
    summaries = []
    with engine.begin() as conn:
        conn.execute(
            sa.delete(value_scores).where(
                value_scores.c.site_id == site_id, value_scores.c.day == day
            )
        )
        conn.execute(
            sa.delete(value_runs).where(value_runs.c.site_id == site_id, value_runs.c.day == day)
        )
        conn.execute(
            sa.delete(value_summaries).where(
                value_summaries.c.site_id == site_id, value_summaries.c.day == day
            )
        )
        for done, currency in enumerate(currencies):
            started = time.perf_counter()
            mask = data["currency"] == currency
            scores = score_currency(
                {name: values[mask] for name, values in data.items()}, end_day, settings
            )
            report(f"scoring {currency}", done, len(currencies))
            write_scores(conn, site_id, day, currency, scores)
            summary = value_summary.summarise(
                scores.revenue,
                scores.quintile[0],
                scores.quintile[1],
                scores.vip,
                scores.model,
            )
            value_summary.write(conn, site_id, day, currency, summary)
            seconds = time.perf_counter() - started
            bg, gg = scores.bgnbd, scores.gamma_gamma
            conn.execute(
                sa.insert(value_runs).values(
                    site_id=site_id,
                    day=day,
                    currency=currency,
                    customers=len(scores.user_id),
                    orders=int(scores.orders.sum()),
                    revenue=round(float(scores.revenue.sum()), 2),
                    bgnbd=None if bg is None else _params(bg, ("r", "alpha", "a", "b")),
                    gamma_gamma=None if gg is None else _params(gg, ("p", "q", "gamma")),
                    fit_error=scores.fit_error,
                    settings=settings.as_json(),
                    seconds=seconds,
                    computed_at=datetime.now(UTC),
                )
            )
            summaries.append(
                RunSummary(
                    currency,
                    len(scores.user_id),
                    int(scores.orders.sum()),
                    scores.model is not None,
                    scores.fit_error,
                    seconds,
                )
            )
            report(f"scoring {currency}", done + 1, len(currencies))
        if conn.dialect.name == "postgresql" and currencies:
            # Fresh statistics with the new rows: without them the planner takes a new day's
            # snapshot for a handful of rows and joins two snapshots by nested loops (the
            # console's "valuable and slipping" ran for minutes on 20k customers until autovacuum
            # got there; with them, milliseconds).
            conn.exec_driver_sql("ANALYZE value_scores")
        report("backtests", 0, 1)
        for currency in currencies:  # once here, not on every view of the forecast page
            forecast.store_backtests(conn, site_id, day, currency)
        report("backtests", 1, 1)
    return summaries


def refreshed_on(engine: sa.Engine, site_id: int, day: date) -> bool:
    """Whether the site has a snapshot of ``day`` (a site without scored orders never has)."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(value_runs.c.day)
            .where(value_runs.c.site_id == site_id, value_runs.c.day == day)
            .limit(1)
        ).first()
    return found is not None


def newest_day(engine: sa.Engine, site_id: int) -> date | None:
    """The day of the site's newest snapshot, or None before its first refresh."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(value_runs.c.day)).where(value_runs.c.site_id == site_id)
        ).scalar()


def _params(model, names: tuple[str, ...]) -> dict:
    return {**{n: getattr(model, n) for n in names}, "log_likelihood": model.log_likelihood}
