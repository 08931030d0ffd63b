"""Business rules applied when serving: what may be shown to this customer, and in what order.

Rules are data (:class:`Rules`), applied to a ranked candidate list after the model has scored it,
so the same rules hold for fresh and cached results alike. A site keeps them per placement
(:mod:`recommender.rule_store`) as a JSON document: :meth:`Rules.from_dict` checks one and
:meth:`Rules.to_dict` writes it. Campaigns pin or boost items between two dates only;
:meth:`Rules.at` gives the rules in force at a moment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from tracking.errors import FieldError


@dataclass(frozen=True)
class TraitConstraint:
    """Items whose ``attribute`` is true are shown only to customers with ``trait`` >= minimum."""

    attribute: str = "age_restricted"
    trait: str = "age"
    minimum: float = 18


class InvalidRules(FieldError):
    """A rules document that cannot be stored: ``field`` names what is wrong (a JSON path)."""


@dataclass(frozen=True)
class Campaign:
    """Items pinned or boosted from ``starts`` to ``ends`` (UTC days, both included)."""

    name: str = ""
    starts: date | None = None  # None: already running
    ends: date | None = None  # None: until removed
    pinned: tuple[str, ...] = ()
    boosts: Mapping[str, float] = field(default_factory=dict)

    def active(self, now: datetime) -> bool:
        """Running at ``now`` (an aware datetime)."""
        today = now.astimezone(UTC).date()
        return (self.starts is None or self.starts <= today) and (
            self.ends is None or today <= self.ends
        )


@dataclass(frozen=True)
class VipRules:
    """What a placement adds for VIP customers (the newest value snapshot's VIP flag): items
    pinned before every other pin, and boosts multiplied into the placement's own; ``only``
    makes it the VIPs' own placement (everyone else is answered no items: the widget's slot
    collapses)."""

    pinned: tuple[str, ...] = ()
    boosts: Mapping[str, float] = field(default_factory=dict)
    only: bool = False

    def __bool__(self) -> bool:
        return bool(self.pinned or self.boosts or self.only)


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
    campaigns: tuple[Campaign, ...] = ()
    vip: VipRules = field(default_factory=VipRules)  # the VIP variant: empty for none

    def for_vip(self) -> Rules:
        """The rules a VIP customer is served: the VIP pins first, then the others, the VIP
        boosts multiplied in; the variant itself left out (its fingerprint differs)."""
        if not self.vip:
            return self
        pinned = list(self.vip.pinned) + [i for i in self.pinned if i not in self.vip.pinned]
        boosts = dict(self.boosts)
        for item_id, factor in self.vip.boosts.items():
            boosts[item_id] = boosts.get(item_id, 1.0) * factor
        return replace(self, pinned=tuple(pinned), boosts=boosts, vip=VipRules())

    def at(self, now: datetime) -> Rules:
        """The rules in force at ``now``: running campaigns' pins after the standing ones,
        their boosts multiplied in; campaigns themselves left out."""
        running = [c for c in self.campaigns if c.active(now)]
        if not self.campaigns:
            return self
        pinned = list(self.pinned)
        boosts = dict(self.boosts)
        for campaign in running:
            pinned += [item_id for item_id in campaign.pinned if item_id not in pinned]
            for item_id, factor in campaign.boosts.items():
                boosts[item_id] = boosts.get(item_id, 1.0) * factor
        return replace(self, pinned=tuple(pinned), boosts=boosts, campaigns=())

    def next_change(self, now: datetime) -> datetime | None:
        """When a campaign next starts or ends after ``now`` (None: never)."""
        moments = []
        for c in self.campaigns:
            if c.starts is not None:
                moments.append(datetime.combine(c.starts, datetime.min.time(), UTC))
            if c.ends is not None:
                moments.append(
                    datetime.combine(c.ends + timedelta(days=1), datetime.min.time(), UTC)
                )
        later = [m for m in moments if m > now]
        return min(later) if later else None

    def fingerprint(self) -> str:
        """A short digest of these rules; '' for the built-in defaults (cache keys carry it)."""
        document = self.to_dict()
        if document == DEFAULT_DOCUMENT:
            return ""
        return hashlib.blake2s(
            orjson.dumps(document, option=orjson.OPT_SORT_KEYS), digest_size=5
        ).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of these rules (what :meth:`from_dict` reads); ``vip`` only when
        the placement has a VIP variant (so rules without one keep their fingerprint)."""
        document = {
            "exclude_purchased": self.exclude_purchased,
            "rebuy_categories": list(self.rebuy_categories),
            "include_categories": list(self.include_categories),
            "exclude_categories": list(self.exclude_categories),
            "exclude_items": list(self.exclude_items),
            "min_price": self.min_price,
            "max_price": self.max_price,
            "max_per_category": self.max_per_category,
            "pinned": list(self.pinned),
            "boosts": dict(self.boosts),
            "trait_constraints": [
                {"attribute": t.attribute, "trait": t.trait, "minimum": t.minimum}
                for t in self.trait_constraints
            ],
            "campaigns": [
                {
                    "name": c.name,
                    "starts": c.starts.isoformat() if c.starts else None,
                    "ends": c.ends.isoformat() if c.ends else None,
                    "pinned": list(c.pinned),
                    "boosts": dict(c.boosts),
                }
                for c in self.campaigns
            ],
        }
        if self.vip:
            document["vip"] = {"pinned": list(self.vip.pinned), "boosts": dict(self.vip.boosts)}
            if self.vip.only:
                document["vip"]["only"] = True
        return document

    @classmethod
    def from_dict(cls, document: Any) -> Rules:
        """Rules from a JSON document; absent fields take their defaults.

        Raises :class:`InvalidRules` naming the first bad field (``campaigns[0].ends``).
        """
        from recommender.rule_document import parse

        return parse(document)


DEFAULT_DOCUMENT = Rules().to_dict()


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
