"""Attribution: orders credited to the last recommendation click on their items, within a window.

Most tests go the real way (collector POST -> Redis stream -> ingest worker -> SQL); a few call
the store directly to replay a delivery exactly.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.conftest import count, drain, store_events
from tracking.attribution import attribute_orders, attribute_since, valid_click
from tracking.attribution_reports import attribution_summary
from tracking.events import Limits, iso, prepare_events
from tracking.holdout import in_holdout
from tracking.schema import attributions, events, orders
from tracking.store import write_entries

NOW = datetime.now(UTC).replace(microsecond=0)


def at(days: float = 0.0, minutes: float = 0.0) -> str:
    """An ISO time ``days`` and ``minutes`` before now."""
    return iso(NOW - timedelta(days=days, minutes=minutes))


def who(anonymous_id: str | None, user_id: str | None) -> dict:
    ids = {}
    if anonymous_id:
        ids["anonymousId"] = anonymous_id
    if user_id:
        ids["userId"] = user_id
    return ids


def click(
    product_id: str | None,
    when: str,
    *,
    anon: str | None = "anon-1",
    user: str | None = None,
    rec_id: str | None = None,
    placement: str = "home",
    model_version: str | None = "v-2026-11-01",
    source: str = "personal",
) -> dict:
    properties = {
        "rec_id": rec_id or uuid.uuid4().hex,
        "position": 2,
        "placement": placement,
        "model_version": model_version,
        "source": source,
    }
    if product_id is not None:
        properties["product_id"] = product_id
    return {
        "type": "track",
        "event": "Recommendation Clicked",
        "messageId": str(uuid.uuid4()),
        "timestamp": when,
        "properties": properties,
        **who(anon, user),
    }


def shown(product_ids: list[str], when: str, *, anon="anon-1", placement="home", version="v1"):
    return {
        "type": "track",
        "event": "Recommendation Shown",
        "messageId": str(uuid.uuid4()),
        "anonymousId": anon,
        "timestamp": when,
        "properties": {
            "rec_id": uuid.uuid4().hex,
            "placement": placement,
            "model_version": version,
            "source": "personal",
            "product_ids": product_ids,
        },
    }


def order(
    order_id: str,
    products: list[tuple[str, float, int]],
    when: str,
    *,
    anon: str | None = "anon-1",
    user: str | None = None,
    currency: str = "EUR",
) -> dict:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": str(uuid.uuid4()),
        "timestamp": when,
        "properties": {
            "order_id": order_id,
            "currency": currency,
            "revenue": sum(price * quantity for _, price, quantity in products),
            "products": [
                {"product_id": pid, "price": price, "quantity": quantity}
                for pid, price, quantity in products
            ],
        },
        **who(anon, user),
    }


def identify(anon: str, user: str, when: str) -> dict:
    return {
        "type": "identify",
        "messageId": str(uuid.uuid4()),
        "anonymousId": anon,
        "userId": user,
        "timestamp": when,
        "traits": {"email": f"{user}@example.test"},
    }


def send(app, tracker, batch: list[dict], *, server: bool = False) -> None:
    """POST one batch to the collector (as a browser, or a backend) and drain it into SQL."""
    response = tracker.batch(batch, server=server)
    assert response.status_code == 200, response.get_json()
    assert not response.get_json().get("rejected"), response.get_json()
    drain(app)


def credited(db, site_id: int) -> list[dict]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(attributions)
            .where(attributions.c.site_id == site_id)
            .order_by(attributions.c.order_id, attributions.c.item_id)
        ).mappings()
        return [dict(row) for row in rows]


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_order_after_click_is_attributed(app, tracker, site, db):
    rec_id = uuid.uuid4().hex
    send(app, tracker, [click("sku-1", at(days=2), rec_id=rec_id, placement="product")])
    send(
        app,
        tracker,
        [order("o-1", [("sku-1", 12.5, 2), ("sku-2", 3.0, 1)], at(days=1), currency="KRW")],
    )
    rows = credited(db, site.site_id)
    assert len(rows) == 1  # sku-2 was not clicked from a recommendation
    row = rows[0]
    assert (row["order_id"], row["item_id"], row["rec_id"]) == ("o-1", "sku-1", rec_id)
    assert (row["placement"], row["model_version"], row["source"]) == (
        "product",
        "v-2026-11-01",
        "personal",
    )
    assert row["revenue"] == Decimal("25.00")
    assert row["currency"] == "KRW"
    assert aware(row["clicked_at"]) == NOW - timedelta(days=2)
    assert aware(row["ordered_at"]) == NOW - timedelta(days=1)
    assert row["holdout"] is False
    # The click is an item event like Product Clicked: item_id comes from product_id.
    with db.connect() as conn:
        item_id = conn.execute(
            sa.select(events.c.item_id).where(events.c.event == "Recommendation Clicked")
        ).scalar_one()
    assert item_id == "sku-1"


@pytest.mark.parametrize(
    ("click_days", "click_minutes", "attributed"),
    [
        (7, 1, False),  # a minute older than the 7-day window
        (7, 0, True),  # exactly at the edge of the window
        (0, 0, True),  # at the very moment of the order
        (0, -1, False),  # a minute after the order
    ],
)
def test_window_edges(app, tracker, site, db, click_days, click_minutes, attributed):
    order_days = 1
    send(app, tracker, [click("sku-1", at(days=click_days + order_days, minutes=click_minutes))])
    send(app, tracker, [order("o-1", [("sku-1", 10.0, 1)], at(days=order_days))])
    assert len(credited(db, site.site_id)) == (1 if attributed else 0)


@pytest.fixture
def one_day_window(app_config):
    app_config["ATTRIBUTION_WINDOW_DAYS"] = 1.0
    return app_config


def test_a_shorter_window_from_config(one_day_window, app, tracker, site, db):
    send(app, tracker, [click("sku-1", at(days=3)), click("sku-2", at(days=1.5))])
    send(app, tracker, [order("o-1", [("sku-1", 5.0, 1), ("sku-2", 5.0, 1)], at(days=1))])
    assert [row["item_id"] for row in credited(db, site.site_id)] == ["sku-2"]


def test_click_before_sign_in_is_attributed_to_the_customer(app, tracker, site, db):
    rec_id = uuid.uuid4().hex
    # Browsing anonymously on a phone, then signing in there; the order comes from the backend
    # with the user id only, and another from a laptop with its own anonymous id.
    send(app, tracker, [click("sku-1", at(days=3), anon="phone", rec_id=rec_id)])
    # The shop's backend vouches for the user id (identity verification): the server key.
    send(app, tracker, [identify("phone", "cust-42", at(days=2))], server=True)
    send(
        app,
        tracker,
        [
            order("o-backend", [("sku-1", 20.0, 1)], at(days=1), anon=None, user="cust-42"),
            order("o-laptop", [("sku-1", 20.0, 1)], at(days=1), anon="laptop", user="cust-42"),
        ],
        server=True,
    )
    rows = credited(db, site.site_id)
    assert [(r["order_id"], r["rec_id"]) for r in rows] == [
        ("o-backend", rec_id),
        ("o-laptop", rec_id),
    ]


def test_someone_elses_click_is_not_attributed(app, tracker, site, db):
    send(app, tracker, [click("sku-1", at(days=2), anon="anon-2")])
    send(app, tracker, [order("o-1", [("sku-1", 20.0, 1)], at(days=1), anon="anon-1")])
    assert credited(db, site.site_id) == []


def test_click_and_order_in_one_batch(app, tracker, site, db):
    rec_id = uuid.uuid4().hex
    # The order first in the batch: the store writes orders before events, and must still see it.
    send(
        app,
        tracker,
        [
            order("o-1", [("sku-1", 7.25, 4)], at(minutes=5)),
            click("sku-1", at(minutes=10), rec_id=rec_id),
        ],
    )
    rows = credited(db, site.site_id)
    assert [(r["order_id"], r["rec_id"], r["revenue"]) for r in rows] == [
        ("o-1", rec_id, Decimal("29.00"))
    ]


def test_last_click_wins_whatever_the_order_of_arrival(app, tracker, site, db):
    first, last, late_but_older = (uuid.uuid4().hex for _ in range(3))
    send(app, tracker, [click("sku-1", at(days=3), rec_id=first, placement="home")])
    send(app, tracker, [click("sku-1", at(days=2), rec_id=last, placement="cart")])
    send(app, tracker, [order("o-1", [("sku-1", 10.0, 1)], at(days=1))])
    assert [(r["rec_id"], r["placement"]) for r in credited(db, site.site_id)] == [(last, "cart")]
    # A browser queue flushed late: an older click arrives after the order; the last still wins.
    send(app, tracker, [click("sku-1", at(days=4), rec_id=late_but_older)])
    assert [r["rec_id"] for r in credited(db, site.site_id)] == [last]
    # A later click that arrives late (but happened before the order) takes over.
    later = uuid.uuid4().hex
    send(app, tracker, [click("sku-1", at(days=1, minutes=30), rec_id=later, placement="pdp")])
    assert [(r["rec_id"], r["placement"]) for r in credited(db, site.site_id)] == [(later, "pdp")]
    # A click after the order changes nothing.
    send(app, tracker, [click("sku-1", at(days=0.5))])
    assert [r["rec_id"] for r in credited(db, site.site_id)] == [later]


def test_repeated_item_lines_are_one_attribution(app, tracker, site, db):
    send(app, tracker, [click("sku-1", at(days=2))])
    send(app, tracker, [order("o-1", [("sku-1", 10.0, 1), ("sku-1", 10.0, 2)], at(days=1))])
    rows = credited(db, site.site_id)
    assert [(r["item_id"], r["revenue"]) for r in rows] == [("sku-1", Decimal("30.00"))]


def test_redelivery_does_not_duplicate(app, tracker, site, db):
    batch = [click("sku-1", at(days=2)), order("o-1", [("sku-1", 10.0, 1)], at(days=1))]
    send(app, tracker, batch)
    send(app, tracker, batch)  # the client resent the same messages
    resent = order("o-1", [("sku-1", 10.0, 1)], at(days=1))  # same order, a new messageId
    send(app, tracker, [resent])
    assert count(db, orders) == 1
    assert len(credited(db, site.site_id)) == 1

    # The stream redelivers an entry the worker had stored but not acknowledged (a crash).
    received_at = datetime.now(UTC)
    accepted, _ = prepare_events(
        [click("sku-2", at(days=2)), order("o-2", [("sku-2", 5.0, 1)], at(days=1))],
        path="batch",
        received_at=received_at,
        batch_sent_at=None,
        limits=Limits(),
    )
    entry = {
        "rid": uuid.uuid4().hex,
        "site_id": site.site_id,
        "received_at": iso(received_at),
        "events": accepted,
        "rejected": [],
    }
    for attempt in range(2):
        copy = {**entry, "events": [dict(event) for event in accepted]}
        with db.begin() as conn:
            stats = write_entries(conn, [copy], timedelta(minutes=30))
        assert stats.attributed == (1 if attempt == 0 else 0)
    assert [r["order_id"] for r in credited(db, site.site_id)] == ["o-1", "o-2"]
    # Recomputing by hand is idempotent too.
    with db.begin() as conn:
        attribute_orders(conn, site.site_id, ["o-1", "o-2"], timedelta(days=7))
    assert len(credited(db, site.site_id)) == 2


@pytest.mark.parametrize(
    ("properties", "valid"),
    [
        ({"rec_id": "a" * 32, "product_id": "sku-1"}, True),
        ({"rec_id": "A0" * 16, "product_id": 17}, True),
        ({"rec_id": "a" * 31, "product_id": "sku-1"}, False),
        ({"rec_id": "g" * 32, "product_id": "sku-1"}, False),
        ({"rec_id": None, "product_id": "sku-1"}, False),
        ({"rec_id": "a" * 32}, False),
        ({"rec_id": "a" * 32, "product_id": ""}, False),
        ("not an object", False),
    ],
)
def test_valid_click(properties, valid):
    assert valid_click(properties) is valid


def test_malformed_clicks_are_stored_but_not_attributed(app, tracker, site, db):
    send(
        app,
        tracker,
        [
            click("sku-1", at(days=2), rec_id="not-a-rec-id"),
            click(None, at(days=2)),
            {**click("sku-1", at(days=2)), "properties": {"product_id": "sku-1"}},
        ],
    )
    send(app, tracker, [order("o-1", [("sku-1", 10.0, 1)], at(days=1))])
    assert count(db, events, events.c.event == "Recommendation Clicked") == 3
    assert credited(db, site.site_id) == []


@pytest.fixture
def half_held_out(app_config):
    app_config["HOLDOUT_SHARE"] = 0.5
    return app_config


def test_summary_per_placement_and_model_version(half_held_out, app, tracker, site, db):
    visitors = [f"visitor-{n}" for n in range(40)]
    held = [v for v in visitors if in_holdout(site.site_id, v, 0.5)]
    treated = [v for v in visitors if not in_holdout(site.site_id, v, 0.5)]
    assert held and treated
    h, t = held[0], treated[0]
    batch = [
        shown(["sku-1", "sku-2"], at(days=3), anon=t, placement="home", version="v1"),
        shown(["sku-1"], at(days=3), anon=t, placement="home", version="v1"),
        shown(["sku-1"], at(days=3), anon=h, placement="home", version="v1"),
        shown(["sku-3"], at(days=3), anon=t, placement="cart", version=None),
        click("sku-1", at(days=2), anon=t, placement="home", model_version="v1"),
        click("sku-1", at(days=2), anon=h, placement="home", model_version="v1"),
        click("sku-3", at(days=2), anon=t, placement="cart", model_version=None),
        order("o-t", [("sku-1", 10.0, 2), ("sku-3", 1.5, 1)], at(days=1), anon=t),
        order("o-h", [("sku-1", 10.0, 1)], at(days=1), anon=h),
    ]
    send(app, tracker, batch)
    with db.connect() as conn:
        summary = attribution_summary(conn, site.site_id)
        assert attribution_summary(conn, site.site_id, since=NOW) == []
    assert [(r["placement"], r["model_version"]) for r in summary] == [
        ("cart", None),
        ("home", "v1"),
    ]
    cart, home = summary
    assert (cart["impressions"], cart["clicks"], cart["orders"]) == (1, 1, 1)
    assert cart["revenue"] == Decimal("1.50") and cart["ctr"] == 1.0
    assert (home["impressions"], home["clicks"], home["orders"]) == (3, 2, 2)
    assert home["revenue"] == Decimal("30.00")
    assert home["currencies"] == ["EUR"]
    assert home["treatment"] == {
        "impressions": 2,
        "clicks": 1,
        "orders": 1,
        "revenue": Decimal("20.00"),
        "ctr": 0.5,
    }
    assert home["holdout"] == {
        "impressions": 1,
        "clicks": 1,
        "orders": 1,
        "revenue": Decimal("10.00"),
        "ctr": 1.0,
    }


def test_store_events_without_closed_loop_settings_still_attributes(app, site, db):
    # Callers that pass no settings (demo loading, benchmarks) get the default 7-day window.
    store_events(
        db,
        site.site_id,
        [click("sku-9", at(days=2)), order("o-9", [("sku-9", 4.0, 3)], at(days=1))],
    )
    assert [(r["order_id"], r["revenue"]) for r in credited(db, site.site_id)] == [
        ("o-9", Decimal("12.00"))
    ]


def test_repair_sweep_restores_a_missed_attribution(app, tracker, site, db):
    # Two workers can store a click and its order in transactions that do not see each other.
    send(app, tracker, [click("sku-1", at(days=2)), order("o-1", [("sku-1", 10.0, 1)], at(days=1))])
    before = credited(db, site.site_id)
    with db.begin() as conn:
        conn.execute(attributions.delete())
        assert attribute_since(conn, site.site_id, NOW - timedelta(days=3), timedelta(days=7)) == 1
        assert attribute_since(conn, site.site_id, NOW, timedelta(days=7)) == 0
    after = credited(db, site.site_id)
    assert [(r["order_id"], r["rec_id"], r["revenue"]) for r in after] == [
        (r["order_id"], r["rec_id"], r["revenue"]) for r in before
    ]


def test_the_attribute_command_repairs_what_concurrent_workers_missed(
    app, runner, tracker, site, db
):
    send(app, tracker, [click("sku-1", at(days=2)), order("o-1", [("sku-1", 10.0, 1)], at(days=1))])
    before = credited(db, site.site_id)
    with db.begin() as conn:
        conn.execute(attributions.delete())  # what two concurrent transactions can leave
    assert credited(db, site.site_id) == []
    result = runner.invoke(args=["attribute", "--days", "3"])
    assert result.exit_code == 0, result.output
    assert "attribution: 1 order line credited" in result.output
    assert [r["rec_id"] for r in credited(db, site.site_id)] == [r["rec_id"] for r in before]
    # Only orders of the last N days are rechecked.
    with db.begin() as conn:
        conn.execute(attributions.delete())
    recent_only = runner.invoke(args=["attribute", "--days", "0.5", "--site", site.write_key])
    assert recent_only.exit_code == 0 and "0 order lines credited" in recent_only.output
    assert credited(db, site.site_id) == []
    refused = runner.invoke(args=["attribute", "--days", "0"])
    assert refused.exit_code == 2 and "--days" in refused.output


def test_the_scheduler_sweep_says_it_rechecks_a_window(app, tracker, site, db):
    # Each round recounts the same orders: its line says so rather than announcing new credits.
    from webapp.scheduler import REPAIR_DAYS, repair_attributions

    send(
        app, tracker, [click("sku-1", at(days=1.5)), order("o-1", [("sku-1", 10.0, 1)], at(days=1))]
    )
    with app.app_context():
        first, again = repair_attributions(site), repair_attributions(site)
    assert (
        first
        == again
        == (
            f"1 order line credited to recommendation clicks "
            f"(orders of the last {REPAIR_DAYS:g} days rechecked)"
        )
    )
    assert len(credited(db, site.site_id)) == 1


def test_each_training_run_repairs_attributions(app, runner, tracker, site, db):
    # The scheduled trainer (make run) passes --attribute-days: the sweep runs after training,
    # even when there is too little behaviour to train on.
    send(app, tracker, [click("sku-1", at(days=2)), order("o-1", [("sku-1", 10.0, 1)], at(days=1))])
    with db.begin() as conn:
        conn.execute(attributions.delete())
    result = runner.invoke(args=["train", "--tune-seconds", "0", "--attribute-days", "3"])
    assert result.exit_code == 0, result.output
    assert "skipped:" in result.output and "1 order line credited" in result.output
    assert len(credited(db, site.site_id)) == 1
