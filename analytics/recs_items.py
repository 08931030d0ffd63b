"""Items in recommendations over a period: the most shown, the most clicked, catalogue coverage.

Read from ``rollup_rec_items`` (per day, placement and item: impressions and clicks) and the
``items`` table (titles, and which items are for sale). Part of
:func:`analytics.recommendations.recommendation_report`'s answer:

- ``top_shown`` / ``top_clicked``: up to ``top`` items by impressions (shown lists the item was
  in) / clicks (ties by item id),
  each ``item_id``, ``title`` (None when the item is not in the catalogue), ``impressions``,
  ``clicks`` and ``ctr``;
- ``coverage``: ``items_shown`` (distinct items shown in the period), ``items_shown_for_sale``
  (of those, the ones active and not hidden in the catalogue today), ``catalogue_items`` (active,
  not hidden) and ``coverage`` (items_shown_for_sale / catalogue_items, None for an empty
  catalogue).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from analytics.periods import Period
from analytics.schema import rollup_rec_items
from tracking.schema import items

RANKINGS = ("impressions", "clicks")


def _where(site_id: int, period: Period, placement: str | None) -> list:
    c = rollup_rec_items.c
    where = [c.site_id == site_id, c.day >= period.start, c.day <= period.end]
    if placement is not None:
        where.append(c.placement == placement)
    return where


def _for_sale(site_id: int) -> list:
    return [items.c.site_id == site_id, items.c.active.is_(True), items.c.hidden.is_(False)]


def top_items(
    conn: sa.Connection,
    site_id: int,
    period: Period,
    placement: str | None,
    by: str,
    top: int = 10,
) -> list[dict[str, Any]]:
    """The ``top`` items with the most ``by`` ("impressions" or "clicks"), with their titles."""
    if by not in RANKINGS:
        raise ValueError(f"rank by one of {RANKINGS}, not {by!r}")
    c = rollup_rec_items.c
    impressions = sa.func.sum(c.impressions).label("impressions")
    clicks = sa.func.sum(c.clicks).label("clicks")
    ranked = impressions if by == "impressions" else clicks
    query = (
        sa.select(c.item_id, impressions, clicks)
        .where(*_where(site_id, period, placement))
        .group_by(c.item_id)
        .having(ranked > 0)
        .order_by(ranked.desc(), c.item_id)
        .limit(top)
    )
    rows = conn.execute(query).all()
    titles = (
        dict(
            conn.execute(
                sa.select(items.c.item_id, items.c.title).where(
                    items.c.site_id == site_id, items.c.item_id.in_([row[0] for row in rows])
                )
            ).all()
        )
        if rows
        else {}
    )
    return [
        {
            "item_id": item_id,
            "title": titles.get(item_id),
            "impressions": int(shown or 0),
            "clicks": int(clicked or 0),
            "ctr": int(clicked or 0) / int(shown) if shown else None,
        }
        for item_id, shown, clicked in rows
    ]


def coverage(
    conn: sa.Connection, site_id: int, period: Period, placement: str | None
) -> dict[str, Any]:
    """How much of the catalogue for sale recommendations showed in the period."""
    c = rollup_rec_items.c
    shown = (
        sa.select(c.item_id)
        .where(*_where(site_id, period, placement), c.impressions > 0)
        .distinct()
        .subquery()
    )
    for_sale = sa.and_(items.c.item_id == shown.c.item_id, *_for_sale(site_id))
    items_shown, shown_for_sale = conn.execute(
        sa.select(sa.func.count(), sa.func.count(items.c.item_id)).select_from(
            shown.outerjoin(items, for_sale)
        )
    ).one()
    catalogue = conn.execute(
        sa.select(sa.func.count()).select_from(items).where(*_for_sale(site_id))
    ).scalar_one()
    return {
        "items_shown": int(items_shown),
        "items_shown_for_sale": int(shown_for_sale),
        "catalogue_items": int(catalogue),
        "coverage": shown_for_sale / catalogue if catalogue else None,
    }
