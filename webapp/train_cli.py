"""Training commands: ``train`` (once or on a schedule), ``rollback``; the ``attribute`` sweep."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import redis
from flask import current_app
from flask.cli import with_appcontext
from threadpoolctl import threadpool_limits

from recommender.precompute import precompute
from recommender.registry import ModelRegistry, RegistryError
from recommender.train_jobs import TrainJob, TrainJobs
from recommender.training import NotEnoughData, TrainReport, TrainSettings, train
from tracking.attribution import attribute_since
from tracking.sites import Site, find_site, list_sites
from tracking.text import plural
from webapp.clients import clients

PRECOMPUTE_BUDGET_SECONDS = 120.0
INGEST_WAIT_SECONDS = 300


def registry_dir(site_id: int) -> Path:
    """Where a site's model versions live: ``var/models/<site_id>/<version>``."""
    return Path(current_app.config["VAR_DIR"]) / "models" / str(site_id)


def _sites(write_key: str | None) -> list[Site]:
    if write_key:
        site = find_site(clients().engine, write_key)
        if site is None or site.revoked:
            raise click.ClickException(f"no active site has write key {write_key}")
        return [site]
    return [s for s in list_sites(clients().engine) if not s.revoked]


class StageLines:
    """Prints one line per training stage with the seconds it took, terminal or not.

    A progress bar would hide itself when the output is a pipe or a log file (the supervisor's
    trainer, CI), and those are where the progress matters most.
    """

    def __init__(self, also: Callable[[str, str], None] | None = None) -> None:
        self.started = self.last = time.monotonic()
        self.also = also  # told every stage too (a console job's progress)

    def __call__(self, stage: str, message: str) -> None:
        now = time.monotonic()
        click.echo(f"  {stage:<9}{now - self.last:6.1f} s  {message}")
        self.last = now
        if self.also is not None:
            self.also(stage, message)

    @property
    def total(self) -> float:
        """Seconds since the first line."""
        return time.monotonic() - self.started


def train_site(
    site: Site, tune_seconds: float, frame=None, also: Callable[[str, str], None] | None = None
) -> TrainReport | None:
    """Train one site, one line per stage; its report (``promoted`` says if it is current), or
    None when the site has too little data yet.

    ``frame``: train on these interactions instead of reading the store (see ``train``);
    ``also``: told each stage as well (a console job's progress).
    """
    lines = StageLines(also)
    registry = ModelRegistry(registry_dir(site.site_id))
    # With a model in service, the new version's answers are cached before the swap so web
    # processes do not all recompute at once. Before the first model there is nothing to
    # protect, and the demo should not wait for the cache: promote first, then warm it.
    first = registry.current() is None
    settings = TrainSettings(
        site.site_id,
        registry.root,
        tune_seconds=tune_seconds,
        before_promote=None if first else (lambda path: warm_cache(site, path, lines)),
    )
    click.echo(f"training {site.name} (site {site.site_id})")
    try:
        report = train(clients().engine, settings, lines, frame=frame)
    except NotEnoughData as e:
        click.echo(f"  skipped: {e}")
        if also is not None:
            also("read", f"skipped: {e}")
        return None
    if report.promoted:
        if first:
            try:
                warm_cache(site, registry.path(report.version), lines)
            except Exception as e:  # as train() does: a cold cache never fails a good model
                lines("cache", f"not precomputed ({e}); answers fill the cache on demand")
        click.echo(f"promoted {report.version} for {site.name} in {lines.total:.1f} s")
    else:
        click.echo(f"kept the current model for {site.name}: {'; '.join(report.failures)}")
    return report


def warm_cache(site: Site, version_dir: Path, say=None) -> int:
    """Precompute a new version's answers for recently active customers into Redis.

    Called before the version becomes current, so web processes switching to it find its
    answers already cached instead of recomputing every visitor at once (a site's first
    version is warmed right after its promotion instead: nothing is served from a model yet).
    """
    say = say or (lambda stage, message: click.echo(f"  {stage}: {message}"))
    c = current_app.config
    layer = current_app.extensions["ecrm_serving"]
    try:
        written = precompute(
            layer,
            site.site_id,
            active_days=c["RECS_PRECOMPUTE_DAYS"],
            limit=c["RECS_PRECOMPUTE_MAX"],
            budget_seconds=PRECOMPUTE_BUDGET_SECONDS,
            bundle_path=version_dir,
        )
    except redis.RedisError as e:  # the cache fills on demand instead
        say("cache", f"not precomputed ({e}); answers fill the cache on demand")
        return 0
    say("cache", f"{plural(written, 'customer')} precomputed")
    return written


