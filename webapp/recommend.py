"""The recommendation API: ``/v1/recommendations``, ``/v1/items/<id>/similar``,
``/v1/customers/<id>/similar``, the HTTP face of :mod:`recommender.serving`.

Browsers call with the site's public write key as the ``write_key`` query parameter (a simple GET:
no CORS preflight) from an allowed origin (``Origin``, or the ``Referer``'s origin on same-origin
requests, which carry no ``Origin``); shop backends call with the secret server key in
``Authorization``. Every response carries a new ``rec_id`` so that what was shown, clicked and
bought can be tied together (attribution), and ``X-Ecrm-Cache`` says which cache answered.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, urlsplit

import orjson
from flask import Blueprint, Flask, Response, current_app, request

from analytics import customer_segments
from analytics.served import ServedCounter
from recommender.serving import Answer, ServingLayer, ServingSettings, answer_dict
from recommender.site_holdings import SegmentSource
from tracking import identity
from tracking.sites import Site
from webapp.auth import (
    CORS_ORIGIN,
    allow_browser_origin,
    cors_origin,
    mark_site_resolved,
    presented_key,
    refuse_server_key_in_browser,
)
from webapp.clients import clients
from webapp.errors import ApiError

bp = Blueprint("recommend", __name__, url_prefix="/v1")

PLACEMENT = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_ID = 255
MAX_EXCLUDE = 100
MAX_K = 100
MAX_HASH = 128  # a hex HMAC-SHA256 is 64 characters
NO_STORE = "no-store"
SERVER_CALLER = "ecrm.server_key"  # environ: the caller showed the site's secret server key


def init_serving(app: Flask) -> ServingLayer:
    """One serving layer per app (its threads start in each process on first use)."""
    c = app.config
    settings = ServingSettings(
        candidates=max(60, c["RECS_MAX_N"] + 10),
        local_ttl=c["RECS_LOCAL_TTL_SECONDS"],
        local_max=c["RECS_LOCAL_MAX_ENTRIES"],
        fresh_seconds=c["RECS_FRESH_SECONDS"],
        redis_ttl=c["RECS_CACHE_TTL_SECONDS"],
        catalogue_refresh=c["CATALOGUE_REFRESH_SECONDS"],
        model_check=c["MODEL_CHECK_SECONDS"],
        holdout_share=c["HOLDOUT_SHARE"],
    )
    ecrm = app.extensions["ecrm"]
    segments = SegmentSource(
        customer_segments.load, customer_segments.snapshot_marker, customer_segments.VALUE_CHANNEL
    )
    layer = ServingLayer(
        ecrm.engine, ecrm.redis, os.path.join(c["VAR_DIR"], "models"), settings, segments
    )
    app.extensions["ecrm_serving"] = layer
    # Answers served, for reports: counted in memory, flushed to Redis by a thread.
    app.extensions["ecrm_served"] = ServedCounter(ecrm.redis)
    return layer


def serving() -> ServingLayer:
    """The app's serving layer."""
    return current_app.extensions["ecrm_serving"]


def _args() -> dict[str, str]:
    """The query parameters (the first of each name).

    A plain dict from ``parse_qsl``: a fraction of werkzeug's MultiDict on this hot path.
    """
    found: dict[str, str] = {}
    for name, value in parse_qsl(request.environ.get("QUERY_STRING", ""), keep_blank_values=True):
        found.setdefault(name, value)
    return found


def _request_origin(environ: dict) -> str | None:
    origin = environ.get("HTTP_ORIGIN")
    if origin:
        return origin
    referer = environ.get("HTTP_REFERER")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return None


