"""Blends: a weighted sum of members' per-customer normalised scores (z-score or min-max)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.artifacts import artifact_paths
from recommender.models.base import ModelNotReady, Recommender, _rows, load_model
from recommender.models.factors import CustomersLikeYou, FactorModel


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
            if isinstance(member, FactorModel):
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
