"""The interface every model shares, its scoring helpers, and saving and loading of models.

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

Each model family lives in its own module of this package (popularity, als, bpr, item_knn, ease,
covisit, blend; factors holds what ALS and BPR share) and registers its ``kind`` here by
subclassing :class:`Recommender`, so :func:`load_model` finds it without importing it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recommender.artifacts import artifact_paths, read_artifact, write_artifact

FORMAT_VERSION = 1
SCORE_BATCH = 512  # users scored at once: bounds the dense (batch, n_items) block
SCORE_THREADS = min(2, os.cpu_count() or 1)  # batches scored at once by recommend()


class ModelNotReady(RuntimeError):
    """The model was used before ``fit`` (or ``load``)."""


def _rows(user_items, count: int, n_items: int, dtype=np.float32) -> sp.csr_matrix:
    """``user_items`` as (count, n_items) CSR of ``dtype``, or a ValueError saying what to pass."""
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


# kind (the sidecar's "kind") -> class; each subclass that names a kind adds itself.
MODEL_KINDS: dict[str, type[Recommender]] = {}


class Recommender:
    """The common interface; subclasses implement ``fit``, ``score`` and ``item_scores``."""

    kind: ClassVar[str] = ""
    scoring_params: ClassVar[tuple[str, ...]] = ()  # parameters that do not change the fit
    n_items: int = 0
    fitted_seconds: float = 0.0

    def __init_subclass__(cls, **kwargs):
        """Register a subclass that names its own ``kind``, for :func:`load_model`."""
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            MODEL_KINDS[cls.kind] = cls

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
    def _restore(
        cls, arrays: dict[str, np.ndarray], sidecar: dict[str, Any], path: str | Path | None = None
    ) -> Recommender:
        """The model :meth:`save` wrote; ``path`` is where it was read (a blend's members sit
        beside it)."""
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
    """A parameters dataclass from a sidecar's dict, keys it does not know ignored."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in (data or {}).items() if k in names})


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """A copy of a sparse matrix with every stored value set to 1 (for fits on 0/1)."""
    matrix = matrix.copy()
    matrix.data = np.ones_like(matrix.data)
    return matrix


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
    model = cls._restore(arrays, sidecar, path=path)
    model.fitted_seconds = float(sidecar.get("fitted_seconds", 0.0))
    return model


def model_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a saved model (kind, parameters, metadata) without loading arrays."""
    return json.loads(artifact_paths(path)[1].read_text())
