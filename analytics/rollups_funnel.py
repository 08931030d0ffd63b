"""Funnel bookkeeping of the rollups: each session's steps (funnel_sessions) and rollup_funnel.

Product Viewed -> Product Added -> Checkout Started -> Order Completed, per session and top-level
category, counted on the day the session started (analytics.funnel reads the counts). One
funnel_sessions row per session (analytics migration 120) holds the steps seen as bits, for every
category together and for each top-level category, so an increment is counted once whatever the
order in which events arrive. :func:`count_funnel` is the ingest hook's part
(analytics.rollups_events finds the bits in its one pass over a batch); the rebuild
(analytics.rollups_rebuild) uses the same definitions.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from analytics.rollups_sql import Deltas, Upserts, day_of, read, replace_rows, top_category
from analytics.schema import funnel_sessions
from tracking.db import batches
from tracking.schema import sessions

if TYPE_CHECKING:
    from analytics.rollups_events import Scanned

FUNNEL_STEPS = {
    "Product Viewed": 1,
    "Product Added": 2,
    "Checkout Started": 3,
    "Order Completed": 4,
}
FUNNEL_COUNTERS = ("viewed", "added", "checkout", "ordered")


def funnel_bits(row: dict[str, Any]) -> dict[str, int]:
    """The funnel step bits this event sets, per category ('' and its products' top levels)."""
    found: dict[str, int] = {}
    or_funnel_bits(found, row)
    return found


def or_funnel_bits(bits: dict[str, int], row: dict[str, Any]) -> None:
    """OR the step bits of one event into ``bits`` (per category, as :func:`funnel_bits`).

    One call per funnel event of every batch, so no dict is built for it.
    """
    step = FUNNEL_STEPS.get(row["event"]) if row["type"] == "track" else None
    if step is None:
        return
    bit = 1 << (step - 1)
    bits[""] = bits.get("", 0) | bit
    properties = (row["payload"] or {}).get("properties") or {}
    if step <= 2:  # a product's own category (most funnel events)
        top = top_category(properties.get("category"))
        if top:
            bits[top] = bits.get(top, 0) | bit
        return
    products = properties.get("products")
    for product in products if isinstance(products, list) else ():
        if isinstance(product, dict):
            top = top_category(product.get("category"))
            if top:
                bits[top] = bits.get(top, 0) | bit


def _furthest(bits: int) -> int:
    step = 0
    while step < 4 and bits & (1 << step):
        step += 1
    return step


_FURTHEST = tuple(_furthest(bits) for bits in range(16))


def furthest_step(bits: int) -> int:
    """The furthest step whose predecessors were all seen (bits 1, 2, 4, 8 -> steps 1..4)."""
    return _FURTHEST[bits & 15]


def add_funnel(deltas: Deltas, day, category: str, step: int, sessions_moved: int) -> None:
    """Count (``sessions_moved`` > 0) or take back (< 0) sessions at ``step`` on ``day``."""
    if step:
        amounts = {name: sessions_moved for name in FUNNEL_COUNTERS[:step]}
        deltas.add((day, category), **amounts)


def count_funnel(
    conn: sa.Connection,
    deltas: Deltas,
    site_id: int,
    scanned: Scanned,
    upserts: Upserts | None = None,
) -> None:
    """funnel_sessions and rollup_funnel for the sessions of stored events.

    A session counts on the day it started; an earlier event arriving late can move that day,
    and then the session's counts move with it. The sessions this batch began
    (tracking.store.StoredBatch.new_sessions) have no funnel state yet and start at their first
    row (``scanned.first``, :func:`count_events`).
    """
    touched, first = scanned.touched, scanned.first
    if not touched:
        return
    # The stored state and start of the sessions begun before this batch, in one read.
    state: dict[str, tuple[date, dict[str, int]]] = {}
    started: dict[str, datetime] = dict(first)
    older = [session_id for session_id in touched if session_id not in first]
    f, s = funnel_sessions.c, sessions.c

    def query(match):
        on = sa.and_(f.site_id == sa.bindparam("site_id"), f.session_id == s.session_id)
        return (
            sa.select(s.session_id, s.started_at, f.day, f.steps, f.categories)
            .select_from(sessions.outerjoin(funnel_sessions, on))
            .where(match(s.session_id, "sessions"))
        )

    for chunk in batches(conn, older):
        for row in read(conn, "funnel", query, {"site_id": site_id, "sessions": chunk}):
            started[row["session_id"]] = row["started_at"]
            if row["day"] is not None:
                state[row["session_id"]] = (
                    row["day"],
                    categories_of(row["steps"], row["categories"]),
                )
    moves: Counter[tuple] = Counter()  # (day, category, step): sessions counted (+) or taken back
    changed = []
    # Sessions with no funnel step, before or now, have nothing to count or move.
    for session_id in sorted(touched):
        new_bits = touched[session_id]
        old_day, old_bits = state.get(session_id, (None, {}))
        if not new_bits and old_day is None:
            continue
        day = day_of(started[session_id])
        bits = dict(old_bits)
        for category, bit in new_bits.items():
            bits[category] = bits.get(category, 0) | bit
        if old_day == day and bits == old_bits:
            continue
        for category, now in bits.items():
            before = old_bits.get(category)
            if before == now and old_day == day:
                continue
            step = _FURTHEST[before] if before is not None else 0
            if step:
                moves[(old_day, category, step)] -= 1
            step = _FURTHEST[now]
            if step:
                moves[(day, category, step)] += 1
        changed.append(funnel_row(site_id, session_id, day, bits))
    for (day, category, step), sessions_moved in moves.items():
        add_funnel(deltas, day, category, step, sessions_moved)
    replace_rows(conn, funnel_sessions, changed, upserts)


def categories_text(bits: dict[str, int]) -> str:
    """funnel_sessions.categories of a session's step bits per category ('' is ``steps``)."""
    return orjson.dumps(
        {category: b for category, b in bits.items() if category}, option=orjson.OPT_SORT_KEYS
    ).decode()


def categories_of(steps: int, categories: str) -> dict[str, int]:
    """A session's step bits per category ('' for all) from its funnel_sessions row."""
    return {"": steps, **orjson.loads(categories)}


def funnel_row(site_id: int, session_id: str, day: date, bits: dict[str, int]) -> dict[str, Any]:
    """The funnel_sessions row of a session started on ``day`` with these step bits."""
    steps = bits.get("", 0)
    return {
        "site_id": site_id,
        "session_id": session_id,
        "day": day,
        "step": furthest_step(steps),
        "steps": steps,
        "categories": categories_text(bits),
    }
