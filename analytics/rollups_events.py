"""Incremental rollups of stored events: visitors, recommendations, adds after a click, funnel.

Each function takes the events rows one ingest transaction stored (tracking.store.StoredBatch)
and adds what they change, so a redelivered batch (stored nothing) changes nothing. Results do
not depend on the order events arrive in: a late click re-credits the adds it now precedes, and
a session's funnel state is the set of steps it has seen (analytics.rollups_funnel keeps it,
from the bits :func:`count_events` finds).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from analytics.rollups_funnel import FUNNEL_COUNTERS, FUNNEL_STEPS, or_funnel_bits
from analytics.rollups_sql import (
    Deltas,
    Match,
    _top_of,
    day_of,
    read,
    text,
    visitor_of,
)
from analytics.schema import (
    rollup_funnel,
    rollup_rec_items,
    rollup_recs,
    rollup_visitors,
)
from tracking.attribution import RECOMMENDATION_CLICKED, RECOMMENDATION_SHOWN, valid_click
from tracking.db import aware, batches
from tracking.schema import events

PRODUCT_ADDED = "Product Added"


def rec_dims(properties: dict) -> tuple[str, str, str]:
    """(placement, model_version, source) of a recommendation event, as rollups key them."""
    return (
        text(properties.get("placement"), 200),
        text(properties.get("model_version"), 200),
        text(properties.get("source"), 64),
    )


@dataclass
class Scanned:
    """What one pass over a batch's stored rows found for the rollups that read history."""

    adds: list[dict[str, Any]] = field(default_factory=list)  # Product Added, with an item
    clicks: list[dict[str, Any]] = field(default_factory=list)  # valid clicks, with an item
    # Each session's funnel step bits per category (empty for a session with no funnel step),
    # and the earliest stored event of each session this batch began.
    touched: dict[str, dict[str, int]] = field(default_factory=dict)
    first: dict[str, datetime] = field(default_factory=dict)


