"""The marketers' console, ``/console/``: one blueprint of server-rendered pages for staff.

Each page module registers its views on :data:`bp` and is imported at the bottom. Pages are scoped
to one site (``/console/<site_id>/...``) and guarded by :func:`webapp.console.access.site_page`;
every chart has its table and CSV (:mod:`webapp.console.tables`).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.routing import BuildError

from webapp.console.access import can, granted_sites, sign_in_redirect, site_page
from webapp.console.period import period_args
from webapp.console.tables import format_cell

bp = Blueprint("console", __name__, url_prefix="/console")

# Pages may run our scripts (the vendored Chart.js and static/console.js) and fetch from us
# (job progress); nothing inline, nothing from elsewhere, never framed.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# The site navigation: (endpoint, label, role needed). Only registered endpoints are shown.
NAV = (
    ("console.performance", "Recommendations", "viewer"),
    ("console.models", "Models", "viewer"),
    ("console.rules", "Rules", "viewer"),
    ("console.sales", "Sales", "viewer"),
    ("console.funnel", "Funnel", "viewer"),
    ("console.customers", "Customers", "viewer"),
    ("console.value", "Customer value", "viewer"),
    ("console.value_risk", "Churn and prospects", "viewer"),
    ("console.value_forecast", "Forecast", "viewer"),
    ("console.segments_page", "Segments", "viewer"),
    ("console.value_triggers", "Triggers", "viewer"),
    ("console.campaign_lists_page", "Campaign lists", "viewer"),
    ("console.inquiries", "Inquiries", "viewer"),
    ("console.staff", "Staff", "owner"),
    ("console.webhooks", "Webhooks", "owner"),
    ("console.audit", "Audit log", "owner"),
)


@bp.after_request
def _headers(response):
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
        response.headers.setdefault("Cache-Control", "no-store")  # staff data, never cached
    return response


@bp.app_context_processor
def _console_context():
    def nav():
        site = getattr(g, "site", None)
        if site is None:
            return []
        return [
            (endpoint, label)
            for endpoint, label, needed in NAV
            if endpoint in current_app.view_functions and can(needed)
        ]

    def keep_period(**extra):
        period = getattr(g, "period", None)
        args = period_args(period, request.args) if period is not None else {}
        return {**args, **extra}

    return {"console_nav": nav, "keep_period": keep_period, "cell": format_cell, "can": can}


@bp.get("/")
def home():
    """The first site the person may open, or a page saying they have none yet."""
    if not current_user.is_authenticated:
        return sign_in_redirect()
    sites = granted_sites()
    if not sites:
        return render_template("console/no_sites.html")
    return redirect(url_for("console.overview", site_id=sites[0].site_id))


@bp.get("/<int:site_id>/")
@site_page("viewer")
def overview(site_id: int):
    """A site's console opens on its first page (recommendation performance)."""
    for endpoint, _, needed in NAV:
        if endpoint in current_app.view_functions and can(needed):
            return redirect(
                url_for(endpoint, site_id=site_id, **period_args(g.period, request.args))
            )
    return render_template("console/no_sites.html")


@bp.get("/switch")
def switch():
    """The site switcher's target: the same page for another site (no script needed)."""
    if not current_user.is_authenticated:
        return sign_in_redirect()
    try:
        site_id = int(request.args.get("site", ""))
    except ValueError:
        return redirect(url_for("console.home"))
    endpoint = request.args.get("page", "")
    if not endpoint.startswith("console.") or endpoint not in current_app.view_functions:
        endpoint = "console.overview"
    keep = {k: v for k, v in request.args.items() if k in ("range", "from", "to")}
    # site_page answers 404 for a site the person may not open: nothing leaks here.
    try:
        return redirect(url_for(endpoint, site_id=site_id, **keep))
    except BuildError:  # a page about one thing (a customer) has no twin on another site
        return redirect(url_for("console.overview", site_id=site_id, **keep))


# Page modules register their views on bp when imported (one per page or pair of pages).
from webapp.console import (  # noqa: E402,F401
    campaign_lists,
    customers,
    erasure,
    funnel,
    inquiries,
    inspector,
    models,
    performance,
    rules,
    sales,
    segments,
    staff_pages,
    triggers,
    value,
    value_forecast,
    webhooks,
)
