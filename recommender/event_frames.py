"""Recorded events read into frames (user_id, item_id, event, timestamp) for build_interactions.

:func:`read_events` reads a site's item events and order lines from the store (through
:mod:`tracking.interaction_log`), stitching anonymous visitors to the customers they signed in as;
:func:`frame_from_segment` builds the same frame from Segment events with no store at all (demo
shops, tests). :func:`recommender.interactions.build_interactions` turns either into a matrix.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recommender.interactions import EventWeights, _as_epoch
from tracking import interaction_log
from tracking.interaction_log import ORDER_EVENT
from tracking.schema import identities, items

ANONYMOUS_PREFIX = "anon:"  # user_id of a visitor never linked to a customer: anon:<anonymous_id>


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
