"""The answer for one visitor: the fallback chain, business rules and a reason per item.

``RecommendationService`` wraps one promoted model version (a :class:`ModelBundle`) and the
site's catalogue. Every call returns :class:`Recommendations`, whose ``source`` says which link
of the fallback chain answered: personal -> similar_customers -> popular (trending) -> fallback.
It knows nothing of caches or HTTP: :mod:`recommender.serving` puts it behind both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.interactions import Interactions, build_interactions
from recommender.models import Recommender, load_model
from recommender.registry import ModelRegistry, RegistryError
from recommender.rules import Catalogue, Rules, apply_rules
from tracking.text import plural

CANDIDATE_FACTOR = 5  # score this many times n, so rules have room to filter
NEIGHBOURS = 20  # customers consulted for "bought by N customers like you"
FEATURED = "featured"  # the reason of an item pinned by the placement's rules or a campaign


@dataclass
class Recommendations:
    """Item ids, scores and one reason per item, and where they came from."""

    item_ids: list[str]
    scores: list[float]
    reasons: list[str]
    source: str
    model_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    def as_candidates(self) -> list[list[Any]]:
        """``[[item_id, score, reason], ...]`` with scores rounded: a cached candidate list."""
        return [
            [item_id, round(float(score), 6), reason]
            for item_id, score, reason in zip(self.item_ids, self.scores, self.reasons, strict=True)
        ]


@dataclass
class ModelBundle:
    """One promoted model version, loaded: the model, its id maps and its fallbacks."""

    version: str
    model: Recommender
    interactions: Interactions
    purchases: Interactions
    popular: Recommender
    trending: Recommender
    meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        """Load a version folder written by :func:`recommender.training.train`."""
        path = Path(path)
        return cls(
            version=path.name,
            model=load_model(path / "model"),
            interactions=Interactions.load(path / "interactions"),
            purchases=Interactions.load(path / "purchases"),
            popular=load_model(path / "popular"),
            trending=load_model(path / "trending"),
            meta=json.loads((path / "train.json").read_text()),
        )

    @classmethod
    def current(cls, registry_dir: str | Path) -> ModelBundle | None:
        """The registry's current version, or None before the first promotion."""
        try:
            return cls.load(ModelRegistry(registry_dir).path())
        except (RegistryError, FileNotFoundError):
            return None


def _events_frame(user_id: str, events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "user_id": user_id,
            "item_id": str(e["item_id"]),
            "event": e.get("event", "Product Viewed"),
            "timestamp": e.get("timestamp", time.time()),
        }
        for e in events
        if e.get("item_id") is not None
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event", "timestamp"])
    if len(frame) and not pd.api.types.is_numeric_dtype(frame["timestamp"]):
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        frame["timestamp"] = stamps.astype("int64") / 1e9
    return frame


def _history(
    interactions: Interactions, stored: int | None, recent_events: Iterable[Mapping[str, Any]]
):
    """A customer's (1, n_items) history row plus their newest events, and last-seen times.

    ``stored`` is the customer's row in ``interactions`` (None for a visitor the model never saw).
    Returns ``(row, seen, has_recent)``: float32 and float64 CSR rows, and whether events were new.
    """
    recent = _events_frame("visitor", recent_events)
    row = sp.csr_matrix((1, interactions.shape[1]), dtype=np.float32)
    seen = sp.csr_matrix((1, interactions.shape[1]), dtype=np.float64)
    if stored is not None:
        row = interactions.user_items[stored]
        if interactions.last_seen is not None:
            seen = interactions.last_seen[stored]
    if len(recent):
        fresh = build_interactions(
            recent,
            interactions.weights,
            now=interactions.now,
            user_ids=["visitor"],
            item_ids=interactions.item_ids,
        )
        row = (row + fresh.user_items).tocsr()
        if fresh.last_seen is not None:
            seen = seen.maximum(fresh.last_seen).tocsr()
    return row, seen, len(recent) > 0


