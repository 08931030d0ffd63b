"""Event validation: the Segment HTTP Tracking API's events, checked and normalised in one place.

``prepare_events`` splits the events of a request (decoded by :mod:`tracking.payload`) into
accepted (normalised, clock skew corrected, client-sent IPs truncated by
:mod:`tracking.privacy`) and rejected (with the field and the reason,
:mod:`tracking.rejections`). Nothing here knows about Flask.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from tracking.consent_event import CONSENT_EVENT, check_consent
from tracking.errors import InvalidEvent
from tracking.identity import Verifier
from tracking.payload import json_kind
from tracking.privacy import scrub_ips
from tracking.rejections import Rejection, rejected_raw

EVENT_TYPES = ("track", "page", "identify", "alias", "screen", "group")
ID_FIELDS = ("anonymousId", "userId", "previousId", "groupId")
OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
TIME_FIELDS = ("timestamp", "sentAt", "originalTimestamp")
MAX_ID_LENGTH = 255
MAX_MESSAGE_ID_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_NUMBER = 1e18
# What the SQL columns hold (tracking/schema.py), on SQLite and PostgreSQL alike: money is
# Numeric(14, 2), so under 10^12 once rounded to cents; order_lines.quantity is a 32-bit Integer.
# An order line's price x quantity is an attribution's revenue, Numeric(14, 2) too.
MAX_MONEY = Decimal(10**12)
MAX_QUANTITY = 2**31 - 1
CENT = Decimal("0.01")
MONEY_FIELDS = ("total", "revenue", "subtotal", "tax", "shipping", "discount")
# C0, DEL and C1: never part of an event's name, and they garble reports and logs.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# Any time kept (sentAt may be far off: a client's clock) stays a day inside datetime's range, so
# PostgreSQL can hand it back in any session time zone without leaving years 1 to 9999.
FIRST_TIME = datetime(1, 1, 2, tzinfo=UTC)
LAST_TIME = datetime(9999, 12, 31, tzinfo=UTC)
TIME_RANGE_REASON = "out of range: must be between 0001-01-02 and 9999-12-30 in UTC"


@dataclass(frozen=True)
class Limits:
    """Size and shape limits, as Segment's HTTP Tracking API."""

    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    max_depth: int = 20
    future_tolerance: timedelta = timedelta(hours=24)


