"""What demo shop to generate (ShopSpec), what comes out (Shop), and the shop's fixed facts.

Everything is derived from ``ShopSpec.seed``: the same spec gives the same shop, event for event,
including every ``messageId``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

ORIGIN = "https://demo.example.test"
CURRENCY = "EUR"
DAY_MS = 86_400_000
# No session starts in the window's last half hour, and a session is squeezed to fit what is
# left of the window (demo.events): every event stays inside [start, start + days].
END_MARGIN_MS = 30 * 60_000


@dataclass(frozen=True)
class ShopSpec:
    """What demo shop to generate; every number of it follows from these and the seed."""

    seed: int = 42
    n_customers: int = 500
    n_items: int = 300
    n_clusters: int = 6  # taste clusters
    days: int = 28
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)  # first day
    sessions_per_customer: float = 6.0  # mean, over the whole period
    zipf_a: float = 1.1  # item popularity within a cluster
    in_cluster_share: float = 0.85  # share of a customer's item choices from their own cluster
    repeat_buyer_share: float = 0.3
    anonymous_share: float = 0.3  # share of sessions browsed anonymously before any sign-in

    def check(self) -> None:
        """Raise ValueError naming the first parameter that cannot make a shop."""
        if self.n_customers < 1 or self.n_items < 1 or self.n_clusters < 1 or self.days < 1:
            raise ValueError("n_customers, n_items, n_clusters and days must all be at least 1")
        if self.n_items < self.n_clusters:
            raise ValueError(
                f"n_items ({self.n_items}) must be at least n_clusters ({self.n_clusters}) "
                "so every taste cluster has an item"
            )
        if self.sessions_per_customer <= 0 or self.zipf_a < 0:
            raise ValueError("sessions_per_customer must be > 0 and zipf_a >= 0")
        for name in ("in_cluster_share", "repeat_buyer_share", "anonymous_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")


@dataclass
class Shop:
    """A generated shop: catalogue rows, customers and their events sorted by time."""

    spec: ShopSpec
    items: list[dict]  # catalogue rows, ready for the catalogue import
    customers: list[dict]  # {"user_id", "traits": {...}, "cluster": int}
    events: list[dict]  # Segment HTTP Tracking API events, sorted by timestamp
    # Kept out of the catalogue rows so the planted answer never reaches a model.
    item_clusters: dict[str, int] = field(default_factory=dict, repr=False)

    def cluster_of_item(self) -> dict[str, int]:
        """The planted taste cluster of each item_id."""
        return dict(self.item_clusters)

    def cluster_of_customer(self) -> dict[str, int]:
        """The planted taste cluster of each customer's user_id."""
        return {customer["user_id"]: customer["cluster"] for customer in self.customers}
