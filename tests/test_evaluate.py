"""Evaluation: metrics against hand-computed values, temporal splits, and the tuning loop."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommender.evaluate import (
    _group_stably,
    coverage,
    evaluate,
    map_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    split_by_customer,
    split_by_time,
    split_matrices,
)
from recommender.interactions import EventWeights, build_interactions
from recommender.models import BlendModel, PopularityModel
from recommender.tuning import BlendConfig, SearchSpace, tune

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOG2_3 = math.log2(3)


def relevant(rows: list[list[int]], n_items: int = 14) -> sp.csr_matrix:
    data = [(r, c) for r, cols in enumerate(rows) for c in cols]
    r, c = zip(*data, strict=True) if data else ((), ())
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


# Three customers, K = 3:
#  0: shown [1, 2, 3], held out {2, 7}          -> one hit at rank 2
#  1: shown [4, 5, 6], held out {9}             -> no hit
#  2: shown [10, 0, 11], held out {10..13}      -> hits at ranks 1 and 3
#  3: shown [1, 2, 3], held out nothing         -> not evaluated
SHOWN = np.array([[1, 2, 3], [4, 5, 6], [10, 0, 11], [1, 2, 3]])
HELD_OUT = relevant([[2, 7], [9], [10, 11, 12, 13], []])


def test_metrics_match_hand_computed_values():
    ndcg0 = (1 / LOG2_3) / (1 + 1 / LOG2_3)
    ndcg2 = (1 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2)
    metrics = ranking_metrics(SHOWN, HELD_OUT, K=3)
    assert metrics["users"] == 3
    assert metrics["precision@3"] == pytest.approx((1 / 3 + 0 + 2 / 3) / 3)
    assert metrics["recall@3"] == pytest.approx((1 / 2 + 0 + 2 / 4) / 3)
    assert metrics["ndcg@3"] == pytest.approx((ndcg0 + 0 + ndcg2) / 3)
    # AP@K = sum of precision@k at hits / min(K, |held out|)
    assert metrics["map@3"] == pytest.approx(((1 / 2) / 2 + 0 + (1 + 2 / 3) / 3) / 3)
    assert metrics["coverage@3"] == pytest.approx(9 / 14)  # {0..6, 10, 11} over 14 items
    assert precision_at_k(SHOWN, HELD_OUT, 3) == metrics["precision@3"]
    assert recall_at_k(SHOWN, HELD_OUT, 3) == metrics["recall@3"]
    assert ndcg_at_k(SHOWN, HELD_OUT, 3) == metrics["ndcg@3"]
    assert map_at_k(SHOWN, HELD_OUT, 3) == metrics["map@3"]


def test_metrics_at_smaller_k_cut_the_lists_and_padding_never_hits():
    assert ndcg_at_k(SHOWN, HELD_OUT, 1) == pytest.approx((0 + 0 + 1) / 3)
    padded = np.array([[-1, 2, -1]])
    metrics = ranking_metrics(padded, relevant([[2]], n_items=3), K=3)
    assert metrics["precision@3"] == pytest.approx(1 / 3)
    assert metrics["ndcg@3"] == pytest.approx(1 / LOG2_3)
    assert metrics["coverage@3"] == pytest.approx(1 / 3)
    perfect = ranking_metrics(np.array([[7, 2, 5]]), relevant([[2, 7]]), K=3)
    assert perfect["ndcg@3"] == pytest.approx(1.0) and perfect["map@3"] == pytest.approx(1.0)


def test_coverage_and_novelty():
    assert coverage(np.array([[0, 1], [1, -1]]), n_items=4) == 0.5
    # 4 customers: item 0 held by all, item 1 by one, item 2 by none (counted as one).
    train = relevant([[0, 1], [0], [0], [0]], n_items=3)
    assert novelty(np.array([[0, 1], [2, -1]]), train) == pytest.approx((0 + 2 + 2) / 3)


def events(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(user, item, day) -> an interactions frame of Product Viewed events."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "event": ["Product Viewed"] * len(rows),
            "timestamp": [T0 + timedelta(days=r[2]) for r in rows],
        }
    )


def test_split_by_customer_holds_out_each_customers_latest_share():
    rows = [("ann", f"i{d}", 10 - d) for d in range(10)]  # ann's items, newest first
    rows += [("bob", f"i{d}", d) for d in range(3)]  # too few to evaluate
    rows += [("cat", f"i{d}", 1) for d in range(6)]  # all at once: the frame's order decides
    train, test = split_by_customer(events(rows), test_fraction=0.2, min_interactions=5)
    held = test.groupby("user_id")["item_id"].apply(list).to_dict()
    assert held == {"ann": ["i1", "i0"], "cat": ["i5"]}  # 2 of 10; round(1.2) = 1 of 6
    assert len(train) + len(test) == len(rows)
    assert set(train[train.user_id == "bob"].item_id) == {"i0", "i1", "i2"}
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_customer(events(rows), test_fraction=1.0)


def test_split_by_time_and_matrices_drop_seen_and_unknown_pairs():
    frame = events(
        [
            ("ann", "mug", 1),
            ("ann", "tea", 2),
            ("bob", "mug", 3),
            ("ann", "mug", 5),
            ("ann", "pen", 6),
            ("bob", "tea", 7),
            ("cat", "mug", 8),
        ]
    )
    train_f, test_f = split_by_time(frame, T0 + timedelta(days=4))
    assert len(train_f) == 3 and len(test_f) == 4
    train, test = split_matrices(train_f, test_f, EventWeights(saturation=False))
    assert list(train.user_ids) == ["ann", "bob"] and list(train.item_ids) == ["mug", "tea"]
    # ann's mug is seen in train, her pen is unknown to train, cat is unknown to train.
    np.testing.assert_array_equal(test.user_items.toarray(), [[0, 0], [0, 1]])


def test_evaluate_wires_model_train_and_test_together():
    frame = events(
        [
            ("ann", "a", 1),
            ("bob", "a", 1),
            ("cat", "a", 1),
            ("bob", "b", 2),
            ("cat", "b", 2),
            ("cat", "c", 3),
            ("ann", "b", 9),
            ("bob", "c", 9),
        ]
    )
    train_f, test_f = split_by_time(frame, T0 + timedelta(days=5))
    train, test = split_matrices(train_f, test_f, EventWeights(saturation=False))
    model = PopularityModel().fit(train.user_items)
    metrics = evaluate(model, train, test, K=1)
    # Popularity order a > b > c; ann (has a) gets b: hit; bob (has a, b) gets c: hit.
    assert metrics["users"] == 2
    assert metrics["precision@1"] == 1.0 and metrics["ndcg@1"] == 1.0
    assert metrics["coverage@1"] == pytest.approx(2 / 3)


def clustered_frame(seed: int = 0, customers: int = 120, items: int = 40, clusters: int = 4):
    """A checkerboard in time: each customer views items of their own block, in order."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        block = c % clusters
        own = np.arange(block, items, clusters)
        for step, item in enumerate(rng.choice(own, size=8, replace=False)):
            rows.append((f"c{c}", f"i{item}", step))
    return events(rows)


