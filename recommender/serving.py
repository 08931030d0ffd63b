"""The serving layer: recommendations from a two-level cache in front of the model, never failing.

A request looks in three places, cheapest first:

1. **This process** (``LocalCache``): the candidate list decoded, for ``local_ttl`` seconds or until
   an invalidation arrives on :data:`tracking.activity.INVALIDATION_CHANNEL` (a listener thread
   drops the visitor's entry the moment the ingest worker stores their events).
2. **Redis**: ``ecrm:recs:<site>:<version>:<visitor>`` (the key carries the model version), written
   after each training by :meth:`ServingLayer.precompute` and on every miss. An entry remembers the
   visitor's generation counter (:func:`tracking.activity.generation_key`) at the time it was
   computed; one ``MGET`` reads both, and an entry whose generation has moved is void. Entries
   older than ``fresh_seconds`` (or left by the previous model version just after a swap) are
   served stale while a background thread recomputes them (stale-while-revalidate). Redis TTLs
   carry +-10% jitter, so entries written together do not expire together.
3. **The model**: one computation per key at a time, in this process (a lock per key) and across
   processes (``SET NX`` lock; the others wait briefly for its result, then compute themselves
   rather than fail). The visitor's newest events (:func:`tracking.activity.recent_key`) are folded
   in, so a view or a purchase changes the next answer without a retrain.

Entries hold a ranked candidate list longer than any response; the request's own filters
(``n``, category, excluded ids, the context item) and the catalogue's current state (hidden,
inactive, out of stock, erased: reloaded every ``catalogue_refresh`` seconds) are applied on every
response, cached or not.

It never fails: without Redis it answers from the in-process model (and says ``X-Ecrm-Cache:
none``); without a model, popular items or the catalogue (``source`` says ``fallback``); for an
unknown visitor, trending. Holdout visitors get popularity only. A new model version (the
registry's ``current`` link moved) is loaded by a background thread and swapped in whole, so
requests see the old model or the new one, never an error.

This module never imports Flask; ``webapp.recommend`` is its HTTP face.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis
import sqlalchemy as sa

from recommender.registry import ModelRegistry
from recommender.rules import Catalogue, Rules, catalogue_from_rows
from recommender.answers import ModelBundle, Recommendations, RecommendationService
from tracking.activity import (
    CATALOGUE_CHANNEL,
    INVALIDATION_CHANNEL,
    generation_key,
    recent_key,
)
from tracking.holdout import in_holdout

log = logging.getLogger("ecrm.recommender.serving")

COLD = "cold"  # a local entry meaning "no history: serve the site's trending list"
MEMO_LIMIT = 256  # encoded answers kept per entry or per site state
MAX_REVALIDATING = 32  # background recomputations queued per process
_SERIALS = itertools.count(1)
# The compare-and-set that keeps a slow computation from overwriting a newer generation's entry.
SET_IF_GENERATION = """
local g = redis.call('GET', KEYS[2]) or '0'
if g == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"""
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class ServingSettings:
    """Cache sizes and times; ``webapp.recommend`` fills them from the app's configuration."""

    candidates: int = 60  # kept per entry: room for the request's filters
    local_ttl: float = 60.0
    local_max: int = 10_000
    fresh_seconds: float = 900.0
    redis_ttl: float = 24 * 3600.0
    ttl_jitter: float = 0.1
    catalogue_refresh: float = 15.0
    model_check: float = 1.0
    holdout_share: float = 0.0
    redis_retry_seconds: float = 2.0  # after a Redis error, skip Redis this long
    lock_ms: int = 5_000
    wait_for_peer: float = 0.3  # how long a miss waits for another process's computation


@dataclass
class Answer:
    """One response before it is encoded: ``items`` carry the catalogue's details."""

    source: str
    model_version: str | None
    items: list[dict[str, Any]]
    holdout: bool = False
    cache: str = "none"  # local | redis | miss | none
    extra: dict[str, Any] = field(default_factory=dict)
    body: bytes | None = None  # answer_dict(self) encoded, when already known


