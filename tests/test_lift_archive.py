"""The lift computed ahead (analytics.lift_archive): stored equals live, when a stored report is
served, the scheduler's job under its lock, and the page and the API serving the same report."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from analytics import lift_archive, rollups
from analytics.lift import lift_report
from analytics.lift_archive import archive, current_lift, standard_periods, stored_lift
from analytics.periods import utc_today
from analytics.schema import lift_archive as archive_table
from analytics.schema import rollup_visitor_revenue, rollup_visitors
from tests.conftest import count
from tests.staff_helpers import sign_in
from tests.test_openapi import assert_documented, document, server_auth  # noqa: F401 (fixture)
from webapp.scheduler import JOBS, Scheduler

SHARE = 0.1
AGE = 900.0


@pytest.fixture
def app_config(app_config):
    app_config["HOLDOUT_SHARE"] = SHARE
    return app_config


def seed(db, site_id: int, today: date, prefix: str = "v", days: int = 40) -> None:
    """Visitors of both groups over the last ``days`` days, buyers in EUR and one in USD.

    Treatment: 1 in 8 visitors ordered; holdout (1 in 10 visitors): 1 in 6. ``t0`` comes back
    the next day, and the days spread over more than a week, so 7, 30 and 90 days differ.
    """
    rows, revenue = [], []
    for n in range(400):
        holdout = n % 10 == 0
        day = today - timedelta(days=n % days)
        bought = n % (6 if holdout else 8) == 1
        visitor = f"{prefix}{n}"
        rows.append(
            {"site_id": site_id, "day": day, "visitor_id": visitor, "holdout": holdout}
            | {"events": 2, "orders": int(bought)}
        )
        if bought:
            currency = "USD" if n == 1 else "EUR"
            amount = Decimal(5 + n % 37) + Decimal("0.25")
            revenue.append(
                {"site_id": site_id, "day": day, "visitor_id": visitor}
                | {"currency": currency, "revenue": amount}
            )
    rows.append(
        {"site_id": site_id, "day": today, "visitor_id": f"{prefix}2", "holdout": False}
        | {"events": 1, "orders": 1}
    )
    revenue.append(
        {"site_id": site_id, "day": today, "visitor_id": f"{prefix}2"}
        | {"currency": "EUR", "revenue": Decimal("12.50")}
    )
    with db.begin() as conn:
        conn.execute(rollup_visitors.insert(), rows)
        conn.execute(rollup_visitor_revenue.insert(), revenue)


def live(db, site_id: int, start: date, end: date, currency: str | None = None) -> dict:
    with db.connect() as conn:
        return lift_report(conn, site_id, start, end, SHARE, currency)


def served(db, site_id: int, start: date, end: date, currency: str | None = None) -> dict:
    with db.connect() as conn:
        return current_lift(conn, site_id, start, end, SHARE, currency, AGE)


def numbers(report: dict) -> dict:
    """The report without the two keys saying when and how it was computed."""
    return {k: v for k, v in report.items() if k not in ("as_of", "stored")}


def test_stored_reports_equal_the_live_computation(db, site):
    today = utc_today()
    seed(db, site.site_id, today)
    periods = archive(db, site.site_id, SHARE, today)
    assert [p.days for p in periods] == [7, 30, 90]
    assert count(db, archive_table) == 3
    for period in periods:
        expected = live(db, site.site_id, period.start, period.end)
        assert expected["treatment"]["visitors"] > 0 and expected["revenue"]["cap"] is not None
        report = served(db, site.site_id, period.start, period.end)
        assert report["stored"] is True
        assert numbers(report) == expected  # every float survives the JSON column exactly
        json.dumps(report, allow_nan=False)
    week, month = (served(db, site.site_id, p.start, p.end) for p in periods[:2])
    assert week["treatment"]["visitors"] < month["treatment"]["visitors"]


def test_when_a_stored_report_is_served(db, site):
    today = utc_today()
    seed(db, site.site_id, today)
    before = datetime.now(UTC)
    archive(db, site.site_id, SHARE, today)
    week = standard_periods(today)[0]
    start, end = week.start, week.end

    def stored(**kw):
        args = {"start": start, "end": end, "holdout_share": SHARE, "currency": None}
        args |= {"max_age": AGE} | kw
        with db.connect() as conn:
            return stored_lift(conn, site.site_id, **args)

    report, computed = stored()
    assert before <= computed <= datetime.now(UTC)
    assert stored(now=computed + timedelta(seconds=AGE - 1)) is not None
    assert stored(now=computed + timedelta(seconds=AGE + 1)) is None  # too old
    assert stored(holdout_share=0.2) is None  # computed for another holdout share
    assert stored(start=start + timedelta(days=1)) is None  # a custom range
    assert stored(currency=report["currency"].lower()) is not None  # the default currency
    assert stored(currency="USD") is None  # another currency: computed live
    usd = served(db, site.site_id, start, end, "USD")
    assert usd["stored"] is False and usd["currency"] == "USD"
    assert numbers(usd) == live(db, site.site_id, start, end, "USD")
    assert served(db, 999, start, end)["stored"] is False  # another site

    # A rebuild of the rollups (here: from raw tables that are empty) makes the stored one stale.
    rollups.rebuild(db, site.site_id)
    assert stored() is None
    after = served(db, site.site_id, start, end)
    assert after["stored"] is False and after["treatment"]["visitors"] == 0
    archive(db, site.site_id, SHARE, today)
    assert stored() is not None  # computed after the rebuild: fresh again


def test_the_rebuild_mark_is_one_row_moved_forward(db, site):
    with db.begin() as conn:
        lift_archive.mark_rebuilt(conn, site.site_id, datetime(2026, 1, 1, tzinfo=UTC))
        lift_archive.mark_rebuilt(conn, site.site_id, datetime(2026, 1, 2, tzinfo=UTC))
        rows = conn.execute(sa.text("SELECT value FROM rollup_marks")).scalars().all()
    assert rows == [lift_archive.to_ms(datetime(2026, 1, 2, tzinfo=UTC))]


def test_the_scheduler_job_stores_the_lift_under_its_lock(app, db, redis, site):
    today = utc_today()
    seed(db, site.site_id, today)
    jobs = [job for job in JOBS if job[0] == "lift"]
    assert len(jobs) == 1
    with app.app_context():
        first, second = Scheduler(redis, 60.0, jobs), Scheduler(redis, 60.0, jobs)
        assert first.run_once() == ["lift"]
        assert second.run_once() == []  # the lock is held: the other scheduler waits
        assert count(db, archive_table) == 3
        first.lock.release()
        with db.begin() as conn:
            conn.execute(archive_table.delete())
        assert second.run_once() == ["lift"]
    assert count(db, archive_table) == 3
    for period in standard_periods(today):
        report = served(db, site.site_id, period.start, period.end)
        assert report["stored"] is True
        assert numbers(report) == live(db, site.site_id, period.start, period.end)


def test_the_rebuild_command_computes_the_lift_again(app, runner, db, site):
    today = utc_today()
    seed(db, site.site_id, today)
    archive(db, site.site_id, SHARE, today)
    result = runner.invoke(args=["reports", "rebuild-rollups", "--site", site.write_key])
    assert result.exit_code == 0, result.output
    assert "lift of the last 7, 30, 90 days stored" in result.output
    week = standard_periods(today)[0]
    report = served(db, site.site_id, week.start, week.end)
    assert report["stored"] is True  # stored after the rebuild, from the rebuilt rollups
    assert report["treatment"]["visitors"] == 0  # no raw events: the rebuilt rollups are empty


def csv_rows(client, site_id: int, table: str, query: dict) -> list[dict[str, str]]:
    response = client.get(
        f"/console/{site_id}/recommendations", query_string={**query, "csv": table}
    )
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_page_and_the_api_serve_the_same_report(client, app, db, site, document):  # noqa: F811
    today = utc_today()
    seed(db, site.site_id, today)
    archive(db, site.site_id, SHARE, today)
    stored = served(db, site.site_id, today - timedelta(days=6), today)
    # New visitors after the job ran: the stored report does not have them yet.
    seed(db, site.site_id, today, prefix="late", days=3)
    sign_in(client, app, "viewer@shop.example", {site.site_id: "viewer"})
    week = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    response = client.get("/v1/reports/lift", query_string=week, headers=server_auth(site))
    assert response.status_code == 200
    assert_documented(document, "/v1/reports/lift", "get", response)
    body = response.get_json()
    assert body == stored and body["stored"] is True
    html = client.get(
        f"/console/{site.site_id}/recommendations", query_string={"range": "7"}
    ).get_data(as_text=True)
    assert f"As of {body['as_of'][11:16]} UTC (computed ahead" in html
    groups = {r["Group"]: r for r in csv_rows(client, site.site_id, "lift_groups", {"range": "7"})}
    for name in ("treatment", "holdout"):
        assert int(groups[name]["Visitors"]) == body[name]["visitors"]
        assert int(groups[name]["Visitors who ordered"]) == body[name]["conversions"]

    # Another range is computed when asked, on both, with the late visitors.
    six = {"from": (today - timedelta(days=5)).isoformat(), "to": today.isoformat()}
    now = client.get("/v1/reports/lift", query_string=six, headers=server_auth(site)).get_json()
    assert now["stored"] is False
    assert numbers(now) == live(db, site.site_id, today - timedelta(days=5), today)
    custom = {"range": "custom", **six}
    html = client.get(f"/console/{site.site_id}/recommendations", query_string=custom).get_data(
        as_text=True
    )
    assert "As of " in html and "(computed ahead" not in html
    groups = {r["Group"]: r for r in csv_rows(client, site.site_id, "lift_groups", custom)}
    assert int(groups["treatment"]["Visitors"]) == now["treatment"]["visitors"]
    assert now["treatment"]["visitors"] > 0


def test_migration_103_creates_the_table_on_an_existing_store(db, site):
    from tracking.schema import schema_migrations
    from webapp.database import upgrade

    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE lift_archive"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 103))
    assert upgrade(db) == [103]
    assert upgrade(db) == []
    today = utc_today()
    seed(db, site.site_id, today)
    archive(db, site.site_id, SHARE, today)
    assert count(db, archive_table) == 3


def test_a_negative_freshness_is_refused():
    from webapp.config import ConfigError, load_config

    env = {"ECRM_SECRET_KEY": "s"}
    assert load_config(environ=env)["LIFT_FRESH_SECONDS"] == 900.0
    with pytest.raises(ConfigError, match="ECRM_LIFT_FRESH_SECONDS"):
        load_config(environ={**env, "ECRM_LIFT_FRESH_SECONDS": "-1"})


def test_with_no_freshness_the_lift_is_always_computed(db, site):
    today = utc_today()
    seed(db, site.site_id, today)
    archive(db, site.site_id, SHARE, today)
    week = standard_periods(today)[0]
    with db.connect() as conn:
        report = current_lift(conn, site.site_id, week.start, week.end, SHARE, None, 0.0)
    assert report["stored"] is False