def count_events(
    d: dict[str, Deltas], rows: list[dict[str, Any]], new_sessions: set[str] = frozenset()
) -> Scanned:
    """One pass over stored events: rollup_visitors' events and holdout flag, impressions and
    clicks per placement, model version, source and group, items shown and clicked; and what
    :func:`count_adds_after_click` and ``rollups_funnel.count_funnel`` go on from
    (:class:`Scanned`).

    One loop rather than one per rollup: the day, visitor and properties of a row are worked
    out once, and the per-row Python is most of what the hook costs the worker.
    """
    events_of: dict[tuple, int] = {}
    in_holdout: set[tuple] = set()
    impressions: Counter[tuple] = Counter()
    clicks: Counter[tuple] = Counter()
    items_shown: Counter[tuple] = Counter()
    items_clicked: Counter[tuple] = Counter()
    shown_at: dict[tuple, list] = {}  # (day, placement): the items each impression listed
    out = Scanned()
    touched, first = out.touched, out.first
    funnel_steps = FUNNEL_STEPS
    dims_of: dict[tuple, tuple[str, str, str]] = {}  # rec_dims by the raw values, per batch
    for row in rows:
        day = row["timestamp"].date()  # day_of, inline: a call per row costs
        visitor = (row["anonymous_id"] or row["user_id"] or "")[:255]  # visitor_of
        if visitor:
            key = (day, visitor)
            events_of[key] = events_of.get(key, 0) + 1
            if row["holdout"]:
                in_holdout.add(key)
        event = row["event"]
        session_id = row["session_id"]
        if session_id is not None:
            bits = touched.get(session_id)
            if bits is None:
                bits = touched[session_id] = {}
            if session_id in new_sessions:
                seen = first.get(session_id)
                if seen is None or row["timestamp"] < seen:
                    first[session_id] = row["timestamp"]
            step = funnel_steps.get(event)
            if step is not None and row["type"] == "track":
                if step <= 2:  # or_funnel_bits, inline for a product's own category
                    bit = 1 << (step - 1)
                    bits[""] = bits.get("", 0) | bit
                    category = ((row["payload"] or {}).get("properties") or {}).get("category")
                    top = _top_of(category) if type(category) is str else ""
                    if top:
                        bits[top] = bits.get(top, 0) | bit
                else:
                    or_funnel_bits(bits, row)
        if event == PRODUCT_ADDED:
            if row["item_id"] is not None:
                out.adds.append(row)
            continue
        if event != RECOMMENDATION_SHOWN and event != RECOMMENDATION_CLICKED:
            continue
        properties = (row["payload"] or {}).get("properties") or {}
        raw = (
            properties.get("placement"),
            properties.get("model_version"),
            properties.get("source"),
        )
        try:
            dims = dims_of.get(raw)
        except TypeError:  # a list or object where a name belongs: not worth keeping
            dims = rec_dims(properties)
        if dims is None:
            dims = dims_of[raw] = rec_dims(properties)
        placement = dims[0]
        key = (day, *dims, bool(row["holdout"]))
        if event == RECOMMENDATION_SHOWN:
            impressions[key] += 1
            shown = properties.get("product_ids")
            if isinstance(shown, list):
                # Each event's items once; counted per day and placement after the loop.
                where = (day, placement)
                listed = shown_at.get(where)
                if listed is None:
                    listed = shown_at[where] = []
                listed += dict.fromkeys(shown)
        else:
            clicks[key] += 1
            if properties.get("product_id") not in (None, ""):
                items_clicked[(day, placement, text(properties["product_id"], 255))] += 1
            if row["item_id"] is not None and valid_click(properties):
                out.clicks.append(row)
    for (day, placement), listed in shown_at.items():
        # Counted in C (Counter of a list), then keyed as text(item_id, 255): the per-item
        # Python of the loop above was the hook's costliest line.
        for item_id, n in Counter(listed).items():
            if item_id is not None and item_id != "":
                items_shown[(day, placement, str(item_id)[:255])] += n
    visitors = d["visitors"]
    visitors.count("events", events_of)
    for key in in_holdout:
        visitors.add(key, {"holdout": True})
    d["recs"].count("impressions", impressions)
    d["recs"].count("clicks", clicks)
    d["rec_items"].count("impressions", items_shown)
    d["rec_items"].count("clicks", items_clicked)
    return out


_COLUMNS = (
    events.c.id,
    events.c.message_id,
    events.c.event,
    events.c.anonymous_id,
    events.c.user_id,
    events.c.item_id,
    events.c.timestamp,
    events.c.holdout,
    # Only a click's properties are used (its placement, model version and source): the
    # whole payload of every row, decoded, was a twentieth of the hook's time; an add's
    # properties, most of the rows read, are not sent.
    sa.case(
        (events.c.event == RECOMMENDATION_CLICKED, events.c.payload["properties"]),
    ).label("properties"),
)


@dataclass
class Wanted:
    """Stored events of one name by these visitors on these items between two times, but (on
    PostgreSQL) none whose message id is in ``skip``: one part of :func:`_select`."""

    event: str
    by_column: dict[str, set[str]]  # visitors by the column holding them (:func:`_visitors`)
    items: set[str]
    start: datetime
    end: datetime
    skip: set[str] = field(default_factory=set)