@dataclass
class CatalogueView:
    """A site's catalogue as served: rule arrays plus the details a response shows."""

    catalogue: Catalogue
    details: dict[str, dict[str, Any]]
    loaded_at: float

    @classmethod
    def load(cls, engine: sa.Engine, site_id: int) -> CatalogueView:
        """Read the site's items (one query)."""
        from tracking.schema import items

        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    items.c.item_id,
                    items.c.title,
                    items.c.category,
                    items.c.price,
                    items.c.currency,
                    items.c.url,
                    items.c.image_url,
                    items.c.active,
                    items.c.hidden,
                    items.c.in_stock,
                    items.c.attributes,
                )
                .where(items.c.site_id == site_id)
                .order_by(items.c.item_id)
            ).all()
        details = {}
        for r in rows:
            details[r.item_id] = {
                "item_id": r.item_id,
                "title": r.title,
                "price": float(r.price) if r.price is not None else None,
                "currency": r.currency,
                "url": r.url,
                "image_url": r.image_url,
            }
        catalogue = catalogue_from_rows(rows)
        return cls(catalogue, details, time.monotonic())

    def same_as(self, other: CatalogueView) -> bool:
        """Nothing a response shows or filters on differs."""
        mine, theirs = self.catalogue, other.catalogue
        return (
            self.details == other.details
            and np.array_equal(mine.servable, theirs.servable)
            and np.array_equal(mine.category, theirs.category)
            and mine.flags.keys() == theirs.flags.keys()
            and all(np.array_equal(mine.flags[k], theirs.flags[k]) for k in mine.flags)
        )

    def servable(self, item_id: str) -> bool:
        """Known, active, not hidden and in stock."""
        position = self.catalogue.index.get(item_id)
        return position is not None and bool(self.catalogue.servable[position])

    def in_category(self, item_id: str, prefix: str) -> bool:
        """The item's category is ``prefix`` or below it."""
        category = self.catalogue.category[self.catalogue.index[item_id]]
        return category == prefix or category.startswith(prefix + "/")


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


def _candidates(found: Recommendations) -> list[list[Any]]:
    return [
        [item_id, round(float(score), 6), reason]
        for item_id, score, reason in zip(found.item_ids, found.scores, found.reasons, strict=True)
    ]


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
        _candidates(popular),
        _candidates(trending),
        popular.source,
        trending.source,
        previous_version,
    )


class LocalCache:
    """This process's small cache: (site, visitor) -> (expires, entry); evicts oldest first."""

    def __init__(self, ttl: float, max_entries: int):
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: OrderedDict[tuple[int, str], tuple[float, dict]] = OrderedDict()
        self._evicted: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str], version: str | None) -> dict | None:
        """A live entry for this model version, or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        expires, entry = found
        if expires < time.monotonic() or entry.get("v") != version:
            return None
        return entry

    def put(
        self, key: tuple[int, str], entry: dict, computed_since: float, raw: bytes | None = None
    ) -> None:
        """Keep ``entry`` unless the key was invalidated after ``computed_since`` began.

        The candidate list is kept encoded (a few KB instead of some 15 KB of Python objects)
        and decoded only when a new request shape needs it (see :func:`candidates_of`).
        """
        if "c" in entry:
            # The memo of encoded answers is shared, so what this request encodes is kept too.
            entry = {k: v for k, v in entry.items() if k not in ("c", "_m", "_raw")} | {
                "raw": raw if raw is not None else orjson.dumps({"c": entry["c"]}),
                "_m": entry.setdefault("_m", {}),
            }
        with self._lock:
            if self._evicted.get(key, -1.0) >= computed_since:
                return
            self._entries[key] = (time.monotonic() + self.ttl, entry)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def evict(self, keys: Iterable[tuple[int, str]]) -> None:
        """Drop entries (an invalidation arrived); remember when, for racing computations."""
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)
                self._evicted[key] = now
            if len(self._evicted) > 4 * self.max_entries:
                horizon = now - 60.0
                self._evicted = {k: t for k, t in self._evicted.items() if t >= horizon}

    def clear(self) -> None:
        """Forget everything (the invalidation stream was interrupted)."""
        now = time.monotonic()
        with self._lock:
            for key in self._entries:
                self._evicted[key] = now
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def candidates_of(entry: dict) -> list[list[Any]]:
    """An entry's ranked [item_id, score, reason] list, decoded if the local cache encoded it."""
    found = entry.get("c")
    return found if found is not None else orjson.loads(entry["raw"])["c"]


