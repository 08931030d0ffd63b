"""The demo catalogue: items by taste cluster and category, shelf prices, Zipf popularity.

Each taste cluster lives mostly in its theme's two categories; popularity inside a cluster
follows Zipf's law. The catalogue also keeps what sessions draw from: category lists in the order
a shop page shows them, and weighted samplers of the items a cluster views and buys.
"""

from __future__ import annotations

import bisect
import random

import numpy as np

from demo.products import CATEGORIES
from demo.spec import CURRENCY, ORIGIN, ShopSpec

# Taste cluster k draws its items mostly from theme k (two categories, the first more often);
# with more clusters than themes the themes repeat, told apart by their items.
THEMES = (
    ("Music/Jazz", "Music/Classical"),
    ("Books/Crime", "Books/Thriller"),
    ("Grocery/Coffee", "Home/Kitchen"),
    ("Wine/Red", "Grocery/Cheese"),
    ("Sports/Running", "Sports/Outdoor"),
    ("Beauty/Skincare", "Home/Bath"),
    ("Toys/Board Games", "Books/Children"),
    ("Music/Rock", "Electronics/Audio"),
    ("Garden/Plants", "Grocery/Tea"),
    ("Books/Biography", "Books/Biography"),
)
IN_THEME_SHARE = 0.9
ALWAYS_PRESENT = ("Wine/Red", "Grocery/Coffee")  # rules and re-buy tests rely on these


def _slug(text: str) -> str:
    return text.lower().replace(" & ", "-").replace("/", "-").replace(" ", "-")


class _Sampler:
    """Weighted draws by inverse CDF: one bisect per draw, no numpy call per event."""

    def __init__(self, items: np.ndarray, weights: np.ndarray):
        keep = weights > 0
        self.items = items[keep].tolist()
        self.cum = np.cumsum(weights[keep]).tolist()
        self.total = self.cum[-1] if self.cum else 0.0

    def draw(self, u: float) -> int:
        """The item at ``u`` (a uniform draw in [0, 1)) of the cumulative weights."""
        return self.items[min(bisect.bisect_right(self.cum, u * self.total), len(self.items) - 1)]


