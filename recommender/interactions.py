"""The interaction matrix: recorded events turned into a weighted users x items CSR matrix.

Every event with an item becomes evidence that its customer likes that item. How much evidence is
data (:class:`EventWeights`), not code:

    raw[u, i]      = sum over u's events e on i of  weight(e.event) * decay(e)
    decay(e)       = max(2 ** (-age(e) / half_life_days), min_decay)      (1 without half-life)
    strength[u, i] = log1p(raw[u, i] / epsilon)      with saturation (the default)
                   = raw[u, i]                       without

``age`` (days) is measured from the reference time ``now`` (or, with ``decay_reference="customer"``,
from that customer's latest event, so only the order of a customer's own events matters). The log
saturates repeats: the tenth view of an item adds little. :class:`recommender.models.ALSModel`
hands ``strength`` to implicit, which takes ``alpha * strength`` as a stored pair's confidence
(unobserved pairs count 1): Hu, Koren & Volinsky's (2008) log confidence
``1 + alpha * log(1 + r / epsilon)`` without its constant 1.

The frames come from :mod:`recommender.event_frames` (the store, or Segment events).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.artifacts import csr_arrays, csr_from, read_artifact, write_artifact
from tracking.interaction_log import DAY_SECONDS, ORDER_EVENT

log = logging.getLogger("ecrm.recommender")

FRAME_COLUMNS = ("user_id", "item_id", "event", "timestamp")
# Evidence of interest per event (name for track events, type for page/screen events).
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "page": 1.0,
    "Product Viewed": 1.0,
    "Product Clicked": 2.0,
    "Recommendation Clicked": 2.0,
    "Product Shared": 3.0,
    "Product Added to Wishlist": 3.0,
    "Product Added": 4.0,
    "Product Reviewed": 4.0,
    ORDER_EVENT: 8.0,  # per product line of the order
    # Impressions and removals are not interest; unnamed events get `default` (0: dropped).
    "Recommendation Shown": 0.0,
    "Product Removed": 0.0,
}


@dataclass(frozen=True)
class EventWeights:
    """How events become interaction strength (see the module docstring for the formula)."""

    events: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    default: float = 0.0  # weight of an event not named in `events`
    saturation: bool = True  # strength = log1p(raw / epsilon) instead of raw
    epsilon: float = 1.0
    half_life_days: float | None = None  # None: no time decay
    decay_reference: str = "now"  # "now" or "customer" (the customer's latest event)
    # Old evidence fades but never vanishes: a customer keeps their row, an item its column.
    min_decay: float = 1e-6

    def __post_init__(self):
        if self.decay_reference not in ("now", "customer"):
            raise ValueError(
                f"decay_reference must be 'now' or 'customer', not {self.decay_reference!r}"
            )
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, not {self.epsilon}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0 or None, not {self.half_life_days}")

    def positive_events(self) -> list[str]:
        """Event names that carry a positive weight (what is worth reading from the store)."""
        return sorted(name for name, weight in self.events.items() if weight > 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        data = asdict(self)
        data["events"] = dict(self.events)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventWeights:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "events": dict(data.get("events", DEFAULT_EVENT_WEIGHTS))})


def _epoch_seconds(values: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps (datetime64, tz-aware or not, or numbers of epoch seconds) as float64 seconds."""
    series = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64)
    return _epoch_seconds(pd.to_datetime(series, utc=True, format="ISO8601"))


def _as_epoch(moment: datetime | pd.Timestamp | float | int | None) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, int | float | np.integer | np.floating):
        return float(moment)
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.timestamp()


