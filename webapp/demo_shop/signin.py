"""The demo shop's sign-in and sign-out, and the tracker's identify call after signing in."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from flask import redirect, render_template, request, session, url_for

from accounts import portal_sessions
from tracking import identity
from tracking.schema import customers
from webapp.clients import get_engine
from webapp.demo_shop.base import bp, query_rows, shop_site
from webapp.portal_api import ENTER_PATH as PORTAL_ENTER


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """Demo sign-in: pick a customer by email (no password: it is a demo)."""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()[:200]
        if "@" not in email or "\x00" in email:
            return render_template("demo/signin.html", error="Enter an email address"), 422
        site = shop_site()
        user_id = _customer_for_email(site.site_id, email)
        session["customer"] = {"user_id": user_id, "email": email}
        session["identify_pending"] = True
        return redirect(url_for("demo.home"))
    return render_template("demo/signin.html", error=None)


def _customer_for_email(site_id: int, email: str) -> str:
    # Known demo customers keep their id; a new email gets a stable id derived from it.
    for row in query_rows(
        sa.select(customers.c.user_id, customers.c.traits).where(customers.c.site_id == site_id)
    ):
        if (row["traits"] or {}).get("email", "").lower() == email:
            return row["user_id"]
    return "cust-" + hashlib.sha256(email.encode()).hexdigest()[:10]


@bp.app_template_global()
def identify_now() -> bool:
    """True once, on the first page after sign-in, so identify is called once."""
    return bool(session.pop("identify_pending", False))


@bp.app_template_global()
def identity_hash(user_id: str) -> str:
    """The shop server's signature of its customer's id, for the tracker (identity verification)."""
    return identity.user_hash(shop_site().identity_secret or "", user_id)


@bp.post("/account")
def account():
    """ "My account": a portal session for the signed-in customer, as a shop's backend asks
    for one (POST /v1/portal/sessions), and the browser sent to its one-time URL."""
    customer = session.get("customer")
    if not customer:
        return redirect(url_for("demo.signin"), 303)
    site = shop_site()
    token, _ = portal_sessions.issue_token(
        get_engine(),
        site.site_id,
        customer["user_id"],
        return_url=url_for("demo.home", _external=True),
        locale=None,
    )
    return redirect(PORTAL_ENTER + token, 303)


@bp.get("/signout")
def signout():
    """Sign out: the page calls the tracker's reset."""
    session.pop("customer", None)
    session.pop("cart", None)
    return render_template("demo/signout.html")