def parse_time(value: Any, field: str) -> datetime:
    """Parse an ISO 8601 time into an aware UTC datetime, or raise InvalidEvent."""
    if not isinstance(value, str) or not 4 <= len(value) <= 40:
        raise InvalidEvent(field, "not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(field, "not an ISO 8601 time") from None
    try:
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC; datetime stops at 1
        raise InvalidEvent(field, TIME_RANGE_REASON) from None
    if not FIRST_TIME <= parsed < LAST_TIME:
        raise InvalidEvent(field, TIME_RANGE_REASON)
    return parsed


def iso(moment: datetime) -> str:
    """Format a UTC datetime as ISO 8601 with milliseconds and Z."""
    # isoformat is several times faster than strftime, and this runs for every event.
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


NUL_REASON = "contains a NUL character (\\u0000)"
RANGE_REASON = f"number out of range (|n| must be < {MAX_NUMBER:g})"


KEY_NUL_REASON = "a key contains a NUL character (\\u0000)"


def _step(key: str | int) -> str:
    return f".{key}" if type(key) is str else f"[{key}]"


def _find_problem(node: Any, depth: int, max_depth: int) -> tuple[str, str] | None:
    """(relative path, reason) of the first bad value inside a dict or list, or None.

    Checks strings for NUL (PostgreSQL text cannot hold it), numbers for a range every store
    keeps exactly, and nesting depth. Paths are only built for the value that is wrong, and
    scalars are checked inline rather than by a call each: this runs over every value of every
    event, so the happy path must stay cheap.
    """
    if depth >= max_depth:
        return "", f"nested deeper than {max_depth} levels"
    pairs = node.items() if type(node) is dict else enumerate(node)
    for key, child in pairs:
        # The key first: a path naming a NUL key could not be stored with the refusal either.
        if type(key) is str and "\x00" in key:
            return "", KEY_NUL_REASON
        kind = type(child)
        if kind is str:
            if "\x00" in child:
                return _step(key), NUL_REASON
        elif kind is int or kind is float:
            if not -MAX_NUMBER < child < MAX_NUMBER:
                return _step(key), RANGE_REASON
        elif kind is dict or kind is list:
            found = _find_problem(child, depth + 1, max_depth)
            if found is not None:
                return _step(key) + found[0], found[1]
    return None


def _check_values(value: dict, path: str, max_depth: int) -> None:
    found = _find_problem(value, 0, max_depth)
    if found is not None:
        raise InvalidEvent(path + found[0], found[1])


def _nfc(value: str) -> str:
    """The NFC form of a string, so one id typed on two systems is one id (cheap when it is)."""
    if value.isascii() or unicodedata.is_normalized("NFC", value):
        return value
    return unicodedata.normalize("NFC", value)


def _check_id(event: dict, name: str, path: str) -> None:
    value = event.get(name)
    if value is None:
        # Segment clients send "userId": null for anonymous visitors: null is no id at all, so
        # the required-id checks below (which test presence) see it as absent.
        event.pop(name, None)
        return
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidEvent(f"{path}.{name}", "must be a string")
    value = _nfc(value) if type(value) is str else str(value)
    if not value.strip():
        raise InvalidEvent(f"{path}.{name}", "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(f"{path}.{name}", f"longer than {MAX_ID_LENGTH} characters")
    event[name] = value


MONEY_REASON = "out of range: amounts must be below 1,000,000,000,000 once rounded to cents"
LINE_REASON = "price x quantity must be below 1,000,000,000,000"
LINES_REASON = "the lines' price x quantity add up to 1,000,000,000,000 or more"


def _cents(value: Any, field: str) -> Decimal:
    """A money value as the store keeps it (rounded to cents), or InvalidEvent when it cannot."""
    if not _is_number(value):
        raise InvalidEvent(field, "must be a number")
    if not -1e13 < value < 1e13:
        raise InvalidEvent(field, MONEY_REASON)
    # Rounded as tracking.orders does, so a value refused here is exactly one the column refuses.
    cents = Decimal(str(value)).quantize(CENT)
    if not -MAX_MONEY < cents < MAX_MONEY:
        raise InvalidEvent(field, MONEY_REASON)
    return cents


def _check_text_id(value: Any, field: str) -> None:
    # Ids that become columns of 255 characters: refused, never silently cut.
    if type(value) is str and len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(field, f"longer than {MAX_ID_LENGTH} characters")


def _check_order(properties: dict, path: str) -> dict:
    """Refuse an order the store could not record; return its properties as they are kept.

    Orders feed revenue reports and the recommender: every amount, quantity and id must fit its
    column (and the attributions computed from it), on SQLite and PostgreSQL alike.
    """
    order_id = properties.get("order_id")
    if isinstance(order_id, bool) or not isinstance(order_id, (str, int)) or order_id == "":
        raise InvalidEvent(f"{path}.properties.order_id", "required for Order Completed")
    _check_text_id(order_id, f"{path}.properties.order_id")
    products = properties.get("products", [])
    if not isinstance(products, list):
        raise InvalidEvent(f"{path}.properties.products", "must be an array")
    lines_total = Decimal(0)
    for i, product in enumerate(products):
        where = f"{path}.properties.products[{i}]"
        if not isinstance(product, dict):
            raise InvalidEvent(where, "must be an object")
        for name in ("product_id", "sku"):
            _check_text_id(product.get(name), f"{where}.{name}")
        quantity = product.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            raise InvalidEvent(f"{where}.quantity", "must be a non-negative integer")
        if quantity > MAX_QUANTITY:
            raise InvalidEvent(f"{where}.quantity", f"must be at most {MAX_QUANTITY}")
        if "price" in product:
            # A line's price x quantity is the revenue an attribution credits; the lines of one
            # item add up, so the sum of every line must fit as well.
            amount = abs(_cents(product["price"], f"{where}.price")) * quantity
            if amount >= MAX_MONEY:
                raise InvalidEvent(f"{where}.quantity", LINE_REASON)
            lines_total += amount
            if lines_total >= MAX_MONEY:
                raise InvalidEvent(f"{path}.properties.products", LINES_REASON)
    for name in MONEY_FIELDS:
        if properties.get(name) is not None:
            _cents(properties[name], f"{path}.properties.{name}")
    currency = properties.get("currency")
    if currency is not None and currency != "":  # "" (as None): no currency given
        if not (
            type(currency) is str
            and len(currency) == 3
            and currency.isascii()
            and currency.isalpha()
        ):
            raise InvalidEvent(f"{path}.properties.currency", "must be a 3-letter ISO 4217 code")
        if not currency.isupper():  # one spelling, so revenue adds up per currency
            properties = {**properties, "currency": currency.upper()}
    return properties


def _check_name(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidEvent(field, "must be a string")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidEvent(field, f"longer than {MAX_NAME_LENGTH} characters")
    if not value.isprintable() and CONTROL_CHARACTERS.search(value):  # isprintable: fast
        raise InvalidEvent(field, "contains control characters")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_event(
    event: Any,
    path: str,
    *,
    received_at: datetime,
    batch_sent_at: datetime | None,
    limits: Limits,
    forced_type: str | None = None,
    received_iso: str | None = None,
    batch_sent_iso: str | None = None,
) -> dict[str, Any]:
    """Return the normalised event or raise InvalidEvent naming the field and the reason.

    ``received_iso`` and ``batch_sent_iso`` are the formatted forms of the two batch times,
    passed by :func:`prepare_events` so a batch formats them once, not once per event.
    """
    if not isinstance(event, dict):
        raise InvalidEvent(path, f"must be a JSON object, not {json_kind(event)}")
    # First, so that an event refused below keeps no raw address in rejected_events either.
    scrub_ips(event)
    event = dict(event)
    event.pop("writeKey", None)  # never stored: it is the site's key
    kind = forced_type or event.get("type")
    if kind not in EVENT_TYPES:
        raise InvalidEvent(f"{path}.type", f"must be one of {', '.join(EVENT_TYPES)}")
    event["type"] = kind

    message_id = event.get("messageId")
    if message_id is None:
        event["messageId"] = str(uuid.uuid4())
    elif not isinstance(message_id, str) or not message_id.strip():
        raise InvalidEvent(f"{path}.messageId", "must be a non-empty string")
    else:
        message_id = event["messageId"] = _nfc(message_id)  # one message in two forms is one
        if len(message_id) > MAX_MESSAGE_ID_LENGTH:
            raise InvalidEvent(
                f"{path}.messageId", f"longer than {MAX_MESSAGE_ID_LENGTH} characters"
            )

    for name in ID_FIELDS:
        _check_id(event, name, path)
    if kind == "alias":
        for name in ("previousId", "userId"):
            if name not in event:
                raise InvalidEvent(f"{path}.{name}", "required for alias")
    elif "anonymousId" not in event and "userId" not in event:
        raise InvalidEvent(f"{path}.userId", "anonymousId or userId is required")
    if kind == "group" and "groupId" not in event:
        raise InvalidEvent(f"{path}.groupId", "required for group")

    event_name = event.get("event")
    if kind == "track" and (not isinstance(event_name, str) or not event_name.strip()):
        raise InvalidEvent(f"{path}.event", "required for track: a non-empty string")
    if event_name is not None:  # a column of every event type, so checked on every type
        _check_name(event_name, f"{path}.event")
    if event.get("name") is not None:
        _check_name(event["name"], f"{path}.name")

    for name in OBJECT_FIELDS:
        if name in event and event[name] is not None and not isinstance(event[name], dict):
            raise InvalidEvent(f"{path}.{name}", "must be a JSON object")
    _check_values(event, path, limits.max_depth)
    if kind == "track":
        properties = event.get("properties") or {}
        _check_text_id(properties.get("product_id"), f"{path}.properties.product_id")
        if event["event"] == "Order Completed":
            checked = _check_order(properties, path)
            if checked is not properties:
                event["properties"] = checked
        elif event["event"] == CONSENT_EVENT:
            check_consent(event, path)

    # Clock skew: the client's clock is off by (sentAt - receivedAt); move its times back.
    times = {
        name: parse_time(event[name], f"{path}.{name}") for name in TIME_FIELDS if name in event
    }
    sent_at = times.get("sentAt", batch_sent_at)
    client_field = "timestamp" if "timestamp" in times else "originalTimestamp"
    client_time = times.get(client_field)
    if client_time is None:
        timestamp = received_at
    elif sent_at is not None:
        try:
            timestamp = client_time + (received_at - sent_at)
        except OverflowError:
            raise InvalidEvent(
                f"{path}.{client_field}",
                "out of range once corrected for the client's clock (sentAt)",
            ) from None
    else:
        timestamp = client_time
    if timestamp > received_at + limits.future_tolerance:
        raise InvalidEvent(
            f"{path}.timestamp",
            f"more than {int(limits.future_tolerance.total_seconds() // 3600)} hours in the future",
        )
    if timestamp < EARLIEST:
        raise InvalidEvent(f"{path}.timestamp", "before 2000-01-01")
    if client_time is not None:
        event["originalTimestamp"] = event[client_field]  # the client's own words, kept as sent
    if "sentAt" in times:
        event["sentAt"] = iso(times["sentAt"])
    elif sent_at is not None:
        event["sentAt"] = batch_sent_iso or iso(sent_at)
    event["receivedAt"] = received_iso or iso(received_at)
    event["timestamp"] = event["receivedAt"] if client_time is None else iso(timestamp)
    return event


def prepare_events(
    raw_events: Iterable[Any],
    *,
    path: str,
    received_at: datetime,
    batch_sent_at: Any,
    limits: Limits,
    forced_type: str | None = None,
    body_bytes: int | None = None,
    verifier: Verifier | None = None,
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Split events into accepted (normalised) and rejected (with index, field and reason).

    ``body_bytes`` is the size of the request body the events came in: when it is within the
    per-event limit, no single event can exceed it and the per-event measurement is skipped.
    ``verifier`` (the collector's) marks each accepted event's user id verified or not; without
    one, as for events the server writes itself, events carry no marker and are trusted.
    """
    sent_at = sent_iso = None
    if batch_sent_at is not None:
        sent_at = parse_time(batch_sent_at, "sentAt")  # a bad batch sentAt spoils every event
        sent_iso = iso(sent_at)
    received_iso = iso(received_at)
    measure = body_bytes is None or body_bytes > limits.max_event_bytes
    accepted: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    for index, raw_event in enumerate(raw_events):
        where = f"{path}[{index}]" if forced_type is None else path
        try:
            if measure and len(orjson.dumps(raw_event)) > limits.max_event_bytes:
                raise InvalidEvent(
                    where, f"event larger than {limits.max_event_bytes} bytes", status=413
                )
            event = validate_event(
                raw_event,
                where,
                received_at=received_at,
                batch_sent_at=sent_at,
                limits=limits,
                forced_type=forced_type,
                received_iso=received_iso,
                batch_sent_iso=sent_iso,
            )
            if verifier is not None:
                verifier.mark(event)  # overwrites any marker the client sent
            accepted.append(event)
        except InvalidEvent as e:
            rejected.append(Rejection(index, e.field, e.reason, rejected_raw(raw_event), e.status))
    return accepted, rejected
