"""BPR (implicit's BayesianPersonalizedRanking): a pairwise-ranking factor model, a baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from implicit.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from recommender.models.base import _params
from recommender.models.factors import FactorModel


@dataclass(frozen=True)
class BPRParams:
    """Hyper-parameters of implicit's BayesianPersonalizedRanking (a baseline)."""

    factors: int = 100
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 100
    random_state: int | None = 42


class BPRModel(FactorModel):
    """implicit's BPR, a baseline; a visitor folds in as the mean of their items' factors."""

    kind = "bpr"

    def __init__(self, params: BPRParams | None = None):
        self.params = params or BPRParams()
        self.user_factors = np.zeros((0, 0), np.float32)
        self.item_factors = np.zeros((0, 0), np.float32)

    def fit(self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None) -> BPRModel:
        """Learn pairwise-ranking factors from the non-zero pairs of (n_users, n_items) CSR."""
        started = time.perf_counter()
        p = self.params
        bpr = BayesianPersonalizedRanking(
            factors=p.factors,
            learning_rate=p.learning_rate,
            regularization=p.regularization,
            iterations=p.iterations,
            random_state=p.random_state,
        )
        with threadpool_limits(1, "blas"):
            bpr.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=False)
        bpr = bpr.to_cpu() if hasattr(bpr, "to_cpu") else bpr
        self.user_factors = np.asarray(bpr.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(bpr.item_factors, dtype=np.float32)
        self.n_items = user_items.shape[1]
        self.fitted_seconds = time.perf_counter() - started
        return self

    def widen(self, columns: np.ndarray, n_items: int) -> BPRModel:
        """New items get zero factors (BPR has no cheap update for them: refit to learn them)."""
        item_factors = np.zeros((n_items, self.item_factors.shape[1]), dtype=np.float32)
        item_factors[np.asarray(columns, dtype=np.int64)] = self.item_factors
        self.item_factors, self.n_items = item_factors, n_items
        return self

    def _fold(self, user_items: sp.csr_matrix) -> np.ndarray:
        # BPR has no closed-form user update: a visitor is the strength-weighted mean of their
        # items' factors, with implicit's constant 1 in the last (item bias) column.
        totals = np.asarray(user_items.sum(axis=1)).ravel()
        vectors = (user_items @ self.item_factors) / np.maximum(totals, 1e-12)[:, None]
        vectors[:, -1] = 1.0
        return np.asarray(vectors, dtype=np.float32)

    def _arrays(self):
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def _restore(cls, arrays, sidecar, path=None):
        model = cls(_params(BPRParams, sidecar.get("params")))
        model.user_factors = arrays["user_factors"]
        model.item_factors = arrays["item_factors"]
        model.n_items = int(sidecar["n_items"])
        return model
