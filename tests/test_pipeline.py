"""From the collector to SQL: counts, dedup, identities, sessions, orders, privacy."""

from __future__ import annotations

import random
import uuid

import sqlalchemy as sa

from tests.conftest import ORIGIN, count, drain, make_event
from tracking.customers import customer_history
from tracking.identity import user_hash
from tracking.schema import (
    customers,
    events,
    identities,
    order_lines,
    orders,
    rejected_events,
    sessions,
)


def _mixed_batches(n_good: int, n_bad: int, size: int = 40, seed: int = 7) -> list[list[dict]]:
    rng = random.Random(seed)
    good = [make_event(i) for i in range(n_good)]
    bad_kinds = [
        {"timestamp": "not a time"},
        {"type": "jump"},
        {"anonymousId": None, "userId": None},
        {"properties": "x"},
        {"event": ""},
    ]
    bad = []
    for i in range(n_bad):
        event = make_event(10_000 + i)
        for key, value in bad_kinds[i % len(bad_kinds)].items():
            if value is None:
                event.pop(key, None)
            else:
                event[key] = value
        bad.append(event)
    mixed = good + bad
    rng.shuffle(mixed)
    return [mixed[i : i + size] for i in range(0, len(mixed), size)]


def test_thousand_good_ten_bad(app, tracker, db):
    batches = _mixed_batches(1000, 10)
    rejected_in_responses = 0
    for batch in batches:
        response = tracker.batch(batch)
        assert response.status_code == 200, response.get_json()
        rejected_in_responses += len(response.get_json().get("rejected", []))
    assert rejected_in_responses == 10
    worker = drain(app)
    assert count(db, events) == 1000
    assert count(db, rejected_events) == 10
    assert worker.totals.received == 1010  # received = stored + rejected
    with db.connect() as conn:
        reasons = conn.execute(sa.select(rejected_events.c.reason, rejected_events.c.raw)).all()
    assert all(reason and raw for reason, raw in reasons)


def test_same_batches_twice_stored_once(app, tracker, db):
    batches = _mixed_batches(300, 5)
    for _ in range(2):
        for batch in batches:
            assert tracker.batch(batch).status_code == 200
    drain(app)
    assert count(db, events) == 300
    # A bad event sent twice is on record once, as a good one is stored once.
    assert count(db, rejected_events) == 5
    # Draining again (a redelivery after a crash) changes nothing.
    drain(app)
    assert count(db, events) == 300


def test_clock_skew_is_corrected(app, tracker, db):
    event = make_event(1, timestamp="2026-11-20T10:00:00.000Z", sentAt="2026-11-20T10:05:00.000Z")
    assert tracker.batch([event]).status_code == 200
    drain(app)
    with db.connect() as conn:
        row = conn.execute(sa.select(events)).one()
    # The client's clock ran ahead of ours by (sentAt - receivedAt); the stored time moved back.
    received = row.received_at.replace(tzinfo=None)
    stored = row.timestamp.replace(tzinfo=None)
    assert abs((received - stored).total_seconds() - 300) < 5
    assert row.payload["originalTimestamp"] == "2026-11-20T10:00:00.000Z"


def test_anonymous_history_belongs_to_customer_after_identify(app, tracker, db, site):
    anonymous_id = str(uuid.uuid4())
    browsing = [
        make_event(i, anonymousId=anonymous_id, timestamp=f"2026-11-20T10:0{i}:00.000Z")
        for i in range(3)
    ]
    identify = {
        "type": "identify",
        "messageId": str(uuid.uuid4()),
        "anonymousId": anonymous_id,
        "userId": "cust-42",
        "traits": {"email": "cust-42@example.test", "first_name": "Ada"},
        "timestamp": "2026-11-20T10:04:00.000Z",
        # The shop's server signed the user id (identity verification): a verified sign-in.
        "context": {"userHash": user_hash(site.identity_secret, "cust-42")},
    }
    later = make_event(
        9,
        userId="cust-42",
        timestamp="2026-11-21T09:00:00.000Z",
        context={"userHash": user_hash(site.identity_secret, "cust-42")},
    )
    later.pop("anonymousId")
    assert tracker.batch([*browsing, identify, later]).status_code == 200
    drain(app)
    with db.connect() as conn:
        history = customer_history(conn, site.site_id, "cust-42")
        customer = conn.execute(sa.select(customers)).one()
        links = conn.execute(sa.select(identities)).all()
    assert [row.message_id for row in history] == [
        *[e["messageId"] for e in browsing],
        identify["messageId"],
        later["messageId"],
    ]
    assert customer.traits == {"email": "cust-42@example.test", "first_name": "Ada"}
    assert [(link.anonymous_id, link.user_id, link.source) for link in links] == [
        (anonymous_id, "cust-42", "identify")
    ]


def test_alias_links_ids(app, client, site, db):
    body = {
        "previousId": "old-id",
        "userId": "cust-7",
        "messageId": "alias-1",
        "context": {"userHash": user_hash(site.identity_secret, "cust-7")},
    }
    response = client.post("/v1/alias", json=body, auth=(site.write_key, ""))
    assert response.status_code == 200
    drain(app)
    with db.connect() as conn:
        link = conn.execute(sa.select(identities)).one()
    assert (link.anonymous_id, link.user_id, link.source) == ("old-id", "cust-7", "alias")


