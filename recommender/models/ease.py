"""EASE (Steck 2019): closed-form item-item weights, scored from a history row."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recommender.models.base import Recommender, _binary, _params, _rows


@dataclass(frozen=True)
class EASEParams:
    """EASE (Steck 2019): L2 weight ``regularization``; items with few customers are left out."""

    regularization: float = 500.0
    min_item_users: int = 1  # items with fewer customers get no weights (score 0)
    max_items: int = 20_000  # a dense (items x items) float32 beyond this does not fit RAM well
    binarize: bool = True  # fit on 0/1 (the paper); scoring still uses the given strengths


class EASEModel(Recommender):
    """EASE: closed-form item-item weights B = I - P diag(1/diag(P)), P = (XᵀX + λI)⁻¹."""

    kind = "ease"

    def __init__(self, params: EASEParams | None = None):
        self.params = params or EASEParams()
        self.kept = np.zeros(0, dtype=np.int64)  # item columns that have weights
        self.weights = np.zeros((0, 0), dtype=np.float32)  # (n_kept, n_kept) B

    def fit(self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None) -> EASEModel:
        """Solve for B from (n_users, n_items) CSR; dense (n_kept, n_kept) float32."""
        started = time.perf_counter()
        matrix = sp.csr_matrix(user_items, dtype=np.float32)
        if self.params.binarize:
            matrix = _binary(matrix)
        users_per_item = np.bincount(matrix.indices, minlength=matrix.shape[1])
        self.kept = np.flatnonzero(users_per_item >= max(self.params.min_item_users, 1))
        if len(self.kept) > self.params.max_items:
            raise ValueError(
                f"EASE would need a dense {len(self.kept)} x {len(self.kept)} matrix; raise "
                "min_item_users or max_items, or use ItemKNNModel for catalogues this large"
            )
        X = matrix[:, self.kept]
        gram = np.asarray((X.T @ X).toarray(), dtype=np.float32)
        gram[np.diag_indices_from(gram)] += self.params.regularization
        # Cholesky inverse: about half the work of a general inverse, and gram is SPD.
        with threadpool_limits(limits=None):
            factor, info = lapack.spotrf(gram, lower=0, overwrite_a=1)
            if info != 0:
                raise ValueError(f"EASE gram matrix is not positive definite (info={info})")
            inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
        del gram, factor
        upper = np.triu(inverse)
        inverse = upper + np.triu(upper, 1).T
        del upper
        inverse /= -np.diag(inverse)[None, :]
        np.fill_diagonal(inverse, 0.0)
        self.weights = inverse.astype(np.float32, copy=False)
        self.n_items = matrix.shape[1]
        self.fitted_seconds = time.perf_counter() - started
        return self

    def score(self, userid, user_items, recalculate_user=False, last_seen=None) -> np.ndarray:
        """(n, n_items) float32: history rows times B."""
        rows = _rows(user_items, user_items.shape[0], self.n_items)[:, self.kept]
        out = np.zeros((rows.shape[0], self.n_items), dtype=np.float32)
        out[:, self.kept] = rows @ self.weights
        return out

    def item_scores(self, itemid) -> np.ndarray:
        """(len(itemid), n_items) float32 rows of B (how much each item predicts the others)."""
        itemid = np.asarray(itemid, dtype=np.int64)
        position = np.full(self.n_items, -1, dtype=np.int64)
        position[self.kept] = np.arange(len(self.kept))
        out = np.zeros((len(itemid), self.n_items), dtype=np.float32)
        known = position[itemid] >= 0
        out[np.ix_(np.flatnonzero(known), self.kept)] = self.weights[position[itemid[known]]]
        return out

    def widen(self, columns: np.ndarray, n_items: int) -> EASEModel:
        """New items have no weights (like items below ``min_item_users``)."""
        self.kept = np.asarray(columns, dtype=np.int64)[self.kept]
        self.n_items = n_items
        return self

    def _arrays(self):
        return {"kept": self.kept, "weights": self.weights}

    @classmethod
    def _restore(cls, arrays, sidecar, path=None):
        model = cls(_params(EASEParams, sidecar.get("params")))
        model.kept, model.weights = arrays["kept"], arrays["weights"]
        model.n_items = int(sidecar["n_items"])
        return model
