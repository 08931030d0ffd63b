"""The demo shop's cart, checkout and order confirmation (the cart lives in the session)."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

from flask import abort, redirect, render_template, request, session, url_for

from webapp.demo_shop.base import bp, load_products, product_list

TAX_RATE = Decimal("0.19")
SHIPPING = Decimal("4.95")
FREE_SHIPPING_FROM = Decimal("50")
MAX_QUANTITY = 20


def _cart_lines() -> tuple[list[dict], dict]:
    """The cart's lines (items still in the shop) and its totals."""
    cart = session.get("cart", {})
    found = load_products(list(cart))
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
    found = load_products([item_id]).get(item_id)
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
            "lines": product_list(lines),
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
