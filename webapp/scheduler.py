"""The scheduler process (``flask --app wsgi scheduler``) and the rollup commands.

Every ``SCHEDULE_SECONDS`` it runs each job of :data:`JOBS` that is due, for every active site.
Exactly one scheduler runs across hosts: it holds a Redis lock (``SET NX PX`` with its own
token, renewed each round, released by compare-and-delete); another waits until the lock is
free. Adding a job is one line in :data:`JOBS`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import redis
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from accounts import trigger_actions
from analytics import customer_segments, lift_archive, rollups, trigger_checks, value
from analytics.served import move_served
from recommender import forget
from tracking.attribution import attribute_since
from tracking.sites import Site
from tracking.text import plural
from webapp.clients import clients
from webapp.train_cli import _sites, ingest_backlog

log = logging.getLogger("ecrm.webapp.scheduler")

LOCK_KEY = "ecrm:scheduler:lock"
# Release and renew only a lock this process still holds (its token), atomically.
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end"
)
REPAIR_DAYS = 2.0  # orders whose attributions the sweep rechecks
LIFT_ARCHIVE_SECONDS = 300.0  # the lift of the standard ranges is recomputed this often


class SchedulerLock:
    """One holder across hosts: a Redis key holding the holder's token, with an expiry."""

    def __init__(self, client: redis.Redis, ttl_ms: int, key: str = LOCK_KEY):
        self.client, self.ttl_ms, self.key = client, ttl_ms, key
        self.token = os.urandom(16).hex()
        self.held = False

    def acquire(self) -> bool:
        """Take the lock if free, or renew it if held; False when another holds it."""
        if self.held and self.client.eval(RENEW, 1, self.key, self.token, self.ttl_ms):
            return True
        self.held = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def release(self) -> None:
        """Give the lock up (only if this process still holds it)."""
        self.client.eval(RELEASE, 1, self.key, self.token)
        self.held = False


def repair_attributions(site: Site) -> str:
    """attribute_since over the last days, then rollup_rec_revenue brought up to it."""
    window = timedelta(days=current_app.config["ATTRIBUTION_WINDOW_DAYS"])
    since = datetime.now(UTC) - timedelta(days=REPAIR_DAYS)
    with clients().engine.begin() as conn:
        credited = attribute_since(conn, site.site_id, since, window)
        if current_app.config["ROLLUPS"]:
            rollups.sync_attributions_since(conn, site.site_id, since)
    # Each round recounts the whole window, so the same figure repeats until its orders age out.
    return (
        f"{plural(credited, 'order line')} credited to recommendation clicks "
        f"(orders of the last {plural(REPAIR_DAYS, 'day')} rechecked)"
    )


def move_answers_served(site: Site) -> str:
    """The web processes' answer counts into rollup_recs.served (analytics.served)."""
    moved = move_served(clients().engine, clients().redis, site.site_id)
    return f"{plural(moved, 'answer')} moved"


class TryNextRound(Exception):
    """A job that cannot do its work for a site yet: logged, and the job is due again next round."""


# More stream entries (batches of events) than this waiting: the day's refresh waits for the
# ingest worker (``make run`` queues the demo's 47,692 events, 239 entries, as the scheduler
# starts; a refresh then scored none of its customers, and not again until the next UTC day).
VALUE_BACKLOG_LIMIT = 20


def refresh_customer_value(site: Site) -> str:
    """The nightly customer value refresh: once per UTC day, the first round that finds none
    and no large ingest backlog."""
    engine = clients().engine
    today = datetime.now(UTC).date()
    if value.refreshed_on(engine, site.site_id, today):
        return "already refreshed today"
    try:
        backlog = ingest_backlog(count_up_to=VALUE_BACKLOG_LIMIT + 1)
    except redis.RedisError:
        backlog = None  # Redis away: score what is stored
    if backlog is not None and backlog > VALUE_BACKLOG_LIMIT:
        batches = plural(backlog, "batch", "batches")
        raise TryNextRound(f"waiting for the ingest worker ({batches} of events to store)")
    runs = value.refresh(engine, site.site_id, day=today)
    customer_segments.announce(clients().redis, site.site_id)  # web processes reload VIPs
    fired = trigger_checks.evaluate_scores(engine, site.site_id, trigger_actions.act)
    scored = plural(sum(r.customers for r in runs), "customer")
    return f"{scored} scored, {plural(fired, 'trigger')} fired"


