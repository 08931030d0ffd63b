"""The demo shop under /demo/: a small store that uses the tracker as a customer's site would.

It reads the generated catalogue of the site named "Demo shop" and instruments its templates
with the tracker snippet and ``data-ecrm-*`` attributes only: no tracking code of its own.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup, escape
from werkzeug.exceptions import HTTPException

from tracking import identity
from tracking.schema import customers, items, order_lines
from tracking.sites import Site, list_sites
from webapp.clients import get_engine

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")

DEMO_SITE_NAME = "Demo shop"
TAX_RATE = Decimal("0.19")
SHIPPING = Decimal("4.95")
FREE_SHIPPING_FROM = Decimal("50")
PAGE_SIZE = 24
MAX_QUANTITY = 20
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


def demo_site(engine: sa.Engine | None = None) -> Site | None:
    """The demo shop's site (created by the run command), or None."""
    for site in list_sites(engine or get_engine()):
        if site.name == DEMO_SITE_NAME and not site.revoked:
            return site
    return None


def _site() -> Site:
    site = demo_site()
    if site is None:
        abort(Response(render_template("demo/missing.html"), status=503))
    return site


def _visible(site_id: int):
    return sa.and_(items.c.site_id == site_id, items.c.active, ~items.c.hidden)


def _rows(query) -> list[dict]:
    with get_engine().connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def _product(row: dict) -> dict:
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


def _spec(products: list[dict]) -> list[dict]:
    # JSON-ready product list for data-ecrm-props (prices as numbers).
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


@bp.app_template_global()
def csrf_token() -> str:
    """The session's CSRF token for the shop's forms."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


@bp.before_request
def check_csrf():
    """Refuse form posts without the session's token."""
    if request.method == "POST":
        token = request.form.get("csrf", "")
        if not token or not secrets.compare_digest(token, session.get("csrf", "")):
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


@bp.route("/<path:unknown>")
def not_found(unknown: str):
    """Any other address under /demo/: the shop's own 404 page."""
    abort(404, "There is no such page in the shop.")


