"""The demo shop generator: deterministic, Segment-shaped, and with structure worth finding."""

from __future__ import annotations

import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from demo import Shop, ShopSpec, generate_shop, iter_batches

SMALL = ShopSpec(n_customers=60, n_items=80, days=7)
SESSION_TIMEOUT = timedelta(minutes=30)


@pytest.fixture(scope="module")
def shop() -> Shop:
    return generate_shop()


def _time(event: dict) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


def _orders(shop: Shop) -> list[dict]:
    return [e for e in shop.events if e.get("event") == "Order Completed"]


def _stitched(shop: Shop) -> dict[str, str]:
    """anonymousId -> userId, from any event carrying both (as identity stitching would)."""
    links: dict[str, str] = {}
    for event in shop.events:
        if event.get("userId") and event.get("anonymousId"):
            links.setdefault(event["anonymousId"], event["userId"])
    return links


def test_same_seed_gives_the_same_shop():
    first, second = generate_shop(SMALL), generate_shop(SMALL)
    assert first == second
    assert [e["messageId"] for e in first.events] == [e["messageId"] for e in second.events]


def test_different_seeds_give_different_shops():
    first = generate_shop(SMALL)
    second = generate_shop(replace(SMALL, seed=SMALL.seed + 1))
    assert [i["title"] for i in first.items] != [i["title"] for i in second.items]
    assert first.events != second.events
    assert not {e["messageId"] for e in first.events} & {e["messageId"] for e in second.events}


def test_no_spec_means_the_default_spec():
    assert generate_shop(None).spec == ShopSpec()


def test_every_event_has_the_segment_shape(shop):
    spec = shop.spec
    end = spec.start + timedelta(days=spec.days)
    message_ids = set()
    for event in shop.events:
        assert event["type"] in ("page", "track", "identify")
        parsed = uuid.UUID(event["messageId"])
        assert parsed.version == 4 and str(parsed) == event["messageId"]
        message_ids.add(event["messageId"])
        assert event.get("anonymousId") or event.get("userId")
        assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == 24  # ms precision
        assert spec.start <= _time(event) <= end
        if event["type"] == "track":
            assert isinstance(event["event"], str) and event["event"]
            assert isinstance(event["properties"], dict)
        if event["type"] == "identify":
            assert event["userId"] and event["traits"]["email"].endswith("@example.test")
        context = event["context"]
        assert context["library"] == {"name": "ecrm-demo", "version": "1"}
        assert context["page"]["url"] == "https://demo.example.test" + context["page"]["path"]
        assert context["userAgent"]
    assert len(message_ids) == len(shop.events)
    times = [_time(e) for e in shop.events]
    assert times == sorted(times)


def test_ecommerce_events_carry_spec_v2_properties(shop):
    seen = Counter(e.get("event") for e in shop.events)
    for name in ("Product Viewed", "Product Clicked", "Product Added", "Product Removed",
                 "Product List Viewed", "Products Searched", "Cart Viewed", "Checkout Started",
                 "Order Completed"):  # fmt: skip
        assert seen[name] > 0, name
    product_fields = {"product_id", "sku", "category", "name", "price", "currency", "url"}
    for event in shop.events:
        props, name = event.get("properties", {}), event.get("event")
        if name in ("Product Viewed", "Product Clicked", "Product Added", "Product Removed"):
            assert product_fields <= props.keys()
            assert props["url"].startswith("https://demo.example.test/")
        if name in ("Product Added", "Product Removed"):
            assert props["quantity"] >= 1
        if name == "Product Clicked":
            assert props["position"] >= 1
        if name == "Product List Viewed":
            assert props["list_id"] and props["category"]
            assert [p["position"] for p in props["products"]] == sorted(
                p["position"] for p in props["products"]
            )
        if name == "Products Searched":
            assert props["query"]
        if name in ("Cart Viewed", "Checkout Started"):
            assert props["cart_id"] and props["products"] and props["currency"] == "EUR"
            assert props["value"] == pytest.approx(
                sum(p["price"] * p["quantity"] for p in props["products"])
            )


