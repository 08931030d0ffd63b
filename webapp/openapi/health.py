"""The operations anyone may call: liveness, readiness, and this reference itself."""

from __future__ import annotations

from typing import Literal

from webapp.openapi.parts import PUBLIC, ref, sample
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply

DOCS_PATH = "/docs"
JSON_PATH = "/v1/openapi.json"


class Liveness(ApiModel):
    status: Literal["ok"]


class _Reachable(ApiModel):
    ok: bool
    error: str = None


class _Stream(ApiModel):
    length: int = None
    pending: int = None
    groups: int = None


class _Spool(ApiModel):
    depth: int | None = None
    writable: bool = None
    error: str = None


class _Checks(ApiModel):
    redis: _Reachable = None
    sql: _Reachable = None
    stream: _Stream = None
    spool: _Spool = None


class Readiness(ApiModel):
    status: Literal["ready", "unavailable"]
    checks: _Checks


# The schemas this module adds to the reference, in the order it lists them.
SCHEMAS = (Liveness, Readiness)


def operations() -> list[Operation]:
    """Health checks and the reference."""
    return [
        Operation(
            "get",
            "/healthz",
            "healthz",
            "Health",
            "Liveness",
            "Answers while the process can serve requests.",
            PUBLIC,
            {200: Reply("Up.", Liveness, {"status": "ok"})},
            samples=(sample("GET", "/healthz"),),
        ),
        Operation(
            "get",
            "/readyz",
            "readyz",
            "Health",
            "Readiness",
            "Redis and SQL reachability, spool depth, stream length and pending count. Ready "
            "when events can be stored durably (Redis, or else the spool); SQL being down only "
            "delays ingest and is reported without failing.",
            PUBLIC,
            {
                200: Reply("Events can be stored durably.", Readiness),
                503: Reply(
                    "Events could not be stored durably (Redis down and the spool not writable).",
                    Readiness,
                    headers={"Retry-After": ref("headers", "RetryAfter")},
                ),
            },
            samples=(sample("GET", "/readyz"),),
        ),
        Operation(
            "get",
            JSON_PATH,
            "openapi",
            "Reference",
            "This OpenAPI 3.1 document",
            "The server URL is the one the document was requested from.",
            PUBLIC,
            {
                200: Reply(
                    "The document (cacheable for 5 minutes, any origin).",
                    {"type": "object", "required": ["openapi", "paths"]},
                    headers={
                        "ETag": {
                            "description": "Send it back as `If-None-Match`.",
                            "schema": {"type": "string"},
                        }
                    },
                ),
                304: Reply("Not modified: `If-None-Match` matched the ETag."),
            },
            samples=(sample("GET", JSON_PATH),),
        ),
        Operation(
            "get",
            DOCS_PATH,
            "docs",
            "Reference",
            "This reference as a web page",
            "Server-rendered HTML built from the same document, no scripts.",
            PUBLIC,
            {200: Reply("The page.", {"type": "string"}, media=("text/html",))},
        ),
    ]
