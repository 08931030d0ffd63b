"""The collector: the Segment HTTP Tracking API (batch, track, page, identify, alias, ...).

A 2xx means every accepted event is durably in the Redis stream or the local spool; invalid
events are stored as rejected with their reason. Views parse, call tracking/, shape the answer.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, current_app, g, jsonify, request

from tracking.events import EVENT_TYPES, InvalidEvent, Limits, iso, prepare_events
from tracking.identity import Verifier
from tracking.payload import PayloadError, decode_body
from tracking.privacy import anonymise_ip
from tracking.sites import Site
from tracking.stream import Unavailable, make_entry
from webapp.auth import allow_browser_origin, cors_origin, site_for_events
from webapp.body import read_body
from webapp.clients import clients
from webapp.errors import ApiError, error_response

bp = Blueprint("collector", __name__, url_prefix="/v1")

# The smallest transparent GIF: answered by the pixel endpoint.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
SUCCESS_BODY = b'{"success":true}\n'
CORS_METHODS = "POST, GET, OPTIONS"
CORS_HEADERS = "Content-Type, Content-Encoding, Authorization"


class RateLimiter:
    """A token bucket per site in this process (limit = requests per second, burst 2x)."""

    def __init__(self):
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, site: Site) -> bool:
        """Take a token for the site; False when it is over its limit."""
        if site.rate_limit <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(site.site_id, (2.0 * site.rate_limit, now))
            tokens = min(2.0 * site.rate_limit, tokens + (now - last) * site.rate_limit)
            allowed = tokens >= 1.0
            self._buckets[site.site_id] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


_limiter = RateLimiter()


def _limits() -> Limits:
    c = current_app.config
    return Limits(
        max_event_bytes=c["MAX_EVENT_BYTES"],
        max_batch_bytes=c["MAX_BATCH_BYTES"],
        max_batch_events=c["MAX_BATCH_EVENTS"],
        max_depth=c["MAX_JSON_DEPTH"],
        future_tolerance=timedelta(seconds=c["FUTURE_TOLERANCE_SECONDS"]),
    )


def _plain_size(raw: bytes) -> int | None:
    """The body's size when it was sent uncompressed (the decoded size is unknown otherwise)."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    return len(raw) if encoding == "identity" else None


def _decode(raw: bytes, max_bytes: int, content_type: str | None, encoding: str | None) -> dict:
    try:
        return decode_body(raw, content_type, encoding, max_bytes)
    except PayloadError as e:
        raise ApiError(e.status, e.field, e.reason, e.code) from e


def _authorise(body: dict) -> Site:
    # site_for_events refuses the server key from another site's page; a write key is bound
    # to the site's origins.
    site, server_side = site_for_events(body.get("writeKey"))
    g.server_key_used = server_side  # its events are trusted (identity verification)
    origin = request.headers.get("Origin")
    if origin and not server_side:
        if not site.allows_origin(origin):
            raise ApiError(
                403,
                "Origin",
                f"{origin} is not an allowed origin for this write key; add it to the site",
                "forbidden_origin",
            )
        allow_browser_origin(origin)
    if not _limiter.allow(site):
        raise ApiError(
            429,
            "writeKey",
            f"over the site's limit of {site.rate_limit} requests per second",
            "rate_limited",
            retry_after=1,
        )
    return site


def _privacy_declined(site: Site) -> bool:
    if not site.honour_dnt:
        return False
    return request.headers.get("DNT") == "1" or request.headers.get("Sec-GPC") == "1"


