"""Read a request body whole, bounded in size and in how long the client may go quiet.

A client whose body is shorter than its ``Content-Length`` either closes its side (the read
ends early) or goes quiet; without a bound the second case holds a worker until gunicorn's
timeout kills it (30 s, then an HTML 500). Here it gets a 400 naming the body within
``BODY_IDLE_SECONDS``. Slow but steady senders are the worker model's business (gevent for
``make run``, nginx buffering bodies in production: see the README), not this module's.
"""

from __future__ import annotations

from flask import request

from webapp.errors import ApiError

# Longest silence allowed between two pieces of a body. Browsers and Segment libraries send a
# body in one go, so a pause this long means it is not coming.
BODY_IDLE_SECONDS = 3.0
_CHUNK = 64 * 1024


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body", f"larger than {max_bytes} bytes", "too_large")


def _ended_early(length: int, how: str) -> ApiError:
    return ApiError(
        400, "body", f"ended before Content-Length ({length} bytes): {how}", "incomplete_body"
    )


def read_body(max_bytes: int) -> bytes:
    """The request body, at most ``max_bytes`` (413 beyond), complete (400 when it ends short)."""
    length = request.content_length
    # Refuse by Content-Length before reading; bound the read when the length is unknown.
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    want = length if length is not None else max_bytes + 1
    # gunicorn hands the client socket over: its timeout bounds each wait for the next bytes.
    sock = request.environ.get("gunicorn.socket")
    previous_timeout = sock.gettimeout() if sock is not None else None
    if sock is not None:
        sock.settimeout(BODY_IDLE_SECONDS)
    chunks: list[bytes] = []
    received = 0
    try:
        while received < want:
            try:
                chunk = request.stream.read(min(_CHUNK, want - received))
            except TimeoutError as e:
                # gunicorn may hold a few of the bytes that did come: no count is given.
                how = f"nothing more arrived for {BODY_IDLE_SECONDS:g} s"
                raise _ended_early(want, how) from e
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    finally:
        if sock is not None:
            try:
                sock.settimeout(previous_timeout)
            except OSError:
                pass  # the socket is closed: nothing left to restore
    raw = b"".join(chunks)
    if length is not None and received < length:
        raise _ended_early(length, f"{received} bytes arrived, then the client closed")
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    return raw
