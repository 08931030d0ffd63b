"""Poison entries of the event stream: store what can be stored, dead-letter the rest.

The ingest worker hands an entry here when storing it alone failed with an error that belongs to
its content (``ENTRY_ERRORS``); SQL or Redis being down never reaches this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson
import redis
import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError

from tracking.activity import publish_activity
from tracking.db import insert_ignore
from tracking.schema import dead_letters
from tracking.store import WriteStats
from tracking.stream import make_entry, parse_entry

if TYPE_CHECKING:
    from tracking.ingest import IngestSettings

log = logging.getLogger("ecrm.tracking.ingest")

# Errors that belong to an entry's content: retry it alone, then dead-letter it. Anything else
# (SQL or Redis down, a bug) propagates and crashes the worker, to be restarted and redelivered.
ENTRY_ERRORS = (ValueError, KeyError, TypeError, DataError, IntegrityError)
# What can fail alone inside an entry: (label, events, rejections); the label is the event's
# index in the entry, or "rejected" for the validator's rejections.
Unit = tuple[str, list, list]
# The worker's transaction: parse the entries afresh, store them, return (stats, parsed events).
Store = Callable[[Callable[[], list[dict]]], tuple[WriteStats, list[dict]]]


class Quarantine:
    """Splits one failing entry into parts, stores the good ones, dead-letters the poison."""

    def __init__(
        self,
        client: redis.Redis,
        engine: sa.Engine,
        settings: IngestSettings,
        store: Store,
        count: Callable[[WriteStats], None],
        totals: WriteStats,
    ):
        self.client, self.engine, self.settings = client, engine, settings
        self.store, self.count, self.totals = store, count, totals

    def entry(self, entry: tuple[bytes, dict], error: Exception) -> int:
        """Store what can be stored of a failing entry; dead-letter each event that cannot be.

        The entry's events are written in halves, and halves of the halves that fail, so a poison
        event costs O(log n) transactions and never takes its request's good events with it.
        Events that still fail stay pending for a redelivery until the entry's last attempt.
        """
        entry_id, fields = entry
        try:
            parsed = parse_entry(fields)
            if not isinstance(parsed["events"], list) or not isinstance(parsed["rejected"], list):
                raise ValueError("malformed stream entry: events and rejected must be arrays")
        except ValueError as e:
            return self._unreadable(entry, e)  # nothing to split: the entry itself is the poison
        # A unit is what can fail alone: one event, or the validator's rejections together.
        units: list[Unit] = [(str(i), [e], []) for i, e in enumerate(parsed["events"])]
        if parsed["rejected"]:
            units.append(("rejected", [], parsed["rejected"]))
        log.warning("entry %s failed (%s); storing its events in parts", _text(entry_id), error)
        failed = self._store_units(parsed, units, error)
        s = self.settings
        if not failed:
            self.client.xack(s.stream_key, s.group, entry_id)
            return 1
        attempts = self._attempts(entry_id)
        if attempts < s.max_attempts:
            # Left pending: XAUTOCLAIM hands it out again after claim_idle_ms; the events stored
            # now are duplicates then.
            log.warning(
                "entry %s: %d events failed (attempt %d)", _text(entry_id), len(failed), attempts
            )
            return 0
        now = datetime.now(UTC)
        rows = []
        for (label, unit_events, unit_rejected), unit_error in failed:
            letter = make_entry(
                request_id=parsed["rid"],
                site_id=parsed["site_id"],
                received_at=parsed["received_at"],
                events=unit_events,
                rejected=unit_rejected,
            )
            rows.append(
                {
                    # Unique per entry and event: a redelivery after a crash adds nothing.
                    "stream_id": f"{_text(entry_id)}#{label}",
                    "error": f"{type(unit_error).__name__}: {unit_error}"[:4000],
                    "attempts": attempts,
                    "payload": orjson.dumps(
                        {k.decode(): v.decode() for k, v in letter.items()}
                    ).decode(),
                    "created_at": now,
                }
            )
        with self.engine.begin() as conn:
            conn.execute(insert_ignore(self.engine, dead_letters), rows)
        self.client.xack(s.stream_key, s.group, entry_id)
        quarantined = sum(len(u[1]) + len(u[2]) for u, _ in failed)
        self.totals.received += quarantined
        self.totals.dead_lettered += quarantined
        for row in rows:
            log.error(
                "dead-lettered %s after %d attempts: %s", row["stream_id"], attempts, row["error"]
            )
        return 1

    def _store_units(
        self, parsed: dict, units: list[Unit], error: Exception
    ) -> list[tuple[Unit, Exception]]:
        """Store the units in halving groups; return the units that fail alone, with the error."""
        failed: list[tuple[Unit, Exception]] = []
        if len(units) == 1:
            return [(units[0], error)]  # already tried alone, as the whole entry
        base = {k: parsed[k] for k in ("rid", "site_id", "received_at")}
        half = len(units) // 2
        groups = [units[half:], units[:half]]  # popped first half first: roughly in time order
        while groups:
            group = groups.pop()
            frozen = orjson.dumps(
                {
                    **base,
                    "events": [e for unit in group for e in unit[1]],
                    "rejected": [r for unit in group for r in unit[2]],
                }
            )
            try:
                stats, stored = self.store(lambda frozen=frozen: [orjson.loads(frozen)])
            except ENTRY_ERRORS as e:
                if len(group) == 1:
                    failed.append((group[0], e))
                else:
                    half = len(group) // 2
                    groups += [group[half:], group[:half]]
                continue
            if self.settings.publish_activity:
                publish_activity(self.client, stored)
            self.count(stats)
        return failed

    def _attempts(self, entry_id: bytes) -> int:
        s = self.settings
        info = self.client.xpending_range(s.stream_key, s.group, entry_id, entry_id, 1)
        return info[0]["times_delivered"] if info else s.max_attempts

    def _unreadable(self, entry: tuple[bytes, dict], error: Exception) -> int:
        entry_id, fields = entry
        s = self.settings
        attempts = self._attempts(entry_id)
        if attempts < s.max_attempts:
            # Left pending: XAUTOCLAIM hands it out again after claim_idle_ms.
            log.warning("entry %s failed (attempt %d): %s", entry_id, attempts, error)
            return 0
        payload = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        with self.engine.begin() as conn:
            conn.execute(
                insert_ignore(self.engine, dead_letters),
                {
                    "stream_id": _text(entry_id),
                    "error": f"{type(error).__name__}: {error}"[:4000],
                    "attempts": attempts,
                    "payload": orjson.dumps(payload).decode(),
                    "created_at": datetime.now(UTC),
                },
            )
        self.client.xack(s.stream_key, s.group, entry_id)
        log.error("entry %s dead-lettered after %d attempts: %s", entry_id, attempts, error)
        return 1


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
