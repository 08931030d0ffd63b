"""Each customer's segment and VIP flag from the newest value snapshot, held for serving.

The serving process keeps one :class:`CustomerSegments` per site in memory (recommender's
``SiteStates`` loads it with :func:`load` and reloads it when :func:`snapshot_marker` moves, or
when the refresh announces itself on :data:`VALUE_CHANNEL`), so a request looks a customer up in
arrays, never in SQL. Ids are held as fixed-width bytes, sorted, with the segment as a small
code: a million customers take some tens of megabytes, not a dict of Python objects.

A customer scored in several currencies (money is never summed across them) is a VIP when any
currency's snapshot says so, and takes the segment of the currency they ordered most in (ties:
the first currency by its code).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import redis
import sqlalchemy as sa

from analytics.rfm import SEGMENT_CELLS
from analytics.value_schema import value_runs, value_scores

log = logging.getLogger("ecrm.analytics.value")

VALUE_CHANNEL = "ecrm:value"  # message "<site_id>": that site has a new value snapshot
NAMES = tuple(SEGMENT_CELLS)


@dataclass(frozen=True)
class CustomerSegments:
    """A site's customers' segments and VIP flags from one snapshot (sorted by user id)."""

    marker: str | None  # the snapshot it came from (None: the site has none)
    user_ids: np.ndarray  # (n,) bytes, utf-8, sorted
    segments: np.ndarray  # (n,) uint8, index into NAMES
    vips: np.ndarray  # (n,) bool

    def lookup(self, user_id: str | None) -> dict | None:
        """``{"segment": name, "vip": bool}`` for a scored customer, else None."""
        if not user_id or not len(self.user_ids):
            return None
        key = user_id.encode()
        if len(key) > self.user_ids.dtype.itemsize:
            return None
        i = int(np.searchsorted(self.user_ids, key))
        if i >= len(self.user_ids) or self.user_ids[i] != key:
            return None
        return {"segment": NAMES[self.segments[i]], "vip": bool(self.vips[i])}

    def is_vip(self, user_id: str | None) -> bool:
        """The customer is a VIP in the newest snapshot."""
        found = self.lookup(user_id)
        return bool(found and found["vip"])

    def __len__(self) -> int:
        return len(self.user_ids)


EMPTY = CustomerSegments(None, np.array([], dtype="S1"), np.array([], np.uint8), np.array([], bool))


def snapshot_marker(conn: sa.Connection | sa.Engine, site_id: int) -> str | None:
    """What identifies the site's newest snapshot (its day and when it was computed), or None."""
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return snapshot_marker(c, site_id)
    day, at = conn.execute(
        sa.select(sa.func.max(value_runs.c.day), sa.func.max(value_runs.c.computed_at)).where(
            value_runs.c.site_id == site_id
        )
    ).one()
    return None if day is None else f"{day}|{at}"


def load(engine: sa.Engine, site_id: int) -> CustomerSegments:
    """The newest snapshot's segments and VIP flags of a site (one marker query, one scan)."""
    with engine.connect() as conn:
        marker = snapshot_marker(conn, site_id)
        if marker is None:
            return EMPTY
        day = conn.execute(
            sa.select(sa.func.max(value_runs.c.day)).where(value_runs.c.site_id == site_id)
        ).scalar()
        query = (
            sa.select(
                value_scores.c.user_id,
                value_scores.c.segment,
                value_scores.c.vip,
                value_scores.c.orders,
                value_scores.c.currency,
            )
            .where(value_scores.c.site_id == site_id, value_scores.c.day == day)
            .execution_options(stream_results=True, yield_per=50_000)
        )
        columns: list[list] = [[], [], [], [], []]
        for rows in conn.execute(query).partitions():
            for column, values in zip(columns, zip(*rows, strict=True), strict=True):
                column.extend(values)
    users, segment_names, vip_flags, orders, currencies = columns
    if not users:
        return CustomerSegments(marker, EMPTY.user_ids, EMPTY.segments, EMPTY.vips)
    ids = np.array([u.encode() for u in users], dtype=np.bytes_)
    names, segment_codes = np.unique(np.array(segment_names, dtype=np.str_), return_inverse=True)
    code = np.array([NAMES.index(n) if n in NAMES else 0 for n in names], np.uint8)
    _, currency_codes = np.unique(np.array(currencies, dtype=np.str_), return_inverse=True)
    # Per customer: the currency with the most orders first (ties: by currency code).
    order = np.lexsort((currency_codes, -np.array(orders, np.int64), ids))
    ids = ids[order]
    seg = code[segment_codes][order]
    vip = np.array(vip_flags, dtype=bool)[order]
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return CustomerSegments(
        marker, ids[first], seg[first], np.logical_or.reduceat(vip, first).astype(bool)
    )


def announce(client: redis.Redis | None, site_id: int) -> None:
    """Tell every web process the site has a new snapshot (else they notice within a refresh)."""
    if client is None:
        return
    try:
        client.publish(VALUE_CHANNEL, str(site_id))
    except redis.RedisError as e:
        log.warning("could not announce site %s's new value snapshot (%s)", site_id, e)