def _select(conn: sa.Connection, site_id: int, parts: list[Wanted]) -> list[list[dict[str, Any]]]:
    """The stored events each part wants, read together: one query per visitor column, so each
    uses its index (ix_events_anonymous, ix_events_user) or one pass over the parts' times.

    Read apart, the clicks and the adds cost two passes over the same rows (PostgreSQL plans the
    store of a new shop, without statistics yet, by time alone). SQLite reads one part at a
    time, its visitors in IN lists of tracking.db.batches' size, and what ``skip`` names.
    """
    found: list[dict[int, dict]] = [{} for _ in parts]
    visitors = [p.by_column["anonymous_id"] | p.by_column["user_id"] for p in parts]
    pg = conn.dialect.name == "postgresql"
    for by in ("anonymous_id", "user_id"):
        chosen = [i for i, p in enumerate(parts) if p.by_column[by]]
        # Each read: (part, its visitors) for the parts it holds. PostgreSQL: every part, each
        # list whole; SQLite: one part and one IN list at a time.
        if pg:
            reads = [[(i, sorted(parts[i].by_column[by])) for i in chosen]] if chosen else []
        else:
            reads = [[(i, ids)] for i in chosen for ids in batches(conn, parts[i].by_column[by])]
        for held in reads:
            present = tuple(i for i, _ in held)
            skips = tuple(pg and bool(parts[i].skip) for i in present)
            values: dict[str, Any] = {
                "site_id": site_id,
                "start": min(parts[i].start for i in present),
                "end": max(parts[i].end for i in present),
            }
            for (i, ids), skip in zip(held, skips, strict=True):
                p = parts[i]
                values |= {
                    f"ids{i}": ids,
                    f"event{i}": p.event,
                    f"items{i}": sorted(p.items),
                    f"start{i}": p.start,
                    f"end{i}": p.end,
                }
                if skip:
                    values[f"skip{i}"] = sorted(p.skip)
            query = functools.partial(_wanted, by=by, present=present, skips=skips)
            for row in read(conn, ("events", by, present, skips), query, values):
                for i in present:
                    # The visitor is the anonymous id, else the user id: exact matches only.
                    if row["event"] == parts[i].event and (
                        visitor_of(row["anonymous_id"], row["user_id"]) in visitors[i]
                    ):
                        row["timestamp"] = aware(row["timestamp"])
                        found[i][row["id"]] = row
    return [list(rows.values()) for rows in found]


def _wanted(match: Match, by: str, present: tuple[int, ...], skips: tuple[bool, ...]) -> sa.Select:
    """:func:`_select`'s query of the parts ``present`` (parameters numbered by part)."""
    when = events.c.timestamp

    def part(i: int, skip: bool) -> sa.ColumnElement[bool]:
        # The event first: PostgreSQL tests them in this order, and it turns most rows away.
        conditions = [
            events.c.event == sa.bindparam(f"event{i}", type_=events.c.event.type),
            match(events.c[by], f"ids{i}"),
            match(events.c.item_id, f"items{i}"),
            when >= sa.bindparam(f"start{i}", type_=when.type),
            when <= sa.bindparam(f"end{i}", type_=when.type),
        ]
        if skip:
            conditions.append(sa.not_(match(events.c.message_id, f"skip{i}")))
        return sa.and_(*conditions)

    return sa.select(*_COLUMNS).where(
        events.c.site_id == sa.bindparam("site_id"),
        when >= sa.bindparam("start", type_=when.type),
        when <= sa.bindparam("end", type_=when.type),
        sa.or_(*[part(i, skip) for i, skip in zip(present, skips, strict=True)]),
    )


def credited_click(
    add: dict[str, Any], clicks: list[dict[str, Any]], window: timedelta
) -> dict[str, Any] | None:
    """The last valid click on the added item by the same visitor, within the window before it."""
    moment = add["timestamp"]
    candidates = [c for c in clicks if moment - window <= c["timestamp"] <= moment]
    # Of clicks at the same moment, the greatest message id (the rebuild's order too): the
    # batch's own clicks are in hand, without the row ids the store gives them.
    return max(candidates, key=lambda c: (c["timestamp"], c["message_id"]), default=None)


def _pair(row: dict[str, Any]) -> tuple[str, str]:
    """(visitor, item) of an event row: whose click can credit whose add."""
    return visitor_of(row["anonymous_id"], row["user_id"]), row["item_id"]


