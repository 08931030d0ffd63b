"""Customer 360: one customer's row, stitched ids, sessions, timeline, orders, recommendations.

The story goes the real way (collector POST -> Redis stream -> ingest worker -> SQL): a shopper
browses on a phone, is shown and clicks a recommendation, signs in on the phone and a laptop,
orders twice in two currencies; a stranger, a browser claiming to be them and a customer of
another site with the same id add rows that must never show.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from analytics.customer_orders import (
    attributed_orders,
    customer_orders,
    order_totals,
    recommendations,
)
from analytics.customers import (
    CursorError,
    customer_sessions,
    find_customer,
    timeline,
    weekly_activity,
)
from tests.conftest import Tracker, make_event
from tests.test_attribution import NOW, at, click, order, send
from tracking.schema import events, sessions
from tracking.sites import Site, create_site

TRAITS = {"email": "ada@example.test", "name": "Ada Lovelace", "plan": "silver"}
REC_ID = uuid.uuid4().hex


def identify(anon: str, user: str, when: str, traits: dict | None = None) -> dict:
    return {
        "type": "identify",
        "messageId": str(uuid.uuid4()),
        "anonymousId": anon,
        "userId": user,
        "timestamp": when,
        "traits": traits if traits is not None else TRAITS,
    }


def shown(anon: str, when: str, product_ids: list[str], rec_id: str) -> dict:
    return {
        "type": "track",
        "event": "Recommendation Shown",
        "messageId": str(uuid.uuid4()),
        "anonymousId": anon,
        "timestamp": when,
        "properties": {
            "rec_id": rec_id,
            "placement": "home",
            "model_version": "v-2026-11-01",
            "source": "personal",
            "product_ids": product_ids,
        },
    }


def page(anon: str, when: str, url: str) -> dict:
    return {
        "type": "page",
        "name": "Cart",
        "messageId": str(uuid.uuid4()),
        "anonymousId": anon,
        "timestamp": when,
        "properties": {"url": url},
    }


@dataclass
class Story:
    site: Site
    other: Site


def put_item(client, site, item_id: str, title: str) -> None:
    response = client.put(
        f"/v1/items/{item_id}",
        json={"title": title, "category": "Kitchen", "price": 12.5},
        headers={"Authorization": f"Bearer {site.server_key}"},
    )
    assert response.status_code == 200, response.get_json()


def tell_story(app, client, site) -> Story:
    """The shopper's story (module docstring); returns the site and the other site."""
    tracker = Tracker(client, site)
    put_item(client, site, "sku-1", "Blue mug")
    put_item(client, site, "sku-2", "Teapot")
    send(
        app,
        tracker,
        [
            make_event(anonymousId="phone", timestamp=at(days=3, minutes=12)),
            shown("phone", at(days=3, minutes=10), ["sku-1", "sku-2"], REC_ID),
            click("sku-1", at(days=3, minutes=9), anon="phone", rec_id=REC_ID),
            page("phone", at(days=3, minutes=8), "https://shop.example/cart"),
            make_event(anonymousId="stranger", timestamp=at(days=3)),
            shown("stranger", at(days=3), ["sku-2"], uuid.uuid4().hex),
        ],
    )
    send(
        app,
        tracker,
        [
            identify("phone", "cust-42", at(days=2)),
            identify("laptop", "cust-42", at(days=1)),
            order(
                "o-1",
                [("sku-1", 12.5, 2), ("sku-2", 3.0, 1)],
                at(days=0.5),
                anon="laptop",
                user="cust-42",
            ),
            order("o-2", [("sku-2", 7.0, 1)], at(days=0.4), anon="laptop", currency="USD"),
        ],
        server=True,
    )
    # A browser claims to be cust-42 without the shop's signature: a claim, kept apart.
    response = client.post(
        "/v1/batch",
        json={
            "batch": [identify("mallory", "cust-42", at(days=0.3), {"plan": "gold"})],
            "writeKey": site.write_key,
        },
        headers={"Origin": "https://shop.example"},
    )
    assert response.status_code == 200
    other, other_key = create_site(app.extensions["ecrm"].engine, "Other", ["https://o.example"])
    object.__setattr__(other, "server_key", other_key)
    send(
        app,
        Tracker(client, other),
        [
            identify("elsewhere", "cust-42", at(days=1), {"email": "other@o.example"}),
            identify("elsewhere-2", "cust-99", at(days=1), {"email": "nine@o.example"}),
            order("o-9", [("sku-9", 1.0, 1)], at(days=0.2), anon="elsewhere", user="cust-42"),
        ],
        server=True,
    )
    return Story(site, other)