def test_tune_respects_its_bounds_and_returns_a_buildable_best():
    train_f, _ = split_by_customer(clustered_frame(), 0.2, 5)
    fit_f, val_f = split_by_customer(train_f, 0.2, 5)
    space = SearchSpace(
        factors=(8,),
        iterations=(5,),
        ease_regularization=(10.0,),
        knn_K=(10,),
        covisit_window=(5,),
        blends_per_trial=3,
    )
    result = tune(fit_f, val_f, EventWeights(), space, budget_seconds=60, max_trials=3, seed=1)
    # Three sampled trials, then coordinate ascent on the best one's blend weights.
    assert [t["trial"] for t in result.trials] == [0, 1, 2, "refine"]
    best = max(t["ndcg@10"] for t in result.trials)
    assert result.best_metrics["ndcg@10"] == best == result.trials[-1]["ndcg@10"]
    assert best >= max(t["ndcg@10"] for t in result.trials[:3])
    assert best > 0.3  # planted blocks: far above chance
    assert result.best.blend.weights["als"] >= space.min_als_weight
    assert set(result.best_members) == set(space.members)
    assert set(result.best.blend.weights) <= set(space.members)
    # The log is JSON-ready and the best config round-trips and builds a fittable blend.
    assert BlendConfig.from_dict(result.best.to_dict()) == result.best
    model = result.best.build()
    assert isinstance(model, BlendModel) and "als" in model.members
    built = build_interactions(train_f, result.best.weights)
    model.fit(built.user_items, built.last_seen)
    ids, _ = model.recommend([0], built.user_items[:1], N=3, last_seen=built.last_seen[:1])
    assert ids.shape == (1, 3)


def test_tune_stops_at_the_time_budget():
    train_f, _ = split_by_customer(clustered_frame(seed=2), 0.2, 5)
    fit_f, val_f = split_by_customer(train_f, 0.2, 5)
    space = SearchSpace(factors=(8,), iterations=(5,), ease_regularization=(10.0,), knn_K=(10,))
    result = tune(fit_f, val_f, EventWeights(), space, budget_seconds=0.0, max_trials=50)
    # Trial 0 always runs, then the budget is spent; only the cheap refinement follows.
    assert [t["trial"] for t in result.trials] == [0, "refine"]


@pytest.mark.parametrize(("n", "groups"), [(0, 1), (1, 1), (50, 3), (20_000, 400), (500, 1)])
def test_grouping_stably_is_a_stable_argsort(n, groups):
    values = np.random.default_rng(n).integers(0, groups, n)
    np.testing.assert_array_equal(_group_stably(values), np.argsort(values, kind="stable"))
