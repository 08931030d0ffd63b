"""Recommendation models with one interface, in implicit's vocabulary.

Every model is fitted on ``user_items`` (users x items CSR, float32 strength from
:mod:`recommender.interactions`) and answers, in batches:

- ``score(userid, user_items)`` -> (n_users, n_items) float32, higher is better;
- ``recommend(userid, user_items, N, filter_already_liked_items=True)`` -> ``(ids, scores)``,
  (n_users, N) int64 item columns (-1 pads when fewer items qualify) and float32 scores;
  a scalar ``userid`` gives 1-D arrays, as in implicit;
- ``similar_items(itemid, N)`` -> ``(ids, scores)``, the item itself left out;
- ``save(path)`` / :func:`load_model` -> ``<path>.npz`` arrays and a ``<path>.json`` sidecar.

``user_items`` rows are the customers' histories: item-based models (EASE, item-kNN, co-visit)
score from them alone, so a new or anonymous visitor needs only a row of recent events (build it
with :func:`recommender.interactions.build_interactions` and the model's item ids); factor models
(ALS, BPR) fold such a row in with ``recalculate_user=True``. Calls also take ``last_seen`` (same
shape, float64 epoch seconds of each pair's latest event, :attr:`Interactions.last_seen`), which
only the sequence-aware :class:`CoVisitModel` needs.

Models: :class:`PopularityModel` (and trending), :class:`ALSModel`, :class:`BPRModel`,
:class:`ItemKNNModel`, :class:`EASEModel`, :class:`CoVisitModel` and :class:`BlendModel`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from implicit.bpr import BayesianPersonalizedRanking
from implicit.cpu.als import AlternatingLeastSquares
from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recommender.artifacts import (
    artifact_paths,
    csr_arrays,
    csr_from,
    read_artifact,
    write_artifact,
)

FORMAT_VERSION = 1
SCORE_BATCH = 512  # users scored at once: bounds the dense (batch, n_items) block
SCORE_THREADS = min(2, os.cpu_count() or 1)  # batches scored at once by recommend()


class ModelNotReady(RuntimeError):
    """The model was used before ``fit`` (or ``load``)."""


def _rows(user_items, count: int, n_items: int, dtype=np.float32) -> sp.csr_matrix:
    if not sp.issparse(user_items):
        raise ValueError("user_items must be a scipy.sparse CSR matrix (users x items)")
    user_items = sp.csr_matrix(user_items, dtype=dtype)
    if user_items.shape[0] != count:
        raise ValueError(
            f"user_items has {user_items.shape[0]} rows for {count} users: pass one row per user"
        )
    if user_items.shape[1] != n_items:
        raise ValueError(
            f"user_items has {user_items.shape[1]} columns but the model knows {n_items} items; "
            "build the rows with the item ids the model was trained on"
        )
    return user_items


def top_n(scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``N`` columns per row of a (n, n_items) float32 block, -inf entries padded as -1."""
    n_rows, n_cols = scores.shape
    N = min(N, n_cols)
    if N <= 0:
        return np.empty((n_rows, 0), np.int64), np.empty((n_rows, 0), np.float32)
    if N < n_cols:
        part = np.argpartition(-scores, N - 1, axis=1)[:, :N]
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    picked = np.take_along_axis(scores, part, axis=1)
    # Ties broken by column, so results are stable across runs and platforms.
    order = np.lexsort((part, -picked), axis=1)
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    values = np.take_along_axis(picked, order, axis=1).astype(np.float32)
    ids[~np.isfinite(values)] = -1
    return ids, values


def _mask_rows(
    scores: np.ndarray,
    user_items: sp.csr_matrix | None,
    filter_items: np.ndarray | None,
    items: np.ndarray | None,
) -> None:
    """Set excluded (already liked, filtered, outside ``items``) entries to -inf, in place."""
    scores[~np.isfinite(scores)] = -np.inf
    if user_items is not None and user_items.nnz:
        rows = np.repeat(np.arange(user_items.shape[0]), np.diff(user_items.indptr))
        scores[rows, user_items.indices] = -np.inf
    if filter_items is not None and len(filter_items):
        scores[:, np.asarray(filter_items, dtype=np.int64)] = -np.inf
    if items is not None:
        allowed = np.zeros(scores.shape[1], dtype=bool)
        allowed[np.asarray(items, dtype=np.int64)] = True
        scores[:, ~allowed] = -np.inf


