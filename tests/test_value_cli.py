"""``flask analytics refresh`` and the scheduler's nightly customer value refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from analytics.value_schema import value_runs, value_scores
from tests.test_value_refresh import _order
from tracking.schema import orders
from webapp.scheduler import Scheduler, TryNextRound, refresh_customer_value


def _buyers(db, site_id: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for c in range(40):
        for k in range(1 + c % 4):  # one to four orders each
            rows.append(_order(site_id, f"c{c:02d}", now - timedelta(days=7 * k + c), 20 + c))
    with db.begin() as conn:
        conn.execute(sa.insert(orders), rows)


def test_refresh_command_scores_the_site_and_says_what_it_did(app, runner, site, db):
    _buyers(db, site.site_id)
    result = runner.invoke(args=["analytics", "refresh", "--site", site.write_key])
    assert result.exit_code == 0, result.output
    assert "reading orders done" in result.output  # piped output: a line per step
    assert f"{site.name}: EUR: 40 customers scored, lifetime value fitted" in result.output
    with db.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(value_scores)) == 40


def test_refresh_command_refuses_an_unknown_site(app, runner):
    result = runner.invoke(args=["analytics", "refresh", "--site", "nope"])
    assert result.exit_code != 0 and "no active site has write key nope" in result.output


def test_refresh_command_on_a_site_without_orders(app, runner, site):
    result = runner.invoke(args=["analytics", "refresh", "--site", site.write_key])
    assert result.exit_code == 0
    assert "no orders with a customer id yet" in result.output


def test_scheduler_refreshes_once_a_day(app, site, db):
    _buyers(db, site.site_id)
    with app.app_context():
        assert refresh_customer_value(site) == "40 customers scored, 0 triggers fired"
        assert refresh_customer_value(site) == "already refreshed today"
    with db.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(value_runs)) == 1


def test_scheduler_waits_while_the_ingest_worker_has_a_backlog(app, site, db, redis):
    _buyers(db, site.site_id)
    stream, group = app.config["STREAM_KEY"], app.config["CONSUMER_GROUP"]
    redis.xgroup_create(stream, group, id="0", mkstream=True)
    for n in range(21):  # queued, not yet read by a worker
        redis.xadd(stream, {"n": str(n)})
    scheduler = Scheduler(redis, 60.0, jobs=[("customer value", 3600.0, refresh_customer_value)])
    with app.app_context():
        with pytest.raises(TryNextRound, match=r"\(21 batches of events to store\)"):
            refresh_customer_value(site)
        assert scheduler.run_once() == ["customer value"]
        assert "customer value" not in scheduler.last_run  # due again next round
        redis.xgroup_setid(stream, group, id="$")  # the worker caught up
        assert scheduler.run_once() == ["customer value"]
        assert "customer value" in scheduler.last_run
        assert refresh_customer_value(site) == "already refreshed today"
    with db.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(value_scores)) == 40
