"""The training job: read the store, build the matrix, tune, fit, evaluate, check, save, promote.

A model reaches customers only if it passes :func:`check_model` on the validation split: finite
scores, the matrix the right way round, lists that differ between customers, and ranking
quality at least that of popularity. Otherwise the current model stays.

Every member is fitted once, on the fit split (each customer's events but their latest 20%),
and that is the model validation judges. There is no second fit on all data: the promoted model
is the validated one brought up to date (:func:`final_model`). Its item side (ALS item factors,
EASE weights, item-kNN and co-visitation neighbours) is kept as validated; its user side is
recomputed from every customer's whole history: item-based members score from the history rows
anyway, and ALS takes one user half-step (implicit's own solver, started from the validated
factors) on the full matrix, so each customer's latest events shape their vector. Items seen only
in the held-out events get ALS factors from one item half-step and no neighbours until the next
run. Why not the full refit: it doubled the fitting (1.9x the bare implicit fit at 1M
interactions); a refit warm-started from the validated factors still cost about a fifth of a fit
for 3 iterations, where the user half-step costs about a sixteenth (0.21 s against 3.46 s at 1M
interactions). Quality held on MovieLens (bench/quality.py's protocol, scored on its test split):
the default blend promoted this way scored 1.5% below a refit on all data, ALS alone 9% above it
(bench/RESULTS.md, "Training speed" and "Recommendation quality").
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recommender import forget
from recommender.artifacts import folder_digest
from recommender.evaluate import BINARY, evaluate, split_by_customer, split_matrices
from recommender.event_frames import read_events
from recommender.interactions import Interactions, build_interactions
from recommender.models import (
    ALSModel,
    BlendModel,
    BlendParams,
    FactorModel,
    PopularityModel,
    Recommender,
)
from recommender.opt_outs import opted_out, without_customers
from recommender.registry import ModelRegistry
from recommender.tuning import BlendConfig, SearchSpace, default_blend, tune
from tracking import erased, interaction_log
from tracking.text import plural

log = logging.getLogger("ecrm.recommender")

EASE_MAX_ITEMS = 20_000  # EASE keeps a dense items x items matrix: 20k items is 1.6 GB
TRENDING_DAYS = 7.0
MIN_USERS, MIN_ITEMS = 2, 2


class NotEnoughData(RuntimeError):
    """The store holds too little behaviour to train on yet."""


@dataclass
class TrainSettings:
    """What one training run does."""

    site_id: int
    registry_dir: str | Path
    tune_seconds: float = 60.0  # 0: no search, use ``config`` (or the default blend)
    max_trials: int = 20
    config: BlendConfig | None = None
    validation_fraction: float = 0.2
    K: int = 10
    keep: int = 5
    max_eval_users: int = 5000
    seed: int = 0
    # Called with the committed version's folder just before it becomes current (the serving
    # cache is warmed then, so the swap finds the new version's answers already in Redis).
    before_promote: Callable[[Path], None] | None = None


@dataclass
class TrainReport:
    """What a training run did and why it promoted or refused its model."""

    version: str | None = None
    promoted: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    n_users: int = 0
    n_items: int = 0
    n_interactions: int = 0
    config: dict[str, Any] = field(default_factory=dict)


Progress = Callable[[str, str], None]


def default_config(n_items: int) -> BlendConfig:
    """The untuned blend: ALS, EASE (small catalogues only), item-kNN and co-visitation."""
    blend = default_blend(SearchSpace())
    weights = dict(blend.weights)
    if n_items > EASE_MAX_ITEMS:
        weights.pop("ease", None)
    return BlendConfig(blend=replace(blend, weights=weights))


def format_metrics(metrics: dict[str, float], keys: tuple[str, ...] = ()) -> str:
    """Metrics for people: ``ndcg@10 0.169, precision@10 0.052``, three significant digits.

    ``keys`` picks and orders metric names by prefix (``("ndcg", "recall")``); by default every
    ranking metric, without the evaluated-users count.
    """
    names = [k for k in metrics if k != "users"]
    if keys:
        names = [k for prefix in keys for k in names if k.split("@")[0] == prefix]
    return ", ".join(f"{name} {metrics[name]:.3g}" for name in names)


def check_model(
    model: Recommender,
    interactions: Interactions,
    metrics: dict[str, float] | None = None,
    baseline: dict[str, float] | None = None,
    K: int = 10,
    sample: int = 200,
) -> list[str]:
    """Why this model must not be promoted (an empty list: it may be)."""
    failures = []
    n_users, n_items = interactions.user_items.shape
    if model.n_items != n_items:
        failures.append(
            f"orientation: the model knows {plural(model.n_items, 'item')} but the matrix has "
            f"{plural(n_items, 'column')} (was it trained on a transposed matrix?)"
        )
        return failures
    for name, member in getattr(model, "members", {"model": model}).items():
        if isinstance(member, FactorModel):
            if member.user_factors.shape[0] != n_users:
                failures.append(
                    f"orientation: {name} has {plural(member.user_factors.shape[0], 'user row')} "
                    f"for {plural(n_users, 'customer')}"
                )
            for label, factors in (("user", member.user_factors), ("item", member.item_factors)):
                if not np.isfinite(factors).all():
                    failures.append(f"{name}: {label} factors contain NaN or infinity")
    if failures:
        return failures
    rng = np.random.default_rng(0)
    users = np.sort(rng.choice(n_users, size=min(sample, n_users), replace=False))
    last_seen = interactions.last_seen[users] if interactions.last_seen is not None else None
    scores = model.score(users, interactions.user_items[users], last_seen=last_seen)
    if not np.isfinite(scores).all():
        failures.append("scores contain NaN or infinity")
        return failures
    # Unfiltered lists: filtering what each customer already has would make even a constant
    # ranking look personal.
    ids, _ = model.recommend(
        users,
        interactions.user_items[users],
        N=min(K, n_items),
        filter_already_liked_items=False,
        last_seen=last_seen,
    )
    distinct = {tuple(row) for row in ids}
    if len(users) > 1 and len(distinct) == 1:
        failures.append(f"every sampled customer gets the same {K} items: not personal")
    if metrics is not None and baseline is not None:
        key = f"ndcg@{K}"
        if metrics.get(key, 0.0) < baseline.get(key, 0.0):
            failures.append(
                f"{key} {metrics.get(key, 0.0):.4f} on validation is worse than popularity's "
                f"{baseline.get(key, 0.0):.4f}"
            )
    return failures


def _window(frame: pd.DataFrame) -> dict[str, Any]:
    seconds = pd.to_numeric(frame["timestamp"], errors="coerce") if len(frame) else None
    if seconds is None or not len(seconds):
        return {"from": None, "to": None}
    return {"from_epoch": float(seconds.min()), "to_epoch": float(seconds.max())}


def train(
    engine: sa.Engine,
    settings: TrainSettings,
    progress: Progress | None = None,
    frame: pd.DataFrame | None = None,
) -> TrainReport:
    """Train, check and (if the checks pass) promote a model for one site.

    ``frame`` (a :func:`read_events` frame) replaces reading the store: the run command trains
    the demo's first model from the events it has just generated, while the ingest worker is
    still storing them (:func:`frame_from_segment` builds the same matrix the store would give).
    """
    report = TrainReport()
    say = progress or (lambda stage, message: log.info("%s: %s", stage, message))
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        report.timings[stage] = round(now - clock, 3)
        clock = now

    if frame is None:
        with engine.begin() as conn:
            # A quiet shop's many small batches become one chunk before they are read.
            interaction_log.compact(conn, settings.site_id)
        frame = read_events(engine, settings.site_id)
    # Customers who turned personalisation off are left out: the model gets no factors for
    # them, and their events shape nobody's recommendations (popularity included).
    with engine.connect() as conn:
        frame = without_customers(frame, opted_out(conn, settings.site_id))
    lap("read")
    users, items = frame["user_id"].nunique(), frame["item_id"].nunique()
    counted = [plural(len(frame), "interaction"), plural(users, "customer"), plural(items, "item")]
    say("read", ", ".join(counted))
    if users < MIN_USERS or items < MIN_ITEMS:
        raise NotEnoughData(
            f"site {settings.site_id} has {plural(users, 'customer')} and "
            f"{plural(items, 'item')} with events; "
            f"training needs at least {MIN_USERS} of each"
        )

    fit_frame, valid_frame = split_by_customer(frame, settings.validation_fraction)
    lap("split")
    if settings.config is not None:
        config = settings.config
    elif settings.tune_seconds > 0 and len(valid_frame):
        say("tune", f"searching for up to {settings.tune_seconds:.0f} s")
        result = tune(
            fit_frame,
            valid_frame,
            budget_seconds=settings.tune_seconds,
            max_trials=settings.max_trials,
            K=settings.K,
            seed=settings.seed,
            max_users=settings.max_eval_users,
        )
        config = result.best
        best = format_metrics(result.best_metrics, ("ndcg", "recall"))
        say("tune", f"{plural(len(result.trials), 'trial')}, best {best}")
    else:
        config = default_config(items)
    if items > EASE_MAX_ITEMS and config.blend.weights.get("ease"):
        weights = {k: v for k, v in config.blend.weights.items() if k != "ease"}
        config = replace(config, blend=BlendParams(weights, config.blend.normalise))
    report.config = config.to_dict()
    lap("tune")

    train_part, valid_part = split_matrices(fit_frame, valid_frame, config.weights)
    lap("build")
    # The matrix of all the data is built on another thread while implicit fits: the fit leaves
    # about a quarter of the second core idle (1.74 cores used, measured at 5M interactions),
    # and the build (numpy and pandas, mostly outside the GIL) hides in it: about 0.6 s less
    # end to end at 5M. The thread ends with its one task, whether or not the model passes.
    background = ThreadPoolExecutor(1, thread_name_prefix="ecrm-train")
    full_build = background.submit(build_interactions, frame, config.weights)
    background.shutdown(wait=False)
    candidate = config.build().fit(train_part.user_items, last_seen=train_part.last_seen)
    lap("fit")
    members = " + ".join(getattr(candidate, "members", None) or [type(candidate).__name__])
    say("fit", f"{members} on {plural(train_part.shape[0], 'customer')}")
    eval_users = _eval_users(valid_part, train_part, settings.max_eval_users, settings.seed)
    report.metrics = evaluate(candidate, train_part, valid_part, settings.K, users=eval_users)
    popularity = PopularityModel().fit(train_part.user_items)
    report.baseline = evaluate(popularity, train_part, valid_part, settings.K, users=eval_users)
    lap("evaluate")
    shown = ("ndcg", "precision", "recall", "coverage")
    say(
        "evaluate",
        f"validation {format_metrics(report.metrics, shown)}; "
        f"popularity {format_metrics(report.baseline, shown[:3])}",
    )
    report.failures = check_model(
        candidate, train_part, report.metrics, report.baseline, settings.K
    )
    if report.failures:
        say("check", "refused: " + "; ".join(report.failures))
        return report

    full = full_build.result()
    model = final_model(candidate, train_part, full)
    report.n_users, report.n_items = full.user_items.shape
    report.n_interactions = int(full.user_items.nnz)
    lap("final")
    report.failures = check_model(model, full, K=settings.K)
    if report.failures:
        say("check", "refused after bringing it up to date: " + "; ".join(report.failures))
        return report

    registry = ModelRegistry(settings.registry_dir, keep=settings.keep)
    version = registry.new_version()
    staging = registry.staging_dir(version)
    purchases = frame[frame["event"] == "Order Completed"]
    bought = build_interactions(purchases, BINARY, user_ids=full.user_ids, item_ids=full.item_ids)
    model.save(staging / "model")
    full.save(staging / "interactions")
    bought.save(staging / "purchases")
    PopularityModel().fit(full.user_items).save(staging / "popular")
    PopularityModel.trending(full, TRENDING_DAYS).save(staging / "trending")
    sidecar = {
        "version": version,
        "site_id": settings.site_id,
        "config": report.config,
        "data_window": _window(frame),
        "counts": {
            "customers": report.n_users,
            "items": report.n_items,
            "interactions": report.n_interactions,
            "events": int(len(frame)),
        },
        "validation": {"metrics": report.metrics, "popularity": report.baseline},
        "timings": report.timings,
        "digest": folder_digest(staging),
    }
    (staging / "train.json").write_text(json.dumps(sidecar, indent=2, default=float))
    # A customer erased while this model trained (tracking.erased) must not be promoted in it.
    with engine.connect() as conn:
        gone = erased.erased_model_users(conn, settings.site_id, full.user_ids)
    if gone:
        forget.rewrite_folder(staging, staging, forget.rows_of(staging, gone), version)
        say("save", f"left out {plural(len(gone), 'customer')} erased during training")
    lap("save")
    final = registry.commit(version)
    if settings.before_promote is not None:
        try:
            settings.before_promote(final)
        except Exception as e:  # warming a cache must never keep a good model back
            say("promote", f"warming the cache failed ({e}); promoting anyway")
    registry.promote(version)
    report.version, report.promoted = version, True
    say("promote", f"model {version} is now current")
    return report


def final_model(candidate: BlendModel, fitted_on: Interactions, full: Interactions) -> BlendModel:
    """The validated ``candidate`` (fitted on ``fitted_on``) over all of ``full``, not refitted.

    Item columns move to ``full``'s (new items: see the module docstring); ALS members take one
    user half-step on ``full``; a popularity member is recounted on ``full``. Changes
    ``candidate`` in place and returns it.
    """
    columns = full.item_positions(fitted_on.item_ids)
    if (columns < 0).any():
        raise ValueError("the full matrix must contain every item of the split it extends")
    previous_rows = fitted_on.user_positions(full.user_ids)
    model = candidate.widen(columns, full.shape[1])
    for member in model.members.values():
        if isinstance(member, ALSModel):
            member.update_users(full.user_items, previous_rows)
        elif isinstance(member, PopularityModel):
            member.fit(full.user_items)
    return model


def _eval_users(test: Interactions, train_part: Interactions, limit: int, seed: int):
    held = np.diff(test.user_items.indptr) > 0
    known = np.diff(train_part.user_items.indptr) > 0
    users = np.flatnonzero(held & known)
    if len(users) > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, size=limit, replace=False))
    return users
