"""One JSON error shape for the whole API: the field, the reason and what to do next."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from tracking.sites import SitesUnavailable

log = logging.getLogger("ecrm.webapp")

RETRY_LATER = (429, 503)
# Paths of pages for people: their errors are pages too (the API answers JSON).
HTML_PREFIXES = ("/console",)


class ApiError(Exception):
    """An API failure answered as ``{"success": false, "error": {...}}``."""

    def __init__(
        self,
        status: int,
        field: str,
        reason: str,
        code: str = "invalid_request",
        *,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason, self.code = status, field, reason, code
        self.retry_after, self.extra = retry_after, extra or {}


def error_response(
    status: int,
    field: str,
    reason: str,
    code: str,
    retry_after: int | None = None,
    extra: dict[str, Any] | None = None,
):
    """Build the JSON error response (used by handlers and by views that add details)."""
    body = {
        "success": False,
        "error": {"code": code, "field": field, "reason": reason, "message": f"{field}: {reason}"},
        "retry": status in RETRY_LATER,
        **(extra or {}),
    }
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    """JSON errors for the API; never an HTML page or a bare 500 for bad input."""

    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return error_response(e.status, e.field, e.reason, e.code, e.retry_after, e.extra)

    @app.errorhandler(SitesUnavailable)
    def _sites_unavailable(e: SitesUnavailable):
        # No copy of the sites yet and SQL down: the key cannot be checked; retry later.
        return error_response(
            503,
            "server",
            "keys cannot be checked right now (SQL store unreachable); retry later",
            "unavailable",
            app.config.get("RETRY_AFTER_SECONDS", 5),
        )

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        if request.path.startswith("/account/"):
            page = render_template("portal/error.html", code=e.code, name=e.name)
            return page, e.code or 500
        if request.path.startswith(HTML_PREFIXES):
            # People's pages answer errors with a page (a bad CSRF token, a foreign id, a 403).
            page = render_template(
                "console/error.html", code=e.code, name=e.name, description=e.description
            )
            return page, e.code or 500
        if e.code == 413:
            return error_response(413, "body", "request body too large", "too_large")
        if e.code == 405:
            response = error_response(
                405, "method", f"{request.method} is not allowed here", "method"
            )
            # RFC 9110: a 405 lists the methods the resource does support.
            allowed = getattr(e, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
            return response
        if e.code == 404:
            return error_response(404, "path", f"{request.path} does not exist", "not_found")
        if e.code == 400:
            return error_response(400, "request", e.description or "bad request", "bad_request")
        return error_response(e.code or 500, "request", e.description or e.name, "http_error")

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "server", "internal error; it has been logged", "internal")
