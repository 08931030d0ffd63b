"""The catalogue's operations (secret server key): items the shop sells."""

from __future__ import annotations

from typing import Any

from tracking.catalogue import FIELDS as ITEM_FIELDS
from tracking.catalogue import MAX_BULK_ITEMS, TEXT_LIMITS
from webapp.catalogue import DEFAULT_LIST_LIMIT, MAX_BODY_BYTES, MAX_LIST_LIMIT, MAX_QUERY
from webapp.openapi.events import NO_NUL, NOT_BLANK
from webapp.openapi.parts import (
    SERVER_KEY,
    curl,
    error_response,
    json_content,
    query,
    schema_ref,
)

EXAMPLE_ITEM = {
    "title": "Blue mug",
    "category": "Home/Kitchen",
    "price": 12.5,
    "currency": "EUR",
    "url": "https://shop.example/p/sku-0001",
    "image_url": "https://shop.example/i/sku-0001.jpg",
    "in_stock": True,
    "active": True,
    "attributes": {"colour": "blue"},
}

ITEM_ID = {
    "name": "item_id",
    "in": "path",
    "required": True,
    "description": "The shop's own item id. Ids may contain `/`: send it plain or "
    "percent-encoded (`%2F`), both address the same item. (An id ending in `/similar` can be "
    "written and hidden here, but `GET` of it answers similar items: find it with "
    "`GET /v1/items?q=`.)",
    "schema": {"type": "string", "maxLength": TEXT_LIMITS["item_id"]},
    "example": "sku-0001",
}


BAD_ID = error_response(
    400,
    f"The item id in the path holds a NUL character or is over {TEXT_LIMITS['item_id']} "
    "characters.",
    "invalid_request",
    "item_id",
    "contains a NUL character (%00)",
)

# Empty, or starting with http://, https:// or / (ECMA and Python regexes alike).
URL = "^\\s*(?:$|https?://|/)[^\\x00]*$"
FLAG = {
    "anyOf": [
        {"type": "boolean"},
        {
            "type": "string",
            "pattern": "^\\s*(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|0|1)"
            "\\s*$",
        },
    ]
}


def _text(limit: int, description: str, nullable: bool = True) -> dict[str, Any]:
    # Numbers are taken as text too; NUL is refused (PostgreSQL text cannot hold it).
    kinds: list[dict[str, Any]] = [
        {"type": "string", "maxLength": limit, "pattern": NO_NUL},
        {"type": "integer", "exclusiveMinimum": -1e18, "exclusiveMaximum": 1e18},
    ]
    if nullable:
        kinds.append({"type": "null"})
    return {"anyOf": kinds, "description": description}


def _required_text(limit: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "maxLength": limit, "pattern": NOT_BLANK},
            {"type": "integer", "exclusiveMinimum": -1e18, "exclusiveMaximum": 1e18},
        ]
    }


def _url(limit: int) -> dict[str, Any]:
    return {
        "type": ["string", "null"],
        "maxLength": limit,
        "pattern": URL,
        "description": "An http(s) URL or a path.",
    }


