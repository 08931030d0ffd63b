"""The API reference: the OpenAPI 3.1 document at /v1/openapi.json, rendered as HTML at /docs.

The document is built once per server URL (taken from the request) and its encoded bytes are
cached in ``app.extensions``; the page is rendered from the same document.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, render_template, request

from webapp.openapi.document import build_document
from webapp.openapi.health import DOCS_PATH, JSON_PATH
from webapp.openapi.page import page_model

bp = Blueprint("openapi", __name__)

MAX_CACHED_SERVERS = 16  # Host headers vary (proxies, tests); keep the cache bounded.
DOCS_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Built:
    """One server URL's document, its JSON bytes and their ETag."""

    document: dict[str, Any]
    body: bytes
    etag: str


class DocumentCache:
    """The built document per server URL for one app."""

    def __init__(self):
        self._built: dict[str, Built] = {}
        self._lock = threading.Lock()

    def get(self, server_url: str, config) -> Built:
        """The document for this server URL, built on first use."""
        built = self._built.get(server_url)
        if built is None:
            document = build_document(server_url, config)
            body = orjson.dumps(document)
            built = Built(document, body, hashlib.sha256(body).hexdigest()[:32])
            with self._lock:
                if len(self._built) >= MAX_CACHED_SERVERS:
                    self._built.clear()
                self._built[server_url] = built
        return built


def current_document() -> Built:
    """The document for the server the current request was sent to."""
    cache = current_app.extensions.setdefault("ecrm_openapi", DocumentCache())
    return cache.get(request.host_url.rstrip("/"), current_app.config)


@bp.get(JSON_PATH)
def openapi_json():
    """The OpenAPI 3.1 document of the public API."""
    built = current_document()
    response = Response(built.body, mimetype="application/json")
    response.set_etag(built.etag)
    response.headers["Cache-Control"] = "public, max-age=300"
    # A public, credential-free document: any API tool on any origin may read it.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)


@bp.get(DOCS_PATH)
def docs():
    """The same document as a readable page, with curl examples."""
    built = current_document()
    html = render_template("docs.html", page=page_model(built.document), json_path=JSON_PATH)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
