"""What each site's serving holds beside its model and catalogue: merchandising rules,
personalisation opt-outs and customers' segments, each loaded on first use and again on a change.

Segments are never loaded on a request: a million customers take seconds to read. The first
request of a site (or the site's state loading) starts a load in a thread of its own, and until it
is done requests are answered without VIP treatment and without the customer's segment; a new
snapshot is read by the maintenance thread while the old one keeps serving.

:class:`SiteHoldings` is the part of recommender.site_state's ``SiteStates`` that reads them (the
threads that notice changes stay there); :class:`SegmentSource` is how the web app hands in
analytics' snapshot reader, so this package never imports analytics.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from recommender import opt_outs, rule_store
from recommender.rule_store import RuleBook

log = logging.getLogger("ecrm.recommender.serving")


class Segments(Protocol):
    """A site's customers' segments as held for serving (analytics.customer_segments)."""

    marker: str | None

    def lookup(self, user_id: str | None) -> dict | None: ...


@dataclass(frozen=True)
class SegmentSource:
    """Where the customers' segments come from: the web app passes analytics' reader, so this
    package never imports analytics. ``load(engine, site_id)`` reads a site's newest snapshot;
    ``marker(engine, site_id)`` says which one is newest (cheap); ``channel`` announces one."""

    load: Callable[[sa.Engine, int], Segments]
    marker: Callable[[sa.Engine, int], str | None]
    channel: str


SEGMENT_RETRY_SECONDS = 10.0  # after a failed load, requests start another no sooner


@dataclass
class SegmentLoad:
    """A background load of a site's segments in one process: ``done`` is set when it ends."""

    pid: int
    done: threading.Event = field(default_factory=threading.Event)
    failed_at: float | None = None  # time.monotonic() when it failed


class SiteHoldings:
    """Rules, opt-outs and segments per site (the attributes are set by ``SiteStates``)."""

    engine: sa.Engine
    segment_source: SegmentSource | None
    _books: dict[int, RuleBook]
    _opt_outs: dict[int, set[str]]
    _segments: dict[int, Segments]
    _segment_loads: dict[int, SegmentLoad]
    _segments_moved: set[int]  # announced: the maintenance thread reloads
    _lock: threading.Lock
    _loads_lock: threading.Lock  # the bookkeeping of background loads
    _segments_read: threading.Lock  # one read of segments at a time (they are big)

    def hold_segments(self, source: SegmentSource | None) -> None:
        """Start with no segments held, read from ``source`` (None: this process has none)."""
        self.segment_source = source
        self._segments, self._segment_loads, self._segments_moved = {}, {}, set()
        self._loads_lock, self._segments_read = threading.Lock(), threading.Lock()

    def _ensure_threads(self) -> None:  # SiteStates starts its background threads
        raise NotImplementedError

    def opted_out(self, site_id: int) -> set[str]:
        """The site's customers with personalisation off (loaded with the site's state)."""
        found = self._opt_outs.get(site_id)
        if found is None:
            found = self.reload_opt_outs(site_id)
        return found

    def reload_opt_outs(self, site_id: int) -> set[str]:
        """Read the site's personalisation opt-outs again now."""
        with self.engine.connect() as conn:
            found = self._opt_outs[site_id] = opt_outs.opted_out(conn, site_id)
        return found

    def rules(self, site_id: int) -> RuleBook:
        """The site's merchandising rules, loaded on first use and on every change."""
        found = self._books.get(site_id)
        if found is None:
            self._ensure_threads()
            found = self._books[site_id] = rule_store.load(self.engine, site_id)
        return found

    def reload_rules(self, site_id: int, if_moved: bool = False) -> RuleBook:
        """Read the site's rules again now (with ``if_moved``, only when the version moved)."""
        if if_moved and site_id in self._books:
            if rule_store.current_version(self.engine, site_id) == self._books[site_id].version:
                return self._books[site_id]
        book = self._books[site_id] = rule_store.load(self.engine, site_id)
        log.info("site %s serves rules version %s", site_id, book.version)
        return book

    def segments(self, site_id: int, wait: bool = False) -> Segments | None:
        """The site's customers' segments and VIP flags (newest snapshot), or None while they
        load (in the background: see :meth:`load_segments`) or when this process has no source
        of them. ``wait``: wait for the load (jobs such as warming the cache; never requests)."""
        if self.segment_source is None:
            return None
        found = self._segments.get(site_id)
        if found is None:
            done = self.load_segments(site_id)
            if wait:
                done.wait()
            found = self._segments.get(site_id)
        return found

    def load_segments(self, site_id: int) -> threading.Event:
        """Start reading the site's segments in a thread of its own unless that is under way or
        done in this process (or failed less than :data:`SEGMENT_RETRY_SECONDS` ago); the
        returned event is set when the load ends."""
        with self._loads_lock:
            load = self._segment_loads.get(site_id)
            if load is not None and load.pid == os.getpid():
                failed = load.failed_at
                if failed is None or time.monotonic() - failed < SEGMENT_RETRY_SECONDS:
                    return load.done
            load = self._segment_loads[site_id] = SegmentLoad(os.getpid())
        self._ensure_threads()
        thread = threading.Thread(
            target=self._load_segments,
            args=(site_id, load),
            name=f"ecrm-segments-{site_id}",
            daemon=True,
        )
        thread.start()
        return load.done

    def _load_segments(self, site_id: int, load: SegmentLoad) -> None:
        try:
            self.reload_segments(site_id)
        except Exception:  # requests go on without VIP treatment; a later one tries again
            load.failed_at = time.monotonic()
            log.exception("could not load site %s's customer segments", site_id)
        finally:
            load.done.set()

    def reload_segments(self, site_id: int, if_moved: bool = False) -> Segments | None:
        """Read the site's newest snapshot again now (with ``if_moved``, only when it changed).
        Reads take turns, so an older read never replaces a newer one."""
        source = self.segment_source
        if source is None:
            return None
        with self._segments_read:
            old = self._segments.get(site_id)
            if if_moved and old is not None and source.marker(self.engine, site_id) == old.marker:
                return old
            found = self._segments[site_id] = source.load(self.engine, site_id)
        if old is not None and old.marker != found.marker:
            log.info("site %s serves value snapshot %s", site_id, found.marker)
        return found
