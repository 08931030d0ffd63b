"""Signed webhooks to the shop: a site's endpoint and secret, and events queued for delivery.

A site has at most one endpoint (a URL and a secret the owner sees in the console). :func:`emit`
queues an event inside the caller's transaction, so a change and its webhook commit together;
the deliverer (:mod:`accounts.webhook_delivery`, in the ``mailer`` process) POSTs it later, with
retries. The body is JSON ``{"id", "type", "created_at", "data"}``; the header
``Ecrm-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the secret>`` lets
the shop check it came from us and is fresh (:func:`verify_signature`, in the README).

URLs are http(s) only, without credentials, and may not name a private, loopback, link-local or
otherwise non-public address (checked when set and again at each delivery, against DNS answers
that change) unless the site allows it for testing (``allow_private``, command line only).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from accounts import audit
from accounts.messaging_schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from accounts.staff import Staff
from tracking.db import aware
from tracking.errors import FieldError

EVENT_TYPES = (
    "customer.updated",
    "address.created",
    "address.updated",
    "address.deleted",
    "preferences.updated",
    "customer.deleted",
    "trigger.fired",  # a behaviour-change trigger rule met by a customer (analytics.triggers)
)
SIGNATURE_HEADER = "Ecrm-Signature"
MAX_URL = 2000
UNSAFE = frozenset('"<>\\^`{|}')  # never bare in a URL (RFC 3986)
DEFAULT_TOLERANCE = 300  # seconds a signature stays acceptable (clock skew and retries)


class InvalidWebhook(FieldError):
    """A webhook setting or event that cannot be accepted; ``field`` names what is wrong."""


@dataclass(frozen=True)
class Endpoint:
    """A site's webhook endpoint."""

    endpoint_id: int
    site_id: int
    url: str
    secret: str
    enabled: bool
    allow_private: bool
    consecutive_failures: int
    disabled_at: datetime | None
    disabled_reason: str | None
    secret_rotated_at: datetime | None


def new_secret() -> str:
    """A fresh signing secret (192 random bits)."""
    return "whsec_" + secrets.token_hex(24)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Ecrm-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs exactly ``body`` with ``secret`` within ``tolerance`` seconds.

    ``body`` is the request's raw body, before any JSON parsing. Several ``v1=`` values are
    accepted (any one matching is enough).
    """
    if isinstance(body, str):
        body = body.encode()
    timestamp, signatures = None, []
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2].encode()
    # As bytes: compare_digest refuses str holding anything but ASCII.
    return any(hmac.compare_digest(expected, s.encode()) for s in signatures)


def _refused(address: str) -> str | None:
    """Why this address may not be called (None when it is a public one)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_private:
        return "a private address"
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or not ip.is_global:
        return "not a public address"
    return None


def resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to, or InvalidWebhook when one of them is refused."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise InvalidWebhook("url", f"the URL's host {host} does not resolve ({e})") from e
    addresses = list(dict.fromkeys(a[4][0] for a in answers))
    if not allow_private:
        for address in addresses:
            why = _refused(address)
            if why:
                raise InvalidWebhook("url", f"{host} is {why} ({address}); use a public URL")
    return addresses


def check_url(url: Any, allow_private: bool = False) -> str:
    """The URL when a webhook may be sent to it, else InvalidWebhook naming ``url``."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidWebhook("url", "enter the https:// address of your webhook receiver")
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidWebhook("url", f"the URL is longer than {MAX_URL} characters")
    if any(ord(c) < 33 or ord(c) > 126 or c in UNSAFE for c in url):
        raise InvalidWebhook(
            "url",
            "the URL contains spaces or characters that must be percent-encoded "
            "(an international host name goes in its xn-- form)",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidWebhook("url", f"the URL is not valid ({e})") from e
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhook("url", "the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise InvalidWebhook("url", "the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook(
            "url", "the URL may not hold a user name or password (check the signature instead)"
        )
    resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80), allow_private)
    return url


def _endpoint(row) -> Endpoint:
    return Endpoint(
        endpoint_id=row.endpoint_id,
        site_id=row.site_id,
        url=row.url,
        secret=row.secret,
        enabled=row.enabled,
        allow_private=row.allow_private,
        consecutive_failures=row.consecutive_failures,
        disabled_at=aware(row.disabled_at) if row.disabled_at else None,
        disabled_reason=row.disabled_reason,
        secret_rotated_at=aware(row.secret_rotated_at) if row.secret_rotated_at else None,
    )


def get_endpoint(conn_or_engine: sa.Connection | sa.Engine, site_id: int) -> Endpoint | None:
    """The site's endpoint, or None when it has none."""
    query = sa.select(webhook_endpoints).where(webhook_endpoints.c.site_id == site_id)
    if isinstance(conn_or_engine, sa.Engine):
        with conn_or_engine.connect() as conn:
            row = conn.execute(query).first()
    else:
        row = conn_or_engine.execute(query).first()
    return _endpoint(row) if row else None


def _who(actor: Staff | None) -> dict:
    return {"staff_id": actor.staff_id, "email": actor.email} if actor else {}