class Recommender:
    """The common interface; subclasses implement ``fit``, ``score`` and ``item_scores``."""

    kind: ClassVar[str] = ""
    scoring_params: ClassVar[tuple[str, ...]] = ()  # parameters that do not change the fit
    n_items: int = 0
    fitted_seconds: float = 0.0

    def fit(self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None) -> Recommender:
        """Learn from (n_users, n_items) float32 CSR (``last_seen``: float64 times); return self."""
        raise NotImplementedError

    def score(
        self,
        userid,
        user_items: sp.csr_matrix,
        recalculate_user: bool = False,
        last_seen: sp.csr_matrix | None = None,
    ) -> np.ndarray:
        """(len(userid), n_items) float32 scores for users with histories ``user_items``.

        ``last_seen`` (same shape, float64 epoch seconds) orders a history in time; only
        sequence-aware models use it.
        """
        raise NotImplementedError

    def item_scores(self, itemid: np.ndarray) -> np.ndarray:
        """(len(itemid), n_items) float32 similarity of each query item to every item."""
        raise NotImplementedError

    def widen(self, columns: np.ndarray, n_items: int) -> Recommender:
        """This model over a catalogue of ``n_items``, its item ``c`` now column ``columns[c]``.

        ``columns`` is (self.n_items,) int64, distinct. Items the model never saw get nothing to
        go on: no neighbours in item models, zero factors in factor models (see
        :meth:`ALSModel.update_users`). Returns self, changed in place.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot widen its catalogue; refit it")

    def _check_ready(self) -> None:
        if not self.n_items:
            raise ModelNotReady(f"{type(self).__name__} is not fitted: call fit() or load_model()")

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
        """Top-N item columns (int64, -1 pads) and scores (float32) per user; 1-D for a scalar."""
        self._check_ready()
        scalar = np.isscalar(userid)
        users = np.atleast_1d(np.asarray(userid, dtype=np.int64))
        user_items = _rows(user_items, len(users), self.n_items)
        if last_seen is not None:
            last_seen = _rows(last_seen, len(users), self.n_items, dtype=np.float64)
        N = min(N, self.n_items if items is None else len(items))
        all_ids = np.full((len(users), N), -1, dtype=np.int64)
        all_scores = np.full((len(users), N), -np.inf, dtype=np.float32)

        def batch(part: slice) -> None:
            rows = user_items[part]
            times = None if last_seen is None else last_seen[part]
            scores = self.score(users[part], rows, recalculate_user, last_seen=times)
            _mask_rows(scores, rows if filter_already_liked_items else None, filter_items, items)
            all_ids[part], all_scores[part] = top_n(scores, N)

        parts = [slice(s, s + SCORE_BATCH) for s in range(0, len(users), SCORE_BATCH)]
        # Scoring and top-N are numpy and BLAS work that releases the GIL: batches run on two
        # threads (evaluation at training time, cache warming). Folding users in goes through
        # threadpoolctl's process-wide limits, so it stays on one thread.
        if len(parts) > 1 and SCORE_THREADS > 1 and not recalculate_user:
            with ThreadPoolExecutor(min(SCORE_THREADS, len(parts))) as pool:
                list(pool.map(batch, parts))
        else:
            for part in parts:
                batch(part)
        if scalar:
            return all_ids[0], all_scores[0]
        return all_ids, all_scores

    def similar_items(self, itemid, N: int = 10, filter_items=None, items=None):
        """Items most like each query item (int64 ids, float32 scores), the item itself left out."""
        self._check_ready()
        scalar = np.isscalar(itemid)
        queries = np.atleast_1d(np.asarray(itemid, dtype=np.int64))
        scores = self.item_scores(queries).astype(np.float32, copy=True)
        scores[np.arange(len(queries)), queries] = -np.inf
        _mask_rows(scores, None, filter_items, items)
        ids, values = top_n(scores, N)
        return (ids[0], values[0]) if scalar else (ids, values)

    # Artifacts

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _sidecar(self) -> dict[str, Any]:
        return {"params": asdict(self.params)} if hasattr(self, "params") else {}

    @classmethod
    def _restore(cls, arrays: dict[str, np.ndarray], sidecar: dict[str, Any]) -> Recommender:
        raise NotImplementedError

    def save(self, path: str | Path, metadata: Mapping[str, Any] | None = None) -> None:
        """Write ``<path>.npz`` and ``<path>.json`` (kind, parameters, ``metadata``, digest)."""
        self._check_ready()
        sidecar = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "n_items": self.n_items,
            "fitted_seconds": self.fitted_seconds,
            **self._sidecar(),
            "metadata": dict(metadata or {}),
        }
        write_artifact(path, self._arrays(), sidecar)


def _params(cls, data: Mapping[str, Any] | None):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (data or {}).items() if k in names})


# Popularity


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
    def _restore(cls, arrays, sidecar):
        model = cls(_params(PopularityParams, sidecar.get("params")))
        model.popularity = arrays["popularity"]
        model.n_items = int(sidecar["n_items"])
        return model


# Matrix factorisation (implicit's ALS and BPR)


@dataclass(frozen=True)
class ALSParams:
    """Hyper-parameters of implicit's AlternatingLeastSquares (confidence = alpha * strength)."""

    factors: int = 100
    regularization: float = 0.01
    alpha: float = 1.0
    iterations: int = 15
    random_state: int | None = 42
    use_cg: bool = True


