"""The catalogue's operations (secret server key): items the shop sells, as written and read.

The list's query model also validates requests (:func:`webapp.openapi.parse.parse_query`); an
item's body is validated by :func:`tracking.catalogue.validate_item`, which these models describe.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from tracking.catalogue import MAX_BULK_ITEMS, TEXT_LIMITS
from webapp.openapi.events import NO_NUL, NOT_BLANK
from webapp.openapi.parts import SERVER_KEY, error, sample, schema_ref
from webapp.openapi.spec import ApiModel, Operation, Reply, RequestBody

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_LIST_LIMIT = 200
DEFAULT_LIST_LIMIT = 50
MAX_QUERY = 200
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

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
STORED_ITEM = {"item_id": "sku-0001", **EXAMPLE_ITEM, "hidden": False}

# Empty, or starting with http://, https:// or / (ECMA and Python regexes alike).
URL = "^\\s*(?:$|https?://|/)[^\\x00]*$"
FLAG_TEXT = "^\\s*(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|[Yy][Ee][Ss]|[Nn][Oo]|0|1)\\s*$"

# Numbers are taken as text too; NUL is refused (PostgreSQL text cannot hold it).
Number18 = Annotated[int, Field(gt=-1e18, lt=1e18)]
Flag = bool | Annotated[str, Field(pattern=FLAG_TEXT)]


def _text(limit: int, pattern: str = NO_NUL) -> Any:
    return Annotated[str, StringConstraints(max_length=limit, pattern=pattern)]


def _url(limit: int) -> Any:
    return Annotated[_text(limit, URL) | None, Field(description="An http(s) URL or a path.")]


Category = Annotated[
    _text(TEXT_LIMITS["category"]) | Number18 | None,
    Field(description="A path such as `Music/Jazz`."),
]
Currency = Annotated[
    Annotated[str, Field(pattern="^[A-Za-z]{3}$")] | None,
    Field(description="ISO 4217; stored upper-case."),
]
Attributes = Annotated[
    dict[str, Any]
    | Annotated[str, WithJsonSchema({"type": "string", "contentMediaType": "application/json"})]
    | Annotated[Any, WithJsonSchema({"enum": [None, "", False, 0]})],
    Field(
        description="Free JSON, at most 16 KB: an object, or a string holding one (a 422 "
        "otherwise); null, empty, false or 0: none."
    ),
]
ItemUrl, ImageUrl = _url(TEXT_LIMITS["url"]), _url(TEXT_LIMITS["image_url"])


class ItemInput(ApiModel, extra="forbid"):
    """An item to write. Unknown fields are refused."""

    item_id: _text(TEXT_LIMITS["item_id"], NOT_BLANK) | Number18 = None
    title: _text(TEXT_LIMITS["title"], NOT_BLANK) | Number18
    category: Category = None
    currency: Currency = None
    url: ItemUrl = None
    image_url: ImageUrl = None
    attributes: Attributes = None
    price: (
        Annotated[float, Field(ge=0, lt=999999999999.995)]
        | Annotated[str, Field(pattern="^ *([0-9]{1,11}(\\.[0-9]*)?)? *$")]
        | None
    ) = Field(
        None,
        description="A number (or numeric string; empty: none), kept to 2 decimals; under 1e12 "
        "once rounded to cents.",
    )
    in_stock: Flag = True
    active: Flag = True


class Item(ApiModel):
    item_id: str
    title: str
    category: Category
    currency: Currency
    url: ItemUrl
    image_url: ImageUrl
    attributes: Attributes
    price: float | None
    in_stock: bool
    active: bool
    hidden: bool = Field(description="Hidden by DELETE; never recommended.")


class ItemsUpsertRequest(ApiModel):
    items: list[
        Annotated[
            ItemInput, WithJsonSchema({"allOf": [schema_ref("ItemInput")], "required": ["item_id"]})
        ]
    ] = Field(max_length=MAX_BULK_ITEMS)


class ItemWritten(ApiModel):
    success: Literal[True]
    item: Item


class ItemsUpserted(ApiModel):
    success: Literal[True]
    upserted: int


class ItemList(ApiModel):
    items: list[Item]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` for the next page; null on the last."
    )


class ItemHidden(ApiModel):
    success: Literal[True]
    item_id: str
    hidden: Literal[True]


# The schemas this module adds to the reference, in the order it lists them.
SCHEMAS = (ItemInput, Item, ItemsUpsertRequest, ItemWritten, ItemsUpserted, ItemList, ItemHidden)


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
    cursor: str = Field(
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
