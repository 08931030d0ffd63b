"""Command-line interface: ``flask --app wsgi <command>``."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from tracking import interaction_log, migrations
from tracking.catalogue import import_items, read_items_file
from tracking.ingest import IngestSettings, IngestWorker
from tracking.sites import InvalidSite, create_site, find_site, list_sites, revoke_site
from tracking.text import plural
from webapp.clients import clients

db_cli = AppGroup("db", help="The SQL store's schema.")
sites_cli = AppGroup("sites", help="Sites and their keys.")
items_cli = AppGroup("items", help="The catalogue.")


@db_cli.command("upgrade")
def db_upgrade():
    """Apply pending schema migrations."""
    applied = migrations.upgrade(clients().engine)
    click.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


@db_cli.command("rebuild-log")
@click.option("--site", "write_key", default=None, help="One site's write key (default: all).")
def db_rebuild_log(write_key):
    """Rewrite the interaction log from events and order_lines (after writing them directly)."""
    engine = clients().engine
    if write_key is None:
        chosen = list_sites(engine)
    else:
        site = find_site(engine, write_key)
        if site is None:
            raise click.ClickException(f"no site has write key {write_key}")
        chosen = [site]
    for site in chosen:
        with engine.begin() as conn:
            rows = interaction_log.rebuild(conn, site.site_id)
        click.echo(f"site {site.site_id} ({site.name}): {plural(rows, 'interaction')} in the log")


@sites_cli.command("create")
@click.argument("name")
@click.option("--origin", "origins", multiple=True, help="Allowed browser origin (repeatable).")
@click.option(
    "--store-dnt/--honour-dnt",
    default=False,
    help="Store requests sent with DNT: 1 or Sec-GPC: 1 (default: honour them, store nothing).",
)
@click.option("--rate-limit", default=0, type=int, help="Requests per second per process.")
def sites_create(name, origins, store_dnt, rate_limit):
    """Create a site and print its write key and (once only) its secret server key."""
    try:
        site, server_key = create_site(
            clients().engine, name, list(origins), honour_dnt=not store_dnt, rate_limit=rate_limit
        )
    except InvalidSite as e:
        raise click.BadParameter(str(e)) from e
    clients().sites.invalidate()
    click.echo(f"site:       {site.name} (#{site.site_id})")
    click.echo(f"write key:  {site.write_key}")
    click.echo(f"server key: {server_key}   (shown once: store it in your backend's secrets)")
    click.echo(f"origins:    {', '.join(site.allowed_origins) or '(none: server-side only)'}")


@sites_cli.command("list")
def sites_list():
    """List sites with their write keys and origins."""
    for site in list_sites(clients().engine):
        state = "revoked" if site.revoked else "active"
        origins = ",".join(site.allowed_origins) or "-"
        click.echo(f"{site.site_id}\t{site.write_key}\t{state}\t{site.name}\t{origins}")


@sites_cli.command("revoke")
@click.argument("write_key")
def sites_revoke(write_key):
    """Revoke a site's keys: its events are refused from then on."""
    if not revoke_site(clients().engine, write_key):
        raise click.ClickException(f"no active site has write key {write_key}")
    clients().sites.invalidate()
    click.echo(f"revoked {write_key}")


@items_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--site", "write_key", required=True, help="The site's write key.")
def items_import(path, write_key):
    """Import items from a CSV (with a header row) or JSON Lines file."""
    site = find_site(clients().engine, write_key)
    if site is None or site.revoked:
        raise click.ClickException(f"no active site has write key {write_key}")
    written, errors = import_items(clients().engine, site.site_id, read_items_file(path))
    for error in errors[:20]:
        click.echo(f"skipped {error}", err=True)
    if len(errors) > 20:
        click.echo(f"... and {plural(len(errors) - 20, 'more error')}", err=True)
    click.echo(f"imported {plural(written, 'item')}, skipped {plural(len(errors), 'line')}")
    if errors:
        raise SystemExit(1)


def ingest_settings(consumer: str = "") -> IngestSettings:
    """Worker settings from the app's configuration."""
    c = current_app.config
    return IngestSettings(
        stream_key=c["STREAM_KEY"],
        group=c["CONSUMER_GROUP"],
        consumer=consumer,
        batch_size=c["INGEST_BATCH_SIZE"],
        block_ms=c["INGEST_BLOCK_MS"],
        claim_idle_ms=c["INGEST_CLAIM_IDLE_MS"],
        max_attempts=c["INGEST_MAX_ATTEMPTS"],
        session_timeout=timedelta(minutes=c["SESSION_TIMEOUT_MINUTES"]),
        holdout_share=c["HOLDOUT_SHARE"],
        attribution_window=timedelta(days=c["ATTRIBUTION_WINDOW_DAYS"]),
    )


@click.command("ingest")
@with_appcontext
@click.option(
    "--consumer",
    default="",
    help="Stable consumer name (default: <hostname>-1); reuse it after a restart.",
)
def ingest(consumer):
    """Run an ingest worker: move events from the Redis stream into SQL until stopped."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker = IngestWorker(
        clients().redis, clients().engine, ingest_settings(consumer), spool=clients().spool
    )
    worker.run(stop)
    t = worker.totals
    click.echo(
        f"ingest worker stopped: {t.stored} stored, {t.rejected} rejected, "
        f"{t.duplicates} duplicates"
    )


def register(app: Flask) -> None:
    """Attach the commands to the app."""
    from webapp import supervisor, train_cli

    app.cli.add_command(db_cli)
    app.cli.add_command(sites_cli)
    app.cli.add_command(items_cli)
    app.cli.add_command(ingest)
    app.cli.add_command(supervisor.up)
    app.cli.add_command(supervisor.demo_cli)
    app.cli.add_command(train_cli.train_command)
    app.cli.add_command(train_cli.rollback_command)
    app.cli.add_command(train_cli.attribute_command)
