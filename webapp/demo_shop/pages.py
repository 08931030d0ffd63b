"""The demo shop's browsing pages: home, category lists, search, product pages and pictures."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from flask import Response, abort, render_template, request
from markupsafe import escape

from tracking.schema import items, order_lines
from webapp.demo_shop.base import (
    as_product,
    bp,
    load_products,
    query_rows,
    shop_site,
    visible,
    visitor_text,
)

PAGE_SIZE = 24


@bp.get("/")
def home():
    """Popular items by units sold, then the rest of the catalogue."""
    site = shop_site()
    sold = (
        sa.select(order_lines.c.item_id, sa.func.sum(order_lines.c.quantity).label("units"))
        .where(order_lines.c.site_id == site.site_id)
        .group_by(order_lines.c.item_id)
        .subquery()
    )
    rows = query_rows(
        sa.select(items)
        .outerjoin(sold, sold.c.item_id == items.c.item_id)
        .where(visible(site.site_id), items.c.in_stock)
        .order_by(sa.func.coalesce(sold.c.units, 0).desc(), items.c.item_id)
        .limit(12)
    )
    return render_template("demo/home.html", products=[as_product(r) for r in rows])


@bp.get("/c/<path:category>")
def category(category: str):
    """A category listing (Product List Viewed, Product Clicked)."""
    site = shop_site()
    if visitor_text(category) is None:
        abort(404, "There is no such category in the shop.")
    rows = query_rows(
        sa.select(items)
        .where(visible(site.site_id), items.c.category == category)
        .order_by(items.c.title)
        .limit(PAGE_SIZE)
    )
    if not rows:
        abort(404, "There is no such category in the shop.")
    return render_template(
        "demo/listing.html",
        title=category,
        list_id=category,
        products=[as_product(r) for r in rows],
    )


@bp.get("/search")
def search():
    """Search by title or category (Products Searched)."""
    site = shop_site()
    query = request.args.get("q", "").strip()[:100]
    if "\x00" in query:
        abort(400, "Search for words, letters and digits.")
    rows = []
    if query:
        pattern = f"%{query.lower()}%"
        rows = query_rows(
            sa.select(items)
            .where(
                visible(site.site_id),
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
        products=[as_product(r) for r in rows],
    )


@bp.get("/products/<item_id>")
def product(item_id: str):
    """A product page (Product Viewed, Product Added)."""
    found = load_products([item_id]).get(item_id)
    if found is None:
        abort(404, "This product is not in the shop (any more).")
    return render_template("demo/product.html", product=found)


@bp.get("/img/<item_id>.svg")
def image(item_id: str):
    """A generated product picture: a colour from the id and the item's initials."""
    digest = hashlib.sha256(item_id.encode()).digest()
    hue = digest[0] * 360 // 256
    found = load_products([item_id]).get(item_id)
    initials = "".join(word[0] for word in (found["name"] if found else item_id).split()[:2])
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240" viewBox="0 0 320 240">'
        f'<rect width="320" height="240" fill="hsl({hue},55%,82%)"/>'
        f'<circle cx="160" cy="120" r="70" fill="hsl({hue},45%,62%)"/>'
        '<text x="160" y="138" font-family="Georgia,serif" font-size="54" text-anchor="middle"'
        f' fill="#fff">{escape(initials.upper())}</text></svg>'
    )
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@bp.route("/<path:unknown>")
def not_found(unknown: str):
    """Any other address under /demo/: the shop's own 404 page."""
    abort(404, "There is no such page in the shop.")
