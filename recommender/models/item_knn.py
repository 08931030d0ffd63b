"""Item-item nearest neighbours (cosine or BM25, through implicit), scored from a history row."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize

from recommender.artifacts import csr_arrays, csr_from
from recommender.models.base import Recommender, _binary, _params, _rows, widen_square


@dataclass(frozen=True)
class ItemKNNParams:
    """Item-item neighbours through implicit: K neighbours per item, cosine or BM25 weighting."""

    K: int = 20
    similarity: str = "cosine"  # or "bm25"
    binarize: bool = False  # fit on 0/1 instead of strength
    bm25_k1: float = 1.2
    bm25_b: float = 0.75


class ItemKNNModel(Recommender):
    """Item-item nearest neighbours (implicit's CosineRecommender / BM25Recommender)."""

    kind = "item_knn"

    def __init__(self, params: ItemKNNParams | None = None):
        self.params = params or ItemKNNParams()
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(
        self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None
    ) -> ItemKNNModel:
        """Keep the K most similar items of each item, from (n_users, n_items) CSR."""
        started = time.perf_counter()
        # float64: squares of tiny decayed strengths would underflow to 0 in float32.
        matrix = sp.csr_matrix(user_items, dtype=np.float64)
        if self.params.binarize:
            matrix = _binary(matrix)
        # What implicit's CosineRecommender / BM25Recommender do, handing CSR (not COO) on.
        if self.params.similarity == "bm25":
            weighted = bm25_weight(matrix.T, self.params.bm25_k1, self.params.bm25_b).T
        elif self.params.similarity == "cosine":
            weighted = normalize(matrix.T).T
        else:
            raise ValueError(f"similarity must be 'cosine' or 'bm25', not {self.params.similarity}")
        knn = ItemItemRecommender(K=self.params.K)
        knn.fit(sp.csr_matrix(weighted, dtype=np.float64), show_progress=False)
        self.similarity = sp.csr_matrix(knn.similarity, dtype=np.float32)
        self.n_items = matrix.shape[1]
        self.fitted_seconds = time.perf_counter() - started
        return self

    def score(self, userid, user_items, recalculate_user=False, last_seen=None) -> np.ndarray:
        """(n, n_items) float32: history rows times the item-item similarity."""
        rows = _rows(user_items, user_items.shape[0], self.n_items)
        return np.asarray((rows @ self.similarity).toarray(), dtype=np.float32)

    def item_scores(self, itemid) -> np.ndarray:
        """(len(itemid), n_items) float32 rows of the similarity matrix."""
        return self.similarity[np.asarray(itemid)].toarray().astype(np.float32)

    def widen(self, columns: np.ndarray, n_items: int) -> ItemKNNModel:
        """New items have no neighbours."""
        self.similarity = widen_square(self.similarity, columns, n_items)
        self.n_items = n_items
        return self

    def _arrays(self):
        return csr_arrays("similarity", self.similarity)

    @classmethod
    def _restore(cls, arrays, sidecar, path=None):
        model = cls(_params(ItemKNNParams, sidecar.get("params")))
        model.similarity = csr_from(arrays, "similarity")
        model.n_items = int(sidecar["n_items"])
        return model
