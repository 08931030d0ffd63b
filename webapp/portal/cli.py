"""``flask portal look``: a site's portal colours, from the command line."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from accounts.portal_settings import InvalidLook, set_look
from tracking.sites import find_site
from webapp.clients import clients

portal_cli = AppGroup("portal", help="The customers' self-service pages (/account/).")


@portal_cli.command("look")
@click.argument("write_key")
@click.option("--brand", default=None, help="The header's colour, like #1f5fa8.")
@click.option("--accent", default=None, help="The accent colour (current page, defaults).")
def portal_look(write_key, brand, accent):
    """Show or change a site's portal colours; what is not given stays as it is."""
    site = find_site(clients().engine, write_key)
    if site is None or site.revoked:
        raise click.ClickException(f"no active site has write key {write_key}")
    try:
        look = set_look(clients().engine, site.site_id, brand=brand, accent=accent)
    except InvalidLook as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{site.name}: brand {look.brand_colour}, accent {look.accent_colour}")
