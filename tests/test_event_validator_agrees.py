"""The collector's own validator agrees with the event schemas: examples fit, patterns hold.

The collector validates events with hand-written code (tracking/events.py, the hot path); the
schemas are generated from the pydantic models. tests/test_openapi_limits.py sends every
documented length and number limit; this file walks the same document the same way for the
other keywords: each ``examples`` value is accepted and stored, each ``pattern`` (values and
keys) and ``const`` is enforced (a sample that fits is stored, one that does not is refused
naming the field), and the examples the document shows pass ``validate_event`` directly.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests import test_openapi_limits as limits
from tests.conftest import drain
from tracking.events import EVENT_TYPES, Limits, parse_time, validate_event
from webapp.openapi.document import JSON_PATH, build_document
from webapp.openapi.events import EXAMPLE_BATCH, EXAMPLE_EVENTS
from webapp.openapi.events.patterns import (
    CURRENCY,
    NAME_TEXT,
    NO_CONTROL,
    NO_NUL,
    NOT_BLANK,
    time_pattern,
)

DOCUMENT = build_document("http://localhost", limits.CONFIG)


def reachable(keyword: str) -> list[limits.Limit]:
    """Each ``keyword`` reachable from a collector operation's body, at its first way in.

    test_openapi_limits' walk (references, combinators, the order's branch, items, extra keys)
    collects the keywords it is given: here, others than the numeric ones.
    """
    found: list[limits.Limit] = []
    with mock.patch.object(limits, "LIMIT_KEYWORDS", (keyword,)):
        for operation in limits.BASES:
            schema = DOCUMENT["paths"][operation]["post"]["requestBody"]["content"]
            walk = (schema["application/json"]["schema"], "", operation, (), frozenset(), found)
            limits._walk(DOCUMENT, *walk)
    first: dict[str, limits.Limit] = {}
    for place in found:
        first.setdefault(place.pointer, place)
    return list(first.values())


# For each pattern the document states: a value it matches and one it does not, the second
# refused by the validator as well. A pattern without a row here fails the coverage test.
SAMPLES: dict[str, tuple[str, str]] = {
    NO_NUL: ("x", "x\x00"),
    NOT_BLANK: ("x", "\u3000"),
    NO_CONTROL: ("Home", "Home\x85"),
    NAME_TEXT: ("Product Viewed", "Product Viewed\n"),
    CURRENCY: ("eur", "EURO"),
    time_pattern(datetime.now(UTC).year - 1): ("2025-11-20T10:00:00Z", "2025-11-20T10:00:00Z\n"),
}
PATTERNS = reachable("pattern")
# Keys: an event and every JSON object in it refuse a key with NUL (propertyNames). Where keys
# arrive: the event itself, an object field, a nested object, an order line, a batch's event.
KEY_PLACES = [
    ("/v1/track", ()),
    ("/v1/track", ("context",)),
    ("/v1/track", ("properties", "x")),
    ("/v1/track", ("properties", "products", 0)),
    ("/v1/batch", ("batch", 0, "traits")),
]
CONSTS = reachable("const")
EXAMPLES = [(place, example) for place in reachable("examples") for example in place.bound]


@pytest.fixture
def app_config(app_config):
    """The test app with the configuration the document was built with."""
    return {**app_config, "MAX_BATCH_EVENTS": limits.CONFIG["MAX_BATCH_EVENTS"]}


def document_validator(document: dict, operation: str) -> Draft202012Validator:
    """A validator of the operation's request body, references resolved in the document."""
    registry = Registry().with_resource(limits.DOCUMENT_URI, DRAFT202012.create_resource(document))
    pointer = limits.request_schema_pointer(operation)
    return Draft202012Validator({"$ref": f"{limits.DOCUMENT_URI}#{pointer}"}, registry=registry)


def assert_stored(app, client, site, operation: str, body: dict) -> None:
    """The body fits the document, is answered 200 and every event in it is stored."""
    assert not [e.message for e in document_validator(DOCUMENT, operation).iter_errors(body)]
    accepted = client.post(operation, json=body, auth=(site.write_key, ""))
    assert accepted.status_code == 200, accepted.get_json()
    totals = drain(app).totals
    assert (totals.stored, totals.dead_lettered) == (len(body.get("batch", [body])), 0)


