"""Every HTTP surface of the service, built by :func:`create_app`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import (
    catalogue,
    cli,
    collector,
    console,
    customers_api,
    demo_shop,
    health,
    landing,
    openapi,
    portal_api,
    recommend,
    reports_api,
    rules_api,
    segments_api,
)
from webapp.clients import init_clients
from webapp.config import load_config
from webapp.errors import register_error_handlers
from webapp.portal import init_portal
from webapp.security import security_headers
from webapp.staff_auth import init_staff_auth

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class ApiAwareSessionInterface(SecureCookieSessionInterface):
    """No cookie session for the JSON API: its callers authenticate with keys, not cookies."""

    def open_session(self, app, request):
        if request.path.startswith("/v1/"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app):
        """COOKIE_SECURE "auto": Secure unless plain http on this machine (localhost, ::1...)."""
        setting = app.config["COOKIE_SECURE"]
        if setting != "auto":
            return setting
        host = request.host
        host = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        return request.is_secure or host not in LOCAL_HOSTS


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, clients, blueprints, error handlers, CLI commands."""
    app = Flask(__name__, static_folder="../static", static_url_path="/static")
    app.config.update(load_config(config))
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=app.config["COOKIE_SECURE"] is True,  # see get_cookie_secure
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
    app.register_blueprint(rules_api.bp)
    app.register_blueprint(portal_api.bp)
    app.register_blueprint(customers_api.bp)
    app.register_blueprint(segments_api.bp)
    app.register_blueprint(demo_shop.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(landing.bp)
    app.register_blueprint(console.bp)
    init_staff_auth(app)
    init_portal(app)
    app.after_request(security_headers)

    register_error_handlers(app)
    cli.register(app)
    return app
