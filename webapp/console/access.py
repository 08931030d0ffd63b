"""Who may open a console page: signed-in staff, on the sites they were granted, by role.

``@site_page("marketer")`` guards a view taking ``site_id``: signed out -> the sign-in page;
a site the person was not granted (or that does not exist) -> 404, the same answer, so ids of
other shops cannot be probed; a role below the one needed -> 403. It sets ``g.site``,
``g.role``, ``g.sites`` (the switcher's choices) and ``g.period`` (:mod:`webapp.console.period`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import sqlalchemy as sa
from flask import abort, g, redirect, request, url_for
from flask_login import current_user

from accounts.staff import role_allows
from tracking.schema import sites as sites_table
from tracking.sites import Site, list_sites
from webapp.clients import clients
from webapp.console.period import period_from_args


def granted_sites() -> list[Site]:
    """The active sites the signed-in person may open, by name."""
    grants = current_user.grants
    if not grants:
        return []
    return sorted(
        (s for s in list_sites(clients().engine) if s.site_id in grants and not s.revoked),
        key=lambda s: (s.name.lower(), s.site_id),
    )


def site_name(site_id: int) -> str | None:
    """A site's name (for pages about a site the person may open)."""
    with clients().engine.connect() as conn:
        return conn.execute(
            sa.select(sites_table.c.name).where(sites_table.c.site_id == site_id)
        ).scalar()


def sign_in_redirect():
    """Send a signed-out browser to the sign-in page, coming back here afterwards."""
    return redirect(url_for("staff_auth.sign_in", next=request.full_path.rstrip("?")))


def site_page(needed: str = "viewer") -> Callable:
    """Guard a console view of one site (see the module docstring)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(site_id: int, *args, **kwargs):
            if not current_user.is_authenticated:
                return sign_in_redirect()
            role = current_user.grants.get(site_id)
            choices = granted_sites()
            site = next((s for s in choices if s.site_id == site_id), None)
            if role is None or site is None:
                abort(404)
            if not role_allows(role, needed):
                abort(403, f"this needs the {needed} role on {site.name}; you are {role}")
            g.site, g.role, g.sites = site, role, choices
            g.period, g.period_errors = period_from_args(request.args)
            return view(site_id, *args, **kwargs)

        guarded.needed_role = needed  # read by the access-matrix test
        return guarded

    return decorate


def can(needed: str) -> bool:
    """In a template or view: may the person do what needs ``needed`` on ``g.site``?"""
    return role_allows(getattr(g, "role", None), needed)
