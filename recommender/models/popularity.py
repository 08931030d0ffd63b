"""Popularity and trending: the same ranking for every customer, the fallback under every list."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.models.base import Recommender, _params, _rows


@dataclass(frozen=True)
class PopularityParams:
    """Popularity counts distinct customers ("users") or sums strength ("strength")."""

    count: str = "users"


class PopularityModel(Recommender):
    """The same ranking for everyone: most customers first (trending: fit on a recent window)."""

    kind = "popularity"

    def __init__(self, params: PopularityParams | None = None):
        self.params = params or PopularityParams()
        self.popularity = np.zeros(0, dtype=np.float32)

    def fit(
        self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None
    ) -> PopularityModel:
        """Count each item's customers (or strength) in (n_users, n_items) CSR."""
        started = time.perf_counter()
        user_items = sp.csr_matrix(user_items)
        if self.params.count == "strength":
            counts = np.asarray(user_items.sum(axis=0)).ravel()
        else:
            counts = np.bincount(user_items.indices, minlength=user_items.shape[1])
        top = counts.max() if counts.size else 0
        self.popularity = (counts / top if top > 0 else counts).astype(np.float32)
        self.n_items = user_items.shape[1]
        self.fitted_seconds = time.perf_counter() - started
        return self

    @classmethod
    def trending(cls, interactions, window_days: float = 7.0) -> PopularityModel:
        """Popularity among pairs seen in the last ``window_days`` before ``interactions.now``."""
        cutoff = interactions.now - window_days * 86_400.0
        return cls().fit(interactions.since(cutoff).user_items)

    def widen(self, columns: np.ndarray, n_items: int) -> PopularityModel:
        """New columns score 0 (refit on the wider matrix to count them)."""
        popularity = np.zeros(n_items, dtype=np.float32)
        popularity[np.asarray(columns, dtype=np.int64)] = self.popularity
        self.popularity, self.n_items = popularity, n_items
        return self

    def recommend(
        self,
        userid,
        user_items: sp.csr_matrix,
        N: int = 10,
        filter_already_liked_items: bool = True,
        filter_items=None,
        items=None,
        recalculate_user: bool = False,
        last_seen: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`Recommender.recommend` gives, without a dense (users x items) block.

        Everyone shares one ranking (score descending, ties by column), so each row's list is
        the first ``N`` ranked items outside its history: only the first ``N`` + (longest
        history) ranked items are looked at.
        """
        self._check_ready()
        scalar = np.isscalar(userid)
        users = np.atleast_1d(np.asarray(userid, dtype=np.int64))
        user_items = _rows(user_items, len(users), self.n_items)
        ranking = np.lexsort((np.arange(self.n_items), -self.popularity))
        if filter_items is not None and len(filter_items):
            ranking = ranking[~np.isin(ranking, np.asarray(filter_items, dtype=np.int64))]
        if items is not None:
            ranking = ranking[np.isin(ranking, np.asarray(items, dtype=np.int64))]
        N = min(N, self.n_items if items is None else len(items))
        longest = int(np.diff(user_items.indptr).max()) if len(users) else 0
        head = ranking[: N + longest] if filter_already_liked_items else ranking[:N]
        place = np.full(self.n_items, -1, dtype=np.int64)
        place[head] = np.arange(len(head))
        free = np.ones((len(users), len(head)), dtype=bool)
        if filter_already_liked_items and user_items.nnz:
            rows = np.repeat(np.arange(len(users)), np.diff(user_items.indptr))
            ranked = place[user_items.indices]
            free[rows[ranked >= 0], ranked[ranked >= 0]] = False
        # Per row, the first N free places in ranking order; rows with fewer get -1 pads.
        taken = free & (np.cumsum(free, axis=1) <= N)
        ids = np.full((len(users), N), -1, dtype=np.int64)
        row_of, place_of = np.nonzero(taken)
        slot = np.cumsum(taken, axis=1)[row_of, place_of] - 1
        ids[row_of, slot] = head[place_of]
        scores = np.where(ids >= 0, self.popularity[np.maximum(ids, 0)], -np.inf)
        scores = scores.astype(np.float32)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def score(self, userid, user_items, recalculate_user=False, last_seen=None) -> np.ndarray:
        """(len(userid), n_items) float32: popularity in [0, 1], the same for every row."""
        count = len(np.atleast_1d(userid))
        return np.broadcast_to(self.popularity, (count, self.n_items)).copy()

    def item_scores(self, itemid) -> np.ndarray:
        """Popularity again: without co-occurrence, popular items are the best guess."""
        return self.score(itemid, None)

    def _arrays(self):
        return {"popularity": self.popularity}

    @classmethod
    def _restore(cls, arrays, sidecar, path=None):
        model = cls(_params(PopularityParams, sidecar.get("params")))
        model.popularity = arrays["popularity"]
        model.n_items = int(sidecar["n_items"])
        return model
