"""Every numeric and length limit the OpenAPI document states for events is the collector's.

The table is read from the document itself (built with the configuration the test app runs
with): each ``minLength``/``maxLength``, ``minimum``/``maximum``,
``exclusiveMinimum``/``exclusiveMaximum`` and ``minItems``/``maxItems`` reachable from a
collector operation's request body. For each, a request at the limit fits the document, is
answered 200 and is stored; the same request just past it breaks the document and is refused
with a 4xx naming the field. A limit added to or changed in the document is tested as it is.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.conftest import drain
from webapp.config import DEFAULTS
from webapp.openapi.document import build_document
from webapp.openapi.health import JSON_PATH

LIMIT_KEYWORDS = (
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
)
DOCUMENT_URI = "urn:ecrm:openapi"
SCHEMAS = "#/components/schemas/"

# A valid body per collector operation, one that every conditional branch of its schema applies
# to (the track event is an order, so the order's limits are reachable), with room for a value
# at any documented field.
ORDER = {
    "event": "Order Completed",
    "anonymousId": "a-1",
    "properties": {"order_id": "o-1", "products": [{"product_id": "p-1"}]},
}
BASES: dict[str, dict[str, Any]] = {
    "/v1/track": ORDER,
    "/v1/alias": {"previousId": "a-1", "userId": "u-1"},
    "/v1/group": {"userId": "u-1", "groupId": "g-1"},
    "/v1/page": {"anonymousId": "a-1"},
    "/v1/identify": {"anonymousId": "a-1"},
    "/v1/screen": {"anonymousId": "a-1"},
    "/v1/batch": {"batch": [{"type": "track", **ORDER}]},
    "/v1/import": {"batch": [{"type": "track", **ORDER}]},
}


@dataclass(frozen=True)
class Limit:
    """One documented limit: where it is stated, where its value goes, and its bound."""

    pointer: str  # the keyword's JSON pointer in the document
    operation: str  # the collector path the request is sent to
    field: tuple[str | int, ...]  # where the value goes in the body
    keyword: str
    bound: int | float
    kind: str  # the JSON type the bound applies to

    @property
    def error_field(self) -> str:
        """The ``field`` a refusal names (a single call's body is ``body``)."""
        steps = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in self.field)
        return ("body" + steps) if self.operation != "/v1/batch" else steps.lstrip(".")


def _kind(node: dict, keyword: str) -> str:
    kinds = node.get("type", [])
    kinds = [k for k in (kinds if isinstance(kinds, list) else [kinds]) if k != "null"]
    if kinds:
        return kinds[0]
    return "string" if "Length" in keyword else "array" if "Items" in keyword else "number"


def _walk(document, node, pointer, operation, field, on_path, out: list[Limit]) -> None:
    """Collect the limits under a schema node, following references (not recursively)."""
    if not isinstance(node, dict):
        return
    if "$ref" in node:
        name = node["$ref"].removeprefix(SCHEMAS)
        if name not in on_path:
            target = document["components"]["schemas"][name]
            _walk(document, target, SCHEMAS + name, operation, field, on_path | {name}, out)
    for keyword in LIMIT_KEYWORDS:
        if keyword in node:
            out.append(
                Limit(
                    f"{pointer}/{keyword}",
                    operation,
                    field,
                    keyword,
                    node[keyword],
                    _kind(node, keyword),
                )
            )
    for combinator in ("allOf", "anyOf", "oneOf"):
        for i, part in enumerate(node.get(combinator, [])):
            walk_on = (f"{pointer}/{combinator}/{i}", operation, field, on_path, out)
            _walk(document, part, *walk_on)
    if "then" in node:  # every base body meets its schema's condition (an order)
        _walk(document, node["then"], f"{pointer}/then", operation, field, on_path, out)
    for name, part in node.get("properties", {}).items():
        _walk(
            document, part, f"{pointer}/properties/{name}", operation, (*field, name), on_path, out
        )
    if "items" in node:
        _walk(document, node["items"], f"{pointer}/items", operation, (*field, 0), on_path, out)
    if isinstance(node.get("additionalProperties"), dict):
        extra = f"{pointer}/additionalProperties"
        _walk(document, node["additionalProperties"], extra, operation, (*field, "x"), on_path, out)