@dataclass
class CustomersLikeYou:
    """Neighbours of a customer and what they chose that the customer has not."""

    customers: np.ndarray  # (k,) int64 rows of the nearest customers
    similarity: np.ndarray  # (k,) float32 cosine of their ALS factors
    items: np.ndarray  # (n,) int64 item columns, most chosen first
    counts: np.ndarray  # (n,) int64: how many of the k neighbours chose each item


class _FactorModel(Recommender):
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
        norms[norms == 0] = 1e-10
        cosine = (self.user_factors @ query) / (norms * max(np.linalg.norm(query), 1e-10))
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


class ALSModel(_FactorModel):
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
    def _restore(cls, arrays, sidecar):
        model = cls(_params(ALSParams, sidecar.get("params")))
        model._als = model._implicit()
        model._als.user_factors = arrays["user_factors"]
        model._als.item_factors = arrays["item_factors"]
        model.n_items = int(sidecar["n_items"])
        return model


@dataclass(frozen=True)
class BPRParams:
    """Hyper-parameters of implicit's BayesianPersonalizedRanking (a baseline)."""

    factors: int = 100
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 100
    random_state: int | None = 42


class BPRModel(_FactorModel):
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
    def _restore(cls, arrays, sidecar):
        model = cls(_params(BPRParams, sidecar.get("params")))
        model.user_factors = arrays["user_factors"]
        model.item_factors = arrays["item_factors"]
        model.n_items = int(sidecar["n_items"])
        return model


# Item-based models: they score from a history row alone.


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
    def _restore(cls, arrays, sidecar):
        model = cls(_params(ItemKNNParams, sidecar.get("params")))
        model.similarity = csr_from(arrays, "similarity")
        model.n_items = int(sidecar["n_items"])
        return model


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = matrix.copy()
    matrix.data = np.ones_like(matrix.data)
    return matrix


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
    def _restore(cls, arrays, sidecar):
        model = cls(_params(EASEParams, sidecar.get("params")))
        model.kept, model.weights = arrays["kept"], arrays["weights"]
        model.n_items = int(sidecar["n_items"])
        return model


# Sequence-aware co-occurrence: what customers went on to look at next.


def widen_square(matrix: sp.csr_matrix, columns: np.ndarray, n_items: int) -> sp.csr_matrix:
    """An items x items CSR matrix moved to ``n_items``: row and column ``c`` -> ``columns[c]``."""
    matrix = sp.csr_matrix(matrix)
    columns = np.asarray(columns, dtype=np.int64)
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return sp.csr_matrix(
        (matrix.data, (columns[rows], columns[matrix.indices])),
        shape=(n_items, n_items),
        dtype=matrix.dtype,
    )


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
    def _restore(cls, arrays, sidecar):
        model = cls(_params(CoVisitParams, sidecar.get("params")))
        model.neighbours = csr_from(arrays, "neighbours")
        model.n_items = int(sidecar["n_items"])
        return model


