"""The demo shop's pages, served without a browser (the browser tests click through it)."""

from __future__ import annotations

import re

import pytest

from demo.load import DEMO_SITE_NAME
from tracking.catalogue import upsert_items, validate_item
from tracking.sites import create_site

ITEMS = [
    {"item_id": "sku-1", "title": "Kind of Blue", "category": "Music/Jazz", "price": 12.5},
    {"item_id": "sku-2", "title": "Blue Train", "category": "Music/Jazz", "price": 30},
    {
        "item_id": "sku-3",
        "title": "Espresso <b>Roast</b>",
        "category": "Grocery/Coffee",
        "price": 9,
    },
    {"item_id": "sku-4", "title": "Hidden", "category": "Music/Jazz", "price": 1, "active": False},
]


@pytest.fixture
def shop(app, db):
    site, _ = create_site(db, DEMO_SITE_NAME, ["http://localhost"])
    upsert_items(db, site.site_id, [validate_item(i) for i in ITEMS])
    return site


def csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_pages_carry_the_snippet_and_attributes(client, shop):
    home = client.get("/demo/").get_data(as_text=True)
    assert f'data-write-key="{shop.write_key}"' in home
    assert 'src="/static/ecrm.js"' in home
    assert 'data-ecrm-recs data-placement="home"' in home
    assert "Hidden" not in home
    assert "Espresso &lt;b&gt;Roast&lt;/b&gt;" in home  # escaped, never markup
    listing = client.get("/demo/c/Music/Jazz").get_data(as_text=True)
    assert 'data-ecrm-view="Product List Viewed"' in listing
    assert 'data-ecrm-event="Product Clicked"' in listing
    product = client.get("/demo/products/sku-1").get_data(as_text=True)
    assert 'data-ecrm-view="Product Viewed"' in product and 'data-ecrm-price="12.50"' in product
    assert 'data-ecrm-recs data-placement="product" data-item-id="sku-1"' in product
    search = client.get("/demo/search?q=blue").get_data(as_text=True)
    assert 'data-ecrm-view="Products Searched" data-ecrm-query="blue"' in search
    assert "Blue Train" in search and "Espresso" not in search
    assert client.get("/demo/products/sku-4").status_code == 404
    assert client.get("/demo/img/sku-1.svg").mimetype == "image/svg+xml"


def test_cart_checkout_order_once(client, shop):
    token = csrf(client.get("/demo/products/sku-1").get_data(as_text=True))
    assert client.post("/demo/cart/add", data={"item_id": "sku-1"}).status_code == 400  # no token
    client.post("/demo/cart/add", data={"item_id": "sku-1", "quantity": "2", "csrf": token})
    client.post("/demo/cart/add", data={"item_id": "sku-2", "csrf": token})
    cart = client.get("/demo/cart").get_data(as_text=True)
    assert 'data-ecrm-view="Cart Viewed"' in cart and "€55.00" in cart
    assert 'data-ecrm-view="Checkout Started"' in client.get("/demo/checkout").get_data(True)
    done = client.post("/demo/checkout", data={"csrf": token, "name": "Ada"})
    order_page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'data-ecrm-view="Order Completed"' in order_page
    assert 'data-ecrm-total="55.0"' in order_page
    again = client.get(done.headers["Location"]).get_data(as_text=True)
    assert 'data-ecrm-view="Order Completed"' not in again  # a reload is not a second order
    assert 'Cart <span class="badge">0</span>' in again


def test_signin_identifies_once_and_signout_resets(client, shop):
    token = csrf(client.get("/demo/signin").get_data(as_text=True))
    response = client.post("/demo/signin", data={"email": "Ada@Example.test", "csrf": token})
    assert response.status_code == 302
    first = client.get("/demo/").get_data(as_text=True)
    assert 'data-ecrm-identify="cust-' in first and "ada@example.test" in first
    assert "data-ecrm-identify" not in client.get("/demo/").get_data(as_text=True)
    assert "data-ecrm-reset" in client.get("/demo/signout").get_data(as_text=True)
    bad = client.post("/demo/signin", data={"email": "nope", "csrf": token})
    assert bad.status_code == 422


def test_without_demo_site_the_shop_says_how_to_create_it(client):
    response = client.get("/demo/")
    assert response.status_code == 503
    assert "make run" in response.get_data(as_text=True)


def test_checkout_counts_units_in_the_singular_and_the_plural(client, shop):
    token = csrf(client.get("/demo/products/sku-1").get_data(as_text=True))
    client.post("/demo/cart/add", data={"item_id": "sku-1", "csrf": token})
    assert "(1 item)" in client.get("/demo/checkout").get_data(as_text=True)
    client.post("/demo/cart/add", data={"item_id": "sku-2", "quantity": "2", "csrf": token})
    assert "(3 items)" in client.get("/demo/checkout").get_data(as_text=True)


def test_my_account_opens_the_portal_with_a_portal_session(client, shop):
    token = csrf(client.get("/demo/signin").get_data(as_text=True))
    client.post("/demo/signin", data={"email": "ada@example.test", "csrf": token})
    home = client.get("/demo/").get_data(as_text=True)
    assert 'id="my-account"' in home
    response = client.post("/demo/account", data={"csrf": csrf(home)})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/account/enter/")
    entered = client.get(response.headers["Location"])
    assert entered.status_code == 303 and entered.headers["Location"] == "/account/"
    page = client.get("/account/")
    assert page.status_code == 200
    assert 'href="http://localhost/demo/"' in page.get_data(as_text=True)  # back to the shop
    # Once only.
    assert client.get(response.headers["Location"]).status_code == 410


def test_my_account_needs_a_signed_in_customer(client, shop):
    token = csrf(client.get("/demo/signin").get_data(as_text=True))
    response = client.post("/demo/account", data={"csrf": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/demo/signin")
    assert client.post("/demo/account").status_code == 400  # no form token
