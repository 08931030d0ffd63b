"""The serving facade: ``ServingLayer``, what the recommendation API calls; it never fails.

A request looks in three places, cheapest first: this process's cache, then Redis (both in
:mod:`recommender.answer_cache`), then the model (:mod:`recommender.answers`, folding in the
visitor's newest events, so a view or a purchase changes the next answer without a retrain). The
site's model and catalogue come from :mod:`recommender.site_state`; after a training,
:mod:`recommender.precompute` fills Redis for the recently active customers.

A placement's merchandising rules (:mod:`recommender.rule_store`, held in memory per site and
reloaded on every change) are applied when an entry is computed, and their fingerprint is part
of the entry's key: a rules change, or a campaign starting or ending, makes the next request
compute afresh, in every process. The fallback lists are filtered by the same rules.

Entries hold a ranked candidate list longer than any response; the request's own filters
(``n``, category, excluded ids, the context item) and the catalogue's current state (hidden,
inactive, out of stock, erased: reloaded every ``catalogue_refresh`` seconds) are applied here on
every response, cached or not.

It never fails: without Redis it answers from the in-process model (and says ``X-Ecrm-Cache:
none``); without a model, popular items or the catalogue (``source`` says ``fallback``); for an
unknown visitor, trending. Holdout visitors get popularity only. A new model version is loaded by
a background thread and swapped in whole, so requests see the old model or the new one, never an
error.

A customer who turned personalisation off (:mod:`recommender.opt_outs`) is served the popular
list with ``source`` ``personalisation_off``, from the site's shared answers: no entry of theirs
is read, computed or written. The check is a lookup in the site's in-memory set.

This module never imports Flask; ``webapp.recommend`` is its HTTP face.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
import sqlalchemy as sa

from recommender.answer_cache import COLD, AnswerCache, LocalCache, candidates_of
from recommender.answers import Recommendations
from recommender.rules import Rules
from recommender.site_holdings import SegmentSource
from recommender.site_state import SiteState, SiteStates
from tracking.holdout import in_holdout

MEMO_LIMIT = 256  # encoded answers kept per entry or per site state
PERSONALISATION_OFF = "personalisation_off"  # the source of answers to customers who opted out
VIP_ONLY = "vip_only"  # the source of the empty answer of a VIPs' own placement to anyone else


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
    # The customer's segment and VIP flag (newest value snapshot), None when unscored: only
    # for the shop's server (the HTTP face adds it to server-key answers), never in ``body``.
    customer: dict[str, Any] | None = None


def answer_dict(answer: Answer) -> dict[str, Any]:
    """The fields an Answer contributes to a response body (besides rec_id and placement)."""
    return {
        "model_version": answer.model_version,
        "source": answer.source,
        "holdout": answer.holdout,
        "items": answer.items,
        **answer.extra,
    }


class ServingLayer:
    """Recommendations for every site of one deployment; one instance per process, made of the
    sites' states (:class:`SiteStates`), this process's cache (:class:`LocalCache`) and the Redis
    cache (:class:`AnswerCache`); it says what an entry holds (:meth:`_compute`) and shapes each
    response (:func:`_finish`)."""

    def __init__(
        self,
        engine: sa.Engine,
        client: redis.Redis | None,
        models_dir: str | os.PathLike,
        settings: ServingSettings | None = None,
        segment_source: SegmentSource | None = None,
    ):
        self.engine, self.redis = engine, client
        self._settings = settings or ServingSettings()
        self.local = LocalCache(self._settings.local_ttl, self._settings.local_max)
        self.sites = SiteStates(
            engine, client, models_dir, self._settings, self.local, segment_source
        )
        self.cache = AnswerCache(client, self._settings, self.local)
        self.listening = self.sites.listening  # set while invalidations are being received

    @property
    def settings(self) -> ServingSettings:
        """Cache sizes and times; a replacement reaches every part."""
        return self._settings

    @settings.setter
    def settings(self, settings: ServingSettings) -> None:
        self._settings = self.sites.settings = self.cache.settings = settings

    def state(self, site_id: int) -> SiteState:
        """The site's serving state, loaded on first use."""
        return self.sites.state(site_id)

    def refresh(self, site_id: int, catalogue: bool = False) -> SiteState:
        """Pick up a new model version (and the catalogue when asked) now."""
        return self.sites.refresh(site_id, catalogue)

    def close(self) -> None:
        """Stop the background threads (waiting briefly for them)."""
        self.sites.close()
        self.cache.close()

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
        placement: str | None = None,
    ) -> Answer:
        """Recommendations for a customer or a visitor (a VIP: the placement's VIP variant)."""
        state = self.sites.state(site_id)
        customer = self.customer_segment(site_id, user_id)
        off = user_id in self.sites.opted_out(site_id)
        vip = bool(customer and customer["vip"]) and not off
        rules, fingerprint = self.sites.rules(site_id).resolve(placement, vip=vip)
        holdout = in_holdout(site_id, anonymous_id or user_id, self._settings.holdout_share)
        if rules.vip.only:  # the VIPs' own placement, asked for someone else: nothing to show
            return Answer(VIP_ONLY, state.version, [], holdout, "none", customer=customer)
        popular, trending, popular_source, trending_source = state.fallbacks(rules, fingerprint)
        # The encoded answer is kept with the entry it came from (or, for lists shared by many
        # visitors, with the site's state), per request shape: a repeat costs a dict lookup.
        # A catalogue reload builds a new state, so its serial retires every such copy.
        shape = (state.serial, fingerprint, n, category, tuple(exclude), context_item)
        if off or holdout:
            entry, cache = {"v": state.version}, "none"
            source = PERSONALISATION_OFF if off else popular_source
            candidates, memo, key = popular, state.memo, (source, holdout, *shape)
        else:
            visitor = f"u:{user_id}" if user_id else f"a:{anonymous_id}"
            entry, cache = self._entry(state, visitor, user_id, anonymous_id, rules, fingerprint)
            entry.pop("_raw", None)
            if entry.get(COLD):
                candidates, source = trending, trending_source
                memo, key = state.memo, ("trending", *shape)
            else:
                candidates, source = None, entry["s"]
                memo, key = entry.setdefault("_m", {}), shape
        version = entry.get("v", state.version)
        body = memo.get(key)
        if body is None:
            if candidates is None:
                candidates = candidates_of(entry)
            answer = _finish(
                state, candidates, source, n, category, exclude, context_item, popular, rules
            )
            answer.model_version, answer.holdout = version, holdout
            body = orjson.dumps(answer_dict(answer))
            if len(memo) < MEMO_LIMIT:
                memo[key] = body
        return Answer(source, version, [], holdout, cache, body=body, customer=customer)

    def customer_segment(self, site_id: int, user_id: str | None) -> dict[str, Any] | None:
        """``{"segment", "vip"}`` of a scored customer (in memory), else None."""
        segments = self.sites.segments(site_id) if user_id else None
        return segments.lookup(user_id) if segments is not None else None

    def similar_items(
        self,
        site_id: int,
        item_id: str,
        *,
        visitor_id: str | None = None,
        n: int = 10,
        category: str | None = None,
        exclude: Sequence[str] = (),
        placement: str | None = None,
    ) -> Answer:
        """ "Customers who bought this also bought" (cached in this process per item)."""
        state = self.sites.state(site_id)
        rules, fingerprint = self.sites.rules(site_id).resolve(placement)
        popular, _, popular_source, _ = state.fallbacks(rules, fingerprint)
        if in_holdout(site_id, visitor_id, self._settings.holdout_share):
            answer = _finish(
                state, popular, popular_source, n, category, exclude, item_id, popular, rules
            )
            answer.holdout = True
            return answer
        key = (site_id, f"i:{item_id}")
        entry, cache = self.local.get(key, state.version, fingerprint), "local"
        if entry is None:
            started = time.monotonic()
            entry = _similar_entry(state, item_id, self._settings.candidates, rules, fingerprint)
            self.local.put(key, entry, started)
            cache = "miss"
        answer = _finish(
            state, candidates_of(entry), entry["s"], n, category, exclude, item_id, popular, rules
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
        placement: str | None = None,
    ) -> Answer:
        """The k most similar customers and what they bought (for the shop's backend; uncached)."""
        state = self.sites.state(site_id)
        rules, fingerprint = self.sites.rules(site_id).resolve(placement)
        popular = state.fallbacks(rules, fingerprint)[0]
        found = Recommendations([], [], [], PERSONALISATION_OFF)  # popular items fill it
        if user_id not in self.sites.opted_out(site_id):
            found = state.service.similar_customers(
                user_id, k=k, n=self._settings.candidates, rules=rules
            )
        answer = _finish(
            state, found.as_candidates(), found.source, n, category, exclude, None, popular, rules
        )
        answer.extra["customers"] = _similar_list(found)
        return answer

    # What an entry holds

    def _entry(
        self,
        state: SiteState,
        visitor: str,
        user_id: str | None,
        anonymous_id: str | None,
        rules: Rules | None = None,
        fingerprint: str = "",
    ) -> tuple[dict, str]:
        """A visitor's entry and where it came from: local, redis, miss (computed) or none.

        ``rules`` (the defaults if None) and their ``fingerprint`` are the placement's.
        """
        entry = self.local.get((state.site_id, visitor), state.version, fingerprint)
        if entry is not None:
            return entry, "local"
        compute = functools.partial(self._compute, rules=rules, fingerprint=fingerprint)
        return self.cache.get_or_compute(
            state, visitor, user_id, anonymous_id, compute, fingerprint
        )

    def _compute(
        self,
        state: SiteState,
        user_id: str | None,
        anonymous_id: str | None,
        recent: list[dict],
        generation: int = 0,
        *,
        rules: Rules | None = None,
        fingerprint: str = "",
    ) -> dict:
        """A visitor's candidate list from the model under a placement's rules (the defaults
        unless given), or a COLD marker: serve trending."""
        model_user = user_id or (f"anon:{anonymous_id}" if anonymous_id else None)
        if not recent and not state.knows(user_id, anonymous_id):
            return {COLD: True, "v": state.version, "r": fingerprint}
        purchased = [e["item_id"] for e in recent if e.get("event") == "Order Completed"]
        found = state.service.recommend_for_customer(
            model_user,
            self._settings.candidates,
            rules=rules or Rules(),
            traits=customer_traits(self.engine, state.site_id, user_id),
            recent_events=recent,
            purchased=purchased,
        )
        return {
            "g": generation,
            "t": time.time(),
            "v": state.version,
            "r": fingerprint,
            "s": found.source,
            "c": found.as_candidates(),
        }

    def warm(self, state: SiteState, user_ids: list[str]) -> int:
        """Compute and write the Redis entries of these model users under the site's default
        rules (VIPs under its VIP variant); how many were written."""
        written = 0
        for vip, group in _vip_groups(self.sites, state.site_id, user_ids):
            rules, fingerprint = self.sites.rules(state.site_id).resolve(None, vip=vip)
            compute = functools.partial(self._compute, rules=rules, fingerprint=fingerprint)
            written += self.cache.store_many(state, group, compute, fingerprint)
        return written


