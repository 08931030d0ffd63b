"""The catalogue's operations (secret server key): list, upsert, read, replace and hide items.

The item's models are in :mod:`webapp.openapi.items`. The list's query and the item path models
here also validate requests (:mod:`webapp.openapi.parse`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from tracking.catalogue import MAX_BULK_ITEMS, TEXT_LIMITS
from webapp.openapi.items import (
    EXAMPLE_ITEM,
    STORED_ITEM,
    Item,
    ItemHidden,
    ItemInput,
    ItemList,
    ItemsUpserted,
    ItemsUpsertRequest,
    ItemWritten,
)
from webapp.openapi.parts import SERVER_KEY, error, sample
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply, RequestBody

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_LIST_LIMIT = 200
DEFAULT_LIST_LIMIT = 50
MAX_QUERY = 200
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
CURSOR_PREFIX = b"i1:"


def _no_nul(value: Any) -> Any:
    """NUL is refused before any length is counted."""
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError("reason", "contains a NUL character (%00)")
    return value


def _whole_number(value: Any) -> Any:
    """Digits only (no sign, space or underscore), and few enough to read quickly."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 4):
        raise PydanticCustomError("not_digits", "not a whole number")
    return value


def encode_cursor(item_id: str) -> str:
    """An opaque cursor: where the next page starts (after this item id)."""
    return base64.urlsafe_b64encode(CURSOR_PREFIX + item_id.encode()).decode().rstrip("=")


def _cursor_item(cursor: str) -> str:
    """The item id a cursor from :func:`encode_cursor` holds; a 400 naming ``cursor`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        item_id = raw.removeprefix(CURSOR_PREFIX).decode() if raw.startswith(CURSOR_PREFIX) else ""
    except (binascii.Error, ValueError, UnicodeDecodeError):
        item_id = ""
    if not item_id or "\x00" in item_id or len(item_id) > TEXT_LIMITS["item_id"]:
        raise PydanticCustomError("cursor", "not a cursor from this API")
    return item_id


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class ItemPath(ApiModel):
    """The item routes' path parameter (validated by the views too)."""

    item_id: Annotated[str, BeforeValidator(_no_nul)] = Field(
        max_length=TEXT_LIMITS["item_id"],
        description="The shop's own item id. Ids may contain `/`: send it plain or "
        "percent-encoded (`%2F`), both address the same item. (An id ending in `/similar` can "
        "be written and hidden here, but `GET` of it answers similar items: find it with "
        "`GET /v1/items?q=`.)",
        examples=["sku-0001"],
    )

    reasons: ClassVar[dict[str, str]] = {
        "item_id": f"longer than {TEXT_LIMITS['item_id']} characters"
    }


class ListItemsQuery(ApiModel):
    """The list's query parameters, as documented and as the view validates them."""

    limit: Annotated[int, BeforeValidator(_whole_number)] = Field(
        DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT, description="Items per page.", examples=[20]
    )
    # Validated into the item id it holds (the page starts after it).
    cursor: Annotated[str, AfterValidator(_cursor_item)] = Field(
        None, min_length=1, description="`next_cursor` of the previous page (opaque)."
    )
    q: Annotated[str, BeforeValidator(_no_nul)] = Field(
        None,
        max_length=MAX_QUERY,
        description="Case-insensitive text in `item_id` or `title` (`%` and `_` are literal; "
        "case folding covers ASCII letters on SQLite).",
        examples=["mug"],
    )
    category: Annotated[str, BeforeValidator(_no_nul)] = Field(
        None,
        max_length=TEXT_LIMITS["category"],
        description="A category and what lies under it: `Home` matches `Home` and "
        "`Home/Kitchen`, not `Homeware`.",
        examples=["Home"],
    )
    include_hidden: Annotated[Literal["true", "false", "1", "0"], BeforeValidator(_lower)] = Field(
        "false", description="Also list items hidden with `DELETE`."
    )

    # The reasons the API answers (a 400 naming the field); see webapp/openapi/parse.py.
    reasons: ClassVar[dict[str, str]] = {
        "limit": f"must be a whole number from 1 to {MAX_LIST_LIMIT}",
        "cursor": "not a cursor from this API; pass next_cursor as given",
        "q": f"longer than {MAX_QUERY} characters",
        "category": f"longer than {TEXT_LIMITS['category']} characters",
        "include_hidden": "must be true or false",
    }
    empty_is_absent: ClassVar[tuple[str, ...]] = ("q", "category")
    check_order: ClassVar[tuple[str, ...]] = ("limit", "include_hidden", "cursor", "q", "category")