def assert_refused(client, site, operation: str, body: dict, field: str) -> None:
    """The body breaks the document and is refused with a 4xx naming ``field``."""
    assert not document_validator(DOCUMENT, operation).is_valid(body)
    refused = client.post(operation, json=body, auth=(site.write_key, ""))
    assert 400 <= refused.status_code < 500, refused.get_json()
    assert refused.get_json()["error"]["field"] == field


def test_the_walk_finds_what_the_schemas_state():
    # A walk that lost its way would check little: these are the fields the schemas constrain.
    assert {x.bound for x in PATTERNS} == set(SAMPLES), "a pattern needs a row in SAMPLES"
    fields = {(x.error_field, x.bound) for x in PATTERNS}
    assert {
        ("body.messageId", NOT_BLANK),
        ("body.anonymousId", NOT_BLANK),
        ("body.event", NAME_TEXT),
        ("body.name", NO_CONTROL),
        ("body.properties.x", NO_NUL),
        ("body.properties.currency", CURRENCY),
    } <= fields
    assert {x.error_field for x in PATTERNS if x.bound not in (NOT_BLANK, NO_NUL)} >= {
        "body.timestamp",
        "body.sentAt",
        "sentAt",
    }
    components = DOCUMENT["components"]["schemas"]
    assert {name for name in components if "propertyNames" in components[name]} == {
        "Event",
        "JsonObject",
    }, "KEY_PLACES sends keys to events and JSON objects only"
    assert {x.bound for x in CONSTS} == set(EVENT_TYPES)
    assert {place.error_field for place, _ in EXAMPLES} >= {"body.timestamp", "sentAt"}


@pytest.mark.parametrize(
    "place, example", EXAMPLES, ids=[f"{x.operation} {x.error_field} {e}" for x, e in EXAMPLES]
)
def test_each_schema_example_is_accepted(app, client, site, place, example):
    assert_stored(
        app,
        client,
        site,
        place.operation,
        limits.with_value(limits.BASES[place.operation], place.field, example),
    )


@pytest.mark.parametrize(
    "place", PATTERNS, ids=[f"{x.operation} {x.error_field} {x.pointer}" for x in PATTERNS]
)
def test_each_documented_pattern_is_the_collectors(app, client, site, place):
    fits, breaks = SAMPLES[place.bound]
    base = limits.BASES[place.operation]
    assert_stored(app, client, site, place.operation, limits.with_value(base, place.field, fits))
    body = limits.with_value(base, place.field, breaks)
    assert_refused(client, site, place.operation, body, place.error_field)


@pytest.mark.parametrize("operation, field", KEY_PLACES)
def test_each_documented_key_pattern_is_the_collectors(app, client, site, operation, field):
    base = limits.BASES[operation]
    assert_stored(app, client, site, operation, limits.with_value(base, (*field, "k"), 1))
    breaks = limits.with_value(base, (*field, "k\x00"), 1)
    error_field = limits.Limit("", operation, field, "propertyNames", 0, "object").error_field
    assert_refused(client, site, operation, breaks, error_field)


@pytest.mark.parametrize("place", CONSTS, ids=[f"{x.operation} {x.bound}" for x in CONSTS])
def test_each_batch_event_type_is_the_collectors(app, client, site, place):
    # The const is the type of one kind of event: sent with that kind's example.
    kind = place.bound
    fits = {"batch": [{"type": kind, **EXAMPLE_EVENTS[kind]}]}
    assert_stored(app, client, site, place.operation, fits)
    breaks = {"batch": [{"type": kind.upper(), **EXAMPLE_EVENTS[kind]}]}
    assert_refused(client, site, place.operation, breaks, "batch[0].type")


def test_document_examples_pass_the_validator():
    received = datetime.now(UTC)
    for kind in EVENT_TYPES:
        event = copy.deepcopy(EXAMPLE_EVENTS[kind])
        checked = validate_event(
            event,
            "body",
            received_at=received,
            batch_sent_at=None,
            limits=Limits(),
            forced_type=kind,
        )
        assert checked["type"] == kind
    sent_at = parse_time(EXAMPLE_BATCH["sentAt"], "sentAt")
    for i, event in enumerate(copy.deepcopy(EXAMPLE_BATCH["batch"])):
        validate_event(
            event, f"batch[{i}]", received_at=received, batch_sent_at=sent_at, limits=Limits()
        )


def test_the_served_document_states_these_schemas(client):
    served: Any = client.get(JSON_PATH).get_json()
    assert served["components"]["schemas"] == DOCUMENT["components"]["schemas"]
