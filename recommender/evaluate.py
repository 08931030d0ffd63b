"""Offline evaluation: temporal splits and top-K ranking metrics.

Definitions (binary relevance; ``rel`` = a customer's held-out items, ``hit_k`` = 1 when the item
at rank k is in ``rel``; averages are over customers with at least one held-out item):

- precision@K = hits / K
- recall@K    = hits / |rel|
- nDCG@K      = sum_k hit_k / log2(k + 1)  divided by the same sum for an ideal list of
                min(K, |rel|) hits
- MAP@K       = mean of AP@K = sum_k precision@k * hit_k / min(K, |rel|)
- coverage@K  = distinct items recommended to the evaluated customers / catalogue size
- novelty@K   = mean over recommended items of -log2(share of training customers with the item)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.interactions import (
    EventWeights,
    Interactions,
    _as_epoch,
    _epoch_seconds,
    build_interactions,
)

# Held-out pairs count once each, whatever the events were.
BINARY = EventWeights(events={}, default=1.0, saturation=False)


def split_by_customer(
    frame: pd.DataFrame, test_fraction: float = 0.2, min_interactions: int = 5
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per customer, their latest ``test_fraction`` of events (round half up, at least one) as test.

    Customers with fewer than ``min_interactions`` events stay wholly in train (they still teach
    the model) and are not evaluated. Ties in time keep the frame's order.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    seconds = _epoch_seconds(frame["timestamp"])
    customers = pd.factorize(frame["user_id"])[0]
    # By customer, then time; stable, so ties in time keep the frame's order.
    order = np.argsort(seconds, kind="stable")
    order = order[_group_stably(customers[order])]
    customers = customers[order]
    counts = np.bincount(customers)[customers] if len(customers) else customers
    # Sorted by customer: an event's rank from the end is its distance to its group's last row.
    last = np.cumsum(np.bincount(customers)) - 1 if len(customers) else customers
    rank_from_end = last[customers] - np.arange(len(customers)) if len(customers) else customers
    n_test = np.maximum(np.floor(test_fraction * counts + 0.5), 1)
    is_test = (counts >= min_interactions) & (rank_from_end < n_test)
    return (
        frame.take(order[~is_test]).reset_index(drop=True),
        frame.take(order[is_test]).reset_index(drop=True),
    )


def _group_stably(groups: np.ndarray) -> np.ndarray:
    """The stable argsort of small non-negative ints, as a counting sort (linear time).

    Building a CSR matrix with one entry per element (row = its group, column = its position)
    is exactly that: scipy places each row's entries in input order. Half the time of
    ``np.argsort(kind="stable")`` at 5M elements.
    """
    n = len(groups)
    if not n:
        return np.empty(0, dtype=np.int64)
    marks = sp.csr_matrix(
        (np.ones(n, dtype=np.int8), (groups, np.arange(n))), shape=(int(groups.max()) + 1, n)
    )
    return marks.indices.astype(np.int64)


def split_by_time(frame: pd.DataFrame, cutoff) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events before ``cutoff`` (datetime or epoch seconds) train, the rest test."""
    is_test = _epoch_seconds(frame["timestamp"]) >= _as_epoch(cutoff)
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def split_matrices(
    train_frame: pd.DataFrame,
    test_frame: pd.DataFrame,
    weights: EventWeights | None = None,
    now=None,
    exclude_seen: bool = True,
) -> tuple[Interactions, Interactions]:
    """Train (weighted) and test (0/1) matrices sharing the train split's rows and columns.

    Held-out pairs already in train are dropped when ``exclude_seen`` (a recommender that filters
    liked items can never hit them); so are customers and items absent from train.
    """
    train = build_interactions(train_frame, weights, now)
    test = build_interactions(
        test_frame, BINARY, train.now, user_ids=train.user_ids, item_ids=train.item_ids
    )
    if exclude_seen and test.user_items.nnz:
        seen = test.user_items.multiply(train.user_items > 0).astype(bool)
        held_out = (test.user_items - test.user_items.multiply(seen)).tocsr()
        held_out.eliminate_zeros()
        test = Interactions(
            held_out.astype(np.float32), test.user_ids, test.item_ids, None, test.now, BINARY
        )
    return train, test


def _matrix(data) -> sp.csr_matrix:
    return data.user_items if isinstance(data, Interactions) else sp.csr_matrix(data)