def schemas() -> dict[str, dict]:
    """The item as written and as read, and the catalogue's answers."""
    common = {
        "category": _text(TEXT_LIMITS["category"], "A path such as `Music/Jazz`."),
        "currency": {
            "type": ["string", "null"],
            "pattern": "^[A-Za-z]{3}$",
            "description": "ISO 4217; stored upper-case.",
        },
        "url": _url(TEXT_LIMITS["url"]),
        "image_url": _url(TEXT_LIMITS["image_url"]),
        "attributes": {
            "anyOf": [
                {"type": "object"},
                {"type": "string", "contentMediaType": "application/json"},
                {"enum": [None, "", False, 0]},
            ],
            "description": "Free JSON, at most 16 KB: an object, or a string holding one "
            "(a 422 otherwise); null, empty, false or 0: none.",
        },
    }
    item_input = {
        "type": "object",
        "description": "An item to write. Unknown fields are refused.",
        "additionalProperties": False,
        "required": ["title"],
        "properties": {
            "item_id": _required_text(TEXT_LIMITS["item_id"]),
            "title": _required_text(TEXT_LIMITS["title"]),
            **common,
            "price": {
                "anyOf": [
                    {"type": "number", "minimum": 0, "exclusiveMaximum": 999999999999.995},
                    {"type": "string", "pattern": "^ *([0-9]{1,11}(\\.[0-9]*)?)? *$"},
                    {"type": "null"},
                ],
                "description": "A number (or numeric string; empty: none), kept to 2 decimals; "
                "under 1e12 once rounded to cents.",
            },
            "in_stock": {**FLAG, "default": True},
            "active": {**FLAG, "default": True},
        },
    }
    item = {
        "type": "object",
        "required": [*ITEM_FIELDS, "hidden"],
        "properties": {
            "item_id": {"type": "string"},
            "title": {"type": "string"},
            **common,
            "price": {"type": ["number", "null"]},
            "in_stock": {"type": "boolean"},
            "active": {"type": "boolean"},
            "hidden": {"type": "boolean", "description": "Hidden by DELETE; never recommended."},
        },
    }
    return {
        "ItemInput": item_input,
        "Item": item,
        "ItemsUpsertRequest": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {
                    "type": "array",
                    "maxItems": MAX_BULK_ITEMS,
                    "items": {"allOf": [schema_ref("ItemInput")], "required": ["item_id"]},
                }
            },
        },
        "ItemWritten": {
            "type": "object",
            "required": ["success", "item"],
            "properties": {"success": {"const": True}, "item": schema_ref("Item")},
        },
        "ItemsUpserted": {
            "type": "object",
            "required": ["success", "upserted"],
            "properties": {"success": {"const": True}, "upserted": {"type": "integer"}},
        },
        "ItemList": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": schema_ref("Item")},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass it as `cursor` for the next page; null on the last.",
                },
            },
        },
        "ItemHidden": {
            "type": "object",
            "required": ["success", "item_id", "hidden"],
            "properties": {
                "success": {"const": True},
                "item_id": {"type": "string"},
                "hidden": {"const": True},
            },
        },
    }


def _errors(*statuses: int) -> dict[str, dict]:
    table = {
        400: error_response(
            400,
            "The body is not JSON, `items` is missing, or the item id in the path is invalid.",
            "invalid_json",
            "body",
            "not valid JSON (unexpected character: line 1 column 1 (char 0))",
        ),
        401: error_response(
            401,
            "No server key, or an unknown or revoked one.",
            "unauthorized",
            "Authorization",
            "unknown or revoked server key",
        ),
        403: error_response(
            403,
            "The secret server key was sent from a web page on another site (the request "
            "carries `Origin` or `Sec-Fetch-Site: cross-site`): browsers use the write key.",
            "server_key_in_browser",
            "Authorization",
            "the secret server key is refused from web pages (this request carries "
            "Sec-Fetch-Site: cross-site); browsers must use the site's public write key, and the "
            "server key must stay on your server (if a page held it, replace it)",
        ),
        404: error_response(
            404,
            "No such item in this site's catalogue.",
            "not_found",
            "item_id",
            "no item 'sku-0001' in this site's catalogue",
        ),
        413: error_response(
            413,
            f"Body over {MAX_BODY_BYTES:,} bytes, or more than {MAX_BULK_ITEMS:,} items.",
            "too_large",
            "items",
            f"more than {MAX_BULK_ITEMS} items",
        ),
        415: error_response(
            415,
            "Content-Type other than application/json.",
            "unsupported_media",
            "Content-Type",
            "must be application/json",
        ),
        422: error_response(
            422,
            "An item breaks the schema; `field` is its path (nothing is written).",
            "invalid_item",
            "body.price",
            "must be a number from 0 to 1e12 (exclusive)",
        ),
    }
    return {str(status): table[status] for status in statuses}


