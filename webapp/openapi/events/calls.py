"""The Segment calls and batches as typed pydantic models, built per configuration.

The limits come from the configuration (hours ahead, nesting depth, events per batch) and the
time pattern from the clock's year, so the models are declared per set of those values and
cached. ``models(config)`` gives them; ``schemas(config)`` is their component schemas.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)
from pydantic.json_schema import Examples, models_json_schema
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType

from tracking.events import EVENT_TYPES
from webapp.openapi.events.patterns import FIRST_DAY, LAST_DAY, MAX_TIME_LENGTH, time_pattern
from webapp.openapi.events.values import (
    EventName,
    Identifier,
    JsonObject,
    JsonValue,
    MessageId,
    Name,
    NulFree,
    OrderCompletedProperties,
    PresentId,
    Product,
    TrackProperties,
    UsuallyText,
)
from webapp.openapi.schema import REF, ApiModel, DocumentSchema

ORDER_COMPLETED = "Order Completed"
EXAMPLE_TIME = "2025-11-20T10:00:00.000Z"
SINGLE_CALL = " In a single call the path decides the type; a `type` in the body is ignored."
ID_WORDS = (
    "A string is normalised to NFC (its length counted after), an integer is kept as its "
    "decimal string; `null` counts as absent."
)
NAME_WORDS = "No control characters (C0, DEL, C1)."
IP_WORDS = (
    "Any key named `ip`, `ip_address` or `ipAddress` (any case, at any depth) holding an IP "
    "address is truncated (IPv4 to /24, IPv6 to /48) before anything is stored, and dropped if "
    "it holds anything else."
)
TIME_WORDS = (
    f" ISO 8601 as Python reads it, 4 to {MAX_TIME_LENGTH} characters; without a zone it is "
    f"UTC. Any time outside {FIRST_DAY} to {LAST_DAY} in UTC is refused (422). The pattern "
    "shows the usual forms from 2001 to last year, all inside that range."
)
PRESENT_ID = TypeAdapter(PresentId, config=ApiModel.model_config)
# The component schemas in the document's order (models first seen through references too).
ORDER = (
    "JsonValue",
    "JsonObject",
    "Event",
    *(f"{kind.capitalize()}Call" for kind in EVENT_TYPES),
    *(f"{kind.capitalize()}Event" for kind in EVENT_TYPES),
    "TrackProperties",
    "Product",
    "OrderCompletedProperties",
    "BatchEvent",
    "BatchRequest",
)


def _limits(config: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """The values the models depend on: hours ahead, depth, batch size, the time pattern's year."""
    return (
        config["FUTURE_TOLERANCE_SECONDS"] // 3600,
        config["MAX_JSON_DEPTH"],
        config["MAX_BATCH_EVENTS"],
        datetime.now(UTC).year - 1,
    )


def models(config: Mapping[str, Any]) -> dict[str, type[BaseModel]]:
    """The event models with this configuration's limits, by component name."""
    return _declare(*_limits(config))


def schemas(config: Mapping[str, Any]) -> dict[str, dict]:
    """The Segment event schemas, with this configuration's limits.

    Every keyword here is one tracking/events.py enforces, and nothing schema-valid is refused
    except by the rules stated in words (the clock window, the order lines' totals, the nesting
    depth, the event's size); tests/test_openapi_limits.py sends each limit and one past it.
    """
    return copy.deepcopy(_schemas(*_limits(config)))  # a document may be changed by its user


@functools.cache
def _schemas(*limits: int) -> dict[str, dict]:
    found = _declare(*limits)
    _, top = models_json_schema(
        [(model, "validation") for model in found.values()],
        ref_template=REF,
        schema_generator=DocumentSchema,
    )
    defs = top["$defs"]
    assert defs.keys() == set(ORDER), sorted(defs)  # a renamed model would change the document
    return {name: defs[name] for name in ORDER}


