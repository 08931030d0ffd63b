"""Hyper-parameter search on a validation split: random search bounded by time and trial count.

One trial samples event weights and decay, ALS, EASE, item-kNN and co-visit parameters, fits the
members (members whose parameters were fitted before come from a cache), scores the validation
customers once per member, then tries several blend weightings of those scores, which costs
almost nothing. The blend always contains ALS (``SearchSpace.min_als_weight``). Never pass test
data here: the caller carves the validation split out of its training data.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from recommender.evaluate import ranking_metrics, split_matrices
from recommender.interactions import EventWeights, Interactions
from recommender.models import (
    ALSModel,
    ALSParams,
    BlendModel,
    BlendParams,
    CoVisitModel,
    CoVisitParams,
    EASEModel,
    EASEParams,
    ItemKNNModel,
    ItemKNNParams,
    PopularityModel,
    PopularityParams,
    Recommender,
    normalise_scores,
    top_n,
)
from recommender.models.base import _mask_rows

log = logging.getLogger("ecrm.recommender")

MEMBERS = ("als", "ease", "item_knn", "covisit", "popularity")


@dataclass(frozen=True)
class BlendConfig:
    """Everything a tuned recommender is made of: event weights, member and blend parameters."""

    weights: EventWeights = field(default_factory=EventWeights)
    als: ALSParams = field(default_factory=ALSParams)
    ease: EASEParams = field(default_factory=EASEParams)
    item_knn: ItemKNNParams = field(default_factory=ItemKNNParams)
    covisit: CoVisitParams = field(default_factory=CoVisitParams)
    popularity: PopularityParams = field(default_factory=PopularityParams)
    blend: BlendParams = field(default_factory=lambda: BlendParams({"als": 1.0}))

    def member(self, name: str) -> Recommender:
        """An unfitted member model by name."""
        builders = {
            "als": lambda: ALSModel(self.als),
            "ease": lambda: EASEModel(self.ease),
            "item_knn": lambda: ItemKNNModel(self.item_knn),
            "covisit": lambda: CoVisitModel(self.covisit),
            "popularity": lambda: PopularityModel(self.popularity),
        }
        return builders[name]()

    def build(self) -> BlendModel:
        """An unfitted blend of the members with a non-zero weight."""
        weights = {n: w for n, w in self.blend.weights.items() if w}
        members = {name: self.member(name) for name in weights}
        return BlendModel(members, replace(self.blend, weights=weights))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for the model's sidecar and the trial log)."""
        out = {name: asdict(getattr(self, name)) for name in MEMBERS}
        out["weights"] = self.weights.to_dict()
        out["blend"] = {"weights": dict(self.blend.weights), "normalise": self.blend.normalise}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlendConfig:
        """The inverse of :meth:`to_dict`."""
        return cls(
            weights=EventWeights.from_dict(data["weights"]),
            als=ALSParams(**data["als"]),
            ease=EASEParams(**data["ease"]),
            item_knn=ItemKNNParams(**data["item_knn"]),
            covisit=CoVisitParams(**data["covisit"]),
            popularity=PopularityParams(**data["popularity"]),
            blend=BlendParams(**data["blend"]),
        )


@dataclass(frozen=True)
class SearchSpace:
    """What the random search samples from: tuples are choices, (low, high) pairs log-uniform."""

    factors: tuple[int, ...] = (32, 64, 128, 200)
    regularization: tuple[float, float] = (0.01, 30.0)
    alpha: tuple[float, float] = (0.3, 50.0)
    iterations: tuple[int, ...] = (10, 15)
    half_life_days: tuple[float | None, ...] = (None, 30.0, 180.0, 365.0, 1000.0)
    decay_reference: tuple[str, ...] = ("customer", "now")
    saturation: tuple[bool, ...] = (False, True)
    event_weight_scale: tuple[float, float] = (0.5, 2.0)  # each event's weight times this
    ease_regularization: tuple[float, ...] = (100.0, 200.0, 300.0, 500.0, 800.0, 1200.0)
    ease_min_item_users: tuple[int, ...] = (3,)
    knn_K: tuple[int, ...] = (20, 50, 100, 200)
    covisit_window: tuple[int, ...] = (10, 20, 50, 100)
    covisit_gap_weighting: tuple[bool, ...] = (False, True)
    covisit_both_directions: tuple[bool, ...] = (False, True)
    covisit_popularity_exponent: tuple[float, ...] = (0.0, 0.25, 0.5)
    covisit_recent: tuple[int, ...] = (5, 10, 20, 50)
    covisit_recency_decay: tuple[float, ...] = (0.7, 0.8, 0.85, 0.9, 0.95)
    members: tuple[str, ...] = MEMBERS
    blend_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    min_als_weight: float = 0.25  # the blend always contains ALS
    normalise: tuple[str, ...] = ("zscore", "minmax")
    blends_per_trial: int = 8


