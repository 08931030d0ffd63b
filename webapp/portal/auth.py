"""Signing customers in and out of the portal: a shop's portal token, or a code sent by email.

``/account/enter/<token>`` exchanges a token (``POST /v1/portal/sessions``) for a session
cookie and sends the browser on to a URL without the token; its answers carry
``Referrer-Policy: no-referrer`` so the token leaves in no Referer. ``/account/sign-in?site=N``
asks for an email address and sends a 6-digit code (only to an address a customer of the site
has; the answer is the same either way); requests and tries are throttled per address and per
client (Flask-Limiter, as staff sign-in), and a code allows 5 tries (accounts.codes). Both
ways take ``?next=``, a portal page to land on once signed in (:func:`safe_next`: a path under
``/account/`` of this service, else the portal's home), as the inquiry reply email links to.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import unquote, urlsplit

import redis
import sqlalchemy as sa
from flask import (
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded

from accounts import codes, portal_sessions
from accounts.profile import check_email
from tracking.schema import sites
from webapp.clients import clients
from webapp.portal import COOKIE, COOKIE_PATH, bp, current_customer, log
from webapp.portal.confirm import code_reason
from webapp.portal.mail import check_deliverable, send_code
from webapp.staff_auth import limiter

PENDING = "portal_sign_in"  # the Flask session's note of the address a code was sent to
# Flask-Limiter limits; each can be set in the app's configuration under the same name.
LIMITS = {
    "PORTAL_CODE_LIMIT_ADDRESS": "5 per hour",  # codes sent to one address
    "PORTAL_CODE_LIMIT_CLIENT": "20 per hour",  # codes asked for from one client
    "PORTAL_TRY_LIMIT_CLIENT": "30 per 15 minutes",  # codes entered from one client
}
NO_REFERRER = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
MAX_NEXT = 2000  # characters of a ``next`` page


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a page of the portal to send a customer to, else None.

    Only a relative path under ``/account/`` on this service: no scheme or host (``https://x``,
    ``//x``), no backslash (browsers read ``/\\x`` as ``//x``), no control character, and no
    ``.`` or ``..`` segment, even percent-encoded, that could climb out of ``/account/``.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT:
        return None
    if not value.isprintable() or "\\" in value or not value.startswith("/account/"):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    path = unquote(parts.path)
    if "\\" in path or not path.isprintable() or "//" in path:
        return None
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    return value


def _next_arg() -> str | None:
    return safe_next(request.args.get("next"))


# Throttled forms of other modules: endpoint -> the form again with the message (a page).
THROTTLED_PAGES: dict = {}


def limit(name: str) -> str:
    """A throttling limit: the app's configuration, else the default here."""
    return current_app.config.get(name) or LIMITS[name]


def _keyed(kind: str, value: str) -> str:
    """A rate-limit key that names nobody in Redis: an HMAC of the address or the client."""
    secret = current_app.config["SECRET_KEY"].encode()
    return kind + ":" + hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:32]


def client_key() -> str:
    """Per client address (after the trusted proxies)."""
    return _keyed("portal-client", request.remote_addr or "unknown")


def address_key() -> str:
    """Per site and email address asked for (trimmed and lower-cased)."""
    email = request.form.get("email", "").strip().lower()[:254] or "(none)"
    return _keyed("portal-address", f"{request.args.get('site', '')}:{email}")


def set_session_cookie(response, token: str) -> None:
    """The customer's session cookie: HttpOnly, SameSite=Lax, Secure outside localhost."""
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=current_app.session_interface.get_cookie_secure(current_app),
    )


def begin_session(
    site_id: int, user_id: str, how: str, locale=None, return_url=None, next_page=None
):
    """Sign the customer in on a fresh session (the old one, if any, ends); a redirect to
    ``next_page`` (checked by :func:`safe_next`) or home."""
    engine = clients().engine
    previous = request.cookies.get(COOKIE)
    if previous:
        portal_sessions.end_session(
            engine, portal_sessions.session_id_of(previous[:100]), "signed in again"
        )
    session.pop("csrf_token", None)  # a new CSRF token with the new session
    session.pop(PENDING, None)
    token = portal_sessions.start_session(
        engine,
        site_id,
        user_id,
        how=how,
        locale=locale,
        return_url=return_url,
        address=request.remote_addr,
    )
    response = redirect(safe_next(next_page) or url_for("portal.home"), 303)
    set_session_cookie(response, token)
    return response


@bp.get("/enter/<token>")
def enter(token: str):
    """Exchange a portal token for a session; the token is good once, for 5 minutes."""
    found = portal_sessions.redeem_token(clients().engine, token)
    if found is None:
        page = render_template("portal/enter_gone.html")
        return page, 410, NO_REFERRER
    response = begin_session(
        found.site_id, found.user_id, "token", found.locale, found.return_url, _next_arg()
    )
    response.headers.update(NO_REFERRER)
    return response