@bp.context_processor
def shop_context():
    """What every page needs: the site, categories, cart size, signed-in customer."""
    site = demo_site()
    categories = []
    if site is not None:
        categories = [
            r["category"]
            for r in _rows(
                sa.select(items.c.category)
                .where(_visible(site.site_id), items.c.category.is_not(None))
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
        "spec": _spec,
        "snippet": Markup(SNIPPET),
    }


@bp.get("/")
def home():
    """Popular items by units sold, then the rest of the catalogue."""
    site = _site()
    sold = (
        sa.select(order_lines.c.item_id, sa.func.sum(order_lines.c.quantity).label("units"))
        .where(order_lines.c.site_id == site.site_id)
        .group_by(order_lines.c.item_id)
        .subquery()
    )
    rows = _rows(
        sa.select(items)
        .outerjoin(sold, sold.c.item_id == items.c.item_id)
        .where(_visible(site.site_id), items.c.in_stock)
        .order_by(sa.func.coalesce(sold.c.units, 0).desc(), items.c.item_id)
        .limit(12)
    )
    return render_template("demo/home.html", products=[_product(r) for r in rows])


@bp.get("/c/<path:category>")
def category(category: str):
    """A category listing (Product List Viewed, Product Clicked)."""
    site = _site()
    if _text(category) is None:
        abort(404, "There is no such category in the shop.")
    rows = _rows(
        sa.select(items)
        .where(_visible(site.site_id), items.c.category == category)
        .order_by(items.c.title)
        .limit(PAGE_SIZE)
    )
    if not rows:
        abort(404, "There is no such category in the shop.")
    return render_template(
        "demo/listing.html", title=category, list_id=category, products=[_product(r) for r in rows]
    )


@bp.get("/search")
def search():
    """Search by title or category (Products Searched)."""
    site = _site()
    query = request.args.get("q", "").strip()[:100]
    if "\x00" in query:
        abort(400, "Search for words, letters and digits.")
    rows = []
    if query:
        pattern = f"%{query.lower()}%"
        rows = _rows(
            sa.select(items)
            .where(
                _visible(site.site_id),
                sa.or_(
                    sa.func.lower(items.c.title).like(pattern),
                    sa.func.lower(items.c.category).like(pattern),
                ),
            )
            .order_by(items.c.title)
            .limit(PAGE_SIZE)
        )
    return render_template(
        "demo/listing.html",
        title=f"Search: {query}" if query else "Search",
        list_id="search",
        query=query,
        products=[_product(r) for r in rows],
    )


def _text(value: str) -> str | None:
    """Text a visitor sent, or None when it cannot name anything (NUL, too long)."""
    return None if "\x00" in value or len(value) > MAX_TEXT else value


def _load(item_ids: list[str]) -> dict[str, dict]:
    site = _site()
    item_ids = [i for i in item_ids if _text(i) is not None]
    if not item_ids:
        return {}
    rows = _rows(sa.select(items).where(_visible(site.site_id), items.c.item_id.in_(item_ids)))
    return {r["item_id"]: _product(r) for r in rows}


@bp.get("/products/<item_id>")
def product(item_id: str):
    """A product page (Product Viewed, Product Added)."""
    found = _load([item_id]).get(item_id)
    if found is None:
        abort(404, "This product is not in the shop (any more).")
    return render_template("demo/product.html", product=found)


def _cart_lines() -> tuple[list[dict], dict]:
    cart = session.get("cart", {})
    found = _load(list(cart))
    lines = []
    for item_id, quantity in cart.items():
        if item_id in found:
            lines.append({**found[item_id], "quantity": quantity})
    subtotal = sum((line["price"] * line["quantity"] for line in lines), Decimal("0"))
    tax = (subtotal * TAX_RATE / (1 + TAX_RATE)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    shipping = Decimal("0") if subtotal >= FREE_SHIPPING_FROM or not lines else SHIPPING
    totals = {"subtotal": subtotal, "tax": tax, "shipping": shipping, "total": subtotal + shipping}
    return lines, totals


def _quantity(raw: str) -> int | None:
    """The quantity a form asked for, or None unless it is a whole number from 1 to 20."""
    raw = raw.strip() or "1"
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 3:
        return None
    quantity = int(raw)
    return quantity if 1 <= quantity <= MAX_QUANTITY else None


@bp.post("/cart/add")
def cart_add():
    """Add an item to the cart kept in the signed session cookie."""
    item_id = request.form.get("item_id", "")
    found = _load([item_id]).get(item_id)
    if found is None:
        abort(404, "This product is not in the shop (any more).")
    quantity = _quantity(request.form.get("quantity", ""))
    if quantity is None:
        error = f"Choose a quantity from 1 to {MAX_QUANTITY}."
        return render_template("demo/product.html", product=found, error=error), 400
    cart = dict(session.get("cart", {}))
    cart[item_id] = min(cart.get(item_id, 0) + quantity, MAX_QUANTITY)
    session["cart"] = cart
    return redirect(url_for("demo.cart"))


@bp.post("/cart/remove")
def cart_remove():
    """Remove an item from the cart."""
    cart = dict(session.get("cart", {}))
    cart.pop(request.form.get("item_id", ""), None)
    session["cart"] = cart
    return redirect(url_for("demo.cart"))


@bp.get("/cart")
def cart():
    """The cart (Cart Viewed, Product Removed)."""
    lines, totals = _cart_lines()
    cart_id = session.setdefault("cart_id", uuid.uuid4().hex[:12])
    return render_template("demo/cart.html", lines=lines, totals=totals, cart_id=cart_id)


@bp.route("/checkout", methods=["GET", "POST"])
def checkout():
    """Checkout (Checkout Started); posting it completes the order."""
    lines, totals = _cart_lines()
    if not lines:
        return redirect(url_for("demo.cart"))
    if request.method == "POST":
        order_id = "ord-" + uuid.uuid4().hex[:10]
        session["last_order"] = {
            "order_id": order_id,
            "lines": _spec(lines),
            "totals": {k: float(v) for k, v in totals.items()},
            "shown": False,
        }
        session["cart"] = {}
        session.pop("cart_id", None)
        return redirect(url_for("demo.order", order_id=order_id))
    return render_template("demo/checkout.html", lines=lines, totals=totals)


@bp.get("/orders/<order_id>")
def order(order_id: str):
    """The confirmation page; it reports Order Completed once, not on every reload."""
    last = session.get("last_order")
    if not last or last["order_id"] != order_id:
        abort(404, "This order is not in this browser's session.")
    first_view = not last["shown"]
    session["last_order"] = {**last, "shown": True}
    return render_template("demo/order.html", order=last, first_view=first_view)


@bp.route("/signin", methods=["GET", "POST"])
def signin():
    """Demo sign-in: pick a customer by email (no password: it is a demo)."""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()[:200]
        if "@" not in email or "\x00" in email:
            return render_template("demo/signin.html", error="Enter an email address"), 422
        site = _site()
        user_id = _customer_for_email(site.site_id, email)
        session["customer"] = {"user_id": user_id, "email": email}
        session["identify_pending"] = True
        return redirect(url_for("demo.home"))
    return render_template("demo/signin.html", error=None)


def _customer_for_email(site_id: int, email: str) -> str:
    # Known demo customers keep their id; a new email gets a stable id derived from it.
    for row in _rows(
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
    return identity.user_hash(_site().identity_secret or "", user_id)


@bp.get("/signout")
def signout():
    """Sign out: the page calls the tracker's reset."""
    session.pop("customer", None)
    session.pop("cart", None)
    return render_template("demo/signout.html")


@bp.get("/img/<item_id>.svg")
def image(item_id: str):
    """A generated product picture: a colour from the id and the item's initials."""
    digest = hashlib.sha256(item_id.encode()).digest()
    hue = digest[0] * 360 // 256
    found = _load([item_id]).get(item_id)
    initials = "".join(word[0] for word in (found["name"] if found else item_id).split()[:2])
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
        f'<rect width="320" height="240" fill="hsl({hue},55%,82%)"/>'
        f'<circle cx="160" cy="120" r="70" fill="hsl({hue},45%,62%)"/>'
        '<text x="160" y="138" font-family="Georgia,serif" font-size="54" text-anchor="middle"'
        f' fill="#fff">{escape(initials.upper())}</text></svg>'
    )
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "max-age=86400"})
