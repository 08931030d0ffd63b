"""Who is calling: a site's public write key (browsers) or secret server key (backends).

The server key never works from a web page on another site (DESIGN.md, "Identity and trust"):
a page that holds it has published it. Browsers mark their requests with ``Sec-Fetch-Site``
(and, cross-origin, ``Origin``), headers a page's scripts cannot set or remove, so a request
carrying them from another site is refused whatever key it presents.
"""

from __future__ import annotations

from flask import request

from tracking.sites import Site
from webapp.clients import clients
from webapp.errors import ApiError

# Sec-Fetch-Site values that are not another site's page: the service's own pages, and what a
# person types into the address bar.
NOT_CROSS_SITE = ("same-origin", "none")
# request.environ keys: the browser origin this request may be answered to (CORS), and that
# the calling site was resolved (errors before that carry no site's data).
CORS_ORIGIN = "ecrm.cors_origin"
SITE_RESOLVED = "ecrm.site_resolved"


def presented_key(body_key: object = None) -> str | None:
    """The key sent as HTTP Basic username, as a Bearer token, or as ``writeKey`` in the body."""
    auth = request.authorization
    if auth is not None:
        if auth.type == "basic" and auth.username:
            return auth.username
        if auth.type == "bearer" and auth.token:
            return auth.token
    if isinstance(body_key, str) and body_key:
        return body_key
    return None


def browser_context(environ: dict) -> str | None:
    """The header that shows another site's web page sent this request, or None.

    ``Sec-Fetch-Site`` decides when present (``same-origin``/``none`` are not another site,
    even though browsers add ``Origin`` to same-origin POSTs); browsers without it still send
    ``Origin`` on every cross-origin request.
    """
    fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
    if fetch_site is not None:
        value = fetch_site.strip().lower()
        return None if value in NOT_CROSS_SITE else f"Sec-Fetch-Site: {value}"
    origin = environ.get("HTTP_ORIGIN")
    return f"Origin: {origin}" if origin else None


def refuse_server_key_in_browser(field: str) -> None:
    """Raise 403 when the secret server key arrives from another site's web page."""
    why = browser_context(request.environ)
    if why is not None:
        raise ApiError(
            403,
            field,
            f"the secret server key is refused from web pages (this request carries {why}); "
            "browsers must use the site's public write key, and the server key must stay on "
            "your server (if a page held it, replace it)",
            "server_key_in_browser",
        )


def mark_site_resolved() -> None:
    """Record that this request's site is known: its errors are answered as the site's."""
    request.environ[SITE_RESOLVED] = True


def allow_browser_origin(origin: str) -> None:
    """Let CORS answer this request to ``origin`` (the resolved site allows it)."""
    request.environ[CORS_ORIGIN] = origin


def cors_origin(environ: dict) -> str | None:
    """The origin this request may be answered to, if any.

    Only an origin the resolved site allows; errors raised before a site is known (no key, an
    unknown one, a body that cannot be read) carry no site's data and are answered with ``*``.
    """
    origin = environ.get(CORS_ORIGIN)
    if origin is not None:
        return origin
    return None if environ.get(SITE_RESOLVED) else "*"


def site_for_events(body_key: object = None) -> tuple[Site, bool]:
    """The site sending events and whether it used its secret server key."""
    key = presented_key(body_key)
    if key is None:
        raise ApiError(
            401,
            "writeKey",
            "missing; send it as the HTTP Basic username or as writeKey in the body",
            "unauthorized",
        )
    sites = clients().sites
    site = sites.by_write_key(key)
    if site is not None:
        mark_site_resolved()
        return site, False
    site = sites.by_server_key(key)
    if site is not None:
        mark_site_resolved()
        refuse_server_key_in_browser("writeKey" if key == body_key else "Authorization")
        return site, True
    raise ApiError(401, "writeKey", "unknown or revoked write key", "unauthorized")


def site_for_server() -> Site:
    """The site whose secret server key authenticates this backend call."""
    key = presented_key()
    if key is None:
        raise ApiError(
            401,
            "Authorization",
            "missing; send the site's secret server key as HTTP Basic username or Bearer token",
            "unauthorized",
        )
    site = clients().sites.by_server_key(key)
    if site is None:
        raise ApiError(401, "Authorization", "unknown or revoked server key", "unauthorized")
    mark_site_resolved()
    refuse_server_key_in_browser("Authorization")
    return site
