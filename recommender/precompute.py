"""Precomputation after a training: cache the recently active customers' answers in Redis.

The ``train`` command calls :func:`precompute` for a new version before promoting it (a site's
first version right after), so web processes switching to it find its answers already cached
instead of recomputing every visitor at once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from recommender.answers import ModelBundle
from recommender.catalogue_view import CatalogueView
from recommender.site_state import build_site_state

if TYPE_CHECKING:
    from recommender.serving import ServingLayer

log = logging.getLogger("ecrm.recommender.serving")


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
            written += layer.warm(state, pending)
            pending = []
            if time.monotonic() > deadline:
                log.info("precompute stopped at its %.0f s budget", budget_seconds)
                return written
    if pending:
        written += layer.warm(state, pending)
    return written


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
    users = users[users != None]  # noqa: E711 (blank rows: erased customers)
    return list(users[:limit] if limit else users)
