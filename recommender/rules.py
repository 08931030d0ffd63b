"""Business rules applied when serving: what may be shown to this customer, and in what order.

Rules are data (:class:`Rules`), applied to a ranked candidate list after the model has scored it,
so the same rules hold for fresh and cached results alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa


@dataclass(frozen=True)
class TraitConstraint:
    """Items whose ``attribute`` is true are shown only to customers with ``trait`` >= minimum."""

    attribute: str = "age_restricted"
    trait: str = "age"
    minimum: float = 18


@dataclass(frozen=True)
class Rules:
    """What a placement or request allows; every field is optional."""

    exclude_purchased: bool = True
    rebuy_categories: tuple[str, ...] = ()  # category prefixes bought again (consumables)
    include_categories: tuple[str, ...] = ()  # category prefixes; empty means all
    exclude_categories: tuple[str, ...] = ()
    exclude_items: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    max_per_category: int | None = None  # diversity: at most this many per top category
    pinned: tuple[str, ...] = ()  # campaign items placed first, in this order
    boosts: Mapping[str, float] = field(default_factory=dict)  # item_id -> score multiplier
    trait_constraints: tuple[TraitConstraint, ...] = (TraitConstraint(),)


@dataclass
class Catalogue:
    """Item metadata aligned by position with ``item_ids`` (arrays for vectorised filtering)."""

    item_ids: np.ndarray  # (n_items,) str
    category: np.ndarray  # (n_items,) str, "" when unknown
    price: np.ndarray  # (n_items,) float64, nan when unknown
    servable: np.ndarray  # (n_items,) bool: active, not hidden, in stock
    flags: dict[str, np.ndarray]  # attribute name -> (n_items,) bool, for trait constraints
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not self.index:
            self.index = {item_id: i for i, item_id in enumerate(self.item_ids)}

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Positions of known items (unknown ids are dropped)."""
        return np.array([self.index[i] for i in item_ids if i in self.index], dtype=np.int64)


def load_catalogue(
    engine: sa.Engine, site_id: int, flag_attributes=("age_restricted",)
) -> Catalogue:
    """Read a site's items into a :class:`Catalogue`."""
    from tracking.schema import items

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                items.c.item_id,
                items.c.category,
                items.c.price,
                items.c.active,
                items.c.hidden,
                items.c.in_stock,
                items.c.attributes,
            )
            .where(items.c.site_id == site_id)
            .order_by(items.c.item_id)
        ).all()
    return catalogue_from_rows(rows, flag_attributes)


def catalogue_from_rows(rows: Sequence[Any], flag_attributes=("age_restricted",)) -> Catalogue:
    """A :class:`Catalogue` from item rows (item_id, category, price, active, hidden, in_stock,
    attributes; other columns are ignored)."""
    n = len(rows)
    flags = {name: np.zeros(n, dtype=bool) for name in flag_attributes}
    for i, row in enumerate(rows):
        attributes = row.attributes or {}
        for name in flag_attributes:
            flags[name][i] = bool(attributes.get(name))
    return Catalogue(
        item_ids=np.array([r.item_id for r in rows], dtype=object),
        category=np.array([r.category or "" for r in rows], dtype=object),
        price=np.array([float(r.price) if r.price is not None else np.nan for r in rows]),
        servable=np.array([bool(r.active and not r.hidden and r.in_stock) for r in rows], bool),
        flags=flags,
    )


def _prefix_mask(categories: np.ndarray, prefixes: Sequence[str]) -> np.ndarray:
    mask = np.zeros(len(categories), dtype=bool)
    for prefix in prefixes:
        mask |= np.array([c == prefix or c.startswith(prefix + "/") for c in categories])
    return mask


def _trait_allows(traits: Mapping[str, Any], constraint: TraitConstraint) -> bool:
    value = traits.get(constraint.trait)
    try:
        return value is not None and float(value) >= constraint.minimum
    except (TypeError, ValueError):
        return False


def allowed_mask(
    catalogue: Catalogue,
    rules: Rules,
    purchased: Sequence[str] = (),
    traits: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """(n_items,) bool: which items these rules allow for this customer."""
    mask = catalogue.servable.copy()
    if rules.include_categories:
        mask &= _prefix_mask(catalogue.category, rules.include_categories)
    if rules.exclude_categories:
        mask &= ~_prefix_mask(catalogue.category, rules.exclude_categories)
    if rules.min_price is not None:
        mask &= ~(catalogue.price < rules.min_price)
    if rules.max_price is not None:
        mask &= ~(catalogue.price > rules.max_price)
    if rules.exclude_items:
        mask[catalogue.positions(rules.exclude_items)] = False
    if rules.exclude_purchased and purchased:
        bought = catalogue.positions(purchased)
        if rules.rebuy_categories and len(bought):
            rebuy = _prefix_mask(catalogue.category[bought], rules.rebuy_categories)
            bought = bought[~rebuy]
        mask[bought] = False
    for constraint in rules.trait_constraints:
        flagged = catalogue.flags.get(constraint.attribute)
        if flagged is not None and not _trait_allows(traits or {}, constraint):
            mask &= ~flagged
    return mask


def apply_rules(
    item_ids: Sequence[str],
    scores: Sequence[float],
    catalogue: Catalogue,
    rules: Rules,
    n: int,
    *,
    purchased: Sequence[str] = (),
    traits: Mapping[str, Any] | None = None,
) -> list[tuple[str, float]]:
    """Filter, boost, pin and diversify a ranked candidate list; return up to n (id, score)."""
    mask = allowed_mask(catalogue, rules, purchased, traits)
    ranked: list[tuple[str, float]] = []
    for item_id, score in zip(item_ids, scores, strict=True):
        position = catalogue.index.get(item_id)
        if position is None or not mask[position]:
            continue
        ranked.append((item_id, float(score) * rules.boosts.get(item_id, 1.0)))
    if rules.boosts:
        ranked.sort(key=lambda pair: pair[1], reverse=True)
    top = max((s for _, s in ranked), default=1.0)
    pinned = [
        (item_id, top)
        for item_id in rules.pinned
        if item_id in catalogue.index and mask[catalogue.index[item_id]]
    ]
    pinned_ids = {item_id for item_id, _ in pinned}
    out: list[tuple[str, float]] = []
    per_category: dict[str, int] = {}
    for item_id, score in pinned + [p for p in ranked if p[0] not in pinned_ids]:
        if rules.max_per_category is not None:
            top_category = catalogue.category[catalogue.index[item_id]].split("/", 1)[0]
            if per_category.get(top_category, 0) >= rules.max_per_category:
                continue
            per_category[top_category] = per_category.get(top_category, 0) + 1
        out.append((item_id, score))
        if len(out) >= n:
            break
    return out
