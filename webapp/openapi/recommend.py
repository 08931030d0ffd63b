"""The recommendation operations: for a customer or visitor, similar items, similar customers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracking.events import MAX_ID_LENGTH
from webapp.openapi.events import NO_NUL
from webapp.openapi.parts import SERVER_KEY, curl, error_response, json_content, query, schema_ref

# At most 100 comma-separated ids of at most 255 characters (empty entries are skipped).
EXCLUDE_PATTERN = (
    f"^,*(?:[^,\\x00]{{1,{MAX_ID_LENGTH}}}(?:,+[^,\\x00]{{1,{MAX_ID_LENGTH}}}){{0,99}})?,*$"
)
SOURCES = ("personal", "similar_customers", "item_neighbours", "popular", "trending", "fallback")
SOURCES_NOTE = (
    "`source` says which link of the fallback chain answered; without a model or Redis the "
    "answer falls back to popular items and says so, never a 5xx."
)
EXAMPLE_RECOMMENDATIONS = {
    "rec_id": "5f0c6e2b9a8d4c1e8b7a6f5e4d3c2b1a",
    "model_version": "20261124T101500Z-ab12",
    "source": "personal",
    "placement": "home",
    "holdout": False,
    "items": [
        {
            "item_id": "sku-0001",
            "title": "Blue mug",
            "price": 12.5,
            "currency": "EUR",
            "url": "https://shop.example/p/sku-0001",
            "image_url": "https://shop.example/i/sku-0001.jpg",
            "reason": "bought by 7 customers like you",
            "score": 0.83,
            "position": 1,
        }
    ],
}


def schemas() -> dict[str, dict]:
    """The recommendation answers."""
    nullable_text = {"type": ["string", "null"]}
    recommended = {
        "type": "object",
        "required": [
            "item_id",
            "title",
            "price",
            "currency",
            "url",
            "image_url",
            "reason",
            "score",
            "position",
        ],
        "properties": {
            "item_id": {"type": "string"},
            "title": {"type": "string"},
            "price": {"type": ["number", "null"]},
            "currency": nullable_text,
            "url": nullable_text,
            "image_url": nullable_text,
            "reason": {"type": "string", "examples": ["bought by 7 customers like you"]},
            "score": {"type": "number"},
            "position": {"type": "integer", "minimum": 1, "description": "1 for the first."},
        },
    }
    recommendations = {
        "type": "object",
        "required": ["rec_id", "model_version", "source", "placement", "holdout", "items"],
        "properties": {
            "rec_id": {
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "New for every answer; send it back with Recommendation Shown "
                "and Recommendation Clicked events for attribution.",
            },
            "model_version": {**nullable_text, "description": "null before the first model."},
            "source": {"type": "string", "enum": list(SOURCES)},
            "placement": {"type": "string"},
            "holdout": {
                "type": "boolean",
                "description": "The visitor is in the holdout group: popular items only, to "
                "measure lift.",
            },
            "items": {"type": "array", "items": schema_ref("RecommendedItem")},
        },
    }
    return {
        "RecommendedItem": recommended,
        "Recommendations": recommendations,
        "SimilarCustomers": {
            "allOf": [
                schema_ref("Recommendations"),
                {
                    "type": "object",
                    "required": ["customers"],
                    "properties": {
                        "customers": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["user_id", "similarity"],
                                "properties": {
                                    "user_id": {"type": "string"},
                                    "similarity": {"type": "number"},
                                },
                            },
                        }
                    },
                },
            ]
        },
    }


def paths(server: str, config: Mapping[str, Any]) -> dict[str, dict]:
    """The recommendation operations."""
    max_n = config["RECS_MAX_N"]
    # Empty query values count as absent, so optional ids may be empty; NUL is refused.
    id_schema = {"type": "string", "maxLength": MAX_ID_LENGTH, "pattern": NO_NUL}
    # A path segment: the route takes any characters but a leading `/` and line breaks.
    path_id = {
        "type": "string",
        "maxLength": MAX_ID_LENGTH,
        "pattern": "^[^\\x00\\n/][^\\x00\\n]*$",
    }
    n = query(
        "n",
        "How many items (empty: the default).",
        {"type": "integer", "minimum": 1, "maximum": max_n, "default": 10},
    )
    user_id_text = (
        "The customer (Segment `userId`); personalises. With the public write key it counts only "
        "with a valid `user_hash` (unless the site turned identity verification off); otherwise "
        "the answer is the `anonymous_id`'s, or an unknown visitor's."
    )
    user_hash = query(
        "user_hash",
        "Identity verification: the hex HMAC-SHA256 of `user_id` (UTF-8) keyed with the site's "
        "identity secret, computed by the shop's server. Not needed with the server key.",
        {"type": "string", "maxLength": 128, "pattern": NO_NUL},
        "3f0c5a1e9b7d2c4a6e8f0b1d3c5e7a9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c",
    )
    anonymous_id_text = (
        "The visitor (Segment `anonymousId`): personalises visitors from their recent events and "
        "decides the sticky holdout group (`user_id` decides it when there is no `anonymous_id`)."
    )
    user_id = query("user_id", user_id_text, id_schema, "cust-00042")
    anonymous_id = query("anonymous_id", anonymous_id_text, id_schema, "a-1")
    # Both ids as one exploded form object: `?user_id=..&anonymous_id=..` on the wire, and a
    # schema that can say "at least one of them, not empty".
    who = {
        "name": "who",
        "in": "query",
        "style": "form",
        "explode": True,
        "required": True,
        "description": "`user_id` and/or `anonymous_id` (at least one, not empty) as query "
        f"parameters. `user_id`: {user_id_text} `anonymous_id`: {anonymous_id_text}",
        "schema": {
            "type": "object",
            "properties": {"user_id": id_schema, "anonymous_id": id_schema},
            "additionalProperties": False,
            "anyOf": [
                {"required": ["user_id"], "properties": {"user_id": {"minLength": 1}}},
                {"required": ["anonymous_id"], "properties": {"anonymous_id": {"minLength": 1}}},
            ],
        },
        "example": {"user_id": "cust-00042"},
    }
    placement = query(
        "placement",
        "Where the list is shown (empty: `default`); echoed in the answer and in attribution "
        "reports.",
        {"type": "string", "pattern": "^[A-Za-z0-9_-]{0,64}$", "default": "default"},
        "home",
    )
    filters = [
        placement,
        query(
            "category",
            "Only items whose category path starts with this (`Music/Jazz`).",
            {"type": "string", "maxLength": 500, "pattern": NO_NUL},
        ),
        query(
            "exclude",
            f"Comma-separated item ids to leave out (at most 100, each at most {MAX_ID_LENGTH} "
            "characters).",
            {"type": "string", "pattern": EXCLUDE_PATTERN},
            "sku-0001,sku-0002",
        ),
    ]
    # A write key (query, or Basic) needs an allowed Origin; the server key does not.
    browser_or_server = [{"writeKeyQuery": []}, {"writeKey": []}, *SERVER_KEY]
    ok_headers = {
        "Cache-Control": {"description": "`no-store`", "schema": {"type": "string"}},
        "X-Ecrm-Cache": {
            "description": "Which cache answered.",
            "schema": {"type": "string", "enum": ["local", "redis", "miss", "none"]},
        },
    }

    def ok(schema: str, example: dict) -> dict:
        return {
            "description": "The recommendations (`items` may be empty).",
            "headers": ok_headers,
            "content": json_content(schema_ref(schema), example),
        }

    not_found = error_response(
        404,
        "No such route: the id in the path starts with `/` or contains a line break.",
        "not_found",
        "path",
        "/v1/items/a%0Ab/similar does not exist",
    )

    def errors(bad_field: str, bad_reason: str) -> dict:
        return {
            "400": error_response(
                400,
                "A query parameter is invalid; `field` names it.",
                "invalid_request",
                bad_field,
                bad_reason,
            ),
            "401": error_response(
                401,
                "No key, or an unknown or revoked one (`field` is `write_key` or "
                "`Authorization`, where it was sent).",
                "unauthorized",
                "write_key",
                "unknown or revoked write key",
            ),
            "403": error_response(
                403,
                "A write key from an origin (`Origin`, else the `Referer`'s) that the site does "
                "not allow.",
                "forbidden_origin",
                "Origin",
                "https://evil.example: not an allowed origin for this write key; add it to the "
                "site, or call from your server with the secret key",
            ),
        }

    # curl sends no Origin by itself; a browser on the shop's page does.
    browser_sample = {
        "extra": ("-H 'Origin: https://shop.example'",),
        "label": "curl (as a browser: write key)",
    }
    return {
        "/v1/recommendations": {
            "get": {
                "tags": ["Recommendations"],
                "operationId": "recommendations",
                "summary": "Recommendations for a customer or a visitor",
                "description": "Personal recommendations with the site's business rules applied "
                "(purchased, hidden, inactive and out-of-stock items never shown). At least one "
                f"of `user_id` and `anonymous_id`. {SOURCES_NOTE}",
                "security": browser_or_server,
                "parameters": [
                    who,
                    user_hash,
                    n,
                    *filters,
                    query(
                        "item_id",
                        "The item on the page: left out of the results.",
                        id_schema,
                        "sku-0001",
                    ),
                ],
                "responses": {
                    "200": ok("Recommendations", EXAMPLE_RECOMMENDATIONS),
                    **errors("user_id", "give user_id or anonymous_id (or both)"),
                },
                "x-codeSamples": [
                    curl(
                        server,
                        "GET",
                        "/v1/recommendations",
                        # A browser's user_id needs its user_hash; an anonymous id does not.
                        query="anonymous_id=a-1&n=5&placement=home&write_key=$WRITE_KEY",
                        **browser_sample,
                    ),
                    curl(
                        server,
                        "GET",
                        "/v1/recommendations",
                        auth="server",
                        query="user_id=cust-00042&n=5",
                        label="curl (from a backend: server key)",
                    ),
                ],
            }
        },
        "/v1/items/{item_id}/similar": {
            "parameters": [
                {
                    "name": "item_id",
                    "in": "path",
                    "required": True,
                    "description": "The shop's item id (it may contain `/`).",
                    "schema": path_id,
                    "example": "sku-0001",
                }
            ],
            "get": {
                "tags": ["Recommendations"],
                "operationId": "similarItems",
                "summary": "Customers who bought this also bought",
                "description": "Items bought together with `item_id` (source `item_neighbours`, "
                "or a fallback), never `item_id` itself. `anonymous_id` (else `user_id`) only "
                "decides the holdout group here.",
                "security": browser_or_server,
                "parameters": [user_id, user_hash, anonymous_id, n, *filters],
                "responses": {
                    "200": ok(
                        "Recommendations", {**EXAMPLE_RECOMMENDATIONS, "source": "item_neighbours"}
                    ),
                    **errors("n", f"must be from 1 to {max_n}, got 0"),
                    "404": not_found,
                },
                "x-codeSamples": [
                    curl(
                        server,
                        "GET",
                        "/v1/items/sku-0001/similar",
                        query="anonymous_id=a-1&n=5&write_key=$WRITE_KEY",
                        **browser_sample,
                    ),
                ],
            },
        },
        "/v1/customers/{user_id}/similar": {
            "parameters": [
                {
                    "name": "user_id",
                    "in": "path",
                    "required": True,
                    "description": "The customer (Segment `userId`; it may contain `/`).",
                    "schema": path_id,
                    "example": "cust-00042",
                }
            ],
            "get": {
                "tags": ["Recommendations"],
                "operationId": "similarCustomers",
                "summary": "Customers like this one, and what they bought",
                "description": "Secret server key only. The `k` most similar customers and "
                "items they bought (source `similar_customers`, or a fallback); not cached.",
                "security": SERVER_KEY,
                "parameters": [
                    query(
                        "k",
                        "How many similar customers.",
                        {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                    ),
                    n,
                    placement,
                ],
                "responses": {
                    "200": ok(
                        "SimilarCustomers",
                        {
                            **EXAMPLE_RECOMMENDATIONS,
                            "source": "similar_customers",
                            "customers": [{"user_id": "cust-00007", "similarity": 0.91}],
                        },
                    ),
                    "400": errors("k", "must be from 1 to 100, got 500")["400"],
                    "401": error_response(
                        401,
                        "No key, or an unknown or revoked one.",
                        "unauthorized",
                        "Authorization",
                        "unknown or revoked key",
                    ),
                    "403": error_response(
                        403,
                        "A write key was sent: this call needs the secret server key.",
                        "forbidden",
                        "Authorization",
                        "this call needs the site's secret server key, not the public write key",
                    ),
                    "404": not_found,
                },
                "x-codeSamples": [
                    curl(
                        server,
                        "GET",
                        "/v1/customers/cust-00042/similar",
                        auth="server",
                        query="k=10&n=5",
                    ),
                ],
            },
        },
    }
