"""The OpenAPI 3.1 document of the public API, generated from the operations' declarations.

:func:`build_document` is pure: it takes the server URL and the app's configuration, so the
limits it states (event and batch sizes, ``n``) are the ones this deployment enforces. Each
resource declares its operations in its own module beside this one (see spec.py for how).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webapp.openapi import (
    catalogue,
    collector,
    customers,
    events,
    health,
    items,
    portal,
    recommend,
    reports,
    rules,
    segments,
)
from webapp.openapi.health import DOCS_PATH
from webapp.openapi.parts import Error
from webapp.openapi.spec import render


def operations(config: Mapping[str, Any]) -> list:
    """Every declared operation, in the order the reference lists them."""
    return [
        *collector.operations(config),
        *catalogue.operations(),
        *recommend.operations(config),
        *reports.operations(),
        *rules.operations(),
        *portal.operations(),
        *customers.operations(),
        *segments.operations(),
        *health.operations(),
    ]


def build_document(server_url: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for a server URL and the app's configuration."""
    server = server_url.rstrip("/")
    paths, schemas = render(operations(config), server)
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
            {"name": "Reports", "description": reports.TAG},
            {"name": "Rules", "description": rules.TAG},
            {"name": "Portal", "description": portal.TAG},
            {"name": "Customers", "description": customers.TAG},
            {"name": "Segments", "description": segments.TAG},
            {"name": "Health", "description": "Liveness and readiness, for load balancers."},
            {"name": "Reference", "description": "This document and its HTML rendering."},
        ],
        "paths": paths,
        "components": {
            "schemas": _in_order(schemas, events.schemas(config)),
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


def _in_order(generated: dict[str, dict], written: dict[str, dict]) -> dict[str, dict]:
    """Every component schema, in the order the reference lists them (others last)."""
    if generated.keys() & written.keys():
        raise ValueError(f"declared twice: {sorted(generated.keys() & written.keys())}")
    first = [model.__name__ for model in (Error, *collector.SCHEMAS)]
    last = [model.__name__ for model in (*items.SCHEMAS, *recommend.SCHEMAS, *health.SCHEMAS)]
    both = {**generated, **written}
    order = [*first, *written, *last]
    names = [name for name in order if name in both] + sorted(both.keys() - set(order))
    return {name: both[name] for name in names}


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
