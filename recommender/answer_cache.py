"""The recommendation cache: this process's LRU, Redis entries under versioned keys, single flight.

An entry is a visitor's ranked candidate list (``{"g", "t", "v", "s", "c"}``: generation, time
computed, model version, source, ``[[item_id, score, reason], ...]``), longer than any response;
or ``{COLD: True}``, meaning "no history: serve the site's trending list". It lives in two places:

1. **This process** (:class:`LocalCache`): for ``local_ttl`` seconds or until an invalidation
   arrives on :data:`tracking.activity.INVALIDATION_CHANNEL` (the listener of
   :class:`~recommender.site_state.SiteStates` drops the visitor's entry the moment the ingest
   worker stores their events).
2. **Redis**: :func:`recs_key` (``ecrm:recs:<site>:<version>:<visitor>``: the key carries the
   model version, so a new model makes old entries stale without a flush, and the fingerprint
   of the placement's merchandising rules when they are not the defaults, so a rules change or
   a campaign's start makes them stale too), written after each
   training by :func:`recommender.precompute.precompute` and on every miss. An entry remembers
   the visitor's generation counter (:func:`tracking.activity.generation_key`) at the time it
   was computed; one ``MGET`` reads both, and an entry whose generation has moved is void.
   Entries older than ``fresh_seconds`` (or left by the previous model version just after a
   swap) are served stale while a background thread recomputes them (stale-while-revalidate).
   Redis TTLs carry +-10% jitter, so entries written together do not expire together.

A miss is computed once per key at a time, in this process (a lock per key) and across processes
(``SET NX`` lock; the others wait briefly for its result, then compute themselves rather than
fail). How an entry is computed is the caller's: every method that may compute takes a
``compute(state, user_id, anonymous_id, recent, generation) -> entry`` callable. A Redis error
means "no Redis for ``redis_retry_seconds``", never a failed request.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import orjson
import redis

from tracking.activity import generation_key, recent_key

if TYPE_CHECKING:
    from recommender.serving import ServingSettings
    from recommender.site_state import SiteState

    Compute = Callable[[SiteState, str | None, str | None, list[dict], int], dict]

log = logging.getLogger("ecrm.recommender.serving")

COLD = "cold"  # a local entry meaning "no history: serve the site's trending list"
MAX_REVALIDATING = 32  # background recomputations queued per process
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


def recs_key(site_id: int, version: str | None, visitor: str, rules: str = "") -> str:
    """The Redis key of a visitor's cached candidates under one model version and rules."""
    version = version or "-"
    return f"ecrm:recs:{site_id}:{version}{'~' + rules if rules else ''}:{visitor}"


def candidates_of(entry: dict) -> list[list[Any]]:
    """An entry's ranked [item_id, score, reason] list, decoded if the local cache encoded it."""
    found = entry.get("c")
    return found if found is not None else orjson.loads(entry["raw"])["c"]


def recent_events(
    client: redis.Redis, state: SiteState, visitor: str, anonymous_id: str | None
) -> list[dict]:
    """The visitor's item events newer than the model's data, from the ingest worker's lists."""
    keys = [recent_key(state.site_id, visitor)]
    if anonymous_id and visitor != f"a:{anonymous_id}":
        keys.append(recent_key(state.site_id, f"a:{anonymous_id}"))
    pipe = client.pipeline(transaction=False)
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


