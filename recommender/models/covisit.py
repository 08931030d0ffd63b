"""Co-visitation: what customers went on to look at next, counted in time-ordered histories."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.artifacts import csr_arrays, csr_from
from recommender.models.base import Recommender, _params, _rows, widen_square


def time_ordered(last_seen: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, items, rank_from_latest) of every entry, ordered by row then time (oldest first)."""
    last_seen = sp.csr_matrix(last_seen)
    rows = np.repeat(np.arange(last_seen.shape[0]), np.diff(last_seen.indptr))
    order = np.lexsort((last_seen.indices, last_seen.data, rows))
    rows, cols = rows[order], last_seen.indices[order]
    # Sorted by row, so an entry's position inside its row is its offset from the row start.
    rank_from_latest = last_seen.indptr[rows + 1] - 1 - np.arange(len(rows))
    return rows, cols, rank_from_latest


def keep_top_per_row(matrix: sp.csr_matrix, K: int) -> sp.csr_matrix:
    """The ``K`` largest non-negative entries of each row of a CSR matrix (ties by column)."""
    matrix = sp.csr_matrix(matrix)
    matrix.sum_duplicates()  # canonical: each row's columns sorted, so stable sorts tie by column
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    if not len(rows):
        return matrix
    # One float sort instead of a lexsort: row, then larger values first inside the row.
    row_top = np.maximum.reduceat(matrix.data, matrix.indptr[:-1][np.diff(matrix.indptr) > 0])
    top = np.zeros(matrix.shape[0])
    top[np.diff(matrix.indptr) > 0] = row_top
    key = rows + (1.0 - matrix.data / np.where(top > 0, top, 1.0)[rows]) * 0.5
    order = np.argsort(key, kind="stable")
    rank = np.arange(len(rows)) - matrix.indptr[rows[order]]
    keep = order[rank < K]
    return sp.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )


def covisit_counts(
    last_seen: sp.csr_matrix, n_items: int, window: int, gap_weighting: bool = False
) -> sp.csr_matrix:
    """(n_items, n_items) float64 CSR: how often j came within ``window`` steps after i.

    A pair ``gap`` steps apart in a customer's time-ordered history counts 1 (``1 / gap`` with
    ``gap_weighting``). Each gap's pairs are summed into the matrix as they are made, so only
    one gap's pairs (not all ``window`` gaps' at once) are ever held in memory.
    """
    rows, cols, _ = time_ordered(last_seen)
    cols = cols.astype(np.int64)
    pairs = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    for gap in range(1, window + 1):
        same = rows[:-gap] == rows[gap:]
        if not same.any():
            break
        # Pair keys counted here (sorted, few distinct ones) instead of a COO of every pair.
        keys, counts = np.unique(cols[:-gap][same] * n_items + cols[gap:][same], return_counts=True)
        weight = counts * (1.0 / gap if gap_weighting else 1.0)
        source, target = np.divmod(keys, n_items)
        pairs = pairs + sp.csr_matrix((weight, (source, target)), shape=(n_items, n_items))
    return pairs


@dataclass(frozen=True)
class CoVisitParams:
    """Co-occurrence within ``window`` steps of each customer's time-ordered history."""

    window: int = 50  # pairs up to this many items apart count
    gap_weighting: bool = False  # count a pair 1/steps instead of 1
    both_directions: bool = False  # False: only "looked at j after i" counts for i -> j
    popularity_exponent: float = 0.25  # divide by (customers of j) ** exponent: damp bestsellers
    neighbours: int = 200  # kept per item
    recent: int = 10  # a customer is scored from their latest `recent` items ...
    recency_decay: float = 0.85  # ... the k-th latest weighing decay ** k


class CoVisitModel(Recommender):
    """Item-to-item "customers went on to look at" neighbours from time-ordered histories.

    Needs ``last_seen`` (each pair's latest event time, :attr:`Interactions.last_seen`) to fit;
    scoring uses the history's order from ``last_seen`` rows, or all history items at their
    strength when none are given.
    """

    kind = "covisit"
    scoring_params: ClassVar[tuple[str, ...]] = ("recent", "recency_decay")

    def __init__(self, params: CoVisitParams | None = None):
        self.params = params or CoVisitParams()
        self.neighbours = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None):
        """Count ordered pairs from (n_users, n_items) ``last_seen`` float64 times."""
        if last_seen is None:
            raise ValueError(
                "CoVisitModel needs the time order of histories: pass "
                "last_seen=interactions.last_seen to fit"
            )
        started = time.perf_counter()
        p = self.params
        n_items = user_items.shape[1]
        pairs = covisit_counts(last_seen, n_items, p.window, p.gap_weighting)
        if p.both_directions:
            pairs = (pairs + pairs.T).tocsr()
        customers = np.bincount(sp.csr_matrix(user_items).indices, minlength=n_items)
        damp = np.maximum(customers, 1).astype(np.float64) ** -p.popularity_exponent
        pairs = sp.csr_matrix(pairs @ sp.diags(damp))
        self.neighbours = keep_top_per_row(pairs, p.neighbours).astype(np.float32)
        self.n_items = n_items
        self.fitted_seconds = time.perf_counter() - started
        return self

    def recent_rows(self, user_items: sp.csr_matrix, last_seen=None) -> sp.csr_matrix:
        """(n, n_items) float32 rows weighting each customer's latest items decay ** k."""
        if last_seen is None:
            return sp.csr_matrix(user_items, dtype=np.float32)
        rows, cols, rank = time_ordered(last_seen)
        keep = rank < self.params.recent
        weight = self.params.recency_decay ** rank[keep].astype(np.float64)
        return sp.csr_matrix(
            (weight.astype(np.float32), (rows[keep], cols[keep])), shape=last_seen.shape
        )

    def score(self, userid, user_items, recalculate_user=False, last_seen=None) -> np.ndarray:
        """(n, n_items) float32: recency-weighted latest items times the neighbour matrix."""
        rows = _rows(user_items, user_items.shape[0], self.n_items)
        if last_seen is not None:
            last_seen = _rows(last_seen, rows.shape[0], self.n_items, dtype=np.float64)
        history = self.recent_rows(rows, last_seen)
        return np.asarray((history @ self.neighbours).toarray(), dtype=np.float32)

    def item_scores(self, itemid) -> np.ndarray:
        """(len(itemid), n_items) float32: what customers looked at after each item."""
        return self.neighbours[np.asarray(itemid)].toarray().astype(np.float32)

    def widen(self, columns: np.ndarray, n_items: int) -> CoVisitModel:
        """New items have no neighbours."""
        self.neighbours = widen_square(self.neighbours, columns, n_items)
        self.n_items = n_items
        return self

    def _arrays(self):
        return csr_arrays("neighbours", self.neighbours)

    @classmethod
    def _restore(cls, arrays, sidecar, path=None):
        model = cls(_params(CoVisitParams, sidecar.get("params")))
        model.neighbours = csr_from(arrays, "neighbours")
        model.n_items = int(sidecar["n_items"])
        return model
