"""The collector's operations: the Segment HTTP Tracking API as this service accepts it.

The events' own schemas are in :mod:`webapp.openapi.events`; these operations name them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from tracking.events import EVENT_TYPES
from webapp.openapi.events import EXAMPLE_BATCH, EXAMPLE_EVENTS
from webapp.openapi.parts import EVENTS_KEY, JSON_TYPES, Error, error, ref, sample, schema_ref
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply, RequestBody

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


class Rejection(ApiModel):
    index: int | None = Field(description="Position in the batch.")
    field: str = Field(examples=["batch[3].timestamp"])
    reason: str = Field(examples=["not an ISO 8601 time"])


class CollectorError(Error):
    """The error shape; for refused events, `rejected` lists them."""

    rejected: list[Rejection] = None


class CollectorAccepted(ApiModel):
    success: Literal[True]
    rejected: list[Rejection] = Field(
        None, description="Invalid events of a batch (kept as rejected, not stored)."
    )
    stored: Literal[False] = Field(None, description="Present when declined for DNT/GPC.")
    reason: Literal["do_not_track"] = None


# The schemas this module adds to the reference, in the order it lists them.
SCHEMAS = (Rejection, CollectorError, CollectorAccepted)


def responses() -> dict[str, dict]:
    """The two "retry later" answers, shared by the collector's operations."""
    retry_after = {"Retry-After": ref("headers", "RetryAfter")}
    rate_limited = error(
        429,
        "Over the site's rate limit; retry after `Retry-After` seconds.",
        "rate_limited",
        "writeKey",
        "over the site's limit of 100 requests per second",
    )
    unavailable = error(
        503,
        "Events cannot be stored durably right now (Redis and the local spool both failed); "
        "retry after `Retry-After` seconds.",
        "unavailable",
        "server",
        "events cannot be stored durably right now; retry later",
    )
    return {
        "RateLimited": {**_as_dict(rate_limited), "headers": retry_after},
        "Unavailable": {**_as_dict(unavailable), "headers": retry_after},
    }


def _as_dict(reply: Reply) -> dict[str, Any]:
    content = {"schema": schema_ref(reply.body.__name__), "example": reply.example}
    return {"description": reply.description, "content": {"application/json": content}}


def _errors(single: bool) -> dict[int, Reply | str]:
    too_large = (
        "The event is over the size limit."
        if single
        else "Over a size limit (the request, or every event); `rejected` lists oversized events."
    )
    return {
        400: error(
            400,
            "The body cannot be read: empty, not JSON, not an object, bad gzip"
            + ("" if single else ", or `batch` missing or empty")
            + ".",
            "invalid_json",
            "body",
            "not valid JSON (unexpected character: line 1 column 2 (char 1))",
        ),
        401: error(
            401,
            "No write key, or an unknown or revoked one.",
            "unauthorized",
            "writeKey",
            "unknown or revoked write key",
        ),
        403: error(
            403,
            "The request's `Origin` is not one of the site's allowed origins.",
            "forbidden_origin",
            "Origin",
            "https://evil.example is not an allowed origin for this write key; add it to the site",
        ),
        413: error(413, too_large, "too_large", "body", "larger than 512000 bytes", CollectorError),
        415: error(
            415,
            "Content-Type other than application/json or text/plain, or an unknown "
            "Content-Encoding.",
            "unsupported_media",
            "Content-Type",
            "must be application/json or text/plain",
        ),
        422: error(
            422,
            "Every event is invalid (they are kept as rejected, with their reasons).",
            "invalid_event",
            "batch[0].timestamp" if not single else "body.event",
            "not an ISO 8601 time" if not single else "required for track: a non-empty string",
            CollectorError,
        ),
        429: "RateLimited",
        503: "Unavailable",
    }


def _ok(single: bool) -> Reply:
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
    return Reply(
        "Stored durably (or declined for Do Not Track).", CollectorAccepted, examples=examples
    )