def ingest_backlog(count_up_to: int = 1) -> int | None:
    """Stream entries the ingest worker has not stored yet (unread plus pending).

    0 when there is no stream at all (nothing was ever queued); None while the worker's consumer
    group does not exist yet (the worker has not started), so nothing can be said. A Redis older
    than 7 does not count the unread entries itself: they are counted up to ``count_up_to``.
    """
    c, r = current_app.config, clients().redis
    try:
        stream = r.xinfo_stream(c["STREAM_KEY"])
        groups = r.xinfo_groups(c["STREAM_KEY"])
    except redis.ResponseError:  # no such key: nothing has been queued
        return 0
    group = next((g for g in groups if _text(g["name"]) == c["CONSUMER_GROUP"]), None)
    if group is None:
        return None
    if group.get("lag") is not None:  # Redis 7 counts the unread entries itself
        unread = int(group["lag"])
    else:
        delivered = _text(group["last-delivered-id"])
        if delivered == _text(stream["last-generated-id"]):
            unread = 0
        else:
            ms, _, seq = delivered.partition("-")
            after = f"{ms}-{int(seq or 0) + 1}"  # the first id after the last delivered one
            unread = len(r.xrange(c["STREAM_KEY"], min=after, count=max(1, count_up_to)))
    return unread + int(group["pending"])


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def wait_for_ingest(stop: threading.Event, timeout_seconds: float) -> bool:
    """Wait until the ingest worker has stored every queued event; False if stopped first."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            backlog = ingest_backlog()
        except redis.RedisError:
            backlog = None
        if backlog == 0:
            return True
        if stop.wait(0.5):
            return False
    click.echo(f"the ingest worker still has events queued after {timeout_seconds:.0f} s; training")
    return True


def run_requested_job(tune_seconds: float, timeout: float = 0.0) -> TrainJob | None:
    """Take one 'train now' request from the console and run it; the job, or None if none came.

    Waits up to ``timeout`` seconds for a request. The job's hash follows each training stage
    (the console's models page polls it) and ends ``done`` (promoted, or the current model
    kept, saying why) or ``failed``.
    """
    jobs = TrainJobs(clients().redis)
    jobs.heartbeat()
    job = jobs.take(timeout)
    if job is None:
        return None
    site = next((s for s in list_sites(clients().engine) if s.site_id == job.site_id), None)
    if site is None or site.revoked:
        jobs.fail(job.job_id, f"site {job.site_id} is gone or revoked")
        return jobs.get(job.job_id)
    click.echo(f"training {site.name} (site {site.site_id}): asked for by {job.requested_by}")

    def progress(stage: str, message: str) -> None:
        try:
            jobs.stage(job.job_id, stage, message)
        except redis.RedisError:  # the page misses a stage; the training goes on
            pass

    try:
        report = train_site(site, tune_seconds, also=progress)
    except Exception as e:  # the job says what went wrong; the trainer carries on
        click.echo(f"  failed: {e}")
        jobs.fail(job.job_id, f"training failed: {e}")
        return jobs.get(job.job_id)
    if report is None:
        jobs.fail(job.job_id, "not enough data to train on yet")
    elif report.promoted:
        jobs.finish(job.job_id, report.version, f"model {report.version} is now current")
    else:
        jobs.finish(job.job_id, None, "kept the current model: " + "; ".join(report.failures))
    return jobs.get(job.job_id)


def take_requests_until(stop: threading.Event, deadline: float | None, tune_seconds: float):
    """Run the console's 'train now' requests until ``deadline`` (monotonic) or ``stop``."""
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        left = 2.0 if deadline is None else min(2.0, deadline - time.monotonic())
        try:
            run_requested_job(tune_seconds, timeout=max(left, 0.1))
        except redis.RedisError as e:  # Redis restarting: try again shortly
            click.echo(f"train requests: Redis is unreachable ({e}); retrying")
            stop.wait(2.0)


