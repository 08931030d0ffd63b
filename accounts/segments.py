"""Customer segments (issue 14): a definition over the newest value snapshot and the SQL tables,
saved by name per site, its members with a live count, and exports with a held-back control.

A :class:`Definition` names what a member must satisfy, every condition at once:

- ``segments`` (RFM segment names) and ``cells`` (R-F quintile cells such as ``5-4``): a member
  is in one of the named segments or cells (either list may be empty);
- ``clv_min``/``clv_max`` and ``p_alive_min``/``p_alive_max``: ranges, inclusive; a customer
  whose models could not be fitted has neither and fails any bound on them;
- ``last_order_days_min``/``_max``: whole days from the last order to the end of the snapshot's
  day (0: an order that day);
- ``last_visit_days_min``/``_max``: the same for the last visit (the newest
  ``sessions.last_seen_at`` of the customer's user id); no visit fails any bound;
- ``category``: ordered (an order line's category) or viewed (a ``Product Viewed`` event of an
  item of the catalogue's category) in that category or one under it (``Home`` covers
  ``Home/Kitchen``, not ``Homeware``);
- ``traits``: name -> a value the verified trait must equal, or ``{"min": a, "max": b}``;
- ``consent_channel`` (+ ``consent_topic``, default ``offers``): the customer currently allows
  that channel x topic (accounts.preferences: their newest choice, else the topic's default).

Unknown fields and impossible ranges are :class:`SegmentError` naming the field. Members come from
the snapshot of one currency (``currency``, default the snapshot's first): accounts.segment_members
computes them, accounts.segment_exports exports them, accounts.segment_report compares an export's
targets with its control. No Flask.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from accounts import preferences
from analytics import rfm
from analytics.value_schema import (
    segments,
)
from tracking.errors import FieldError

MAX_NAME = 100
MAX_TRAITS = 10
MAX_DAYS = 36500
MAX_CONTROL_SHARE = 0.5
CELL = re.compile(r"([1-5])\s*-\s*([1-5])")
NAME = re.compile(r"[^\x00-\x1f]{1,100}")
FIELDS = (
    "segments",
    "cells",
    "clv_min",
    "clv_max",
    "p_alive_min",
    "p_alive_max",
    "last_order_days_min",
    "last_order_days_max",
    "last_visit_days_min",
    "last_visit_days_max",
    "category",
    "traits",
    "consent_channel",
    "consent_topic",
    "currency",
)


class SegmentError(FieldError):
    """A segment definition, name or export that cannot be accepted."""


class UnknownSegment(LookupError):
    """No segment with that id on this site."""


@dataclass(frozen=True)
class Definition:
    """What a member satisfies (see the module's docstring); None or empty: no condition."""

    segments: tuple[str, ...] = ()
    cells: tuple[str, ...] = ()  # "r-f"
    clv_min: float | None = None
    clv_max: float | None = None
    p_alive_min: float | None = None
    p_alive_max: float | None = None
    last_order_days_min: int | None = None
    last_order_days_max: int | None = None
    last_visit_days_min: int | None = None
    last_visit_days_max: int | None = None
    category: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    consent_channel: str | None = None
    consent_topic: str = "offers"
    currency: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["segments"], out["cells"] = list(self.segments), list(self.cells)
        return out


def number(name: str, value: Any, low: float, high: float, whole: bool = False):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SegmentError(name, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SegmentError(name, "must be a number") from None
    if not math.isfinite(number) or number < low or number > high:
        raise SegmentError(name, f"must be from {low:g} to {high:g}")
    if whole:
        if number != int(number):
            raise SegmentError(name, "must be a whole number of days")
        return int(number)
    return number


def _pair(data: dict, low_name: str, high_name: str, low: float, high: float, whole=False):
    a = number(low_name, data.get(low_name), low, high, whole)
    b = number(high_name, data.get(high_name), low, high, whole)
    if a is not None and b is not None and a > b:
        raise SegmentError(high_name, f"must not be below the minimum ({a:g})")
    return a, b


def _list(name: str, value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SegmentError(name, "must be a list of names")
    return [v.strip() for v in value if v.strip()]


def parse(data: Any) -> Definition:
    """A definition from JSON-like ``data``; :class:`SegmentError` naming the first bad field."""
    if not isinstance(data, dict):
        raise SegmentError("definition", "must be an object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise SegmentError(unknown[0], f"unknown field (known: {', '.join(FIELDS)})")
    names = _list("segments", data.get("segments"))
    for name in names:
        if name not in rfm.SEGMENT_CELLS:
            raise SegmentError("segments", f"no RFM segment {name!r}")
    cells = []
    for cell in _list("cells", data.get("cells")):
        match = CELL.fullmatch(cell)
        if match is None:
            raise SegmentError("cells", f"{cell!r} is not a cell: write R-F, each 1 to 5 (5-4)")
        cells.append(f"{match[1]}-{match[2]}")
    clv = _pair(data, "clv_min", "clv_max", 0, 1e12)
    p_alive = _pair(data, "p_alive_min", "p_alive_max", 0, 1)
    order = _pair(data, "last_order_days_min", "last_order_days_max", 0, MAX_DAYS, True)
    visit = _pair(data, "last_visit_days_min", "last_visit_days_max", 0, MAX_DAYS, True)
    category = data.get("category") or None
    if category is not None:
        if not isinstance(category, str) or len(category) > 500 or "\x00" in category:
            raise SegmentError("category", "must be a category name of up to 500 characters")
        category = category.strip().strip("/") or None
    traits = data.get("traits") or {}
    if not isinstance(traits, dict) or len(traits) > MAX_TRAITS:
        raise SegmentError("traits", f"must be an object of up to {MAX_TRAITS} traits")
    checked: dict[str, Any] = {}
    for key, want in traits.items():
        where = f"traits.{key}"
        if not key or len(key) > 100:
            raise SegmentError("traits", "trait names are 1 to 100 characters")
        if isinstance(want, dict):
            if set(want) - {"min", "max"} or not want:
                raise SegmentError(where, 'a range is {"min": number, "max": number}')
            try:
                low, high = _pair(want, "min", "max", -1e15, 1e15)
            except SegmentError as e:
                raise SegmentError(f"{where}.{e.field}", e.reason) from None
            checked[key] = {"min": low, "max": high}
        elif isinstance(want, (str, int, float, bool)):
            checked[key] = want
        else:
            raise SegmentError(where, "must be a text, number or true/false, or a range")
    channel = data.get("consent_channel") or None
    if channel is not None and channel not in preferences.CHANNELS:
        raise SegmentError("consent_channel", f"must be one of {', '.join(preferences.CHANNELS)}")
    topic = data.get("consent_topic") or "offers"
    if not isinstance(topic, str) or not preferences.TOPIC_NAME.fullmatch(topic):
        raise SegmentError("consent_topic", "lower-case letters, digits and _, 1-40 characters")
    currency = data.get("currency") or None
    if currency is not None:
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise SegmentError("currency", "must be a three-letter currency code")
        currency = currency.upper()
    return Definition(
        segments=tuple(names),
        cells=tuple(cells),
        clv_min=clv[0],
        clv_max=clv[1],
        p_alive_min=p_alive[0],
        p_alive_max=p_alive[1],
        last_order_days_min=order[0],
        last_order_days_max=order[1],
        last_visit_days_min=visit[0],
        last_visit_days_max=visit[1],
        category=category,
        traits=checked,
        consent_channel=channel,
        consent_topic=topic,
        currency=currency,
    )


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name.strip() or "\x00"):
        raise SegmentError("name", f"1 to {MAX_NAME} characters, no control characters")
    return name.strip()


# -- Saved segments -------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    id: int
    site_id: int
    name: str
    definition: Definition
    updated_at: datetime
    updated_by: str | None


def _segment(row) -> Segment:
    return Segment(
        row.id, row.site_id, row.name, parse(row.definition), row.updated_at, row.updated_by
    )


def save(
    conn: sa.Connection,
    site_id: int,
    name: str,
    definition: Definition,
    by: str | None = None,
    segment_id: int | None = None,
) -> int:
    """Store ``definition`` as ``name`` (a new segment, or ``segment_id`` replaced); its id."""
    name = check_name(name)
    taken = conn.execute(
        sa.select(segments.c.id).where(segments.c.site_id == site_id, segments.c.name == name)
    ).scalar()
    if taken is not None and taken != segment_id:
        raise SegmentError("name", "another segment of this site has that name")
    values = {
        "name": name,
        "definition": definition.as_json(),
        "updated_at": datetime.now(UTC),
        "updated_by": by,
    }
    if segment_id is None:
        return conn.execute(
            segments.insert().values(site_id=site_id, **values)
        ).inserted_primary_key[0]
    done = conn.execute(
        segments.update()
        .where(segments.c.site_id == site_id, segments.c.id == segment_id)
        .values(**values)
    )
    if done.rowcount != 1:
        raise UnknownSegment(segment_id)
    return segment_id


def get(conn: sa.Connection, site_id: int, segment_id: int) -> Segment:
    row = conn.execute(
        sa.select(segments).where(segments.c.site_id == site_id, segments.c.id == segment_id)
    ).first()
    if row is None:
        raise UnknownSegment(segment_id)
    return _segment(row)


def listing(conn: sa.Connection, site_id: int) -> list[Segment]:
    rows = conn.execute(
        sa.select(segments).where(segments.c.site_id == site_id).order_by(segments.c.name)
    )
    return [_segment(r) for r in rows]
