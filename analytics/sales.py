"""Sales from the daily rollups: revenue, orders, units and buyers by day, week or month.

Read from ``rollup_sales`` (whole orders) or, with a category, ``rollup_item_sales`` (the lines of
that category's products), plus the ``items`` table for titles and the catalogue's categories.
Money is never added across currencies: every figure of money carries its currency. Weeks are ISO
weeks (Monday first), months calendar months; a bucket cut by the period's edges counts only the
days inside it (``days`` says how many).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from analytics.periods import Period
from analytics.rollups_sql import CATEGORY_SPLIT  # how the rollups split category paths
from analytics.schema import rollup_item_sales, rollup_sales
from tracking.db import chunks
from tracking.errors import FieldError
from tracking.orders import money
from tracking.schema import items

GRAINS = ("day", "week", "month")
TOP_PRODUCTS = 20
SALES_COUNTS = ("orders", "units", "new_buyers", "returning_buyers")
ITEM_COUNTS = ("orders", "units")


class FilterError(FieldError):
    """A report filter that cannot be used: ``field`` names the input, ``reason`` says why."""


@dataclass(frozen=True)
class Bucket:
    """A day, week or month: ``start`` names it; ``first``..``last`` are its days in the period."""

    start: date
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@dataclass(frozen=True)
class SalesReport:
    """Everything the sales page and ``GET /v1/reports/sales`` show (rows are plain dicts)."""

    period: Period
    grain: str
    category: str | None
    currencies: list[str]  # by revenue in the period, largest first; '' = orders without one
    buckets: list[dict[str, Any]]  # one per bucket and currency
    totals: list[dict[str, Any]]  # one per currency, each with its "previous" totals
    categories: list[dict[str, Any]]  # the level under ``category`` (top level without one)
    products: list[dict[str, Any]]  # the top products by revenue, per currency


def checked_grain(grain: str | None) -> str:
    """``day`` (the default), ``week`` or ``month``, or a FilterError naming ``grain``."""
    if grain is None or grain == "":
        return "day"
    if grain not in GRAINS:
        raise FilterError("grain", f"{str(grain)[:40]!r} is not a grain; use day, week or month")
    return grain


def bucket_start(day: date, grain: str) -> date:
    """The first day of the day, ISO week (Monday) or calendar month holding ``day``."""
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def buckets(period: Period, grain: str) -> list[Bucket]:
    """The period's buckets in order, each cut to the days inside the period."""
    found: dict[date, list[date]] = {}
    for day in period.each_day():
        found.setdefault(bucket_start(day, grain), []).append(day)
    return [Bucket(start, days[0], days[-1]) for start, days in found.items()]


def category_path(text: str | None) -> tuple[str, ...]:
    """A category's levels: "Books/Fiction" and "Books > Fiction" -> ("Books", "Fiction")."""
    if not text:
        return ()
    return tuple(part.strip() for part in CATEGORY_SPLIT.split(text) if part.strip())


def category_name(path: tuple[str, ...]) -> str:
    """A path as the reports write it (levels joined by "/")."""
    return "/".join(path)


def categories(conn: sa.Connection, site_id: int, period: Period | None = None) -> list[str]:
    """Every category of the catalogue (and of the period's sales), with the levels above them."""
    texts = set(
        conn.execute(
            sa.select(items.c.category)
            .where(items.c.site_id == site_id, items.c.category.is_not(None))
            .distinct()
        ).scalars()
    )
    if period is not None:
        texts |= set(
            conn.execute(
                sa.select(rollup_item_sales.c.category)
                .where(_in_period(rollup_item_sales, site_id, period))
                .distinct()
            ).scalars()
        )
    paths = set()
    for text in texts:
        path = category_path(text)
        paths.update(path[: depth + 1] for depth in range(len(path)))
    return sorted(category_name(path) for path in paths)


def checked_category(
    conn: sa.Connection, site_id: int, category: str | None, period: Period | None = None
) -> str | None:
    """The category as the reports name it, None for all, or a FilterError naming ``category``."""
    if category is None or not category.strip():
        return None
    name = category_name(category_path(category))
    if name not in categories(conn, site_id, period):
        raise FilterError(
            "category",
            f"{category[:60]!r} is neither in the catalogue nor in this period's sales; "
            "leave it empty for every category",
        )
    return name


def _in_period(table: sa.Table, site_id: int, period: Period) -> sa.ColumnElement:
    return sa.and_(
        table.c.site_id == site_id, table.c.day >= period.start, table.c.day <= period.end
    )


