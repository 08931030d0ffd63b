"""Sites: a public write key, a secret server key, an identity secret and allowed origins."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import sqlalchemy as sa

from tracking.schema import sites

log = logging.getLogger("ecrm.tracking")


class SitesUnavailable(RuntimeError):
    """The sites table could not be read and no earlier copy exists; retry later."""


class InvalidSite(ValueError):
    """A site setting is invalid; the message names it."""


@dataclass(frozen=True)
class Site:
    """A site as the collector needs it."""

    site_id: int
    name: str
    write_key: str
    allowed_origins: tuple[str, ...]
    honour_dnt: bool
    rate_limit: int
    revoked: bool
    # Identity verification (tracking.identity): browsers' user ids need an HMAC under this.
    verify_identity: bool = True
    identity_secret: str | None = None

    def allows_origin(self, origin: str) -> bool:
        """True when browsers on ``origin`` may send events with this site's write key."""
        return "*" in self.allowed_origins or origin in self.allowed_origins


def digest(key: str) -> str:
    """The stored form of a server key (keys are 256-bit random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_identity_secret() -> str:
    """A fresh identity-verification secret (256 bits, hex)."""
    return secrets.token_hex(32)


def normalise_origin(origin: str) -> str:
    """Reduce ``https://Shop.Example:443/x`` to the ``https://shop.example`` form browsers send."""
    if origin == "*":
        return origin
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSite(f"origin {origin!r}: must look like https://shop.example")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default_port else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def create_site(
    engine: sa.Engine,
    name: str,
    origins: list[str],
    *,
    honour_dnt: bool = True,
    rate_limit: int = 0,
    write_key: str | None = None,
    verify_identity: bool = True,
) -> tuple[Site, str]:
    """Create a site; return it and its secret server key (shown once, stored as a digest)."""
    if not name.strip():
        raise InvalidSite("name: must not be empty")
    _check_rate_limit(rate_limit)
    server_key = new_server_key()
    write_key = write_key or "wk_" + secrets.token_urlsafe(18)
    allowed = sorted({normalise_origin(o) for o in origins})
    identity_secret = new_identity_secret()
    with engine.begin() as conn:
        site_id = conn.execute(
            sites.insert().values(
                name=name.strip(),
                write_key=write_key,
                server_key_digest=digest(server_key),
                allowed_origins=allowed,
                honour_dnt=honour_dnt,
                rate_limit=rate_limit,
                created_at=datetime.now(UTC),
                identity_secret=identity_secret,
                verify_identity=verify_identity,
            )
        ).inserted_primary_key[0]
    site = Site(
        site_id,
        name.strip(),
        write_key,
        tuple(allowed),
        honour_dnt,
        rate_limit,
        False,
        verify_identity,
        identity_secret,
    )
    return site, server_key


def new_server_key() -> str:
    """A fresh secret server key (256 bits); only its digest is stored."""
    return "sk_" + secrets.token_urlsafe(32)


def _check_rate_limit(rate_limit: int) -> None:
    if rate_limit < 0:
        raise InvalidSite(f"rate limit: must be 0 (no limit) or more, got {rate_limit}")


def _row_to_site(row) -> Site:
    return Site(
        row.site_id,
        row.name,
        row.write_key,
        tuple(row.allowed_origins or ()),
        bool(row.honour_dnt),
        int(row.rate_limit or 0),
        row.revoked_at is not None,
        bool(row.verify_identity),
        row.identity_secret,
    )


def list_sites(engine: sa.Engine) -> list[Site]:
    """Every site, revoked ones included."""
    with engine.connect() as conn:
        return [_row_to_site(r) for r in conn.execute(sites.select().order_by(sites.c.site_id))]


