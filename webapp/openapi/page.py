"""Turn the OpenAPI document into what the docs page shows: operations, fields, examples."""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup, escape

METHODS = ("get", "post", "put", "patch", "delete")
SECURITY_LABELS = {
    "writeKey": "write key as HTTP Basic username",
    "writeKeyQuery": "write key as query parameter `write_key`",
    "serverKey": "server key as HTTP Basic username",
    "serverKeyBearer": "server key as Bearer token",
}
_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*([^*]+)\*\*")
_EMPHASIS = re.compile(r"\*([^*\s][^*]*)\*")


def inline(text: str | None) -> Markup:
    """Escape text, then render its `code`, **strong** and *emphasis* (all the Markdown we use)."""
    html = str(escape(text or ""))
    html = _CODE.sub(r"<code>\1</code>", html)
    html = _STRONG.sub(r"<strong>\1</strong>", html)
    return Markup(_EMPHASIS.sub(r"<em>\1</em>", html))


def paragraphs(text: str | None) -> list[Markup]:
    """A description's paragraphs, each rendered with :func:`inline`."""
    return [inline(p.replace("\n", " ")) for p in (text or "").split("\n\n") if p.strip()]


def _resolve(document: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _ref_name(node: dict) -> str | None:
    target = node.get("$ref", "")
    return target.rsplit("/", 1)[-1] if target.startswith("#/components/schemas/") else None


def schema_link(name: str) -> Markup:
    """A link to a schema's section of the page."""
    return Markup('<a href="#schema-{0}">{0}</a>').format(name)


def type_html(schema: dict) -> Markup:
    """A short human reading of a schema's type: ``string or null``, ``array of Item``..."""
    name = _ref_name(schema)
    if name:
        return schema_link(name)
    for key, joiner in (("allOf", " and "), ("oneOf", " or "), ("anyOf", " or ")):
        if key in schema and all("$ref" in s or "type" in s for s in schema[key]):
            return Markup(joiner).join(type_html(s) for s in schema[key])
    if "const" in schema:
        return Markup("<code>{}</code>").format(json.dumps(schema["const"]))
    kinds = schema.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    parts = []
    for kind in kinds:
        if kind == "array" and "items" in schema:
            parts.append(Markup("array of {}").format(type_html(schema["items"])))
        else:
            parts.append(Markup("{}").format(kind))
    text = Markup(" or ").join(parts)
    if "enum" in schema:
        values = Markup(", ").join(
            Markup("<code>{}</code>").format(json.dumps(v)) for v in schema["enum"]
        )
        text = Markup("{}: one of {}").format(text, values)
    return text


def constraints(schema: dict) -> Markup:
    """Limits and defaults in words."""
    words = ["not empty"] if schema.get("minLength") == 1 else []
    for key, label in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "at least {}"),
        ("maximum", "at most {}"),
        ("exclusiveMinimum", "above {}"),
        ("exclusiveMaximum", "below {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
        ("pattern", "matches <code>{}</code>"),
        ("default", "default <code>{}</code>"),
    ):
        if key in schema and not (key == "minLength" and schema[key] == 1):
            value = schema[key]
            words.append(Markup(label).format(json.dumps(value) if key == "default" else value))
    # An id or an amount is "a string or an integer or null": each alternative's own limits.
    alternatives = [constraints(part) for part in schema.get("anyOf", []) if "$ref" not in part]
    if any(alternatives):
        words.append(Markup(" | ").join(a for a in alternatives if a))
    return Markup("; ").join(words)


