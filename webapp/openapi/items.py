"""The catalogue's item as written and as read, and the catalogue's answers (pydantic models).

An item's body is validated by :func:`tracking.catalogue.validate_item`; these models describe
what it accepts (tests/test_fuzz_openapi.py: no schema-valid item refused, no invalid one taken).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, WithJsonSchema

from tracking.catalogue import MAX_BULK_ITEMS, TEXT_LIMITS
from webapp.openapi.events import NO_NUL, NOT_BLANK
from webapp.openapi.parts import schema_ref
from webapp.openapi.schema import ApiModel

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
