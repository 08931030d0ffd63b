"""The demo shop's blueprint ``bp``, its guards (CSRF, CSP), error pages and shared helpers.

Every page reads the generated catalogue of the demo site (demo.load) and its templates carry
the tracker snippet and ``data-ecrm-*`` attributes only: no tracking code of its own.
"""

from __future__ import annotations

import base64
import hashlib
from decimal import Decimal

import sqlalchemy as sa
from flask import Blueprint, Response, abort, render_template, request, session, url_for
from flask_wtf.csrf import validate_csrf
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError

from demo.load import demo_site
from tracking.schema import items
from tracking.sites import Site
from webapp.clients import get_engine

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")

MAX_TEXT = 255  # item ids are at most 255 characters; nothing longer can match one


# The tracker's queue stub, exactly as a shop pastes it (README). It is the pages' only inline
# script, allowed by its hash: the policy needs no 'unsafe-inline' for scripts.
SNIPPET = "window.ecrm=window.ecrm||function(){(window.ecrm.q=window.ecrm.q||[]).push(arguments)};"
SNIPPET_HASH = base64.b64encode(hashlib.sha256(SNIPPET.encode()).digest()).decode()
# Styles may be inline: the widget adds its own <style> element (static/widget.js). Product
# pictures may come from the catalogue's own https URLs.
DEMO_CSP = (
    "default-src 'self'; "
    f"script-src 'self' 'sha256-{SNIPPET_HASH}'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; "
    "connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ERROR_TITLES = {
    400: "That did not work",
    404: "We could not find that page",
    405: "That did not work",
}


def shop_site() -> Site:
    """The demo site; without one, the page saying how to create it (503)."""
    site = demo_site(get_engine())
    if site is None:
        abort(Response(render_template("demo/missing.html"), status=503))
    return site


def visible(site_id: int):
    """The SQL condition for the items a shopper may see."""
    return sa.and_(items.c.site_id == site_id, items.c.active, ~items.c.hidden)


def query_rows(query) -> list[dict]:
    """The rows of a query, as dicts."""
    with get_engine().connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def as_product(row: dict) -> dict:
    """An item as the templates and the Ecommerce Spec want it."""
    price = Decimal(row["price"] or 0).quantize(Decimal("0.01"))
    return {
        "product_id": row["item_id"],
        "sku": row["item_id"],
        "name": row["title"],
        "category": row["category"],
        "price": price,
        "currency": row["currency"] or "EUR",
        "url": row["url"] or url_for("demo.product", item_id=row["item_id"]),
        "image_url": row["image_url"] or url_for("demo.image", item_id=row["item_id"]),
        "in_stock": row["in_stock"],
        "attributes": row["attributes"] or {},
    }


def product_list(products: list[dict]) -> list[dict]:
    """JSON-ready product list for data-ecrm-props (prices as numbers)."""
    return [
        {
            "product_id": p["product_id"],
            "sku": p["sku"],
            "name": p["name"],
            "category": p["category"],
            "price": float(p["price"]),
            "quantity": p.get("quantity", 1),
            "position": i + 1,
        }
        for i, p in enumerate(products)
    ]


def visitor_text(value: str) -> str | None:
    """Text a visitor sent, or None when it cannot name anything (NUL, too long)."""
    return None if "\x00" in value or len(value) > MAX_TEXT else value


def load_products(item_ids: list[str]) -> dict[str, dict]:
    """The visible items among ``item_ids``, by id, as products."""
    site = shop_site()
    item_ids = [i for i in item_ids if visitor_text(i) is not None]
    if not item_ids:
        return {}
    rows = query_rows(sa.select(items).where(visible(site.site_id), items.c.item_id.in_(item_ids)))
    return {r["item_id"]: as_product(r) for r in rows}


@bp.before_request
def check_csrf():
    """Refuse form posts without the session's token (Flask-WTF's, in the field ``csrf``)."""
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf", ""))
        except ValidationError:
            abort(400, "The form expired: reload the page and try again.")


@bp.after_request
def content_security_policy(response: Response) -> Response:
    """The demo's pages may run our scripts and the snippet, call this host, and nothing else."""
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = DEMO_CSP
    return response


@bp.errorhandler(HTTPException)
def error_page(error: HTTPException):
    """Errors as pages in the shop's layout, never the API's JSON."""
    status = error.code or 500
    title = ERROR_TITLES.get(status, "Something went wrong")
    message = error.description if status in ERROR_TITLES else "Please try again later."
    return render_template("demo/error.html", title=title, message=message), status


@bp.context_processor
def shop_context():
    """What every page needs: the site, categories, cart size, signed-in customer."""
    site = demo_site(get_engine())
    categories = []
    if site is not None:
        categories = [
            r["category"]
            for r in query_rows(
                sa.select(items.c.category)
                .where(visible(site.site_id), items.c.category.is_not(None))
                .distinct()
                .order_by(items.c.category)
            )
        ]
    cart = session.get("cart", {})
    return {
        "site": site,
        "categories": categories,
        "cart_count": sum(cart.values()),
        "customer": session.get("customer"),
        "spec": product_list,
        "snippet": Markup(SNIPPET),
    }