def recs_key(site_id: int, version: str | None, visitor: str) -> str:
    """The Redis key of a visitor's cached candidates under one model version."""
    return f"ecrm:recs:{site_id}:{version or '-'}:{visitor}"


class ServingLayer:
    """Recommendations for every site of one deployment; one instance per process."""

    def __init__(
        self,
        engine: sa.Engine,
        client: redis.Redis | None,
        models_dir: str | os.PathLike,
        settings: ServingSettings | None = None,
    ):
        self.engine, self.redis = engine, client
        self.models_dir = Path(models_dir)
        self.settings = settings or ServingSettings()
        self.local = LocalCache(self.settings.local_ttl, self.settings.local_max)
        self._sites: dict[int, SiteState] = {}
        self._links: dict[int, str | None] = {}
        self._site_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        self._redis_down_until = 0.0
        self._pid: int | None = None
        self._stop = threading.Event()
        self._refreshing: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        self.listening = threading.Event()  # set while invalidations are being received
        self._set_if_generation = client.register_script(SET_IF_GENERATION) if client else None
        self._release_lock = client.register_script(RELEASE_LOCK) if client else None

    # Model and catalogue state

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
        with self._site_lock:
            if site_id not in self._sites:
                self._load(site_id, reload_catalogue=True)
            return self._sites[site_id]

    def _load(self, site_id: int, reload_catalogue: bool) -> None:
        """(Re)build a site's state; the old one keeps serving until the swap."""
        old = self._sites.get(site_id)
        link = self._current_link(site_id)
        bundle = old.bundle if old is not None else None
        previous = old.previous_version if old is not None else None
        if old is None or link != self._links.get(site_id):
            # No current link: no model (yet, or removed). A link that does not load (a broken
            # folder) keeps the model already serving.
            fresh = ModelBundle.current(self.registry(site_id).root) if link else None
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
            self._links[site_id] = link
            return
        state = build_site_state(site_id, bundle, view, self.settings.candidates, previous)
        self._sites[site_id] = state
        self._links[site_id] = link
        if old is not None and old.version != state.version:
            log.info("site %s now serves model %s", site_id, state.version)

    def refresh(self, site_id: int, catalogue: bool = False) -> SiteState:
        """Pick up a new model version (and the catalogue when asked) now."""
        self.state(site_id)
        with self._site_lock:
            self._load(site_id, reload_catalogue=catalogue)
        return self._sites[site_id]

    def _maintain(self) -> None:
        """Background thread: new model versions, catalogue refreshes."""
        s = self.settings
        while not self._stop.wait(min(s.model_check, s.catalogue_refresh)):
            for site_id in list(self._sites):
                try:
                    state = self._sites[site_id]
                    stale = time.monotonic() - state.view.loaded_at >= s.catalogue_refresh
                    moved = self._current_link(site_id) != self._links.get(site_id)
                    if stale or moved:
                        with self._site_lock:
                            self._load(site_id, reload_catalogue=stale)
                except Exception:  # keep serving the old state; try again next round
                    log.exception("could not refresh site %s", site_id)

    def _listen(self) -> None:
        """Background thread: invalidations from the ingest worker, catalogue changes."""
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(INVALIDATION_CHANNEL, CATALOGUE_CHANNEL)
                pubsub.get_message(timeout=1.0, ignore_subscribe_messages=False)  # confirmed
                # Whatever was published while we were not listening is lost: start clean.
                self.local.clear()
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
            with self._site_lock:
                self._load(int(data), reload_catalogue=True)

    def _ensure_threads(self) -> None:
        """Start the background threads once per process (gunicorn forks after import)."""
        if self._pid == os.getpid():
            return
        with self._site_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop = threading.Event()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecrm-revalidate")
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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads = []

    # Redis, guarded: an error means "no Redis for a moment", never a failed request

    def _redis_ok(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, error: Exception) -> None:
        log.warning("Redis unavailable for recommendations (%s); serving from the model", error)
        self._redis_down_until = time.monotonic() + self.settings.redis_retry_seconds

    def _ttl_ms(self) -> int:
        jitter = 1.0 + random.uniform(-self.settings.ttl_jitter, self.settings.ttl_jitter)
        return int(self.settings.redis_ttl * jitter * 1000)

    # Requests

    def recommend(
        self,
        site_id: int,
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        n: int = 10,
        category: str | None = None,
        exclude: Sequence[str] = (),
        context_item: str | None = None,
    ) -> Answer:
        """Recommendations for a customer (``user_id``) or a visitor (``anonymous_id``)."""
        state = self.state(site_id)
        # The encoded answer is kept with the entry it came from (or, for lists shared by many
        # visitors, with the site's state), per request shape: a repeat costs a dict lookup.
        # A catalogue reload builds a new state, so its serial retires every such copy.
        shape = (state.serial, n, category, tuple(exclude), context_item)
        if in_holdout(site_id, anonymous_id or user_id, self.settings.holdout_share):
            entry, cache = {"v": state.version}, "none"
            candidates, source, memo, key = state.popular, state.popular_source, state.memo, shape
            holdout = True
        else:
            visitor = f"u:{user_id}" if user_id else f"a:{anonymous_id}"
            entry, cache = self._entry(state, visitor, user_id, anonymous_id)
            holdout = False
            entry.pop("_raw", None)
            if entry.get(COLD):
                candidates, source = state.trending, state.trending_source
                memo, key = state.memo, ("trending", *shape)
            else:
                candidates, source = None, entry["s"]
                memo, key = entry.setdefault("_m", {}), shape
        version = entry.get("v", state.version)
        body = memo.get(key)
        if body is None:
            if candidates is None:
                candidates = candidates_of(entry)
            answer = self._finish(state, candidates, source, n, category, exclude, context_item)
            answer.model_version, answer.holdout = version, holdout
            body = orjson.dumps(answer_dict(answer))
            if len(memo) < MEMO_LIMIT:
                memo[key] = body
        return Answer(source, version, [], holdout, cache, body=body)

    def similar_items(
        self,
        site_id: int,
        item_id: str,
        *,
        visitor_id: str | None = None,
        n: int = 10,
        category: str | None = None,
        exclude: Sequence[str] = (),
    ) -> Answer:
        """ "Customers who bought this also bought" (cached in this process per item)."""
        state = self.state(site_id)
        if in_holdout(site_id, visitor_id, self.settings.holdout_share):
            answer = self._finish(
                state, state.popular, state.popular_source, n, category, exclude, item_id
            )
            answer.holdout = True
            return answer
        key = (site_id, f"i:{item_id}")
        entry, cache = self.local.get(key, state.version), "local"
        if entry is None:
            started = time.monotonic()
            found = state.service.similar_items(item_id, self.settings.candidates)
            entry = {"v": state.version, "s": found.source, "c": _candidates(found)}
            self.local.put(key, entry, started)
            cache = "miss"
        answer = self._finish(
            state, candidates_of(entry), entry["s"], n, category, exclude, item_id
        )
        answer.cache = cache
        return answer

    def similar_customers(
        self,
        site_id: int,
        user_id: str,
        *,
        k: int = 10,
        n: int = 10,
        category: str | None = None,
        exclude: Sequence[str] = (),
    ) -> Answer:
        """The k most similar customers and what they bought (for the shop's backend; uncached)."""
        state = self.state(site_id)
        found = state.service.similar_customers(user_id, k=k, n=self.settings.candidates)
        answer = self._finish(state, _candidates(found), found.source, n, category, exclude, None)
        answer.extra["customers"] = [
            {"user_id": c, "similarity": round(s, 6)}
            for c, s in zip(
                found.extra.get("customers", []), found.extra.get("similarity", []), strict=True
            )
        ]
        return answer

    # The cache

    def _entry(
        self, state: SiteState, visitor: str, user_id: str | None, anonymous_id: str | None
    ) -> tuple[dict, str]:
        key = (state.site_id, visitor)
        entry = self.local.get(key, state.version)
        if entry is not None:
            return entry, "local"
        started = time.monotonic()
        generation = 0
        if self._redis_ok():
            try:
                found, generation, stale = self._from_redis(state, visitor)
            except redis.RedisError as e:
                self._redis_failed(e)
            else:
                if found is not None:
                    if stale:
                        self._revalidate(state, visitor, user_id, anonymous_id)
                    else:
                        self.local.put(key, found, started, raw=found.pop("_raw", None))
                    return found, "redis"
                if generation == 0 and not self._known(state, user_id, anonymous_id):
                    # Nothing stored about them, no model history: trending, at the cost of the
                    # one MGET. Not kept locally: such ids are mostly seen once.
                    return {COLD: True, "v": state.version}, "miss"
                entry = self._single_flight(state, visitor, user_id, anonymous_id, generation)
                self.local.put(key, entry, started)
                return entry, "miss"
        # No Redis: the in-process model, without the newest events (they live in Redis).
        entry = self._compute(state, user_id, anonymous_id, recent=[])
        self.local.put(key, entry, started)
        return entry, "none"

    def _from_redis(self, state: SiteState, visitor: str) -> tuple[dict | None, int, bool]:
        """(entry, generation, stale): the current version's entry, else the previous one's.

        The entry's encoded form is kept under ``"_raw"`` for the local cache.
        """
        site_id = state.site_id
        keys = [recs_key(site_id, state.version, visitor), generation_key(site_id, visitor)]
        if state.previous_version:
            keys.append(recs_key(site_id, state.previous_version, visitor))
        values = self.redis.mget(keys)
        generation = int(values[1] or 0)
        for position, raw in ((0, values[0]), (2, values[2] if len(values) > 2 else None)):
            if raw is None:
                continue
            entry = orjson.loads(raw)
            if entry.get("g") != generation:
                continue
            stale = position == 2 or time.time() - entry["t"] > self.settings.fresh_seconds
            entry["_raw"] = raw
            return entry, generation, stale
        return None, generation, False

    def _key_lock(self, key: str) -> threading.Lock:
        with self._key_locks_guard:
            lock = self._key_locks.get(key)
            if lock is None:
                if len(self._key_locks) > 10_000:
                    self._key_locks = {k: v for k, v in self._key_locks.items() if v.locked()}
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _single_flight(
        self,
        state: SiteState,
        visitor: str,
        user_id: str | None,
        anonymous_id: str | None,
        generation: int,
    ) -> dict:
        """Compute a missing entry once: one thread here, one process across the deployment."""
        key = recs_key(state.site_id, state.version, visitor)
        with self._key_lock(key):
            # Another thread of this process may have just computed it.
            found, generation, stale = self._from_redis(state, visitor)
            if found is not None and not stale:
                return found
            token = uuid.uuid4().hex
            lock_key = "ecrm:lock:" + key
            if not self.redis.set(lock_key, token, nx=True, px=self.settings.lock_ms):
                deadline = time.monotonic() + self.settings.wait_for_peer
                while time.monotonic() < deadline:
                    time.sleep(0.01)
                    found, _, _ = self._from_redis(state, visitor)
                    if found is not None:
                        return found
                token = None  # the other process is slow: compute ourselves rather than wait
            try:
                # Generation 0: the ingest worker never published them, so no recent events.
                recent = self._recent(state, visitor, anonymous_id) if generation else []
                entry = self._compute(state, user_id, anonymous_id, recent, generation)
                if not entry.get(COLD):
                    self._set_if_generation(
                        keys=[key, generation_key(state.site_id, visitor)],
                        args=[orjson.dumps(entry), str(generation), self._ttl_ms()],
                    )
                return entry
            finally:
                if token is not None:
                    self._release_lock(keys=[lock_key], args=[token])

    def _revalidate(
        self, state: SiteState, visitor: str, user_id: str | None, anonymous_id: str | None
    ) -> None:
        """Recompute a stale entry in the background (once per key per process)."""
        key = recs_key(state.site_id, state.version, visitor)
        if key in self._refreshing or self._pool is None:
            return
        if len(self._refreshing) >= MAX_REVALIDATING:
            # After a model swap every visitor is stale at once: a bounded backlog keeps this
            # process serving (stale answers meanwhile) instead of recomputing all of them.
            return
        self._refreshing.add(key)

        def work():
            try:
                _, generation, _ = self._from_redis(state, visitor)
                self._single_flight(state, visitor, user_id, anonymous_id, generation)
            except Exception as e:  # the stale entry keeps serving
                log.warning("revalidating %s failed: %s", key, e)
            finally:
                self._refreshing.discard(key)

        self._pool.submit(work)

    def _recent(self, state: SiteState, visitor: str, anonymous_id: str | None) -> list[dict]:
        """The visitor's item events newer than the model's data."""
        keys = [recent_key(state.site_id, visitor)]
        if anonymous_id and visitor != f"a:{anonymous_id}":
            keys.append(recent_key(state.site_id, f"a:{anonymous_id}"))
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.lrange(key, 0, -1)
        since = state.trained_until
        events = []
        for rows in pipe.execute():
            for raw in rows:
                event = orjson.loads(raw)
                if event.get("timestamp", 0) > since:
                    events.append(event)
        events.sort(key=lambda e: e["timestamp"])
        return events

    @staticmethod
    def _known(state: SiteState, user_id: str | None, anonymous_id: str | None) -> bool:
        """The model has history for this customer (or never-identified visitor)."""
        if state.bundle is None:
            return False
        model_user = user_id or (f"anon:{anonymous_id}" if anonymous_id else None)
        return model_user in state.service._user_row

    def _traits(self, site_id: int, user_id: str | None) -> dict[str, Any]:
        if not user_id:
            return {}
        from tracking.schema import customers

        with self.engine.connect() as conn:
            traits = conn.execute(
                sa.select(customers.c.traits).where(
                    customers.c.site_id == site_id, customers.c.user_id == user_id
                )
            ).scalar()
        return traits if isinstance(traits, dict) else {}

    def _compute(
        self,
        state: SiteState,
        user_id: str | None,
        anonymous_id: str | None,
        recent: list[dict],
        generation: int = 0,
    ) -> dict:
        """A visitor's candidate list from the model (or a COLD marker: serve trending)."""
        service = state.service
        model_user = user_id or (f"anon:{anonymous_id}" if anonymous_id else None)
        if not recent and not self._known(state, user_id, anonymous_id):
            return {COLD: True, "v": state.version}
        purchased = [e["item_id"] for e in recent if e.get("event") == "Order Completed"]
        found = service.recommend_for_customer(
            model_user,
            self.settings.candidates,
            rules=Rules(),
            traits=self._traits(state.site_id, user_id),
            recent_events=recent,
            purchased=purchased,
        )
        return {
            "g": generation,
            "t": time.time(),
            "v": state.version,
            "s": found.source,
            "c": _candidates(found),
        }

    def _finish(
        self,
        state: SiteState,
        candidates: list[list[Any]],
        source: str,
        n: int,
        category: str | None,
        exclude: Sequence[str],
        context_item: str | None,
    ) -> Answer:
        """Apply the request's filters and the catalogue's current state; add item details."""
        view = state.view
        skip = set(exclude)
        if context_item:
            skip.add(context_item)
        items: list[dict[str, Any]] = []
        picked: set[str] = set()

        def take(pool: list[list[Any]], fill_reason: str | None) -> None:
            for item_id, score, reason in pool:
                if len(items) >= n:
                    return
                if item_id in skip or item_id in picked or not view.servable(item_id):
                    continue
                if category and not view.in_category(item_id, category):
                    continue
                picked.add(item_id)
                items.append(
                    view.details[item_id]
                    | {"reason": fill_reason or reason, "score": score, "position": len(items) + 1}
                )

        take(candidates, None)
        if len(items) < n and candidates is not state.popular:
            # The request's filters left gaps: fill them with popular items, labelled as such.
            take(state.popular, None)
        return Answer(source, state.version, items)