@dataclass
class TuningResult:
    """The best configuration found, its validation metrics and every trial."""

    best: BlendConfig
    best_metrics: dict[str, float]
    trials: list[dict[str, Any]]
    best_members: dict[str, dict[str, Any]]  # member -> its best solo metric and parameters
    seconds: float


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _choice(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def sample_config(rng: np.random.Generator, space: SearchSpace, base: EventWeights) -> BlendConfig:
    """One random configuration (blend weights left for :func:`sample_blend`)."""
    half_life = _choice(rng, space.half_life_days)
    events = {
        name: weight * _log_uniform(rng, space.event_weight_scale)
        if len(base.events) > 1
        else weight
        for name, weight in base.events.items()
    }
    weights = replace(
        base,
        events=events,
        saturation=bool(_choice(rng, space.saturation)),
        half_life_days=None if half_life is None else float(half_life),
        decay_reference=_choice(rng, space.decay_reference),
    )
    return BlendConfig(
        weights=weights,
        als=ALSParams(
            factors=int(_choice(rng, space.factors)),
            regularization=_log_uniform(rng, space.regularization),
            alpha=_log_uniform(rng, space.alpha),
            iterations=int(_choice(rng, space.iterations)),
        ),
        ease=EASEParams(
            regularization=float(_choice(rng, space.ease_regularization)),
            min_item_users=int(_choice(rng, space.ease_min_item_users)),
        ),
        item_knn=ItemKNNParams(K=int(_choice(rng, space.knn_K))),
        covisit=CoVisitParams(
            window=int(_choice(rng, space.covisit_window)),
            gap_weighting=bool(_choice(rng, space.covisit_gap_weighting)),
            both_directions=bool(_choice(rng, space.covisit_both_directions)),
            popularity_exponent=float(_choice(rng, space.covisit_popularity_exponent)),
            recent=int(_choice(rng, space.covisit_recent)),
            recency_decay=float(_choice(rng, space.covisit_recency_decay)),
        ),
    )


def default_config(space: SearchSpace, base: EventWeights) -> BlendConfig:
    """The parameters' defaults (EASE limited like the space): trial 0 of every search."""
    return BlendConfig(weights=base, ease=EASEParams(min_item_users=space.ease_min_item_users[0]))


def sample_blend(rng: np.random.Generator, space: SearchSpace) -> BlendParams:
    """Random member weights (ALS at least ``min_als_weight``) and a normalisation."""
    weights = {name: float(_choice(rng, space.blend_weights)) for name in space.members}
    if "als" in weights:
        weights["als"] = max(weights["als"], space.min_als_weight)
    return BlendParams(weights=weights, normalise=_choice(rng, space.normalise))


class _Validation:
    """Matrices, fitted members and validation scores, cached across trials."""

    def __init__(self, fit_frame, validation_frame, K, max_users, rng):
        self.fit_frame, self.validation_frame, self.K = fit_frame, validation_frame, K
        self.max_users, self.rng = max_users, rng
        self.matrices: dict[str, tuple[Interactions, Interactions, np.ndarray]] = {}
        self.models: dict[tuple, Recommender] = {}
        self.users: np.ndarray | None = None  # the same validation customers in every trial

    def split(self, weights: EventWeights):
        key = repr(weights.to_dict())
        if key not in self.matrices:
            train, validation = split_matrices(self.fit_frame, self.validation_frame, weights)
            if self.users is None:
                # Rows are the sorted customer ids whatever the weights (decay never empties one).
                users = np.flatnonzero(
                    (np.diff(validation.user_items.indptr) > 0)
                    & (np.diff(train.user_items.indptr) > 0)
                )
                if self.max_users and len(users) > self.max_users:
                    users = np.sort(self.rng.choice(users, self.max_users, replace=False))
                self.users = users
            self.matrices = {key: (train, validation, self.users)}  # one weighting at a time
        return self.matrices[key]

    def member(self, name: str, config: BlendConfig, train: Interactions) -> Recommender:
        params = getattr(config, name)
        # Members fitted on 0/1 or on the time order do not depend on the event weights.
        weightless = (name == "ease" and config.ease.binarize) or name == "covisit"
        if not weightless:
            return config.member(name).fit(train.user_items, train.last_seen)
        fresh = config.member(name)
        fit_params = {k: v for k, v in asdict(params).items() if k not in fresh.scoring_params}
        key = (name, repr(fit_params), train.user_items.nnz)
        if key not in self.models:
            if len(self.models) >= 12:  # dense EASE weights are large: keep a few
                self.models.pop(next(iter(self.models)))
            self.models[key] = fresh.fit(train.user_items, train.last_seen)
        model = copy.copy(self.models[key])
        model.params = params  # same fit, this trial's scoring parameters
        return model


def default_blend(space: SearchSpace) -> BlendParams:
    """Trial 0's blend: every member of the space at weight 1 (item-kNN and popularity less)."""
    start = {"als": 1.0, "ease": 1.0, "item_knn": 0.5, "covisit": 1.0, "popularity": 0.0}
    return BlendParams({n: start.get(n, 1.0) for n in space.members}, space.normalise[0])


def _blend_metrics(blend: BlendParams, normalised, history, relevant, K) -> dict[str, float]:
    scores = None
    for name, weight in blend.weights.items():
        if weight and name in normalised[blend.normalise]:
            part = weight * normalised[blend.normalise][name]
            scores = part if scores is None else scores + part
    if scores is None:
        scores = np.zeros(relevant.shape, dtype=np.float32)
    return _metrics(scores, history, relevant, K)


def _refine(best, cached, space: SearchSpace, passes: int, K: int, key: str, trials: list):
    """Coordinate ascent over the best blend's weights on its cached validation scores."""
    started = time.perf_counter()
    value, config, metrics = best
    normalised, history, relevant = cached
    blend = config.blend
    grid = sorted(set(space.blend_weights) | {0.125, 0.75, 1.5, 3.0, 6.0})
    for _ in range(passes):
        improved = False
        for name in space.members:
            for weight in grid:
                if name == "als" and weight < space.min_als_weight:
                    continue
                candidate = replace(blend, weights={**blend.weights, name: weight})
                found = _blend_metrics(candidate, normalised, history, relevant, K)
                if found[key] > value + 1e-9:
                    value, blend, metrics, improved = found[key], candidate, found, True
        if not improved:
            break
    config = replace(config, blend=blend)
    trials.append(
        {
            "trial": "refine",
            "seconds": round(time.perf_counter() - started, 2),
            key: value,
            "metrics": metrics,
            "config": config.to_dict(),
        }
    )
    return value, config, metrics


def _metrics(scores: np.ndarray, history, relevant, K: int) -> dict[str, float]:
    scores = scores.copy()
    _mask_rows(scores, history, None, None)
    ids, _ = top_n(scores, K)
    return ranking_metrics(ids, relevant, K)


def tune(
    fit_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    base_weights: EventWeights | None = None,
    space: SearchSpace | None = None,
    budget_seconds: float = 120.0,
    max_trials: int = 50,
    K: int = 10,
    metric: str = "ndcg",
    seed: int = 0,
    max_users: int | None = 5000,
    refine_passes: int = 2,
) -> TuningResult:
    """Random search; returns the best blend by validation ``metric@K`` and the trial log.

    Stops before a new trial once ``budget_seconds`` have passed (a running trial finishes) or
    after ``max_trials``. Trial 0 is the defaults, so a tiny budget still returns something sane.
    Then ``refine_passes`` rounds of coordinate ascent tune the best trial's blend weights on its
    cached validation scores (logged as trial "refine", a few seconds).
    """
    started = time.perf_counter()
    space = space or SearchSpace()
    base_weights = base_weights or EventWeights()
    rng = np.random.default_rng(seed)
    cache = _Validation(fit_frame, validation_frame, K, max_users, rng)
    key = f"{metric}@{K}"
    trials: list[dict[str, Any]] = []
    best: tuple[float, BlendConfig, dict] | None = None
    best_members: dict[str, dict[str, Any]] = {}
    for trial in range(max_trials):
        if trial and time.perf_counter() - started > budget_seconds:
            break
        trial_started = time.perf_counter()
        config = (
            default_config(space, base_weights)
            if trial == 0
            else sample_config(rng, space, base_weights)
        )
        train, validation, users = cache.split(config.weights)
        history, relevant = train.user_items[users], validation.user_items[users]
        times = train.last_seen[users]
        raw, solo = {}, {}
        for name in space.members:
            model = cache.member(name, config, train)
            raw[name] = model.score(users, history, last_seen=times)
            solo[name] = _metrics(raw[name], history, relevant, K)[key]
            if solo[name] > best_members.get(name, {}).get(key, -1.0):
                best_members[name] = {
                    key: solo[name],
                    "trial": trial,
                    "params": asdict(getattr(config, name)),
                    "weights": config.weights.to_dict(),
                }
        normalised = {
            how: {n: normalise_scores(s, history, how) for n, s in raw.items()}
            for how in space.normalise
        }
        blends = [default_blend(space)] if trial == 0 else []
        blends += [sample_blend(rng, space) for _ in range(space.blends_per_trial - len(blends))]
        trial_best: tuple[float, BlendParams, dict] | None = None
        for blend in blends:
            metrics = _blend_metrics(blend, normalised, history, relevant, K)
            if trial_best is None or metrics[key] > trial_best[0]:
                trial_best = (metrics[key], blend, metrics)
        value, blend, metrics = trial_best
        config = replace(config, blend=blend)
        trials.append(
            {
                "trial": trial,
                "seconds": round(time.perf_counter() - trial_started, 2),
                key: value,
                "metrics": metrics,
                "solo": solo,
                "config": config.to_dict(),
            }
        )
        log.info("trial %d: %s %.4f (%.1fs)", trial, key, value, trials[-1]["seconds"])
        if best is None or value > best[0]:
            best = (value, config, metrics)
            best_scores = (normalised, history, relevant)
    if refine_passes and best is not None:
        best = _refine(best, best_scores, space, refine_passes, K, key, trials)
    return TuningResult(
        best=best[1],
        best_metrics=best[2],
        trials=trials,
        best_members=best_members,
        seconds=time.perf_counter() - started,
    )
