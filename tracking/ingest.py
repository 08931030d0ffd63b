"""The ingest worker: a consumer of the event stream that writes batches to SQL.

Delivery is at-least-once from Redis and exactly-once into SQL: entries are acknowledged only
after the transaction holding them commits, and the store ignores messages it already has.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import redis
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from tracking.activity import publish_activity
from tracking.quarantine import ENTRY_ERRORS, Quarantine
from tracking.store import OnStored, WriteStats, write_entries
from tracking.stream import Spool, ensure_group, parse_entry, trim_acknowledged

log = logging.getLogger("ecrm.tracking.ingest")

# PostgreSQL aborts one of two workers storing the same messages in crossed order (a client's
# retried batch): serialization failure or deadlock. Running the transaction again succeeds.
RETRY_SQLSTATES = ("40001", "40P01")
TRANSACTION_ATTEMPTS = 3


@dataclass
class IngestSettings:
    """How a worker reads the stream."""

    stream_key: str = "ecrm:events"
    group: str = "ingest"
    consumer: str = ""
    batch_size: int = 200
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    max_attempts: int = 3
    session_timeout: timedelta = timedelta(minutes=30)
    # Closed loop: labels events and orders of the holdout group; attributes orders to clicks.
    holdout_share: float = 0.0
    attribution_window: timedelta = timedelta(days=7)
    # Tell the serving layer who did something (tracking.activity), after each commit.
    publish_activity: bool = True
    trim_every_seconds: float = 5.0
    replay_every_seconds: float = 2.0
    # Run in each batch's transaction with what it stored (analytics.rollups, when switched on).
    on_stored: OnStored | None = None

    def __post_init__(self):
        if not self.consumer:
            self.consumer = f"{socket.gethostname()}-1"


class IngestWorker:
    """Reads entries from the consumer group and stores them; see the module docstring."""

    def __init__(
        self,
        client: redis.Redis,
        engine: sa.Engine,
        settings: IngestSettings,
        spool: Spool | None = None,
    ):
        self.client, self.engine, self.settings, self.spool = client, engine, settings, spool
        self.totals = WriteStats()
        self._last_trim = 0.0
        self._last_replay = 0.0
        self._claim_cursor = "0-0"
        self._own_pending_done = False
        self.quarantine = Quarantine(
            client, engine, settings, self._store, self._count, self.totals
        )

    def start(self) -> None:
        """Create the group if needed."""
        ensure_group(self.client, self.settings.stream_key, self.settings.group)

    def run(self, stop: threading.Event | None = None) -> None:
        """Work until ``stop`` is set (or forever)."""
        self.start()
        log.info(
            "ingest worker %s reading %s as group %s",
            self.settings.consumer,
            self.settings.stream_key,
            self.settings.group,
        )
        while stop is None or not stop.is_set():
            self.run_once()

    def run_once(self, block_ms: int | None = None) -> int:
        """One round: own pending (first time), claims, new entries, housekeeping."""
        s = self.settings
        handled = 0
        if not self._own_pending_done:
            # After a restart, first finish what this consumer had read but not acknowledged.
            handled += self._drain_own_pending()
            self._own_pending_done = True
        handled += self._claim_abandoned()
        block = s.block_ms if block_ms is None else block_ms
        response = self.client.xreadgroup(
            s.group,
            s.consumer,
            {s.stream_key: ">"},
            count=s.batch_size,
            block=block if block > 0 else None,
        )
        for _, entries in response or []:
            handled += self.process(entries)
        self._housekeeping()
        return handled

    def drain(self, max_rounds: int = 10_000) -> int:
        """Process until the stream has nothing new for this worker (tests, demo loading)."""
        self.start()
        total = 0
        for _ in range(max_rounds):
            if self.spool is not None:
                self.spool.replay(self.client, self.settings.stream_key)
            handled = self.run_once(block_ms=0)
            total += handled
            if handled == 0:
                break
        return total

    def _drain_own_pending(self) -> int:
        s = self.settings
        handled = 0
        last_id = "0"
        while True:
            response = self.client.xreadgroup(
                s.group, s.consumer, {s.stream_key: last_id}, count=s.batch_size
            )
            entries = response[0][1] if response else []
            if not entries:
                return handled
            handled += self.process(self._live(entries))
            last_id = entries[-1][0]

    def _claim_abandoned(self) -> int:
        s = self.settings
        handled = 0
        for _ in range(100):
            result = self.client.xautoclaim(
                s.stream_key,
                s.group,
                s.consumer,
                min_idle_time=s.claim_idle_ms,
                start_id=self._claim_cursor,
                count=s.batch_size,
            )
            cursor, claimed = result[0], self._live(result[1])
            if claimed:
                log.info("claimed %d abandoned entries", len(claimed))
                handled += self.process(claimed)
            self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
            if self._claim_cursor == "0-0" or not claimed:
                break
        return handled

    def _live(self, entries: list[tuple[bytes, dict | None]]) -> list[tuple[bytes, dict]]:
        # An entry deleted from the stream (XDEL, erasure) comes back without fields while it is
        # still pending: acknowledge it, or it would block trimming forever.
        gone = [eid for eid, fields in entries if not fields]
        if gone:
            self.client.xack(self.settings.stream_key, self.settings.group, *gone)
        return [(eid, fields) for eid, fields in entries if fields]

    def process(self, entries: list[tuple[bytes, dict]]) -> int:
        """Store a batch of entries in one transaction, then acknowledge them."""
        if not entries:
            return 0
        try:
            stats, parsed = self._write(entries)
        except ENTRY_ERRORS as e:
            if len(entries) == 1:
                return self.quarantine.entry(entries[0], e)
            # Find the poisoned entry: store the others one by one.
            log.warning("batch of %d failed (%s); retrying entries one by one", len(entries), e)
            return sum(self.process([entry]) for entry in entries)
        self.client.xack(self.settings.stream_key, self.settings.group, *[e[0] for e in entries])
        if self.settings.publish_activity:
            publish_activity(self.client, parsed)
        self._count(stats)
        return len(entries)

    def _write(self, entries: list[tuple[bytes, dict]]) -> tuple[WriteStats, list[dict]]:
        return self._store(lambda: [parse_entry(fields) for _, fields in entries])

    def _store(self, parse: Callable[[], list[dict]]) -> tuple[WriteStats, list[dict]]:
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            # Parsed afresh each time: write_entries annotates the event dicts it is given.
            parsed = parse()
            try:
                with self.engine.begin() as conn:
                    stats = write_entries(
                        conn,
                        parsed,
                        self.settings.session_timeout,
                        holdout_share=self.settings.holdout_share,
                        attribution_window=self.settings.attribution_window,
                        on_stored=self.settings.on_stored,
                    )
                return stats, parsed
            except OperationalError as e:
                sqlstate = getattr(e.orig, "sqlstate", None)
                if sqlstate not in RETRY_SQLSTATES or attempt == TRANSACTION_ATTEMPTS:
                    raise
                log.warning("batch rolled back (%s, attempt %d); retrying", sqlstate, attempt)
        raise AssertionError("unreachable")

    def _count(self, stats: WriteStats) -> None:
        t = self.totals
        t.received += stats.received
        t.stored += stats.stored
        t.duplicates += stats.duplicates
        t.rejected += stats.rejected
        t.dead_lettered += stats.dead_lettered
        t.orders += stats.orders
        t.attributed += stats.attributed
        t.erased += stats.erased

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.spool is not None and now - self._last_replay >= self.settings.replay_every_seconds:
            self._last_replay = now
            self.spool.replay(self.client, self.settings.stream_key)
        if now - self._last_trim >= self.settings.trim_every_seconds:
            self._last_trim = now
            trim_acknowledged(self.client, self.settings.stream_key)