def test_orders_add_up_and_only_sell_what_can_be_sold(shop):
    items = {item["item_id"]: item for item in shop.items}
    orders = _orders(shop)
    assert orders
    order_ids = [o["properties"]["order_id"] for o in orders]
    assert len(set(order_ids)) == len(order_ids)
    assert order_ids[0] == "ord-000001"  # numbered in time order
    for order in orders:
        props = order["properties"]
        assert order["userId"].startswith("cust-")
        for product in props["products"]:
            item = items[product["product_id"]]
            assert item["active"] and item["in_stock"]
            assert product["price"] == item["price"] and product["quantity"] >= 1
        subtotal = sum(p["price"] * p["quantity"] for p in props["products"])
        assert props["subtotal"] == pytest.approx(subtotal, abs=0.005)
        expected = props["subtotal"] + props["tax"] + props["shipping"] - props["discount"]
        assert abs(props["total"] - round(expected, 2)) < 0.005
        assert props["revenue"] == pytest.approx(props["subtotal"] - props["discount"], abs=0.005)
        assert props["checkout_id"] and props["currency"] == "EUR"


def test_taste_clusters_are_findable(shop):
    item_cluster, customer_cluster = shop.cluster_of_item(), shop.cluster_of_customer()
    links = _stitched(shop)
    hits: dict[str, list[bool]] = defaultdict(list)
    for event in shop.events:
        customer = event.get("userId") or links.get(event["anonymousId"])
        if customer is None:
            continue
        if event.get("event") == "Product Viewed":
            product_ids = [event["properties"]["product_id"]]
        elif event.get("event") == "Order Completed":
            product_ids = [p["product_id"] for p in event["properties"]["products"]]
        else:
            continue
        hits[customer] += [item_cluster[p] == customer_cluster[customer] for p in product_ids]
    shares = [sum(h) / len(h) for h in hits.values()]
    assert len(shares) > 0.9 * len(shop.customers)
    assert sum(shares) / len(shares) > 0.6  # chance is 1 / n_clusters


def test_clusters_show_in_the_catalogue(shop):
    by_cluster: dict[int, Counter] = defaultdict(Counter)
    for item in shop.items:
        by_cluster[shop.cluster_of_item()[item["item_id"]]][item["category"]] += 1
    assert len(by_cluster) == shop.spec.n_clusters
    for categories in by_cluster.values():
        top_two = sum(n for _, n in categories.most_common(2))
        assert top_two / sum(categories.values()) > 0.75


def test_anonymous_browsing_is_linked_by_identify(shop):
    linked = 0
    for anonymous_id, events in _events_by_anonymous_id(shop).items():
        for position, event in enumerate(events):
            if event["type"] == "identify":
                before = events[position - 1] if position else None
                if before is not None and "userId" not in before:
                    assert event["userId"] and event["anonymousId"] == anonymous_id
                    linked += 1
    assert linked > 20


def test_each_identify_signs_in_the_rest_of_its_session(shop):
    for events in _events_by_anonymous_id(shop).values():
        signed_in = None
        for previous, event in zip([None, *events], events, strict=False):
            if previous is None or _time(event) - _time(previous) > SESSION_TIMEOUT:
                signed_in = event.get("userId")  # a new session
            if event["type"] == "identify":
                signed_in = event["userId"]
            assert event.get("userId") == signed_in


def test_sessions_are_apart_and_events_within_them_are_close(shop):
    links = _stitched(shop)
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for event in shop.events:
        customer = event.get("userId") or links.get(event["anonymousId"])
        if customer:
            by_customer[customer].append(event)
    for events in by_customer.values():
        for previous, event in zip(events, events[1:], strict=False):
            gap = _time(event) - _time(previous)
            if event["type"] == "page" and event["name"] == "Home":  # every session opens home
                assert gap > SESSION_TIMEOUT
            else:
                assert gap < timedelta(minutes=5)


def test_anonymous_share_is_respected(shop):
    starts = [e for e in shop.events if e["type"] == "page" and e["name"] == "Home"]
    anonymous = sum("userId" not in e for e in starts) / len(starts)
    assert anonymous == pytest.approx(shop.spec.anonymous_share, abs=0.05)