def _caller(args: dict[str, str], server_only: bool = False) -> Site:
    """The site calling: secret key in Authorization, or write key + an allowed origin."""
    sites = clients().sites
    environ = request.environ
    if "HTTP_AUTHORIZATION" in environ:
        key = presented_key()
        site = sites.by_server_key(key) if key else None
        if site is not None:
            mark_site_resolved()
            refuse_server_key_in_browser("Authorization")
            environ[SERVER_CALLER] = True
            return site
        if key and sites.by_write_key(key) is not None:
            mark_site_resolved()
            if server_only:
                raise ApiError(
                    403,
                    "Authorization",
                    "this call needs the site's secret server key, not the public write key",
                    "forbidden",
                )
            return _browser(sites.by_write_key(key), environ)
        raise ApiError(401, "Authorization", "unknown or revoked key", "unauthorized")
    key = args.get("write_key")
    if server_only:
        raise ApiError(
            403 if key else 401,
            "Authorization",
            "send the site's secret server key as HTTP Basic username or Bearer token",
            "forbidden" if key else "unauthorized",
        )
    if not key:
        raise ApiError(
            401,
            "write_key",
            "missing; pass the site's write key as write_key, or the secret key in Authorization",
            "unauthorized",
        )
    site = sites.by_write_key(key)
    if site is None:
        raise ApiError(401, "write_key", "unknown or revoked write key", "unauthorized")
    mark_site_resolved()
    return _browser(site, environ)


def _browser(site: Site, environ: dict) -> Site:
    origin = _request_origin(environ)
    if origin is None or not site.allows_origin(origin):
        raise ApiError(
            403,
            "Origin",
            f"{origin or 'no Origin or Referer'}: not an allowed origin for this write key; "
            "add it to the site, or call from your server with the secret key",
            "forbidden_origin",
        )
    if environ.get("HTTP_ORIGIN"):  # a cross-origin call: answer it to this origin only
        allow_browser_origin(origin)
    return site


