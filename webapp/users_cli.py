"""``flask --app wsgi users ...``: staff accounts of the console from the command line.

``create`` (with a password from stdin, or else printing a one-time sign-in link), ``list``,
``disable``, ``grant`` and ``link`` (a new one-time link, for a lost password or an expired
link). Every change is in the audit log, as made from the command line.
"""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import AppGroup

from accounts.links import LINK_LIFETIME, issue_link, link_url
from accounts.sessions import last_sign_ins
from accounts.staff import ROLES, InvalidStaff, Staff, create_staff, disable, find_staff, grant
from accounts.staff import list_staff as all_staff
from tracking.sites import Site, find_site, list_sites
from tracking.text import plural
from webapp.clients import clients

users_cli = AppGroup("users", help="Staff accounts of the console: create, list, grant, disable.")
ROLE = click.Choice(ROLES)


def _site(write_key: str) -> Site:
    site = find_site(clients().engine, write_key)
    if site is None or site.revoked:
        raise click.ClickException(
            f"no active site has write key {write_key} (`flask --app wsgi sites list` lists them)"
        )
    return site


def _member(email: str) -> Staff:
    member = find_staff(clients().engine, email)
    if member is None:
        raise click.ClickException(
            f"no staff account has email {email} (`flask --app wsgi users list` lists them)"
        )
    return member


def _echo_link(member: Staff) -> None:
    token = issue_link(clients().engine, member)
    hours = int(LINK_LIFETIME.total_seconds() // 3600)
    click.echo(f"one-time sign-in link for {member.email} (works once, for {hours} hours):")
    click.echo(f"  {link_url(current_app.config['PUBLIC_URL'], token)}")


def _grants_text(member: Staff, names: dict[int, str]) -> str:
    return ", ".join(f"{names.get(s, f'#{s}')}: {role}" for s, role in member.grants.items())


@users_cli.command("create")
@click.argument("email")
@click.option("--role", required=True, type=ROLE, help="The role on each site.")
@click.option(
    "--site",
    "write_keys",
    multiple=True,
    help="A site's write key (repeatable; default: every active site).",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin instead of a link."
)
def users_create(email, role, write_keys, password_stdin):
    """Create a staff account; without --password-stdin, print a one-time sign-in link."""
    engine = clients().engine
    if write_keys:
        chosen = [_site(key) for key in write_keys]
    else:
        chosen = [s for s in list_sites(engine) if not s.revoked]
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        member = create_staff(engine, email, role, [s.site_id for s in chosen], password)
    except InvalidStaff as e:
        raise click.ClickException(str(e)) from e
    sites_text = ", ".join(s.name for s in chosen) or "no site yet (`users grant` adds one)"
    click.echo(f"created {member.email}: {role} of {sites_text}")
    if password is None:
        _echo_link(member)


@users_cli.command("list")
def users_list():
    """Staff accounts: email, status, role per site, last sign-in."""
    engine = clients().engine
    names = {s.site_id: s.name for s in list_sites(engine)}
    last = last_sign_ins(engine)
    members = all_staff(engine)
    click.echo("EMAIL\tSTATUS\tGRANTS\tLAST SIGN-IN")
    for m in members:
        status = "disabled" if m.disabled else ("invited" if m.invited else "active")
        seen = last[m.staff_id].strftime("%Y-%m-%d %H:%M UTC") if m.staff_id in last else "never"
        click.echo(f"{m.email}\t{status}\t{_grants_text(m, names) or '-'}\t{seen}")
    click.echo(plural(len(members), "staff account"), err=True)


@users_cli.command("disable")
@click.argument("email")
def users_disable(email):
    """Disable an account: it cannot sign in and its open sessions end now."""
    member = disable(clients().engine, _member(email).email)
    click.echo(f"disabled {member.email}; its sessions have ended")


@users_cli.command("grant")
@click.argument("email")
@click.option("--site", "write_key", required=True, help="The site's write key.")
@click.option("--role", required=True, type=ROLE, help="The role on that site.")
def users_grant(email, write_key, role):
    """Give an account a role on a site (replacing its role there, if any)."""
    site = _site(write_key)
    try:
        member = grant(clients().engine, _member(email).email, site.site_id, role)
    except InvalidStaff as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{member.email} is now {role} of {site.name}")


@users_cli.command("link")
@click.argument("email")
def users_link(email):
    """Print a new one-time sign-in link (older unused links of the account stop working)."""
    member = _member(email)
    if member.disabled:
        raise click.ClickException(f"{member.email} is disabled; no link is issued")
    _echo_link(member)