class RecommendationService:
    """Recommendations for one site from one model version, with business rules."""

    def __init__(
        self, bundle: ModelBundle | None, catalogue: Catalogue, rules: Rules | None = None
    ):
        self.bundle, self.catalogue = bundle, catalogue
        self.rules = rules or Rules()
        if bundle is not None:
            self._user_row = bundle.interactions.user_index
            self._item_col = bundle.interactions.item_index

    @property
    def version(self) -> str | None:
        """The model version answering, or None."""
        return self.bundle.version if self.bundle else None

    def knows(self, user_id: str | None) -> bool:
        """The model has history for this customer (``anon:<id>`` for a visitor)."""
        return self.bundle is not None and user_id in self._user_row

    # The fallback chain's last links

    def popular(
        self,
        n: int = 10,
        *,
        rules: Rules | None = None,
        traits=None,
        trending=False,
        purchased: Sequence[str] = (),
    ) -> Recommendations:
        """Popular (or trending) items; without a model, the catalogue's servable items."""
        rules = rules or self.rules
        if self.bundle is None:
            ids = list(self.catalogue.item_ids[self.catalogue.servable])
            picked = apply_rules(
                ids, [1.0] * len(ids), self.catalogue, rules, n, purchased=purchased, traits=traits
            )
            return self._answer(picked, "fallback", "new in the shop", rules.pinned)
        model = self.bundle.trending if trending else self.bundle.popular
        scores = model.score(np.array([0]), None)[0]
        order = np.argsort(-scores, kind="stable")
        ids = self.bundle.interactions.items(order)
        picked = apply_rules(
            list(ids), scores[order], self.catalogue, rules, n, purchased=purchased, traits=traits
        )
        if trending and not picked:
            return self.popular(n, rules=rules, traits=traits, purchased=purchased)
        source = "trending" if trending else "popular"
        reason = "trending this week" if trending else "popular now"
        return self._answer(picked, source, reason, rules.pinned)

    def _answer(
        self,
        picked,
        source: str,
        reason: str | Mapping[str, str],
        pinned: Sequence[str] = (),
    ) -> Recommendations:
        reasons = [
            FEATURED
            if item_id in pinned
            else reason.get(item_id, "picked for you")
            if isinstance(reason, Mapping)
            else reason
            for item_id, _ in picked
        ]
        return Recommendations(
            [item_id for item_id, _ in picked],
            [float(score) for _, score in picked],
            reasons,
            source,
            self.version,
        )

    # Personal recommendations

    def _personal(self, user_id, recent_events, n, rules, traits, purchased, reason_default):
        stored = self._user_row.get(user_id) if user_id is not None else None
        row, seen, has_recent = _history(self.bundle.interactions, stored, recent_events)
        if row.nnz == 0:
            return None
        model = self.bundle.model
        # Fold in (recompute the customer's factors) when there is news since training.
        fold = stored is None or has_recent
        ids, scores = model.recommend(
            0 if fold else stored,
            row,
            N=n * CANDIDATE_FACTOR + len(purchased),
            recalculate_user=fold,
            last_seen=seen,
        )
        keep = ids >= 0
        items = self.bundle.interactions.items(ids[keep])
        bought = list(purchased) + list(self._purchased(stored))
        picked = apply_rules(
            list(items), scores[keep], self.catalogue, rules, n, purchased=bought, traits=traits
        )
        if not picked:
            return None
        reasons = {item_id: reason_default for item_id, _ in picked}
        reasons.update(self._neighbour_reasons(stored, row, [i for i, _ in picked]))
        return self._answer(picked, "personal", reasons, rules.pinned)

    def _purchased(self, stored: int | None) -> list[str]:
        if stored is None:
            return []
        row = self.bundle.purchases.user_items[stored]
        return list(self.bundle.purchases.items(row.indices))

    def _neighbour_reasons(self, stored, row, item_ids: list[str]) -> dict[str, str]:
        try:
            like_you = self.bundle.model.similar_customers(
                stored,
                self.bundle.purchases.user_items,
                k=NEIGHBOURS,
                N=10_000,
                history=row if stored is None else None,
            )
        except Exception:  # a blend without a factor model has no notion of similar customers
            return {}
        counts = dict(
            zip(self.bundle.interactions.items(like_you.items), like_you.counts, strict=True)
        )
        return {
            item_id: f"bought by {plural(counts[item_id], 'customer')} like you"
            for item_id in item_ids
            if counts.get(item_id, 0) > 0
        }

    def recommend_for_customer(
        self,
        user_id: str,
        n: int = 10,
        *,
        rules: Rules | None = None,
        traits: Mapping[str, Any] | None = None,
        recent_events: Iterable[Mapping[str, Any]] = (),
        purchased: Sequence[str] = (),
    ) -> Recommendations:
        """ "Customers like you bought": personal, else visitor fold-in, else trending/popular."""
        rules = rules or self.rules
        if self.bundle is None:
            return self.popular(n, rules=rules, traits=traits, purchased=purchased)
        found = self._personal(
            user_id,
            list(recent_events),
            n,
            rules,
            traits,
            purchased,
            "picked for you from what you viewed and bought",
        )
        return found or self.popular(
            n, rules=rules, traits=traits, trending=True, purchased=purchased
        )

    def recommend_for_visitor(
        self,
        recent_events: Iterable[Mapping[str, Any]],
        n: int = 10,
        *,
        rules: Rules | None = None,
        traits: Mapping[str, Any] | None = None,
    ) -> Recommendations:
        """A visitor with no stored history: fold in what they just did, else trending."""
        rules = rules or self.rules
        if self.bundle is None:
            return self.popular(n, rules=rules, traits=traits)
        found = self._personal(
            None, list(recent_events), n, rules, traits, (), "based on what you just viewed"
        )
        return found or self.popular(n, rules=rules, traits=traits, trending=True)

    def similar_items(
        self, item_id: str, n: int = 10, *, rules: Rules | None = None, traits=None
    ) -> Recommendations:
        """ "Customers who bought this also bought": item neighbours, else popular."""
        rules = rules or self.rules
        column = self._item_col.get(item_id) if self.bundle else None
        if column is None:
            return self.popular(n, rules=rules, traits=traits, purchased=[item_id])
        ids, scores = self.bundle.model.similar_items(column, N=n * CANDIDATE_FACTOR)
        keep = ids >= 0
        items = self.bundle.interactions.items(ids[keep])
        picked = apply_rules(
            list(items), scores[keep], self.catalogue, rules, n, purchased=[item_id], traits=traits
        )
        if not picked:
            return self.popular(n, rules=rules, traits=traits, purchased=[item_id])
        return self._answer(
            picked, "item_neighbours", "customers who bought this also bought", rules.pinned
        )

    def similar_customers(
        self, user_id: str, k: int = 10, n: int = 10, *, rules: Rules | None = None, traits=None
    ) -> Recommendations:
        """What the k most similar customers bought that this customer has not."""
        rules = rules or self.rules
        stored = self._user_row.get(user_id) if self.bundle else None
        if stored is None:
            return self.popular(n, rules=rules, traits=traits)
        like_you = self.bundle.model.similar_customers(
            stored, self.bundle.purchases.user_items, k=k, N=n * CANDIDATE_FACTOR
        )
        items = self.bundle.interactions.items(like_you.items)
        picked = apply_rules(
            list(items),
            like_you.counts.astype(float),
            self.catalogue,
            rules,
            n,
            purchased=self._purchased(stored),
            traits=traits,
        )
        counts = dict(zip(items, like_you.counts, strict=True))
        reasons = {i: f"bought by {plural(counts[i], 'customer')} like you" for i, _ in picked}
        answer = self._answer(picked, "similar_customers", reasons, rules.pinned)
        answer.extra["customers"] = list(self.bundle.interactions.users(like_you.customers))
        answer.extra["similarity"] = [float(s) for s in like_you.similarity]
        return answer