def _under(path: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return path[: len(prefix)] == prefix


def _daily(
    conn: sa.Connection, site_id: int, period: Period, category: str | None
) -> dict[tuple[date, str], dict[str, Any]]:
    """(day, currency) -> orders, revenue, units, new and returning buyers (None by category)."""
    out: dict[tuple[date, str], dict[str, Any]] = {}
    if category is None:
        t = rollup_sales
        for row in conn.execute(
            sa.select(t.c.day, t.c.currency, t.c.revenue, *(t.c[n] for n in SALES_COUNTS)).where(
                _in_period(t, site_id, period)
            )
        ).mappings():
            out[(row["day"], row["currency"])] = {
                "revenue": money(row["revenue"]),
                **{n: int(row[n]) for n in SALES_COUNTS},
            }
        return out
    t, prefix = rollup_item_sales, category_path(category)
    for row in conn.execute(
        sa.select(
            t.c.day,
            t.c.currency,
            t.c.category,
            sa.func.sum(t.c.revenue).label("revenue"),
            *(sa.func.sum(t.c[n]).label(n) for n in ITEM_COUNTS),
        )
        .where(_in_period(t, site_id, period))
        .group_by(t.c.day, t.c.currency, t.c.category)
    ).mappings():
        if not _under(category_path(row["category"]), prefix):
            continue
        into = out.setdefault(
            (row["day"], row["currency"]),
            {"revenue": Decimal("0.00"), "orders": 0, "units": 0},
        )
        into["revenue"] += money(row["revenue"])
        into["orders"] += int(row["orders"])
        into["units"] += int(row["units"])
    for into in out.values():
        into.update(new_buyers=None, returning_buyers=None)
    return out


def _figures(rows: list[dict[str, Any]], by_category: bool) -> dict[str, Any]:
    """Orders, revenue, units, average order value and buyers of some (day, currency) rows."""
    revenue = sum((r["revenue"] for r in rows), Decimal("0.00"))
    orders = sum(r["orders"] for r in rows)
    figures = {
        "orders": orders,
        "revenue": revenue,
        "average_order_value": money(revenue / orders) if orders else None,
        "units": sum(r["units"] for r in rows),
    }
    for name in ("new_buyers", "returning_buyers"):
        figures[name] = None if by_category else sum(r[name] for r in rows)
    return figures


def _order_currencies(current: dict, previous: dict) -> list[str]:
    revenue: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for (_, currency), row in current.items():
        revenue[currency][0] += row["revenue"]
    for (_, currency), row in previous.items():
        revenue[currency][1] += row["revenue"]
    return sorted(revenue, key=lambda c: (-revenue[c][0], -revenue[c][1], c))


def _category_rows(
    conn: sa.Connection, site_id: int, period: Period, category: str | None
) -> tuple[list[dict[str, Any]], list[str] | None]:
    """The period's item sales summed per category text and currency, under ``category``.

    Also the category texts under ``category`` (None: every text, no filter needed), which
    pick the lines the top products are ranked on. The database sums the items; Python sees
    one row per category as ordered and currency.
    """
    t, prefix = rollup_item_sales, category_path(category)
    rows, texts = [], []
    for row in conn.execute(
        sa.select(
            t.c.category,
            t.c.currency,
            sa.func.sum(t.c.revenue).label("revenue"),
            *(sa.func.sum(t.c[n]).label(n) for n in ITEM_COUNTS),
        )
        .where(_in_period(t, site_id, period))
        .group_by(t.c.category, t.c.currency)
    ).mappings():
        path = category_path(row["category"])
        if _under(path, prefix):
            texts.append(row["category"])
            rows.append(
                {
                    "currency": row["currency"],
                    "path": path,
                    "revenue": money(row["revenue"]),
                    "orders": int(row["orders"]),
                    "units": int(row["units"]),
                }
            )
    return rows, (sorted(set(texts)) if prefix else None)


def _by_category(rows: list[dict[str, Any]], category: str | None) -> list[dict[str, Any]]:
    """Sales per currency of each category one level under ``category`` (its own products'
    sales in a row of its own; products without a category in a row with category None)."""
    depth = len(category_path(category))
    groups: dict[tuple, dict[str, Any]] = {}
    below: dict[tuple, set] = defaultdict(set)
    for row in rows:
        path = row["path"]
        child = path[: depth + 1] if path else None
        if child is not None and len(path) > depth + 1:
            below[child].add(path[depth + 1])
        into = groups.setdefault(
            (child, row["currency"]),
            {"revenue": Decimal("0.00"), "orders": 0, "units": 0},
        )
        for name in ("revenue", "orders", "units"):
            into[name] += row[name]
    found = [
        {
            "category": category_name(child) if child is not None else None,
            "currency": currency,
            "sub_categories": len(below[child]) if child is not None else 0,
            **figures,
        }
        for (child, currency), figures in groups.items()
    ]
    return sorted(found, key=lambda r: (r["currency"], -r["revenue"], r["category"] or ""))


def _top_products(
    conn: sa.Connection,
    site_id: int,
    period: Period,
    texts: list[str] | None,
    top: int,
) -> list[dict[str, Any]]:
    """The ``top`` products by revenue in each currency (lines whose category text is one of
    ``texts``; None: all), with their titles, ranked in the database."""
    t = rollup_item_sales
    where = [_in_period(t, site_id, period)]
    if texts is not None:
        if not texts:
            return []
        where.append(t.c.category.in_(texts))
    revenue = sa.func.sum(t.c.revenue)
    per_item = (
        sa.select(
            t.c.item_id,
            t.c.currency,
            revenue.label("revenue"),
            *(sa.func.sum(t.c[n]).label(n) for n in ITEM_COUNTS),
            sa.func.row_number()
            .over(partition_by=t.c.currency, order_by=(revenue.desc(), t.c.item_id))
            .label("rank"),
        )
        .where(*where)
        .group_by(t.c.item_id, t.c.currency)
        .subquery()
    )
    chosen = sorted(
        conn.execute(sa.select(per_item).where(per_item.c.rank <= top)).mappings(),
        key=lambda row: (row["currency"], row["rank"]),
    )
    item_ids = sorted({row["item_id"] for row in chosen})
    # The category each sold under (the one with most revenue, if it moved).
    paths: dict[tuple[str, str], dict[tuple, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for chunk in chunks(item_ids):
        for item_id, currency, text, amount in conn.execute(
            sa.select(t.c.item_id, t.c.currency, t.c.category, sa.func.sum(t.c.revenue))
            .where(*where, t.c.item_id.in_(chunk))
            .group_by(t.c.item_id, t.c.currency, t.c.category)
        ):
            paths[(item_id, currency)][category_path(text)] += money(amount)
    titles = _titles(conn, site_id, item_ids)
    products = []
    for row in chosen:
        sold = paths[(row["item_id"], row["currency"])]
        products.append(
            {
                "item_id": row["item_id"],
                "title": titles.get(row["item_id"]),
                "category": category_name(max(sold, key=lambda p: (sold[p], p))) or None,
                "currency": row["currency"],
                "revenue": money(row["revenue"]),
                "orders": int(row["orders"]),
                "units": int(row["units"]),
            }
        )
    return products


def _titles(conn: sa.Connection, site_id: int, item_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for chunk in chunks(item_ids):
        found.update(
            conn.execute(
                sa.select(items.c.item_id, items.c.title).where(
                    items.c.site_id == site_id, items.c.item_id.in_(chunk)
                )
            ).all()
        )
    return found


def sales_report(
    conn: sa.Connection,
    site_id: int,
    period: Period,
    grain: str = "day",
    category: str | None = None,
    top: int = TOP_PRODUCTS,
) -> SalesReport:
    """The period's sales by bucket and currency, its totals against the previous period, its
    categories one level under ``category`` and its top products (checked inputs expected:
    :func:`checked_grain`, :func:`checked_category`)."""
    grain = checked_grain(grain)
    by_category = category is not None
    current = _daily(conn, site_id, period, category)
    before = _daily(conn, site_id, period.previous(), category)
    currencies = _order_currencies(current, before)
    bucket_rows = []
    for bucket in buckets(period, grain):
        for currency in currencies:
            days = [
                current[(d, currency)]
                for d in Period(bucket.first, bucket.last).each_day()
                if (d, currency) in current
            ]
            bucket_rows.append(
                {
                    "bucket": bucket.start,
                    "first_day": bucket.first,
                    "last_day": bucket.last,
                    "days": bucket.days,
                    "currency": currency,
                    **_figures(days, by_category),
                }
            )
    totals = []
    for currency in currencies:
        now = [row for (_, c), row in current.items() if c == currency]
        then = [row for (_, c), row in before.items() if c == currency]
        totals.append(
            {
                "currency": currency,
                **_figures(now, by_category),
                "previous": _figures(then, by_category),
            }
        )
    category_rows, texts = _category_rows(conn, site_id, period, category)
    return SalesReport(
        period=period,
        grain=grain,
        category=category,
        currencies=currencies,
        buckets=bucket_rows,
        totals=totals,
        categories=_by_category(category_rows, category),
        products=_top_products(conn, site_id, period, texts, top),
    )
