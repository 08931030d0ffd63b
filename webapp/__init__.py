"""Every HTTP surface of the service, built by :func:`create_app`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import (
    catalogue,
    cli,
    collector,
    demo_shop,
    health,
    landing,
    openapi,
    recommend,
    reports_api,
)
from webapp.clients import init_clients
from webapp.config import load_config
from webapp.errors import register_error_handlers
from webapp.security import security_headers


class ApiAwareSessionInterface(SecureCookieSessionInterface):
    """No cookie session for the JSON API: its callers authenticate with keys, not cookies."""

    def open_session(self, app, request):
        if request.path.startswith("/v1/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, clients, blueprints, error handlers, CLI commands."""
    app = Flask(__name__, static_folder="../static", static_url_path="/static")
    app.config.update(load_config(config))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config["COOKIE_SECURE"],
    )
    app.json.sort_keys = False
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    app.session_interface = ApiAwareSessionInterface()
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        # The client's address (truncated into every event's context.ip), scheme and host, as
        # the trusted proxies saw them; never from headers a client could have set itself.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    init_clients(app)
    recommend.init_serving(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(collector.bp)
    app.register_blueprint(catalogue.bp)
    app.register_blueprint(recommend.bp)
    app.register_blueprint(reports_api.bp)
    app.register_blueprint(demo_shop.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(landing.bp)
    app.after_request(security_headers)

    register_error_handlers(app)
    cli.register(app)
    return app
