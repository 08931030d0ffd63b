"""gunicorn worker classes whose own answers use the API's JSON error shape.

gunicorn refuses some requests before the app sees them (a request line over
``limit_request_line``: 414; headers over ``limit_request_fields`` / ``limit_request_field_size``:
431; a malformed request line or header: 400) and answers them with an HTML page. These classes
answer them as the app would (webapp/errors.py: ``{"success": false, "error": {"code", "field",
"reason", "message"}, "retry": false}``). ``webapp/gunicorn.conf.py`` picks one; the gevent one is
imported only when chosen (``GeventWorker`` below), so the sync and gthread ones need no gevent.

Unlike gunicorn's own handler, these log no client address: raw IPs are kept nowhere.
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker
from gunicorn.workers.sync import SyncWorker as _SyncWorker

# (exception classes, status, reason phrase, field, code): the first row that matches answers.
# The statuses are gunicorn's own (workers/base.py handle_error); only the body changes.
_CLIENT_ERRORS: list[tuple[tuple[type, ...], int, str, str, str]] = [
    ((http_errors.LimitRequestLine,), 414, "URI Too Long", "request line", "uri_too_long"),
    (
        (http_errors.LimitRequestHeaders,),
        431,
        "Request Header Fields Too Large",
        "headers",
        "headers_too_large",
    ),
    (
        (
            http_errors.InvalidRequestLine,
            http_errors.InvalidRequestMethod,
            http_errors.InvalidHTTPVersion,
            http_errors.InvalidH2CPreface,
        ),
        400,
        "Bad Request",
        "request line",
        "bad_request",
    ),
    (
        (
            http_errors.InvalidHeader,
            http_errors.InvalidHeaderName,
            http_errors.ObsoleteFolding,
            http_errors.InvalidSchemeHeaders,
            http_errors.InvalidProxyLine,
        ),
        400,
        "Bad Request",
        "headers",
        "bad_request",
    ),
    (
        (
            http_errors.InvalidChunkSize,
            http_errors.ChunkMissingTerminator,
            http_errors.InvalidChunkExtension,
        ),
        400,
        "Bad Request",
        "body",
        "bad_request",
    ),
    (
        (http_errors.UnsupportedTransferCoding,),
        501,
        "Not Implemented",
        "Transfer-Encoding",
        "unsupported_transfer_coding",
    ),
    ((http_errors.ExpectationFailed,), 417, "Expectation Failed", "Expect", "expectation_failed"),
    ((http_errors.ForbiddenProxyRequest,), 403, "Forbidden", "request", "forbidden"),
]
# Errors of the application's own making (a bad response header, a gunicorn setting): 500.
_SERVER_ERRORS = (
    http_errors.InvalidResponseHeader,
    http_errors.InvalidResponseHeaderName,
    http_errors.ConfigurationProblem,
)


def classify(exc: BaseException) -> tuple[int, str, str, str, str]:
    """(status, reason phrase, field, reason, code) for an error gunicorn raised."""
    if not isinstance(exc, _SERVER_ERRORS):
        for classes, status, phrase, field, code in _CLIENT_ERRORS:
            if isinstance(exc, classes):
                return status, phrase, field, str(exc) or phrase.lower(), code
    return 500, "Internal Server Error", "server", "internal error; it has been logged", "internal"


def error_response_bytes(status: int, phrase: str, field: str, reason: str, code: str) -> bytes:
    """A whole HTTP/1.1 response carrying the API's JSON error body; the connection closes."""
    error = {"code": code, "field": field, "reason": reason, "message": f"{field}: {reason}"}
    body = json.dumps(
        {"success": False, "error": error, "retry": status in (429, 503)}, separators=(",", ":")
    ).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrors:
    """Mixin: gunicorn's ``handle_error`` hook, answering in the API's JSON shape."""

    def handle_error(self, req, client, addr, exc):
        """Answer a request gunicorn could not parse (or an unexpected failure) with JSON."""
        status, phrase, field, reason, code = classify(exc)
        if status >= 500:
            self.log.exception("Error handling request")
        else:
            self.log.info("refused a request with %s: %s", status, reason)
        try:
            util.write_nonblock(client, error_response_bytes(status, phrase, field, reason, code))
        except Exception:  # the client may be gone already: nothing left to tell it
            self.log.debug("Failed to send error message.")


class SyncWorker(JsonErrors, _SyncWorker):
    """gunicorn's sync worker with JSON error answers."""


class ThreadWorker(JsonErrors, _ThreadWorker):
    """gunicorn's gthread worker with JSON error answers."""


def __getattr__(name: str):
    # gunicorn resolves "webapp.gunicorn_workers.GeventWorker" with getattr: importing gevent
    # only then keeps it out of the sync and gthread processes.
    if name == "GeventWorker":
        from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

        worker = type("GeventWorker", (JsonErrors, _GeventWorker), {"__module__": __name__})
        worker.__doc__ = "gunicorn's gevent worker with JSON error answers."
        globals()["GeventWorker"] = worker
        return worker
    raise AttributeError(name)