# Blends


def normalise_scores(scores: np.ndarray, exclude: sp.csr_matrix | None, how: str) -> np.ndarray:
    """Per-row normalised (n, n_items) float32; statistics skip ``exclude`` and non-finite entries.

    "zscore": (s - mean) / std; "minmax": (s - min) / (max - min); "none": unchanged.
    """
    if how == "none":
        return scores
    if how not in ("zscore", "minmax"):
        raise ValueError(f"normalise must be 'zscore', 'minmax' or 'none', not {how!r}")
    if how == "zscore" and np.isfinite(scores).all():
        return _zscore_finite(scores, exclude)
    valid = np.isfinite(scores)
    if exclude is not None and exclude.nnz:
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        valid[rows, exclude.indices] = False
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    if how == "zscore":
        values = np.where(valid, scores, np.float32(0))
        centre = values.sum(axis=1, keepdims=True, dtype=np.float64) / count
        squares = np.einsum("ij,ij->i", values, values, dtype=np.float64)[:, None] / count
        spread = np.sqrt(np.maximum(squares - centre * centre, 0.0))
    else:
        centre = np.where(valid, scores, np.inf).min(axis=1, keepdims=True).astype(np.float64)
        top = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True).astype(np.float64)
        spread = top - centre
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    out = ((scores - centre) / spread).astype(np.float32)
    out[~np.isfinite(scores)] = -np.inf
    return out


def _zscore_finite(scores: np.ndarray, exclude: sp.csr_matrix | None) -> np.ndarray:
    """normalise_scores' z-score when every score is finite: sums over the whole row minus the
    few excluded entries, in fewer passes over the (n, n_items) block (the common case)."""
    n_rows, n_cols = scores.shape
    total = scores.sum(axis=1, dtype=np.float64)
    squares = np.einsum("ij,ij->i", scores, scores, dtype=np.float64)
    count = np.full(n_rows, float(n_cols))
    if exclude is not None and exclude.nnz:
        exclude = sp.csr_matrix(exclude)
        if not exclude.has_canonical_format:  # a duplicated entry must be left out only once
            exclude = exclude.copy()
            exclude.sum_duplicates()
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        left_out = scores[rows, exclude.indices].astype(np.float64)
        total -= np.bincount(rows, weights=left_out, minlength=n_rows)
        squares -= np.bincount(rows, weights=left_out * left_out, minlength=n_rows)
        count -= np.diff(exclude.indptr)
    count = np.maximum(count, 1.0)
    centre = total / count
    spread = np.sqrt(np.maximum(squares / count - centre * centre, 0.0))
    spread = np.where(spread > 0, spread, 1.0)
    out = scores - centre.astype(np.float32)[:, None]
    out *= (1.0 / spread).astype(np.float32)[:, None]
    return out


@dataclass(frozen=True)
class BlendParams:
    """Member weights (by member name) and how each member's scores are normalised per user."""

    weights: Mapping[str, float] = field(default_factory=dict)
    normalise: str = "zscore"  # "zscore", "minmax" or "none"