def _batch_description(config: Mapping[str, Any]) -> str:
    return (
        f"Up to {config['MAX_BATCH_EVENTS']:,} events of any type, "
        f"{config['MAX_BATCH_BYTES']:,} bytes per request and {config['MAX_EVENT_BYTES']:,} "
        "bytes per event (after decompression). JSON, also sent as `text/plain` "
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


GZIP_SAMPLE = sample(
    "POST",
    "/v1/batch",
    auth="write",
    extra=(
        "-H 'Content-Type: application/json'",
        "-H 'Content-Encoding: gzip'",
        "--data-binary @batch.json.gz",
    ),
    label="curl (gzip)",
)
PIXEL_DATA = {
    "name": "data",
    "in": "query",
    "required": True,
    "description": "One event's JSON with `writeKey` and `type` (default `track`), "
    "base64url-encoded (standard base64 works if URL-encoded; padding optional). Data that "
    "does not decode to such an object is a 400.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "pattern": "^[A-Za-z0-9_+/-]+={0,2}$",
        "contentEncoding": "base64url",
        "contentMediaType": "application/json",
        "contentSchema": {
            "allOf": [
                schema_ref("Event"),
                {"properties": {"type": {"enum": list(EVENT_TYPES), "default": "track"}}},
            ]
        },
    },
    "example": PIXEL_EXAMPLE,
}


def _pixel_sample(server: str) -> dict[str, str]:
    event = json.dumps(PIXEL_EVENT, separators=(",", ":")).replace("wk_...", "'\"$WRITE_KEY\"'")
    return {
        "lang": "Shell",
        "label": "curl",
        "source": f"DATA=$(printf '%s' '{event}' | base64 | tr -d '\\n=' | tr '+/' '-_')\n"
        f'curl -o /dev/null "{server}/v1/pixel.gif?data=$DATA"',
    }


def operations(config: Mapping[str, Any]) -> list[Operation]:
    """The collector's operations, with this configuration's limits."""
    found = [
        Operation(
            "post",
            path,
            operation_id,
            "Collector",
            summary,
            _batch_description(config),
            EVENTS_KEY,
            {200: _ok(False), **_errors(False)},
            body=RequestBody("BatchRequest", EXAMPLE_BATCH, JSON_TYPES),
            samples=(sample("POST", path, auth="write", body=EXAMPLE_BATCH), GZIP_SAMPLE),
        )
        for path, operation_id, summary in (
            ("/v1/batch", "batch", "Send many events in one request"),
            ("/v1/import", "import", "Send many events (Segment's alias of /v1/batch)"),
        )
    ]
    found += [
        Operation(
            "post",
            f"/v1/{kind}",
            kind,
            "Collector",
            f"Send one {kind} event",
            f"One `{kind}` event (its `type` is set by the path), up to "
            f"{config['MAX_EVENT_BYTES']:,} bytes. Same encodings, rules and answers as "
            "`/v1/batch`.",
            EVENTS_KEY,
            {200: _ok(True), **_errors(True)},
            body=RequestBody(f"{kind.capitalize()}Call", EXAMPLE_EVENTS[kind], JSON_TYPES),
            samples=(sample("POST", f"/v1/{kind}", auth="write", body=EXAMPLE_EVENTS[kind]),),
        )
        for kind in EVENT_TYPES
    ]
    pixel_errors = _errors(True)
    pixel_errors[400] = error(
        400,
        "`data` missing, not base64, or not a JSON object.",
        "invalid_request",
        "data",
        "not valid base64",
    )
    del pixel_errors[415]
    gif = Reply(
        "Stored (or declined for Do Not Track).",
        {"type": "string", "contentMediaType": "image/gif"},
        headers={
            "Cache-Control": {"description": "`no-store, max-age=0`", "schema": {"type": "string"}}
        },
        media=("image/gif",),
    )
    found.append(
        Operation(
            "get",
            "/v1/pixel.gif",
            "pixel",
            "Collector",
            "Send one event as an image request",
            "For pages without JavaScript (`<img src=...>`). Answers a 1x1 transparent GIF with "
            "`Cache-Control: no-store`; errors are JSON. `DNT: 1` and `Sec-GPC: 1` are honoured "
            "as for `/v1/batch`.",
            EVENTS_KEY,
            {200: gif, **pixel_errors},
            parameters=(PIXEL_DATA,),
            samples=(_pixel_sample,),
        )
    )
    return found
