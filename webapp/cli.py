"""Command-line interface (``flask --app wsgi <command>``): database, sites, items, ingest.

Also registers the commands of their own modules: ``up`` and ``demo`` (webapp.supervisor),
``train``, ``rollback`` and ``attribute`` (webapp.train_cli), ``dead-letters``, ``users``
(webapp.users_cli), ``mailer`` and ``webhooks`` (webapp.messaging_cli).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from accounts import tracker_consent, trigger_actions
from analytics import rollups, trigger_checks
from tracking import interaction_log
from tracking.catalogue import import_items, read_items_file
from tracking.ingest import IngestSettings, IngestWorker
from tracking.sites import (
    InvalidSite,
    Site,
    create_site,
    find_site,
    list_sites,
    revoke_site,
    rotate_identity_secret,
    rotate_server_key,
    update_site,
)
from tracking.text import plural
from webapp import database
from webapp.clients import clients

db_cli = AppGroup("db", help="The SQL store's schema.")
sites_cli = AppGroup("sites", help="Sites and their keys.")
items_cli = AppGroup("items", help="The catalogue.")


@db_cli.command("upgrade")
def db_upgrade():
    """Apply pending schema migrations."""
    applied = database.upgrade(clients().engine)
    click.echo(f"applied migrations: {applied}" if applied else "schema is up to date")
    with clients().engine.connect() as conn:
        for site_id in rollups.sites_without_rollups(conn):
            click.echo(
                f"site {site_id} has events but no report rollups: run "
                "`flask --app wsgi reports rebuild-rollups` (once)"
            )


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


SERVER_KEY_GONE = (
    "(not shown: only its digest is kept; `sites rotate-key --server` makes a new one)"
)


def _site_cache_note() -> str:
    seconds = current_app.config.get("SITE_CACHE_SECONDS", 5.0)
    return f"the old one stops working within {seconds:g} s (every process's site cache)"


def _echo_site(site: Site) -> None:
    click.echo(f"site:            {site.name} (#{site.site_id})")
    click.echo(f"state:           {'revoked' if site.revoked else 'active'}")
    click.echo(f"write key:       {site.write_key}")
    click.echo(f"origins:         {', '.join(site.allowed_origins) or '(none: server-side only)'}")
    verify = "on" if site.verify_identity else "OFF: every user id a browser sends is believed"
    click.echo(f"verify identity: {verify}")
    click.echo(f"identity secret: {site.identity_secret}   (your backend signs user ids with it)")
    dnt = "honoured (nothing stored)" if site.honour_dnt else "stored"
    click.echo(f"DNT / GPC:       {dnt}")
    limit = f"{site.rate_limit} requests/s per process" if site.rate_limit else "none"
    click.echo(f"rate limit:      {limit}")


def _site_or_fail(write_key: str, *, active: bool = True) -> Site:
    site = find_site(clients().engine, write_key)
    if site is None or (active and site.revoked):
        raise click.ClickException(
            f"no {'active ' if active else ''}site has write key {write_key}"
        )
    return site


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
    """Create a site and print its keys: the secret server key is shown this once only."""
    try:
        site, server_key = create_site(
            clients().engine, name, list(origins), honour_dnt=not store_dnt, rate_limit=rate_limit
        )
    except InvalidSite as e:
        raise click.BadParameter(str(e)) from e
    clients().sites.invalidate()
    _echo_site(site)
    click.echo(f"server key:      {server_key}   (shown once: store it in your backend's secrets)")


@sites_cli.command("list")
def sites_list():
    """List sites with their write keys, state, settings and origins."""
    click.echo("ID\tWRITE KEY\tSTATE\tVERIFY IDENTITY\tNAME\tORIGINS")
    for site in list_sites(clients().engine):
        state = "revoked" if site.revoked else "active"
        verify = "on" if site.verify_identity else "off"
        origins = ",".join(site.allowed_origins) or "-"
        click.echo(f"{site.site_id}\t{site.write_key}\t{state}\t{verify}\t{site.name}\t{origins}")


@sites_cli.command("show")
@click.argument("write_key")
def sites_show(write_key):
    """Show a site: name, origins, settings and identity secret (never the server key)."""
    _echo_site(_site_or_fail(write_key, active=False))
    click.echo(f"server key:      {SERVER_KEY_GONE}")


@sites_cli.command("update")
@click.argument("write_key")
@click.option(
    "--origin", "origins", multiple=True, help="Replace the allowed origins (repeatable)."
)
@click.option("--add-origin", "add_origins", multiple=True, help="Allow one more origin.")
@click.option("--remove-origin", "remove_origins", multiple=True, help="Stop allowing an origin.")
@click.option(
    "--verify-identity/--no-verify-identity",
    default=None,
    help="Believe a browser's user id only when signed by the shop's server (default: on).",
)
@click.option(
    "--store-dnt/--honour-dnt",
    default=None,
    help="Store requests sent with DNT: 1 or Sec-GPC: 1, or honour them (store nothing).",
)
@click.option("--rate-limit", default=None, type=int, help="Requests per second per process.")
def sites_update(
    write_key, origins, add_origins, remove_origins, verify_identity, store_dnt, rate_limit
):
    """Change a site's origins and settings; what is not given stays as it is."""
    try:
        site = update_site(
            clients().engine,
            write_key,
            origins=list(origins) if origins else None,
            add_origins=list(add_origins),
            remove_origins=list(remove_origins),
            verify_identity=verify_identity,
            honour_dnt=None if store_dnt is None else not store_dnt,
            rate_limit=rate_limit,
        )
    except InvalidSite as e:
        raise click.ClickException(str(e)) from e
    clients().sites.invalidate()
    _echo_site(site)
    if verify_identity is False:
        click.echo(
            "warning: identity verification is off: anyone with the public write key can act "
            "as any customer (their traits, their history, their recommendations).",
            err=True,
        )


