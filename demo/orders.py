"""The demo's buying: how often a customer orders, cart quantities and values, orders, re-buys.

Conversion grows with a customer's Pareto spend propensity; repeat buyers come back to buy more
often and put the staples (coffee, cheese, tea) they bought before in the cart again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from demo.events import Step
from demo.spec import CURRENCY

if TYPE_CHECKING:
    from demo.catalogue import Catalogue
    from demo.customers import Person

TAX_RATE = 0.19
SHIPPING_CENTS = 495
FREE_SHIPPING_FROM_CENTS = 5000


def order_chances(person: Person) -> tuple[float, float]:
    """A session's chance to end in an order: before the customer's first order, and after it."""
    # Per-session conversion grows with the customer's value: the Pareto spend curve.
    # Repeat buyers who have bought once come back to buy far more often than before.
    first_order = min(0.6, 0.07 * person.value**0.8)
    next_order = min(0.75, first_order + 0.25) if person.repeat_buyer else 0.0
    return first_order, next_order


class Checkout:
    """Carts and orders of the simulated sessions, drawn from the simulator's random stream."""

    def __init__(self, catalogue: Catalogue, rnd: random.Random):
        self.catalogue, self.rnd = catalogue, rnd

    def quantity(self, item: int) -> int:
        """How many of ``item`` go into the cart: staples often more than one."""
        u = self.rnd.random()
        if self.catalogue.consumable_list[item]:
            return 1 + int(u * 3)
        return 1 if u < 0.85 else (2 if u < 0.97 else 3)

    def cart_products(self, cart: dict[int, int]) -> list[dict]:
        """The cart's lines as the Ecommerce Spec's products list."""
        products = self.catalogue.products
        return [
            {
                "product_id": products[item]["product_id"],
                "sku": products[item]["sku"],
                "name": products[item]["name"],
                "category": products[item]["category"],
                "price": products[item]["price"],
                "quantity": quantity,
            }
            for item, quantity in cart.items()
        ]

    def cart_value(self, cart: dict[int, int]) -> int:
        """The cart's value in cents."""
        return sum(self.catalogue.price_cents[item] * quantity for item, quantity in cart.items())

    def restock(
        self,
        person: Person,
        cart: dict[int, int],
        basket: set[int],
        cart_id: str,
        add: Callable[[Step], None],
    ) -> None:
        """A repeat buyer's staples bought before go into the cart again from order history."""
        catalogue, rnd = self.catalogue, self.rnd
        history = "/demo/account/orders"
        for item in person.staples[-3:]:
            if item not in cart and catalogue.available_list[item] and rnd.random() < 0.6:
                basket.add(item)
                cart[item] = self.quantity(item)
                props = {**catalogue.products[item], "quantity": cart[item], "cart_id": cart_id}
                add(Step("track", "Product Added", props, history, "Your orders"))

    def order_step(
        self, person: Person, cart: dict[int, int], checkout_id: str, cart_id: str
    ) -> Step:
        """The Order Completed step; amounts are summed in cents so they add up exactly."""
        rnd, catalogue = self.rnd, self.catalogue
        subtotal = self.cart_value(cart)
        discount, coupon = 0, None
        # One draw whatever the prices: repricing the catalogue must not reshuffle the shop.
        u = rnd.random()
        if person.orders == 0 and u < 0.15:
            discount, coupon = int(round(subtotal * 0.10)), "WELCOME10"
        elif person.orders > 0 and subtotal >= 3000 and u < 0.2:
            discount, coupon = 500, "THANKYOU5"
        net = subtotal - discount
        tax = int(round(net * TAX_RATE))
        shipping = 0 if net >= FREE_SHIPPING_FROM_CENTS else SHIPPING_CENTS
        props: dict[str, Any] = {
            "order_id": None,  # numbered in time order once every session is played
            "checkout_id": checkout_id,
            "cart_id": cart_id,
            "total": (net + tax + shipping) / 100,
            "revenue": net / 100,  # as Segment defines it: without tax and shipping
            "subtotal": subtotal / 100,
            "tax": tax / 100,
            "shipping": shipping / 100,
            "discount": discount / 100,
            "currency": CURRENCY,
            "products": self.cart_products(cart),
        }
        if coupon:
            props["coupon"] = coupon
        person.orders += 1
        for item in cart:
            if not catalogue.consumable_list[item]:
                person.bought.add(item)
            elif item not in person.staples:
                person.staples.append(item)
        return Step("track", "Order Completed", props, "/demo/checkout/complete",
                    "Thank you for your order")  # fmt: skip
