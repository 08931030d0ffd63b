"""The one-time sign-in link (set a password, then signed in) and a staff member's own sessions.

Routes of blueprint ``staff_auth`` (:mod:`webapp.staff_auth`): ``/console/welcome/<token>`` and
``/console/account``.
"""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import current_user, login_required

from accounts import audit
from accounts.links import link_staff, redeem_link
from accounts.passwords import MIN_LENGTH, password_problem
from accounts.sessions import end_session, list_sessions
from webapp.clients import clients
from webapp.staff_auth import begin_session, bp, session_idle

NO_REFERRER = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _gone():
    page = render_template("console/welcome_gone.html")
    return page, 410, NO_REFERRER


@bp.route("/welcome/<token>", methods=["GET", "POST"])
def welcome(token: str):
    """A one-time link: choose a password (twice), then signed in. Used or expired: 410."""
    engine = clients().engine
    member = link_staff(engine, token)
    if member is None:
        return _gone()
    if request.method == "GET":
        page = render_template("console/welcome.html", member=member, min_length=MIN_LENGTH)
        return page, 200, NO_REFERRER
    password = request.form.get("password", "")
    errors = {}
    if problem := password_problem(password):
        errors["password"] = problem.capitalize() + "."
    elif request.form.get("confirm", "") != password:
        errors["confirm"] = "The two passwords differ: type the same one twice."
    if not errors:
        member = redeem_link(engine, token, password)
        if member is None:
            return _gone()
        begin_session(member, "sign-in link")
        return redirect(url_for("console.home"), 303)
    page = render_template(
        "console/welcome.html", member=member, min_length=MIN_LENGTH, errors=errors
    )
    return page, 422, NO_REFERRER


@bp.get("/account")
@login_required
def account():
    """The signed-in person's open sessions (this one marked), each with an end button."""
    sessions = list_sessions(clients().engine, [current_user.staff_id], session_idle())
    return render_template("console/account.html", sessions=sessions)


@bp.post("/account/sessions/end")
@login_required
def account_end_session():
    """End one of one's own sessions (a browser left signed in elsewhere)."""
    engine = clients().engine
    session_id = request.form.get("session_id", "")[:64]
    ended = end_session(engine, session_id, "ended by its owner", staff_id=current_user.staff_id)
    if ended:
        audit.record(
            engine,
            "session_ended",
            staff_id=current_user.staff_id,
            email=current_user.email,
            detail={"target": current_user.email, "own": True},
        )
    if session_id == current_user.session_id:
        return redirect(url_for("staff_auth.sign_in"), 303)
    return redirect(url_for("staff_auth.account"), 303)
