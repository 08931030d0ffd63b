"""The Segment event shapes the collector accepts (JSON Schema 2020-12), and their examples."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tracking.events import (
    EVENT_TYPES,
    MAX_ID_LENGTH,
    MAX_MESSAGE_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_NUMBER,
)
from webapp.openapi.parts import schema_ref

ORDER_AMOUNTS = ("total", "revenue", "subtotal", "tax", "shipping", "discount")

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
# A string with something besides whitespace, and no NUL (ids, names).
NOT_BLANK = "^[^\\x00]*[^\\x00\\s][^\\x00]*$"
FIRST_YEAR = 2001  # 2000-01-01 with a positive offset is still 1999 in UTC: refused


def time_pattern(last_year: int) -> str:
    """ISO 8601 times from FIRST_YEAR to the end of ``last_year``, in the forms Python parses.

    Days stop at 28 so that every month/day pair exists; the document states the window
    (2000 to 24 hours ahead) in words, the pattern is a subset every such time fits.
    """
    years = "|".join(str(y) for y in range(FIRST_YEAR, max(FIRST_YEAR, last_year) + 1))
    return (
        f"^(?:{years})-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
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
    """The Segment event schemas, with this configuration's limits."""
    id_text = {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": NOT_BLANK}
    identifier = {
        "anyOf": [
            id_text,
            {"type": "integer", "exclusiveMinimum": -MAX_NUMBER, "exclusiveMaximum": MAX_NUMBER},
            {"type": "null"},
        ]
    }
    name = {"type": ["string", "null"], "maxLength": MAX_NAME_LENGTH, "pattern": NO_NUL}
    obj = {"anyOf": [schema_ref("JsonObject"), {"type": "null"}]}
    hours = config["FUTURE_TOLERANCE_SECONDS"] // 3600
    time = {
        "type": "string",
        "maxLength": 40,
        "pattern": time_pattern(datetime.now(UTC).year - 1),
        "description": "ISO 8601; without a zone it is UTC.",
        "examples": ["2025-11-20T10:00:00.000Z"],
    }
    event = {
        "type": "object",
        "description": "The fields every Segment event shares. `anonymousId` or `userId` is "
        f"required. `timestamp`, corrected for the client's clock (`timestamp + receivedAt - "
        f"sentAt`), must be after 2000 and at most {hours} hours ahead, or the event is "
        f"rejected (422 when no event of the request is valid). Values nest at most "
        f"{config['MAX_JSON_DEPTH']} levels; strings and keys must not contain NUL; numbers "
        "must be below 1e18 in magnitude. Other fields are kept as sent.",
        "properties": {
            "messageId": {
                "type": ["string", "null"],
                "maxLength": MAX_MESSAGE_ID_LENGTH,
                "pattern": NOT_BLANK,
                "description": "A UUID, made up when absent or null; stored once per (site, "
                "messageId).",
            },
            "anonymousId": {**identifier, "description": "The visitor's id (cookie)."},
            "userId": {**identifier, "description": "The customer's id in the shop."},
            "context": {
                **obj,
                "description": "page, userAgent, locale, screen, campaign, library... `ip` is "
                "replaced by the request's truncated address.",
            },
            "integrations": obj,
            "timestamp": {**time, "description": "When it happened, by the client's clock."},
            "sentAt": {**time, "description": "When the client sent it (clock-skew correction)."},
            "originalTimestamp": time,
            "writeKey": {
                "description": "The write key, if not sent in `Authorization` (which wins)."
            },
        },
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": schema_ref("JsonValue"),
        "anyOf": [{"required": ["anonymousId"]}, {"required": ["userId"]}],
    }
    number = {
        "type": "number",
        "exclusiveMinimum": -MAX_NUMBER,
        "exclusiveMaximum": MAX_NUMBER,
    }
    product = {
        "description": "A product in an Ecommerce event (Segment Ecommerce Spec V2).",
        "allOf": [
            schema_ref("JsonObject"),
            {
                "type": "object",
                "properties": {
                    "product_id": {"type": ["string", "integer"]},
                    "sku": {"type": "string"},
                    "name": {"type": "string"},
                    "category": {"type": "string"},
                    "price": number,
                    "quantity": {
                        "type": "integer",
                        "minimum": 0,
                        "exclusiveMaximum": MAX_NUMBER,
                        "default": 1,
                    },
                },
            },
        ],
    }
    order = {
        "description": "`Order Completed` properties; they become rows in orders and "
        "order_lines, so `order_id` is required.",
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
                    **{amount: {"anyOf": [number, {"type": "null"}]} for amount in ORDER_AMOUNTS},
                    "currency": {"type": "string"},
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
                "pattern": NOT_BLANK,
                "description": "The action's name.",
            },
            "properties": obj,
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
            "page",
            "A page view.",
            {"name": name, "category": {"type": "string"}, "properties": obj},
            [],
        ),
        "IdentifyCall": _fields(
            "identify", "Who the user is: links `anonymousId` to `userId`.", {"traits": obj}, []
        ),
        "AliasCall": _fields(
            "alias",
            "Merge two identities: `previousId` becomes `userId`.",
            {"previousId": identifier},
            ["previousId", "userId"],
        ),
        "ScreenCall": _fields(
            "screen", "A screen view in an app.", {"name": name, "properties": obj}, []
        ),
        "GroupCall": _fields(
            "group",
            "Associate the user with a group (a company, an account).",
            {"groupId": identifier, "traits": obj},
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
                    **time,
                    "description": "When the batch was sent; a bad value refuses every event.",
                },
                "writeKey": {"description": "The write key, if not sent in `Authorization`."},
            },
        },
    }
