"""The customers' self-service pages, ``/account/``: one blueprint of server-rendered pages.

A customer arrives with a portal token from their shop (:mod:`webapp.portal.auth`, ``enter``)
or signs in with a code sent by email; either way they hold the ``ecrm_account`` cookie, whose
token names a server-side session (:mod:`accounts.portal_sessions`). :func:`customer_required`
puts the signed-in customer in ``g.customer`` (site id, user id, locale): every page reads and
writes that customer's data only. Pages are in English and Korean (Flask-Babel), with the site's
name and colours, a strict Content-Security-Policy (no inline script) and CSRF on every form.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import Babel, format_currency, format_datetime, format_decimal, get_locale
from werkzeug.exceptions import HTTPException

from accounts.portal_sessions import LOCALES, CustomerSession, lookup_session
from accounts.portal_settings import get_look
from tracking.schema import sites
from webapp.clients import clients

log = logging.getLogger("ecrm.webapp")
bp = Blueprint("portal", __name__, url_prefix="/account")
COOKIE = "ecrm_account"
COOKIE_PATH = "/account"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# Our stylesheet and script only; nothing inline, nothing from elsewhere, never framed. The
# site's colours come as a stylesheet of their own (/account/look.css), not inline styles.
PORTAL_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# A portal token in a request line: what the werkzeug request log must never show.
TOKEN_IN_PATH = re.compile(r"(/account/enter/)[^\s?\"']+")


class RedactPortalTokens(logging.Filter):
    """Replace a portal token in a log record's message and arguments by ``[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = TOKEN_IN_PATH.sub(r"\1[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                TOKEN_IN_PATH.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def select_locale() -> str:
    """The signed-in customer's locale (from their shop), else the browser's Accept-Language."""
    customer = getattr(g, "customer", None)
    if customer is not None and customer.locale in LOCALES:
        return customer.locale
    if getattr(g, "portal_locale", None) in LOCALES:  # a page after the session ended
        return g.portal_locale
    return request.accept_languages.best_match(LOCALES) or "en"


def current_customer() -> CustomerSession | None:
    """The customer this request's cookie signs in, or None (looked up once per request)."""
    if "customer" not in g:
        g.customer = lookup_session(clients().engine, request.cookies.get(COOKIE))
    return g.customer


def customer_required(view):
    """Only a signed-in customer reaches the view, as ``g.customer``; others go to sign in."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        customer = current_customer()
        if customer is None:
            return redirect(url_for("portal.sign_in"))
        return view(*args, **kwargs)

    return wrapper


def page_policy() -> str:
    """The portal's policy; forms may also lead back to the shop (sign-out redirects there)."""
    customer = getattr(g, "customer", None)
    if customer is None or not customer.return_url:
        return PORTAL_CSP
    parts = urlsplit(customer.return_url)
    return PORTAL_CSP.replace(
        "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}"
    )


# An id in a URL bigger than any column holds names nothing: a 404 before it reaches the database
# (which would refuse to compare with it).
LARGEST_ID = 2**63 - 1


@bp.url_value_preprocessor
def _ids_that_fit(endpoint, values):
    if values and any(
        isinstance(v, int) and v > LARGEST_ID for k, v in values.items() if k.endswith("_id")
    ):
        abort(404)


@bp.after_request
def _headers(response):
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", page_policy())
    # A customer's data, never cached; the page's language depends on the session and headers.
    response.headers.setdefault("Cache-Control", "no-store")
    response.vary.add("Accept-Language")
    return response


@bp.app_context_processor
def _portal_context():
    return {
        "portal_site_name": _site_name,
        "portal_site_id": _site_id,
        "format_datetime": format_datetime,
        "format_decimal": format_decimal,
        "money": money,
        "get_locale": get_locale,
    }


def money(amount, currency: str) -> str:
    """An amount in the page's language, with its currency when it names one."""
    if currency and len(currency) == 3 and currency.isalpha():
        try:
            return format_currency(amount, currency.upper())
        except (ValueError, LookupError):
            pass
    return format_decimal(amount, format="#,##0.00") + (f" {currency}" if currency else "")


def _site_id() -> int | None:
    """The site the page is for: the signed-in customer's, or the one signing in to."""
    customer = getattr(g, "customer", None)
    return customer.site_id if customer else getattr(g, "portal_site_id", None)


def _site_name() -> str:
    """That site's name ("" when the page is for no site)."""
    site_id = _site_id()
    if site_id is None:
        return ""
    with clients().engine.connect() as conn:
        return (
            conn.execute(sa.select(sites.c.name).where(sites.c.site_id == site_id)).scalar() or ""
        )


@bp.get("/look.css")
def look_css():
    """The site's colours as CSS custom properties (a stylesheet: the policy allows no inline
    styles)."""
    site_id = request.args.get("site", type=int)
    with clients().engine.connect() as conn:
        look = get_look(conn, site_id) if site_id is not None else get_look(conn, -1)
    body = f":root {{ --brand: {look.brand_colour}; --accent: {look.accent_colour}; }}\n"
    response = current_app.response_class(body, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.errorhandler(HTTPException)
def _error_page(error: HTTPException):
    """Errors as pages in the portal's layout, never the API's JSON."""
    return render_template("portal/error.html", code=error.code, name=error.name), error.code


@bp.errorhandler(Exception)
def _unexpected(error: Exception):
    """Logged without the request's path (it may hold a portal token); a page, never JSON."""
    log.exception("unhandled error in the portal (%s)", request.endpoint)
    return render_template("portal/error.html", code=500, name="Internal Server Error"), 500


def init_portal(app: Flask) -> None:
    """Flask-Babel, the request-log filter and the ``/account/`` blueprint on ``app``."""
    from webapp.portal import (  # noqa: F401  (their routes register on bp)
        auth,
        data_pages,
        delete,
        inquiry_pages,
        pages,
        preference_pages,
    )
    from webapp.portal.cli import portal_cli

    Babel(app, locale_selector=select_locale, default_translation_directories=str(TRANSLATIONS))
    logging.getLogger("werkzeug").addFilter(RedactPortalTokens())
    app.register_blueprint(bp)
    app.cli.add_command(portal_cli)