def _is_vip(customer: dict[str, Any] | None) -> bool:
    return bool(customer and customer["vip"])


def _vip_groups(sites: SiteStates, site_id: int, user_ids: list[str]) -> list[tuple[bool, list]]:
    """The users to warm (personalisation on), as (VIP?, users) groups, empty groups left out."""
    user_ids = [u for u in user_ids if u not in sites.opted_out(site_id)]
    segments = sites.segments(site_id, wait=True)  # a job, not a request: wait for them
    vips = {u for u in user_ids if segments is not None and _is_vip(segments.lookup(u))}
    groups = [(False, [u for u in user_ids if u not in vips]), (True, sorted(vips))]
    return [(vip, group) for vip, group in groups if group]


def _similar_entry(
    state: SiteState, item_id: str, candidates: int, rules: Rules, fingerprint: str
) -> dict[str, Any]:
    """The cache entry of an item's similar items under these rules."""
    found = state.service.similar_items(item_id, candidates, rules=rules)
    return {"v": state.version, "r": fingerprint, "s": found.source, "c": found.as_candidates()}


def _similar_list(found: Recommendations) -> list[dict[str, Any]]:
    """The similar customers of an answer, with their similarity rounded."""
    customers, similarity = found.extra.get("customers", []), found.extra.get("similarity", [])
    return [
        {"user_id": c, "similarity": round(s, 6)}
        for c, s in zip(customers, similarity, strict=True)
    ]