@click.command("train")
@with_appcontext
@click.option("--site", "write_key", default=None, help="Only this site (default: all).")
@click.option("--tune-seconds", default=60.0, show_default=True, help="0 skips the search.")
@click.option(
    "--first-tune-seconds",
    type=float,
    default=None,
    help="Search budget of the first run only (default: --tune-seconds); 0 for a fast first model.",
)
@click.option(
    "--every", "every_minutes", default=0.0, help="Retrain every N minutes until stopped."
)
@click.option("--delay", "delay_seconds", default=0.0, help="Wait this long before the first run.")
@click.option(
    "--attribute-days",
    type=float,
    default=0.0,
    help="After each run, repair the attributions of orders placed in the last N days "
    "(those concurrent ingest transactions missed); 0: off.",
)
@click.option(
    "--after-ingest",
    is_flag=True,
    help="Start the first run once the ingest worker has stored every queued event "
    f"(at most {INGEST_WAIT_SECONDS // 60} minutes of waiting).",
)
@click.option(
    "--take-requests",
    is_flag=True,
    help="Between scheduled runs (or, without --every, until stopped) run the trainings "
    "asked for with the console's 'train now'.",
)
@click.option(
    "--only-requests",
    is_flag=True,
    help="No scheduled runs: only the console's 'train now' requests, until stopped.",
)
def train_command(
    write_key,
    tune_seconds,
    first_tune_seconds,
    every_minutes,
    delay_seconds,
    attribute_days,
    after_ingest,
    take_requests,
    only_requests,
):
    """Train, check and promote recommendation models."""
    stop = threading.Event()
    take_requests = take_requests or only_requests
    if every_minutes or after_ingest or take_requests:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    if delay_seconds and stop.wait(delay_seconds):
        return
    if after_ingest and not wait_for_ingest(stop, INGEST_WAIT_SECONDS):
        return
    budget = tune_seconds if first_tune_seconds is None else first_tune_seconds
    # implicit fits with its own threads; OpenBLAS threads underneath only slow it down (and
    # implicit warns about them). The supervisor sets OPENBLAS_NUM_THREADS for its children;
    # this covers a `train` typed by hand, where numpy is already loaded.
    with threadpool_limits(limits=1, user_api="blas"):
        while True:
            if not only_requests:
                for site in _sites(write_key):
                    if stop.is_set():
                        return
                    train_site(site, budget)
                if attribute_days > 0:
                    repair_attributions(write_key, attribute_days)
                budget = tune_seconds
            if take_requests:
                deadline = time.monotonic() + every_minutes * 60 if every_minutes else None
                take_requests_until(stop, None if only_requests else deadline, tune_seconds)
                if stop.is_set():
                    return
            elif not every_minutes or stop.wait(every_minutes * 60):
                return


def repair_attributions(write_key: str | None, days: float) -> int:
    """Recompute the attributions of orders placed in the last ``days`` days, every site."""
    window = timedelta(days=current_app.config["ATTRIBUTION_WINDOW_DAYS"])
    since = datetime.now(UTC) - timedelta(days=days)
    total = 0
    for site in _sites(write_key):
        with clients().engine.begin() as conn:
            credited = attribute_since(conn, site.site_id, since, window)
        total += credited
        click.echo(
            f"attribution: {plural(credited, 'order line')} credited to recommendation clicks "
            f"for {site.name} (orders of the last {plural(days, 'day')} rechecked)"
        )
    return total


@click.command("attribute")
@with_appcontext
@click.option("--site", "write_key", default=None, help="Only this site (default: all).")
@click.option(
    "--days", default=2.0, show_default=True, help="Recheck orders placed this many days back."
)
def attribute_command(write_key, days):
    """Repair attributions: credit orders whose click was stored concurrently with them."""
    if days <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--days")
    repair_attributions(write_key, days)


@click.command("rollback")
@with_appcontext
@click.option("--site", "write_key", required=True, help="The site's write key.")
@click.option("--to", "version", default=None, help="Make this version current (see --list).")
@click.option("--list", "show", is_flag=True, help="List the kept versions; change nothing.")
def rollback_command(write_key, version, show):
    """Make the previous model version current again (repeat to step further back)."""
    site = _sites(write_key)[0]
    registry = ModelRegistry(registry_dir(site.site_id))
    if show:
        rows = registry.listing()
        if not rows:
            click.echo(f"{site.name}: no model versions yet; run the train command")
            return
        click.echo(f"{site.name}: {plural(len(rows), 'model version')} kept, oldest first")
        click.echo(f"    {'version':<34}{'promoted at (UTC)':<22}ndcg@10")
        for row in rows:
            marker = "->" if row["current"] else "  "
            promoted = (row["promoted_at"] or "never")[:19].replace("T", " ")
            ndcg = row["metrics"].get("ndcg@10")
            score = f"{ndcg:.3f}" if isinstance(ndcg, int | float) else "-"
            suffix = "  (current)" if row["current"] else ""
            click.echo(f" {marker} {row['version']:<34}{promoted:<22}{score}{suffix}")
        return
    try:
        chosen = registry.rollback(to=version)
    except RegistryError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{site.name}: model {chosen} is current again")
