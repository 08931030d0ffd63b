"""The webhook deliverer: POSTs queued events to shops, signed, with retries; the delivery log.

Each attempt is one signed POST (a fresh ``t=`` each time) with a timeout, to an address checked
again at that moment (:func:`accounts.webhooks.resolve`: a DNS answer that turned private is
refused) and connected to directly, so the check and the connection see the same address.
A 2xx answer delivers; anything else (another status, a redirect, a timeout, a refused
connection) is a failed attempt, logged in ``webhook_attempts``, retried after an exponentially
growing wait, and given up after the last attempt. ``disable_after`` failed attempts in a row
disable the endpoint (audited): its deliveries wait until the owner re-enables it.
A delivery with its own ``target_url`` (a trigger rule's URL) goes there, signed with the
endpoint's secret and checked against DNS at each attempt with the endpoint's ``allow_private``,
whether or not the endpoint is enabled; its answers neither count toward nor reset the endpoint's
failures in a row, so a broken rule URL never stops the shop's customer events (it gives up after
the last attempt, logged like any other).
A ``customer.deleted`` delivery loses the erased person's user id (its column and its body's
``data.user_id``) when it is delivered or given up; status, attempts and times stay.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from accounts import audit
from accounts.claims import backoff, claim_due, settle
from accounts.messaging_schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from accounts.webhooks import (
    FORGET_WHEN_DONE,
    SIGNATURE_HEADER,
    Endpoint,
    InvalidWebhook,
    get_endpoint,
    resolve,
    sign,
    without_subject,
)
from tracking.db import aware

log = logging.getLogger("ecrm.accounts.webhooks")

MAX_RETRY_SECONDS = 6 * 3600.0
BATCH = 10
PRUNE_SECONDS = 3600.0
USER_AGENT = "ecrm-webhooks/1"


@dataclass(frozen=True)
class DeliverySettings:
    """How deliveries are made (from the app's configuration)."""

    timeout: float = 10.0
    max_attempts: int = 8
    retry_seconds: float = 30.0
    disable_after: int = 20
    keep_days: float = 30.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DeliverySettings:
        """The ``WEBHOOK_*`` settings of the app's configuration."""
        return cls(
            timeout=config["WEBHOOK_TIMEOUT_SECONDS"],
            max_attempts=config["WEBHOOK_MAX_ATTEMPTS"],
            retry_seconds=config["WEBHOOK_RETRY_SECONDS"],
            disable_after=config["WEBHOOK_DISABLE_AFTER"],
            keep_days=config["MESSAGES_KEEP_DAYS"],
        )


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to a checked address, with the URL's host in the Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to a checked address; the certificate must still match the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(
    endpoint: Endpoint,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    url: str | None = None,
) -> int:
    """POST ``body`` to ``url`` (default: the endpoint's URL); return the status code (no
    redirect is followed). The address is checked with the endpoint's ``allow_private``."""
    parts = urlsplit(url or endpoint.url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    address = resolve(parts.hostname, port, endpoint.allow_private)[0]
    kind = _PinnedTLS if tls else _Pinned
    conn = kind(parts.hostname, port, address, timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)  # the answer's body is not kept
        return response.status
    finally:
        conn.close()


def _describe(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:500]


class Deliverer:
    """Delivers due webhooks; :meth:`run_once` is one round, :meth:`run` loops."""

    def __init__(self, engine: sa.Engine, settings: DeliverySettings):
        self.engine, self.settings = engine, settings

    def run_once(self, limit: int = BATCH) -> int:
        """Claim and attempt up to ``limit`` due deliveries of enabled endpoints, and those to
        a rule's own URL."""
        enabled = sa.select(webhook_endpoints.c.endpoint_id).where(webhook_endpoints.c.enabled)
        d = webhook_deliveries.c
        rows = claim_due(
            self.engine,
            webhook_deliveries,
            lease_seconds=self.settings.timeout * 4 + 60,
            limit=limit,
            where=(sa.or_(d.endpoint_id.in_(enabled), d.target_url.is_not(None)),),
        )
        for row in rows:
            self._attempt(row)
        return len(rows)

    def _attempt(self, row: dict[str, Any]) -> None:
        endpoint = get_endpoint(self.engine, row["site_id"])
        own = row.get("target_url")
        if (
            endpoint is None
            or endpoint.endpoint_id != row["endpoint_id"]
            or (own is None and not endpoint.enabled)
        ):
            # Removed or disabled since it was claimed: hand the claim back untouched.
            with self.engine.begin() as conn:
                back = {"status": "pending", "attempts": row["attempts"] - 1}
                settle(conn, webhook_deliveries, row, **back)
            return
        body = row["body"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(endpoint.secret, int(time.time()), body),
            "Ecrm-Event-Id": row["event_id"],
            "Ecrm-Event-Type": row["event_type"],
        }
        started = time.monotonic()
        code, error = None, None
        try:
            code = post(endpoint, body, headers, self.settings.timeout, url=own)
            if not 200 <= code < 300:
                error = f"HTTP {code}" + (" (redirects are not followed)" if code < 400 else "")
        except (OSError, http.client.HTTPException, InvalidWebhook) as e:
            error = _describe(e)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        self._record(row, endpoint, code, error, elapsed_ms)

    def _record(
        self, row: dict, endpoint: Endpoint, code: int | None, error: str | None, elapsed_ms: int
    ) -> None:
        now = datetime.now(UTC)
        settings = self.settings
        final = error is not None and row["attempts"] >= settings.max_attempts
        values: dict[str, Any] = {"last_status_code": code, "last_error": error}
        if error is None:
            values.update(status="delivered", delivered_at=now)
        elif final:
            values["status"] = "failed"
        else:
            wait = backoff(row["attempts"], settings.retry_seconds, MAX_RETRY_SECONDS)
            values.update(status="pending", next_attempt_at=now + wait)
        # A notice about an erased person keeps their id only while it is on its way.
        forget = row["event_type"] in FORGET_WHEN_DONE and values["status"] != "pending"
        if forget:
            values.update(user_id=None, body=without_subject(row["body"]))
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if forget and sqlite:  # the old row's bytes are overwritten, not just freed
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
                conn.commit()
            try:
                with conn.begin():
                    conn.execute(
                        webhook_attempts.insert().values(
                            delivery_id=row["id"],
                            site_id=row["site_id"],
                            attempt=row["attempts"],
                            at=now,
                            status_code=code,
                            error=error,
                            duration_ms=elapsed_ms,
                        )
                    )
                    settle(conn, webhook_deliveries, row, **values)
                    if row.get("target_url"):
                        pass  # a rule's own URL: not the endpoint's health
                    elif error is None:
                        conn.execute(
                            webhook_endpoints.update()
                            .where(webhook_endpoints.c.endpoint_id == endpoint.endpoint_id)
                            .values(consecutive_failures=0)
                        )
                    else:
                        self._count_failure(conn, endpoint, error, now)
            finally:
                if forget and sqlite:
                    conn.exec_driver_sql("PRAGMA secure_delete = OFF")
                    conn.commit()
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # old pages too
        if error is None:
            log.info("webhook delivery %d delivered (attempt %d)", row["id"], row["attempts"])
            return
        log.warning(
            "webhook delivery %d attempt %d failed%s",
            row["id"],
            row["attempts"],
            "; giving up" if final else "; will retry",
        )

    def _count_failure(
        self, conn: sa.Connection, endpoint: Endpoint, error: str, now: datetime
    ) -> None:
        table = webhook_endpoints
        failures = conn.execute(
            table.update()
            .where(table.c.endpoint_id == endpoint.endpoint_id)
            .values(consecutive_failures=table.c.consecutive_failures + 1)
            .returning(table.c.consecutive_failures)
        ).scalar()
        if failures is None or failures < self.settings.disable_after:
            return
        reason = f"{failures} failed attempts in a row; the last: {error}"[:300]
        disabled = conn.execute(
            table.update()
            .where(table.c.endpoint_id == endpoint.endpoint_id, table.c.enabled)
            .values(enabled=False, disabled_at=now, disabled_reason=reason, updated_at=now)
        )
        if disabled.rowcount:
            audit.record(
                conn,
                "webhook_disabled",
                site_id=endpoint.site_id,
                detail={"failures": failures, "last_error": error[:200]},
            )
            log.warning("webhook endpoint of site %d disabled", endpoint.site_id)

    def prune(self, now: datetime | None = None) -> int:
        """Delete delivered and failed deliveries queued over ``keep_days`` ago, with their log."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.settings.keep_days)
        d = webhook_deliveries
        done = d.c.status.in_(("delivered", "failed"))
        old = sa.select(d.c.id).where(done, d.c.created_at < cutoff)
        with self.engine.begin() as conn:
            conn.execute(webhook_attempts.delete().where(webhook_attempts.c.delivery_id.in_(old)))
            return conn.execute(d.delete().where(d.c.id.in_(old))).rowcount

    def run(self, stop: threading.Event, poll_seconds: float) -> None:
        """Until ``stop``: deliver what is due, then wait ``poll_seconds`` when nothing was.

        Old deliveries are pruned at start and then every hour.
        """
        pruned_at = None
        while not stop.is_set():
            try:
                if pruned_at is None or time.monotonic() - pruned_at > PRUNE_SECONDS:
                    pruned_at = time.monotonic()
                    log.info("pruned %d old webhook deliveries", self.prune())
                busy = self.run_once()
            except sa.exc.SQLAlchemyError:
                log.exception("the webhook deliverer could not read its queue; trying again")
                busy = 0
            if not busy:
                stop.wait(poll_seconds)


@dataclass(frozen=True)
class Delivery:
    """One queued event for the site's endpoint and where it stands."""

    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    target_url: str | None = None  # a trigger rule's own URL; None: the endpoint's


@dataclass(frozen=True)
class Attempt:
    """One POST of a delivery: the delivery log."""

    delivery_id: int
    event_type: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    target_url: str | None = None  # a trigger rule's own URL; None: the endpoint's


def recent_deliveries(engine: sa.Engine, site_id: int, limit: int = 50) -> list[Delivery]:
    """The site's newest deliveries first."""
    d = webhook_deliveries
    query = sa.select(d).where(d.c.site_id == site_id).order_by(d.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Delivery(
            id=r.id,
            event_id=r.event_id,
            event_type=r.event_type,
            status=r.status,
            attempts=r.attempts,
            created_at=aware(r.created_at),
            next_attempt_at=aware(r.next_attempt_at) if r.status == "pending" else None,
            delivered_at=aware(r.delivered_at) if r.delivered_at else None,
            last_status_code=r.last_status_code,
            last_error=r.last_error,
            target_url=r.target_url,
        )
        for r in rows
    ]


def delivery_states(engine: sa.Engine, site_id: int, ids: list[int]) -> dict[int, str]:
    """delivery id -> its status, for those of ``ids`` the site's log still holds."""
    d = webhook_deliveries
    found: dict[int, str] = {}
    for start in range(0, len(ids), 1000):
        query = sa.select(d.c.id, d.c.status).where(
            d.c.site_id == site_id, d.c.id.in_(ids[start : start + 1000])
        )
        with engine.connect() as conn:
            found.update((int(i), status) for i, status in conn.execute(query))
    return found


def recent_attempts(engine: sa.Engine, site_id: int, limit: int = 50) -> list[Attempt]:
    """The site's delivery log, newest attempt first."""
    a, d = webhook_attempts, webhook_deliveries
    query = (
        sa.select(a, d.c.event_type, d.c.target_url)
        .join(d, d.c.id == a.c.delivery_id)
        .where(a.c.site_id == site_id)
        .order_by(a.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Attempt(
            delivery_id=r.delivery_id,
            event_type=r.event_type,
            attempt=r.attempt,
            at=aware(r.at),
            status_code=r.status_code,
            error=r.error,
            duration_ms=r.duration_ms,
            target_url=r.target_url,
        )
        for r in rows
    ]
