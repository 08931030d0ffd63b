"""The OpenAPI 3.1 document of the public API, built as a dict from the code's own limits.

:func:`build_document` is pure: it takes the server URL and the app's configuration, so the
limits it states (event and batch sizes, ``n``) are the ones this deployment enforces. Each
resource's operations and schemas live in their own module beside this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.openapi import catalogue, collector, events, recommend
from webapp.openapi.parts import PUBLIC, curl, json_content, ref, schema_ref

DOCS_PATH = "/docs"
JSON_PATH = "/v1/openapi.json"


def build_document(server_url: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for a server URL and the app's configuration."""
    server = server_url.rstrip("/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eCRM web-personalisation API",
            "version": "1.0.0",
            "summary": "Collect a shop's events, manage its catalogue, serve recommendations.",
            "description": _INTRO.format(
                docs=f"{server}{DOCS_PATH}",
                retry_after=config["RETRY_AFTER_SECONDS"],
            ),
        },
        "servers": [{"url": server, "description": "this server"}],
        "externalDocs": {"description": "Human-readable reference", "url": f"{server}{DOCS_PATH}"},
        "tags": [
            {"name": "Collector", "description": collector.TAG},
            {"name": "Catalogue", "description": "Items the shop sells; secret server key."},
            {"name": "Recommendations", "description": recommend.SOURCES_NOTE},
            {"name": "Health", "description": "Liveness and readiness, for load balancers."},
            {"name": "Reference", "description": "This document and its HTML rendering."},
        ],
        "paths": {
            **collector.paths(server, config),
            **catalogue.paths(server),
            **recommend.paths(server, config),
            **_health_paths(server),
            **_reference_paths(server),
        },
        "components": {
            "schemas": {
                "Error": _error_schema(),
                **collector.schemas(),
                **events.schemas(config),
                **catalogue.schemas(),
                **recommend.schemas(),
                **_health_schemas(),
            },
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
            "responses": collector.responses(),
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


_INTRO = """\
Everything a shop needs: send events (the Segment HTTP Tracking API), push its catalogue, and \
fetch recommendations. A human-readable version of this document is at {docs}.

**Keys.** Each site has a public *write key* (`wk_...`, for browsers and Segment clients, bound \
to the site's allowed origins) and a secret *server key* (`sk_...`, for backends).

**Errors** share one shape: \
`{{"success": false, "error": {{"code", "field", "reason", "message"}}, "retry": false}}`. \
`field` names what is wrong and `reason` says why. 4xx answers mean "permanently bad, do not \
retry"; 429 and 503 mean "retry later" and carry `Retry-After` (seconds; {retry_after} for an \
unavailable store). Bad input never gets a 500.
"""

_SECURITY_SCHEMES = {
    "writeKey": {
        "type": "http",
        "scheme": "basic",
        "description": "The site's public write key as the HTTP Basic username, empty password "
        '(`curl -u "$WRITE_KEY:"`). The collector also takes it as `writeKey` in the body.',
    },
    "writeKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "write_key",
        "description": "The site's public write key as a query parameter: a browser GET without "
        "custom headers needs no CORS preflight. The request's Origin (or its Referer's origin) "
        "must be one of the site's allowed origins.",
    },
    "serverKey": {
        "type": "http",
        "scheme": "basic",
        "description": "The site's secret server key as the HTTP Basic username, empty password.",
    },
    "serverKeyBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The site's secret server key as `Authorization: Bearer sk_...`.",
    },
}


def _error_schema() -> dict:
    """The one error shape (webapp/errors.py)."""
    return {
        "type": "object",
        "description": "Every 4xx and 5xx answer. Codes include invalid_request, invalid_json, "
        "invalid_event, invalid_item, unauthorized, forbidden, forbidden_origin, too_large, "
        "unsupported_media, unsupported_encoding, invalid_encoding, rate_limited, unavailable, "
        "not_found, method.",
        "required": ["success", "error", "retry"],
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "required": ["code", "field", "reason", "message"],
                "properties": {
                    "code": {"type": "string", "description": "Machine-readable kind."},
                    "field": {
                        "type": "string",
                        "description": "What is wrong (a JSON path, a header or a parameter).",
                    },
                    "reason": {"type": "string", "description": "Why, and what to do."},
                    "message": {"type": "string", "description": "`field: reason`."},
                },
            },
            "retry": {"type": "boolean", "description": "true for 429 and 503 only."},
        },
    }


def _health_schemas() -> dict[str, dict]:
    reachable = {
        "type": "object",
        "required": ["ok"],
        "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}},
    }
    return {
        "Liveness": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "unavailable"]},
                "checks": {
                    "type": "object",
                    "properties": {
                        "redis": reachable,
                        "sql": reachable,
                        "stream": {
                            "type": "object",
                            "properties": {
                                "length": {"type": "integer"},
                                "pending": {"type": "integer"},
                                "groups": {"type": "integer"},
                            },
                        },
                        "spool": {
                            "type": "object",
                            "properties": {
                                "depth": {"type": ["integer", "null"]},
                                "writable": {"type": "boolean"},
                                "error": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    }


def _health_paths(server: str) -> dict[str, dict]:
    return {
        "/healthz": {
            "get": {
                "tags": ["Health"],
                "operationId": "healthz",
                "summary": "Liveness",
                "description": "Answers while the process can serve requests.",
                "security": PUBLIC,
                "responses": {
                    "200": {
                        "description": "Up.",
                        "content": json_content(schema_ref("Liveness"), {"status": "ok"}),
                    }
                },
                "x-codeSamples": [curl(server, "GET", "/healthz")],
            }
        },
        "/readyz": {
            "get": {
                "tags": ["Health"],
                "operationId": "readyz",
                "summary": "Readiness",
                "description": "Redis and SQL reachability, spool depth, stream length and "
                "pending count. Ready when events can be stored durably (Redis, or else the "
                "spool); SQL being down only delays ingest and is reported without failing.",
                "security": PUBLIC,
                "responses": {
                    "200": {
                        "description": "Events can be stored durably.",
                        "content": json_content(schema_ref("Readiness")),
                    },
                    "503": {
                        "description": "Events could not be stored durably (Redis down and the "
                        "spool not writable).",
                        "headers": {"Retry-After": ref("headers", "RetryAfter")},
                        "content": json_content(schema_ref("Readiness")),
                    },
                },
                "x-codeSamples": [curl(server, "GET", "/readyz")],
            }
        },
    }


def _reference_paths(server: str) -> dict[str, dict]:
    return {
        JSON_PATH: {
            "get": {
                "tags": ["Reference"],
                "operationId": "openapi",
                "summary": "This OpenAPI 3.1 document",
                "description": "The server URL is the one the document was requested from.",
                "security": PUBLIC,
                "responses": {
                    "200": {
                        "description": "The document (cacheable for 5 minutes, any origin).",
                        "headers": {
                            "ETag": {
                                "description": "Send it back as `If-None-Match`.",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": json_content(
                            {"type": "object", "required": ["openapi", "paths"]}
                        ),
                    },
                    "304": {"description": "Not modified: `If-None-Match` matched the ETag."},
                },
                "x-codeSamples": [curl(server, "GET", JSON_PATH)],
            }
        },
        DOCS_PATH: {
            "get": {
                "tags": ["Reference"],
                "operationId": "docs",
                "summary": "This reference as a web page",
                "description": "Server-rendered HTML built from the same document, no scripts.",
                "security": PUBLIC,
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