@dataclass
class Interactions:
    """A weighted users x items matrix with the ids of its rows and columns."""

    user_items: sp.csr_matrix  # (n_users, n_items) float32 strength
    user_ids: np.ndarray  # (n_users,) object (str)
    item_ids: np.ndarray  # (n_items,) object (str)
    # Same sparsity as user_items: epoch seconds (float64) of each pair's latest event.
    last_seen: sp.csr_matrix | None = None
    now: float | None = None  # reference time of the decay, epoch seconds
    weights: EventWeights | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(n_users, n_items)."""
        return self.user_items.shape

    @cached_property
    def user_index(self) -> dict[str, int]:
        """user_id -> row (a blank row, an erased customer's, has no id: recommender.forgotten)."""
        return {user_id: row for row, user_id in enumerate(self.user_ids) if user_id is not None}

    @cached_property
    def item_index(self) -> dict[str, int]:
        """item_id -> column."""
        return {item_id: col for col, item_id in enumerate(self.item_ids)}

    @cached_property
    def _user_lookup(self) -> pd.Index:
        return pd.Index(self.user_ids)

    @cached_property
    def _item_lookup(self) -> pd.Index:
        return pd.Index(self.item_ids)

    def user_positions(self, user_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Rows (int64) of ``user_ids``; -1 for ids not in the matrix."""
        return self._user_lookup.get_indexer(pd.Index(np.asarray(user_ids, dtype=object)))

    def item_positions(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Columns (int64) of ``item_ids``; -1 for ids not in the matrix."""
        return self._item_lookup.get_indexer(pd.Index(np.asarray(item_ids, dtype=object)))

    def users(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """user_ids (object) of rows; -1 (padding) maps to None."""
        return _lookup(self.user_ids, positions)

    def items(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """item_ids (object) of columns; -1 (padding) maps to None."""
        return _lookup(self.item_ids, positions)

    def rows(self, user_positions: Sequence[int] | np.ndarray) -> sp.csr_matrix:
        """The (len(user_positions), n_items) slice of user_items; -1 gives an empty row."""
        positions = np.asarray(user_positions, dtype=np.int64)
        known = positions >= 0
        if known.all():
            return self.user_items[positions]
        out = sp.lil_matrix((len(positions), self.shape[1]), dtype=np.float32)
        out[np.flatnonzero(known)] = self.user_items[positions[known]]
        return out.tocsr()

    def history(self, item_ids: Sequence[str], strengths: Sequence[float] | None = None):
        """One (1, n_items) CSR row from a visitor's items (unknown items are dropped)."""
        columns = self.item_positions(list(item_ids))
        values = np.ones(len(columns), np.float32) if strengths is None else strengths
        values = np.asarray(values, dtype=np.float32)[columns >= 0]
        columns = columns[columns >= 0]
        row = sp.csr_matrix(
            (values, (np.zeros(len(columns), np.int64), columns)), shape=(1, self.shape[1])
        )
        row.sum_duplicates()
        return row

    def since(self, cutoff: datetime | float) -> Interactions:
        """Only the pairs last seen at or after ``cutoff`` (a trending window); same ids."""
        if self.last_seen is None:
            raise ValueError("these interactions carry no last_seen times; build them from events")
        mask = self.last_seen.data >= _as_epoch(cutoff)
        return Interactions(
            _keep_entries(self.user_items, mask),
            self.user_ids,
            self.item_ids,
            _keep_entries(self.last_seen, mask),
            self.now,
            self.weights,
        )

    def save(self, path: str | Path, metadata: Mapping[str, Any] | None = None) -> None:
        """Write ``<path>.npz`` (matrices) and ``<path>.json`` (ids, weights, metadata)."""
        arrays = csr_arrays("user_items", self.user_items)
        if self.last_seen is not None:
            arrays.update(csr_arrays("last_seen", self.last_seen))
        sidecar = {
            "kind": "interactions",
            "user_ids": [str(u) for u in self.user_ids],
            "item_ids": [str(i) for i in self.item_ids],
            "now": self.now,
            "weights": self.weights.to_dict() if self.weights else None,
            "metadata": dict(metadata or {}),
        }
        write_artifact(path, arrays, sidecar)

    @classmethod
    def load(cls, path: str | Path) -> Interactions:
        """Read what :meth:`save` wrote."""
        arrays, sidecar = read_artifact(path)
        last_seen = csr_from(arrays, "last_seen") if "last_seen_data" in arrays else None
        return cls(
            csr_from(arrays, "user_items"),
            np.array(sidecar["user_ids"], dtype=object),
            np.array(sidecar["item_ids"], dtype=object),
            last_seen,
            sidecar["now"],
            EventWeights.from_dict(sidecar["weights"]) if sidecar["weights"] else None,
        )


def _keep_entries(matrix: sp.csr_matrix, mask: np.ndarray) -> sp.csr_matrix:
    """The entries of a canonical CSR matrix where ``mask`` (aligned with .data) is true."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    return sp.csr_matrix(
        (matrix.data[mask], (rows[mask], matrix.indices[mask])), shape=matrix.shape
    )


def _lookup(ids: np.ndarray, positions: Sequence[int] | np.ndarray) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.int64)
    out = ids[np.where(positions >= 0, positions, 0)] if len(ids) else positions.astype(object)
    out = np.asarray(out, dtype=object)
    out[positions < 0] = None
    return out


def build_interactions(
    frame: pd.DataFrame,
    weights: EventWeights | None = None,
    now: datetime | float | None = None,
    user_ids: Sequence[str] | np.ndarray | None = None,
    item_ids: Sequence[str] | np.ndarray | None = None,
) -> Interactions:
    """Weighted (users x items) float32 CSR from a frame of user_id, item_id, event, timestamp.

    ``now`` defaults to the frame's latest timestamp. Passing ``user_ids``/``item_ids`` fixes the
    rows and columns (pairs outside them are dropped), so a test split lines up with its train
    split; otherwise both are the sorted ids with positive weight.
    """
    weights = weights or EventWeights()
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame needs columns {FRAME_COLUMNS}; missing {missing}")
    event = frame["event"]
    if not isinstance(event.dtype, pd.CategoricalDtype):
        event = event.astype("category")
    weight = (
        event.cat.categories.to_series()
        .map(weights.events)
        .fillna(weights.default)
        .to_numpy(dtype=np.float64)
    )
    codes = event.cat.codes.to_numpy()
    value = np.where(codes >= 0, weight[codes], weights.default)
    seconds = _epoch_seconds(frame["timestamp"])
    reference = _as_epoch(now)
    if reference is None:
        reference = float(seconds.max()) if len(seconds) else 0.0
    keep = value > 0
    users, item_col = frame["user_id"], frame["item_id"]
    value, seconds = value[keep], seconds[keep]

    user_codes, user_vocab = _codes(users, keep, user_ids)
    item_codes, item_vocab = _codes(item_col, keep, item_ids)
    known = (user_codes >= 0) & (item_codes >= 0)
    user_codes, item_codes = user_codes[known], item_codes[known]
    value, seconds = value[known], seconds[known]

    if weights.half_life_days is not None:
        if weights.decay_reference == "customer":
            latest = np.full(len(user_vocab), -np.inf)
            np.maximum.at(latest, user_codes, seconds)
            ages = latest[user_codes] - seconds
        else:
            ages = np.maximum(reference - seconds, 0.0)
        decay = np.exp2(-ages / (weights.half_life_days * DAY_SECONDS))
        value = value * np.maximum(decay, weights.min_decay)

    shape = (len(user_vocab), len(item_vocab))
    pairs = user_codes.astype(np.int64) * shape[1] + item_codes
    # Per distinct pair: the sum of values and the latest time. Hashing the pairs and summing
    # with bincount costs half of a sorted pandas groupby; only the distinct pairs are sorted.
    group, keys = pd.factorize(pairs)
    order = np.argsort(keys)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[group]
    keys = keys[order]
    strength = np.bincount(group, weights=value, minlength=len(keys))
    latest_seen = np.full(len(keys), -np.inf)
    np.maximum.at(latest_seen, group, seconds)
    if weights.saturation:
        strength = np.log1p(strength / weights.epsilon)
    strength = strength.astype(np.float32)
    # Fully decayed pairs would be stored zeros; both matrices keep the same entries.
    live = strength > 0
    keys, strength, latest_seen = keys[live], strength[live], latest_seen[live]
    rows, cols = np.divmod(keys, shape[1]) if shape[1] else (keys, keys)
    user_items = sp.csr_matrix((strength, (rows, cols)), shape=shape)
    last_seen = sp.csr_matrix((latest_seen, (rows, cols)), shape=shape)
    return Interactions(user_items, user_vocab, item_vocab, last_seen, reference, weights)


def _codes(column: pd.Series, keep: np.ndarray, vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """(codes of the kept rows, -1 outside the vocabulary; the vocabulary, sorted when built)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Categorical ids (what read_events returns): work on the few categories, not the rows.
        codes = column.cat.codes.to_numpy()[keep]
        categories = np.asarray(column.cat.categories, dtype=object)
        if vocabulary is None:
            used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(categories)))
            used = used[np.argsort(categories[used], kind="stable")]
            vocab = categories[used]
            position = np.full(len(categories), -1, dtype=np.int64)
            position[used] = np.arange(len(used))
        else:
            vocab = np.asarray(vocabulary, dtype=object)
            position = pd.Index(vocab, dtype=object).get_indexer(pd.Index(categories, dtype=object))
        return np.where(codes >= 0, position[np.maximum(codes, 0)], -1), vocab
    values = column.to_numpy(dtype=object)[keep]
    if vocabulary is None:
        codes, uniques = pd.factorize(values, sort=True)
        return codes, np.asarray(uniques, dtype=object)
    vocab = np.asarray(vocabulary, dtype=object)
    return pd.Index(vocab, dtype=object).get_indexer(pd.Index(values, dtype=object)), vocab
