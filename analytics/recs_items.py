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


def _where(site_id: int, period: Period, placement: str | None) -> list:
    c = rollup_rec_items.c
    where = [c.site_id == site_id, c.day >= period.start, c.day <= period.end]
    if placement is not None:
        where.append(c.placement == placement)
    return where


def _for_sale(site_id: int) -> list:
    return [items.c.site_id == site_id, items.c.active.is_(True), items.c.hidden.is_(False)]


def item_summary(
    conn: sa.Connection, site_id: int, period: Period, placement: str | None, top: int = 10
) -> dict[str, Any]:
    """``top_shown``, ``top_clicked`` and ``coverage`` of the period, from one aggregation.

    The rollup rows of the period are summed per item once, in the database; its window
    functions rank the items both ways and count the ones shown (and for sale), so only the
    ranked items travel to Python.
    """
    c = rollup_rec_items.c
    per_item = (
        sa.select(
            c.item_id,
            sa.func.sum(c.impressions).label("impressions"),
            sa.func.sum(c.clicks).label("clicks"),
        )
        .where(*_where(site_id, period, placement))
        .group_by(c.item_id)
        .subquery()
    )
    for_sale = sa.and_(items.c.active.is_(True), items.c.hidden.is_(False))
    shown = per_item.c.impressions > 0
    one = sa.literal(1)
    ranked = (
        sa.select(
            per_item.c.item_id,
            per_item.c.impressions,
            per_item.c.clicks,
            items.c.title,
            sa.func.row_number()
            .over(order_by=(per_item.c.impressions.desc(), per_item.c.item_id))
            .label("by_impressions"),
            sa.func.row_number()
            .over(order_by=(per_item.c.clicks.desc(), per_item.c.item_id))
            .label("by_clicks"),
            sa.func.count(sa.case((shown, one))).over().label("items_shown"),
            sa.func.count(sa.case((sa.and_(shown, for_sale), one))).over().label("for_sale"),
        )
        .select_from(
            per_item.outerjoin(
                items, sa.and_(items.c.site_id == site_id, items.c.item_id == per_item.c.item_id)
            )
        )
        .subquery()
    )
    rows = conn.execute(
        sa.select(ranked).where(
            sa.or_(
                sa.and_(ranked.c.by_impressions <= top, ranked.c.impressions > 0),
                sa.and_(ranked.c.by_clicks <= top, ranked.c.clicks > 0),
            )
        )
    ).all()
    catalogue = conn.execute(
        sa.select(sa.func.count()).select_from(items).where(*_for_sale(site_id))
    ).scalar_one()
    # Every row carries the window counts; no row means no item was shown or clicked.
    items_shown = int(rows[0].items_shown) if rows else 0
    shown_for_sale = int(rows[0].for_sale) if rows else 0
    return {
        "top_shown": [
            _entry(r)
            for r in sorted(rows, key=lambda r: r.by_impressions)
            if _in(r, "impressions", top)
        ],
        "top_clicked": [
            _entry(r) for r in sorted(rows, key=lambda r: r.by_clicks) if _in(r, "clicks", top)
        ],
        "coverage": {
            "items_shown": items_shown,
            "items_shown_for_sale": shown_for_sale,
            "catalogue_items": int(catalogue),
            "coverage": shown_for_sale / catalogue if catalogue else None,
        },
    }


def _in(row: sa.Row, by: str, top: int) -> bool:
    rank = row.by_impressions if by == "impressions" else row.by_clicks
    return rank <= top and int(getattr(row, by) or 0) > 0


def _entry(row: sa.Row) -> dict[str, Any]:
    shown, clicked = int(row.impressions or 0), int(row.clicks or 0)
    return {
        "item_id": row.item_id,
        "title": row.title,
        "impressions": shown,
        "clicks": clicked,
        "ctr": clicked / shown if shown else None,
    }
