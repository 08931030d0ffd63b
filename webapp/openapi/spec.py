"""The declaration machinery: one Operation per endpoint, and the OpenAPI paths it generates.

An :class:`Operation` names its method, path, tag, texts and security, a pydantic model for its
path and query parameters, its request body and its responses (``{status: Reply}`` or the name
of a shared response). :func:`render` turns a list of them into the document's ``paths`` and the
component schemas of every model they use (pydantic's JSON Schema is OpenAPI 3.1's dialect).
A body or reply may also name a component schema written elsewhere (the Segment events).

Adding an operation is a model or two (subclasses of :class:`webapp.openapi.schema.ApiModel`,
whose generator writes their schemas) and one declaration, listed in document.operations()::

    class Segment(ApiModel):
        segment_id: str
        size: int = Field(ge=0, description="Customers in it today.")

    Operation("get", "/v1/segments/{segment_id}", "getSegment", "Segments", "Read one segment",
              "...", SERVER_KEY, {200: Reply("The segment.", Segment), 404: error(...)},
              path_params=SegmentPath, samples=(sample("GET", "/v1/segments/vip", auth="server"),))

The view validates with the same models (:mod:`webapp.openapi.parse`). A body model's docstring
is its description in the reference; a parameter's ``description`` and first of ``examples`` are
the parameter's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webapp.openapi.schema import REF, DocumentSchema, parent_model

JSON = ("application/json",)
# Models named with a leading underscore are parts of another schema: written inline, not as
# components of their own.
INLINE = "_"


Body = type[BaseModel] | str | dict  # a model, a component schema's name, or a schema


@dataclass(frozen=True)
class Reply:
    """One response: its description, body schema and examples, headers, media types."""

    description: str
    body: Body | None = None
    example: Any = None
    examples: dict[str, Any] | None = None
    headers: dict[str, Any] | None = None
    media: tuple[str, ...] = JSON


@dataclass(frozen=True)
class RequestBody:
    """A request body: its schema, one example, the media types it is accepted as."""

    schema: Body
    example: Any = None
    media: tuple[str, ...] = JSON


@dataclass(frozen=True)
class Operation:
    """One endpoint, declared once: the document is generated from this."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    description: str
    security: list[dict[str, list]]
    responses: dict[int, Reply | str]
    path_params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    parameters: tuple[dict[str, Any], ...] = ()  # written out (the pixel's encoded event)
    body: RequestBody | None = None
    samples: tuple[Callable[[str], dict[str, str]], ...] = ()


def _schema(body: Body) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    return {"$ref": REF.format(model=body if isinstance(body, str) else body.__name__)}


def _content(schema: Body, media: tuple[str, ...], example: Any, examples: Any) -> dict:
    entry: dict[str, Any] = {"schema": _schema(schema)}
    if example is not None:
        entry["example"] = example
    if examples is not None:
        entry["examples"] = examples
    return {media_type: dict(entry) for media_type in media}


def _reply(reply: Reply | str) -> dict[str, Any]:
    if isinstance(reply, str):
        return {"$ref": f"#/components/responses/{reply}"}
    rendered: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        rendered["headers"] = reply.headers
    if reply.body is not None:
        rendered["content"] = _content(reply.body, reply.media, reply.example, reply.examples)
    return rendered


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with references to ``defs`` written out in place."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    target = node.get("$ref", "")
    name = target.removeprefix(REF.format(model=""))
    if name in defs:
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return {**_inline(defs[name], defs), **rest}
    return {key: _inline(value, defs) for key, value in node.items()}


def parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    """One parameter per field: its description and first example beside its schema.

    A field's ``json_schema_extra`` may hold ``parameter`` (e.g. ``style``) for the parameter
    itself rather than its schema.
    """
    return copy.deepcopy(_parameters(model, where))


@lru_cache(maxsize=64)  # models are made once (per configuration): so is their schema
def _parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    generated = model.model_json_schema(ref_template=REF, schema_generator=DocumentSchema)
    defs = generated.get("$defs", {})
    required = set(generated.get("required", ()))
    found = []
    for name, schema in generated["properties"].items():
        schema = _inline(schema, defs)
        parameter: dict[str, Any] = {"name": name, "in": where}
        if name in required or where == "path":
            parameter["required"] = True
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        parameter.update(schema.pop("parameter", {}))
        if "examples" in schema:
            parameter["example"] = schema.pop("examples")[0]
        parameter["schema"] = schema
        found.append(parameter)
    return found


def _operation(op: Operation, server: str) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "tags": [op.tag],
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": op.description,
        "security": op.security,
    }
    found = []
    if op.path_params is not None:
        found += parameters(op.path_params, "path")
    if op.query is not None:
        found += parameters(op.query, "query")
    found += op.parameters
    if found:
        rendered["parameters"] = found
    if op.body is not None:
        rendered["requestBody"] = {
            "required": True,
            "content": _content(op.body.schema, op.body.media, op.body.example, None),
        }
    rendered["responses"] = {str(status): _reply(r) for status, r in op.responses.items()}
    if op.samples:
        rendered["x-codeSamples"] = [sample(server) for sample in op.samples]
    return rendered


def _models(operations: Iterable[Operation]) -> list[type[BaseModel]]:
    """Every model a body or a reply uses, once, in the order first used."""
    found: dict[type[BaseModel], None] = {}
    for op in operations:
        bodies = [op.body.schema] if op.body else []
        bodies += [r.body for r in op.responses.values() if isinstance(r, Reply)]
        for body in bodies:
            while isinstance(body, type) and issubclass(body, BaseModel):
                found[body] = None
                body = parent_model(body)
    return list(found)


def component_schemas(models: Iterable[type[BaseModel]]) -> dict[str, dict[str, Any]]:
    """The component schemas of these models and of every model they use.

    Models whose names start with ``_`` are written inline where they are used.
    """
    return copy.deepcopy(_component_schemas(tuple(models)))


@lru_cache(maxsize=8)
def _component_schemas(models: tuple[type[BaseModel], ...]) -> dict[str, dict[str, Any]]:
    pairs = [(model, "validation") for model in models]
    _, top = models_json_schema(pairs, ref_template=REF, schema_generator=DocumentSchema)
    defs = top.get("$defs", {})
    clashes = [name for name in defs if "__" in name]  # pydantic's way of telling two apart
    if clashes:
        raise ValueError(f"two declared models share a name ({clashes}); rename one")
    parts = {name: schema for name, schema in defs.items() if name.startswith(INLINE)}
    return {name: _inline(schema, parts) for name, schema in defs.items() if name not in parts}


def render(
    operations: list[Operation], server: str
) -> tuple[dict[str, dict], dict[str, dict[str, Any]]]:
    """The document's ``paths`` and the component schemas of the models they use."""
    paths: dict[str, dict] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, server)
    return paths, component_schemas(_models(operations))