def _int(args: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, name, f"must be a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise ApiError(400, name, f"must be from {low} to {high}, got {value}")
    return value


def _id(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_ID or "\x00" in value:
        raise ApiError(400, name, f"must be at most {MAX_ID} characters without NUL")
    return value


def _filters(args: dict[str, str]) -> tuple[int, str, str | None, list[str]]:
    n = _int(args, "n", 10, 1, current_app.config["RECS_MAX_N"])
    placement = args.get("placement") or "default"
    if not PLACEMENT.fullmatch(placement):
        raise ApiError(400, "placement", "must be 1-64 letters, digits, '-' or '_'")
    category = args.get("category") or None
    if category is not None and (len(category) > 500 or "\x00" in category):
        raise ApiError(400, "category", "must be at most 500 characters without NUL")
    exclude = [e for e in (args.get("exclude") or "").split(",") if e]
    if len(exclude) > MAX_EXCLUDE:
        raise ApiError(400, "exclude", f"at most {MAX_EXCLUDE} comma-separated item ids")
    for item_id in exclude:
        _id("exclude", item_id)
    return n, placement, category, exclude


def _respond(answer: Answer, placement: str, site_id: int, with_customer: bool = False) -> Response:
    current_app.extensions["ecrm_served"].count(
        site_id, placement, answer.model_version, answer.source, answer.holdout
    )
    encoded = answer.body or orjson.dumps(answer_dict(answer))
    # rec_id is new for every response; placement matched PLACEMENT, so needs no escaping.
    head = f'{{"rec_id":"{os.urandom(16).hex()}","placement":"{placement}",'.encode()
    if with_customer and request.environ.get(SERVER_CALLER):
        # The customer's segment is the shop's to know, not the browser's: server key only.
        head += b'"customer":' + orjson.dumps(answer.customer) + b","
    body = head + encoded[1:] if len(encoded) > 2 else head[:-1] + b"}"
    headers = [
        ("Cache-Control", NO_STORE),
        ("Vary", "Origin"),
        ("X-Ecrm-Cache", answer.cache),
    ]
    origin = request.environ.get(CORS_ORIGIN)
    if origin:  # _browser set it: an origin the site allows (server calls get none)
        headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Access-Control-Expose-Headers", "X-Ecrm-Cache"))
    return current_app.response_class(body, headers=headers, mimetype="application/json")


def _verified_user(site: Site, args: dict[str, str], user_id: str | None) -> str | None:
    """The user id when the caller may speak for it, else None (identity verification).

    Server-key calls are trusted, as are browsers of a site that turned verification off; any
    other browser call needs ``user_hash``, the shop server's signature of the user id. Without
    it the answer is the anonymous visitor's, the same whether or not the customer exists.
    """
    user_hash = args.get("user_hash")
    if user_hash is not None and (len(user_hash) > MAX_HASH or "\x00" in user_hash):
        raise ApiError(400, "user_hash", f"must be at most {MAX_HASH} characters without NUL")
    if user_id is None or not site.verify_identity:
        return user_id
    if identity.verify(site.identity_secret, user_id, user_hash):
        return user_id
    if "HTTP_AUTHORIZATION" in request.environ:
        key = presented_key()
        caller = clients().sites.by_server_key(key) if key else None
        if caller is not None and caller.site_id == site.site_id:
            return user_id
    return None


@bp.get("/recommendations")
def recommendations():
    """Personal recommendations for a customer or a visitor, with fallbacks."""
    args = _args()
    site = _caller(args)
    user_id, anonymous_id = (
        _id("user_id", args.get("user_id")),
        _id("anonymous_id", args.get("anonymous_id")),
    )
    if user_id is None and anonymous_id is None:
        raise ApiError(400, "user_id", "give user_id or anonymous_id (or both)")
    n, placement, category, exclude = _filters(args)
    if user_id is not None:
        user_id = _verified_user(site, args, user_id)
        if user_id is None and anonymous_id is None:
            # An unverified caller without an anonymous id is an unknown visitor: the empty
            # anonymous id is nobody's (the collector refuses empty ids), so it gets trending.
            anonymous_id = ""
    answer = serving().recommend(
        site.site_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        n=n,
        category=category,
        exclude=exclude,
        context_item=_id("item_id", args.get("item_id")),
        placement=placement,
    )
    return _respond(answer, placement, site.site_id, with_customer=True)


@bp.get("/items/<path:item_id>/similar")
def similar_items(item_id: str):
    """ "Customers who bought this also bought"."""
    args = _args()
    site = _caller(args)
    item_id = _id("item_id", item_id)
    user_id = _id("user_id", args.get("user_id"))
    verified = _verified_user(site, args, user_id)  # also checks user_hash when unused
    visitor = _id("anonymous_id", args.get("anonymous_id")) or verified
    n, placement, category, exclude = _filters(args)
    answer = serving().similar_items(
        site.site_id,
        item_id,
        visitor_id=visitor,
        n=n,
        category=category,
        exclude=exclude,
        placement=placement,
    )
    return _respond(answer, placement, site.site_id)


@bp.get("/customers/<path:user_id>/similar")
def similar_customers(user_id: str):
    """The most similar customers and what they bought (secret server key only)."""
    args = _args()
    site = _caller(args, server_only=True)
    user_id = _id("user_id", user_id)
    k = _int(args, "k", 10, 1, MAX_K)
    n, placement, category, exclude = _filters(args)
    answer = serving().similar_customers(
        site.site_id, user_id, k=k, n=n, category=category, exclude=exclude, placement=placement
    )
    return _respond(answer, placement, site.site_id)


@bp.after_request
def cors(response: Response) -> Response:
    """Errors: readable by an origin the calling site allows, never cached.

    Errors before a site is known (no key, an unknown one) hold no site's data: any page may
    read them (``*``), so the widget can say why it is empty. Answers set their own headers.
    """
    if response.status_code < 400:
        return response
    if request.environ.get("HTTP_ORIGIN"):
        allowed = cors_origin(request.environ)
        if allowed is not None and response.status_code < 500:
            response.headers["Access-Control-Allow-Origin"] = allowed
    response.headers["Cache-Control"] = NO_STORE
    response.headers.add("Vary", "Origin")
    return response
