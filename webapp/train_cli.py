"""Training commands: ``train`` (once or on a schedule) and ``rollback``."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import click
import redis
from flask import current_app
from flask.cli import with_appcontext

from recommender.registry import ModelRegistry, RegistryError
from recommender.serving import precompute
from recommender.training import NotEnoughData, TrainSettings, train
from tracking.sites import Site, find_site, list_sites
from webapp.clients import clients

STAGES = ("read", "tune", "evaluate", "check", "promote")
PRECOMPUTE_BUDGET_SECONDS = 120.0


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


def train_site(site: Site, tune_seconds: float) -> bool:
    """Train one site with a progress bar; True if a model was promoted."""
    settings = TrainSettings(
        site.site_id,
        registry_dir(site.site_id),
        tune_seconds=tune_seconds,
        before_promote=lambda path: warm_cache(site, path),
    )
    with click.progressbar(length=len(STAGES), label=f"training {site.name}") as bar:

        def progress(stage: str, message: str) -> None:
            bar.label = f"{site.name}: {stage}"
            if stage in STAGES:
                bar.update(1)
            click.echo(f"\n  {stage}: {message}")

        try:
            report = train(clients().engine, settings, progress)
        except NotEnoughData as e:
            click.echo(f"\n  skipped: {e}")
            return False
    if report.promoted:
        click.echo(f"promoted {report.version} for {site.name} ({report.timings})")
    else:
        click.echo(f"kept the current model for {site.name}: {'; '.join(report.failures)}")
    return report.promoted


def warm_cache(site: Site, version_dir: Path) -> int:
    """Precompute a new version's answers for recently active customers into Redis.

    Called before the version becomes current, so web processes switching to it find its
    answers already cached instead of recomputing every visitor at once.
    """
    c = current_app.config
    layer = current_app.extensions["ecrm_serving"]
    started = time.monotonic()
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
        click.echo(f"  cache: not precomputed ({e})")
        return 0
    click.echo(f"  cache: {written} customers precomputed in {time.monotonic() - started:.1f} s")
    return written


@click.command("train")
@with_appcontext
@click.option("--site", "write_key", default=None, help="Only this site (default: all).")
@click.option("--tune-seconds", default=60.0, show_default=True, help="0 skips the search.")
@click.option(
    "--every", "every_minutes", default=0.0, help="Retrain every N minutes until stopped."
)
@click.option("--delay", "delay_seconds", default=0.0, help="Wait this long before the first run.")
def train_command(write_key, tune_seconds, every_minutes, delay_seconds):
    """Train, check and promote recommendation models."""
    stop = threading.Event()
    if every_minutes:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    if delay_seconds and stop.wait(delay_seconds):
        return
    while True:
        for site in _sites(write_key):
            train_site(site, tune_seconds)
        if not every_minutes or stop.wait(every_minutes * 60):
            return


@click.command("rollback")
@with_appcontext
@click.option("--site", "write_key", required=True, help="The site's write key.")
def rollback_command(write_key):
    """Make the previous model version current again."""
    site = _sites(write_key)[0]
    try:
        version = ModelRegistry(registry_dir(site.site_id)).rollback()
    except RegistryError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{site.name}: model {version} is current again")
