"""The portal's API for shop backends (secret server key): open a portal session for a customer
(``POST /v1/portal/sessions``) and read a customer as the portal keeps them
(``GET /v1/customers/<user_id>``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from accounts import addresses, portal_sessions, profile
from tracking.db import aware
from tracking.schema import orders
from tracking.sites import InvalidSite, Site, normalise_origin
from webapp.auth import site_for_server
from webapp.catalogue import json_body
from webapp.clients import get_engine
from webapp.errors import ApiError
from webapp.openapi.parse import parse_json, validate
from webapp.openapi.portal import CustomerPath, PortalSessionRequest

bp = Blueprint("portal_api", __name__, url_prefix="/v1")
ENTER_PATH = "/account/enter/"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def checked_return_url(site: Site, url: str | None, field: str = "body.return_url") -> str | None:
    """``url`` when it is http(s) on one of the site's allowed origins; else a 400 naming it.

    A site that allows every origin (``*``) for events still needs its own origins listed to
    send customers back: a portal link must not lead anywhere at all.
    """
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "\\" in url:
        raise ApiError(400, field, "must be an http(s) URL")
    try:
        origin = normalise_origin(f"{parts.scheme}://{parts.netloc}")
    except (InvalidSite, ValueError):
        raise ApiError(400, field, "must be an http(s) URL") from None
    allowed = [o for o in site.allowed_origins if o != "*"]
    if parts.username is not None or origin not in allowed:
        listed = ", ".join(allowed) or "none yet; add one with `flask sites update`"
        raise ApiError(400, field, f"must be on one of the site's allowed origins ({listed})")
    return url


@bp.post("/portal/sessions")
def create_portal_session():
    """A single-use URL that signs the customer in to the portal (5 minutes)."""
    site = site_for_server()
    request_body = parse_json(PortalSessionRequest, json_body())
    return_url = checked_return_url(site, request_body.return_url)
    token, expires_at = portal_sessions.issue_token(
        get_engine(),
        site.site_id,
        request_body.user_id,
        return_url=return_url,
        locale=request_body.locale,
    )
    url = current_app.config["PUBLIC_URL"] + ENTER_PATH + token
    response = jsonify(url=url, expires_at=_iso(expires_at))
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


def customer_document(conn: sa.Connection, site_id: int, user_id: str) -> dict[str, Any] | None:
    """The customer as ``GET /v1/customers/<user_id>`` answers; None when there is none."""
    found = profile.read_profile(conn, site_id, user_id)
    if found is None:
        return None
    count, last = conn.execute(
        sa.select(sa.func.count(), sa.func.max(orders.c.ordered_at)).where(
            orders.c.site_id == site_id, orders.c.user_id == user_id
        )
    ).one()
    return {
        "user_id": user_id,
        **{name: found[name] or None for name in ("name", "email", "phone", "birthday")},
        "age": found["age"],
        "addresses": addresses.list_addresses(conn, site_id, user_id),
        "orders": {"count": count, "last_ordered_at": _iso(_aware(last))},
        "first_seen_at": _iso(_aware(found["first_seen_at"])),
        "last_seen_at": _iso(_aware(found["last_seen_at"])),
    }


def _aware(moment: datetime | None) -> datetime | None:
    return aware(moment) if moment is not None else None


@bp.get("/customers/<path:user_id>")
def read_customer(user_id: str):
    """The customer's profile, addresses and order summary."""
    site = site_for_server()
    user_id = validate(CustomerPath, {"user_id": user_id}).user_id
    with get_engine().connect() as conn:
        document = customer_document(conn, site.site_id, user_id)
    if document is None:
        raise ApiError(404, "user_id", f"no customer {user_id!r}", "not_found")
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-store"
    return response