class LocalCache:
    """This process's small cache: (site, visitor) -> (expires, entry); evicts oldest first."""

    def __init__(self, ttl: float, max_entries: int):
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: OrderedDict[tuple[int, str], tuple[float, dict]] = OrderedDict()
        self._evicted: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str], version: str | None, rules: str = "") -> dict | None:
        """A live entry for this model version and rules fingerprint, or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        expires, entry = found
        if expires < time.monotonic() or entry.get("v") != version or entry.get("r", "") != rules:
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


class AnswerCache:
    """Redis entries behind the local cache: read, compute once, revalidate, write."""

    def __init__(self, client: redis.Redis | None, settings: ServingSettings, local: LocalCache):
        self.redis, self.settings, self.local = client, settings, local
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        self._redis_down_until = 0.0
        self._refreshing: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid: int | None = None
        self._pool_guard = threading.Lock()
        self._closed = False
        self._set_if_generation = client.register_script(SET_IF_GENERATION) if client else None
        self._release_lock = client.register_script(RELEASE_LOCK) if client else None

    def get_or_compute(
        self,
        state: SiteState,
        visitor: str,
        user_id: str | None,
        anonymous_id: str | None,
        compute: Compute,
        rules: str = "",
    ) -> tuple[dict, str]:
        """(entry, where from) after a local miss: ``redis``, ``miss`` (computed) or ``none``.

        ``rules`` is the fingerprint of the rules ``compute`` applies (part of the key).
        """
        key = (state.site_id, visitor)
        started = time.monotonic()
        generation = 0
        if self.redis is not None and time.monotonic() >= self._redis_down_until:
            try:
                found, generation, stale = self._from_redis(state, visitor, rules)
            except redis.RedisError as e:
                log.warning("Redis unavailable for recommendations (%s); serving from the model", e)
                self._redis_down_until = time.monotonic() + self.settings.redis_retry_seconds
            else:
                if found is not None:
                    if stale:
                        self._revalidate(state, visitor, user_id, anonymous_id, compute, rules)
                    else:
                        self.local.put(key, found, started, raw=found.pop("_raw", None))
                    return found, "redis"
                if generation == 0 and not state.knows(user_id, anonymous_id):
                    # Nothing stored about them, no model history: trending, at the cost of the
                    # one MGET. Not kept locally: such ids are mostly seen once.
                    return {COLD: True, "v": state.version, "r": rules}, "miss"
                entry = self._single_flight(
                    state, visitor, user_id, anonymous_id, generation, compute, rules
                )
                self.local.put(key, entry, started)
                return entry, "miss"
        # No Redis: the in-process model, without the newest events (they live in Redis).
        entry = compute(state, user_id, anonymous_id, [], 0)
        self.local.put(key, entry, started)
        return entry, "none"

    def _from_redis(
        self, state: SiteState, visitor: str, rules: str = ""
    ) -> tuple[dict | None, int, bool]:
        """(entry, generation, stale): the current version's entry, else the previous one's.

        The entry's encoded form is kept under ``"_raw"`` for the local cache.
        """
        site_id = state.site_id
        keys = [
            recs_key(site_id, state.version, visitor, rules),
            generation_key(site_id, visitor),
        ]
        if state.previous_version:
            keys.append(recs_key(site_id, state.previous_version, visitor, rules))
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
        compute: Compute,
        rules: str = "",
    ) -> dict:
        """Compute a missing entry once: one thread here, one process across the deployment."""
        key = recs_key(state.site_id, state.version, visitor, rules)
        with self._key_lock(key):
            # Another thread of this process may have just computed it.
            found, generation, stale = self._from_redis(state, visitor, rules)
            if found is not None and not stale:
                return found
            token = uuid.uuid4().hex
            lock_key = "ecrm:lock:" + key
            if not self.redis.set(lock_key, token, nx=True, px=self.settings.lock_ms):
                deadline = time.monotonic() + self.settings.wait_for_peer
                while time.monotonic() < deadline:
                    time.sleep(0.01)
                    found, _, _ = self._from_redis(state, visitor, rules)
                    if found is not None:
                        return found
                token = None  # the other process is slow: compute ourselves rather than wait
            try:
                # Generation 0: the ingest worker never published them, so no recent events.
                recent = (
                    recent_events(self.redis, state, visitor, anonymous_id) if generation else []
                )
                entry = compute(state, user_id, anonymous_id, recent, generation)
                if not entry.get(COLD):
                    self._store(state, visitor, entry, generation, rules=rules)
                return entry
            finally:
                if token is not None:
                    self._release_lock(keys=[lock_key], args=[token])

    def _revalidate(
        self,
        state: SiteState,
        visitor: str,
        user_id: str | None,
        anonymous_id: str | None,
        compute: Compute,
        rules: str = "",
    ) -> None:
        """Recompute a stale entry in the background (once per key per process)."""
        key = recs_key(state.site_id, state.version, visitor, rules)
        if key in self._refreshing or self._closed:
            return
        if len(self._refreshing) >= MAX_REVALIDATING:
            # After a model swap every visitor is stale at once: a bounded backlog keeps this
            # process serving (stale answers meanwhile) instead of recomputing all of them.
            return
        self._refreshing.add(key)

        def work():
            try:
                _, generation, _ = self._from_redis(state, visitor, rules)
                self._single_flight(
                    state, visitor, user_id, anonymous_id, generation, compute, rules
                )
            except Exception as e:  # the stale entry keeps serving
                log.warning("revalidating %s failed: %s", key, e)
            finally:
                self._refreshing.discard(key)

        if self._pool_pid != os.getpid():  # one worker thread per process (gunicorn forks)
            with self._pool_guard:
                if self._pool_pid != os.getpid():
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="ecrm-revalidate")
                    self._pool_pid = os.getpid()
        self._pool.submit(work)

    def _store(
        self,
        state: SiteState,
        visitor: str,
        entry: dict,
        generation: int,
        client: Any = None,
        rules: str = "",
    ) -> None:
        """Write an entry unless the visitor's generation moved meanwhile; TTL with jitter."""
        jitter = 1.0 + random.uniform(-self.settings.ttl_jitter, self.settings.ttl_jitter)
        self._set_if_generation(
            keys=[
                recs_key(state.site_id, state.version, visitor, rules),
                generation_key(state.site_id, visitor),
            ],
            args=[
                orjson.dumps(entry),
                str(generation),
                int(self.settings.redis_ttl * jitter * 1000),
            ],
            client=client,
        )

    def store_many(
        self, state: SiteState, user_ids: list[str], compute: Compute, rules: str = ""
    ) -> int:
        """Compute and write the entries of these model users (pipelined); how many were written.

        ``rules``: the fingerprint of the rules ``compute`` applies (the site default's).
        """
        visitors = [f"a:{u[5:]}" if u.startswith("anon:") else f"u:{u}" for u in user_ids]
        site_id = state.site_id
        generations = self.redis.mget([generation_key(site_id, v) for v in visitors])
        pipe = self.redis.pipeline(transaction=False)
        count = 0
        for user_id, visitor, raw in zip(user_ids, visitors, generations, strict=True):
            generation = int(raw or 0)
            anonymous_id = visitor[2:] if visitor.startswith("a:") else None
            recent = recent_events(self.redis, state, visitor, anonymous_id) if raw else []
            entry = compute(
                state, None if anonymous_id else user_id, anonymous_id, recent, generation
            )
            if entry.get(COLD):
                continue
            self._store(state, visitor, entry, generation, client=pipe, rules=rules)
            count += 1
        pipe.execute()
        return count

    def close(self) -> None:
        """Stop the background recomputations (waiting for the one running)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
