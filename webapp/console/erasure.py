"""The owner's "erase this customer" action on the customer 360 page, with a confirmation step.

GET shows what erasure does and asks to type the customer's id; POST (CSRF-checked by the
console's forms) erases them everywhere (accounts.erasure, as ``DELETE /v1/customers/{id}``
does) and shows the receipt. The audit log's entry names the receipt only, never the customer.
"""

from __future__ import annotations

from flask import abort, render_template, request
from flask_login import current_user

from accounts import audit
from accounts.personal_data import find_person
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.customers_api import erase_everywhere

MAX_ID = 255


def _person_or_404(site_id: int, user_id: str):
    if len(user_id) > MAX_ID:
        abort(404, "This site has no customer with that id.")
    with clients().engine.connect() as conn:
        person = find_person(conn, site_id, user_id)
    if person is None:
        abort(404, "This site has no customer with that id.")
    return person


def _page(person, status: int = 200, errors: dict | None = None, typed: str = ""):
    html = render_template(
        "console/erasure.html", person=person, errors=errors or {}, typed=typed, receipt=None
    )
    return html, status


@bp.get("/<int:site_id>/erasure/<path:user_id>")
@site_page("owner")
def erase_customer(site_id: int, user_id: str):
    """What erasing this customer does, and the form that confirms it."""
    return _page(_person_or_404(site_id, user_id))


@bp.post("/<int:site_id>/erasure/<path:user_id>")
@site_page("owner")
def erase_customer_confirmed(site_id: int, user_id: str):
    """Erase the customer once the owner typed their id; show the receipt."""
    person = _person_or_404(site_id, user_id)
    typed = request.form.get("confirm_id", "")[: MAX_ID + 1]
    if typed != person.user_id:
        errors = {"confirm_id": "Type the customer's id exactly as shown to confirm."}
        return _page(person, 422, errors, typed)
    receipt = erase_everywhere(site_id, person.user_id, f"staff:{current_user.staff_id}")
    audit.record(
        clients().engine,
        "customer.erase",
        staff_id=current_user.staff_id,
        email=current_user.email,
        site_id=site_id,
        detail={"receipt": receipt["receipt_id"]},
    )
    return render_template("console/erasure.html", person=None, errors={}, receipt=receipt)
