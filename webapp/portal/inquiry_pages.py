"""The signed-in customer's inquiries (the voice of the customer): list, open one, its thread.

Domain rules live in :mod:`accounts.inquiries`; every call passes the signed-in customer's site
and user id, so an inquiry of anyone else is a 404 exactly like one that does not exist. Text is
shown as text (the templates escape it; the page's policy runs no inline script). Staff replies
from the console (webapp/console/inquiries.py) appear in the thread.
"""

from __future__ import annotations

from flask import abort, g, redirect, render_template, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _

from accounts import inquiries
from accounts.inquiries import CATEGORIES, MAX_BODY, MAX_SUBJECT, InquiryError
from webapp.clients import clients
from webapp.portal import bp, customer_required

LIMITS = {"subject": MAX_SUBJECT, "body": MAX_BODY}
KEPT = MAX_BODY * 2  # longer text is not sent back in the form: the customer pasted too much


def _me() -> tuple[int, str]:
    return g.customer.site_id, g.customer.user_id


def category_label(category: str) -> str:
    """A category's name in the page's language."""
    return {
        "question": _("Question"),
        "complaint": _("Complaint"),
        "return": _("Return"),
        "suggestion": _("Suggestion"),
    }.get(category, category)


def status_label(status: str) -> str:
    """A status in the page's language, as the customer reads it."""
    return {
        "open": _("Waiting for the shop"),
        "waiting": _("The shop is looking into it"),
        "answered": _("Answered"),
        "closed": _("Closed"),
    }.get(status, status)


def problem_text(field: str, reason: str, value: object) -> str:
    """The domain's English reason for ``field`` as a sentence in the page's language."""
    if reason == "required":
        return _("is required")
    if reason.startswith("at most") and field in LIMITS:
        length = len(value) if isinstance(value, str) else 0
        return _(
            "must be at most %(limit)s characters (this one has %(length)s)",
            limit=format_decimal(LIMITS[field]),
            length=format_decimal(length),
        )
    if "NUL" in reason:
        return _("must not contain control characters")
    if field == "category":
        return _("Choose a category.")
    if field == "order_id":
        return _("is not one of your orders")
    if "closed" in reason:
        return _("This inquiry is closed. Open a new one to write to the shop again.")
    return reason


@bp.app_context_processor
def _inquiry_labels():
    return {"category_label": category_label, "status_label": status_label}


@bp.get("/inquiries")
@customer_required
def inquiry_list():
    """The customer's inquiries with their status, newest first."""
    with clients().engine.connect() as conn:
        found = inquiries.customer_inquiries(conn, *_me(), limit=200)
    return render_template("portal/inquiries.html", inquiries=found)


def _new_form(values: dict[str, str], errors: dict[str, str], status: int = 200):
    with clients().engine.connect() as conn:
        order_ids = inquiries.customer_order_ids(conn, *_me())
    page = render_template(
        "portal/inquiry_new.html",
        values=values,
        errors=errors,
        categories=CATEGORIES,
        order_ids=order_ids,
        max_subject=MAX_SUBJECT,
        max_body=MAX_BODY,
    )
    return page, status


def _kept(text: str) -> str:
    return text if len(text) <= KEPT else ""


@bp.route("/inquiries/new", methods=["GET", "POST"])
@customer_required
def new_inquiry():
    """Open an inquiry: a category, optionally one of the customer's orders, subject and text."""
    if request.method == "GET":
        order_id = request.args.get("order", "")[:255]
        return _new_form({"category": "question", "order_id": order_id}, {})
    form = {k: request.form.get(k, "") for k in ("category", "order_id", "subject", "body")}
    site_id, user_id = _me()
    with clients().engine.connect() as conn:
        problems = inquiries.check_inquiry(conn, site_id, user_id, form)
    if problems:
        errors = {f: problem_text(f, r, form.get(f)) for f, r in problems.items()}
        shown = {k: _kept(v) for k, v in form.items()}
        return _new_form(shown, errors, 400)
    with clients().engine.begin() as conn:
        inquiry_id = inquiries.open_inquiry(
            conn,
            site_id,
            user_id,
            category=form["category"],
            subject=form["subject"],
            body=form["body"],
            order_id=form["order_id"] or None,
        )
    return redirect(url_for("portal.inquiry_page", inquiry_id=inquiry_id), 303)


def _thread_page(inquiry_id: int, errors: dict[str, str], body: str = "", status: int = 200):
    with clients().engine.connect() as conn:
        found = inquiries.get_inquiry(conn, g.customer.site_id, inquiry_id, g.customer.user_id)
        if found is None:
            abort(404)
        messages = inquiries.thread(conn, found)
    page = render_template(
        "portal/inquiry.html",
        inquiry=found,
        messages=messages,
        errors=errors,
        body=body,
        max_body=MAX_BODY,
    )
    return page, status


@bp.route("/inquiries/<int:inquiry_id>", methods=["GET", "POST"])
@customer_required
def inquiry_page(inquiry_id: int):
    """One of the customer's inquiries: its thread and status; they may write again while it is
    not closed (anyone else's inquiry: 404)."""
    if request.method == "GET":
        return _thread_page(inquiry_id, {})
    body = request.form.get("body", "")
    try:
        with clients().engine.begin() as conn:
            inquiries.add_customer_message(conn, *_me(), inquiry_id, body)
    except InquiryError as e:
        if e.field == "inquiry":
            abort(404)
        return _thread_page(
            inquiry_id, {"body": problem_text("body", e.reason, body)}, _kept(body), 400
        )
    return redirect(url_for("portal.inquiry_page", inquiry_id=inquiry_id, _anchor="thread"), 303)