def _site_arg() -> int | None:
    """The site a sign-in page is for (``?site=N``), when it exists and is active."""
    site_id = request.args.get("site", type=int)
    if site_id is None:
        return None
    with clients().engine.connect() as conn:
        row = conn.execute(
            sa.select(sites.c.site_id).where(
                sites.c.site_id == site_id, sites.c.revoked_at.is_(None)
            )
        ).first()
    return site_id if row else None


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(
    lambda: limit("PORTAL_CODE_LIMIT_CLIENT"),
    key_func=client_key,
    methods=["POST"],
    scope="portal-client",
)
@limiter.limit(
    lambda: limit("PORTAL_CODE_LIMIT_ADDRESS"),
    key_func=address_key,
    methods=["POST"],
    scope="portal-address",
)
def sign_in():
    """Ask for an email address and send it a code (the same answer for unknown addresses)."""
    site_id = _site_arg()
    g.portal_site_id = site_id
    if site_id is None:
        return render_template("portal/no_site.html"), 404
    next_page = _next_arg()
    if request.method == "GET":
        if current_customer() is not None and g.customer.site_id == site_id:
            return redirect(next_page or url_for("portal.home"))
        return render_template(
            "portal/sign_in.html", email="", errors={}, site_id=site_id, next_page=next_page
        )
    problems: dict[str, str] = {}
    email = check_email(request.form.get("email"), problems)
    check_deliverable(email, problems)
    if problems:
        page = render_template(
            "portal/sign_in.html",
            email=email[:254],
            errors=problems,
            site_id=site_id,
            next_page=next_page,
        )
        return page, 400
    engine = clients().engine
    with engine.begin() as conn:
        user_id = codes.customer_by_email(conn, site_id, email)
        code = codes.issue_code(
            conn, current_app.config["SECRET_KEY"], site_id, "sign_in", email, user_id
        )
        if user_id is not None:
            send_code(conn, site_id, email, "sign_in_code", code, user_id)
    session[PENDING] = {"site": site_id, "email": email, "next": next_page}
    return redirect(url_for("portal.sign_in_code"), 303)


@bp.route("/sign-in/code", methods=["GET", "POST"])
@limiter.limit(
    lambda: limit("PORTAL_TRY_LIMIT_CLIENT"),
    key_func=client_key,
    methods=["POST"],
    scope="portal-try",
)
def sign_in_code():
    """Enter the code sent to the address; a match signs the customer in."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return redirect(url_for("portal.no_site"))
    g.portal_site_id = pending["site"]
    context = {"email": pending["email"], "site_id": pending["site"]}
    if request.method == "GET":
        return render_template("portal/sign_in_code.html", errors={}, **context)
    result = codes.check_code(
        clients().engine,
        current_app.config["SECRET_KEY"],
        pending["site"],
        "sign_in",
        pending["email"],
        request.form.get("code", "")[:20],
    )
    if not result.ok:
        page = render_template(
            "portal/sign_in_code.html", errors={"code": code_reason(result.problem)}, **context
        )
        return page, 400
    return begin_session(pending["site"], result.user_id, "code", next_page=pending.get("next"))


@bp.get("/sign-in/site")
def no_site():
    """Where a customer without a shop's link lands: how to get one."""
    return render_template("portal/no_site.html"), 404


@bp.post("/sign-out")
def sign_out():
    """End the session (its row too, so the cookie is worthless); back to the shop if known."""
    customer = current_customer()
    target = url_for("portal.no_site")
    if customer is not None:
        portal_sessions.end_session(clients().engine, customer.session_id, "signed out")
        target = customer.return_url or url_for("portal.sign_in", site=customer.site_id)
    response = make_response(redirect(target, 303))
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


def _throttled_page(wait: int):
    """The page of a throttled sign-in: the form again, saying when to try."""
    minutes = (wait + 59) // 60
    message = _("Too many attempts. Try again in %(minutes)d minutes.", minutes=minutes)
    if request.endpoint in THROTTLED_PAGES:
        return THROTTLED_PAGES[request.endpoint](message)
    pending = session.get(PENDING) if request.endpoint == "portal.sign_in_code" else None
    if isinstance(pending, dict):
        g.portal_site_id = pending["site"]
        return render_template(
            "portal/sign_in_code.html",
            errors={"code": message},
            email=pending["email"],
            site_id=pending["site"],
        )
    site_id = request.args.get("site", type=int)
    g.portal_site_id = site_id
    return render_template(
        "portal/sign_in.html",
        email=request.form.get("email", "")[:254],
        errors={"email": message},
        site_id=site_id,
    )


@bp.errorhandler(RateLimitExceeded)
def _too_many(error: RateLimitExceeded):
    """429 with Retry-After, on the form that was throttled."""
    current = limiter.current_limit
    wait = max(1, int(current.reset_at - time.time())) if current else 60
    return _throttled_page(wait), 429, {"Retry-After": str(wait)}


@bp.errorhandler(redis.RedisError)
def _throttle_unavailable(error: redis.RedisError):
    """Attempts cannot be counted without Redis: refuse (503), never sign in unthrottled."""
    log.warning("portal sign-in refused: the throttling store is unreachable (%s)", error)
    page = render_template("portal/error.html", code=503, name="Service Unavailable")
    return page, 503, {"Retry-After": str(current_app.config["RETRY_AFTER_SECONDS"])}
