"""The lift of the console's standard ranges, computed ahead by the scheduler and served stored.

:func:`analytics.lift.lift_report` sums the period's rows of ``rollup_visitors`` (one per visitor
and day) per visitor: 1-1.5 s for 30 days at 10M events and 1M customers, too slow for a page. As
Matomo archives its reports, the scheduler's ``lift`` job (:func:`archive`) computes the lift of
the last 7, 30 and 90 days (analytics.periods.PRESETS) of each site and stores it in
``lift_archive`` with the time its computation started. :func:`current_lift` answers with the
stored report when it is fresh, and computes live otherwise, so the page and the API give the same
numbers either way. A stored report is fresh when it was stored:

- for the same site, first and last day and configured holdout share, and for the currency asked
  (no currency, or the one the report chose: the default currency, the one with most revenue);
- at most ``max_age`` seconds ago;
- after the site's last rollups rebuild (``rollup_marks`` ``rebuilt_at``, set by
  analytics.rollups.rebuild at its end).

Any other range (a custom one) and any other currency is computed live.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from analytics.lift import lift_report
from analytics.periods import PRESETS, Period, last_days, utc_today
from analytics.schema import lift_archive, rollup_marks
from tracking.db import aware

REBUILT_MARK = "rebuilt_at"  # rollup_marks.name: when the site's rollups were last rebuilt (ms)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch (rollup_marks holds integers)."""
    return int(aware(moment).timestamp() * 1000)


def mark_rebuilt(conn: sa.Connection, site_id: int, at: datetime | None = None) -> None:
    """Record that the site's rollups were rebuilt now: reports stored before are stale."""
    value = to_ms(at or datetime.now(UTC))
    where = (rollup_marks.c.site_id == site_id) & (rollup_marks.c.name == REBUILT_MARK)
    if conn.execute(rollup_marks.update().where(where).values(value=value)).rowcount == 0:
        conn.execute(rollup_marks.insert().values(site_id=site_id, name=REBUILT_MARK, value=value))


def standard_periods(today: date) -> list[Period]:
    """The console's preset ranges ending ``today``."""
    return [last_days(days, today) for days in PRESETS]


def archive(
    engine: sa.Engine, site_id: int, holdout_share: float, today: date | None = None
) -> list[Period]:
    """Compute and store the lift of the standard ranges of ``site_id``; return the ranges.

    The reports are computed first on a reading connection, then written in one short transaction
    that replaces the site's stored reports, so a reader sees the old set or the new one and a
    writer (the ingest worker) is never held up by the computation.
    """
    periods = standard_periods(today or utc_today())
    rows = []
    with engine.connect() as conn:
        for period in periods:
            started = datetime.now(UTC)
            report = lift_report(conn, site_id, period.start, period.end, holdout_share)
            rows.append(
                {
                    "site_id": site_id,
                    "start_day": period.start,
                    "end_day": period.end,
                    "holdout_share": float(holdout_share),
                    "computed_at": started,
                    "report": report,
                }
            )
    with engine.begin() as conn:
        conn.execute(lift_archive.delete().where(lift_archive.c.site_id == site_id))
        conn.execute(lift_archive.insert(), rows)
    return periods


def stored_lift(
    conn: sa.Connection,
    site_id: int,
    start: date,
    end: date,
    holdout_share: float,
    currency: str | None,
    max_age: float,
    now: datetime | None = None,
) -> tuple[dict[str, Any], datetime] | None:
    """The fresh stored report for this range (module docstring) and when it was computed."""
    now = now or datetime.now(UTC)
    a, m = lift_archive, rollup_marks
    rebuilt = (
        sa.select(m.c.value)
        .where(m.c.site_id == site_id, m.c.name == REBUILT_MARK)
        .scalar_subquery()
    )
    row = conn.execute(
        sa.select(a.c.holdout_share, a.c.computed_at, a.c.report, rebuilt.label("rebuilt")).where(
            a.c.site_id == site_id, a.c.start_day == start, a.c.end_day == end
        )
    ).first()
    if row is None or row.holdout_share != float(holdout_share):
        return None
    computed = aware(row.computed_at)
    if (now - computed).total_seconds() > max_age:
        return None
    if row.rebuilt is not None and to_ms(computed) < row.rebuilt:
        return None
    report = row.report
    if currency is not None and currency.upper() != report["currency"]:
        return None
    return report, computed


def current_lift(
    conn: sa.Connection,
    site_id: int,
    start: date,
    end: date,
    holdout_share: float,
    currency: str | None,
    max_age: float,
) -> dict[str, Any]:
    """The lift report (analytics.lift), stored when fresh, else computed now.

    Two keys are added to :func:`analytics.lift.lift_report`'s: ``as_of``, when the numbers were
    computed (ISO 8601, UTC, to the second), and ``stored``, whether they were computed ahead.
    """
    found = stored_lift(conn, site_id, start, end, holdout_share, currency, max_age)
    if found is not None:
        report, computed = found
        return {**report, "as_of": iso_utc(computed), "stored": True}
    started = datetime.now(UTC)
    report = lift_report(conn, site_id, start, end, holdout_share, currency)
    return {**report, "as_of": iso_utc(started), "stored": False}


def iso_utc(moment: datetime) -> str:
    """``2026-12-04T18:55:02Z``."""
    return aware(moment).astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
