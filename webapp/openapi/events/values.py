"""The values inside events, as typed pydantic models: ids, names, JSON values, products, orders.

None of these depends on the configuration; the events that hold them do (see calls.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints
from typing_extensions import TypeAliasType

from tracking.events import (
    MAX_ID_LENGTH,
    MAX_MESSAGE_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_NUMBER,
    MAX_QUANTITY,
)
from webapp.openapi.events.patterns import (
    CURRENCY,
    MAX_INTEGER_ID,
    MIN_INTEGER_ID,
    MONEY_BOUND,
    NAME_TEXT,
    NO_CONTROL,
    NO_NUL,
    NOT_BLANK,
)
from webapp.openapi.schema import ApiModel

NulFree = Annotated[str, StringConstraints(pattern=NO_NUL)]
Number = Annotated[float, Field(gt=-MAX_NUMBER, lt=MAX_NUMBER)]


# Any JSON object (no docstring: the schema has no description). Extra keys are its content.
class JsonObject(ApiModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[NulFree, JsonValue]


JsonValue = TypeAliasType(
    "JsonValue",
    Annotated[
        NulFree | Number | bool | None | list["JsonValue"] | JsonObject,
        Field(
            description="Any JSON value without NUL in strings or keys, numbers below 1e18 in "
            "magnitude."
        ),
    ],
)


# An id as sent: text (normalised to NFC, its length counted after) or an integer the JSON
# decoder keeps as one (its decimal string); where an id is required, null is no id.
IdText = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH, pattern=NOT_BLANK)]
IdInteger = Annotated[int, Field(ge=MIN_INTEGER_ID, le=MAX_INTEGER_ID)]
PresentId = IdText | IdInteger
Identifier = IdText | IdInteger | None
MessageId = Annotated[str, StringConstraints(max_length=MAX_MESSAGE_ID_LENGTH, pattern=NOT_BLANK)]
# A name (page, screen, event) has no control character; a track event's name is not blank.
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=NO_CONTROL)]
EventName = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH, pattern=NAME_TEXT)]
Currency = Annotated[str, StringConstraints(pattern=CURRENCY)]
MONEY_WORDS = "Kept rounded to cents; under 1e12 in magnitude once rounded."
Money = Annotated[float, Field(gt=-MONEY_BOUND, lt=MONEY_BOUND, description=MONEY_WORDS)]
Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY)]


def _text_at_most(length: int):
    """A check that a string is at most ``length`` long (other values pass, as in the schema)."""

    def check(value: Any) -> Any:
        if isinstance(value, str) and len(value) > length:
            raise ValueError(f"at most {length} characters")
        return value

    return check


# Any value, kept as its text; a string is at most so long (maxLength constrains strings only).
TextId = Annotated[
    Any,
    AfterValidator(_text_at_most(MAX_ID_LENGTH)),
    Field(
        description=f"Usually a string (at most {MAX_ID_LENGTH} characters); other values "
        "are kept as their text.",
        json_schema_extra={"maxLength": MAX_ID_LENGTH},
    ),
]
UsuallyText = Annotated[Any, Field(description="Usually a string.")]


class TrackProperties(JsonObject):
    """A track event's properties."""

    product_id: TextId = None


class Product(JsonObject):
    """A product in an Ecommerce event (Segment Ecommerce Spec V2)."""

    product_id: TextId = None
    sku: TextId = None
    name: UsuallyText = None
    category: UsuallyText = None
    price: Money = Field(None, description="The unit price. " + MONEY_WORDS)
    quantity: Quantity = 1


class OrderCompletedProperties(JsonObject):
    __doc__ = (
        "`Order Completed` properties; they become rows in orders and order_lines, so "
        "`order_id` is required. Each line's `price` x `quantity`, and the sum of every "
        "line's, must be below 1e12 (once the price is rounded to cents): otherwise the event "
        "is refused (422 naming `properties.products[i].quantity`, or `properties.products` "
        "for the sum)."
    )

    order_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)] | int
    # tracking.events.MONEY_FIELDS, each one
    total: Money | None = None
    revenue: Money | None = None
    subtotal: Money | None = None
    tax: Money | None = None
    shipping: Money | None = None
    discount: Money | None = None
    currency: Currency | None = Field(
        None,
        description='ISO 4217: three ASCII letters, stored upper-cased; `""` or null for none.',
    )
    products: list[Product] = None


JsonObject.model_rebuild()
