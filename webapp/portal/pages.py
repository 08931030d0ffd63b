"""The signed-in customer's pages: home, profile (email change by code), addresses, orders.

Every view reads ``g.customer`` (set by :func:`customer_required`) and passes its site and user
id to the domain functions, which match both: an address id of another customer is a 404.
"""

from __future__ import annotations

from flask import abort, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from accounts import addresses, portal_orders, profile, webhooks
from accounts.addresses import TooManyAddresses
from webapp.clients import clients
from webapp.portal import bp, customer_required
from webapp.portal.auth import address_key, client_key, limit
from webapp.portal.confirm import check_confirmation, pending_confirmation, send_confirmation
from webapp.portal.mail import check_deliverable
from webapp.staff_auth import limiter

EMAIL_PENDING = "portal_email_change"  # the Flask session's note of the new address


def _me() -> tuple[int, str]:
    return g.customer.site_id, g.customer.user_id


@bp.get("/")
@customer_required
def home():
    """The account's home: who is signed in and where to go."""
    with clients().engine.connect() as conn:
        found = profile.read_profile(conn, *_me())
    return render_template("portal/home.html", profile=found)


@bp.route("/profile", methods=["GET", "POST"])
@customer_required
def profile_page():
    """Name, phone and birth date; the email is changed with a code (below the form)."""
    engine = clients().engine
    with engine.connect() as conn:
        found = profile.read_profile(conn, *_me()) or {}
    if request.method == "GET":
        saved = request.args.get("saved") == "1"
        return render_template(
            "portal/profile.html", values=found, errors={}, saved=saved, email_errors={}
        )
    values, problems = profile.check_profile(request.form)
    if problems:
        shown = {**found, **{k: request.form.get(k, "")[:300] for k in values}}
        page = render_template(
            "portal/profile.html", values=shown, errors=problems, saved=False, email_errors={}
        )
        return page, 400
    with engine.begin() as conn:
        profile.update_profile(conn, *_me(), values)
        _customer_updated(conn)
    profile.refresh_answers(clients().redis, *_me())  # the age trait feeds the rules
    return redirect(url_for("portal.profile_page", saved=1), 303)


def _customer_updated(conn) -> None:
    # The shop hears of the change in the change's own transaction (accounts.webhooks).
    site_id, user_id = _me()
    data = profile.read_profile(conn, site_id, user_id) or {"user_id": user_id}
    webhooks.emit(conn, site_id=site_id, event_type="customer.updated", data=data)


def _address_event(conn, event_type: str, address: dict | None) -> None:
    site_id, user_id = _me()
    data = {"user_id": user_id, "address": address}
    webhooks.emit(conn, site_id=site_id, event_type=event_type, data=data)


@bp.post("/email")
@customer_required
@limiter.limit(
    lambda: limit("PORTAL_CODE_LIMIT_CLIENT"), key_func=client_key, scope="portal-client"
)
@limiter.limit(
    lambda: limit("PORTAL_CODE_LIMIT_ADDRESS"), key_func=address_key, scope="portal-address"
)
def change_email():
    """Send a code to the new address; the change happens when the code comes back."""
    problems: dict[str, str] = {}
    email = profile.check_email(request.form.get("email"), problems)
    check_deliverable(email, problems)
    engine = clients().engine
    if problems:
        with engine.connect() as conn:
            found = profile.read_profile(conn, *_me()) or {}
        page = render_template(
            "portal/profile.html",
            values=found,
            errors={},
            saved=False,
            email_errors=problems,
            new_email=email[:254],
        )
        return page, 400
    send_confirmation("email_change", email, EMAIL_PENDING)
    return redirect(url_for("portal.confirm_email"), 303)


