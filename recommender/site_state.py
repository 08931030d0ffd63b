"""Each site's serving state (model, catalogue, fallback lists), loaded, kept current and swapped.

A :class:`SiteState` is everything one site's answers need: the promoted model version (a
:class:`~recommender.answers.ModelBundle`), the catalogue as served (a :class:`CatalogueView`),
the service over both, and the popular and trending lists. It is built whole and swapped whole,
so a request sees the old state or the new one, never a mix.

:class:`SiteStates` holds them for one process. Two background threads keep them current: one
notices a new model version (the registry's ``current`` link moved) and reloads the catalogue
every ``catalogue_refresh`` seconds; the other listens on Redis pub/sub for the ingest worker's
invalidations (dropping the visitor's local cache entry), the catalogue API's changes, rules
changes (each site's :class:`~recommender.rule_store.RuleBook`, reloaded whole) and customers
turning personalisation off or on (:mod:`recommender.opt_outs`: each site's list is held as a
set, read again with the catalogue). A link that does not load keeps the model already serving.
An erasure never makes a process reload its model: the erased customers' rows are blanked in the
model held, in place, when told on :data:`recommender.forgotten.CHANNEL` or at the next model
check (:mod:`recommender.model_watch`).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import sqlalchemy as sa

from recommender import forgotten, opt_outs
from recommender.answers import ModelBundle, RecommendationService
from recommender.catalogue_view import CatalogueView
from recommender.model_watch import ModelWatch
from recommender.registry import ModelRegistry
from recommender.rule_store import RULES_CHANNEL, RuleBook
from recommender.rules import Rules
from recommender.site_holdings import SegmentSource, SiteHoldings
from tracking.activity import CATALOGUE_CHANNEL, INVALIDATION_CHANNEL

if TYPE_CHECKING:
    from recommender.answer_cache import LocalCache
    from recommender.serving import ServingSettings

log = logging.getLogger("ecrm.recommender.serving")


_SERIALS = itertools.count(1)
MAX_RULE_LISTS = 32  # fallback lists kept per state, one pair per distinct placement rules


@dataclass
class SiteState:
    """One site's model, service, catalogue and fallback lists, swapped as a whole."""

    site_id: int
    bundle: ModelBundle | None
    view: CatalogueView
    service: RecommendationService
    popular: list[list[Any]]  # [[item_id, score, reason], ...]
    trending: list[list[Any]]
    popular_source: str
    trending_source: str
    previous_version: str | None = None
    serial: int = field(default_factory=lambda: next(_SERIALS))
    memo: dict[tuple, bytes] = field(default_factory=dict)  # shared answers, encoded
    depth: int = 200
    ruled: dict[str, tuple[list, list, str, str]] = field(default_factory=dict)

    @property
    def version(self) -> str | None:
        """The model version answering, or None."""
        return self.bundle.version if self.bundle else None

    @property
    def trained_until(self) -> float:
        """Events after this moment (epoch seconds) are news to the model."""
        if self.bundle is None:
            return 0.0
        window = self.bundle.meta.get("data_window") or {}
        until = float(window.get("to_epoch") or self.bundle.interactions.now or 0.0)
        return until / 1e9 if until > 1e11 else until  # nanoseconds in older sidecars

    def fallbacks(self, rules: Rules, key: str) -> tuple[list, list, str, str]:
        """(popular, trending, their sources) under a placement's rules (``key``: their
        fingerprint; '' is the defaults the state was built with). Computed once per state."""
        if not key:
            return self.popular, self.trending, self.popular_source, self.trending_source
        found = self.ruled.get(key)
        if found is None:
            popular = self.service.popular(self.depth, rules=rules)
            trending = self.service.popular(self.depth, rules=rules, trending=True)
            found = (
                popular.as_candidates(),
                trending.as_candidates(),
                popular.source,
                trending.source,
            )
            if len(self.ruled) >= MAX_RULE_LISTS:
                self.ruled.clear()
            self.ruled[key] = found
        return found

    def knows(self, user_id: str | None, anonymous_id: str | None) -> bool:
        """The model has history for this customer (or never-identified visitor)."""
        return self.service.knows(user_id or (f"anon:{anonymous_id}" if anonymous_id else None))


