"""The event schemas pydantic generates from the models equal the hand-written ones they replaced.

tests/data/event_schemas_before_rooms.json is ``webapp.openapi.events.schemas`` as built from
hand-written dictionaries before issue 11 (the configuration's defaults, frozen in 2026, so its
time pattern runs to 2025). Intended differences from it: none.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from tracking.events import EVENT_TYPES, MONEY_FIELDS
from webapp.config import DEFAULTS
from webapp.openapi import events
from webapp.openapi.events.patterns import MONEY_BOUND, time_pattern

FROZEN = Path(__file__).parent / "data" / "event_schemas_before_rooms.json"
FROZEN_YEAR = 2025  # the time pattern's last year when the copy was frozen
CONFIG = {name: default for name, (default, _) in DEFAULTS.items()}


def frozen_schemas() -> dict:
    """The frozen schemas, their time pattern moved on to this year's (it ends last year)."""
    text = FROZEN.read_text()
    then, now = (
        json.dumps(time_pattern(year)) for year in (FROZEN_YEAR, datetime.now(UTC).year - 1)
    )
    assert then in text, "the frozen copy's time pattern is not time_pattern(2025)"
    return json.loads(text.replace(then, now))


def test_generated_schemas_equal_the_hand_written_ones():
    before, after = frozen_schemas(), events.schemas(CONFIG)
    assert after == before
    # Equal as JSON too: same key for key, an integer still an integer (1e18 == 10**18 in Python).
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_schemas_keep_the_components_order():
    assert list(events.schemas(CONFIG))[:3] == ["JsonValue", "JsonObject", "Event"]
    assert list(events.schemas(CONFIG))[-2:] == ["BatchEvent", "BatchRequest"]


def test_models_are_built_per_configuration_and_cached():
    models = events.models(CONFIG)
    assert events.models(dict(CONFIG)) is models
    assert all(issubclass(model, BaseModel) for model in models.values())
    assert set(models) == set(events.schemas(CONFIG)) - {"JsonValue", "BatchEvent"}

    small = {**CONFIG, "MAX_BATCH_EVENTS": 3, "FUTURE_TOLERANCE_SECONDS": 2 * 3600}
    other = events.models(small)
    assert other["BatchRequest"] is not models["BatchRequest"]
    assert other["Product"] is models["Product"]  # no limit of the configuration in it
    assert events.schemas(small)["BatchRequest"]["properties"]["batch"]["maxItems"] == 3
    assert "at most 2 hours ahead" in events.schemas(small)["Event"]["description"]
    track = {"type": "track", **events.EXAMPLE_EVENTS["track"]}
    other["BatchRequest"].model_validate({"batch": [track] * 3})
    with pytest.raises(ValidationError):
        other["BatchRequest"].model_validate({"batch": [track] * 4})


def test_the_models_accept_the_examples():
    models = events.models(CONFIG)
    for kind in EVENT_TYPES:
        call = models[f"{kind.capitalize()}Call"]
        assert isinstance(call.model_validate(events.EXAMPLE_EVENTS[kind]), call)
    batch = models["BatchRequest"].model_validate(events.EXAMPLE_BATCH)
    assert [type(event).__name__ for event in batch.batch] == ["TrackEvent", "TrackEvent"]


@pytest.mark.parametrize(
    "model, body, field",
    [
        ("PageCall", {"name": "Home"}, ()),  # anonymousId or userId
        ("PageCall", {"anonymousId": None, "userId": None}, ()),
        ("AliasCall", {"previousId": "a-1"}, ("userId",)),
        ("GroupCall", {"userId": "u-1", "groupId": None}, ("groupId",)),
        ("TrackCall", {"anonymousId": "a-1", "event": "\u3000"}, ("event",)),
        ("PageCall", {"anonymousId": "a-1", "name": "Home\n"}, ("name",)),
        ("PageCall", {"anonymousId": "a-1", "k\x00": 1}, ("k\x00",)),
        ("PageCall", {"anonymousId": "a-1", "timestamp": "2025-11-20T10:00:00Z\n"}, ("timestamp",)),
        ("TrackCall", {"anonymousId": "a-1", "event": "Order Completed"}, ()),
        (
            "TrackCall",
            {"anonymousId": "a-1", "event": "Order Completed", "properties": {"currency": "EUR"}},
            ("order_id",),
        ),
        ("Product", {"quantity": -1}, ("quantity",)),
        ("Product", {"sku": "x" * 256}, ("sku",)),
        ("OrderCompletedProperties", {"order_id": "o-1", "currency": "EURO"}, ("currency",)),
        ("OrderCompletedProperties", {"order_id": "o-1", "total": 1e12}, ("total",)),
        ("TrackProperties", {"x": 1e18}, ("x",)),
        ("BatchRequest", {"batch": []}, ("batch",)),
        ("BatchRequest", {"batch": [{"type": "bogus", "anonymousId": "a-1"}]}, ("batch", 0)),
    ],
)
def test_the_models_refuse_what_the_schemas_refuse(model, body, field):
    with pytest.raises(ValidationError) as refused:
        events.models(CONFIG)[model].model_validate(body)
    assert refused.value.errors()[0]["loc"][: len(field)] == field


def test_the_order_money_fields_are_the_validators():
    order = events.schemas(CONFIG)["OrderCompletedProperties"]["allOf"][1]["properties"]
    money = {name for name, schema in order.items() if "exclusiveMaximum" in str(schema)}
    assert money == set(MONEY_FIELDS)
    assert all(order[name]["anyOf"][0]["exclusiveMaximum"] == MONEY_BOUND for name in money)
