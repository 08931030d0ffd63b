"""Staff sign-in for the console: Flask-Login sessions, CSRF on every form, throttled sign-in.

:func:`init_staff_auth` wires Flask-Login (the session cookie carries a random token; the store
keeps its digest: :mod:`accounts.sessions`), Flask-WTF's ``CSRFProtect`` (every form post outside
the JSON API) and Flask-Limiter on the app's Redis (sign-in attempts per account and per client).
Blueprint ``staff_auth``: sign-in and sign-out here; the one-time link and the account page in
:mod:`webapp.staff_account`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import timedelta
from urllib.parse import urlsplit

import redis
from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect

from accounts import audit, passwords
from accounts.sessions import end_session, lookup_session, start_session
from accounts.signin import authenticate
from accounts.staff import Staff, get_staff
from tracking.privacy import anonymise_ip
from webapp.clients import clients

log = logging.getLogger("ecrm.webapp")
bp = Blueprint("staff_auth", __name__, url_prefix="/console")
login_manager = LoginManager()
csrf = CSRFProtect()
# Blueprints that check their own form token (the demo shop, with Flask-WTF's token as well).
OWN_CSRF_CHECK = frozenset({"demo"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
REFUSED = "That email and password do not match an account that may sign in."


def _keyed(kind: str, value: str) -> str:
    """A rate-limit key that names nobody in Redis: an HMAC of the email or address."""
    secret = current_app.config["SECRET_KEY"].encode()
    return kind + ":" + hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()[:32]


def client_key() -> str:
    """Sign-in attempts are counted per client address (after the trusted proxies)."""
    return _keyed("client", request.remote_addr or "unknown")


def account_key() -> str:
    """... and per account tried (the email as typed, trimmed and lower-cased)."""
    return _keyed("account", request.form.get("email", "").strip().lower()[:254] or "(none)")


limiter = Limiter(key_func=client_key, key_prefix="ecrm-sign-in")


@limiter.request_filter
def _not_limited() -> bool:
    """The JSON API has its own limits (per site): skip Flask-Limiter's per-request work there."""
    return request.path.startswith("/v1/")


class StaffUser(UserMixin):
    """The signed-in staff member of this request, with the session that signed them in."""

    def __init__(self, staff: Staff, session_id: str, token: str):
        self.staff, self.session_id, self._token = staff, session_id, token

    def get_id(self) -> str:
        """The session's token: ending its row signs this browser out at its next request."""
        return self._token

    @property
    def staff_id(self) -> int:
        return self.staff.staff_id

    @property
    def email(self) -> str:
        return self.staff.email

    @property
    def grants(self) -> dict[int, str]:
        """Role per site id."""
        return self.staff.grants

    def role_on(self, site_id: int) -> str | None:
        """The role on ``site_id``, or None without a grant."""
        return self.staff.grants.get(site_id)


def session_idle() -> timedelta:
    """How long an unused session stays open."""
    return timedelta(hours=current_app.config["STAFF_SESSION_IDLE_HOURS"])


@login_manager.user_loader
def _load_user(token: str) -> StaffUser | None:
    engine = clients().engine
    found = lookup_session(engine, token, session_idle())
    if found is None:
        return None
    member = get_staff(engine, found.staff_id)
    if member is None or member.disabled:
        end_session(engine, found.session_id, "account disabled")
        return None
    return StaffUser(member, found.session_id, token)


def limits_storage_url(redis_url: str) -> str:
    """The app's Redis URL as the ``limits`` package names it (unix sockets: redis+unix://)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url.removeprefix("unix://")
    return redis_url


def _protect_forms() -> None:
    """CSRF on every form post, except the key-authenticated JSON API under /v1/."""
    if request.method in SAFE_METHODS or request.path.startswith("/v1/"):
        return
    if request.routing_exception is not None:
        return  # no such route or method: its 404 / 405 says so, not a CSRF error
    if request.blueprint in OWN_CSRF_CHECK:
        return
    csrf.protect()


def init_staff_auth(app: Flask) -> None:
    """Flask-Login, CSRFProtect and Flask-Limiter on ``app``, and the sign-in pages."""
    from webapp import staff_account  # noqa: F401  (its routes register on bp)

    passwords.use_profile(app.config["PASSWORD_PROFILE"])
    login_manager.init_app(app)
    login_manager.login_view = "staff_auth.sign_in"
    login_manager.login_message = None
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # _protect_forms decides, by path
    csrf.init_app(app)
    app.before_request(_protect_forms)
    app.config["RATELIMIT_STORAGE_URI"] = limits_storage_url(app.extensions["ecrm"].redis_url)
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {
        "socket_timeout": app.config["REDIS_TIMEOUT_SECONDS"]
    }
    limiter.init_app(app)
    app.register_blueprint(bp)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of this site, else the console's home."""
    target = target or ""
    parts = urlsplit(target)
    if (
        target.startswith("/console/")
        and not parts.scheme
        and not parts.netloc
        and "\\" not in target
        and not target.startswith("//")
    ):
        return target
    return url_for("console.home")


