"""The Segment event shapes the collector accepts (JSON Schema 2020-12), and their examples."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tracking.events import (
    CENT,
    EVENT_TYPES,
    FIRST_TIME,
    LAST_TIME,
    MAX_ID_LENGTH,
    MAX_MESSAGE_ID_LENGTH,
    MAX_MONEY,
    MAX_NAME_LENGTH,
    MAX_NUMBER,
    MAX_QUANTITY,
    MONEY_FIELDS,
)
from webapp.openapi.parts import schema_ref

EXAMPLE_CONTEXT = {
    "page": {"url": "https://shop.example/p/sku-0001", "path": "/p/sku-0001", "title": "Blue mug"},
    "userAgent": "Mozilla/5.0",
    "locale": "en-GB",
}
EXAMPLE_EVENTS: dict[str, dict[str, Any]] = {
    "track": {
        "event": "Product Viewed",
        "anonymousId": "a-1",
        "messageId": "0b7c2f9e-3d0a-4f51-9d2e-6b1f8a4c7e21",
        "timestamp": "2025-11-20T10:00:00.000Z",
        "properties": {"product_id": "sku-0001", "price": 12.5, "currency": "EUR"},
        "context": EXAMPLE_CONTEXT,
    },
    "page": {"anonymousId": "a-1", "name": "Blue mug", "properties": {"path": "/p/sku-0001"}},
    "identify": {"anonymousId": "a-1", "userId": "cust-00042", "traits": {"age": 34}},
    "alias": {"previousId": "a-1", "userId": "cust-00042"},
    "screen": {"userId": "cust-00042", "name": "Basket"},
    "group": {"userId": "cust-00042", "groupId": "acme", "traits": {"name": "Acme Ltd"}},
}
EXAMPLE_BATCH = {
    "batch": [
        {"type": "track", **EXAMPLE_EVENTS["track"]},
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "cust-00042",
            "properties": {
                "order_id": "o-1001",
                "total": 25.0,
                "currency": "EUR",
                "products": [{"product_id": "sku-0001", "price": 12.5, "quantity": 2}],
            },
        },
    ],
    "sentAt": "2025-11-20T10:00:01.000Z",
}


# JSON Schema cannot say "no NUL anywhere" in one keyword: every string and key says it.
NO_NUL = "^[^\\x00]*$"


def _python_whitespace() -> str:
    """What ``str.strip`` removes, as a character-class body both Python and ECMA read alike.

    ECMA's ``\\s`` differs from Python's (U+FEFF is space to one, U+001C..U+001F to the
    other), and the validator's "blank" is Python's: so the class is spelled out.
    """
    spaces = [code for code in range(0x10000) if chr(code).isspace()]  # all in the BMP
    ranges: list[list[int]] = []
    for code in spaces:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}"
        for first, last in ranges
    )


WHITESPACE = _python_whitespace()
# A string with something besides whitespace, and no NUL (ids, names).
NOT_BLANK = f"^[^\\x00]*[^\\x00{WHITESPACE}][^\\x00]*$"
# Python's `$` also matches before a final newline, ECMA's does not: patterns that refuse a
# newline start with this guard, so Python validators (schemathesis) and ECMA ones agree.
NO_NEWLINE = "(?![^\\n]*\\n)"
# Event names: no C0, DEL or C1 control character (tracking.events.CONTROL_CHARACTERS).
_NOT_CONTROL = "[^\\x00-\\x1f\\x7f-\\x9f]"
NO_CONTROL = f"^{NO_NEWLINE}{_NOT_CONTROL}*$"
NAME_TEXT = f"^{NO_NEWLINE}{_NOT_CONTROL}*[^\\x00-\\x1f\\x7f-\\x9f{WHITESPACE}]{_NOT_CONTROL}*$"
# Three ASCII letters (any case: stored upper-cased), or "" for none.
CURRENCY = f"^{NO_NEWLINE}(?:[A-Za-z]{{3}})?$"
# The largest magnitude that rounds (half to even, as tracking.events._cents) below 10^12 cents'
# worth: every number under it is kept, and this one, rounded, is 10^12 and refused.
MONEY_BOUND = float(MAX_MONEY - CENT / 2)
# What the JSON decoder (orjson) reads as an integer; larger integers arrive as floats, and a
# float is not an id.
MIN_INTEGER_ID, MAX_INTEGER_ID = -(2**63), 2**64 - 1
FIRST_YEAR = 2001  # 2000-01-01 with a positive offset is still 1999 in UTC: refused
MAX_TIME_LENGTH = 40
FIRST_DAY, LAST_DAY = (
    FIRST_TIME.date().isoformat(),
    (LAST_TIME.date() - timedelta(days=1)).isoformat(),
)


def time_pattern(last_year: int) -> str:
    """ISO 8601 times from FIRST_YEAR to the end of ``last_year``, in the forms Python parses.

    Days stop at 28 so that every month/day pair exists; the document states the window
    (2000 to 24 hours ahead) in words, the pattern is a subset every such time fits.
    """
    years = "|".join(str(y) for y in range(FIRST_YEAR, max(FIRST_YEAR, last_year) + 1))
    return (
        f"^{NO_NEWLINE}(?:{years})-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
        "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
        "(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])?$"
    )


def _fields(kind: str, description: str, properties: dict, required: list[str]) -> dict:
    branch: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        branch["required"] = required
    return {
        "title": f"{kind} call",
        "description": description + " In a single call the path decides the type; a `type` "
        "in the body is ignored.",
        "allOf": [schema_ref("Event"), branch],
    }


def _event(kind: str) -> dict:
    return {
        "title": f"{kind} event",
        "description": f"A `{kind}` event in a batch.",
        "allOf": [
            schema_ref(f"{kind.capitalize()}Call"),
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"const": kind, "description": "Which kind of event."}},
            },
        ],
    }


def schemas(config: Mapping[str, Any]) -> dict[str, dict]:
    """The Segment event schemas, with this configuration's limits.

    Every keyword here is one tracking/events.py enforces, and nothing schema-valid is refused
    except by the rules stated in words (the clock window, the order lines' totals, the nesting
    depth, the event's size); tests/test_openapi_limits.py sends each limit and one past it.
    """
    id_text = {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": NOT_BLANK}
    id_integer = {"type": "integer", "minimum": MIN_INTEGER_ID, "maximum": MAX_INTEGER_ID}
    id_words = (
        "A string is normalised to NFC (its length counted after), an integer is kept as its "
        "decimal string; `null` counts as absent."
    )
    identifier = {"anyOf": [id_text, id_integer, {"type": "null"}]}
    # Where an id is required, null does not count: it is no id at all.
    present_id = {"anyOf": [id_text, id_integer]}
    name = {
        "type": ["string", "null"],
        "maxLength": MAX_NAME_LENGTH,
        "pattern": NO_CONTROL,
        "description": "No control characters (C0, DEL, C1).",
    }
    obj = {"anyOf": [schema_ref("JsonObject"), {"type": "null"}]}
    hours = config["FUTURE_TOLERANCE_SECONDS"] // 3600
    time = {
        "type": "string",
        "pattern": time_pattern(datetime.now(UTC).year - 1),
        "examples": ["2025-11-20T10:00:00.000Z"],
    }
    time_words = (
        f" ISO 8601 as Python reads it, 4 to {MAX_TIME_LENGTH} characters; without a zone it is "
        f"UTC. Any time outside {FIRST_DAY} to {LAST_DAY} in UTC is refused (422). The pattern "
        "shows the usual forms from 2001 to last year, all inside that range."
    )
    ip_words = (
        "Any key named `ip`, `ip_address` or `ipAddress` (any case, at any depth) holding an "
        "IP address is truncated (IPv4 to /24, IPv6 to /48) before anything is stored, and "
        "dropped if it holds anything else."
    )
    event = {
        "type": "object",
        "description": "The fields every Segment event shares. `anonymousId` or `userId` is "
        f"required (not null). `timestamp`, corrected for the client's clock (`timestamp + "
        f"receivedAt - sentAt`), must be after 2000 and at most {hours} hours ahead, or the event "
        f"is rejected (422 when no event of the request is valid). Values nest at most "
        f"{config['MAX_JSON_DEPTH']} levels; strings and keys must not contain NUL; numbers "
        "must be below 1e18 in magnitude. `event` and `name`, `properties`, `traits`, "
        "`context` and `integrations`, and the four ids are checked on every type. Other "
        "fields are kept as sent.",
        "properties": {
            "messageId": {
                "type": ["string", "null"],
                "maxLength": MAX_MESSAGE_ID_LENGTH,
                "pattern": NOT_BLANK,
                "description": "A UUID, made up when absent or null; stored once per (site, "
                "messageId). Normalised to NFC, its length counted after.",
            },
            "anonymousId": {**identifier, "description": "The visitor's id (cookie). " + id_words},
            "userId": {**identifier, "description": "The customer's id in the shop. " + id_words},
            "previousId": {**identifier, "description": "The former id (alias). " + id_words},
            "groupId": {**identifier, "description": "The group's id (group). " + id_words},
            "event": {**name, "description": "The action's name (track). " + name["description"]},
            "name": {**name, "description": "The page's or screen's name. " + name["description"]},
            "properties": obj,
            "traits": {**obj, "description": "What is known of the user or group. " + ip_words},
            "context": {
                **obj,
                "description": "page, userAgent, locale, screen, campaign, library... `ip` is "
                "replaced by the request's truncated address. " + ip_words,
            },
            "integrations": obj,
            "timestamp": {
                **time,
                "description": "When it happened, by the client's clock." + time_words,
            },
            "sentAt": {
                **time,
                "description": "When the client sent it (clock-skew correction)." + time_words,
            },
            "originalTimestamp": {
                **time,
                "description": "The client's time when there is no `timestamp`." + time_words,
            },
            "writeKey": {
                "description": "The write key, if not sent in `Authorization` (which wins)."
            },
            "type": {
                "description": "The kind of event: in a batch, one of "
                + ", ".join(f"`{kind}`" for kind in EVENT_TYPES)
                + "; in a single call the path decides and this is ignored."
            },
        },
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": schema_ref("JsonValue"),
        "anyOf": [
            {"required": ["anonymousId"], "properties": {"anonymousId": present_id}},
            {"required": ["userId"], "properties": {"userId": present_id}},
        ],
    }
    number = {
        "type": "number",
        "exclusiveMinimum": -MAX_NUMBER,
        "exclusiveMaximum": MAX_NUMBER,
    }
    money = {
        "type": "number",
        "exclusiveMinimum": -MONEY_BOUND,
        "exclusiveMaximum": MONEY_BOUND,
        "description": "Kept rounded to cents; under 1e12 in magnitude once rounded.",
    }
    text_id = {
        "maxLength": MAX_ID_LENGTH,
        "description": f"Usually a string (at most {MAX_ID_LENGTH} characters); other values "
        "are kept as their text.",
    }
    product = {
        "description": "A product in an Ecommerce event (Segment Ecommerce Spec V2).",
        "allOf": [
            schema_ref("JsonObject"),
            {
                "type": "object",
                "properties": {
                    "product_id": text_id,
                    "sku": text_id,
                    "name": {"description": "Usually a string."},
                    "category": {"description": "Usually a string."},
                    "price": {**money, "description": "The unit price. " + money["description"]},
                    "quantity": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": MAX_QUANTITY,
                        "default": 1,
                    },
                },
            },
        ],
    }
    order = {
        "description": "`Order Completed` properties; they become rows in orders and "
        "order_lines, so `order_id` is required. Each line's `price` x `quantity`, and the sum "
        "of every line's, must be below 1e12 (once the price is rounded to cents): otherwise "
        "the event is refused (422 naming `properties.products[i].quantity`, or "
        "`properties.products` for the sum).",
        "allOf": [
            schema_ref("JsonObject"),
            {
                "type": "object",
                "required": ["order_id"],
                "properties": {
                    "order_id": {
                        "anyOf": [
                            {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH},
                            {"type": "integer"},
                        ]
                    },
                    **{amount: {"anyOf": [money, {"type": "null"}]} for amount in MONEY_FIELDS},
                    "currency": {
                        "type": ["string", "null"],
                        "pattern": CURRENCY,
                        "description": "ISO 4217: three ASCII letters, stored upper-cased; "
                        '`""` or null for none.',
                    },
                    "products": {"type": "array", "items": schema_ref("Product")},
                },
            },
        ],
    }
    track = _fields(
        "track",
        "A user action: Ecommerce names such as `Product Viewed`, `Product Added`, "
        "`Order Completed` feed the recommender.",
        {
            "event": {
                "type": "string",
                "maxLength": MAX_NAME_LENGTH,
                "pattern": NAME_TEXT,
                "description": "The action's name: not blank, no control characters.",
            },
            "properties": {"anyOf": [schema_ref("TrackProperties"), {"type": "null"}]},
        },
        ["event"],
    )
    track["if"] = {"properties": {"event": {"const": "Order Completed"}}, "required": ["event"]}
    track["then"] = {
        "required": ["properties"],
        "properties": {"properties": schema_ref("OrderCompletedProperties")},
    }
    calls = {
        "TrackCall": track,
        "PageCall": _fields(
            "page", "A page view.", {"category": {"description": "Usually a string."}}, []
        ),
        "IdentifyCall": _fields(
            "identify", "Who the user is: links `anonymousId` to `userId`.", {}, []
        ),
        "AliasCall": _fields(
            "alias",
            "Merge two identities: `previousId` becomes `userId`; both required (not null).",
            {"previousId": present_id, "userId": present_id},
            ["previousId", "userId"],
        ),
        "ScreenCall": _fields("screen", "A screen view in an app.", {}, []),
        "GroupCall": _fields(
            "group",
            "Associate the user with a group (a company, an account); `groupId` is required "
            "(not null).",
            {"groupId": present_id},
            ["groupId"],
        ),
    }
    return {
        "JsonValue": {
            "description": "Any JSON value without NUL in strings or keys, numbers below 1e18 "
            "in magnitude.",
            "anyOf": [
                {"type": "string", "pattern": NO_NUL},
                number,
                {"type": ["boolean", "null"]},
                {"type": "array", "items": schema_ref("JsonValue")},
                schema_ref("JsonObject"),
            ],
        },
        "JsonObject": {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": schema_ref("JsonValue"),
        },
        "Event": event,
        **calls,
        **{f"{kind.capitalize()}Event": _event(kind) for kind in EVENT_TYPES},
        "TrackProperties": {
            "description": "A track event's properties.",
            "allOf": [
                schema_ref("JsonObject"),
                {"type": "object", "properties": {"product_id": text_id}},
            ],
        },
        "Product": product,
        "OrderCompletedProperties": order,
        "BatchEvent": {
            "description": "One event of any type; `type` says which.",
            "required": ["type"],
            "oneOf": [schema_ref(f"{kind.capitalize()}Event") for kind in EVENT_TYPES],
            "discriminator": {
                "propertyName": "type",
                "mapping": {
                    kind: f"#/components/schemas/{kind.capitalize()}Event" for kind in EVENT_TYPES
                },
            },
        },
        "BatchRequest": {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": config["MAX_BATCH_EVENTS"],
                    "items": schema_ref("BatchEvent"),
                },
                "sentAt": {
                    "anyOf": [time, {"type": "null"}],
                    "description": "When the batch was sent, for events without their own; "
                    "null is none. A bad value refuses every event." + time_words,
                },
                "writeKey": {"description": "The write key, if not sent in `Authorization`."},
            },
        },
    }