@functools.cache
def _declare(hours: int, max_depth: int, max_batch: int, last_year: int) -> dict[str, type]:
    """Declare the models for one set of limits (classes are cached, not rebuilt per call)."""
    Time = Annotated[str, Field(pattern=time_pattern(last_year)), Examples([EXAMPLE_TIME])]
    Event = _event_model(hours, max_depth, Time)

    class TrackCall(Event):
        __doc__ = (
            "A user action: Ecommerce names such as `Product Viewed`, `Product Added`, "
            "`Order Completed` feed the recommender." + SINGLE_CALL
        )
        model_config = ConfigDict(title="track call")

        event: EventName = Field(description="The action's name: not blank, no control characters.")
        properties: TrackProperties | None = None

        @model_validator(mode="before")
        @classmethod
        def _order(cls, data: Any) -> Any:
            if isinstance(data, Mapping) and data.get("event") == ORDER_COMPLETED:
                if data.get("properties") is None:
                    raise ValueError(f"`{ORDER_COMPLETED}` needs properties")
                OrderCompletedProperties.model_validate(data["properties"])
            return data

        @staticmethod
        def more_keywords(schema_of: Callable[[CoreSchema], dict]) -> dict:
            """An order's properties are an order's (the validator above)."""
            order = schema_of(OrderCompletedProperties.__pydantic_core_schema__)
            return {
                "if": {"properties": {"event": {"const": ORDER_COMPLETED}}, "required": ["event"]},
                "then": {"required": ["properties"], "properties": {"properties": order}},
            }

    class PageCall(Event):
        __doc__ = "A page view." + SINGLE_CALL
        model_config = ConfigDict(title="page call")

        category: UsuallyText = None

    class IdentifyCall(Event):
        __doc__ = "Who the user is: links `anonymousId` to `userId`." + SINGLE_CALL
        model_config = ConfigDict(title="identify call")

    class AliasCall(Event):
        __doc__ = (
            "Merge two identities: `previousId` becomes `userId`; both required (not null)."
            + SINGLE_CALL
        )
        model_config = ConfigDict(title="alias call")

        previousId: PresentId
        userId: PresentId

    class ScreenCall(Event):
        __doc__ = "A screen view in an app." + SINGLE_CALL
        model_config = ConfigDict(title="screen call")

    class GroupCall(Event):
        __doc__ = (
            "Associate the user with a group (a company, an account); `groupId` is required "
            "(not null)." + SINGLE_CALL
        )
        model_config = ConfigDict(title="group call")

        groupId: PresentId

    calls = {
        "track": TrackCall,
        "page": PageCall,
        "identify": IdentifyCall,
        "alias": AliasCall,
        "screen": ScreenCall,
        "group": GroupCall,
    }
    assert tuple(calls) == EVENT_TYPES
    batched = {kind: _batched(kind, call) for kind, call in calls.items()}
    BatchEvent = TypeAliasType(
        "BatchEvent",
        Annotated[
            functools.reduce(lambda a, b: a | b, batched.values()),
            Field(
                discriminator="type",
                description="One event of any type; `type` says which.",
                json_schema_extra={"required": ["type"]},
            ),
        ],
    )

    class BatchRequest(ApiModel):
        batch: list[BatchEvent] = Field(min_length=1, max_length=max_batch)
        sentAt: Time | None = Field(
            None,
            description="When the batch was sent, for events without their own; null is none. "
            "A bad value refuses every event." + TIME_WORDS,
        )
        writeKey: Any = Field(None, description="The write key, if not sent in `Authorization`.")

    return {
        "JsonObject": JsonObject,
        "Event": Event,
        **{model.__name__: model for model in calls.values()},
        **{model.__name__: model for model in batched.values()},
        "TrackProperties": TrackProperties,
        "Product": Product,
        "OrderCompletedProperties": OrderCompletedProperties,
        "BatchRequest": BatchRequest,
    }


def _event_model(hours: int, max_depth: int, Time: Any) -> type[ApiModel]:
    """The fields every event shares, with these limits (hours ahead, nesting depth, times)."""

    class Event(ApiModel):
        __doc__ = (
            "The fields every Segment event shares. `anonymousId` or `userId` is required "
            f"(not null). `timestamp`, corrected for the client's clock (`timestamp + "
            f"receivedAt - sentAt`), must be after 2000 and at most {hours} hours ahead, or the "
            f"event is rejected (422 when no event of the request is valid). Values nest at "
            f"most {max_depth} levels; strings and keys must not contain NUL; numbers must be "
            "below 1e18 in magnitude. `event` and `name`, `properties`, `traits`, `context` and "
            "`integrations`, and the four ids are checked on every type. Other fields are kept "
            "as sent."
        )
        model_config = ConfigDict(extra="allow")
        __pydantic_extra__: dict[NulFree, JsonValue]

        messageId: MessageId | None = Field(
            None,
            description="A UUID, made up when absent or null; stored once per (site, "
            "messageId). Normalised to NFC, its length counted after.",
        )
        anonymousId: Identifier = Field(None, description="The visitor's id (cookie). " + ID_WORDS)
        userId: Identifier = Field(None, description="The customer's id in the shop. " + ID_WORDS)
        previousId: Identifier = Field(None, description="The former id (alias). " + ID_WORDS)
        groupId: Identifier = Field(None, description="The group's id (group). " + ID_WORDS)
        event: Name | None = Field(None, description="The action's name (track). " + NAME_WORDS)
        name: Name | None = Field(None, description="The page's or screen's name. " + NAME_WORDS)
        properties: JsonObject | None = None
        traits: JsonObject | None = Field(
            None, description="What is known of the user or group. " + IP_WORDS
        )
        context: JsonObject | None = Field(
            None,
            description="page, userAgent, locale, screen, campaign, library... `ip` is replaced "
            "by the request's truncated address. " + IP_WORDS,
        )
        integrations: JsonObject | None = None
        timestamp: Time = Field(
            None, description="When it happened, by the client's clock." + TIME_WORDS
        )
        sentAt: Time = Field(
            None, description="When the client sent it (clock-skew correction)." + TIME_WORDS
        )
        originalTimestamp: Time = Field(
            None, description="The client's time when there is no `timestamp`." + TIME_WORDS
        )
        writeKey: Any = Field(
            None, description="The write key, if not sent in `Authorization` (which wins)."
        )
        type: Any = Field(
            None,
            description="The kind of event: in a batch, one of "
            + ", ".join(f"`{kind}`" for kind in EVENT_TYPES)
            + "; in a single call the path decides and this is ignored.",
        )

        @model_validator(mode="after")
        def _an_id_is_present(self):
            if self.anonymousId is None and self.userId is None:
                raise ValueError("anonymousId or userId is required (not null)")
            return self

        @staticmethod
        def more_keywords(schema_of: Callable[[CoreSchema], dict]) -> dict:
            """Either id present and not null (the validator above)."""
            present = schema_of(PRESENT_ID.core_schema)
            return {
                "anyOf": [
                    {"required": [name], "properties": {name: present}}
                    for name in ("anonymousId", "userId")
                ]
            }

    return Event


def _batched(kind: str, call: type[BaseModel]) -> type[BaseModel]:
    """The call as an event of a batch: the same fields, and ``type`` saying which."""
    name = f"{kind.capitalize()}Event"
    namespace = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"A `{kind}` event in a batch.",
        "__annotations__": {"type": Literal[kind]},
        "model_config": ConfigDict(title=f"{kind} event"),
        "type": Field(description="Which kind of event."),
    }
    return type(name, (call,), namespace)
