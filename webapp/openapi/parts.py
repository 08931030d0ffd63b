"""What every declaration shares: security requirements, the error shape, curl examples."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Reply

JSON_TYPES = ("application/json", "text/plain")
SERVER_KEY = [{"serverKey": []}, {"serverKeyBearer": []}]
# The empty requirement stands for `writeKey` in the body (or in the pixel's data).
EVENTS_KEY = [{"writeKey": []}, *SERVER_KEY, {}]
PUBLIC: list = []
ERROR_CODES = (
    "invalid_request, invalid_json, invalid_event, invalid_item, unauthorized, forbidden, "
    "forbidden_origin, too_large, unsupported_media, unsupported_encoding, invalid_encoding, "
    "rate_limited, unavailable, not_found, method"
)


class _ErrorDetail(ApiModel):
    code: str = Field(description="Machine-readable kind.")
    field: str = Field(description="What is wrong (a JSON path, a header or a parameter).")
    reason: str = Field(description="Why, and what to do.")
    message: str = Field(description="`field: reason`.")


class Error(ApiModel):
    __doc__ = f"Every 4xx and 5xx answer. Codes include {ERROR_CODES}."

    success: Literal[False]
    error: _ErrorDetail
    retry: bool = Field(description="true for 429 and 503 only.")


def ref(kind: str, name: str) -> dict[str, str]:
    """A ``$ref`` to a component."""
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> dict[str, str]:
    """A ``$ref`` to a component schema."""
    return ref("schemas", name)


def error(
    status: int, description: str, code: str, field: str, reason: str, body: Any = Error
) -> Reply:
    """A response in the shared error shape, with an example."""
    example = {
        "success": False,
        "error": {"code": code, "field": field, "reason": reason, "message": f"{field}: {reason}"},
        "retry": status in (429, 503),
    }
    return Reply(description, body, example)


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


def sample(method: str, path: str, **options: Any) -> Callable[[str], dict[str, str]]:
    """A curl example, rendered against the server the document is built for."""
    return lambda server: curl(server, method, path, **options)


# What every server-key operation may answer about its key (the catalogue's were written before).
SERVER_KEY_ERRORS = {
    401: error(
        401,
        "No server key, or an unknown or revoked one.",
        "unauthorized",
        "Authorization",
        "unknown or revoked server key",
    ),
    403: error(
        403,
        "The secret server key was sent from a web page on another site (the request "
        "carries `Origin` or `Sec-Fetch-Site: cross-site`).",
        "server_key_in_browser",
        "Authorization",
        "the secret server key is refused from web pages (this request carries "
        "Sec-Fetch-Site: cross-site); browsers must use the site's public write key, and the "
        "server key must stay on your server (if a page held it, replace it)",
    ),
}