def hit_matrix(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """(n, K) bool: whether each recommended column (-1 = none) is held out for that row."""
    recommended = np.asarray(recommended, dtype=np.int64)
    relevant = sp.csr_matrix(relevant)
    n_items = relevant.shape[1]
    rows = np.repeat(np.arange(relevant.shape[0], dtype=np.int64), np.diff(relevant.indptr))
    truth = np.sort(rows * n_items + relevant.indices)
    keys = np.arange(len(recommended), dtype=np.int64)[:, None] * n_items + recommended
    found = np.isin(keys, truth, assume_unique=False)
    return found & (recommended >= 0)


def ranking_metrics(
    recommended: np.ndarray,
    relevant: sp.csr_matrix,
    K: int = 10,
    train: sp.csr_matrix | None = None,
) -> dict[str, float]:
    """precision, recall, nDCG, MAP, coverage (and novelty when ``train`` is given) at K.

    ``recommended`` is (n, >=K) int item columns per row of ``relevant`` (n, n_items); rows
    without held-out items are skipped.
    """
    relevant = sp.csr_matrix(relevant)
    recommended = np.asarray(recommended, dtype=np.int64)[:, :K]
    if recommended.shape[1] < K:
        pad = np.full((len(recommended), K - recommended.shape[1]), -1, dtype=np.int64)
        recommended = np.hstack([recommended, pad])
    n_relevant = np.diff(relevant.indptr)
    evaluated = n_relevant > 0
    hits = hit_matrix(recommended, relevant)[evaluated].astype(np.float64)
    n_rel = n_relevant[evaluated].astype(np.float64)
    if not len(n_rel):
        return {f"{m}@{K}": 0.0 for m in ("precision", "recall", "ndcg", "map", "coverage")} | {
            "users": 0
        }
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, K).astype(np.int64) - 1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, K + 1)
    shown = recommended[evaluated]
    valid = shown[shown >= 0]
    n_items = relevant.shape[1]
    out = {
        f"precision@{K}": float(np.mean(hits.sum(axis=1) / K)),
        f"recall@{K}": float(np.mean(hits.sum(axis=1) / n_rel)),
        f"ndcg@{K}": float(np.mean((hits @ discount) / ideal)),
        f"map@{K}": float(np.mean((precision_at * hits).sum(axis=1) / np.minimum(n_rel, K))),
        f"coverage@{K}": float(len(np.unique(valid)) / n_items) if n_items else 0.0,
        "users": int(evaluated.sum()),
    }
    if train is not None:
        out[f"novelty@{K}"] = novelty(shown, train)
    return out


def precision_at_k(recommended, relevant, K: int = 10) -> float:
    """Mean hits / K."""
    return ranking_metrics(recommended, relevant, K)[f"precision@{K}"]


def recall_at_k(recommended, relevant, K: int = 10) -> float:
    """Mean hits / |held-out items|."""
    return ranking_metrics(recommended, relevant, K)[f"recall@{K}"]


def ndcg_at_k(recommended, relevant, K: int = 10) -> float:
    """Mean normalised discounted cumulative gain with binary relevance."""
    return ranking_metrics(recommended, relevant, K)[f"ndcg@{K}"]


def map_at_k(recommended, relevant, K: int = 10) -> float:
    """Mean average precision, AP normalised by min(K, |held-out items|)."""
    return ranking_metrics(recommended, relevant, K)[f"map@{K}"]


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue's ``n_items`` that appear in any recommendation list."""
    recommended = np.asarray(recommended)
    return float(len(np.unique(recommended[recommended >= 0])) / n_items) if n_items else 0.0


def novelty(recommended: np.ndarray, train: sp.csr_matrix) -> float:
    """Mean self-information -log2(p_i) of recommended items, p_i = share of customers with i."""
    train = sp.csr_matrix(train)
    recommended = np.asarray(recommended)
    shown = recommended[recommended >= 0]
    if not len(shown) or not train.shape[0]:
        return 0.0
    customers = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float64)
    share = np.maximum(customers[shown], 1.0) / train.shape[0]
    return float(np.mean(-np.log2(share)))


def evaluate(
    model,
    train,
    test,
    K: int = 10,
    users: np.ndarray | None = None,
    filter_items: np.ndarray | None = None,
) -> dict[str, float]:
    """Recommend K items to every customer with held-out items and score the lists.

    ``train``/``test`` are :class:`Interactions` (or CSR) with the same rows and columns; the
    model sees the train rows (and their ``last_seen`` times) as histories and must have been
    fitted on them.
    """
    train_m, test_m = _matrix(train), _matrix(test)
    if train_m.shape != test_m.shape:
        raise ValueError(f"train {train_m.shape} and test {test_m.shape} must share rows/columns")
    if users is None:
        users = np.flatnonzero((np.diff(test_m.indptr) > 0) & (np.diff(train_m.indptr) > 0))
    users = np.asarray(users, dtype=np.int64)
    times = train.last_seen if isinstance(train, Interactions) else None
    ids, _ = model.recommend(
        users,
        train_m[users],
        N=K,
        filter_items=filter_items,
        last_seen=None if times is None else times[users],
    )
    return ranking_metrics(ids, test_m[users], K, train=train_m)


def summarise(results: Mapping[str, Mapping[str, float]], K: int = 10) -> str:
    """A fixed-width table of metric dicts keyed by model name."""
    columns = [f"ndcg@{K}", f"recall@{K}", f"precision@{K}", f"map@{K}", f"coverage@{K}"]
    width = max([len(n) for n in results] + [5])
    lines = [f"{'model':<{width}}  " + "  ".join(f"{c:>12}" for c in columns)]
    for name, metrics in results.items():
        cells = [metrics.get(c, math.nan) for c in columns]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>12.4f}" for v in cells))
    return "\n".join(lines)
