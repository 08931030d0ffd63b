"""Who is calling: a site's public write key (browsers) or secret server key (backends)."""

from __future__ import annotations

from flask import request

from tracking.sites import Site
from webapp.clients import clients
from webapp.errors import ApiError


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
        return site, False
    site = sites.by_server_key(key)
    if site is not None:
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
    return site
