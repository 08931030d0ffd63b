"""``flask --app wsgi analytics refresh [--site WRITE_KEY]``: the customer value refresh now.

The scheduler runs the same refresh nightly (webapp/scheduler.py); this command is the "on
demand" of issue 14. On a terminal it shows a progress bar per site; piped or logged, one line per
step, so the progress is visible where a bar would hide itself.
"""

from __future__ import annotations

import sys
import time
from datetime import date

import click
from flask.cli import AppGroup

from accounts import trigger_actions
from analytics import customer_segments, trigger_checks, value
from tracking.text import plural
from webapp.clients import clients
from webapp.train_cli import _sites

analytics_cli = AppGroup("analytics", help="Customer value: RFM, VIP, churn risk, lifetime value.")


class _Progress:
    """A click progress bar on a terminal, else a line per step."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stdout.isatty()
        self.bar = None
        self.started = time.monotonic()

    def __call__(self, what: str, done: int, total: int) -> None:
        if self.tty:
            if self.bar is None or self.bar.length != total:
                self._close()
                self.bar = click.progressbar(length=total, label=f"{self.label}: {what}")
                self.bar.__enter__()
            self.bar.label = f"{self.label}: {what}"
            self.bar.update(done - self.bar.pos)
        elif done == total:
            click.echo(f"  {self.label}: {what} done ({time.monotonic() - self.started:.1f} s)")

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def close(self) -> None:
        self._close()


@analytics_cli.command("refresh")
@click.option("--site", "write_key", help="only this site (its write key); default every site")
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="score as of the end of this UTC day (default today)",
)
def refresh_command(write_key: str | None, day) -> None:
    """Recompute RFM scores, VIPs, P(alive) and CLV; today's snapshot is replaced."""
    as_of: date | None = day.date() if day else None
    for site in _sites(write_key):
        progress = _Progress(site.name)
        started = time.monotonic()
        try:
            runs = value.refresh(clients().engine, site.site_id, day=as_of, progress=progress)
        finally:
            progress.close()
        customer_segments.announce(clients().redis, site.site_id)  # web processes reload VIPs
        click.echo(f"{site.name}: {_describe(runs)} in {time.monotonic() - started:.1f} s")
        if as_of is None or value.newest_day(clients().engine, site.site_id) == as_of:
            # Score rules compare the two newest snapshots: only a refresh of the newest day
            # changes what they find.
            fired = trigger_checks.evaluate_scores(
                clients().engine, site.site_id, trigger_actions.act
            )
            click.echo(f"{site.name}: {plural(fired, 'trigger')} fired")


def _describe(runs: list[value.RunSummary]) -> str:
    if not runs:
        return "no orders with a customer id yet: nothing to score"
    parts = []
    for run in runs:
        fitted = "lifetime value fitted" if run.fitted else f"RFM only ({run.fit_error})"
        parts.append(f"{run.currency}: {plural(run.customers, 'customer')} scored, {fitted}")
    return "; ".join(parts)
