"""Customers' portal sign-in: single-use tokens a shop asks for, and the sessions they open.

A shop's backend asks for a portal token (``POST /v1/portal/sessions``): good once, for 5
minutes. The browser brings it to ``/account/enter/<token>`` and gets a session: a fresh random
cookie token whose SHA-256 digest is the stored session id, so a copy of the tables signs nobody
in. Sign-in by emailed code (:mod:`accounts.codes`) opens the same kind of session.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from accounts.portal_schema import portal_sessions, portal_tokens
from tracking.db import aware
from tracking.privacy import anonymise_ip
from tracking.sites import digest

TOKEN_LIFETIME = timedelta(minutes=5)
SESSION_IDLE = timedelta(hours=2)  # an unused portal session ends after this
TOUCH_EVERY = timedelta(minutes=1)
LOCALES = ("en", "ko")
MAX_TOKEN = 100  # longer strings are no token of ours (token_urlsafe(32) is 43 characters)


@dataclass(frozen=True)
class PortalToken:
    """What a redeemed token stood for."""

    site_id: int
    user_id: str
    return_url: str | None
    locale: str | None


@dataclass(frozen=True)
class CustomerSession:
    """A signed-in customer: who, on which site, in which language."""

    session_id: str
    site_id: int
    user_id: str
    locale: str | None
    return_url: str | None
    how: str
    created_at: datetime


def issue_token(
    engine: sa.Engine,
    site_id: int,
    user_id: str,
    *,
    return_url: str | None,
    locale: str | None,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """A new single-use token for ``user_id`` of ``site_id``: (token, expires_at)."""
    token = secrets.token_urlsafe(32)
    now = now or datetime.now(UTC)
    expires_at = now + TOKEN_LIFETIME
    with engine.begin() as conn:
        conn.execute(
            portal_tokens.insert(),
            {
                "digest": digest(token),
                "site_id": site_id,
                "user_id": user_id,
                "return_url": return_url,
                "locale": locale,
                "created_at": now,
                "expires_at": expires_at,
            },
        )
    return token, expires_at


def redeem_token(engine: sa.Engine, token: str) -> PortalToken | None:
    """Use a token once; None when unknown, used or expired (the same for all three)."""
    if not token or len(token) > MAX_TOKEN:
        return None
    key = digest(token)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(sa.select(portal_tokens).where(portal_tokens.c.digest == key)).first()
        if row is None or row.used_at is not None or aware(row.expires_at) <= now:
            return None
        claimed = conn.execute(
            portal_tokens.update()
            .where(portal_tokens.c.digest == key, portal_tokens.c.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
        if claimed != 1:  # a concurrent request used it first
            return None
    return PortalToken(row.site_id, row.user_id, row.return_url, row.locale)


def start_session(
    engine: sa.Engine,
    site_id: int,
    user_id: str,
    *,
    how: str,
    locale: str | None = None,
    return_url: str | None = None,
    address: str | None = None,
) -> str:
    """A new session for the customer; returns the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            portal_sessions.insert(),
            {
                "session_id": digest(token),
                "site_id": site_id,
                "user_id": user_id,
                "locale": locale,
                "return_url": return_url,
                "how": how,
                "created_at": now,
                "last_seen_at": now,
                "client": anonymise_ip(address),
            },
        )
    return token


def lookup_session(
    engine: sa.Engine, token: str | None, idle: timedelta = SESSION_IDLE
) -> CustomerSession | None:
    """The open session a cookie's token names, touched; None when ended, unknown or idle."""
    if not token or len(token) > MAX_TOKEN:
        return None
    session_id = digest(token)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(portal_sessions).where(
                portal_sessions.c.session_id == session_id, portal_sessions.c.ended_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    now = datetime.now(UTC)
    last_seen = aware(row.last_seen_at)
    if now - last_seen > idle:
        end_session(engine, session_id, "idle")
        return None
    if now - last_seen > TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(
                portal_sessions.update()
                .where(portal_sessions.c.session_id == session_id)
                .values(last_seen_at=now)
            )
    return CustomerSession(
        session_id,
        row.site_id,
        row.user_id,
        row.locale,
        row.return_url,
        row.how,
        aware(row.created_at),
    )


def end_session(engine: sa.Engine, session_id: str, reason: str) -> bool:
    """End one open session; False when none was open."""
    with engine.begin() as conn:
        return (
            conn.execute(
                portal_sessions.update()
                .where(
                    portal_sessions.c.session_id == session_id,
                    portal_sessions.c.ended_at.is_(None),
                )
                .values(ended_at=datetime.now(UTC), ended_reason=reason)
            ).rowcount
            == 1
        )


def session_id_of(token: str) -> str:
    """The stored id of the session a cookie's token names."""
    return digest(token)
