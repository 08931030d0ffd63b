"""End to end: events through the collector and the ingest worker's rollups, read by the report."""

from __future__ import annotations

import uuid

from analytics.periods import utc_today
from analytics.served import move_served
from tests.conftest import drain
from tests.test_openapi import server_auth

REC_ID = uuid.uuid4().hex
REC = {"rec_id": REC_ID, "placement": "home", "model_version": "v1", "source": "personal"}


def event(name: str, anonymous_id: str, minute: int, **properties) -> dict:
    return {
        "type": "track",
        "event": name,
        "messageId": str(uuid.uuid4()),
        "anonymousId": anonymous_id,
        "timestamp": f"2026-11-20T10:{minute:02d}:00.000Z",
        "properties": properties,
    }


def test_what_the_shop_sends_is_what_the_report_says(client, tracker, site):
    events = [
        event("Recommendation Shown", "anon-1", 0, product_ids=["sku-1", "sku-2"], **REC),
        event("Recommendation Clicked", "anon-1", 1, product_id="sku-1", position=1, **REC),
        event("Product Added", "anon-1", 2, product_id="sku-1", price=10, quantity=1),
        event(
            "Order Completed",
            "anon-1",
            5,
            order_id="o-1",
            revenue=25,
            currency="EUR",
            products=[
                {"product_id": "sku-1", "price": 10, "quantity": 1},
                {"product_id": "sku-3", "price": 15, "quantity": 1},
            ],
        ),
        # Another visitor's order, in another currency, with no recommendation behind it.
        event(
            "Order Completed",
            "anon-2",
            7,
            order_id="o-2",
            revenue=30,
            currency="USD",
            products=[{"product_id": "sku-2", "price": 30, "quantity": 1}],
        ),
    ]
    response = tracker.batch(events)
    assert response.status_code == 200, response.get_json()
    drain(client.application)

    body = client.get(
        "/v1/reports/recommendations",
        query_string={"from": "2026-11-20", "to": "2026-11-20"},
        headers=server_auth(site),
    ).get_json()
    totals = body["totals"]
    assert (totals["impressions"], totals["clicks"], totals["adds_after_click"]) == (1, 1, 1)
    assert totals["revenue"] == [
        {
            "currency": "EUR",
            "orders": 1,
            "revenue": "10.00",  # the clicked line only
            "all_orders": 1,
            "all_revenue": "25.00",
            "share": 0.4,
        },
        {
            "currency": "USD",
            "orders": 0,
            "revenue": "0.00",
            "all_orders": 1,
            "all_revenue": "30.00",
            "share": 0.0,
        },
    ]
    assert [
        (r["placement"], r["model_version"], r["source"], r["group"]) for r in body["breakdown"]
    ] == [("home", "v1", "personal", "treatment")]
    assert [(i["item_id"], i["impressions"]) for i in body["top_shown"]] == [
        ("sku-1", 1),
        ("sku-2", 1),
    ]
    assert [(i["item_id"], i["clicks"]) for i in body["top_clicked"]] == [("sku-1", 1)]


def test_answers_served_today_are_in_todays_report(app, client, site, db, redis):
    for placement in ("home", "home", "cart"):
        answer = client.get(
            "/v1/recommendations",
            query_string={"user_id": "anyone", "placement": placement},
            headers=server_auth(site),
        )
        assert answer.status_code == 200
    app.extensions["ecrm_served"].flush()
    move_served(db, redis, site.site_id)  # the scheduler's job
    today = utc_today().isoformat()
    body = client.get(
        "/v1/reports/recommendations",
        query_string={"from": today, "to": today, "placement": "home"},
        headers=server_auth(site),
    ).get_json()
    assert body["totals"]["served"] == 2
    assert body["daily"][0]["served"] == 2
