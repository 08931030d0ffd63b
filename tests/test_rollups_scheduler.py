"""The scheduler's lock (one runner across hosts) and the rebuild-rollups command."""

from __future__ import annotations

import sqlalchemy as sa

from analytics.schema import rollup_visitors
from tests.conftest import drain, make_event
from webapp.scheduler import Scheduler


def test_two_schedulers_one_runs(app, redis, site):
    ran = []
    jobs = [("count", 0.0, lambda s: ran.append(s.site_id) or "counted")]
    with app.app_context():
        first, second = Scheduler(redis, 60.0, jobs), Scheduler(redis, 60.0, jobs)
        assert first.run_once() == ["count"]
        assert second.run_once() == []  # waits: the lock is held
        assert first.run_once() == ["count"]  # renewed, still the holder
        first.lock.release()
        assert second.run_once() == ["count"]
        assert first.run_once() == []
    assert ran == [site.site_id] * 3


def test_release_keeps_another_holders_lock(app, redis):
    first, second = Scheduler(redis, 60.0, []), Scheduler(redis, 60.0, [])
    assert first.lock.acquire()
    second.lock.release()  # not its lock: nothing happens
    assert not second.lock.acquire()


def test_rebuild_rollups_command(app, runner, tracker, site, db):
    assert tracker.batch([make_event(i) for i in range(4)]).status_code == 200
    drain(app)
    with db.begin() as conn:
        conn.execute(rollup_visitors.delete())
    hint = f"site {site.site_id} has events but no report rollups"
    assert hint in runner.invoke(args=["db", "upgrade"]).output
    result = runner.invoke(args=["reports", "rebuild-rollups", "--site", site.write_key])
    assert result.exit_code == 0, result.output
    assert "rebuilt the rollups of Test shop: rollup_visitors 4" in result.output
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.sum(rollup_visitors.c.events))).scalar() == 4
    assert hint not in runner.invoke(args=["db", "upgrade"]).output
