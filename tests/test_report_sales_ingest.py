"""End to end: events sent to the collector, ingested (rollups kept in the same transaction),
read back by the sales and funnel reports."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from analytics.funnel import funnel_report
from analytics.periods import Period
from analytics.sales import sales_report
from tests.conftest import drain, make_event

WEEK = Period(date(2026, 11, 16), date(2026, 11, 22))
LINE = {"product_id": "sku-1", "category": "Books/Fiction", "price": 10, "quantity": 2}


def at(minute: int) -> str:
    return f"2026-11-20T10:{minute:02d}:00.000Z"


def test_events_through_ingest_reach_both_reports(app, tracker, site, db):
    events = [
        # a-1 goes all the way, in EUR.
        make_event(anonymousId="a-1", timestamp=at(0), properties=dict(LINE)),
        make_event(
            event="Product Added", anonymousId="a-1", timestamp=at(1), properties=dict(LINE)
        ),
        make_event(
            event="Checkout Started",
            anonymousId="a-1",
            timestamp=at(2),
            properties={"products": [LINE]},
        ),
        make_event(
            event="Order Completed",
            anonymousId="a-1",
            timestamp=at(3),
            properties={"order_id": "o-1", "revenue": 20, "currency": "EUR", "products": [LINE]},
        ),
        # a-2 only looks at music.
        make_event(
            anonymousId="a-2",
            timestamp=at(4),
            properties={"product_id": "sku-2", "category": "Music", "price": 5},
        ),
        # a-3 orders in USD without a view first: a sale, not a funnel step.
        make_event(
            event="Order Completed",
            anonymousId="a-3",
            timestamp=at(5),
            properties={
                "order_id": "o-2",
                "revenue": 5,
                "currency": "USD",
                "products": [{"product_id": "sku-2", "category": "Music", "price": 5}],
            },
        ),
    ]
    assert tracker.batch(events).status_code == 200
    drain(app)

    with db.connect() as conn:
        sales = sales_report(conn, site.site_id, WEEK, grain="week")
        books = sales_report(conn, site.site_id, WEEK, category="Books")
        funnel = funnel_report(conn, site.site_id, WEEK)
        books_funnel = funnel_report(conn, site.site_id, WEEK, "Books")
    totals = {t["currency"]: t for t in sales.totals}
    assert (totals["EUR"]["orders"], totals["EUR"]["revenue"], totals["EUR"]["units"]) == (
        1,
        Decimal("20.00"),
        2,
    )
    assert totals["EUR"]["new_buyers"] == 1 and totals["USD"]["revenue"] == Decimal("5.00")
    assert [(c["category"], c["currency"], c["revenue"]) for c in sales.categories] == [
        ("Books", "EUR", Decimal("20.00")),
        ("Music", "USD", Decimal("5.00")),
    ]
    assert [(c["category"], c["revenue"]) for c in books.categories] == [
        ("Books/Fiction", Decimal("20.00"))
    ]
    assert [s["sessions"] for s in funnel.steps] == [2, 1, 1, 1]
    assert [s["sessions"] for s in books_funnel.steps] == [1, 1, 1, 1]
