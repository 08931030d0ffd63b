"""What latent-factor models share: user vectors, folding visitors in, customers like you."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.models.base import Recommender, _rows, top_n


@dataclass
class CustomersLikeYou:
    """Neighbours of a customer and what they chose that the customer has not."""

    customers: np.ndarray  # (k,) int64 rows of the nearest customers
    similarity: np.ndarray  # (k,) float32 cosine of their ALS factors
    items: np.ndarray  # (n,) int64 item columns, most chosen first
    counts: np.ndarray  # (n,) int64: how many of the k neighbours chose each item


class FactorModel(Recommender):
    """Shared scoring for models that keep user_factors and item_factors."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    def _fold(self, user_items: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def user_vectors(self, userid, user_items=None, recalculate_user=False) -> np.ndarray:
        """(n, factors) float32: stored factors, or folded in from ``user_items`` rows."""
        self._check_ready()
        users = np.atleast_1d(np.asarray(userid, dtype=np.int64))
        if recalculate_user:
            return self._fold(_rows(user_items, len(users), self.n_items))
        if users.size and (users.min() < 0 or users.max() >= len(self.user_factors)):
            raise IndexError(
                "userid outside the trained users; pass recalculate_user=True with their "
                "recent events to fold them in"
            )
        return self.user_factors[users]

    def score(self, userid, user_items, recalculate_user=False, last_seen=None) -> np.ndarray:
        """(len(userid), n_items) float32 dot products of user and item factors."""
        vectors = self.user_vectors(userid, user_items, recalculate_user)
        return (vectors @ self.item_factors.T).astype(np.float32, copy=False)

    def item_scores(self, itemid) -> np.ndarray:
        """(len(itemid), n_items) float32 cosine between item factors."""
        norms = np.linalg.norm(self.item_factors, axis=1)
        norms[norms == 0] = 1e-10
        unit = self.item_factors / norms[:, None]
        return (unit[np.asarray(itemid)] @ unit.T).astype(np.float32)

    def similar_customers(
        self,
        userid: int | None,
        user_items: sp.csr_matrix,
        k: int = 20,
        N: int = 10,
        history: sp.csr_matrix | None = None,
    ) -> CustomersLikeYou:
        """The ``k`` customers nearest by factor cosine and the items they chose, most first.

        ``user_items`` (n_users, n_items) says what "chose" means: pass a purchases-only matrix
        for "bought by 7 customers like you". A visitor without a row (``userid=None``) is folded
        in from ``history`` (1, n_items); items in ``history`` (default: the customer's own row
        of ``user_items``) are left out.
        """
        self._check_ready()
        if userid is None:
            if history is None:
                raise ValueError("a visitor without a userid needs a history row to fold in")
            query = self._fold(_rows(history, 1, self.n_items))[0]
        else:
            query = self.user_factors[int(userid)]
            if history is None:
                history = sp.csr_matrix(user_items)[int(userid)]
        norms = np.linalg.norm(self.user_factors, axis=1)
        blank = norms == 0  # erased customers' rows (recommender.forgotten): nobody's neighbours
        norms[blank] = 1e-10
        cosine = (self.user_factors @ query) / (norms * max(np.linalg.norm(query), 1e-10))
        cosine[blank] = -np.inf
        if userid is not None:
            cosine[int(userid)] = -np.inf
        k = min(k, max(len(cosine) - (userid is not None), 0))
        neighbours, similarity = top_n(cosine[None, :].astype(np.float32), k)
        neighbours, similarity = neighbours[0], similarity[0]
        neighbours, similarity = neighbours[neighbours >= 0], similarity[neighbours >= 0]
        chosen = sp.csr_matrix(user_items)[neighbours]
        counts = np.bincount(chosen.indices, minlength=self.n_items).astype(np.int64)
        if history is not None and history.nnz:
            counts[history.indices] = 0
        candidates = np.flatnonzero(counts)
        order = np.lexsort((candidates, -counts[candidates]))[:N]
        return CustomersLikeYou(
            neighbours, similarity, candidates[order], counts[candidates[order]]
        )
