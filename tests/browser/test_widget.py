"""static/widget.js in a real headless Chromium, against the real recommendation API.

The widget's page lives on ``http://localhost:<port>`` and the API on ``http://127.0.0.1:<port>``
(the same live server, two origins), so every call is a real cross-origin one. There is no
trained model: the API answers with its popular / catalogue fallback, which is all a widget
needs. The events it sends through the tracker are asserted on SQL rows after draining.
"""

from __future__ import annotations

import gzip
from urllib.parse import parse_qs, urlsplit

import pytest

from demo.load import DEMO_SITE_NAME
from tests.conftest import PROJECT_ROOT
from tracking.catalogue import upsert_items, validate_item
from tracking.identity import user_hash
from tracking.schema import events
from tracking.sites import create_site

pytestmark = pytest.mark.browser

WIDGET = PROJECT_ROOT / "static" / "widget.js"
XSS = "<img src=x onerror=alert(1)>"
IS_READY = "[data-ecrm-state=ready]"
READY = "[data-ecrm-recs]" + IS_READY
API = ("/v1/recommendations", "/similar")


def is_api(url: str) -> bool:
    return urlsplit(url).path.startswith("/v1/") and urlsplit(url).path.endswith(API)


def catalogue(shop) -> list[dict]:
    """A small catalogue: every item fits in one answer."""
    picture = f"{shop.origin}/shop/img/{{}}.svg"
    return [
        {
            "item_id": "sku-1",
            "title": "Kind of Blue",
            "category": "Music/Jazz",
            "price": 12.5,
            "currency": "EUR",
            "url": f"{shop.collector}/healthz",  # a click leaves the page (and the site)
            "image_url": picture.format("sku-1"),
        },
        {
            "item_id": "sku-2",
            "title": XSS,
            "category": "Music/Jazz",
            "price": 30,
            "currency": "USD",
            "url": "/shop/plain",  # a path: the shop's own
            "image_url": picture.format("sku-2"),
        },
        {"item_id": "sku-3", "title": "Ground coffee", "category": "Coffee", "price": 3},
    ]


@pytest.fixture
def widget_shop(shop):
    """The live shop with its own site and catalogue, pushed with the server key."""
    engine = shop.app.extensions["ecrm"].engine
    shop.site, server_key = create_site(engine, "Widget shop", [shop.origin])
    shop.setup["write_key"] = shop.site.write_key
    response = shop.app.test_client().post(
        "/v1/items",
        json={"items": catalogue(shop)},
        headers={"Authorization": f"Bearer {server_key}"},
    )
    assert response.status_code == 200, response.get_json()
    # The catalogue API refuses script URLs; rows written by other means may still hold them.
    bad = {"item_id": "sku-4", "title": "Bad link", "url": "javascript:alert(1)"}
    response = shop.app.test_client().put(
        "/v1/items/sku-4", json=bad, headers={"Authorization": f"Bearer {server_key}"}
    )
    assert response.status_code == 422
    row = validate_item({**bad, "url": "https://x.test/", "image_url": "https://x.test/i.svg"})
    row.update(url="javascript:alert(1)", image_url="data:image/svg+xml,<svg/>")
    upsert_items(engine, shop.site.site_id, [row])
    return shop


def open_widget(shop, page, slots: list[dict], **setup) -> list:
    """Open pages/recs.html with these slots; return the API requests it made (live list)."""
    shop.url("home")  # the tracker's default attributes
    shop.setup.update(slots=slots, widget_attrs={}, below=False, tracker="head")
    shop.setup.update(setup)
    calls: list = []
    page.on("request", lambda r: calls.append(r) if is_api(r.url) else None)
    page.goto(f"{shop.origin}/shop/recs/test")
    return calls


