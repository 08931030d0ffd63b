"""Delete my account: what goes, a code to the email on file, erasure, and its receipt.

``/account/delete`` says what erasure removes and what it keeps (orders, unlinked, for the
shop's accounting) and sends a 6-digit code to the customer's email on file (accounts.codes:
10 minutes, 5 tries; sending throttled per client and per address as sign-in codes are).
``/account/delete/confirm`` takes the code; a match erases the customer everywhere, as the
console and ``DELETE /v1/customers/{id}`` do (webapp.customers_api.erase_everywhere), ends the
portal session and leads to ``/account/deleted``, which shows the receipt (no personal data).

Without an email on file no code can prove the request is theirs, so the page says how to go
on: add an address on the profile page (confirmed by a code), or ask the shop, which can erase
the account with its server key.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from accounts import erasure, profile
from accounts.outbox import InvalidEmail, check_address
from webapp.clients import clients
from webapp.customers_api import erase_everywhere
from webapp.portal import COOKIE, COOKIE_PATH, bp, current_customer, customer_required
from webapp.portal.auth import PENDING, THROTTLED_PAGES, _keyed, client_key, limit
from webapp.portal.confirm import check_confirmation, pending_confirmation, send_confirmation
from webapp.portal.pages import EMAIL_PENDING
from webapp.staff_auth import limiter

DELETE_PENDING = "portal_delete"  # the Flask session's note that a code was sent
DELETED = "portal_deleted"  # the receipt to show once the account is gone (names no one)


def _me() -> tuple[int, str]:
    return g.customer.site_id, g.customer.user_id


def email_on_file() -> str | None:
    """The signed-in customer's verified email when a code can be sent to it, else None."""
    with clients().engine.connect() as conn:
        found = profile.read_profile(conn, *_me()) or {}
    email = (found.get("email") or "").strip().lower()
    try:
        check_address(email)
    except InvalidEmail:
        return None
    return email


def on_file_key() -> str:
    """Per site and address, the key sign-in codes to that address count under too."""
    customer = current_customer()
    email = (email_on_file() if customer else None) or "(none)"
    site_id = customer.site_id if customer else ""
    return _keyed("portal-address", f"{site_id}:{email}")


def _delete_page(email: str | None, errors: dict, status: int = 200):
    return render_template("portal/delete.html", email=email, errors=errors), status


def _confirm_page(errors: dict, status: int = 200):
    return render_template("portal/delete_confirm.html", errors=errors), status


@bp.get("/delete")
@customer_required
def delete_account():
    """What deleting the account removes and keeps, and how to confirm it."""
    return _delete_page(email_on_file(), {})


@bp.post("/delete")
@customer_required
@limiter.limit(
    lambda: limit("PORTAL_CODE_LIMIT_CLIENT"), key_func=client_key, scope="portal-client"
)
@limiter.limit(
    lambda: limit("PORTAL_CODE_LIMIT_ADDRESS"), key_func=on_file_key, scope="portal-address"
)
def send_delete_code():
    """Send the confirmation code to the email on file (only the newest code works)."""
    email = email_on_file()
    if email is None:
        errors = {"confirm": _("We have no email address to send a code to.")}
        return _delete_page(None, errors, 400)
    send_confirmation("delete_account", email, DELETE_PENDING)
    return redirect(url_for("portal.confirm_delete"), 303)


@bp.route("/delete/confirm", methods=["GET", "POST"])
@customer_required
@limiter.limit(
    lambda: limit("PORTAL_TRY_LIMIT_CLIENT"),
    key_func=client_key,
    methods=["POST"],
    scope="portal-try",
)
def confirm_delete():
    """Enter the code; a match erases the account everywhere and signs the customer out."""
    pending = pending_confirmation(DELETE_PENDING)
    if pending is None:
        return redirect(url_for("portal.delete_account"))
    if request.method == "GET":
        return _confirm_page({})
    _, reason = check_confirmation("delete_account", pending)
    if reason is not None:
        return _confirm_page({"code": reason}, 400)
    site_id, user_id = _me()
    customer = g.customer
    try:
        receipt = erase_everywhere(site_id, user_id, "portal")
    except erasure.UnknownCustomer:  # erased and forgotten meanwhile: nothing is left
        abort(404)
    # Their portal sessions were erased with them; the browser forgets what named them.
    for key in (DELETE_PENDING, EMAIL_PENDING, PENDING):
        session.pop(key, None)
    shop = urlsplit(customer.return_url) if customer.return_url else None
    session[DELETED] = {
        "receipt": receipt,
        "site": site_id,
        "locale": customer.locale,
        # The shop's origin only: its return URL's path or query may name the customer.
        "shop": f"{shop.scheme}://{shop.netloc}/" if shop else None,
    }
    response = redirect(url_for("portal.deleted"), 303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


@bp.get("/deleted")
def deleted():
    """The erasure receipt of the account this browser just deleted."""
    note = session.get(DELETED)
    if not isinstance(note, dict):
        return redirect(url_for("portal.no_site"))
    g.portal_site_id = note["site"]
    g.portal_locale = note.get("locale")
    return render_template("portal/deleted.html", receipt=note["receipt"], shop=note.get("shop"))


def _throttled_delete(message: str):
    if request.endpoint == "portal.confirm_delete":
        return _confirm_page({"code": message})[0]
    return _delete_page(email_on_file(), {"confirm": message})[0]


THROTTLED_PAGES["portal.send_delete_code"] = _throttled_delete
THROTTLED_PAGES["portal.confirm_delete"] = _throttled_delete
