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
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import sqlalchemy as sa

from tracking import interaction_log
from tracking.interaction_log import DAY_SECONDS, ORDER_EVENT
from tracking.schema import identities, items

log = logging.getLogger("ecrm.recommender")

ANONYMOUS_PREFIX = "anon:"
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
        """user_id -> row."""
        return {user_id: row for row, user_id in enumerate(self.user_ids)}

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
        arrays = _csr_arrays("user_items", self.user_items)
        if self.last_seen is not None:
            arrays.update(_csr_arrays("last_seen", self.last_seen))
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
        last_seen = _csr_from(arrays, "last_seen") if "last_seen_data" in arrays else None
        return cls(
            _csr_from(arrays, "user_items"),
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


def read_events(
    engine: sa.Engine,
    site_id: int,
    chunksize: int = interaction_log.REBUILD_ROWS,
    event_names: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str = "log",
) -> pd.DataFrame:
    """The site's item events and order lines as a user_id, item_id, event, timestamp frame.

    user_id, item_id and event are categoricals; timestamp is datetime64[ns, UTC].

    Anonymous ids linked to a customer in ``identities`` count as that customer (the earliest
    link wins when a device was shared); unlinked ones become users ``anon:<anonymous_id>``.
    Hidden items are dropped. ``event_names`` limits the events read (default: every name with a
    positive default weight); each order line counts as one ``Order Completed`` event.

    ``source="log"`` (the default) reads :mod:`tracking.interaction_log`, which the ingest worker
    appends to with every stored batch: a few rows per hundred thousand interactions, no Python
    object per interaction. ``source="store"`` scans ``events`` and ``order_lines`` themselves
    (what the log is rebuilt from; ``chunksize`` rows at a time). Both give the same frame.
    Identities and hidden items are resolved when reading, once per distinct id.
    """
    if source not in ("log", "store"):
        raise ValueError(f"source must be 'log' or 'store', not {source!r}")
    names = sorted(event_names) if event_names is not None else EventWeights().positive_events()
    columns = _FrameBuilder()
    low, high = _as_epoch(since), _as_epoch(until)
    # Millions of short-lived objects, none in a cycle: the cyclic collector would rescan the
    # growing heap again and again (43% of a store scan at 1M rows, bench/RESULTS.md).
    with _gc_paused(), engine.connect() as conn:
        links = _identity_links(conn, site_id)
        hidden = list(
            conn.execute(
                sa.select(items.c.item_id).where(items.c.site_id == site_id, items.c.hidden)
            ).scalars()
        )
        if source == "log":
            for chunk in interaction_log.read(conn, site_id, low, high):
                columns.add_chunk(chunk)
        else:
            for part in interaction_log.scan_store(conn, site_id, chunksize):
                columns.add_chunk(interaction_log.chunk_of(*part))
        return columns.frame(links, hidden, names, low, high)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (restored to its previous state afterwards)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _FrameBuilder:
    """Log chunks kept as they are (local codes into each chunk's own ids) until the frame.

    :meth:`frame` hashes every chunk's distinct ids together once (``pd.factorize`` over the
    concatenated id lists), so no Python loop runs per id, let alone per row.
    """

    def __init__(self):
        self.chunks: list[interaction_log.Chunk] = []

    def add_chunk(self, chunk: interaction_log.Chunk) -> None:
        self.chunks.append(chunk)

    def _column(self, name: str, extra: np.ndarray | None = None):
        """(global codes of every row, -1 for none; the distinct ids, then codes of ``extra``)."""
        position = interaction_log.CODE_COLUMNS.index(name)
        keys = [chunk.keys[name] for chunk in self.chunks]
        offsets = np.cumsum([0] + [len(k) for k in keys])
        every = np.concatenate([*keys, extra if extra is not None else []]).astype(object)
        codes, uniques = pd.factorize(every)
        codes = codes.astype(np.int32)  # int32 rows: half the memory to fault in and to scan
        rows = np.empty(sum(len(chunk) for chunk in self.chunks), dtype=np.int32)
        start = 0
        for chunk, offset, count in zip(self.chunks, offsets[:-1], np.diff(offsets), strict=True):
            mapping = np.append(codes[offset : offset + count], np.int32(-1))  # -1 stays -1
            np.take(mapping, chunk.codes[position], out=rows[start : start + len(chunk)])
            start += len(chunk)
        return rows, np.asarray(uniques, dtype=object), codes[offsets[-1] :]

    def frame(
        self,
        links: tuple[pd.Index, np.ndarray],
        hidden: list[str],
        names: Sequence[str],
        since: float | None = None,
        until: float | None = None,
    ) -> pd.DataFrame:
        if not sum(len(chunk) for chunk in self.chunks):
            return empty_frame()
        visitor_rows, visitors, _ = self._column("anonymous")
        link_ids, link_users = links
        position = link_ids.get_indexer(visitors) if len(link_ids) else np.full(len(visitors), -1)
        resolved = np.where(
            position >= 0,
            link_users[np.maximum(position, 0)] if len(link_ids) else visitors,
            ANONYMOUS_PREFIX + visitors.astype(str) if len(visitors) else visitors,
        ).astype(object)
        # Customers: user ids, and the resolved anonymous ids, coded together.
        customers, customer_values, resolved_codes = self._column("users", resolved)
        visiting = (customers < 0) & (visitor_rows >= 0)
        customers[visiting] = resolved_codes[visitor_rows[visiting]]
        item_codes, item_values, _ = self._column("items")
        event_codes, event_values, _ = self._column("events")
        seconds = np.concatenate([chunk.seconds for chunk in self.chunks])
        keep = (customers >= 0) & (item_codes >= 0)
        keep &= pd.Index(event_values, dtype=object).isin(list(names))[event_codes]
        if hidden:
            keep &= ~pd.Index(item_values, dtype=object).isin(hidden)[item_codes]
        if since is not None:
            keep &= seconds >= since
        if until is not None:
            keep &= seconds < until
        # Categorical ids: hashed once here, and every later build_interactions works on codes.
        return pd.DataFrame(
            {
                "user_id": _categorical(customers[keep], customer_values),
                "item_id": _categorical(item_codes[keep], item_values),
                "event": _categorical(event_codes[keep], event_values),
                "timestamp": _utc_milliseconds(seconds[keep]),
            }
        )


def _utc_milliseconds(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Epoch seconds as datetime64[ns, UTC] rounded to the millisecond (what the store keeps).

    Plain integer arithmetic: pandas' float-to-datetime conversion and rounding cost 0.13 s per
    million rows.
    """
    milliseconds = seconds * 1e3
    np.rint(milliseconds, out=milliseconds)
    nanoseconds = milliseconds.astype(np.int64)
    nanoseconds *= 1_000_000
    return pd.DatetimeIndex(nanoseconds.view("datetime64[ns]")).tz_localize("UTC")


def _categorical(codes: np.ndarray, values: np.ndarray) -> pd.Categorical:
    """Codes into ``values``, the categories no kept row uses dropped, the rest sorted.

    Sorted once here, the categories come out of every later ``build_interactions`` (which
    sorts the ids it uses) already in order: its stable sorts then cost a pass, not a sort.
    """
    used = np.flatnonzero(np.bincount(codes, minlength=len(values)))
    used = used[np.argsort(values[used], kind="stable")]
    position = np.full(len(values), -1, dtype=np.int32)
    position[used] = np.arange(len(used))
    return pd.Categorical.from_codes(position[codes], pd.Index(values[used], dtype=object))


def empty_frame() -> pd.DataFrame:
    """A frame with the columns build_interactions expects and no rows."""
    return pd.DataFrame(
        {
            "user_id": pd.Series([], dtype=object),
            "item_id": pd.Series([], dtype=object),
            "event": pd.Series([], dtype="category"),
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )


def _identity_links(conn: sa.Connection, site_id: int) -> tuple[pd.Index, np.ndarray]:
    """(anonymous ids, their customers): the earliest link of each anonymous id."""
    rows = conn.execute(
        sa.select(identities.c.anonymous_id, identities.c.user_id)
        .where(identities.c.site_id == site_id)
        .order_by(identities.c.anonymous_id, identities.c.first_seen_at, identities.c.user_id)
    ).all()
    anonymous, users = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [])
    anonymous = np.array(anonymous, dtype=object)
    first = np.ones(len(anonymous), dtype=bool)
    first[1:] = anonymous[1:] != anonymous[:-1]  # sorted: the first row of each id wins
    return pd.Index(anonymous[first], dtype=object), np.array(users, dtype=object)[first]


def frame_from_segment(batch: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A build_interactions frame from Segment events (demo shops, tests): no store needed.

    Identity is stitched like :func:`read_events`: an anonymousId seen with a userId (identify or
    any signed-in event) belongs to the first such user; product lines of orders are events.
    """
    batch = list(batch)
    links: dict[str, str] = {}
    for event in batch:
        anonymous, user = event.get("anonymousId"), event.get("userId")
        if anonymous and user:
            links.setdefault(anonymous, user)
    users, item_col, names, stamps = [], [], [], []
    for event in batch:
        properties = event.get("properties") or {}
        name = event.get("event") or event.get("type")
        if name == ORDER_EVENT:
            products = [p.get("product_id") for p in properties.get("products") or []]
        else:
            products = [properties.get("product_id")] if event.get("type") == "track" else []
        products = [str(p) for p in products if p is not None]
        if not products:
            continue
        anonymous = event.get("anonymousId")
        user = event.get("userId") or links.get(anonymous) or f"{ANONYMOUS_PREFIX}{anonymous}"
        for product in products:
            users.append(user)
            item_col.append(product)
            names.append(name)
            stamps.append(event["timestamp"])
    if not users:
        return empty_frame()
    return pd.DataFrame(
        {
            "user_id": np.array(users, dtype=object),
            "item_id": np.array(item_col, dtype=object),
            "event": pd.Categorical(names),
            "timestamp": pd.to_datetime(stamps, utc=True, format="ISO8601"),
        }
    )


# Artifacts: arrays in .npz (never pickled), everything else in a JSON sidecar.


def artifact_paths(path: str | Path) -> tuple[Path, Path]:
    """(``<stem>.npz``, ``<stem>.json``) for a path given with or without a suffix."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".npz", ".json") else path
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def write_artifact(path: str | Path, arrays: Mapping[str, np.ndarray], sidecar: dict) -> None:
    """Write arrays to ``<path>.npz`` and ``sidecar`` (plus the npz's sha256) to ``<path>.json``."""
    npz_path, json_path = artifact_paths(path)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    with open(npz_path, "wb") as handle:
        hashing = _HashingWriter(handle)
        np.savez(hashing, **{k: np.asarray(v) for k, v in arrays.items()})
    digest = hashing.hexdigest()
    json_path.write_text(json.dumps({**sidecar, "npz_sha256": digest}, default=_json_default))


class _HashingWriter:
    """A file wrapper that feeds every byte written to sha256 (no second read of the file).

    Only sequential writes: numpy's zip writer seeks back to patch headers only when it cannot
    tell the position, and this wrapper does not offer ``seek``, so it streams.
    """

    def __init__(self, handle):
        self.handle, self.sha, self.position = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.position += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.position

    def read(self, *args):  # numpy takes objects with ``read`` as open files
        raise OSError("write only")

    def flush(self) -> None:
        self.handle.flush()

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def read_artifact(path: str | Path, verify: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and sidecar written by :func:`write_artifact`; checks the digest unless told not."""
    npz_path, json_path = artifact_paths(path)
    sidecar = json.loads(json_path.read_text())
    if verify:
        digest = hashlib.sha256(npz_path.read_bytes()).hexdigest()
        if digest != sidecar.get("npz_sha256"):
            raise ValueError(
                f"{npz_path} does not match the digest in {json_path.name}; the artifact is "
                "corrupt or half-written: retrain or restore this model version"
            )
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, sidecar


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _csr_arrays(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    matrix = sp.csr_matrix(matrix)
    return {
        f"{name}_data": matrix.data,
        f"{name}_indices": matrix.indices,
        f"{name}_indptr": matrix.indptr,
        f"{name}_shape": np.array(matrix.shape, dtype=np.int64),
    }


def _csr_from(arrays: Mapping[str, np.ndarray], name: str) -> sp.csr_matrix:
    return sp.csr_matrix(
        (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
        shape=tuple(int(n) for n in arrays[f"{name}_shape"]),
    )