def query(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def cards(page, slot: str = "#slot-1") -> list[dict]:
    """What each card shows: title, price, link, picture."""
    return page.eval_on_selector_all(
        f"{slot} li",
        """lis => lis.map(li => ({
            title: li.querySelector('.ecrm-title').textContent,
            price: li.querySelector('.ecrm-price').textContent,
            href: li.querySelector('a') && li.querySelector('a').getAttribute('href'),
            img: li.querySelector('img') && li.querySelector('img').getAttribute('src'),
            alt: li.querySelector('img') && li.querySelector('img').alt}))""",
    )


# --- rendering -----------------------------------------------------------------------------------


def test_renders_the_apis_items_as_text_and_safe_links(widget_shop, page):
    shop = widget_shop
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with page.expect_response(lambda r: is_api(r.url)) as answered:
        calls = open_widget(shop, page, [{"placement": "home", "n": "8"}])
    body = answered.value.json()
    page.wait_for_selector(READY)
    request = calls[0]
    assert urlsplit(request.url).path == "/v1/recommendations"
    assert query(request) == {
        "write_key": shop.site.write_key,
        "n": "8",
        "placement": "home",
        "anonymous_id": page.evaluate("localStorage.ecrm_aid"),  # the tracker's visitor
    }
    assert answered.value.headers["access-control-allow-origin"] == shop.origin
    shown = {c["title"]: c for c in cards(page)}
    assert [i["title"] for i in body["items"]] == [c["title"] for c in cards(page)]
    assert set(shown) == {"Kind of Blue", XSS, "Ground coffee", "Bad link"}

    blue = shown["Kind of Blue"]
    assert blue["price"] == "€12.50" and blue["href"] == f"{shop.collector}/healthz"
    assert blue["img"] == f"{shop.origin}/shop/img/sku-1.svg" and blue["alt"] == "Kind of Blue"
    # Markup in data is text: shown as typed, never parsed, nothing runs.
    assert shown[XSS]["price"] == "$30.00" and shown[XSS]["alt"] == XSS
    assert shown[XSS]["href"] == f"{shop.origin}/shop/plain"  # a path resolves on the shop
    assert page.locator("#slot-1 img[src='x']").count() == 0
    assert page.locator("#slot-1 .ecrm-title", has_text=XSS).count() == 1
    assert shown["Ground coffee"] == {
        "title": "Ground coffee",
        "price": "3.00",
        "href": None,  # no URL: a card without a link
        "img": None,
        "alt": None,
    }
    # javascript: and data: URLs are dropped: the card stays, without link or picture.
    assert shown["Bad link"]["href"] is None and shown["Bad link"]["img"] is None
    assert page.locator("a[href^='javascript:'], img[src^='data:']").count() == 0

    # Accessible: a region named by its heading, a list of cards, labelled buttons.
    region = page.get_by_role("region", name="Recommended for you")
    assert region.count() == 1
    assert region.get_by_role("list").get_by_role("listitem").count() == 4
    assert region.get_by_role("link").count() == 2
    # Four cards fit a desktop screen: no buttons to scroll (see the phone test below).
    assert page.locator(".ecrm-btn").count() == 2 and region.get_by_role("button").count() == 0
    page.wait_for_timeout(100)
    assert dialogs == []


def test_space_is_reserved_before_the_answer_and_nothing_jumps(widget_shop, page):
    held = []
    page.route("**/v1/recommendations?**", lambda route: held.append(route))
    open_widget(widget_shop, page, [{"placement": "home", "n": "4", "title": "Picked for you"}])
    page.wait_for_selector("[data-ecrm-state=loading]")
    while not held:
        page.wait_for_timeout(20)
    below = page.eval_on_selector("#after", "el => el.getBoundingClientRect().top")
    reserved = page.eval_on_selector("#slot-1", "el => el.offsetHeight")
    assert reserved > 150  # the heading and a row of empty cards
    assert page.locator("#slot-1 li").count() == 4
    held[0].continue_()
    page.wait_for_selector(READY)
    assert page.eval_on_selector("#slot-1", "el => el.offsetHeight") == reserved
    assert page.eval_on_selector("#after", "el => el.getBoundingClientRect().top") == below
    assert page.get_by_role("region", name="Picked for you").count() == 1


def test_carousel_buttons_scroll_the_track(widget_shop, page):
    page.set_viewport_size({"width": 360, "height": 740})  # a phone: the track scrolls
    open_widget(widget_shop, page, [{"placement": "home"}])
    page.wait_for_selector(READY)
    track = "#slot-1 .ecrm-track"
    assert page.eval_on_selector(track, "el => getComputedStyle(el).scrollSnapType") == (
        "x mandatory"
    )
    previous = page.get_by_role("button", name="Previous recommendations")
    following = page.get_by_role("button", name="Next recommendations")
    assert previous.is_disabled() and following.is_enabled()
    following.click()
    page.wait_for_function(f"document.querySelector('{track}').scrollLeft > 50")
    page.wait_for_function("!document.querySelector('.ecrm-btn').disabled")  # "previous"
    for _ in range(5):
        if following.is_disabled():
            break
        following.click()
        page.wait_for_timeout(400)
    assert following.is_disabled()  # the end of the track
    for _ in range(4):  # the links are reachable from the keyboard
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.className") == "ecrm-link":
            break
    else:
        raise AssertionError("Tab never reached a card's link")


def test_similar_items_with_filters_and_the_signed_in_customer(widget_shop, page):
    shop = widget_shop
    # Signed in, with the shop server's signature of the user id, as the tracker stores them.
    signature = user_hash(shop.site.identity_secret, "cust-7")
    page.add_init_script(
        f"localStorage.setItem('ecrm_uid', 'cust-7');localStorage.setItem('ecrm_uh', '{signature}')"
    )
    slot = {"placement": "product", "item-id": "sku-1", "n": "3", "exclude": "sku-2, sku-3"}
    calls = open_widget(shop, page, [slot, {"placement": "cart", "category": "Music"}])
    page.wait_for_selector(f"#slot-1{IS_READY}")
    page.wait_for_selector("#slot-2[data-ecrm-state]:not([data-ecrm-state=loading])")
    similar = next(r for r in calls if "/similar" in r.url)
    assert urlsplit(similar.url).path == "/v1/items/sku-1/similar"
    aid = page.evaluate("localStorage.ecrm_aid")
    assert query(similar) == {
        "write_key": shop.site.write_key,
        "n": "3",
        "placement": "product",
        "user_id": "cust-7",
        "user_hash": signature,
        "anonymous_id": aid,
        "exclude": "sku-2,sku-3",
    }
    titles = [c["title"] for c in cards(page)]
    assert titles and "Kind of Blue" not in titles and XSS not in titles  # the API's filters
    recs = next(r for r in calls if "/recommendations" in r.url)
    assert query(recs)["category"] == "Music" and query(recs)["user_id"] == "cust-7"
    assert query(recs)["user_hash"] == signature
    assert len(calls) == 2


def test_the_widget_sends_the_signature_the_tracker_was_given(widget_shop, page):
    shop = widget_shop
    calls = open_widget(shop, page, [{"placement": "home"}])
    page.wait_for_selector(READY)
    assert "user_id" not in query(calls[0]) and "user_hash" not in query(calls[0])
    # Identified without a signature: the user id is sent, but the API treats it as a claim.
    page.evaluate("ecrm('identify', 'cust-8')")
    page.reload()
    page.wait_for_selector(READY)
    assert query(calls[-1])["user_id"] == "cust-8" and "user_hash" not in query(calls[-1])
    signature = user_hash(shop.site.identity_secret, "cust-8")
    page.evaluate("h => ecrm('identify', 'cust-8', {}, {userHash: h})", signature)
    page.reload()
    page.wait_for_selector(READY)
    assert query(calls[-1])["user_id"] == "cust-8"
    assert query(calls[-1])["user_hash"] == signature
    page.evaluate("ecrm('reset')")  # signed out: neither is sent any more
    page.reload()
    page.wait_for_selector(READY)
    assert "user_id" not in query(calls[-1]) and "user_hash" not in query(calls[-1])


# --- events --------------------------------------------------------------------------------------


def test_shown_only_when_scrolled_into_view_then_clicked(widget_shop, page):
    shop = widget_shop
    with page.expect_response(lambda r: is_api(r.url)) as answered:
        open_widget(shop, page, [{"placement": "home"}], below=True)
    rec = answered.value.json()
    page.wait_for_selector(READY)
    shop.wait_rows(lambda rows: any(r["type"] == "page" for r in rows))
    page.evaluate("ecrm('flush')")
    page.wait_for_timeout(500)  # below the fold: nothing shown yet
    assert shop.rows(events.c.event.like("Recommendation %")) == []

    page.locator("#slot-1").scroll_into_view_if_needed()
    shown = shop.wait_event("Recommendation Shown")[0]["payload"]["properties"]
    ids = [i["item_id"] for i in rec["items"]]
    assert shown == {
        "product_ids": ids,
        "rec_id": rec["rec_id"],
        "placement": "home",
        "model_version": rec["model_version"],
        "source": rec["source"],
    }
    page.mouse.wheel(0, -2000)  # away and back: still once per answer
    page.wait_for_timeout(200)
    page.locator("#slot-1").scroll_into_view_if_needed()

    # A click on a link that leaves the site: the event must still arrive.
    page.click("#slot-1 a >> text=Kind of Blue")
    page.wait_for_url(f"{shop.collector}/healthz")
    clicked = shop.wait_event("Recommendation Clicked")[0]["payload"]["properties"]
    assert clicked == {
        "product_id": "sku-1",
        "position": ids.index("sku-1") + 1,
        "rec_id": rec["rec_id"],
        "placement": "home",
        "model_version": rec["model_version"],
        "source": rec["source"],
    }
    assert len(shop.rows(events.c.event == "Recommendation Shown")) == 1


def test_a_click_while_a_send_hangs_leaves_with_the_pagehide_beacon(widget_shop, page):
    shop = widget_shop
    open_widget(shop, page, [{"placement": "home"}])
    shop.wait_event("Recommendation Shown")
    held = []
    page.route("**/v1/batch", lambda route: held.append(route))  # the tracker's fetch hangs
    page.evaluate("ecrm('track', 'Stuck'); ecrm('flush')")
    while not held:
        page.wait_for_timeout(20)
    page.click("#slot-1 a >> text=Kind of Blue")  # the widget's flush waits behind it...
    page.wait_for_url(f"{shop.collector}/healthz")
    clicked = shop.wait_event("Recommendation Clicked")  # ...and pagehide's beacon carries it
    assert clicked[0]["payload"]["properties"]["product_id"] == "sku-1"
    page.unroute_all(behavior="ignoreErrors")


def test_a_tracker_loaded_after_the_widget_gets_its_events(widget_shop, page):
    shop = widget_shop
    calls = open_widget(
        shop,
        page,
        [{"placement": "home"}],
        tracker="late",
        widget_attrs={"write-key": shop.site.write_key, "host": shop.collector},
    )
    page.wait_for_function(
        "window.ecrm.q && window.ecrm.q.some(a => a[1] == 'Recommendation Shown')"
    )  # queued in the stub until the tracker comes
    assert query(calls[0])["anonymous_id"].startswith("tmp-")  # no visitor id yet: a throwaway
    shown = shop.wait_event("Recommendation Shown")[0]
    assert shown["payload"]["properties"]["placement"] == "home"


# --- failures ------------------------------------------------------------------------------------


def answer(kind: str, origin: str):
    cors = {"Access-Control-Allow-Origin": origin}

    def handle(route):
        if kind == "down":
            route.abort()
        elif kind == "500":
            route.fulfill(status=500, body='{"oops', headers=cors)
        elif kind == "garbage":
            route.fulfill(status=200, body=b"\x00<html>", headers=cors)
        elif kind == "empty":
            body = '{"rec_id": "0", "source": "popular", "placement": "home", "items": []}'
            route.fulfill(status=200, body=body, content_type="application/json", headers=cors)
        # "hang": never answered; the widget's timeout gives up

    return handle


@pytest.mark.parametrize("kind", ["down", "500", "garbage", "empty", "hang"])
def test_failures_collapse_the_slot_quietly(widget_shop, page, kind):
    page.route("**/v1/recommendations?**", answer(kind, widget_shop.origin))
    open_widget(widget_shop, page, [{"placement": "home"}], widget_attrs={"timeout": "300"})
    page.wait_for_selector("[data-ecrm-state=empty]", state="attached")
    assert page.eval_on_selector("#slot-1", "el => [el.hidden, el.offsetHeight, el.innerHTML]") == [
        True,
        0,
        "",
    ]
    page.wait_for_timeout(100)
    assert widget_shop.rows(events.c.event.like("Recommendation %")) == []
    page.unroute_all(behavior="ignoreErrors")  # the request left hanging
    # the page fixture asserts that no error reached the page


def test_a_refused_key_collapses_and_says_why(widget_shop, page):
    warnings = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    open_widget(widget_shop, page, [{}], widget_attrs={"write-key": "wk_unknown"})
    page.wait_for_selector("[data-ecrm-state=empty]", state="attached")
    page.wait_for_function("true")  # let the console message through
    page.wait_for_timeout(100)
    assert len(warnings) == 1 and warnings[0].startswith("ecrm widget: 401 ")
    assert "unknown or revoked write key" in warnings[0]


def test_slots_added_later_render_once(widget_shop, page):
    calls = open_widget(widget_shop, page, [{"placement": "home"}])
    page.wait_for_selector(READY)
    page.evaluate(
        """() => { const el = document.createElement('div');
        el.id = 'late'; el.setAttribute('data-ecrm-recs', '');
        el.setAttribute('data-placement', 'late'); el.setAttribute('data-title', '');
        document.body.append(el); }"""
    )
    page.wait_for_selector(f"#late{IS_READY}")
    assert page.get_by_role("region", name="Recommendations").count() == 1  # no visible title
    for _ in range(3):  # more changes to the page, and moving a slot, draw nothing again
        page.evaluate("document.body.append(document.getElementById('late'))")
        page.wait_for_timeout(60)
    page.evaluate("ecrmWidget.scan()")
    assert [query(r)["placement"] for r in calls] == ["home", "late"]
    assert page.locator(".ecrm-recs").count() == 2


# --- the demo shop ------------------------------------------------------------------------------


def test_demo_shop_pages_render_a_widget(shop, page):
    engine = shop.app.extensions["ecrm"].engine
    shop.site, _ = create_site(engine, DEMO_SITE_NAME, [shop.collector])
    items = [
        {
            "item_id": f"sku-{i}",
            "title": f"Record {i}",
            "category": "Music/Jazz",
            "price": 10 + i,
            "url": f"/demo/products/sku-{i}",  # as the generated demo catalogue has them
            "image_url": f"/demo/img/sku-{i}.svg",
        }
        for i in range(1, 6)
    ]
    upsert_items(engine, shop.site.site_id, [validate_item(i) for i in items])
    calls: list = []
    page.on("request", lambda r: calls.append(r) if is_api(r.url) else None)

    page.goto(f"{shop.collector}/demo/")
    page.wait_for_selector(READY)
    assert page.get_by_role("region", name="Recommended for you").count() == 1
    link = page.locator(".ecrm-link").first.get_attribute("href")
    assert link.startswith(f"{shop.collector}/demo/products/")  # the catalogue's own URLs

    page.goto(f"{shop.collector}/demo/products/sku-1")
    page.wait_for_selector(READY)
    assert urlsplit(calls[-1].url).path == "/v1/items/sku-1/similar"
    assert page.get_by_role("region", name="Customers who bought this also bought").count() == 1

    page.click("#add-to-cart")
    page.wait_for_url("**/cart")
    page.wait_for_selector(READY)
    assert query(calls[-1])["placement"] == "cart" and query(calls[-1])["exclude"] == "sku-1"
    titles = [c["title"] for c in cards(page, "[data-ecrm-recs]")]
    assert titles and "Record 1" not in titles
    assert [query(r)["placement"] for r in calls] == ["home", "product", "cart"]


# --- the file itself -----------------------------------------------------------------------------


def test_widget_is_small_and_never_uses_inner_html():
    source = WIDGET.read_bytes()
    assert len(gzip.compress(source, compresslevel=9)) <= 6 * 1024  # served as is: no build
    assert b"innerHTML" not in source and b"eval(" not in source
    assert b"insertAdjacentHTML" not in source and b"document.write" not in source