@pytest.fixture
def story(app, client, site) -> Story:
    return tell_story(app, client, site)


def ada(db, story: Story):
    with db.connect() as conn:
        return find_customer(conn, story.site.site_id, "cust-42")


def test_the_customer_row_keeps_claims_apart_and_lists_stitched_ids(story, db):
    customer = ada(db, story)
    assert customer.traits == TRAITS
    assert customer.unverified_traits == {"plan": "gold"}
    assert sorted(customer.anonymous) == ["laptop", "phone"]
    assert customer.anonymous == ["laptop", "phone"]  # newest first
    assert {row["source"] for row in customer.anonymous_ids} == {"identify"}


def test_another_sites_customer_is_never_found(story, db):
    with db.connect() as conn:
        assert find_customer(conn, story.site.site_id, "cust-99") is None
        assert find_customer(conn, story.site.site_id, "CUST-42") is None  # ids are exact
        there = find_customer(conn, story.other.site_id, "cust-42")
    assert there.traits == {"email": "other@o.example"}
    assert there.anonymous == ["elsewhere"]


def test_the_timeline_holds_the_customers_events_newest_first(story, db):
    customer = ada(db, story)
    with db.connect() as conn:
        page_ = timeline(conn, customer)
        mine = conn.execute(
            sa.select(sa.func.count())
            .select_from(events)
            .where(
                events.c.site_id == story.site.site_id,
                sa.or_(
                    events.c.user_id == "cust-42", events.c.anonymous_id.in_(["phone", "laptop"])
                ),
            )
        ).scalar()
    assert page_.next_cursor is None
    assert len(page_.rows) == mine == 8
    times = [(row["timestamp"], row["id"]) for row in page_.rows]
    assert times == sorted(times, reverse=True)
    assert {row["anonymous_id"] for row in page_.rows} == {"phone", "laptop"}
    labels = [row["label"] for row in page_.rows]
    assert labels[:2] == ["Order Completed", "Order Completed"]
    assert labels[-1] == "Product Viewed"
    cart = next(row for row in page_.rows if row["type"] == "page")
    assert (cart["label"], cart["page"]) == ("page: Cart", "https://shop.example/cart")
    clicked = next(row for row in page_.rows if row["label"] == "Recommendation Clicked")
    assert (clicked["item_id"], clicked["item_title"]) == ("sku-1", "Blue mug")
    assert REC_ID in clicked["details"]


def test_the_timeline_pages_by_cursor_without_gaps_or_repeats(story, db):
    customer = ada(db, story)
    seen, before = [], None
    with db.connect() as conn:
        everything = [row["id"] for row in timeline(conn, customer).rows]
        while True:
            page_ = timeline(conn, customer, before=before, limit=3)
            seen += [row["id"] for row in page_.rows]
            if page_.next_cursor is None:
                break
            before = page_.next_cursor
    assert seen == everything


def test_a_cursor_must_be_one_of_the_customers_rows(story, db):
    customer = ada(db, story)
    with db.connect() as conn:
        strangers = conn.execute(
            sa.select(events.c.id).where(events.c.anonymous_id == "stranger")
        ).scalar()
        for cursor in (str(strangers), "0", "x", "99999999999999999999"):
            with pytest.raises(CursorError) as caught:
                timeline(conn, customer, before=cursor)
            assert caught.value.field == "events_before"
        with pytest.raises(CursorError):
            customer_sessions(conn, customer, before="not-a-session")
        with pytest.raises(CursorError):
            customer_orders(conn, customer, before="1.5")


