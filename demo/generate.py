"""generate_shop: a seeded demo shop (catalogue, customers, Segment events) from a ShopSpec.

The shop has planted structure a recommender must find: customers belong to taste clusters,
each cluster lives mostly in one or two catalogue categories, popularity inside a cluster follows
Zipf's law, spend across customers follows a Pareto curve, a share of customers buy again, and
groceries get re-bought. Part of the browsing is anonymous and is linked to the customer by a
sign-in (``identify``) later in the same session, so identity stitching has work to do.

Everything is derived from ``ShopSpec.seed``: the same spec gives the same shop, event for event,
including every ``messageId``. Only numpy and the standard library are used, so the benchmarks,
the run command and the tests can all call :func:`generate_shop` directly.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

import numpy as np

from demo.catalogue import Catalogue
from demo.customers import make_customers
from demo.sessions import Simulator
from demo.spec import Shop, ShopSpec


def generate_shop(spec: ShopSpec | None = None) -> Shop:
    """Generate the demo shop described by ``spec`` (the default spec when None)."""
    spec = spec or ShopSpec()
    spec.check()
    start = spec.start if spec.start.tzinfo else spec.start.replace(tzinfo=UTC)
    start_ms = int(start.timestamp() * 1000)
    # Independent streams, so a change in how events are drawn never reshuffles the catalogue.
    streams = np.random.SeedSequence(spec.seed).spawn(4)
    with _gc_paused():
        catalogue = Catalogue(spec, streams[0])
        customers, people = make_customers(spec, start_ms, streams[1])
        simulator = Simulator(spec, catalogue, people, start_ms, streams[2])
        simulator.run()
        events = simulator.log.finish(streams[3])
    return Shop(
        spec=spec,
        items=catalogue.rows,
        customers=customers,
        events=events,
        item_clusters=dict(zip(catalogue.item_ids, catalogue.cluster.tolist(), strict=True)),
    )


def iter_batches(events: list[dict], size: int = 100) -> Iterator[list[dict]]:
    """Yield consecutive chunks of ``size`` events (the last one may be shorter)."""
    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")
    for offset in range(0, len(events), size):
        yield events[offset : offset + size]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while generating."""
    # Millions of new dicts (none in a cycle) would make it rescan the growing heap over and
    # over: about a fifth of the run time at a million events.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
