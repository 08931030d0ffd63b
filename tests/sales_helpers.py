"""Rollup rows of a small shop whose sales and funnel are known, written straight into the tables.

The period most tests read is Wednesday 2026-11-04 to Tuesday 2026-11-17: its ISO weeks are cut
(5, 7 and 2 days); the previous period is 2026-10-21 to 2026-11-03. A row on 2026-11-18 lies
outside and must never be counted.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from analytics.periods import Period
from analytics.schema import rollup_funnel, rollup_item_sales, rollup_sales
from tracking.catalogue import upsert_items, validate_item

PERIOD = Period(date(2026, 11, 4), date(2026, 11, 17))
HTML_TITLE = "<script>alert(1)</script> Dune"
# No "/" in it: that would split it into levels.
HTML_CATEGORY = "<img src=x onerror=alert(1)>"

SALES = [  # day, currency, orders, revenue, units, new, returning
    ("2026-11-03", "EUR", 1, "10.00", 1, 1, 0),  # the previous period
    ("2026-11-04", "EUR", 2, "30.00", 3, 1, 1),
    ("2026-11-10", "EUR", 1, "15.50", 1, 0, 1),
    ("2026-11-17", "EUR", 3, "100.00", 5, 2, 1),
    ("2026-11-18", "EUR", 9, "999.00", 9, 9, 0),  # after the period
    ("2026-11-09", "USD", 1, "20.00", 2, 1, 0),
]
ITEM_SALES = [  # day, item, currency, category as ordered, orders, units, revenue
    ("2026-11-04", "sku-1", "EUR", "Books/Fiction", 2, 2, "20.00"),
    ("2026-11-04", "sku-2", "EUR", "Books > Fiction > SciFi", 1, 1, "8.00"),
    ("2026-11-04", "sku-5", "EUR", "", 1, 1, "2.00"),
    ("2026-11-10", "sku-3", "EUR", "Books", 1, 1, "15.50"),
    ("2026-11-17", "sku-4", "EUR", "Music/Jazz", 3, 5, "100.00"),
    ("2026-11-09", "sku-1", "USD", "Books/Fiction", 1, 2, "20.00"),
    ("2026-11-17", "sku-6", "EUR", HTML_CATEGORY, 1, 1, "1.00"),
    ("2026-11-18", "sku-1", "EUR", "Books/Fiction", 9, 9, "999.00"),  # after the period
]
FUNNEL = [  # day, category, viewed, added, checkout, ordered
    ("2026-11-03", "", 4, 2, 0, 0),
    ("2026-11-04", "", 10, 4, 2, 1),
    ("2026-11-10", "", 5, 1, 1, 1),
    ("2026-11-04", "Books", 6, 2, 1, 1),
    ("2026-11-17", HTML_CATEGORY, 2, 1, 0, 0),
    ("2026-11-18", "", 50, 50, 50, 50),  # after the period
]


def seed(engine: sa.Engine, site_id: int) -> None:
    """Write the rows above (and titles for sku-1 and sku-3) for ``site_id``."""
    day = date.fromisoformat
    upsert_items(
        engine,
        site_id,
        [
            validate_item({"item_id": "sku-1", "title": HTML_TITLE, "category": "Books/Fiction"}),
            validate_item({"item_id": "sku-3", "title": "Atlas", "category": "Books"}),
            validate_item({"item_id": "sku-9", "title": "Kettle", "category": "Home/Kitchen"}),
        ],
    )
    with engine.begin() as conn:
        conn.execute(
            rollup_sales.insert(),
            [
                dict(
                    site_id=site_id,
                    day=day(d),
                    currency=c,
                    orders=o,
                    revenue=Decimal(r),
                    units=u,
                    new_buyers=n,
                    returning_buyers=b,
                )
                for d, c, o, r, u, n, b in SALES
            ],
        )
        conn.execute(
            rollup_item_sales.insert(),
            [
                dict(
                    site_id=site_id,
                    day=day(d),
                    item_id=i,
                    currency=c,
                    category=k,
                    orders=o,
                    units=u,
                    revenue=Decimal(r),
                )
                for d, i, c, k, o, u, r in ITEM_SALES
            ],
        )
        conn.execute(
            rollup_funnel.insert(),
            [
                dict(
                    site_id=site_id,
                    day=day(d),
                    category=k,
                    viewed=v,
                    added=a,
                    checkout=c,
                    ordered=o,
                )
                for d, k, v, a, c, o in FUNNEL
            ],
        )