def test_spend_is_concentrated_like_pareto(shop):
    revenue: Counter = Counter()
    for order in _orders(shop):
        revenue[order["userId"]] += order["properties"]["revenue"]
    ranked = sorted(revenue.values(), reverse=True)
    total = sum(ranked)
    top_customers = ranked[: len(shop.customers) // 5]
    assert sum(top_customers) / total > 0.5
    top_buyers = ranked[: len(ranked) // 5]  # concentrated even among those who buy
    assert sum(top_buyers) / total > 0.5


def test_repeat_buyers_come_back_and_rebuy_groceries(shop):
    items = {item["item_id"]: item for item in shop.items}
    per_customer: dict[str, Counter] = defaultdict(Counter)
    for order in _orders(shop):
        for product in order["properties"]["products"]:
            per_customer[order["userId"]][product["product_id"]] += 1
    orders_per_customer = Counter(o["userId"] for o in _orders(shop))
    assert sum(n > 1 for n in orders_per_customer.values()) > 20
    rebought = Counter(
        items[item_id]["category"].split("/")[0]
        for bought in per_customer.values()
        for item_id, times in bought.items()
        if times > 1
    )
    assert rebought["Grocery"] > 0
    assert rebought["Grocery"] >= sum(rebought.values()) - rebought["Grocery"]


def test_unavailable_items_are_seen_rarely(shop):
    views = Counter(
        e["properties"]["product_id"] for e in shop.events if e.get("event") == "Product Viewed"
    )
    unavailable = [views[i["item_id"]] for i in shop.items if not (i["in_stock"] and i["active"])]
    available = [views[i["item_id"]] for i in shop.items if i["in_stock"] and i["active"]]
    assert unavailable
    # Medians: one unavailable best-seller would dominate a mean.
    assert statistics.median(unavailable) < 0.4 * statistics.median(available)


def test_catalogue_rows(shop):
    items = shop.items
    assert len(items) == shop.spec.n_items
    assert len({i["item_id"] for i in items}) == len(items)
    for item in items:
        assert item["item_id"].startswith("sku-")
        assert item["url"] == f"/demo/products/{item['item_id']}"
        assert item["image_url"] == f"/demo/img/{item['item_id']}.svg"
        assert item["currency"] == "EUR" and item["price"] > 0
        assert len(item["category"].split("/")) == 2
        assert item["title"] and isinstance(item["attributes"], dict)
    categories = {i["category"] for i in items}
    assert {"Wine/Red", "Grocery/Coffee"} <= categories
    wines = [i for i in items if i["category"] == "Wine/Red"]
    assert all(i["attributes"]["age_restricted"] is True for i in wines)
    assert not any(i["attributes"].get("age_restricted") for i in items if i not in wines)
    assert 0 < sum(not i["in_stock"] for i in items) < 0.1 * len(items)
    assert sum(not i["active"] for i in items) < 0.05 * len(items)
    assert len({i["title"] for i in items}) > 0.95 * len(items)


def test_customers(shop):
    customers = shop.customers
    assert len(customers) == shop.spec.n_customers
    assert customers[0]["user_id"] == "cust-00001"
    for customer in customers:
        traits = customer["traits"]
        assert traits["email"] == f"{customer['user_id']}@example.test"
        assert traits["name"] == f"{traits['first_name']} {traits['last_name']}"
        assert 18 <= traits["age"] <= 100 and traits["city"]
        assert datetime.fromisoformat(traits["created_at"]) < shop.spec.start
        assert 0 <= customer["cluster"] < shop.spec.n_clusters
    assert set(shop.cluster_of_customer()) == {c["user_id"] for c in customers}
    assert set(shop.cluster_of_item()) == {i["item_id"] for i in shop.items}


def test_iter_batches_yields_consecutive_chunks():
    events = [{"n": n} for n in range(250)]
    batches = list(iter_batches(events, size=100))
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [e for b in batches for e in b] == events
    assert list(iter_batches([], size=10)) == []
    with pytest.raises(ValueError):
        list(iter_batches(events, size=0))


@pytest.mark.parametrize(
    "change",
    [
        {"n_customers": 0},
        {"n_items": 3, "n_clusters": 6},
        {"in_cluster_share": 1.5},
        {"anonymous_share": -0.1},
        {"days": 0},
    ],  # fmt: skip
)
def test_impossible_specs_are_refused(change):
    with pytest.raises(ValueError):
        generate_shop(ShopSpec(**change))


def test_parameters_shape_the_shop():
    tiny = generate_shop(ShopSpec(n_customers=20, n_items=12, n_clusters=2, days=1))
    assert tiny.events and {i["category"] for i in tiny.items}
    everyone_signed_in = generate_shop(replace(SMALL, anonymous_share=0.0))
    assert all("userId" in e for e in everyone_signed_in.events)
    no_repeat = generate_shop(replace(SMALL, repeat_buyer_share=0.0))
    orders_per_customer = Counter(o["userId"] for o in _orders(no_repeat))
    assert orders_per_customer and max(orders_per_customer.values()) == 1


def test_events_pass_the_collector_validation(shop):
    from tracking import events as events_module

    received = shop.spec.start + timedelta(days=shop.spec.days + 1)
    for batch in iter_batches(shop.events[:5000], size=500):
        accepted, rejected = events_module.prepare_events(
            batch,
            path="batch",
            received_at=received,
            batch_sent_at=None,
            limits=events_module.Limits(),
        )
        assert not rejected, rejected[0]
        assert len(accepted) == len(batch)


def _events_by_anonymous_id(shop: Shop) -> dict[str, list[dict]]:
    by_id: dict[str, list[dict]] = defaultdict(list)
    for event in shop.events:
        by_id[event["anonymousId"]].append(event)
    return by_id


# What a shopper would find plausible, per category (EUR), whatever the generator declares.
PLAUSIBLE_PRICES = {
    "Music/Jazz": (8, 50),
    "Music/Classical": (8, 50),
    "Music/Rock": (8, 50),
    "Books/Crime": (6, 35),
    "Books/Thriller": (6, 35),
    "Books/Children": (5, 25),
    "Books/Biography": (6, 40),
    "Grocery/Coffee": (5, 40),
    "Grocery/Cheese": (2, 15),
    "Grocery/Tea": (3, 25),
    "Home/Kitchen": (8, 200),
    "Home/Bath": (5, 80),
    "Wine/Red": (6, 40),
    "Sports/Running": (8, 350),
    "Sports/Outdoor": (10, 350),
    "Beauty/Skincare": (3, 60),
    "Toys/Board Games": (8, 70),
    "Electronics/Audio": (40, 500),
    "Garden/Plants": (4, 80),
}
# Things whose price has a narrower plausible band than their category's.
PLAUSIBLE_THINGS = {
    "Water Bottle 1 l": (8, 40),
    "Running Socks, 3 pack": (8, 25),
    "Sheet Mask": (2, 8),
    "Tent for 2": (150, 350),
    "Soap Dish": (5, 15),
}


@pytest.fixture(scope="module")
def every_category() -> Shop:
    """A catalogue drawing on every category (ten clusters, one per theme)."""
    return generate_shop(ShopSpec(n_customers=50, n_items=1500, n_clusters=10, days=2))


def test_every_category_is_priced_plausibly(every_category):
    prices = defaultdict(list)
    for item in every_category.items:
        prices[item["category"]].append(item["price"])
        for thing, (low, high) in PLAUSIBLE_THINGS.items():
            if thing in item["title"]:
                assert low <= item["price"] <= high, item
    assert set(prices) == set(PLAUSIBLE_PRICES)
    for category, (low, high) in PLAUSIBLE_PRICES.items():
        assert low <= min(prices[category]) and max(prices[category]) <= high, category
        assert len(set(prices[category])) >= 5, f"{category}: prices vary within a category"


def _size(item: dict) -> float:
    attributes = item["attributes"]
    if "weight_g" in attributes:
        return attributes["weight_g"]
    if "pot_cm" in attributes:
        return attributes["pot_cm"]
    return {"20 Tea Bags": 40, "Loose Leaf 100 g": 100, "Loose Leaf 250 g": 250}[attributes["form"]]


def _line(item: dict) -> str:
    """The product line: the title without its size (and the coffee's grind)."""
    title = item["title"].split(" (No. ")[0]
    if item["category"] == "Garden/Plants":
        return title.split(" in a ")[0]
    return title.rsplit(", ", 1)[0].replace(", Whole Beans", "").replace(", Ground", "")


@pytest.mark.parametrize(
    "category", ["Grocery/Coffee", "Grocery/Cheese", "Grocery/Tea", "Garden/Plants"]
)
def test_a_bigger_size_of_the_same_product_costs_more(every_category, category):
    by_line = defaultdict(dict)
    for item in every_category.items:
        if item["category"] == category:
            by_line[_line(item)].setdefault(_size(item), set()).add(item["price"])
    compared = 0
    for line, sizes in by_line.items():
        ordered = [sizes[size] for size in sorted(sizes)]
        for smaller, bigger in zip(ordered, ordered[1:], strict=False):
            assert max(smaller) < min(bigger), (line, sorted(sizes.items()))
            compared += 1
    assert compared >= 5, f"{category}: too few lines in several sizes to compare"
    if category == "Grocery/Coffee":  # any 1 kg bag costs more than any 250 g one
        by_size = defaultdict(list)
        for item in every_category.items:
            if item["category"] == category:
                by_size[_size(item)].append(item["price"])
        assert max(by_size[250]) < min(by_size[1000])
