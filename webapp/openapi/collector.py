"""The collector's operations: the Segment HTTP Tracking API as this service accepts it."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from tracking.events import EVENT_TYPES
from webapp.openapi.events import EXAMPLE_BATCH, EXAMPLE_EVENTS
from webapp.openapi.parts import (
    EVENTS_KEY,
    JSON_TYPES,
    curl,
    error_response,
    json_content,
    ref,
    schema_ref,
)

PIXEL_EVENT = {"writeKey": "wk_...", "type": "page", "anonymousId": "a-1", "name": "Home"}
PIXEL_EXAMPLE = (
    base64.urlsafe_b64encode(json.dumps(PIXEL_EVENT, separators=(",", ":")).encode())
    .decode()
    .rstrip("=")
)

TAG = (
    "Segment's HTTP Tracking API. A 2xx means every accepted event is durably stored; an event "
    "is stored once per (site, messageId), so resending is safe."
)


def responses() -> dict[str, dict]:
    """The two "retry later" answers."""
    rate_limited = error_response(
        429,
        "Over the site's rate limit; retry after `Retry-After` seconds.",
        "rate_limited",
        "writeKey",
        "over the site's limit of 100 requests per second",
    )
    unavailable = error_response(
        503,
        "Events cannot be stored durably right now (Redis and the local spool both failed); "
        "retry after `Retry-After` seconds.",
        "unavailable",
        "server",
        "events cannot be stored durably right now; retry later",
    )
    for response in (rate_limited, unavailable):
        response["headers"] = {"Retry-After": ref("headers", "RetryAfter")}
    return {"RateLimited": rate_limited, "Unavailable": unavailable}


def _errors(single: bool) -> dict[str, dict]:
    too_large = (
        "The event is over the size limit."
        if single
        else "Over a size limit (the request, or every event); `rejected` lists oversized events."
    )
    return {
        "400": error_response(
            400,
            "The body cannot be read: empty, not JSON, not an object, bad gzip"
            + ("" if single else ", or `batch` missing or empty")
            + ".",
            "invalid_json",
            "body",
            "not valid JSON (unexpected character: line 1 column 2 (char 1))",
        ),
        "401": error_response(
            401,
            "No write key, or an unknown or revoked one.",
            "unauthorized",
            "writeKey",
            "unknown or revoked write key",
        ),
        "403": error_response(
            403,
            "The request's `Origin` is not one of the site's allowed origins.",
            "forbidden_origin",
            "Origin",
            "https://evil.example is not an allowed origin for this write key; add it to the site",
        ),
        "413": error_response(
            413,
            too_large,
            "too_large",
            "body",
            "larger than 512000 bytes",
            schema="CollectorError",
        ),
        "415": error_response(
            415,
            "Content-Type other than application/json or text/plain, or an unknown "
            "Content-Encoding.",
            "unsupported_media",
            "Content-Type",
            "must be application/json or text/plain",
        ),
        "422": error_response(
            422,
            "Every event is invalid (they are kept as rejected, with their reasons).",
            "invalid_event",
            "batch[0].timestamp" if not single else "body.event",
            "not an ISO 8601 time" if not single else "required for track: a non-empty string",
            schema="CollectorError",
        ),
        "429": ref("responses", "RateLimited"),
        "503": ref("responses", "Unavailable"),
    }


def _ok(single: bool) -> dict:
    examples = {
        "stored": {"summary": "Every event stored", "value": {"success": True}},
        "do_not_track": {
            "summary": "DNT or GPC: acknowledged, nothing stored",
            "value": {"success": True, "stored": False, "reason": "do_not_track"},
        },
    }
    if not single:
        examples["partly_rejected"] = {
            "summary": "Valid events stored, invalid ones rejected",
            "value": {
                "success": True,
                "rejected": [
                    {"index": 1, "field": "batch[1].timestamp", "reason": "not an ISO 8601 time"}
                ],
            },
        }
    return {
        "description": "Stored durably (or declined for Do Not Track).",
        "content": {
            "application/json": {
                "schema": schema_ref("CollectorAccepted"),
                "examples": examples,
            }
        },
    }


def paths(server: str, config: Mapping[str, Any]) -> dict[str, dict]:
    """The collector's operations."""
    max_event, max_batch = config["MAX_EVENT_BYTES"], config["MAX_BATCH_BYTES"]
    paths: dict[str, dict] = {}
    batch_description = (
        f"Up to {config['MAX_BATCH_EVENTS']:,} events of any type, {max_batch:,} bytes per request "
        f"and {max_event:,} bytes per event (after decompression). JSON, also sent as `text/plain` "
        "(sendBeacon, no CORS preflight). A body compressed with gzip or deflate is sent with "
        "a matching `Content-Encoding: gzip` (or `x-gzip`, `deflate`); a header that does not "
        "match the body is a 400, an unknown coding a 415. The server adds `receivedAt` and "
        "corrects the client's clock: `timestamp + (receivedAt - sentAt)`; the client's own time "
        "is kept as `originalTimestamp`. Valid events are stored, invalid ones are kept as "
        "rejected and listed in the answer; if all are invalid the status is 422. The request's "
        "address is stored truncated (IPv4 /24, IPv6 /48) as `context.ip`, and IP addresses the "
        "client sent in `traits` and `context` are truncated the same way. With `DNT: 1` or "
        "`Sec-GPC: 1` the request is acknowledged (`stored: false`) and its body neither "
        "validated nor stored, unless the site was created with `--store-dnt`."
    )
    gzip_sample = curl(
        server,
        "POST",
        "/v1/batch",
        auth="write",
        extra=(
            "-H 'Content-Type: application/json'",
            "-H 'Content-Encoding: gzip'",
            "--data-binary @batch.json.gz",
        ),
    )
    gzip_sample["label"] = "curl (gzip)"
    for path, operation_id, summary in (
        ("/v1/batch", "batch", "Send many events in one request"),
        ("/v1/import", "import", "Send many events (Segment's alias of /v1/batch)"),
    ):
        paths[path] = {
            "post": {
                "tags": ["Collector"],
                "operationId": operation_id,
                "summary": summary,
                "description": batch_description,
                "security": EVENTS_KEY,
                "requestBody": {
                    "required": True,
                    "content": json_content(schema_ref("BatchRequest"), EXAMPLE_BATCH, JSON_TYPES),
                },
                "responses": {"200": _ok(False), **_errors(False)},
                "x-codeSamples": [
                    curl(server, "POST", path, auth="write", body=EXAMPLE_BATCH),
                    gzip_sample,
                ],
            }
        }
    for kind in EVENT_TYPES:
        example = EXAMPLE_EVENTS[kind]
        paths[f"/v1/{kind}"] = {
            "post": {
                "tags": ["Collector"],
                "operationId": kind,
                "summary": f"Send one {kind} event",
                "description": f"One `{kind}` event (its `type` is set by the path), up to "
                f"{max_event:,} bytes. Same encodings, rules and answers as `/v1/batch`.",
                "security": EVENTS_KEY,
                "requestBody": {
                    "required": True,
                    "content": json_content(
                        schema_ref(f"{kind.capitalize()}Call"), example, JSON_TYPES
                    ),
                },
                "responses": {"200": _ok(True), **_errors(True)},
                "x-codeSamples": [curl(server, "POST", f"/v1/{kind}", auth="write", body=example)],
            }
        }
    pixel_errors = _errors(True)
    pixel_errors["400"] = error_response(
        400,
        "`data` missing, not base64, or not a JSON object.",
        "invalid_request",
        "data",
        "not valid base64",
    )
    del pixel_errors["415"]
    paths["/v1/pixel.gif"] = {
        "get": {
            "tags": ["Collector"],
            "operationId": "pixel",
            "summary": "Send one event as an image request",
            "description": "For pages without JavaScript (`<img src=...>`). Answers a 1x1 "
            "transparent GIF with `Cache-Control: no-store`; errors are JSON. `DNT: 1` and "
            "`Sec-GPC: 1` are honoured as for `/v1/batch`.",
            "security": EVENTS_KEY,
            "parameters": [
                {
                    "name": "data",
                    "in": "query",
                    "required": True,
                    "description": "One event's JSON with `writeKey` and `type` (default "
                    "`track`), base64url-encoded (standard base64 works if URL-encoded; "
                    "padding optional). Data that does not decode to such an object is a 400.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "pattern": "^[A-Za-z0-9_+/-]+={0,2}$",
                        "contentEncoding": "base64url",
                        "contentMediaType": "application/json",
                        "contentSchema": {
                            "allOf": [
                                schema_ref("Event"),
                                {
                                    "properties": {
                                        "type": {"enum": list(EVENT_TYPES), "default": "track"}
                                    }
                                },
                            ]
                        },
                    },
                    "example": PIXEL_EXAMPLE,
                },
            ],
            "responses": {
                "200": {
                    "description": "Stored (or declined for Do Not Track).",
                    "headers": {
                        "Cache-Control": {
                            "description": "`no-store, max-age=0`",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "image/gif": {"schema": {"type": "string", "contentMediaType": "image/gif"}}
                    },
                },
                **pixel_errors,
            },
            "x-codeSamples": [
                {
                    "lang": "Shell",
                    "label": "curl",
                    "source": "DATA=$(printf '%s' '"
                    + json.dumps(PIXEL_EVENT, separators=(",", ":")).replace(
                        "wk_...", "'\"$WRITE_KEY\"'"
                    )
                    + "' | base64 | tr -d '\\n=' | tr '+/' '-_')\n"
                    + f'curl -o /dev/null "{server}/v1/pixel.gif?data=$DATA"',
                }
            ],
        }
    }
    return paths


def schemas() -> dict[str, dict]:
    """The collector's answers: accepted, rejected events, the error with them."""
    rejection = {
        "type": "object",
        "required": ["index", "field", "reason"],
        "properties": {
            "index": {"type": ["integer", "null"], "description": "Position in the batch."},
            "field": {"type": "string", "examples": ["batch[3].timestamp"]},
            "reason": {"type": "string", "examples": ["not an ISO 8601 time"]},
        },
    }
    error = {
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
    return {
        "Error": error,
        "Rejection": rejection,
        "CollectorError": {
            "description": "The error shape; for refused events, `rejected` lists them.",
            "allOf": [
                schema_ref("Error"),
                {"properties": {"rejected": {"type": "array", "items": schema_ref("Rejection")}}},
            ],
        },
        "CollectorAccepted": {
            "type": "object",
            "required": ["success"],
            "properties": {
                "success": {"const": True},
                "rejected": {
                    "type": "array",
                    "items": schema_ref("Rejection"),
                    "description": "Invalid events of a batch (kept as rejected, not stored).",
                },
                "stored": {"const": False, "description": "Present when declined for DNT/GPC."},
                "reason": {"const": "do_not_track"},
            },
        },
    }