def test_sessions_are_the_customers_on_every_device_newest_first(story, db):
    customer = ada(db, story)
    with db.connect() as conn:
        rows = customer_sessions(conn, customer).rows
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(sessions)
            .where(
                sessions.c.site_id == story.site.site_id,
                sessions.c.visitor_id.in_(["phone", "laptop", "cust-42"]),
            )
        ).scalar()
        first = customer_sessions(conn, customer, limit=2)
        second = customer_sessions(conn, customer, before=first.next_cursor, limit=2)
    # phone: browsing 3 days ago, sign-in 2 days ago; laptop: sign-in, and each order apart.
    assert len(rows) == stored == 5
    assert [r["last_seen_at"] for r in rows] == sorted(r["last_seen_at"] for r in rows)[::-1]
    assert {r["visitor_id"] for r in rows} == {"phone", "laptop"}
    assert rows[-1]["event_count"] == 4  # viewed, shown, clicked, the cart page
    assert [r["session_id"] for r in first.rows + second.rows] == [
        r["session_id"] for r in rows[:4]
    ]


def test_orders_with_lines_and_totals_per_currency(story, db):
    customer = ada(db, story)
    with db.connect() as conn:
        page_ = customer_orders(conn, customer)
        totals = order_totals(conn, customer)
        older = customer_orders(conn, customer, limit=1)
        rest = customer_orders(conn, customer, before=older.next_cursor, limit=1)
    assert [row["order_id"] for row in page_.rows] == ["o-2", "o-1"]  # o-9 is another site's
    o1 = page_.rows[1]
    assert [(line["item_id"], line["title"], line["quantity"]) for line in o1["lines"]] == [
        ("sku-1", "Blue mug", 2),
        ("sku-2", "Teapot", 1),
    ]
    assert (o1["currency"], o1["revenue"]) == ("EUR", Decimal("28.00"))
    assert [(t["currency"], t["orders"], t["revenue"]) for t in totals] == [
        ("EUR", 1, Decimal("28.00")),
        ("USD", 1, Decimal("7.00")),
    ]
    assert [r["order_id"] for r in older.rows + rest.rows] == ["o-2", "o-1"]
    assert rest.next_cursor is None


def test_attributed_orders_and_recommendations_shown_and_clicked(story, db):
    customer = ada(db, story)
    with db.connect() as conn:
        credited = attributed_orders(conn, customer)
        answers = recommendations(conn, customer)
    assert [(r["order_id"], r["item_id"], r["title"]) for r in credited] == [
        ("o-1", "sku-1", "Blue mug")
    ]
    assert (credited[0]["revenue"], credited[0]["currency"]) == (Decimal("25.00"), "EUR")
    assert (credited[0]["rec_id"], credited[0]["placement"]) == (REC_ID, "home")
    (answer,) = answers  # the stranger's answer is theirs
    assert (answer["rec_id"], answer["placement"], answer["source"]) == (REC_ID, "home", "personal")
    assert answer["shown"] == [
        {"item_id": "sku-1", "title": "Blue mug"},
        {"item_id": "sku-2", "title": "Teapot"},
    ]
    assert answer["clicked"] == [{"item_id": "sku-1", "title": "Blue mug"}]


def test_weekly_activity_counts_sessions_events_and_orders(story, db):
    customer = ada(db, story)
    with db.connect() as conn:
        weeks = weekly_activity(conn, customer, NOW.date())
        far = weekly_activity(conn, customer, NOW.date() + timedelta(weeks=30))
    assert len(weeks) == 26
    assert all(row["week"].weekday() == 0 for row in weeks)
    assert weeks[-1]["week"] <= NOW.date() < weeks[-1]["week"] + timedelta(weeks=1)
    assert sum(row["sessions"] for row in weeks) == 5
    assert sum(row["events"] for row in weeks) == 8  # the timeline's events
    assert sum(row["orders"] for row in weeks) == 2
    assert sum(row["sessions"] + row["orders"] for row in far) == 0  # all before these weeks