@bp.route("/email/confirm", methods=["GET", "POST"])
@customer_required
@limiter.limit(
    lambda: limit("PORTAL_TRY_LIMIT_CLIENT"),
    key_func=client_key,
    methods=["POST"],
    scope="portal-try",
)
def confirm_email():
    """Enter the code sent to the new address; a match makes it the profile's email."""
    pending = pending_confirmation(EMAIL_PENDING)
    if pending is None:
        return redirect(url_for("portal.profile_page"))
    if request.method == "GET":
        return render_template("portal/confirm_email.html", email=pending["email"], errors={})
    result, reason = check_confirmation("email_change", pending)
    if reason is not None:
        page = render_template(
            "portal/confirm_email.html", email=pending["email"], errors={"code": reason}
        )
        return page, 400
    site_id, user_id = _me()
    with clients().engine.begin() as conn:
        profile.update_profile(conn, site_id, user_id, {"email": result.email})
        _customer_updated(conn)
    session.pop(EMAIL_PENDING, None)
    return redirect(url_for("portal.profile_page", saved=1), 303)


@bp.get("/addresses")
@customer_required
def address_book():
    """Shipping and billing addresses, the defaults marked."""
    with clients().engine.connect() as conn:
        found = addresses.list_addresses(conn, *_me())
    return render_template("portal/addresses.html", addresses=found)


def _address_form(address_id: int | None, values: dict, errors: dict, status: int = 200):
    page = render_template(
        "portal/address_form.html", address_id=address_id, values=values, errors=errors
    )
    return page, status


def _submitted() -> dict:
    return {k: request.form.get(k, "")[:300] for k in ("kind", *addresses.FIELDS)} | {
        "is_default": request.form.get("is_default") in ("1", "on")
    }


@bp.route("/addresses/new", methods=["GET", "POST"])
@customer_required
def new_address():
    """Add an address (the first of its kind becomes the default)."""
    if request.method == "GET":
        kind = request.args.get("kind")
        return _address_form(None, {"kind": kind if kind in ("billing",) else "shipping"}, {})
    values, problems = addresses.check_address(request.form)
    if problems:
        return _address_form(None, _submitted(), problems, 400)
    try:
        with clients().engine.begin() as conn:
            added = addresses.add_address(conn, *_me(), values)
            _address_event(conn, "address.created", added)
    except TooManyAddresses:
        problems = {"kind": _("You have the most addresses allowed; delete one first.")}
        return _address_form(None, _submitted(), problems, 400)
    return redirect(url_for("portal.address_book"), 303)


@bp.route("/addresses/<int:address_id>/edit", methods=["GET", "POST"])
@customer_required
def edit_address(address_id: int):
    """Change one of the customer's addresses (another customer's: 404)."""
    engine = clients().engine
    with engine.connect() as conn:
        found = addresses.get_address(conn, *_me(), address_id)
    if found is None:
        abort(404)
    if request.method == "GET":
        return _address_form(address_id, found, {})
    values, problems = addresses.check_address(request.form)
    if problems:
        return _address_form(address_id, _submitted(), problems, 400)
    with engine.begin() as conn:
        changed = addresses.update_address(conn, *_me(), address_id, values)
        if changed is None:
            abort(404)
        _address_event(conn, "address.updated", changed)
    return redirect(url_for("portal.address_book"), 303)


@bp.post("/addresses/<int:address_id>/delete")
@customer_required
def delete_address(address_id: int):
    """Delete one of the customer's addresses (another customer's: 404)."""
    with clients().engine.begin() as conn:
        if not addresses.delete_address(conn, *_me(), address_id):
            abort(404)
        _address_event(conn, "address.deleted", {"address_id": address_id})
    return redirect(url_for("portal.address_book"), 303)


@bp.get("/orders")
@customer_required
def orders():
    """The customer's orders with their lines, newest first, paged."""
    page = request.args.get("page", 1, type=int)
    if page < 1 or page > 100_000:
        abort(404)
    with clients().engine.connect() as conn:
        found = portal_orders.order_page(conn, *_me(), page)
    if page > found.pages:
        abort(404)
    return render_template("portal/orders.html", found=found)