def _collect(
    body: dict,
    site: Site,
    events: list,
    path: str,
    forced_type: str | None,
    body_bytes: int | None = None,
):
    """Validate, store durably, and answer for a list of raw events."""
    if _privacy_declined(site):
        return jsonify(success=True, stored=False, reason="do_not_track")
    received_at = datetime.now(UTC)
    try:
        accepted, rejected = prepare_events(
            events,
            path=path,
            received_at=received_at,
            batch_sent_at=body.get("sentAt") if forced_type is None else None,
            limits=_limits(),
            forced_type=forced_type,
            body_bytes=body_bytes,
            # Server-key events are trusted; browsers' user ids need the shop's signature.
            verifier=Verifier(
                trusted=g.get("server_key_used", False) or not site.verify_identity,
                secret=site.identity_secret,
            ),
        )
    except InvalidEvent as e:  # a bad batch-level sentAt spoils every event of the request
        raise ApiError(e.status, e.field, e.reason, "invalid_event") from e
    # The client's address: behind ECRM_TRUSTED_PROXIES proxies, ProxyFix (create_app) has read
    # it from X-Forwarded-For. Other IP fields the client sent were truncated in validation.
    ip = anonymise_ip(request.remote_addr)
    for event in accepted:
        context = event.get("context")
        if not isinstance(context, dict):
            context = event["context"] = {}
        # Only the request's truncated address is kept as context.ip, whatever the client sent.
        context.pop("ip", None)
        if ip:
            context["ip"] = ip
    entry = make_entry(
        request_id=uuid.uuid4().hex,
        site_id=site.site_id,
        received_at=iso(received_at),
        events=accepted,
        rejected=[r.as_dict() for r in rejected],
    )
    try:
        clients().sink.publish(entry)
    except Unavailable as e:
        raise ApiError(
            503,
            "server",
            "events cannot be stored durably right now; retry later",
            "unavailable",
            retry_after=current_app.config["RETRY_AFTER_SECONDS"],
        ) from e
    errors = [{"index": r.index, "field": r.field, "reason": r.reason} for r in rejected]
    if accepted and not errors:
        return Response(SUCCESS_BODY, mimetype="application/json")
    if accepted:
        return jsonify(success=True, rejected=errors)
    first = rejected[0]
    return error_response(
        first.status,
        first.field,
        first.reason,
        "too_large" if first.status == 413 else "invalid_event",
        extra={"rejected": errors},
    )


@bp.post("/batch")
@bp.post("/import")
def batch():
    """Segment's /v1/batch: many events of any type in one request."""
    limits = _limits()
    raw = read_body(limits.max_batch_bytes)
    body = _decode(
        raw, limits.max_batch_bytes, request.content_type, request.headers.get("Content-Encoding")
    )
    site = _authorise(body)
    events = body.get("batch")
    if not isinstance(events, list):
        raise ApiError(400, "batch", "required: an array of events", "invalid_request")
    if not events:
        raise ApiError(400, "batch", "must contain at least one event", "invalid_request")
    if len(events) > limits.max_batch_events:
        raise ApiError(413, "batch", f"more than {limits.max_batch_events} events", "too_large")
    return _collect(body, site, events, "batch", None, _plain_size(raw))


def _single(kind: str):
    limits = _limits()
    # A single call may carry a little envelope (writeKey, whitespace) around the event.
    max_bytes = limits.max_event_bytes + 1024
    raw = read_body(max_bytes)
    body = _decode(raw, max_bytes, request.content_type, request.headers.get("Content-Encoding"))
    site = _authorise(body)
    return _collect(body, site, [body], "body", kind, _plain_size(raw))


for _kind in EVENT_TYPES:
    bp.add_url_rule(
        f"/{_kind}", f"single_{_kind}", (lambda kind=_kind: _single(kind)), methods=["POST"]
    )


@bp.get("/pixel.gif")
def pixel():
    """For pages without JavaScript: ``?data=`` is the base64 of one event's JSON."""
    data = request.args.get("data", "")
    if not data:
        raise ApiError(400, "data", "required: base64-encoded JSON of one event", "invalid_request")
    try:
        padded = data + "=" * (-len(data) % 4)
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError) as e:
        raise ApiError(400, "data", "not valid base64", "invalid_request") from e
    max_bytes = _limits().max_event_bytes + 1024
    body = _decode(raw, max_bytes, "application/json", None)
    site = _authorise(body)
    kind = body.get("type", "track")
    if kind not in EVENT_TYPES:
        raise ApiError(
            422, "data.type", f"must be one of {', '.join(EVENT_TYPES)}", "invalid_event"
        )
    response = _collect(body, site, [body], "data", kind)
    if response.status_code != 200:
        return response
    return Response(
        PIXEL_GIF,
        mimetype="image/gif",
        headers={"Cache-Control": "no-store, max-age=0"},
    )


@bp.after_request
def cors(response: Response) -> Response:
    """Answer only origins the calling site allows, never with credentials.

    Preflights (Flask answers OPTIONS itself) carry no key yet, so any origin some active site
    allows may proceed: the answer has no body and reveals only that the origin is a customer,
    which its own pages show by loading the tracker from here; the request that follows is
    checked against its own site (a write key's origins; a server key is refused from pages).
    Errors before any site is known (no key, an unknown one) hold no site's data and are
    readable by any page (``*``), so a tracker drops them instead of retrying.
    """
    origin = request.headers.get("Origin")
    if origin and request.method == "OPTIONS":
        if clients().sites.origin_known(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
            response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
            response.headers["Access-Control-Max-Age"] = "86400"
    elif origin:
        allowed = cors_origin(request.environ)
        if allowed == origin or (allowed == "*" and 400 <= response.status_code < 500):
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
    response.headers.add("Vary", "Origin")
    return response
