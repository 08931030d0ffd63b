"""A customer's profile as they edit it in the portal: name, email, phone, birth date.

The profile lives in the customer's verified traits (``customers.traits``): what a signed-in
customer says about themselves is verified data, as a shop server's identify call is. The birth
date is kept as Segment's ``birthday`` trait and feeds the ``age`` trait that recommendation
rules read (recommender.rules trait constraints); the customer's search keys
(tracking.customer_lookup) follow in the same transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import redis
import sqlalchemy as sa

from tracking import customer_lookup
from tracking.activity import GENERATION_TTL_SECONDS, INVALIDATION_CHANNEL, generation_key
from tracking.customers import age_on
from tracking.db import upsert
from tracking.events import CONTROL_CHARACTERS
from tracking.schema import customers

NAME_LENGTH = 200
EMAIL_LENGTH = 254
# Local part, @, a domain with a dot; no spaces or angle brackets (RFC 5322 is wider, but an
# address people type into a form looks like this).
EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$"
)
# E.164-ish: an optional +, then digits with spaces, dots, dashes or brackets between them.
PHONE_CHARS = re.compile(r"^\+?[0-9 ().-]{4,30}$")
PHONE_DIGITS = (7, 15)
OLDEST = date(1900, 1, 1)
FIELDS = ("name", "email", "phone", "birthday")
log = logging.getLogger("ecrm.accounts")

Problems = dict[str, str]


def clean_text(value: Any, field: str, limit: int, problems: Problems, required=False) -> str:
    """Trimmed text without control characters, at most ``limit`` characters; a problem else."""
    text = value.strip() if isinstance(value, str) else ""
    if CONTROL_CHARACTERS.search(text):
        problems[field] = "must not contain control characters"
    elif len(text) > limit:
        problems[field] = f"must be at most {limit} characters"
    elif required and not text:
        problems[field] = "is required"
    return text


def check_email(value: Any, problems: Problems, field: str = "email") -> str:
    """A lower-cased email address, or a problem under ``field``."""
    text = clean_text(value, field, EMAIL_LENGTH, problems, required=True).lower()
    if field not in problems and not EMAIL.match(text):
        problems[field] = "must be an email address like name@example.com"
    return text


def check_phone(value: Any, problems: Problems, field: str = "phone") -> str:
    """A phone number as +digits (E.164), "" when none; a problem when it is not one."""
    text = clean_text(value, field, 32, problems)
    if not text or field in problems:
        return ""
    digits = re.sub(r"\D", "", text)
    if not PHONE_CHARS.match(text) or not PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1]:
        problems[field] = "must be a phone number of 7 to 15 digits, like +82 2 1234 5678"
        return text
    return ("+" if text.startswith("+") else "") + digits


def check_birthday(value: Any, problems: Problems, today: date | None = None) -> str:
    """A birth date as YYYY-MM-DD, "" when none; a problem when not a past date after 1900."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return ""
    try:
        born = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        born = None
    today = today or datetime.now(UTC).date()
    if born is None:
        problems["birthday"] = "must be a date like 1990-04-30"
    elif not OLDEST <= born <= today:
        problems["birthday"] = f"must be between {OLDEST.isoformat()} and today"
    return text


def check_profile(form: Mapping[str, Any]) -> tuple[dict[str, str], Problems]:
    """The name, phone and birth date of a profile form, cleaned; and the problems per field."""
    problems: Problems = {}
    values = {
        "name": clean_text(form.get("name"), "name", NAME_LENGTH, problems),
        "phone": check_phone(form.get("phone"), problems),
        "birthday": check_birthday(form.get("birthday"), problems),
    }
    return values, problems


def read_profile(conn: sa.Connection, site_id: int, user_id: str) -> dict[str, Any] | None:
    """The customer's row as the portal and the shop see it; None when no such customer."""
    row = conn.execute(
        sa.select(customers).where(customers.c.site_id == site_id, customers.c.user_id == user_id)
    ).first()
    if row is None:
        return None
    traits = row.traits if isinstance(row.traits, dict) else {}
    return {
        "user_id": user_id,
        "name": _str(traits.get("name")),
        "email": _str(traits.get("email")),
        "phone": _str(traits.get("phone")),
        "birthday": _str(traits.get("birthday")),
        "age": traits.get("age") if isinstance(traits.get("age"), int) else None,
        "traits": traits,
        "first_seen_at": row.first_seen_at,
        "last_seen_at": row.last_seen_at,
    }


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def update_profile(
    conn: sa.Connection,
    site_id: int,
    user_id: str,
    changes: Mapping[str, str],
    *,
    today: date | None = None,
) -> dict[str, Any]:
    """Write checked profile values into the verified traits ("" removes one); the new traits.

    A birth date sets ``age`` too (removing it removes ``age``). The customer row is created
    when the shop never identified this customer; their search keys follow.
    """
    today = today or datetime.now(UTC).date()
    now = datetime.now(UTC)
    row = conn.execute(
        sa.select(customers.c.traits, customers.c.first_seen_at).where(
            customers.c.site_id == site_id, customers.c.user_id == user_id
        )
    ).first()
    before = dict(row.traits) if row is not None and isinstance(row.traits, dict) else {}
    traits = dict(before)
    for field, value in changes.items():
        if field not in FIELDS:
            raise ValueError(f"{field}: not a profile field")
        if value:
            traits[field] = value
        else:
            traits.pop(field, None)
    if "birthday" in changes:
        if changes["birthday"]:
            traits["age"] = age_on(date.fromisoformat(changes["birthday"]), today)
        else:
            traits.pop("age", None)
    conn.execute(
        upsert(conn.engine, customers, ["site_id", "user_id"], ["traits"]),
        {
            "site_id": site_id,
            "user_id": user_id,
            "traits": traits,
            "unverified_traits": None,
            "first_seen_at": row.first_seen_at if row is not None else now,
            "last_seen_at": now,
        },
    )
    customer_lookup.refresh(
        conn, site_id, {user_id: traits}, {user_id: before} if row is not None else {}
    )
    return traits


def refresh_answers(client: redis.Redis, site_id: int, user_id: str) -> None:
    """Void the customer's cached recommendations: their traits (``age``) feed the rules.

    As the ingest worker does for new events (tracking.activity): the generation counter moves,
    so a cached answer is recomputed, and every web process drops its own copy. A Redis failure
    is logged; the caches then catch up within their freshness time.
    """
    visitor = f"u:{user_id}"
    try:
        pipe = client.pipeline(transaction=False)
        key = generation_key(site_id, visitor)
        pipe.incr(key)
        pipe.expire(key, GENERATION_TTL_SECONDS)
        pipe.publish(INVALIDATION_CHANNEL, f"{site_id}\t{visitor}")
        pipe.execute()
    except redis.RedisError as e:
        log.warning("could not refresh the cached answers of a customer: %s", e)
