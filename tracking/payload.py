"""Request bodies: the bytes a client sent, decompressed and decoded into one JSON object.

``decode_body`` accepts JSON (also sent as text/plain, as Segment's browser clients do), plain or
gzip/deflate compressed, bounded in size once decompressed; anything else raises
:class:`PayloadError`, which names the HTTP status, the field and the reason. Nothing here knows
about Flask.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson


class PayloadError(Exception):
    """The request as a whole cannot be read; carries the HTTP status, field and reason."""

    def __init__(self, status: int, field: str, reason: str, code: str = "invalid_request"):
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason, self.code = status, field, reason, code


def decode_body(
    raw: bytes, content_type: str | None, content_encoding: str | None, max_bytes: int
) -> dict[str, Any]:
    """Decode a request body (JSON, also sent as text/plain; optionally gzip) into an object."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime not in ("", "application/json", "text/plain"):
        raise PayloadError(
            415, "Content-Type", "must be application/json or text/plain", "unsupported_media"
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        raw = _inflate(raw, encoding, max_bytes)
    elif encoding != "identity":
        raise PayloadError(
            415, "Content-Encoding", "must be gzip, deflate or identity", "unsupported_encoding"
        )
    if len(raw) > max_bytes:
        raise PayloadError(413, "body", f"larger than {max_bytes} bytes", "too_large")
    if not raw.strip():
        raise PayloadError(400, "body", "is empty; send a JSON object", "invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise PayloadError(400, "body", f"not valid JSON ({e})", "invalid_json") from e
    if not isinstance(body, dict):
        raise PayloadError(
            400, "body", f"must be a JSON object, not {json_kind(body)}", "invalid_json"
        )
    return body


def _inflate(raw: bytes, encoding: str, max_bytes: int) -> bytes:
    # Decompress in bounded steps so a gzip bomb costs at most max_bytes of memory.
    wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, auto-detected
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, max_bytes + 1)
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise PayloadError(
                413, "body", f"larger than {max_bytes} bytes once decompressed", "too_large"
            )
        out += inflater.flush()
    except zlib.error as e:
        raise PayloadError(
            400, "Content-Encoding", f"body is not valid {encoding} ({e})", "invalid_encoding"
        ) from e
    if not inflater.eof:
        raise PayloadError(
            400, "Content-Encoding", f"truncated {encoding} body", "invalid_encoding"
        )
    return out


def json_kind(value: Any) -> str:
    """The kind of a JSON value, as an error names it: "an array", "a string", "null", ..."""
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
