"""Small builders the document's parts share: references, bodies, errors, curl examples."""

from __future__ import annotations

import json
from typing import Any

JSON_TYPES = ("application/json", "text/plain")
SERVER_KEY = [{"serverKey": []}, {"serverKeyBearer": []}]
# The empty requirement stands for `writeKey` in the body (or in the pixel's data).
EVENTS_KEY = [{"writeKey": []}, *SERVER_KEY, {}]
PUBLIC: list = []


def ref(kind: str, name: str) -> dict[str, str]:
    """A ``$ref`` to a component."""
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> dict[str, str]:
    """A ``$ref`` to a component schema."""
    return ref("schemas", name)


def json_content(
    schema: dict, example: Any = None, media: tuple[str, ...] = ("application/json",)
) -> dict:
    """A ``content`` map: the same schema (and example) under each media type."""
    body: dict[str, Any] = {"schema": schema}
    if example is not None:
        body["example"] = example
    return {media_type: dict(body) for media_type in media}


def error_response(
    status: int, description: str, code: str, field: str, reason: str, schema: str = "Error"
) -> dict:
    """A response in the shared error shape, with an example."""
    example = {
        "success": False,
        "error": {"code": code, "field": field, "reason": reason, "message": f"{field}: {reason}"},
        "retry": status in (429, 503),
    }
    return {"description": description, "content": json_content(schema_ref(schema), example)}


def curl(
    server: str,
    method: str,
    path: str,
    *,
    auth: str | None = None,
    body: Any = None,
    query: str = "",
    extra: tuple[str, ...] = (),
    label: str = "curl",
) -> dict[str, str]:
    """An ``x-codeSamples`` entry: the curl command for this call against this server."""
    url = f"{server}{path}{'?' + query if query else ''}"
    parts = ["curl"]
    if method != "GET":
        parts.append(f"-X {method}")
    if auth == "write":
        parts.append('-u "$WRITE_KEY:"')
    elif auth == "server":
        parts.append('-H "Authorization: Bearer $SERVER_KEY"')
    parts.extend(extra)
    if body is not None:
        parts.append("-H 'Content-Type: application/json'")
        parts.append(f"-d '{json.dumps(body, separators=(',', ':'))}'")
    parts.append(f'"{url}"')
    return {"lang": "Shell", "label": label, "source": " \\\n  ".join(parts)}


def query(name: str, description: str, schema: dict, example: Any = None) -> dict:
    """A query parameter."""
    parameter = {"name": name, "in": "query", "description": description, "schema": schema}
    if example is not None:
        parameter["example"] = example
    return parameter
