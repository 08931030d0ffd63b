"""The declarations agree with the hand-written checks: examples accepted, parameter limits kept.

The collector and the recommendation views keep their own (faster) checks; the document is
generated from the declarations. These tests hold the two together: every example the document
shows fits its schema and the collector accepts it; each recommendation parameter's documented
edge values are accepted and one past them is a 400 naming the parameter.
"""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from pydantic import Field
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from webapp.config import DEFAULTS
from webapp.errors import ApiError
from webapp.openapi.document import build_document
from webapp.openapi.parse import parse_json
from webapp.openapi.schema import ApiModel

DOCUMENT_URI = "urn:ecrm:openapi"
DOCUMENT = build_document(
    "http://localhost", {name: default for name, (default, _) in DEFAULTS.items()}
)
COLLECTOR = ("/v1/batch", "/v1/import", "/v1/track", "/v1/page", "/v1/identify", "/v1/alias")
COLLECTOR += ("/v1/screen", "/v1/group")
MAX_N = DEFAULTS["RECS_MAX_N"][0]


def validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at this JSON pointer of the document."""
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(DOCUMENT))
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=registry)


def escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def shown_examples() -> list[tuple[str, object]]:
    """Every example of a body or a parameter, with the pointer of its schema."""
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":  # a path item's own (none are written so today)
                continue
            base = f"/paths/{escape(path)}/{method}"
            for i, parameter in enumerate(operation.get("parameters", [])):
                if "example" in parameter and parameter.get("style") != "form":
                    found.append((f"{base}/parameters/{i}/schema", parameter["example"]))
            bodies = [("requestBody", operation.get("requestBody", {}))]
            bodies += [(f"responses/{s}", r) for s, r in operation["responses"].items()]
            for where, body in bodies:
                for media, content in body.get("content", {}).items():
                    pointer = f"{base}/{where}/content/{escape(media)}/schema"
                    if "example" in content:
                        found.append((pointer, content["example"]))
                    for example in content.get("examples", {}).values():
                        found.append((pointer, example["value"]))
    return found


@pytest.mark.parametrize(("pointer", "example"), shown_examples())
def test_every_example_fits_its_schema(pointer, example):
    errors = [e.message for e in validator(pointer).iter_errors(example)]
    assert not errors, (pointer, errors)


def test_every_collector_example_is_accepted(client, site):
    for path in COLLECTOR:
        for media, content in DOCUMENT["paths"][path]["post"]["requestBody"]["content"].items():
            response = client.post(
                path,
                json=content["example"],
                headers={"Content-Type": media},
                auth=(site.write_key, ""),
            )
            assert response.status_code == 200, (path, media, response.get_json())
            assert "rejected" not in response.get_json(), (path, response.get_json())


def documented_valid(path: str, query: dict[str, str]) -> bool:
    """Whether the document's parameter schemas accept these query values."""
    operation = DOCUMENT["paths"][path]["get"]
    for i, parameter in enumerate(operation["parameters"]):
        pointer = f"/paths/{escape(path)}/get/parameters/{i}/schema"
        if parameter["in"] == "path":  # the route's own: a path the route took is valid
            continue
        if parameter.get("style") == "form":  # the exploded object: its names are the keys
            value = {name: query[name] for name in ("user_id", "anonymous_id") if name in query}
        elif parameter["name"] in query:
            value = query[parameter["name"]]
            if parameter["schema"].get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    return False
        elif parameter.get("required"):
            return False
        else:
            continue
        if not validator(pointer).is_valid(value):
            return False
    return True