def set_endpoint(
    engine: sa.Engine,
    site_id: int,
    url: str,
    *,
    actor: Staff | None = None,
    allow_private: bool | None = None,
) -> Endpoint:
    """Set the site's URL (a new endpoint gets a secret); ``allow_private`` None keeps it."""
    with engine.begin() as conn:
        current = get_endpoint(conn, site_id)
        keep = bool(current and current.allow_private)
        private = keep if allow_private is None else allow_private
        url = check_url(url, private)
        now = datetime.now(UTC)
        if current is None:
            conn.execute(
                webhook_endpoints.insert().values(
                    site_id=site_id,
                    url=url,
                    secret=new_secret(),
                    enabled=True,
                    allow_private=private,
                    consecutive_failures=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            conn.execute(
                webhook_endpoints.update()
                .where(webhook_endpoints.c.site_id == site_id)
                .values(url=url, allow_private=private, updated_at=now)
            )
        detail = {"host": urlsplit(url).hostname, "allow_private": private}
        audit.record(conn, "webhook_url_set", site_id=site_id, detail=detail, **_who(actor))
        return get_endpoint(conn, site_id)


def _require(conn: sa.Connection, site_id: int) -> Endpoint:
    endpoint = get_endpoint(conn, site_id)
    if endpoint is None:
        raise InvalidWebhook("url", "set a webhook URL first")
    return endpoint


def rotate_secret(engine: sa.Engine, site_id: int, *, actor: Staff | None = None) -> Endpoint:
    """A new secret: deliveries from now on are signed with it (the old one stops at once)."""
    with engine.begin() as conn:
        _require(conn, site_id)
        now = datetime.now(UTC)
        conn.execute(
            webhook_endpoints.update()
            .where(webhook_endpoints.c.site_id == site_id)
            .values(secret=new_secret(), secret_rotated_at=now, updated_at=now)
        )
        audit.record(conn, "webhook_secret_rotated", site_id=site_id, **_who(actor))
        return get_endpoint(conn, site_id)


def enable(engine: sa.Engine, site_id: int, *, actor: Staff | None = None) -> Endpoint:
    """Re-enable a disabled endpoint; its waiting deliveries are due again at once."""
    with engine.begin() as conn:
        endpoint = _require(conn, site_id)
        now = datetime.now(UTC)
        conn.execute(
            webhook_endpoints.update()
            .where(webhook_endpoints.c.site_id == site_id)
            .values(
                enabled=True,
                consecutive_failures=0,
                disabled_at=None,
                disabled_reason=None,
                updated_at=now,
            )
        )
        conn.execute(
            webhook_deliveries.update()
            .where(
                webhook_deliveries.c.endpoint_id == endpoint.endpoint_id,
                webhook_deliveries.c.status == "pending",
            )
            .values(next_attempt_at=now)
        )
        detail = {"was_disabled": not endpoint.enabled}
        audit.record(conn, "webhook_enabled", site_id=site_id, detail=detail, **_who(actor))
        return get_endpoint(conn, site_id)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return aware(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def emit(
    conn: sa.Connection,
    *,
    site_id: int,
    event_type: str,
    data: dict,
    target_url: str | None = None,
) -> int | None:
    """Queue ``event_type`` with ``data`` for the site's endpoint, inside the caller's transaction.

    Returns the delivery id, or None when the site has no enabled endpoint (nothing is queued).
    ``data`` is JSON (dates and datetimes become ISO 8601 strings); its ``user_id``, when given,
    lets erasure find the delivery. ``target_url`` (a trigger rule's own URL, checked with
    :func:`check_url` when the rule was saved) is POSTed to instead, signed with the endpoint's
    secret: it needs the endpoint to exist but not to be enabled (a disabled endpoint is about
    its own URL).
    """
    if event_type not in EVENT_TYPES:
        raise InvalidWebhook("event_type", f"unknown; one of {', '.join(EVENT_TYPES)}")
    if not isinstance(data, dict):
        raise InvalidWebhook("data", "must be a dict")
    endpoint = get_endpoint(conn, site_id)
    if endpoint is None or (target_url is None and not endpoint.enabled):
        return None
    now = datetime.now(UTC)
    payload = {
        "id": "evt_" + uuid.uuid4().hex,
        "type": event_type,
        "created_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data": data,
    }
    try:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as e:
        raise InvalidWebhook("data", f"cannot be sent as JSON ({e})") from e
    user_id = data.get("user_id")
    inserted = conn.execute(
        webhook_deliveries.insert().values(
            endpoint_id=endpoint.endpoint_id,
            site_id=site_id,
            event_id=payload["id"],
            event_type=event_type,
            user_id=user_id if isinstance(user_id, str) and len(user_id) <= 255 else None,
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            target_url=target_url,
        )
    )
    return int(inserted.inserted_primary_key[0])


def erase_customer(conn: sa.Connection, site_id: int, user_id: str) -> int:
    """Delete the deliveries about this customer (and their log) but a ``customer.deleted``.

    The ``customer.deleted`` event holds only the id the shop knows already, and the shop needs
    it to erase the person too, so it stays until delivered or given up, when the deliverer
    removes the id (:func:`without_subject`). Returns the deliveries deleted.
    """
    theirs = sa.select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.site_id == site_id,
        webhook_deliveries.c.user_id == user_id,
        webhook_deliveries.c.event_type != "customer.deleted",
    )
    conn.execute(webhook_attempts.delete().where(webhook_attempts.c.delivery_id.in_(theirs)))
    done = conn.execute(webhook_deliveries.delete().where(webhook_deliveries.c.id.in_(theirs)))
    return done.rowcount


# Events about an erased person: once delivered or given up, they keep no id of theirs.
FORGET_WHEN_DONE = frozenset({"customer.deleted"})


def without_subject(body: str) -> str:
    """A delivery's body without ``data.user_id`` (what a finished ``customer.deleted`` keeps:
    its event id, type, time, receipt id and erasure time)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return "{}"  # not ours to read: nothing of it is kept
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict):
        data.pop("user_id", None)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