def revoke_site(engine: sa.Engine, write_key: str) -> bool:
    """Revoke a site's keys; return False when no active site has that write key."""
    with engine.begin() as conn:
        result = conn.execute(
            sites.update()
            .where(sites.c.write_key == write_key, sites.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    return result.rowcount > 0


def find_site(engine: sa.Engine, write_key: str) -> Site | None:
    """The site with this write key, or None."""
    with engine.connect() as conn:
        row = conn.execute(sites.select().where(sites.c.write_key == write_key)).first()
    return _row_to_site(row) if row else None


def _active(engine: sa.Engine, write_key: str) -> Site:
    site = find_site(engine, write_key)
    if site is None or site.revoked:
        raise InvalidSite(f"no active site has write key {write_key}")
    return site


def update_site(
    engine: sa.Engine,
    write_key: str,
    *,
    origins: Iterable[str] | None = None,
    add_origins: Iterable[str] = (),
    remove_origins: Iterable[str] = (),
    verify_identity: bool | None = None,
    honour_dnt: bool | None = None,
    rate_limit: int | None = None,
) -> Site:
    """Change an active site's settings (None: unchanged); return the site as it is now.

    ``origins`` replaces the allowed origins; ``add_origins`` and ``remove_origins`` then edit
    them (an origin to remove that is not there is an error: it is likely a typo).
    """
    site = _active(engine, write_key)
    allowed = set(site.allowed_origins)
    if origins is not None:
        allowed = {normalise_origin(o) for o in origins}
    allowed.update(normalise_origin(o) for o in add_origins)
    for origin in remove_origins:
        origin = normalise_origin(origin)
        if origin not in allowed:
            raise InvalidSite(f"origin {origin}: not among the site's origins")
        allowed.discard(origin)
    values: dict = {"allowed_origins": sorted(allowed)}
    if verify_identity is not None:
        values["verify_identity"] = verify_identity
    if honour_dnt is not None:
        values["honour_dnt"] = honour_dnt
    if rate_limit is not None:
        _check_rate_limit(rate_limit)
        values["rate_limit"] = rate_limit
    with engine.begin() as conn:
        conn.execute(sites.update().where(sites.c.site_id == site.site_id).values(**values))
    return find_site(engine, write_key)


def rotate_server_key(engine: sa.Engine, write_key: str) -> str:
    """Give an active site a new secret server key; return it (shown once, stored as a digest)."""
    site = _active(engine, write_key)
    server_key = new_server_key()
    with engine.begin() as conn:
        conn.execute(
            sites.update()
            .where(sites.c.site_id == site.site_id)
            .values(server_key_digest=digest(server_key))
        )
    return server_key


def rotate_identity_secret(engine: sa.Engine, write_key: str) -> str:
    """Give an active site a new identity secret; every user hash signed before stops matching."""
    site = _active(engine, write_key)
    secret = new_identity_secret()
    with engine.begin() as conn:
        conn.execute(
            sites.update().where(sites.c.site_id == site.site_id).values(identity_secret=secret)
        )
    return secret


class SiteDirectory:
    """An in-process view of the sites table, refreshed every ``ttl`` seconds.

    The collector looks a key up on every request; one SQL query per request would cap its
    throughput, and a revocation taking a few seconds to reach every process is acceptable.
    """

    def __init__(self, engine: sa.Engine, ttl: float = 5.0):
        self.engine, self.ttl = engine, ttl
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._by_write_key: dict[str, Site] = {}
        self._by_server_digest: dict[str, Site] = {}
        self._origins: frozenset[str] = frozenset()

    def invalidate(self) -> None:
        """Reload on the next lookup."""
        self._loaded_at = float("-inf")

    def _refresh(self) -> None:
        if time.monotonic() - self._loaded_at < self.ttl:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < self.ttl:
                return
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(sites.select().where(sites.c.revoked_at.is_(None))).all()
            except sa.exc.SQLAlchemyError as e:
                if self._loaded_at == float("-inf"):
                    raise SitesUnavailable(
                        "the sites table cannot be read (SQL store unreachable)"
                    ) from e
                # SQL down: keep answering from the last copy (the stream still takes events),
                # and try again after one more ttl; a revocation meanwhile waits for SQL.
                log.warning("cannot refresh the sites (%s); using the last copy", e)
                self._loaded_at = time.monotonic() - self.ttl + min(self.ttl, 1.0)
                return
            by_write = {}
            by_server = {}
            origins: set[str] = set()
            for row in rows:
                site = _row_to_site(row)
                by_write[site.write_key] = site
                by_server[row.server_key_digest] = site
                origins.update(site.allowed_origins)
            self._by_write_key, self._by_server_digest = by_write, by_server
            self._origins = frozenset(origins)
            self._loaded_at = time.monotonic()

    def by_write_key(self, key: str) -> Site | None:
        """The active site with this public write key."""
        self._refresh()
        return self._by_write_key.get(key)

    def by_server_key(self, key: str) -> Site | None:
        """The active site with this secret server key."""
        self._refresh()
        return self._by_server_digest.get(digest(key))

    def origin_known(self, origin: str) -> bool:
        """True when some active site allows this origin (used for preflights and errors)."""
        self._refresh()
        return "*" in self._origins or origin in self._origins