class BlendModel(Recommender):
    """A weighted sum of members' per-user normalised scores (e.g. ALS + EASE + item-kNN)."""

    kind = "blend"

    def __init__(self, members: Mapping[str, Recommender], params: BlendParams | None = None):
        self.members = dict(members)
        weights = dict(params.weights) if params and params.weights else {}
        self.params = replace(
            params or BlendParams(), weights={n: float(weights.get(n, 1.0)) for n in self.members}
        )
        unknown = set(weights) - set(self.members)
        if unknown:
            raise ValueError(f"blend weights name unknown members: {sorted(unknown)}")
        self.n_items = self._members_items()

    def _members_items(self) -> int:
        sizes = {m.n_items for m in self.members.values()}
        if len(sizes) > 1:
            raise ValueError(f"blend members know different numbers of items: {sorted(sizes)}")
        return sizes.pop() if sizes else 0

    def fit(self, user_items: sp.csr_matrix, last_seen: sp.csr_matrix | None = None) -> BlendModel:
        """Fit every member on the same (n_users, n_items) CSR."""
        started = time.perf_counter()
        for member in self.members.values():
            member.fit(user_items, last_seen=last_seen)
        self.n_items = self._members_items()
        self.fitted_seconds = time.perf_counter() - started
        return self

    def _active(self):
        return [
            (n, m, self.params.weights[n])
            for n, m in self.members.items()
            if self.params.weights[n] != 0
        ]

    def score(self, userid, user_items, recalculate_user=False, last_seen=None) -> np.ndarray:
        """(n, n_items) float32 weighted sum of normalised member scores."""
        rows = _rows(user_items, len(np.atleast_1d(userid)), self.n_items)
        total = np.zeros(rows.shape, dtype=np.float32)
        for _, member, weight in self._active():
            scores = member.score(userid, rows, recalculate_user, last_seen=last_seen)
            total += weight * normalise_scores(scores, rows, self.params.normalise)
        return total

    def item_scores(self, itemid) -> np.ndarray:
        """(len(itemid), n_items) float32 weighted sum of normalised member similarities."""
        itemid = np.asarray(itemid, dtype=np.int64)
        own = sp.csr_matrix(
            (np.ones(len(itemid), np.float32), (np.arange(len(itemid)), itemid)),
            shape=(len(itemid), self.n_items),
        )
        total = np.zeros((len(itemid), self.n_items), dtype=np.float32)
        for _, member, weight in self._active():
            scores = member.item_scores(itemid)
            total += weight * normalise_scores(scores, own, self.params.normalise)
        return total

    def widen(self, columns: np.ndarray, n_items: int) -> BlendModel:
        """Widens every member."""
        for member in self.members.values():
            member.widen(columns, n_items)
        self.n_items = self._members_items()
        return self

    def similar_customers(self, *args, **kwargs) -> CustomersLikeYou:
        """Delegates to the first ALS (or other factor) member."""
        for member in self.members.values():
            if isinstance(member, _FactorModel):
                return member.similar_customers(*args, **kwargs)
        raise ModelNotReady("this blend has no factor model to find similar customers with")

    def save(self, path: str | Path, metadata: Mapping[str, Any] | None = None) -> None:
        """Write each member as ``<path>.<name>.npz/json`` and the blend's own sidecar."""
        npz_path, _ = artifact_paths(path)
        stem = npz_path.with_suffix("")
        for name, member in self.members.items():
            member.save(stem.with_name(f"{stem.name}.{name}"))
        super().save(path, metadata)

    def _sidecar(self):
        return {
            "params": {"weights": dict(self.params.weights), "normalise": self.params.normalise},
            "members": {name: member.kind for name, member in self.members.items()},
        }

    def _arrays(self):
        return {}

    @classmethod
    def _restore(cls, arrays, sidecar, path=None):
        stem = artifact_paths(path)[0].with_suffix("")
        members = {
            name: load_model(stem.with_name(f"{stem.name}.{name}")) for name in sidecar["members"]
        }
        return cls(members, BlendParams(**sidecar["params"]))


MODEL_KINDS: dict[str, type[Recommender]] = {
    cls.kind: cls
    for cls in (
        PopularityModel,
        ALSModel,
        BPRModel,
        ItemKNNModel,
        EASEModel,
        CoVisitModel,
        BlendModel,
    )
}


def load_model(path: str | Path) -> Recommender:
    """Load any model written by ``save`` (arrays read with allow_pickle=False)."""
    arrays, sidecar = read_artifact(path)
    if sidecar.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has artifact format {sidecar.get('format')}, this code reads "
            f"{FORMAT_VERSION}; retrain the model"
        )
    cls = MODEL_KINDS.get(sidecar.get("kind"))
    if cls is None:
        raise ValueError(f"{path} holds an unknown model kind {sidecar.get('kind')!r}")
    if cls is BlendModel:
        model = BlendModel._restore(arrays, sidecar, path=path)
    else:
        model = cls._restore(arrays, sidecar)
    model.fitted_seconds = float(sidecar.get("fitted_seconds", 0.0))
    return model


def model_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a saved model (kind, parameters, metadata) without loading arrays."""
    return json.loads(artifact_paths(path)[1].read_text())
