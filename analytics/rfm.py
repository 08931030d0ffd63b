"""RFM scores two ways, the named R x F segments, and the VIP Pareto curve.

- The seed's 1-3 scores: recency by whole months since the last order, frequency by orders in the
  last 3 months, money by average order value, each cut by two thresholds a site sets in its own
  currency (:class:`SeedThresholds`).
- Quintiles 1-5 of recency and frequency (5 = most recent, most frequent), money as an overlay
  quintile; equal values are split by customer id so the same data always gives the same scores.
- :data:`SEGMENTS`: the standard R x F map; every one of the 25 cells has exactly one name.

Money is never summed across currencies: callers score each currency's customers on their own.
Refunds are orders with a negative total: money is the net. Pure numpy; no SQL, no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracking.errors import FieldError


class ThresholdError(FieldError):
    """Thresholds that cannot score anyone: out of order, negative, or not numbers."""


@dataclass(frozen=True)
class SeedThresholds:
    """Two cuts per measure: a score of 3 at or past the first, 2 at or past the second, else 1.

    ``recency_months``: (3 if the last order is at most this many months ago, 2 if at most this);
    ``frequency_orders``: orders in the last 3 months for a 3, for a 2;
    ``money``: average order value for a 3, for a 2, in the site's currency.
    """

    recency_months: tuple[float, float] = (1, 3)
    frequency_orders: tuple[float, float] = (3, 2)
    money: tuple[float, float] = (100, 50)

    def __post_init__(self) -> None:
        for field in ("recency_months", "frequency_orders", "money"):
            pair = getattr(self, field)
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ThresholdError(field, "give two thresholds")
            try:
                first, second = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise ThresholdError(field, "thresholds must be numbers") from None
            if not (np.isfinite(first) and np.isfinite(second)) or min(first, second) < 0:
                raise ThresholdError(field, "thresholds must be finite and not negative")
            if field == "recency_months" and not first < second:
                raise ThresholdError(field, "the months for a 3 must be fewer than for a 2")
            if field != "recency_months" and not first > second:
                raise ThresholdError(field, "the threshold for a 3 must be above the one for a 2")

    @classmethod
    def from_dict(cls, data: dict) -> SeedThresholds:
        """Thresholds from a settings dict; unknown keys are an error naming the key."""
        unknown = set(data) - {"recency_months", "frequency_orders", "money"}
        if unknown:
            raise ThresholdError(sorted(unknown)[0], "unknown setting")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def seed_scores(
    months_since_last_order, orders_last_3_months, average_order_value, thresholds: SeedThresholds
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed's (R, F, M) scores, each 1-3, for arrays of customers."""
    months = np.asarray(months_since_last_order, dtype=np.float64)
    orders = np.asarray(orders_last_3_months, dtype=np.float64)
    value = np.asarray(average_order_value, dtype=np.float64)
    r3, r2 = thresholds.recency_months
    f3, f2 = thresholds.frequency_orders
    m3, m2 = thresholds.money
    recency = np.where(months <= r3, 3, np.where(months <= r2, 2, 1))
    frequency = np.where(orders >= f3, 3, np.where(orders >= f2, 2, 1))
    money = np.where(value >= m3, 3, np.where(value >= m2, 2, 1))
    return recency.astype(np.int8), frequency.astype(np.int8), money.astype(np.int8)


def quintiles(values, customer_ids) -> np.ndarray:
    """Scores 1-5 by rank (5 = the highest values), equal values ordered by customer id.

    Each score holds a fifth of the customers (the first ones take the remainder), whatever the
    ties: a shop where most people ordered once still gets five frequency groups, split
    deterministically by id.
    """
    values = np.asarray(values, dtype=np.float64)
    ids = np.asarray(customer_ids)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    order = np.lexsort((ids, values))  # ascending value, then id
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return (rank * 5 // n + 1).astype(np.int8)


# The standard R x F map (recency score, frequency score) -> segment; R and F are 1-5.
SEGMENT_CELLS: dict[str, list[tuple[int, int]]] = {
    "Champions": [(5, 4), (5, 5)],
    "Loyal": [(3, 4), (3, 5), (4, 4), (4, 5)],
    "Potential Loyalists": [(4, 2), (4, 3), (5, 2), (5, 3)],
    "New": [(5, 1)],
    "Promising": [(4, 1)],
    "Need Attention": [(3, 3)],
    "About to Sleep": [(3, 1), (3, 2)],
    "At Risk": [(1, 3), (1, 4), (2, 3), (2, 4)],
    "Can't Lose Them": [(1, 5), (2, 5)],
    "Hibernating": [(1, 1), (1, 2), (2, 1), (2, 2)],
}
SEGMENTS: dict[tuple[int, int], str] = {
    cell: name for name, cells in SEGMENT_CELLS.items() for cell in cells
}
_GRID = np.empty((6, 6), dtype=object)
for (_r, _f), _name in SEGMENTS.items():
    _GRID[_r, _f] = _name


def segment_names(recency_scores, frequency_scores) -> np.ndarray:
    """The named segment of each customer's (R, F) quintile cell."""
    return _GRID[np.asarray(recency_scores, dtype=int), np.asarray(frequency_scores, dtype=int)]


def quintile_scores(
    customer_ids, days_since_last_order, orders, money
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(R, F, M quintiles, segment names): recent, frequent and big spenders score 5."""
    recency = quintiles(-np.asarray(days_since_last_order, dtype=np.float64), customer_ids)
    frequency = quintiles(orders, customer_ids)
    monetary = quintiles(money, customer_ids)
    return recency, frequency, monetary, segment_names(recency, frequency)


@dataclass(frozen=True)
class Pareto:
    """The share of revenue held by the top share of customers, at each customer."""

    customer_share: np.ndarray  # 1/n, 2/n, ... 1
    revenue_share: np.ndarray  # cumulative, customers by value descending

    def revenue_of_top(self, share: float) -> float:
        """Share of revenue from the top ``share`` (0-1) of customers."""
        if len(self.customer_share) == 0:
            return 0.0
        k = int(np.ceil(share * len(self.customer_share)))
        return float(self.revenue_share[k - 1]) if k > 0 else 0.0

    def points(self, steps: int = 100) -> list[tuple[float, float]]:
        """The curve at ``steps`` evenly spaced customer shares (for a chart and its table)."""
        return [(i / steps, self.revenue_of_top(i / steps)) for i in range(1, steps + 1)]


def pareto(values) -> Pareto:
    """The Pareto curve of customer values (negative values count as zero revenue)."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0, None)
    ordered = np.sort(values)[::-1]
    total = ordered.sum()
    n = len(ordered)
    cumulative = np.cumsum(ordered) / total if total > 0 else np.zeros(n)
    return Pareto(np.arange(1, n + 1) / max(n, 1), cumulative)


def vip_mask(values, customer_ids, top_share: float) -> np.ndarray:
    """True for the top ``top_share`` (0-1] of customers by value, ties by customer id."""
    if not 0 < top_share <= 1:
        raise ThresholdError("top_share", "must be above 0 and at most 1")
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    k = int(np.ceil(top_share * n))
    order = np.lexsort((np.asarray(customer_ids), -values))
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return mask