def _visitors(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The visitors of these rows by the column that holds them (for :func:`_select`): the
    anonymous id, or the user id on events that have none."""
    return {
        "anonymous_id": {r["anonymous_id"] for r in rows if r["anonymous_id"]},
        "user_id": {r["user_id"] for r in rows if not r["anonymous_id"] and r["user_id"]},
    }


def count_adds_after_click(
    conn: sa.Connection,
    recs: Deltas,
    site_id: int,
    new_ids: set[str],
    window: timedelta,
    scanned: Scanned,
) -> None:
    """adds_after_click: new adds, and stored adds a newly stored (late) click now precedes.

    Each affected add moves from the click that credited it before this batch (none for a new
    add) to the one that credits it now. The stored clicks and adds come from one read of the
    store (:func:`_select`: the clicks by these visitors on these items in the window around
    the batch, the adds its clicks may now credit), filtered here to what each needs.
    ``scanned`` holds the batch's own adds and valid clicks (:func:`count_events`), ``new_ids``
    the message ids of every event it stored.
    """
    # The batch's rows carry aware times (tracking.store); those read back are made aware.
    adds, clicks = list(scanned.adds), scanned.clicks
    if not adds and not clicks:
        return
    # Clicks credit adds up to a window later; a late click's adds come after it, and the
    # clicks that credit those adds up to a window before them.
    moments = [a["timestamp"] for a in adds] + [c["timestamp"] for c in clicks]
    # Two parts, each of one event, in one read (_select): the clicks by the visitors of the
    # batch's adds and clicks on their items, and only where the batch has clicks, the adds by
    # those clicks' visitors on those clicks' items. One part of both events for every visitor
    # and item was twice the rows; the batch's own clicks and adds are left out (in hand).
    wanted = [
        Wanted(
            RECOMMENDATION_CLICKED,
            _visitors(clicks + adds),
            {r["item_id"] for r in clicks + adds},
            min(moments) - window,
            max(moments) + window,
            skip={c["message_id"] for c in clicks},  # in hand (a tenth of the rows read back)
        )
    ]
    if clicks:  # stored adds of the same visitor and item that a new click may now credit
        click_pairs = {_pair(c) for c in clicks}
        wanted.append(
            Wanted(
                PRODUCT_ADDED,
                _visitors(clicks),
                {c["item_id"] for c in clicks},
                min(c["timestamp"] for c in clicks),
                max(c["timestamp"] for c in clicks) + window,
                skip={a["message_id"] for a in scanned.adds},
            )
        )
    stored, *later = _select(conn, site_id, wanted)
    if later:
        # This batch's own adds are read back too: the rows in hand stand for them.
        adds += [a for a in later[0] if a["message_id"] not in new_ids and _pair(a) in click_pairs]
    # Every stored click on an added item by its visitor; credited_click keeps those in window.
    valid = {c["message_id"]: c for c in stored if valid_click(c["properties"])}
    for click in clicks:  # valid, with an item (count_events); SQLite has read them back too
        valid[click["message_id"]] = dict(click, properties=click["payload"]["properties"])
    clicks_of: dict[tuple[str, str], list[dict]] = {}
    for click in valid.values():
        clicks_of.setdefault(_pair(click), []).append(click)
    for add in adds:
        mine = clicks_of.get(_pair(add), [])
        now = credited_click(add, mine, window)
        before = None
        if add["message_id"] not in new_ids:
            before = credited_click(
                add, [c for c in mine if c["message_id"] not in new_ids], window
            )
        if (now and now["message_id"]) == (before and before["message_id"]):
            continue
        day, holdout = day_of(add["timestamp"]), bool(add["holdout"])
        for click, sign in ((before, -1), (now, 1)):
            if click is not None:
                dims = rec_dims(click["properties"])
                recs.add((day, *dims, holdout), adds_after_click=sign)


def event_deltas() -> dict[str, Deltas]:
    """Empty deltas of the tables this module writes."""
    return {
        "visitors": Deltas(rollup_visitors, ["events", "orders"], flags=["holdout"]),
        "recs": Deltas(rollup_recs, ["served", "impressions", "clicks", "adds_after_click"]),
        "rec_items": Deltas(rollup_rec_items, ["impressions", "clicks"]),
        "funnel": Deltas(rollup_funnel, FUNNEL_COUNTERS),
    }
