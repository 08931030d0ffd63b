"""The demo's sessions: each customer's visits played as pages, lists, views, carts and sign-ins.

A session looks at items mostly from the customer's taste cluster (by Zipf popularity), reaches
them from category lists, a search or a recommendation list (the widget's "Recommendation
Shown" and "Recommendation Clicked", so the console's recommendation report has a history), and
may fill a cart and check out (demo.orders). Part of
the browsing is anonymous and is linked to the customer by a sign-in (``identify``) later in the
same session, so identity stitching has work to do.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

from demo.catalogue import Catalogue
from demo.customers import Person
from demo.events import EventLog, Step
from demo.orders import Checkout, order_chances
from demo.products import CATEGORIES
from demo.spec import CURRENCY, DAY_MS, END_MARGIN_MS, ORIGIN, ShopSpec

LIST_PAGE_SIZE = 12
# The collector cuts sessions after 30 minutes of silence: keep a customer's sessions further apart.
MIN_SESSION_GAP_MS = 31 * 60_000
SIGN_IN_PATH, SIGN_IN_TITLE = "/demo/signin", "Sign in"
# The generated history's recommendation lists, as the widget reports them, labelled as generated
# (no model chose them): a list on the home page and on some product pages; sometimes the next
# product is reached by clicking it there.
REC_LIST_SIZE = 4
REC_LIST_ON_PRODUCT_PAGE = 0.6
REC_CLICK = {"home": 0.3, "product": 0.2}
REC_LABELS = {"model_version": "demo-history", "source": "demo-history"}


class Simulator:
    """Plays every customer's sessions and collects their events."""

    def __init__(
        self,
        spec: ShopSpec,
        catalogue: Catalogue,
        people: list[Person],
        start_ms: int,
        seed: np.random.SeedSequence,
    ):
        self.spec, self.catalogue, self.people = spec, catalogue, people
        self.rnd = random.Random(int(seed.generate_state(1, np.uint64)[0]))
        self.end = start_ms + spec.days * DAY_MS
        self.last_start = self.end - END_MARGIN_MS
        self.can_buy = catalogue.buy_global.total > 0
        self.checkout = Checkout(catalogue, self.rnd)
        self.log = EventLog(self.rnd, self.end)
        # Its own stream: the recommendation lists' contents and clicks.
        self.rec_rnd = random.Random(int(seed.generate_state(2, np.uint64)[1]))

    def run(self) -> None:
        """Simulate all sessions of all customers."""
        rnd = self.rnd
        for person in self.people:
            first_order, next_order = order_chances(person)
            previous_end = None
            for begin in person.session_starts:
                if previous_end is not None and begin < previous_end + MIN_SESSION_GAP_MS:
                    begin = previous_end + MIN_SESSION_GAP_MS + rnd.randrange(3_600_000)
                if begin > self.last_start:
                    continue
                chance = first_order if person.orders == 0 else next_order
                converting = self.can_buy and rnd.random() < chance
                previous_end = self._session(person, begin, converting)

    def _pick(self, cluster: int, buying: bool) -> int:
        """An item the customer looks at (or buys): own cluster by Zipf, else anything."""
        catalogue, rnd = self.catalogue, self.rnd
        own = rnd.random() < self.spec.in_cluster_share
        if buying:
            sampler = catalogue.buy_by_cluster[cluster] if own else catalogue.buy_global
            if sampler.total <= 0:
                sampler = catalogue.buy_global
        else:
            sampler = catalogue.view_by_cluster[cluster] if own else catalogue.view_global
        return sampler.draw(rnd.random())

    def _intent(self, person: Person, converting: bool) -> tuple[list[int], set[int]]:
        """The items a session will look at, and those among them it will buy."""
        rnd = self.rnd
        basket: set[int] = set()
        if not converting:
            count = min(9, 1 + _poisson(rnd, 2.5))
            return [self._pick(person.cluster, buying=False) for _ in range(count)], basket
        lines = min(6, 1 + _poisson(rnd, 0.35 * math.sqrt(person.value)))
        for _ in range(lines * 3):
            if len(basket) >= lines:
                break
            item = self._pick(person.cluster, buying=True)
            if item not in person.bought:
                basket.add(item)
        if not basket:  # owns everything drawn: buy anything available
            basket.add(self._pick(person.cluster, buying=True))
        browsing = min(5, _poisson(rnd, 1.5))
        views = sorted(basket) + [self._pick(person.cluster, buying=False) for _ in range(browsing)]
        rnd.shuffle(views)
        return views, basket

    def _session(self, person: Person, begin: int, converting: bool) -> int:
        """Plan and write one session; return the time of its last event."""
        rnd, catalogue = self.rnd, self.catalogue
        steps: list[Step] = [Step("page", "Home", _page_props("/demo/", "Demo Shop"), "/demo/",
                                  "Demo Shop")]  # fmt: skip
        add = steps.append
        views, basket = self._intent(person, converting)
        cart: dict[int, int] = {}
        cart_id = f"cart-{rnd.getrandbits(64):016x}"
        casual = 0.06 if converting else 0.12  # adds later removed again, or abandoned
        via_search = rnd.random() < 0.3
        shown: tuple[int, int] | None = None  # (category, page) of the list on screen
        # The page whose recommendation list is on screen: (placement, path, title), or None.
        recs: tuple[str, str, str] | None = None if via_search else ("home", "/demo/", "Demo Shop")
        for position, item in enumerate(views):
            product = catalogue.products[item]
            clicked = self._leave(add, recs, item) if recs else False
            if clicked:
                shown = None
            elif position == 0 and via_search:
                query = rnd.choice(catalogue.search_terms[item])
                add(Step("track", "Products Searched", {"query": query}, "/demo/search",
                         f"Search: {query}"))  # fmt: skip
            elif catalogue.list_rank[item] >= 0:
                category, rank = catalogue.category_list[item], catalogue.list_rank[item]
                here = (category, rank // LIST_PAGE_SIZE)
                # Often the next product is reached from the list; otherwise by a link.
                if here != shown and (shown is None or rnd.random() < 0.6):
                    self._list_steps(add, category, here[1])
                    shown = here
                if here == shown:
                    props = {**product, "position": rank + 1}
                    add(Step("track", "Product Clicked", props, catalogue.list_paths[category],
                             product["category"]))  # fmt: skip
                    clicked = True
            product_path = catalogue.product_paths[item]
            add(Step("track", "Product Viewed", dict(product), product_path, product["name"],
                     clicked))  # fmt: skip
            recs = None
            if self.rec_rnd.random() < REC_LIST_ON_PRODUCT_PAGE:
                recs = ("product", product_path, product["name"])
            if item in cart or not catalogue.available_list[item]:
                continue
            if item in basket or rnd.random() < casual:
                cart[item] = self.checkout.quantity(item)
                props = {**product, "quantity": cart[item], "cart_id": cart_id}
                add(Step("track", "Product Added", props, product_path, product["name"]))

        if recs:
            self._leave(add, recs, None)
        if converting and person.repeat_buyer:
            self.checkout.restock(person, cart, basket, cart_id, add)

        if converting:
            removed = [item for item in cart if item not in basket]
        elif cart and rnd.random() < 0.15:
            removed = [rnd.choice(list(cart))]
        else:
            removed = []
        for item in removed:
            props = {**catalogue.products[item], "quantity": cart.pop(item), "cart_id": cart_id}
            add(Step("track", "Product Removed", props, "/demo/cart", "Your cart"))

        checkout_at = None
        if cart and (converting or rnd.random() < 0.5):
            value = self.checkout.cart_value(cart) / 100
            props = {"cart_id": cart_id, "products": self.checkout.cart_products(cart),
                     "value": value, "currency": CURRENCY}  # fmt: skip
            add(Step("track", "Cart Viewed", props, "/demo/cart", "Your cart"))
            if converting or rnd.random() < 0.35:
                checkout_id = f"chk-{rnd.getrandbits(64):016x}"
                checkout_at = len(steps)
                props = {"checkout_id": checkout_id, "cart_id": cart_id, "value": value,
                         "revenue": value, "currency": CURRENCY,
                         "products": self.checkout.cart_products(cart)}  # fmt: skip
                add(Step("track", "Checkout Started", props, "/demo/checkout", "Checkout"))
                if converting:
                    add(self.checkout.order_step(person, cart, checkout_id, cart_id))

        signed_in = rnd.random() >= self.spec.anonymous_share
        if not signed_in and (converting or rnd.random() < 0.5):
            if checkout_at is not None and (converting or rnd.random() < 0.6):
                # Most sign-ins happen at checkout (orders need one); some earlier, browsing.
                at = checkout_at if rnd.random() < 0.6 else rnd.randint(1, checkout_at)
            else:
                at = rnd.randint(1, len(steps))
            steps.insert(at, Step("identify", "", person.traits, SIGN_IN_PATH, SIGN_IN_TITLE))
        return self.log.write(person, steps, begin, signed_in)

    def _leave(
        self, add: Callable[[Step], None], recs: tuple[str, str, str], item: int | None
    ) -> bool:
        """The list on the page being left, shown; True if ``item`` is reached by a click on it."""
        rnd = self.rec_rnd
        placement, path, title = recs
        clicked = item is not None and rnd.random() < REC_CLICK[placement]
        products = self.catalogue.products
        picked = rnd.sample(range(len(products)), REC_LIST_SIZE + 1)
        listed = ([item] if clicked else []) + [i for i in picked if i != item]
        listed = listed[:REC_LIST_SIZE]
        rnd.shuffle(listed)
        base = {"rec_id": f"{rnd.getrandbits(128):032x}", "placement": placement, **REC_LABELS}
        shown = {"product_ids": [products[i]["product_id"] for i in listed], **base}
        add(Step("track", "Recommendation Shown", shown, path, title, True))
        if clicked:
            click = {"product_id": products[item]["product_id"], "position": listed.index(item) + 1}
            add(Step("track", "Recommendation Clicked", {**click, **base}, path, title))
        return clicked

    def _list_steps(self, add: Callable[[Step], None], category: int, page: int) -> None:
        """A category page and its Product List Viewed, showing one page of the list."""
        catalogue = self.catalogue
        name, path = CATEGORIES[category].path, catalogue.list_paths[category]
        first = page * LIST_PAGE_SIZE
        listed = catalogue.category_items[category][first : first + LIST_PAGE_SIZE]
        products = [
            {"product_id": catalogue.item_ids[item], "price": catalogue.price_cents[item] / 100,
             "position": first + j + 1}
            for j, item in enumerate(listed)
        ]  # fmt: skip
        add(Step("page", "Category", {**_page_props(path, name), "category": name}, path, name))
        props = {"list_id": catalogue.list_ids[category], "category": name, "products": products}
        add(Step("track", "Product List Viewed", props, path, name, quick=True))


def _page_props(path: str, title: str) -> dict[str, str]:
    return {"path": path, "url": ORIGIN + path, "title": title}


def _poisson(rnd: random.Random, lam: float) -> int:
    # Knuth's method: the rates here are small, and it keeps every draw on one seeded stream.
    limit, count, product = math.exp(-lam), 0, rnd.random()
    while product > limit:
        count += 1
        product *= rnd.random()
    return count