def build_site_state(
    site_id: int,
    bundle: ModelBundle | None,
    view: CatalogueView,
    candidates: int,
    previous_version: str | None = None,
) -> SiteState:
    """A ready-to-serve state: the service plus the popular and trending lists."""
    service = RecommendationService(bundle, view.catalogue)
    # Longer lists than entries hold: category filters cut deeper into fallback lists.
    depth = max(candidates * 4, 200)
    popular = service.popular(depth)
    trending = service.popular(depth, trending=True)
    return SiteState(
        site_id,
        bundle,
        view,
        service,
        popular.as_candidates(),
        trending.as_candidates(),
        popular.source,
        trending.source,
        previous_version,
        depth=depth,
    )


class SiteStates(SiteHoldings):
    """Every site's state in this process, loaded on first use and kept current by two threads."""

    def __init__(
        self,
        engine: sa.Engine,
        client: redis.Redis | None,
        models_dir: str | os.PathLike,
        settings: ServingSettings,
        local: LocalCache,
        segment_source: SegmentSource | None = None,
    ):
        self.engine, self.redis, self.settings = engine, client, settings
        self.hold_segments(segment_source)
        self.models_dir = Path(models_dir)
        self.local = local  # what invalidations evict from
        self._sites: dict[int, SiteState] = {}
        self.models = ModelWatch(lambda site_id: self.registry(site_id).root)
        self._books: dict[int, RuleBook] = {}
        self._opt_outs: dict[int, set[str]] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listening = threading.Event()  # set while invalidations are being received

    def registry(self, site_id: int) -> ModelRegistry:
        """A site's model registry (``<models_dir>/<site_id>``)."""
        return ModelRegistry(self.models_dir / str(site_id))

    def _current_link(self, site_id: int) -> str | None:
        try:
            return os.readlink(self.registry(site_id).current_link)
        except OSError:
            return None

    def state(self, site_id: int) -> SiteState:
        """The site's serving state, loaded on first use."""
        found = self._sites.get(site_id)
        if found is not None:
            return found
        self._ensure_threads()
        with self._lock:
            if site_id not in self._sites:
                self.reload_opt_outs(site_id)
                self._load(site_id, reload_catalogue=True)
                if self.segment_source is not None:
                    self.load_segments(site_id)  # in the background: never on a request
            return self._sites[site_id]

    def _load(self, site_id: int, reload_catalogue: bool) -> None:
        """(Re)build a site's state; the old one keeps serving until the swap."""
        old = self._sites.get(site_id)
        link = self._current_link(site_id)
        bundle = old.bundle if old is not None else None
        previous = old.previous_version if old is not None else None
        if old is None or self.models.moved(site_id, link):
            # No current link: no model (yet, or removed). A link that does not load (a broken
            # folder) keeps the model already serving.
            fresh = ModelBundle.current(self.registry(site_id).root) if link else None
            self.models.tried(site_id, link, fresh)  # erased rows blanked, or a failure noted
            if fresh is not None or link is None or old is None:
                if old is not None and old.version != (fresh.version if fresh else None):
                    previous = old.version
                bundle = fresh
        view = old.view if old is not None else None
        if reload_catalogue or view is None:
            loaded = CatalogueView.load(self.engine, site_id)
            if view is not None and loaded.same_as(view):
                view.loaded_at = loaded.loaded_at  # unchanged: keep the state's encoded answers
            else:
                view = loaded
        if (
            old is not None
            and bundle is old.bundle
            and view is old.view
            and previous == old.previous_version
        ):
            self.models.handled(site_id, link)
            return
        state = build_site_state(site_id, bundle, view, self.settings.candidates, previous)
        self._sites[site_id] = state
        self.models.handled(site_id, link)
        if old is not None and old.version != state.version:
            log.info("site %s now serves model %s", site_id, state.version)

    def refresh(self, site_id: int, catalogue: bool = False) -> SiteState:
        """Pick up a new model version, erased rows (and the catalogue when asked) now."""
        self.state(site_id)
        with self._lock:
            self._load(site_id, reload_catalogue=catalogue)
            self._apply_forgotten(site_id)
        return self._sites[site_id]

    def _apply_forgotten(self, site_id: int) -> int:
        """Blank the rows erased from the version served, when its list changed; rows."""
        state = self._sites.get(site_id)
        bundle = state.bundle if state is not None else None
        return self.models.apply_forgotten(site_id, bundle) if bundle is not None else 0

    def _maintain(self) -> None:
        """Background thread: new model versions, catalogue refreshes."""
        s = self.settings
        while not self._stop.wait(min(s.model_check, s.catalogue_refresh)):
            for site_id in list(self._sites):
                try:
                    state = self._sites[site_id]
                    stale = time.monotonic() - state.view.loaded_at >= s.catalogue_refresh
                    moved = self.models.moved(site_id, self._current_link(site_id))
                    with self._lock:
                        if stale or moved:
                            self._load(site_id, reload_catalogue=stale)
                        self._apply_forgotten(site_id)  # a lost message, caught up
                    if stale and site_id in self._books:  # a lost rules message, caught up
                        self.reload_rules(site_id, if_moved=True)
                    if stale:  # a lost personalisation message, caught up
                        self.reload_opt_outs(site_id)
                    announced = site_id in self._segments_moved
                    if (stale or announced) and site_id in self._segments:
                        # A new value snapshot (announced, or a lost message caught up): read
                        # here, off the listener, as a million customers take seconds.
                        self._segments_moved.discard(site_id)
                        self.reload_segments(site_id, if_moved=not announced)
                except Exception:  # keep serving the old state; try again next round
                    log.exception("could not refresh site %s", site_id)

    def _listen(self) -> None:
        """Background thread: invalidations from the ingest worker, catalogue changes."""
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(
                    INVALIDATION_CHANNEL,
                    CATALOGUE_CHANNEL,
                    forgotten.CHANNEL,
                    RULES_CHANNEL,
                    opt_outs.PERSONALISATION_CHANNEL,
                    *([self.segment_source.channel] if self.segment_source else []),
                )
                pubsub.get_message(timeout=1.0, ignore_subscribe_messages=False)  # confirmed
                # Whatever was published while we were not listening is lost: start clean.
                self.local.clear()
                for site_id in list(self._books):
                    self.reload_rules(site_id, if_moved=True)
                for site_id in list(self._opt_outs):
                    self.reload_opt_outs(site_id)
                self.listening.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.25)
                    if message is not None:
                        self._on_message(message)
            except Exception as e:  # Redis gone or restarting: reconnect, never die
                self.listening.clear()
                if self._stop.is_set():
                    return
                log.debug("invalidation listener: %s; reconnecting", e)
                self.local.clear()
                self._stop.wait(0.5)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # closing a broken connection
                        pass

    def _on_message(self, message: Mapping[str, Any]) -> None:
        channel = message["channel"].decode()
        data = message["data"].decode()
        if channel == INVALIDATION_CHANNEL:
            keys = []
            for line in data.split("\n"):
                site, _, visitor = line.partition("\t")
                if site.isdigit() and visitor:
                    keys.append((int(site), visitor))
            self.local.evict(keys)
        elif channel == CATALOGUE_CHANNEL and data.isdigit() and int(data) in self._sites:
            with self._lock:
                self._load(int(data), reload_catalogue=True)
        elif channel == forgotten.CHANNEL and data.isdigit() and int(data) in self._sites:
            with self._lock:
                self._apply_forgotten(int(data))
        elif channel == RULES_CHANNEL and data.isdigit() and int(data) in self._books:
            self.reload_rules(int(data))
        elif (
            self.segment_source is not None
            and channel == self.segment_source.channel
            and data.isdigit()
            and (int(data) in self._segments or int(data) in self._segment_loads)
        ):
            self._segments_moved.add(int(data))
        elif channel == opt_outs.PERSONALISATION_CHANNEL:
            change = opt_outs.parse_message(data)
            if change is not None:
                self.note_opt_out(*change)

    def note_opt_out(self, site_id: int, user_id: str, personalised: bool) -> None:
        """Apply one customer's personalisation change here now (as the channel's message does)."""
        found = self._opt_outs.get(site_id)
        if found is not None:
            (found.discard if personalised else found.add)(user_id)
            self.local.evict([(site_id, f"u:{user_id}")])

    def _ensure_threads(self) -> None:
        """Start the background threads once per process (gunicorn forks after import)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._threads = [
                threading.Thread(target=self._maintain, name="ecrm-models", daemon=True)
            ]
            if self.redis is not None:
                self._threads.append(
                    threading.Thread(target=self._listen, name="ecrm-invalidate", daemon=True)
                )
            for thread in self._threads:
                thread.start()

    def close(self) -> None:
        """Stop the background threads (waiting briefly for them)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads = []
