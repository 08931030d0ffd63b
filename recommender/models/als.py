"""ALS (implicit's AlternatingLeastSquares): factors from implicit feedback, cheap user updates."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from recommender.models.base import _params, _rows
from recommender.models.factors import FactorModel


@dataclass(frozen=True)
class ALSParams:
    """Hyper-parameters of implicit's AlternatingLeastSquares (confidence = alpha * strength)."""

    factors: int = 100
    regularization: float = 0.01
    alpha: float = 1.0
    iterations: int = 15
    random_state: int | None = 42
    use_cg: bool = True


class ALSModel(FactorModel):
    """implicit's AlternatingLeastSquares; new visitors are folded in from their recent rows."""

    kind = "als"

    def __init__(self, params: ALSParams | None = None):
        self.params = params or ALSParams()
        self._als: AlternatingLeastSquares | None = None

    def _implicit(self) -> AlternatingLeastSquares:
        p = self.params
        return AlternatingLeastSquares(
            factors=p.factors,
            regularization=p.regularization,
            alpha=p.alpha,
            iterations=p.iterations,
            random_state=p.random_state,
            use_cg=p.use_cg,
        )

    def fit(self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None) -> ALSModel:
        """Factorise (n_users, n_items) float32 CSR strength."""
        started = time.perf_counter()
        self._als = self._implicit()
        # implicit runs its own threads; a threaded BLAS underneath only slows it down.
        with threadpool_limits(1, "blas"):
            self._als.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=False)
        self.n_items = user_items.shape[1]
        self.fitted_seconds = time.perf_counter() - started
        return self

    @property
    def user_factors(self) -> np.ndarray:
        """(n_users, factors) float32, implicit's own array."""
        return self._als.user_factors

    @property
    def item_factors(self) -> np.ndarray:
        """(n_items, factors) float32, implicit's own array."""
        return self._als.item_factors

    def widen(self, columns: np.ndarray, n_items: int) -> ALSModel:
        """New items get zero factors until :meth:`update_users` gives them some."""
        self._check_ready()
        item_factors = np.zeros((n_items, self.item_factors.shape[1]), dtype=np.float32)
        item_factors[np.asarray(columns, dtype=np.int64)] = self.item_factors
        als = self._implicit()
        als.user_factors, als.item_factors = self.user_factors, item_factors
        self._als, self.n_items = als, n_items
        return self

    def update_users(
        self, user_items: sp.csr_matrix, previous: np.ndarray | None = None
    ) -> ALSModel:
        """Refit only the user side on (n_users, n_items) float32 CSR, the items kept fixed.

        One user half-step of ALS (implicit's own solver, conjugate gradient when ``use_cg``)
        started from each customer's current factors: ``previous`` (n_users,) int64 gives each
        row's row in ``user_factors`` (-1: none yet, solved exactly from zero; default: the same
        rows). Items whose factors are all zero (new to the model, see :meth:`widen`) and have
        customers then get one exact item half-step from the updated customers.
        """
        self._check_ready()
        started = time.perf_counter()
        user_items = _rows(user_items, user_items.shape[0], self.n_items)
        n_users = user_items.shape[0]
        if previous is None:
            previous = np.arange(n_users)
        previous = np.asarray(previous, dtype=np.int64)
        old = self._als
        als = self._implicit()  # a fresh object: none of implicit's cached norms and grams
        als.item_factors = np.ascontiguousarray(old.item_factors, dtype=np.float32)
        known = previous >= 0
        user_factors = np.zeros((n_users, als.item_factors.shape[1]), dtype=np.float32)
        user_factors[known] = old.user_factors[previous[known]]
        als.user_factors = user_factors
        confidence = user_items * np.float32(als.alpha) if als.alpha != 1.0 else user_items
        with threadpool_limits(1, "blas"):
            als.solver(
                confidence,
                als.user_factors,
                als.item_factors,
                als.regularization,
                num_threads=als.num_threads,
            )
            fresh = np.flatnonzero(~known)
            if len(fresh):
                als.user_factors[fresh] = als.recalculate_user(fresh, user_items[fresh])
            customers = np.bincount(user_items.indices, minlength=self.n_items)
            new_items = np.flatnonzero(~als.item_factors.any(axis=1) & (customers > 0))
            if len(new_items):
                item_users = user_items.T.tocsr()[new_items]
                als.item_factors[new_items] = als.recalculate_item(new_items, item_users)
        self._als = als
        self.fitted_seconds += time.perf_counter() - started
        return self

    def _fold(self, user_items: sp.csr_matrix) -> np.ndarray:
        with threadpool_limits(1, "blas"):
            factors = self._als.recalculate_user(np.arange(user_items.shape[0]), user_items)
        return np.asarray(factors, dtype=np.float32)

    def partial_fit_users(self, userid: np.ndarray, user_items: sp.csr_matrix) -> None:
        """Store folded-in factors for rows ``userid`` (new rows are appended), as implicit does."""
        with threadpool_limits(1, "blas"):
            self._als.partial_fit_users(
                np.asarray(userid), _rows(user_items, len(userid), self.n_items)
            )

    def _arrays(self):
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def _restore(cls, arrays, sidecar, path=None):
        model = cls(_params(ALSParams, sidecar.get("params")))
        model._als = model._implicit()
        model._als.user_factors = arrays["user_factors"]
        model._als.item_factors = arrays["item_factors"]
        model.n_items = int(sidecar["n_items"])
        return model