def answer_dict(answer: Answer) -> dict[str, Any]:
    """The fields an Answer contributes to a response body (besides rec_id and placement)."""
    return {
        "model_version": answer.model_version,
        "source": answer.source,
        "holdout": answer.holdout,
        "items": answer.items,
        **answer.extra,
    }


def precompute(
    layer: ServingLayer,
    site_id: int,
    user_ids: Iterable[str] | None = None,
    *,
    active_days: float = 30.0,
    limit: int | None = 50_000,
    budget_seconds: float = 120.0,
    batch: int = 500,
    bundle_path: str | os.PathLike | None = None,
) -> int:
    """After a training: cache candidates for recently active customers (pipelined writes).

    ``user_ids`` defaults to the model's customers active in the last ``active_days`` of its data,
    most recent first, at most ``limit``. Returns how many entries were written; stops at
    ``budget_seconds``. ``bundle_path`` names a committed version to warm before it is promoted;
    by default the current version is warmed.
    """
    if bundle_path is not None:
        # A version not yet current (train's before_promote): its answers are in Redis before
        # any web process switches to it.
        state = build_site_state(
            site_id,
            ModelBundle.load(bundle_path),
            CatalogueView.load(layer.engine, site_id),
            layer.settings.candidates,
        )
    else:
        state = layer.refresh(site_id)
    if state.bundle is None or layer.redis is None:
        return 0
    if user_ids is None:
        user_ids = recently_active(state.bundle, active_days, limit)
    deadline = time.monotonic() + budget_seconds
    written = 0
    pending: list[str] = []
    for user_id in user_ids:
        pending.append(user_id)
        if len(pending) >= batch:
            written += _precompute_batch(layer, state, pending)
            pending = []
            if time.monotonic() > deadline:
                log.info("precompute stopped at its %.0f s budget", budget_seconds)
                return written
    if pending:
        written += _precompute_batch(layer, state, pending)
    return written