def request_schema_pointer(operation: str) -> str:
    """The JSON pointer of a collector operation's request body schema."""
    return (
        f"/paths/{operation.replace('/', '~1')}/post/requestBody/content/application~1json/schema"
    )


def documented_limits(document: dict) -> list[Limit]:
    """Each limit keyword once (its first way in), with one request per distinct field."""
    found: list[Limit] = []
    for operation in BASES:  # track first: the fields every event shares are tested there
        media = document["paths"][operation]["post"]["requestBody"]["content"]
        _walk(document, media["application/json"]["schema"], "", operation, (), frozenset(), found)
    pointers, requests, limits = set(), set(), []
    for limit in found:
        request = (limit.field, limit.keyword, limit.bound)
        if limit.pointer not in pointers and request not in requests:
            limits.append(limit)
        pointers.add(limit.pointer)
        requests.add(request)
    return limits


# The defaults, but a smaller batch: the document states the configured maximum (see
# test_limits_are_the_configured_ones), and 2,500 events at the limit would only cost time.
CONFIG = {name: default for name, (default, _) in DEFAULTS.items()} | {"MAX_BATCH_EVENTS": 25}
LIMITS = documented_limits(build_document("http://localhost", CONFIG))


@pytest.fixture
def app_config(app_config):
    """The test app with the configuration the table was read from."""
    return {**app_config, "MAX_BATCH_EVENTS": CONFIG["MAX_BATCH_EVENTS"]}


def at_and_past(limit: Limit, current: Any) -> tuple[Any, Any]:
    """A value at the limit (the last one allowed) and one just past it."""
    bound, integer = limit.bound, limit.kind == "integer"
    if limit.keyword == "maxLength":
        return "x" * bound, "x" * (bound + 1)
    if limit.keyword == "minLength":
        return "x" * bound, "x" * (bound - 1)
    if limit.keyword == "maxItems":
        return [current[0]] * bound, [current[0]] * (bound + 1)
    if limit.keyword == "minItems":
        return [current[0]] * bound, [current[0]] * (bound - 1)
    if limit.keyword == "maximum":
        return bound, bound + 1 if integer else math.nextafter(bound, math.inf)
    if limit.keyword == "minimum":
        return bound, bound - 1 if integer else math.nextafter(bound, -math.inf)
    if limit.keyword == "exclusiveMaximum":
        if integer:
            return math.ceil(bound) - 1, math.ceil(bound)
        return math.nextafter(bound, -math.inf), bound
    if integer:  # exclusiveMinimum
        return math.floor(bound) + 1, math.floor(bound)
    return math.nextafter(bound, math.inf), bound


def with_value(base: dict, field: tuple[str | int, ...], value: Any) -> dict:
    """A copy of the body with ``value`` at ``field``."""
    body = copy.deepcopy(base)
    node: Any = body
    for step in field[:-1]:
        node = node[step] if isinstance(step, int) else node.setdefault(step, {})
    node[field[-1]] = value
    return body


def value_at(body: dict, field: tuple[str | int, ...]) -> Any:
    node: Any = body
    for step in field:
        node = node[step]
    return node


def test_the_table_covers_the_limits_the_validator_enforces():
    # A walk that lost its way (a renamed component, a limit moved into words) would test little.
    fields = {(limit.error_field, limit.keyword) for limit in LIMITS}
    assert {
        ("body.messageId", "maxLength"),
        ("body.anonymousId", "maxLength"),
        ("body.anonymousId", "maximum"),
        ("body.groupId", "maxLength"),
        ("body.event", "maxLength"),
        ("body.name", "maxLength"),
        ("body.properties.x", "exclusiveMaximum"),
        ("body.properties.product_id", "maxLength"),
        ("body.properties.order_id", "minLength"),
        ("body.properties.total", "exclusiveMaximum"),
        ("body.properties.discount", "exclusiveMinimum"),
        ("body.properties.products[0].price", "exclusiveMaximum"),
        ("body.properties.products[0].quantity", "maximum"),
        ("body.properties.products[0].quantity", "minimum"),
        ("body.properties.products[0].sku", "maxLength"),
        ("batch", "maxItems"),
        ("batch", "minItems"),
    } <= fields