def customer_traits(engine: sa.Engine, site_id: int, user_id: str | None) -> dict[str, Any]:
    """A customer's (verified) traits, for the rules' trait constraints; {} for visitors."""
    if not user_id:
        return {}
    from tracking.customers import with_current_age
    from tracking.schema import customers

    with engine.connect() as conn:
        traits = conn.execute(
            sa.select(customers.c.traits).where(
                customers.c.site_id == site_id, customers.c.user_id == user_id
            )
        ).scalar()
    if not isinstance(traits, dict):
        return {}
    return with_current_age(traits, datetime.now(UTC).date())


def _finish(
    state: SiteState,
    candidates: list[list[Any]],
    source: str,
    n: int,
    category: str | None,
    exclude: Sequence[str],
    context_item: str | None,
    popular: list[list[Any]] | None = None,
    rules: Rules | None = None,
) -> Answer:
    """Apply the request's filters and the catalogue's current state; add item details.

    Gaps are filled from ``popular`` (the placement's rules applied), the state's by default,
    keeping the rules' cap per category over the whole answer.
    """
    popular = state.popular if popular is None else popular
    cap = rules.max_per_category if rules is not None else None
    per_category: dict[str, int] = {}
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
            if cap is not None:
                top = view.top_category(item_id)
                if per_category.get(top, 0) >= cap:
                    continue
                per_category[top] = per_category.get(top, 0) + 1
            picked.add(item_id)
            items.append(
                view.details[item_id]
                | {"reason": fill_reason or reason, "score": score, "position": len(items) + 1}
            )

    take(candidates, None)
    if len(items) < n and candidates is not popular:
        # The request's filters left gaps: fill them with popular items, labelled as such.
        take(popular, None)
    return Answer(source, state.version, items)