def _precompute_batch(layer: ServingLayer, state: SiteState, user_ids: list[str]) -> int:
    visitors = [f"a:{u[5:]}" if u.startswith("anon:") else f"u:{u}" for u in user_ids]
    site_id = state.site_id
    generations = layer.redis.mget([generation_key(site_id, v) for v in visitors])
    pipe = layer.redis.pipeline(transaction=False)
    count = 0
    for user_id, visitor, raw in zip(user_ids, visitors, generations, strict=True):
        generation = int(raw or 0)
        anonymous_id = visitor[2:] if visitor.startswith("a:") else None
        recent = layer._recent(state, visitor, anonymous_id) if raw else []
        entry = layer._compute(
            state, None if anonymous_id else user_id, anonymous_id, recent, generation
        )
        if entry.get(COLD):
            continue
        layer._set_if_generation(
            keys=[recs_key(site_id, state.version, visitor), generation_key(site_id, visitor)],
            args=[orjson.dumps(entry), str(generation), layer._ttl_ms()],
            client=pipe,
        )
        count += 1
    pipe.execute()
    return count


def recently_active(
    bundle: ModelBundle, active_days: float | None = None, limit: int | None = None
) -> list[str]:
    """The model's users active in the last ``active_days`` of its data, most recent first."""
    interactions = bundle.interactions
    users = np.asarray(interactions.user_ids, dtype=object)
    if interactions.last_seen is not None and interactions.last_seen.nnz:
        latest = interactions.last_seen.max(axis=1).toarray().ravel()
        order = np.argsort(-latest, kind="stable")
        if active_days is not None:
            horizon = latest.max() - active_days * 86400.0
            order = order[latest[order] >= horizon]
        users = users[order]
    return list(users[:limit] if limit else users)
