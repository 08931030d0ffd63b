"""The demo shop's data: a seeded generator of catalogue, customers and events, and its loader."""

from demo.generate import generate_shop, iter_batches
from demo.spec import Shop, ShopSpec

__all__ = ["Shop", "ShopSpec", "generate_shop", "iter_batches"]