def fields(document: dict, schema: dict) -> dict[str, Any]:
    """The rows of a schema's field table, the schemas it extends, and notes on its rules."""
    schema = _resolve(document, schema)
    rows, extends, notes, required = [], [], [], set(schema.get("required", []))
    parts = [schema]
    for part in schema.get("allOf", []):
        if _ref_name(part):
            extends.append(schema_link(_ref_name(part)))
        else:
            parts.append(part)
            required.update(part.get("required", []))
    for part in parts:
        for name, prop in part.get("properties", {}).items():
            rows.append(
                {
                    "name": name,
                    "type": type_html(prop),
                    "required": name in required,
                    "description": inline(prop.get("description")),
                    "constraints": constraints(prop),
                }
            )
    one_of = [_ref_name(s) for s in schema.get("oneOf", []) if _ref_name(s)]
    if one_of:
        notes.append(Markup("One of: {}.").format(Markup(", ").join(map(schema_link, one_of))))
    any_required = [s["required"][0] for s in schema.get("anyOf", []) if "required" in s]
    if any_required:
        notes.append(inline("At least one of " + ", ".join(f"`{n}`" for n in any_required) + "."))
    if "if" in schema and "then" in schema:
        (when_field, when), *_ = schema["if"]["properties"].items()
        (then_field, then), *_ = schema["then"]["properties"].items()
        notes.append(
            Markup("When <code>{}</code> is <code>{}</code>, <code>{}</code> is {}.").format(
                when_field, when.get("const"), then_field, type_html(then)
            )
        )
    return {"rows": rows, "extends": extends, "notes": notes}


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _examples(media: dict) -> list[dict[str, str]]:
    if "example" in media:
        return [{"summary": "", "json": _pretty(media["example"])}]
    return [
        {"summary": e.get("summary", key), "json": _pretty(e["value"])}
        for key, e in media.get("examples", {}).items()
    ]


def _content(document: dict, content: dict) -> list[dict[str, Any]]:
    out = []
    for media_type, media in content.items():
        schema = media.get("schema", {})
        name = _ref_name(schema)
        out.append(
            {
                "media_type": media_type,
                "schema": schema_link(name) if name else type_html(schema),
                "examples": _examples(media),
            }
        )
    # The same body under several media types: show it once, naming them all.
    if len(out) > 1 and all(c["schema"] == out[0]["schema"] for c in out):
        out = [{**out[0], "media_type": ", ".join(c["media_type"] for c in out)}]
    return out


def _security(requirements: list[dict]) -> list[Markup]:
    if not requirements:
        return [Markup("none")]
    return [
        inline(
            " and ".join(SECURITY_LABELS.get(n, n) for n in r)
            or "write key as `writeKey` in the body"
        )
        for r in requirements
    ]


def _operation(document: dict, path: str, method: str, path_item: dict, op: dict) -> dict:
    parameters = []
    for raw in [*path_item.get("parameters", []), *op.get("parameters", [])]:
        parameter = _resolve(document, raw)
        schema = parameter.get("schema", {})
        parameters.append(
            {
                "name": parameter["name"],
                "in": parameter["in"],
                "required": parameter.get("required", False),
                "type": type_html(schema),
                "description": inline(parameter.get("description")),
                "constraints": constraints(schema),
            }
        )
    body = op.get("requestBody")
    responses = []
    for status, raw in op.get("responses", {}).items():
        response = _resolve(document, raw)
        responses.append(
            {
                "status": status,
                "description": inline(response.get("description")),
                "headers": sorted(response.get("headers", {})),
                "content": _content(document, response.get("content", {})),
            }
        )
    return {
        "id": op["operationId"],
        "method": method.upper(),
        "path": path,
        "summary": op.get("summary", ""),
        "description": paragraphs(op.get("description")),
        "security": _security(op.get("security", document.get("security", []))),
        "parameters": parameters,
        "body": _content(document, body["content"]) if body else [],
        "responses": responses,
        "samples": op.get("x-codeSamples", []),
    }


def page_model(document: dict) -> dict[str, Any]:
    """Everything docs.html shows, in order: intro, operations by tag, schemas."""
    by_tag: dict[str, list[dict]] = {tag["name"]: [] for tag in document.get("tags", [])}
    for path, path_item in document["paths"].items():
        for method in METHODS:
            if method in path_item:
                op = path_item[method]
                tag = (op.get("tags") or ["Other"])[0]
                by_tag.setdefault(tag, []).append(_operation(document, path, method, path_item, op))
    descriptions = {tag["name"]: tag.get("description") for tag in document.get("tags", [])}
    components = document.get("components", {})
    return {
        "title": document["info"]["title"],
        "version": document["info"]["version"],
        "intro": paragraphs(document["info"].get("description")),
        "server": document["servers"][0]["url"],
        "tags": [
            {"name": name, "description": inline(descriptions.get(name)), "operations": ops}
            for name, ops in by_tag.items()
            if ops
        ],
        "security_schemes": [
            {"name": name, "description": inline(scheme.get("description"))}
            for name, scheme in components.get("securitySchemes", {}).items()
        ],
        "schemas": [
            {
                "name": name,
                "description": inline(schema.get("description")),
                **fields(document, schema),
            }
            for name, schema in components.get("schemas", {}).items()
        ],
    }