def _errors(*statuses: int) -> dict[int, Reply]:
    table = {
        400: error(
            400,
            "The body is not JSON, `items` is missing, or the item id in the path is invalid.",
            "invalid_json",
            "body",
            "not valid JSON (unexpected character: line 1 column 1 (char 0))",
        ),
        401: error(
            401,
            "No server key, or an unknown or revoked one.",
            "unauthorized",
            "Authorization",
            "unknown or revoked server key",
        ),
        403: error(
            403,
            "The secret server key was sent from a web page on another site (the request "
            "carries `Origin` or `Sec-Fetch-Site: cross-site`): browsers use the write key.",
            "server_key_in_browser",
            "Authorization",
            "the secret server key is refused from web pages (this request carries "
            "Sec-Fetch-Site: cross-site); browsers must use the site's public write key, and the "
            "server key must stay on your server (if a page held it, replace it)",
        ),
        404: error(
            404,
            "No such item in this site's catalogue.",
            "not_found",
            "item_id",
            "no item 'sku-0001' in this site's catalogue",
        ),
        413: error(
            413,
            f"Body over {MAX_BODY_BYTES:,} bytes, or more than {MAX_BULK_ITEMS:,} items.",
            "too_large",
            "items",
            f"more than {MAX_BULK_ITEMS} items",
        ),
        415: error(
            415,
            "Content-Type other than application/json.",
            "unsupported_media",
            "Content-Type",
            "must be application/json",
        ),
        422: error(
            422,
            "An item breaks the schema; `field` is its path (nothing is written).",
            "invalid_item",
            "body.price",
            "must be a number from 0 to 1e12 (exclusive)",
        ),
    }
    return {status: table[status] for status in statuses}


BAD_ID = error(
    400,
    f"The item id in the path holds a NUL character or is over {TEXT_LIMITS['item_id']} "
    "characters.",
    "invalid_request",
    "item_id",
    "contains a NUL character (%00)",
)
ONE = "/v1/items/{item_id}"
SAMPLE_PATH = "/v1/items/sku-0001"
UPSERT_EXAMPLE = {"items": [{"item_id": "sku-0001", **EXAMPLE_ITEM}]}


def operations() -> list[Operation]:
    """The catalogue's operations."""
    return [
        Operation(
            "get",
            "/v1/items",
            "listItems",
            "Catalogue",
            "List or search the catalogue",
            "Items in `item_id` order, a page at a time. Paging is by cursor (keyset on "
            "`item_id`), stable under writes: an item that exists throughout a listing is "
            "returned exactly once however items are added, changed or hidden between pages; "
            "items added behind the cursor appear in the next listing. Hidden items are left "
            "out unless `include_hidden=true`.",
            SERVER_KEY,
            {
                200: Reply(
                    "One page; `next_cursor` is null on the last.",
                    ItemList,
                    {"items": [STORED_ITEM], "next_cursor": "aTE6c2t1LTAwMDE"},
                ),
                400: error(
                    400,
                    "A parameter is out of range; `field` names it.",
                    "invalid_request",
                    "limit",
                    f"must be a whole number from 1 to {MAX_LIST_LIMIT}",
                ),
                **_errors(401, 403),
            },
            query=ListItemsQuery,
            samples=(
                sample("GET", "/v1/items", auth="server", query="q=mug&category=Home&limit=20"),
            ),
        ),
        Operation(
            "post",
            "/v1/items",
            "upsertItems",
            "Catalogue",
            f"Create or replace up to {MAX_BULK_ITEMS:,} items",
            "All or nothing: one invalid item and nothing is written. Upserting a hidden item "
            "shows it again.",
            SERVER_KEY,
            {
                200: Reply("Every item written.", ItemsUpserted, {"success": True, "upserted": 1}),
                **_errors(400, 401, 403, 413, 415, 422),
            },
            body=RequestBody(ItemsUpsertRequest, UPSERT_EXAMPLE),
            samples=(sample("POST", "/v1/items", auth="server", body=UPSERT_EXAMPLE),),
        ),
        Operation(
            "get",
            ONE,
            "getItem",
            "Catalogue",
            "Read one item",
            "Hidden items are answered too, with `hidden: true`.",
            SERVER_KEY,
            {200: Reply("The item.", Item, STORED_ITEM), 400: BAD_ID, **_errors(401, 403, 404)},
            path_params=ItemPath,
            samples=(sample("GET", SAMPLE_PATH, auth="server"),),
        ),
        Operation(
            "put",
            ONE,
            "putItem",
            "Catalogue",
            "Create or replace one item",
            "`item_id` comes from the path (if the body has one it must match). Fields left out "
            "take their defaults. Shows a hidden item again.",
            SERVER_KEY,
            {
                200: Reply(
                    "The item as stored.", ItemWritten, {"success": True, "item": STORED_ITEM}
                ),
                **_errors(400, 401, 403, 413, 415, 422),
            },
            path_params=ItemPath,
            body=RequestBody(ItemInput, EXAMPLE_ITEM),
            samples=(sample("PUT", SAMPLE_PATH, auth="server", body=EXAMPLE_ITEM),),
        ),
        Operation(
            "delete",
            ONE,
            "hideItem",
            "Catalogue",
            "Hide one item",
            "The item stays in order history but is never recommended; a later upsert shows it "
            "again.",
            SERVER_KEY,
            {
                200: Reply(
                    "Hidden.", ItemHidden, {"success": True, "item_id": "sku-0001", "hidden": True}
                ),
                400: BAD_ID,
                **_errors(401, 403, 404),
            },
            path_params=ItemPath,
            samples=(sample("DELETE", SAMPLE_PATH, auth="server"),),
        ),
    ]