IDS = ",".join(f"sku-{i}" for i in range(100))
EDGES = [
    ("/v1/recommendations", {"user_id": "x" * 255}, None),
    ("/v1/recommendations", {"user_id": "x" * 256}, "user_id"),
    ("/v1/recommendations", {"anonymous_id": "a\x00"}, "anonymous_id"),
    ("/v1/recommendations", {}, "user_id"),
    ("/v1/recommendations", {"user_id": "u", "n": "1"}, None),
    ("/v1/recommendations", {"user_id": "u", "n": str(MAX_N)}, None),
    ("/v1/recommendations", {"user_id": "u", "n": str(MAX_N + 1)}, "n"),
    ("/v1/recommendations", {"user_id": "u", "n": "0"}, "n"),
    ("/v1/recommendations", {"user_id": "u", "n": "ten"}, "n"),
    ("/v1/recommendations", {"user_id": "u", "placement": "p" * 64}, None),
    ("/v1/recommendations", {"user_id": "u", "placement": "p" * 65}, "placement"),
    ("/v1/recommendations", {"user_id": "u", "placement": "a b"}, "placement"),
    ("/v1/recommendations", {"user_id": "u", "category": "c" * 500}, None),
    ("/v1/recommendations", {"user_id": "u", "category": "c" * 501}, "category"),
    ("/v1/recommendations", {"user_id": "u", "category": "c\x00"}, "category"),
    ("/v1/recommendations", {"user_id": "u", "exclude": IDS}, None),
    ("/v1/recommendations", {"user_id": "u", "exclude": IDS + ",x"}, "exclude"),
    ("/v1/recommendations", {"user_id": "u", "exclude": "x" * 255}, None),
    ("/v1/recommendations", {"user_id": "u", "exclude": "x" * 256}, "exclude"),
    ("/v1/recommendations", {"user_id": "u", "user_hash": "h" * 128}, None),
    ("/v1/recommendations", {"user_id": "u", "user_hash": "h" * 129}, "user_hash"),
    ("/v1/recommendations", {"user_id": "u", "item_id": "x" * 256}, "item_id"),
    ("/v1/items/sku-1/similar", {"n": str(MAX_N)}, None),
    ("/v1/items/sku-1/similar", {"n": str(MAX_N + 1)}, "n"),
    ("/v1/items/sku-1/similar", {"anonymous_id": "a" * 256}, "anonymous_id"),
    ("/v1/items/sku-1/similar", {"user_hash": "h\x00"}, "user_hash"),
    ("/v1/customers/c-1/similar", {"k": "100"}, None),
    ("/v1/customers/c-1/similar", {"k": "101"}, "k"),
    ("/v1/customers/c-1/similar", {"k": "0", "n": "5"}, "k"),
    ("/v1/customers/c-1/similar", {"placement": "p" * 65}, "placement"),
]
TEMPLATES = {"items": "/v1/items/{item_id}/similar", "customers": "/v1/customers/{user_id}/similar"}


@pytest.mark.parametrize(("path", "query", "bad_field"), EDGES)
def test_recommendation_parameters_agree_with_the_views(client, site, path, query, bad_field):
    template = TEMPLATES.get(path.split("/")[2], path)
    assert documented_valid(template, query) is (bad_field is None), (path, query)
    response = client.get(
        path, query_string=query, headers={"Authorization": f"Bearer {site.server_key}"}
    )
    if bad_field is None:
        assert response.status_code == 200, response.get_json()
    else:
        assert response.status_code == 400
        assert response.get_json()["error"]["field"] == bad_field


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0", "include_hidden": "maybe", "cursor": "x"}, "limit"),
        ({"include_hidden": "maybe", "cursor": "x", "q": "a\x00"}, "include_hidden"),
        ({"cursor": "not-a-cursor", "q": "x" * 201}, "cursor"),
        ({"cursor": "", "category": "c\x00"}, "cursor"),
        ({"q": "a\x00" + "x" * 300, "category": "c\x00"}, "q"),
    ],
)
def test_catalogue_list_names_the_first_bad_parameter_as_before(client, site, query, field):
    """The declared model checks in the order the hand-written checks did."""
    response = client.get(
        "/v1/items", query_string=query, headers={"Authorization": f"Bearer {site.server_key}"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_parse_json_names_the_field_by_its_json_path():
    """New endpoints validate bodies with their declared model: a 400 naming the exact field."""

    class Line(ApiModel):
        price: float = Field(ge=0)

    class Order(ApiModel):
        lines: list[Line]

    assert parse_json(Order, {"lines": [{"price": 1.5}]}).lines[0].price == 1.5
    with pytest.raises(ApiError) as refused:
        parse_json(Order, {"lines": [{"price": 1}, {"price": -1}]})
    assert (refused.value.status, refused.value.field) == (400, "body.lines[1].price")
    assert refused.value.reason == "Input should be greater than or equal to 0"
