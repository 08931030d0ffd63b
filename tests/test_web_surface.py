"""The HTML surfaces: the landing page, the favicon, the demo shop's errors and bad form input,
and the security headers every answer carries."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from demo.load import DEMO_SITE_NAME
from tracking.catalogue import upsert_items, validate_item
from tracking.sites import create_site

ITEMS = [
    {"item_id": "sku-1", "title": "Kind of Blue", "category": "Music/Jazz", "price": 12.5},
    {"item_id": "sku-2", "title": "Blue Train", "category": "Music/Jazz", "price": 30},
]


@pytest.fixture
def shop(app, db):
    site, _ = create_site(db, DEMO_SITE_NAME, ["http://localhost"])
    upsert_items(db, site.site_id, [validate_item(i) for i in ITEMS])
    return site


def csrf(client) -> str:
    page = client.get("/demo/products/sku-1").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def shop_page(response) -> str:
    """The body of an answer that is a page in the demo shop's layout (never the API's JSON)."""
    assert response.mimetype == "text/html", response.get_data(as_text=True)[:200]
    html = response.get_data(as_text=True)
    assert 'class="topbar"' in html
    assert "Back to the shop" in html or 'id="add-to-cart"' in html  # an error page, or the form
    return html


# The landing page and the icon -----------------------------------------------------------------


def test_the_front_door_links_the_docs_the_document_and_the_demo(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for href in ("/docs", "/v1/openapi.json", "/demo/"):
        assert f'href="{href}"' in html, href
    assert "console" in html and "later" in html
    assert "<script" not in html


def test_the_favicon_is_served(client):
    with client.get("/favicon.ico") as response:
        assert response.status_code == 200
        assert response.mimetype == "image/vnd.microsoft.icon"
        assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO header
        assert "max-age" in response.headers["Cache-Control"]
    with client.get("/static/favicon.svg") as svg:
        assert svg.status_code == 200


# The demo shop's errors and bad form input -----------------------------------------------------


@pytest.mark.parametrize(
    "path, status, says",
    [
        ("/demo/products/nope", 404, "not in the shop"),
        ("/demo/products/%00", 404, "not in the shop"),
        ("/demo/products/" + "x" * 300, 404, "not in the shop"),
        ("/demo/c/Nowhere", 404, "no such category"),
        ("/demo/c/Music%00", 404, "no such category"),
        ("/demo/search?q=blue%00", 400, "Search for words"),
        ("/demo/orders/ord-1", 404, "not in this browser"),
        ("/demo/no/such/page", 404, "no such page"),
    ],
)
def test_unknown_things_are_pages_in_the_shops_layout(client, shop, path, status, says):
    response = client.get(path)
    assert response.status_code == status
    assert says in shop_page(response)


@pytest.mark.parametrize(
    "form, status, says",
    [
        ({"quantity": "abc"}, 400, "Choose a quantity from 1 to 20"),
        ({"quantity": "0"}, 400, "Choose a quantity"),
        ({"quantity": "21"}, 400, "Choose a quantity"),
        ({"quantity": "-1"}, 400, "Choose a quantity"),
        ({"quantity": "1.5"}, 400, "Choose a quantity"),
        ({"quantity": "٣"}, 400, "Choose a quantity"),  # a digit, but not 0-9
        ({"quantity": "9" * 5000}, 400, "Choose a quantity"),
        ({"item_id": "nope"}, 404, "not in the shop"),
        ({"item_id": "\x00"}, 404, "not in the shop"),
        ({"item_id": "x" * 300}, 404, "not in the shop"),
        ({"csrf": "forged"}, 400, "The form expired"),
    ],
)
def test_bad_cart_input_is_a_page_saying_what_to_do(client, shop, form, status, says):
    data = {"item_id": "sku-1", "quantity": "1", "csrf": csrf(client), **form}
    response = client.post("/demo/cart/add", data=data)
    assert response.status_code == status
    assert says in shop_page(response)
    assert "Cart <span" in response.get_data(as_text=True)
    cart = client.get("/demo/cart").get_data(as_text=True)
    assert "Your cart is empty" in cart


def test_good_quantities_still_reach_the_cart(client, shop):
    token = csrf(client)
    for quantity in ("", " 2 ", "20"):
        response = client.post(
            "/demo/cart/add", data={"item_id": "sku-1", "quantity": quantity, "csrf": token}
        )
        assert response.status_code == 302, quantity
    assert 'Cart <span class="badge">20</span>' in client.get("/demo/cart").get_data(True)


@pytest.mark.parametrize(
    "path, form, status",
    [
        ("/demo/cart/remove", {"item_id": "\x00"}, 302),
        ("/demo/signin", {"email": "ada\x00@example.test"}, 422),
        ("/demo/signin", {"email": "no-at-sign"}, 422),
        ("/demo/checkout", {"name": "\x00" * 10_000}, 302),  # an empty cart goes back to it
    ],
)
def test_other_forms_never_fail_on_odd_input(client, shop, path, form, status):
    response = client.post(path, data={**form, "csrf": csrf(client)})
    assert response.status_code == status, response.get_data(as_text=True)[:300]


# Security headers ------------------------------------------------------------------------------


def policy(response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    parts = [
        p.strip().split(" ", 1) for p in response.headers["Content-Security-Policy"].split(";")
    ]
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts if p[0]}


HTML_PAGES = ["/", "/docs", "/demo/", "/demo/products/sku-1", "/demo/products/nope", "/demo/cart"]


@pytest.mark.parametrize("path", HTML_PAGES)
def test_every_page_has_a_policy_and_cannot_be_framed_or_sniffed(client, shop, path):
    response = client.get(path)
    assert response.mimetype == "text/html"
    csp = policy(response)
    assert csp["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in csp.get("script-src", "")
    assert "'unsafe-eval'" not in csp.get("script-src", "")
    assert "script-src" in csp or csp["default-src"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    html = response.get_data(as_text=True)
    # Every inline script is allowed by its hash; none runs otherwise.
    for script in re.findall(r"<script>(.*?)</script>", html, re.S):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp["script-src"]
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"


def test_the_page_without_a_demo_site_has_the_headers_too(client):
    response = client.get("/demo/")
    assert response.status_code == 503
    assert policy(response)["frame-ancestors"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/v1/openapi.json",
        "/v1/items",
        "/v1/nowhere",
        "/static/ecrm.js",
        "/demo/img/sku-1.svg",
    ],
)
def test_every_other_answer_is_not_sniffed(client, shop, path):
    with client.get(path) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
