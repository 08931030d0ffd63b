"""Answers served: counted in process, flushed to Redis, moved into rollup_recs exactly once.

The serving path only adds to a dict (:meth:`ServedCounter.count`); a daemon thread flushes it
every few seconds (and at exit) with one HINCRBY pipeline into a hash per site and day. The
scheduler (:func:`move_served`) renames each hash to a numbered "moving" key, adds its counts to
``rollup_recs.served`` and records the number in ``rollup_marks`` in one transaction, then deletes
the key. A crash between leaves the moving key; the next run applies it unless the mark says it
was applied already, so every answer counts once.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections import Counter
from datetime import UTC, date, datetime

import redis
import sqlalchemy as sa

from analytics.rollups_sql import Deltas, replace_rows, text
from analytics.schema import rollup_marks, rollup_recs

log = logging.getLogger("ecrm.analytics.served")

PREFIX = "ecrm:served"
MARK = "served_moved"  # rollup_marks.name: the number of the last moving key applied


def live_key(site_id: int, day: date) -> str:
    """The hash the web processes add a site's answers of one day to."""
    return f"{PREFIX}:{site_id}:{day.isoformat()}"


def _moving_key(site_id: int, day: str, number: int) -> str:
    return f"{PREFIX}-moving:{site_id}:{day}:{number}"


class ServedCounter:
    """This process's answers not yet flushed, by (site, day, dimensions)."""

    def __init__(self, client: redis.Redis | None, flush_seconds: float | None = 2.0):
        # flush_seconds None: no thread, the owner calls flush() (tests, scripts).
        self.client, self.flush_seconds = client, flush_seconds
        self._counts: Counter = Counter()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()

    def count(
        self, site_id: int, placement: str, model_version: str | None, source: str, holdout: bool
    ) -> None:
        """One answer given (no I/O: the flush thread writes it)."""
        field = json.dumps([placement, model_version or "", source or "", bool(holdout)])
        key = (site_id, datetime.now(UTC).date(), field)
        with self._lock:
            self._counts[key] += 1
        if self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        # Once per process: gunicorn forks after the app is made.
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            if self.client is None or self.flush_seconds is None:
                return
            self._stop = threading.Event()
            threading.Thread(target=self._loop, name="ecrm-served", daemon=True).start()
            atexit.register(self.flush)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write the counts to Redis in one pipeline; on failure keep them for the next try."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts or self.client is None:
            return 0
        try:
            pipe = self.client.pipeline(transaction=False)
            for (site_id, day, field), n in counts.items():
                pipe.hincrby(live_key(site_id, day), field, n)
            pipe.execute()
        except redis.RedisError as e:
            log.warning("answers served not flushed (%s); kept for the next flush", e)
            with self._lock:
                self._counts.update(counts)
            return 0
        return sum(counts.values())

    def close(self) -> None:
        """Stop the flush thread and flush what is left."""
        self._stop.set()
        atexit.unregister(self.flush)
        self.flush()


def _apply(engine: sa.Engine, client: redis.Redis, site_id: int, key: str) -> int:
    """Add one moving hash to rollup_recs.served unless its number is applied; then drop it."""
    _, _, day_text, number_text = key.rsplit(":", 3)
    number, day = int(number_text), date.fromisoformat(day_text)
    counts = client.hgetall(key)
    applied = 0
    with engine.begin() as conn:
        mark = conn.execute(
            sa.select(rollup_marks.c.value).where(
                rollup_marks.c.site_id == site_id, rollup_marks.c.name == MARK
            )
        ).scalar()
        if mark is None or number > mark:
            served = Deltas(rollup_recs, ["served"])
            for field, n in counts.items():
                placement, model_version, source, holdout = json.loads(field)
                dims = (text(placement, 200), text(model_version, 200), text(source, 64))
                served.add((day, *dims, bool(holdout)), served=int(n))
                applied += int(n)
            served.write(conn, site_id)
            replace_rows(conn, rollup_marks, [{"site_id": site_id, "name": MARK, "value": number}])
    client.delete(key)
    return applied


def move_served(engine: sa.Engine, client: redis.Redis, site_id: int) -> int:
    """Move a site's flushed counts into rollup_recs.served; return the answers moved.

    Run by one scheduler at a time (webapp.scheduler's lock): moving keys left by a crash
    first, in their order, then each live hash renamed under a new number.
    """
    moved = 0
    leftovers = sorted(
        (k.decode() for k in client.scan_iter(f"{PREFIX}-moving:{site_id}:*")),
        key=lambda k: int(k.rsplit(":", 1)[1]),
    )
    for key in leftovers:
        moved += _apply(engine, client, site_id, key)
    for live in sorted(k.decode() for k in client.scan_iter(f"{PREFIX}:{site_id}:*")):
        day = live.rsplit(":", 1)[1]
        number = client.incr(f"{PREFIX}-number:{site_id}")
        key = _moving_key(site_id, day, number)
        try:
            client.rename(live, key)
        except redis.ResponseError:  # gone meanwhile (nothing was added to it)
            continue
        moved += _apply(engine, client, site_id, key)
    return moved