def begin_session(member: Staff, how: str) -> None:
    """Sign ``member`` in on a fresh session: the old Flask session is cleared, a new token made."""
    engine = clients().engine
    if current_user.is_authenticated:
        end_session(engine, current_user.session_id, "signed in again")
    session.clear()
    token, session_id = start_session(
        engine, member.staff_id, request.user_agent.string, request.remote_addr
    )
    login_user(StaffUser(member, session_id, token))
    audit.record(
        engine,
        "sign_in",
        staff_id=member.staff_id,
        email=member.email,
        detail={"how": how, "client": anonymise_ip(request.remote_addr)},
    )


def _failed(response) -> bool:
    return response.status_code == 401


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["SIGN_IN_LIMIT_CLIENT"],
    key_func=client_key,
    methods=["POST"],
    scope="client",
)
@limiter.limit(
    lambda: current_app.config["SIGN_IN_LIMIT_ACCOUNT"],
    key_func=account_key,
    methods=["POST"],
    scope="account",
    deduct_when=_failed,
)
def sign_in():
    """The sign-in form; a wrong password, an unknown or disabled account: the same 401."""
    next_path = request.args.get("next", "")
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(safe_next(next_path))
        return render_template("console/sign_in.html", email="", next=next_path)
    email = request.form.get("email", "")
    result = authenticate(clients().engine, email, request.form.get("password", ""))
    if result.staff is None:
        audit.record(
            clients().engine,
            "sign_in_failed",
            staff_id=result.staff_id,
            email=result.email,
            detail={"reason": result.reason, "client": anonymise_ip(request.remote_addr)},
        )
        page = render_template(
            "console/sign_in.html", email=email[:254], next=next_path, error=REFUSED
        )
        return page, 401
    begin_session(result.staff, "password")
    return redirect(safe_next(next_path), 303)


@bp.errorhandler(RateLimitExceeded)
def _too_many(error: RateLimitExceeded):
    """429 with Retry-After: the sign-in form, saying when to try again."""
    limit = limiter.current_limit
    wait = max(1, int(limit.reset_at - time.time())) if limit else 60
    minutes = (wait + 59) // 60
    message = "Too many sign-in attempts. Try again in " + (
        f"{minutes} minutes." if minutes > 1 else "a minute."
    )
    page = render_template(
        "console/sign_in.html",
        email=request.form.get("email", "")[:254],
        next=request.args.get("next", ""),
        error=message,
    )
    return page, 429, {"Retry-After": str(wait)}


@bp.errorhandler(redis.RedisError)
def _throttle_unavailable(error: redis.RedisError):
    """Attempts cannot be counted without Redis: refuse (503), never sign in unthrottled."""
    log.warning("sign-in refused: the throttling store is unreachable (%s)", error)
    page = render_template(
        "console/sign_in.html",
        email=request.form.get("email", "")[:254],
        next=request.args.get("next", ""),
        error="Signing in is unavailable for a moment. Try again shortly.",
    )
    return page, 503, {"Retry-After": str(current_app.config["RETRY_AFTER_SECONDS"])}


@bp.post("/sign-out")
def sign_out():
    """End this session (its row too, so the cookie is worthless) and go to the sign-in page."""
    if current_user.is_authenticated:
        engine = clients().engine
        end_session(engine, current_user.session_id, "signed out")
        audit.record(engine, "sign_out", staff_id=current_user.staff_id, email=current_user.email)
        logout_user()
    session.clear()
    return redirect(url_for("staff_auth.sign_in"), 303)