def paths(server: str) -> dict[str, dict]:
    """The catalogue's operations."""
    item_path = "/v1/items/sku-0001"
    example_item = {"item_id": "sku-0001", **EXAMPLE_ITEM, "hidden": False}
    return {
        "/v1/items": {
            "get": {
                "tags": ["Catalogue"],
                "operationId": "listItems",
                "summary": "List or search the catalogue",
                "description": "Items in `item_id` order, a page at a time. Paging is by "
                "cursor (keyset on `item_id`), stable under writes: an item that exists "
                "throughout a listing is returned exactly once however items are added, "
                "changed or hidden between pages; items added behind the cursor appear in the "
                "next listing. Hidden items are left out unless `include_hidden=true`.",
                "security": SERVER_KEY,
                "parameters": [
                    query(
                        "limit",
                        "Items per page.",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIST_LIMIT,
                            "default": DEFAULT_LIST_LIMIT,
                        },
                        20,
                    ),
                    query(
                        "cursor",
                        "`next_cursor` of the previous page (opaque).",
                        {"type": "string", "minLength": 1},
                    ),
                    query(
                        "q",
                        "Case-insensitive text in `item_id` or `title` (`%` and `_` are "
                        "literal; case folding covers ASCII letters on SQLite).",
                        {"type": "string", "maxLength": MAX_QUERY},
                        "mug",
                    ),
                    query(
                        "category",
                        "A category and what lies under it: `Home` matches `Home` and "
                        "`Home/Kitchen`, not `Homeware`.",
                        {"type": "string", "maxLength": TEXT_LIMITS["category"]},
                        "Home",
                    ),
                    query(
                        "include_hidden",
                        "Also list items hidden with `DELETE`.",
                        {"type": "string", "enum": ["true", "false", "1", "0"], "default": "false"},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "One page; `next_cursor` is null on the last.",
                        "content": json_content(
                            schema_ref("ItemList"),
                            {"items": [example_item], "next_cursor": "aTE6c2t1LTAwMDE"},
                        ),
                    },
                    "400": error_response(
                        400,
                        "A parameter is out of range; `field` names it.",
                        "invalid_request",
                        "limit",
                        f"must be a whole number from 1 to {MAX_LIST_LIMIT}",
                    ),
                    **_errors(401, 403),
                },
                "x-codeSamples": [
                    curl(
                        server,
                        "GET",
                        "/v1/items",
                        auth="server",
                        query="q=mug&category=Home&limit=20",
                    )
                ],
            },
            "post": {
                "tags": ["Catalogue"],
                "operationId": "upsertItems",
                "summary": f"Create or replace up to {MAX_BULK_ITEMS:,} items",
                "description": "All or nothing: one invalid item and nothing is written. "
                "Upserting a hidden item shows it again.",
                "security": SERVER_KEY,
                "requestBody": {
                    "required": True,
                    "content": json_content(
                        schema_ref("ItemsUpsertRequest"),
                        {"items": [{"item_id": "sku-0001", **EXAMPLE_ITEM}]},
                    ),
                },
                "responses": {
                    "200": {
                        "description": "Every item written.",
                        "content": json_content(
                            schema_ref("ItemsUpserted"), {"success": True, "upserted": 1}
                        ),
                    },
                    **_errors(400, 401, 403, 413, 415, 422),
                },
                "x-codeSamples": [
                    curl(
                        server,
                        "POST",
                        "/v1/items",
                        auth="server",
                        body={"items": [{"item_id": "sku-0001", **EXAMPLE_ITEM}]},
                    )
                ],
            },
        },
        "/v1/items/{item_id}": {
            "parameters": [ITEM_ID],
            "get": {
                "tags": ["Catalogue"],
                "operationId": "getItem",
                "summary": "Read one item",
                "description": "Hidden items are answered too, with `hidden: true`.",
                "security": SERVER_KEY,
                "responses": {
                    "200": {
                        "description": "The item.",
                        "content": json_content(
                            schema_ref("Item"),
                            {"item_id": "sku-0001", **EXAMPLE_ITEM, "hidden": False},
                        ),
                    },
                    "400": BAD_ID,
                    **_errors(401, 403, 404),
                },
                "x-codeSamples": [curl(server, "GET", item_path, auth="server")],
            },
            "put": {
                "tags": ["Catalogue"],
                "operationId": "putItem",
                "summary": "Create or replace one item",
                "description": "`item_id` comes from the path (if the body has one it must "
                "match). Fields left out take their defaults. Shows a hidden item again.",
                "security": SERVER_KEY,
                "requestBody": {
                    "required": True,
                    "content": json_content(schema_ref("ItemInput"), EXAMPLE_ITEM),
                },
                "responses": {
                    "200": {
                        "description": "The item as stored.",
                        "content": json_content(
                            schema_ref("ItemWritten"),
                            {
                                "success": True,
                                "item": {"item_id": "sku-0001", **EXAMPLE_ITEM, "hidden": False},
                            },
                        ),
                    },
                    **_errors(400, 401, 403, 413, 415, 422),
                },
                "x-codeSamples": [curl(server, "PUT", item_path, auth="server", body=EXAMPLE_ITEM)],
            },
            "delete": {
                "tags": ["Catalogue"],
                "operationId": "hideItem",
                "summary": "Hide one item",
                "description": "The item stays in order history but is never recommended; a "
                "later upsert shows it again.",
                "security": SERVER_KEY,
                "responses": {
                    "200": {
                        "description": "Hidden.",
                        "content": json_content(
                            schema_ref("ItemHidden"),
                            {"success": True, "item_id": "sku-0001", "hidden": True},
                        ),
                    },
                    "400": BAD_ID,
                    **_errors(401, 403, 404),
                },
                "x-codeSamples": [curl(server, "DELETE", item_path, auth="server")],
            },
        },
    }
