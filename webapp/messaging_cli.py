"""``flask --app wsgi mailer``: the process that sends the email outbox and the shops' webhooks.

Two loops in two threads (a slow shop endpoint never holds up a sign-in code): the mailer
(:mod:`accounts.mailer`) and the webhook deliverer (:mod:`accounts.webhooks`). Any number of these
processes may run, on any hosts: they claim different rows (:mod:`accounts.claims`). The run
command (:mod:`webapp.supervisor`) starts one.
"""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from accounts.mailer import Mailer, MailSettings, describe_smtp
from accounts.webhook_delivery import Deliverer, DeliverySettings
from accounts.webhooks import InvalidWebhook, enable, get_endpoint, set_endpoint
from tracking.sites import find_site
from tracking.text import plural
from webapp.clients import clients


def mailer_parts() -> tuple[Mailer, Deliverer]:
    """The app's mailer and webhook deliverer, configured."""
    config = current_app.config
    engine = clients().engine
    return (
        Mailer(engine, MailSettings.from_config(config)),
        Deliverer(engine, DeliverySettings.from_config(config)),
    )


@click.command("mailer")
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@with_appcontext
def mailer_command(once):
    """Send queued emails (SMTP or .eml files) and deliver webhooks, with retries."""
    config = current_app.config
    mailer, deliverer = mailer_parts()
    click.echo(f"mailer: mail goes to {describe_smtp(config['SMTP_URL'], config['MAIL_DIR'])}")
    if once:
        sent = delivered = 0
        while n := mailer.run_once():
            sent += n
        while n := deliverer.run_once():
            delivered += n
        click.echo(f"{plural(sent, 'email')} and {plural(delivered, 'webhook')} handled")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    poll = config["MESSAGING_POLL_SECONDS"]
    threads = [
        threading.Thread(target=mailer.run, args=(stop, poll), name="mailer"),
        threading.Thread(target=deliverer.run, args=(stop, poll), name="webhooks"),
    ]
    for thread in threads:
        thread.start()
    while not stop.is_set():
        stop.wait(1.0)
    for thread in threads:
        thread.join()


webhooks_cli = AppGroup("webhooks", help="A site's webhook endpoint (the console's Webhooks page).")


def _site_id(write_key: str) -> int:
    site = find_site(clients().engine, write_key)
    if site is None:
        raise click.ClickException(f"no site has write key {write_key}")
    return site.site_id


def _show(endpoint) -> None:
    state = "enabled" if endpoint.enabled else f"DISABLED ({endpoint.disabled_reason})"
    click.echo(f"url:     {endpoint.url}\nsecret:  {endpoint.secret}\nstate:   {state}")
    if endpoint.allow_private:
        click.echo("private and loopback addresses allowed (testing only)")


@webhooks_cli.command("set")
@click.argument("write_key")
@click.argument("url")
@click.option(
    "--allow-private/--public-only",
    default=None,
    help="Allow a private or loopback address (testing only); default: keep the setting.",
)
@with_appcontext
def webhooks_set(write_key, url, allow_private):
    """Set a site's webhook URL (a new endpoint gets a signing secret)."""
    try:
        endpoint = set_endpoint(
            clients().engine, _site_id(write_key), url, allow_private=allow_private
        )
    except InvalidWebhook as e:
        raise click.ClickException(str(e)) from e
    _show(endpoint)


@webhooks_cli.command("show")
@click.argument("write_key")
@with_appcontext
def webhooks_show(write_key):
    """Show a site's webhook URL, secret and state."""
    endpoint = get_endpoint(clients().engine, _site_id(write_key))
    if endpoint is None:
        raise click.ClickException("this site has no webhook URL: `webhooks set WRITE_KEY URL`")
    _show(endpoint)


@webhooks_cli.command("enable")
@click.argument("write_key")
@with_appcontext
def webhooks_enable(write_key):
    """Re-enable a site's endpoint disabled after repeated failures."""
    try:
        _show(enable(clients().engine, _site_id(write_key)))
    except InvalidWebhook as e:
        raise click.ClickException(str(e)) from e


def register(app) -> None:
    """Attach the ``mailer`` and ``webhooks`` commands."""
    app.cli.add_command(mailer_command)
    app.cli.add_command(webhooks_cli)