def archive_lift(site: Site) -> str:
    """The lift of the last 7, 30 and 90 days computed ahead (analytics.lift_archive)."""
    periods = lift_archive.archive(
        clients().engine, site.site_id, current_app.config["HOLDOUT_SHARE"]
    )
    return f"lift of the last {', '.join(str(p.days) for p in periods)} days stored"


def finish_model_erasures(site: Site) -> str:
    """Erased rows still in model files (a rewrite that died) blanked (recommender.forget)."""
    registry = Path(current_app.config["VAR_DIR"]) / "models" / str(site.site_id)
    if not forget.pending(registry):
        return "nothing to rewrite"
    report = forget.rewrite_pending(registry)
    return f"{plural(len(report.versions), 'model version')} rewritten without erased customers"


Job = tuple[str, float, Callable[[Site], str]]
# (name, seconds between runs, function of one site returning what it did).
JOBS: list[Job] = [
    ("attribution", 60.0, repair_attributions),
    ("served", 60.0, move_answers_served),
    ("customer value", 3600.0, refresh_customer_value),
    ("lift", LIFT_ARCHIVE_SECONDS, archive_lift),
    ("model erasures", 60.0, finish_model_erasures),
]


class Scheduler:
    """Runs the due jobs of :data:`JOBS` while it holds the lock."""

    def __init__(self, client: redis.Redis, every_seconds: float, jobs: list[Job] | None = None):
        self.every = every_seconds
        self.jobs = JOBS if jobs is None else jobs
        # Renewed every round, so it lapses within three rounds of this process dying.
        self.lock = SchedulerLock(client, int(every_seconds * 3000))
        self.last_run: dict[str, float] = {}

    def run_once(self) -> list[str]:
        """Run what is due if this process holds the lock; return what ran."""
        if not self.lock.acquire():
            return []
        ran = []
        now = time.monotonic()
        for name, interval, fn in self.jobs:
            last = self.last_run.get(name)
            if last is not None and now - last < interval:
                continue
            self.last_run[name] = now
            for site in _sites(None):
                try:
                    log.info("%s for %s: %s", name, site.name, fn(site))
                except TryNextRound as e:
                    log.info("%s for %s: %s", name, site.name, e)
                    self.last_run.pop(name, None)  # due again next round
                except Exception:  # one site's failure must not stop the others
                    log.exception("%s failed for site %d", name, site.site_id)
            ran.append(name)
        return ran

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: a round every ``every`` seconds; the lock is released at the end."""
        try:
            while not stop.is_set():
                self.run_once()
                stop.wait(self.every)
        finally:
            self.lock.release()


@click.command("scheduler")
@with_appcontext
def scheduler_command():
    """Run the scheduled jobs (attribution repair, rollups, the stored lift); one at a time."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    every = current_app.config["SCHEDULE_SECONDS"]
    click.echo(f"scheduler: a round every {every:g} s: {', '.join(j[0] for j in JOBS)}")
    Scheduler(clients().redis, every).run(stop)


reports_cli = AppGroup("reports", help="Reports: the daily rollups behind them.")


@reports_cli.command("rebuild-rollups")
@click.option("--site", "write_key", default=None, help="Only this site (default: all).")
@with_appcontext
def rebuild_rollups(write_key):
    """Recompute every rollup from events, orders and attributions (one transaction per site).

    Then the lift of the standard ranges, which the scheduler otherwise stores every few minutes.
    """
    window = timedelta(days=current_app.config["ATTRIBUTION_WINDOW_DAYS"])
    for site in _sites(write_key):
        written = rollups.rebuild(clients().engine, site.site_id, window)
        summary = ", ".join(f"{name} {count}" for name, count in written.items())
        click.echo(f"rebuilt the rollups of {site.name}: {summary}")
        # The stored lift reports were computed from the old rollups: compute them again now.
        click.echo(f"{site.name}: {archive_lift(site)}")


def register(app) -> None:
    """Attach the scheduler and the reports commands."""
    app.cli.add_command(scheduler_command)
    app.cli.add_command(reports_cli)
