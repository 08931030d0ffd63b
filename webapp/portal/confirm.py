"""A change confirmed by a one-time code sent by email (a new email address, deleting the account).

The code is issued for a purpose (accounts.codes) and mailed with the purpose's template
(``<purpose>_code``); the Flask session notes which portal session asked and to which address,
so only that session can enter it.
"""

from __future__ import annotations

from flask import current_app, g, request, session
from flask_babel import gettext as _

from accounts import codes
from webapp.clients import clients
from webapp.portal.mail import send_code


def send_confirmation(purpose: str, email: str, pending_key: str) -> None:
    """Issue and mail a code for ``purpose`` to ``email``; note it under ``pending_key``."""
    site_id, user_id = g.customer.site_id, g.customer.user_id
    with clients().engine.begin() as conn:
        code = codes.issue_code(
            conn, current_app.config["SECRET_KEY"], site_id, purpose, email, user_id
        )
        send_code(conn, site_id, email, f"{purpose}_code", code, user_id)
    session[pending_key] = {"session": g.customer.session_id, "email": email}


def pending_confirmation(pending_key: str) -> dict | None:
    """The code this portal session is waiting for (its ``email``), else None."""
    pending = session.get(pending_key)
    if not isinstance(pending, dict) or pending.get("session") != g.customer.session_id:
        return None
    return pending


def check_confirmation(purpose: str, pending: dict) -> tuple[codes.CodeCheck, str | None]:
    """The form's code checked; with the reason to show beside the field when it fails."""
    result = codes.check_code(
        clients().engine,
        current_app.config["SECRET_KEY"],
        g.customer.site_id,
        purpose,
        pending["email"],
        request.form.get("code", "")[:20],
        user_id=g.customer.user_id,
    )
    return result, None if result.ok else code_reason(result.problem)


def code_reason(problem: str) -> str:
    """What to show beside the code field for a code that failed (accounts.codes' problem)."""
    if problem == "wrong":
        return _("That code is not right. Check the email and try again.")
    return _("That code can no longer be used. Ask for a new one.")