def test_sessions_end_after_thirty_minutes(app, tracker, db):
    times = ["10:00", "10:20", "10:45", "11:30", "11:31"]  # gap of 45 minutes before 11:30
    batch = [
        make_event(0, anonymousId="visitor", timestamp=f"2026-11-20T{t}:00.000Z") for t in times
    ]
    assert tracker.batch(batch[:2]).status_code == 200
    drain(app)
    assert tracker.batch(batch[2:]).status_code == 200
    drain(app)
    with db.connect() as conn:
        rows = conn.execute(sa.select(sessions).order_by(sessions.c.started_at)).all()
        per_event = (
            conn.execute(sa.select(events.c.session_id).order_by(events.c.timestamp))
            .scalars()
            .all()
        )
    assert [r.event_count for r in rows] == [3, 2]
    assert per_event[:3] == [rows[0].session_id] * 3
    assert per_event[3:] == [rows[1].session_id] * 2


def test_order_completed_becomes_order_and_lines(app, tracker, db):
    order = make_event(
        1,
        event="Order Completed",
        userId="cust-1",
        properties={
            "order_id": "ord-1",
            "total": 31.5,
            "revenue": 27.0,
            "currency": "EUR",
            "products": [
                {
                    "product_id": "sku-1",
                    "sku": "S1",
                    "price": 9.0,
                    "quantity": 2,
                    "category": "A/B",
                },
                {"product_id": "sku-2", "price": 9.0, "quantity": 1, "name": "Mug"},
            ],
        },
    )
    # From the shop's backend (server key): its user id is trusted.
    assert tracker.batch([order], server=True).status_code == 200
    resent = dict(order, messageId=str(uuid.uuid4()))  # same order_id, new message: one order
    assert tracker.batch([resent], server=True).status_code == 200
    drain(app)
    with db.connect() as conn:
        row = conn.execute(sa.select(orders)).one()
        lines = conn.execute(sa.select(order_lines).order_by(order_lines.c.position)).all()
    assert (row.order_id, row.user_id, float(row.total), float(row.revenue), row.currency) == (
        "ord-1",
        "cust-1",
        31.5,
        27.0,
        "EUR",
    )
    assert [(line.item_id, line.quantity, float(line.price)) for line in lines] == [
        ("sku-1", 2, 9.0),
        ("sku-2", 1, 9.0),
    ]


def test_order_without_order_id_is_rejected(tracker):
    event = make_event(1, event="Order Completed", properties={"total": 3})
    response = tracker.batch([event])
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "batch[0].properties.order_id"


def test_no_raw_ip_is_stored(app, client, site, db):
    event = make_event(1, context={"ip": "203.0.113.77", "locale": "de-DE"})
    response = client.post(
        "/v1/batch",
        json={"batch": [event]},
        auth=(site.write_key, ""),
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
    )
    assert response.status_code == 200
    drain(app)
    with db.connect() as conn:
        payload = conn.execute(sa.select(events.c.payload)).scalar_one()
    assert payload["context"]["ip"] == "198.51.100.0"
    assert "203.0.113.77" not in str(payload) and "198.51.100.23" not in str(payload)


def test_do_not_track_and_gpc_are_honoured_by_default(app, client, site, db):
    for header in ({"DNT": "1"}, {"Sec-GPC": "1"}):
        response = client.post(
            "/v1/batch", json={"batch": [make_event(1)]}, auth=(site.write_key, ""), headers=header
        )
        assert response.status_code == 200
        assert response.get_json() == {"success": True, "stored": False, "reason": "do_not_track"}
    drain(app)
    assert count(db, events) == 0


def test_site_may_choose_to_store_dnt_requests(app, runner, client, db):
    result = runner.invoke(args=["sites", "create", "Analytics shop", "--store-dnt"])
    assert result.exit_code == 0, result.output
    write_key = result.output.split("write key:")[1].split()[0]
    response = client.post(
        "/v1/batch", json={"batch": [make_event(1)]}, auth=(write_key, ""), headers={"DNT": "1"}
    )
    assert response.get_json() == {"success": True}
    drain(app)
    assert count(db, events) == 1


def test_write_key_in_body_and_server_key(app, client, site, db):
    body = {"writeKey": site.write_key, "batch": [make_event(1)]}
    assert client.post("/v1/batch", json=body).status_code == 200
    # A backend may use the secret server key (from a browser page it is refused:
    # tests/test_keys_and_cors.py).
    response = client.post("/v1/track", json=make_event(2), auth=(site.server_key, ""))
    assert response.status_code == 200
    drain(app)
    with db.connect() as conn:
        payloads = conn.execute(sa.select(events.c.payload)).scalars().all()
    assert len(payloads) == 2
    assert all("writeKey" not in p for p in payloads)


def test_preflight_answers_allowed_origins_only(client, site):
    ok = client.options("/v1/batch", headers={"Origin": ORIGIN})
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in ok.headers
    assert "Origin" in ok.headers["Vary"]
    refused = client.options("/v1/batch", headers={"Origin": "https://evil.test"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_pixel_answers_a_gif_and_stores_the_event(app, client, site, db):
    import base64
    import json

    data = base64.b64encode(
        json.dumps({"writeKey": site.write_key, **make_event(3)}).encode()
    ).decode()
    response = client.get(f"/v1/pixel.gif?data={data}")
    assert response.status_code == 200
    assert response.mimetype == "image/gif"
    assert response.data.startswith(b"GIF89a")
    drain(app)
    assert count(db, events) == 1