@pytest.mark.parametrize(
    "limit", LIMITS, ids=[f"{x.operation} {x.error_field} {x.keyword}" for x in LIMITS]
)
def test_each_documented_limit_is_the_collectors(app, client, site, limit):
    document = client.get(JSON_PATH).get_json()
    node: Any = document
    for step in limit.pointer.removeprefix("#/").split("/"):
        node = node[int(step)] if isinstance(node, list) else node[step]
    assert node == limit.bound, "the served document states another bound"
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(document))
    schema = {"$ref": f"{DOCUMENT_URI}#{request_schema_pointer(limit.operation)}"}
    validator = Draft202012Validator(schema, registry=registry)
    base = BASES[limit.operation]
    at, past = at_and_past(limit, value_at(base, limit.field) if "Items" in limit.keyword else None)

    body = with_value(base, limit.field, at)
    assert not [e.message for e in validator.iter_errors(body)], "at the limit breaks the document"
    accepted = client.post(limit.operation, json=body, auth=(site.write_key, ""))
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json() == {"success": True}
    totals = drain(app).totals
    assert (totals.stored, totals.dead_lettered) == (len(body.get("batch", [body])), 0)

    body = with_value(base, limit.field, past)
    assert not validator.is_valid(body), "past the limit still fits the document"
    refused = client.post(limit.operation, json=body, auth=(site.write_key, ""))
    assert 400 <= refused.status_code < 500, refused.get_json()
    assert refused.get_json()["error"]["field"] == limit.error_field


# Values where the document and the validator once disagreed (a Python validator reads `$` as
# "end, or before a final newline"; null ids; types the validator never checks), or nearly do
# (Python's white space is not ECMA's \s). Each is sent and checked against the document.
EDGES = [
    ("/v1/track", ("event",), "Order\n", False),  # a control character, even last
    ("/v1/track", ("event",), "\ufeff", True),  # not white space to Python's strip
    ("/v1/track", ("event",), "\u3000", False),  # white space only
    ("/v1/page", ("name",), "Home\n", False),
    ("/v1/page", ("name",), "Home\x85", False),  # C1
    ("/v1/page", ("name",), " ", True),  # a name may be blank, an event name may not
    ("/v1/page", ("anonymousId",), "\x1c", False),  # white space to Python's strip
    ("/v1/page", ("userId",), "u-1", True),
    ("/v1/track", ("anonymousId",), None, False),  # null is no id
    ("/v1/track", ("timestamp",), "2025-11-20T10:00:00Z\n", False),
    ("/v1/track", ("properties", "currency"), "EUR\n", False),
    ("/v1/track", ("properties", "currency"), "eur", True),  # stored upper-cased
    ("/v1/track", ("properties", "currency"), "", True),
    ("/v1/track", ("properties", "currency"), None, True),
    ("/v1/track", ("properties", "currency"), "EURO", False),
    ("/v1/track", ("properties", "products", 0, "product_id"), ["p", 1], True),  # kept as text
    ("/v1/track", ("properties", "products", 0, "quantity"), None, False),
    ("/v1/page", ("type",), "\x00", True),  # a single call's type is ignored, never stored
    ("/v1/batch", ("sentAt",), None, True),
]


@pytest.mark.parametrize(
    "operation, field, value, valid", EDGES, ids=[f"{e[0]} {e[1]} {e[2]!r}" for e in EDGES]
)
def test_document_and_collector_agree_on_edge_values(client, site, operation, field, value, valid):
    document = client.get(JSON_PATH).get_json()
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(document))
    schema = {"$ref": f"{DOCUMENT_URI}#{request_schema_pointer(operation)}"}
    body = with_value(BASES[operation], field, value)
    assert Draft202012Validator(schema, registry=registry).is_valid(body) is valid
    response = client.post(operation, json=body, auth=(site.write_key, ""))
    assert (response.status_code == 200) is valid, response.get_json()