@sites_cli.command("rotate-key")
@click.argument("write_key")
@click.option("--server", "which", flag_value="server", help="A new secret server key.")
@click.option("--identity", "which", flag_value="identity", help="A new identity secret.")
def sites_rotate_key(write_key, which):
    """Replace a site's server key or identity secret; print the new one (shown once)."""
    engine = clients().engine
    try:
        if which == "server":
            key = rotate_server_key(engine, write_key)
            label = "server key"
        elif which == "identity":
            key = rotate_identity_secret(engine, write_key)
            label = "identity secret"
        else:
            raise click.UsageError("say which: --server or --identity")
    except InvalidSite as e:
        raise click.ClickException(str(e)) from e
    clients().sites.invalidate()
    click.echo(f"new {label}: {key}")
    if which == "server":
        click.echo("(shown once: store it in your backend's secrets)")
    else:
        click.echo("(user hashes signed with the old secret no longer verify: re-sign them)")
    click.echo(_site_cache_note())


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


def _consent_and_rollups(conn, batch) -> None:
    """The ingest hook with rollups on: consent records first, then the rollups, then the
    visit-based trigger rules."""
    tracker_consent.on_stored(conn, batch)
    rollups.on_stored(conn, batch)
    trigger_checks.on_stored(conn, batch, trigger_actions.act)


def _consent_and_triggers(conn, batch) -> None:
    """The ingest hook with rollups off: consent records, then the visit-based trigger rules."""
    tracker_consent.on_stored(conn, batch)
    trigger_checks.on_stored(conn, batch, trigger_actions.act)


def ingest_hook(rollups_on: bool) -> Callable:
    """The ingest worker's hook as ``ECRM_ROLLUPS`` chooses it (bench/console.py runs both)."""
    return _consent_and_rollups if rollups_on else _consent_and_triggers


def ingest_settings(consumer: str = "") -> IngestSettings:
    """Worker settings from the app's configuration (the hook: tracker consent, rollups)."""
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
        on_stored=ingest_hook(c["ROLLUPS"]),
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
        f"{t.duplicates} duplicates, {t.dead_lettered} dead-lettered"
    )


def register(app: Flask) -> None:
    """Attach the commands to the app."""
    from webapp import messaging_cli, scheduler, supervisor, train_cli
    from webapp.analytics_cli import analytics_cli
    from webapp.dead_letters_cli import dead_letters_cli
    from webapp.users_cli import users_cli

    app.cli.add_command(db_cli)
    app.cli.add_command(sites_cli)
    app.cli.add_command(items_cli)
    app.cli.add_command(ingest)
    app.cli.add_command(supervisor.up)
    app.cli.add_command(supervisor.demo_cli)
    app.cli.add_command(train_cli.train_command)
    app.cli.add_command(train_cli.rollback_command)
    app.cli.add_command(dead_letters_cli)
    app.cli.add_command(train_cli.attribute_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(analytics_cli)
    scheduler.register(app)
    messaging_cli.register(app)