class Catalogue:
    """Items with their planted cluster, popularity and the samplers sessions draw from."""

    def __init__(self, spec: ShopSpec, seed: np.random.SeedSequence):
        rng = np.random.default_rng(seed)
        rnd = random.Random(int(seed.generate_state(1, np.uint64)[0]))
        n, k = spec.n_items, spec.n_clusters
        self.cluster = rng.permutation(np.arange(n) % k)
        themes = [THEMES[c % len(THEMES)] for c in range(k)]
        noise = sorted({path for theme in themes for path in theme} | set(ALWAYS_PRESENT))
        by_path = {category.path: i for i, category in enumerate(CATEGORIES)}
        noise_idx = np.array([by_path[path] for path in noise])
        theme_idx = np.array([[by_path[a], by_path[b]] for a, b in themes])
        in_theme = rng.random(n) < IN_THEME_SHARE
        first = rng.random(n) < 0.6
        category = np.where(
            in_theme,
            np.where(first, theme_idx[self.cluster, 0], theme_idx[self.cluster, 1]),
            noise_idx[rng.integers(0, len(noise_idx), n)],
        )
        for j, path in enumerate(ALWAYS_PRESENT):
            if n > 2 * k and by_path[path] not in category:
                category[j] = by_path[path]  # a tiny catalogue still gets one of each
        self.category = category
        # Zipf popularity by rank inside each cluster; every cluster carries the same total.
        popularity = np.empty(n)
        for c in range(k):
            members = np.flatnonzero(self.cluster == c)
            ranks = rng.permutation(len(members)) + 1
            weights = ranks ** -float(spec.zipf_a)
            popularity[members] = weights / weights.sum()
        self.popularity = popularity
        in_stock = rng.random(n) >= 0.03
        active = rng.random(n) >= 0.01
        self.available = in_stock & active
        # One normal draw per item, as before: the generator's later draws stay the same.
        price_draws = rng.standard_normal(n)
        self.consumable = np.array([CATEGORIES[c].consumable for c in category])
        self._make_rows(rnd, price_draws, in_stock, active)
        slugs = {c: _slug(CATEGORIES[c].path) for c in np.unique(category).tolist()}
        self.list_paths = {c: f"/demo/category/{slug}" for c, slug in slugs.items()}
        self.list_ids = {c: f"category-{slug}" for c, slug in slugs.items()}
        self.category_list = category.tolist()
        self.available_list = self.available.tolist()
        self.consumable_list = self.consumable.tolist()
        self._build_lists(active)
        self._build_samplers(k)

    def _make_rows(
        self, rnd: random.Random, price_draws: np.ndarray, in_stock: np.ndarray, active: np.ndarray
    ) -> None:
        """Catalogue rows, and the product fields events repeat, with titles from word lists."""
        self.rows: list[dict] = []
        self.products: list[dict] = []  # the Ecommerce Spec product fields, per item
        self.price_cents: list[int] = []
        self.search_terms: list[tuple[str, str]] = []
        seen: set[str] = set()
        for i in range(len(self.category)):
            cat = CATEGORIES[int(self.category[i])]
            for _attempt in range(8):  # retry for distinct titles; big catalogues may repeat
                title, attributes, term, typical = cat.make(rnd)
                if title not in seen:
                    break
            if title in seen:
                title = f"{title} (No. {i + 1})"
            seen.add(title)
            cents = _shelf_price(cat.price(typical, float(price_draws[i])))
            item_id = f"sku-{i + 1:04d}"
            row = {
                "item_id": item_id,
                "title": title,
                "category": cat.path,
                "price": cents / 100,
                "currency": CURRENCY,
                "url": f"/demo/products/{item_id}",
                "image_url": f"/demo/img/{item_id}.svg",
                "in_stock": bool(in_stock[i]),
                "active": bool(active[i]),
                "attributes": attributes,
            }
            self.rows.append(row)
            self.products.append(
                {
                    "product_id": item_id,
                    "sku": item_id,
                    "category": cat.path,
                    "name": title,
                    "price": cents / 100,
                    "currency": CURRENCY,
                    "url": ORIGIN + row["url"],
                    "image_url": ORIGIN + row["image_url"],
                }
            )
            self.price_cents.append(cents)
            self.search_terms.append((cat.path.split("/")[1].lower(), term))
        self.item_ids = [row["item_id"] for row in self.rows]
        self.product_paths = [row["url"] for row in self.rows]

    def _build_lists(self, active: np.ndarray) -> None:
        # Category pages list active items, most popular first; out-of-stock ones still show.
        self.list_rank = [-1] * len(self.rows)
        self.category_items: dict[int, list[int]] = {}
        for c in np.unique(self.category).tolist():
            members = np.flatnonzero((self.category == c) & active)
            ordered = members[np.lexsort((members, -self.popularity[members]))].tolist()
            self.category_items[c] = ordered
            for rank, item in enumerate(ordered):
                self.list_rank[item] = rank

    def _build_samplers(self, k: int) -> None:
        # Unavailable items are seen rarely (old links) and never bought.
        everything = np.arange(len(self.rows))
        seen_weight = self.popularity * np.where(self.available, 1.0, 0.1)
        buy_weight = self.popularity * self.available
        self.view_global = _Sampler(everything, seen_weight)
        self.buy_global = _Sampler(everything, buy_weight)
        self.view_by_cluster = [
            _Sampler(everything[self.cluster == c], seen_weight[self.cluster == c])
            for c in range(k)
        ]
        self.buy_by_cluster = [
            _Sampler(everything[self.cluster == c], buy_weight[self.cluster == c]) for c in range(k)
        ]


def _shelf_price(euros: float) -> int:
    """A price in cents as a shop would print it: 12.99, 34.99, 119.00."""
    if euros >= 100:
        return int(round(euros / 5.0)) * 500
    return max(1, int(round(euros))) * 100 - 1
