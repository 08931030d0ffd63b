"""The Segment event shapes the collector accepts (JSON Schema 2020-12), and their examples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracking.events import EVENT_TYPES, MAX_ID_LENGTH, MAX_MESSAGE_ID_LENGTH, MAX_NAME_LENGTH
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
        "timestamp": "2026-11-20T10:00:00.000Z",
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
    "sentAt": "2026-11-20T10:00:01.000Z",
}


def _event(kind: str, description: str, properties: dict, required: list[str]) -> dict:
    own: dict[str, Any] = {
        "type": {
            "type": "string",
            "enum": [kind],
            "description": "Required in a batch; set by the path in a single call.",
        },
        **properties,
    }
    branch: dict[str, Any] = {"type": "object", "properties": own}
    if required:
        branch["required"] = required
    return {
        "title": f"{kind} event",
        "description": description,
        "allOf": [schema_ref("Event"), branch],
    }


def schemas(config: Mapping[str, Any]) -> dict[str, dict]:
    """The Segment event schemas, with this configuration's limits."""
    identifier = {"type": ["string", "integer"], "maxLength": MAX_ID_LENGTH}
    name = {"type": "string", "maxLength": MAX_NAME_LENGTH}
    obj = {"type": "object"}
    hours = config["FUTURE_TOLERANCE_SECONDS"] // 3600
    time = {
        "type": "string",
        "maxLength": 40,
        "description": "ISO 8601; without a zone it is UTC.",
        "examples": ["2026-11-20T10:00:00.000Z"],
    }
    event = {
        "type": "object",
        "description": "The fields every Segment event shares. `anonymousId` or `userId` is "
        f"required. `timestamp` may be at most {hours} hours ahead and not before 2000. Values "
        f"nest at most {config['MAX_JSON_DEPTH']} levels; strings must not contain NUL; numbers "
        "must be below 1e18 in magnitude. Other fields are kept as sent.",
        "properties": {
            "messageId": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_MESSAGE_ID_LENGTH,
                "description": "A UUID, made up when absent; stored once per (site, messageId).",
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
            "writeKey": {"type": "string", "description": "The write key, if not sent as Basic."},
        },
        "anyOf": [{"required": ["anonymousId"]}, {"required": ["userId"]}],
    }
    product = {
        "type": "object",
        "description": "A product in an Ecommerce event (Segment Ecommerce Spec V2).",
        "properties": {
            "product_id": {"type": ["string", "integer"]},
            "sku": {"type": "string"},
            "name": {"type": "string"},
            "category": {"type": "string"},
            "price": {"type": "number"},
            "quantity": {"type": "integer", "minimum": 0, "default": 1},
        },
    }
    order = {
        "type": "object",
        "description": "`Order Completed` properties; they become rows in orders and "
        "order_lines, so `order_id` is required.",
        "required": ["order_id"],
        "properties": {
            "order_id": {"type": ["string", "integer"], "minLength": 1},
            **{amount: {"type": ["number", "null"]} for amount in ORDER_AMOUNTS},
            "currency": {"type": "string"},
            "products": {"type": "array", "items": schema_ref("Product")},
        },
    }
    track = _event(
        "track",
        "A user action: Ecommerce names such as `Product Viewed`, `Product Added`, "
        "`Order Completed` feed the recommender.",
        {
            "event": {**name, "minLength": 1, "description": "The action's name."},
            "properties": obj,
        },
        ["event"],
    )
    track["if"] = {"properties": {"event": {"const": "Order Completed"}}, "required": ["event"]}
    track["then"] = {"properties": {"properties": schema_ref("OrderCompletedProperties")}}
    return {
        "Event": event,
        "TrackEvent": track,
        "PageEvent": _event(
            "page",
            "A page view.",
            {"name": name, "category": {"type": "string"}, "properties": obj},
            [],
        ),
        "IdentifyEvent": _event(
            "identify", "Who the user is: links `anonymousId` to `userId`.", {"traits": obj}, []
        ),
        "AliasEvent": _event(
            "alias",
            "Merge two identities: `previousId` becomes `userId`.",
            {"previousId": identifier},
            ["previousId", "userId"],
        ),
        "ScreenEvent": _event(
            "screen", "A screen view in an app.", {"name": name, "properties": obj}, []
        ),
        "GroupEvent": _event(
            "group",
            "Associate the user with a group (a company, an account).",
            {"groupId": identifier, "traits": obj},
            ["groupId"],
        ),
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
                "writeKey": {"type": "string", "description": "The write key, if not Basic."},
            },
        },
    }
