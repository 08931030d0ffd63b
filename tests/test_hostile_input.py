"""Hostile input, end to end: every event the collector accepts fits the store, or is refused.

Each test sends requests through the HTTP collector and, where the store is involved, drains them
with the real ingest worker into SQLite and PostgreSQL: an accepted event must become rows
(never a dead letter), a refused one a 4xx naming its field and a ``rejected_events`` row.
"""

from __future__ import annotations

import unicodedata
import uuid

import orjson
import pytest
import sqlalchemy as sa

from tests.conftest import count, drain, empty_store
from tests.test_collector_validation import assert_error, base_event, prefix, send
from tracking.identity import user_hash
from tracking.schema import customers, dead_letters, events, order_lines, orders, rejected_events
from tracking.sites import create_site
from webapp import create_app
from webapp.config import ConfigError, load_config

# --- 1. times at the calendar's edges ------------------------------------------------------------

EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"]


@pytest.mark.parametrize("route", ["batch", "track", "identify", "pixel"])
@pytest.mark.parametrize("field", ["timestamp", "sentAt", "originalTimestamp"])
@pytest.mark.parametrize("value", EDGES)
def test_calendar_edges_are_a_422_naming_the_field(client, site, route, field, value):
    event = base_event(route)
    event[field] = value
    assert_error(send(client, site, route, event), 422, f"{prefix(route)}.{field}")


@pytest.mark.parametrize("value", EDGES)
def test_batch_sent_at_at_the_calendar_edge_is_a_request_level_422(client, site, value):
    raw = orjson.dumps({"batch": [base_event("batch")], "sentAt": value})
    assert_error(send(client, site, "batch", raw=raw), 422, "sentAt")


# (client time field, its value, sentAt): valid alone, out of datetime's range once corrected.
SKEW_ROWS = [
    ("timestamp", "9999-12-30T00:00:00Z", "2000-01-01T00:00:00Z"),
    ("timestamp", "0002-01-01T00:00:00Z", "9999-12-30T00:00:00Z"),
    ("originalTimestamp", "9999-12-30T00:00:00Z", "2000-01-01T00:00:00Z"),
]


@pytest.mark.parametrize("route", ["batch", "track", "pixel"])
@pytest.mark.parametrize("field,value,sent_at", SKEW_ROWS)
def test_clock_skew_correction_leaving_the_calendar(client, site, route, field, value, sent_at):
    event = base_event(route)
    event.update({field: value, "sentAt": sent_at})
    assert_error(send(client, site, route, event), 422, f"{prefix(route)}.{field}")


def test_skew_overflow_spoils_only_its_event(client, site, app):
    good = [base_event("batch") for _ in range(2)]
    late = {**base_event("batch"), "timestamp": "9999-06-01T00:00:00Z"}
    body = {"batch": [good[0], late, good[1]], "sentAt": "0001-01-02T00:00:00Z"}
    response = send(client, site, "batch", raw=orjson.dumps(body))
    assert response.status_code == 200, response.get_json()
    assert [r["field"] for r in response.get_json()["rejected"]] == ["batch[1].timestamp"]
    drain(app)
    engine = app.extensions["ecrm"].engine
    assert count(engine, events) == 2
    assert count(engine, rejected_events, rejected_events.c.field == "batch[1].timestamp") == 1


# --- 2. the extremes of every typed field, through the collector and the worker into the store ---

LIMIT = 999_999_999_999.99  # the largest amount Numeric(14, 2) holds
OVER = 999_999_999_999.995  # rounds to 1,000,000,000,000.00: one cent too many
MONEY = ("total", "revenue", "subtotal", "tax", "shipping", "discount")


def _track(name: str = "Product Viewed", **fields) -> dict:
    return {"type": "track", "event": name, "anonymousId": "a-extreme", **fields}


def _order(products=None, **properties) -> dict:
    properties = {"order_id": f"o-{uuid.uuid4().hex}", **properties}
    if products is not None:
        properties["products"] = products
    return _track("Order Completed", properties=properties)


def _page(**fields) -> dict:
    return {"type": "page", "anonymousId": "a-extreme", **fields}


# (id, event, None when it must be stored, else the field suffix after "batch[0]")
EXTREMES = [
    *[(f"{m} at the limit", _order(**{m: LIMIT}), None) for m in MONEY],
    *[(f"{m} at the negative limit", _order(**{m: -LIMIT}), None) for m in MONEY],
    *[(f"{m} one cent over", _order(**{m: OVER}), f".properties.{m}") for m in MONEY],
    *[(f"{m} far over", _order(**{m: -1e15}), f".properties.{m}") for m in MONEY],
    ("price at the limit", _order([{"product_id": "p1", "price": LIMIT}]), None),
    ("price over", _order([{"price": 1}, {"price": 1e12}]), ".properties.products[1].price"),
    ("quantity at 2^31-1", _order([{"product_id": "p1", "quantity": 2**31 - 1}]), None),
    (
        "quantity at 2^31",
        _order([{"quantity": 1}, {"quantity": 2**31}]),
        ".properties.products[1].quantity",
    ),
    ("quantity at 2^63", _order([{"quantity": 2**63}]), ".properties.products[0].quantity"),
    (
        "line amount just under the limit",
        _order([{"product_id": "p1", "price": 465.66, "quantity": 2**31 - 1}]),
        None,
    ),
    (
        "line amount over the limit",
        _order([{"product_id": "p1", "price": 1000, "quantity": 10**9}]),
        ".properties.products[0].quantity",
    ),
    (
        "lines of one item adding up over the limit",
        _order([{"product_id": "p1", "price": 6e11}, {"product_id": "p1", "price": 6e11}]),
        ".properties.products",
    ),
    ("2,500 priced lines", _order([{"price": 1}] * 2500), None),
    ("10,000 empty lines", _order([{}] * 10_000), None),
    ("currency", _order(currency="EUR"), None),
    ("currency in lower case", _order(currency="krw"), None),
    ("currency empty", _order(currency=""), None),
    ("currency of four letters", _order(currency="EURO"), ".properties.currency"),
    ("currency a number", _order(currency=978), ".properties.currency"),
    ("order_id at 255", _order(order_id="o" * 255), None),
    ("order_id at 256", _order(order_id="o" * 256), ".properties.order_id"),
    ("line product_id at 255", _order([{"product_id": "p" * 255, "sku": "s" * 255}]), None),
    (
        "line product_id at 256",
        _order([{"product_id": "p" * 256}]),
        ".properties.products[0].product_id",
    ),
    ("line sku at 256", _order([{"sku": "s" * 256}]), ".properties.products[0].sku"),
    ("product_id at 255", _track(properties={"product_id": "p" * 255}), None),
    ("product_id at 256", _track(properties={"product_id": "p" * 256}), ".properties.product_id"),
    ("anonymousId at 255", _track(anonymousId="a" * 255), None),
    ("anonymousId at 256", _track(anonymousId="a" * 256), ".anonymousId"),
    ("userId at 255 astral characters", _track(userId="\U0001f600" * 255), None),
    ("userId at 256", _track(userId="u" * 256), ".userId"),
    ("previousId at 255", {"type": "alias", "previousId": "a" * 255, "userId": "u"}, None),
    ("previousId at 256", {"type": "alias", "previousId": "a" * 256, "userId": "u"}, ".previousId"),
    ("groupId at 255", {"type": "group", "userId": "u", "groupId": "g" * 255}, None),
    ("groupId at 256", {"type": "group", "userId": "u", "groupId": "g" * 256}, ".groupId"),
    ("messageId at 100", _track(messageId="m" * 100), None),
    ("messageId at 101", _track(messageId="m" * 101), ".messageId"),
    ("event at 200", _track("e" * 200), None),
    ("event at 201", _track("e" * 201), ".event"),
    ("name at 200", _page(name="n" * 200), None),
    ("name at 201", _page(name="n" * 201), ".name"),
    ("event on a page at 201", _page(event="e" * 201), ".event"),
    ("event on a page an object", _page(event={"a": 1}), ".event"),
    ("timestamp at 2000-01-01", _track(timestamp="2000-01-01T00:00:00Z"), None),
    ("timestamp before 2000", _track(timestamp="1999-12-31T23:59:59Z"), ".timestamp"),
    ("timestamp in year 1", _track(timestamp="0001-01-01T00:00:00+01:00"), ".timestamp"),
    ("sentAt on 0001-01-02", _track(sentAt="0001-01-02T00:00:00Z"), None),
    ("sentAt on 0001-01-01", _track(sentAt="0001-01-01T23:59:59Z"), ".sentAt"),
    ("sentAt on 9999-12-30", _track(sentAt="9999-12-30T23:59:59.999Z"), None),
    ("sentAt on 9999-12-31", _track(sentAt="9999-12-31T00:00:00Z"), ".sentAt"),
    ("sentAt past year 9999", _track(sentAt="9999-12-31T23:00:00-05:00"), ".sentAt"),
    ("a number just under 1e18", _track(properties={"n": 999_999_999_999_999_999}), None),
    ("a number at 1e18", _track(properties={"n": 10**18}), ".properties.n"),
    # The path of a refusal is stored: a NUL key must not be part of it (PostgreSQL text).
    ("NUL in a key and its value", _track(properties={"k\u0000": "v\u0000"}), ".properties"),
    ("NUL in a key over a number", _track(properties={"k\u0000": 1e30}), ".properties"),
    ("identify with a userId at 255", {"type": "identify", "userId": "u" * 255}, None),
    # null is no id at all (Segment's clients send "userId": null for anonymous visitors).
    ("userId null", _track(userId=None), None),
    ("anonymousId null, no userId", _track(anonymousId=None), ".userId"),
    ("alias to a null userId", {"type": "alias", "previousId": "a", "userId": None}, ".userId"),
    (
        "identify with null ids",
        {"type": "identify", "userId": None, "anonymousId": None},
        ".userId",
    ),
]


def test_extremes_are_stored_or_refused_never_dead_lettered(client, site, app, redis):
    sent = []
    for name, template, suffix in EXTREMES:
        event = orjson.loads(orjson.dumps(template))  # a fresh copy per run
        event.setdefault("messageId", str(uuid.uuid4()))
        response = send(client, site, "batch", event)
        if suffix is None:
            assert response.status_code == 200, (name, response.get_json())
        else:
            assert_error(response, 422, "batch[0]" + suffix)
        sent.append((name, event, suffix))

    worker = drain(app)
    engine = app.extensions["ecrm"].engine
    assert count(engine, dead_letters) == 0
    assert redis.xpending(app.config["STREAM_KEY"], app.config["CONSUMER_GROUP"])["pending"] == 0
    stored = [(n, e) for n, e, suffix in sent if suffix is None]
    totals = worker.totals
    assert (totals.received, totals.stored, totals.rejected) == (
        len(EXTREMES),
        len(stored),
        len(EXTREMES) - len(stored),
    )
    assert totals.duplicates == 0
    with engine.connect() as conn:
        for name, event in stored:
            row = conn.execute(
                sa.select(events.c.id).where(events.c.message_id == event["messageId"])
            ).first()
            assert row is not None, name
            if event.get("event") == "Order Completed":
                order_id = event["properties"]["order_id"]
                order = conn.execute(
                    sa.select(orders.c.total, orders.c.currency).where(
                        orders.c.order_id == order_id
                    )
                ).one()
                currency = event["properties"].get("currency") or None
                assert order.currency == (currency.upper() if currency else None), name
                lines = conn.execute(
                    sa.select(sa.func.count()).where(order_lines.c.order_id == order_id)
                ).scalar()
                assert lines == len(event["properties"].get("products", [])), name
        fields = conn.execute(sa.select(rejected_events.c.field)).scalars().all()
        if engine.dialect.name == "postgresql":
            # Every stored time reads back in any session time zone, west or east of UTC (Los
            # Angeles was UTC-7:53 in year 1; Kiritimati is UTC+14): no year 0, no year 10000.
            for zone in ("America/Los_Angeles", "Pacific/Kiritimati"):
                conn.exec_driver_sql(f"SET TIME ZONE '{zone}'")
                assert len(conn.execute(sa.select(events)).all()) == len(stored)
    assert sorted(fields) == sorted("batch[0]" + s for _, _, s in sent if s is not None)


def test_a_lone_surrogate_escape_is_refused_as_unreadable_json(client, site):
    raw = b'{"batch": [{"type": "page", "anonymousId": "a\\ud800"}]}'
    assert_error(send(client, site, "batch", raw=raw), 400, "body")
    raw = b'{"batch": [{"type": "page", "anonymousId": "a", "properties": {"\\udc00": 1}}]}'
    assert_error(send(client, site, "batch", raw=raw), 400, "body")


# --- 3. Unicode forms -----------------------------------------------------------------------------


def test_message_id_in_nfc_and_nfd_is_stored_once(client, site, app):
    nfc = "caf\u00e9-r\u00e9sum\u00e9-1"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    user_nfd = unicodedata.normalize("NFD", "Zo\u00eb")
    for message_id in (nfc, nfd):
        event = {**base_event("batch"), "messageId": message_id, "userId": user_nfd}
        event["anonymousId"] = unicodedata.normalize("NFD", "\u00e5-anon")
        # The server key: its user ids are trusted (this test is about the forms, not identity).
        assert send(client, site, "batch", event, key=site.server_key).status_code == 200
    worker = drain(app)
    engine = app.extensions["ecrm"].engine
    assert count(engine, events) == 1
    assert worker.totals.duplicates == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(events.c.message_id, events.c.user_id, events.c.anonymous_id))
        assert tuple(row.one()) == (nfc, "Zo\u00eb", "\u00e5-anon")


# --- 4. control characters in event names --------------------------------------------------------

CONTROL = ["Order\nCompleted", "Tab\tbed", "\x1b[31mred", "del\x7f", "c1\x85"]


@pytest.mark.parametrize("route", ["batch", "track", "pixel"])
@pytest.mark.parametrize("value", CONTROL)
def test_control_characters_in_event_names(client, site, route, value):
    event = {**base_event(route), "event": value}
    response = send(client, site, route, event)
    assert_error(response, 422, f"{prefix(route)}.event")
    assert response.get_json()["error"]["reason"] == "contains control characters"


@pytest.mark.parametrize("route", ["batch", "page", "screen", "pixel"])
def test_control_characters_in_page_names(client, site, route):
    event = {**base_event(route), "name": "Home\r\n"}
    if route == "pixel":
        event["type"] = "page"
    assert_error(send(client, site, route, event), 422, f"{prefix(route)}.name")


# --- 5. no raw IP address anywhere ----------------------------------------------------------------

RAW_IPS = {
    "context.ip": ("203.0.113.77", "203.0.113.0"),
    "context.traits.ip": ("198.51.100.23", "198.51.100.0"),
    "traits.ip": ("2001:db8:abcd:12:34::1", "2001:db8:abcd::"),
    "context.device.ip": ("192.0.2.201", "192.0.2.0"),
}


def _with_ips(event: dict, identity_secret: str | None = None) -> dict:
    """The event carrying client-sent addresses; signed for the site when given its secret."""
    event = dict(event)
    event["context"] = {
        "ip": RAW_IPS["context.ip"][0],
        "traits": {"ip": RAW_IPS["context.traits.ip"][0], "email": "x@example.test"},
        "device": {"ip": RAW_IPS["context.device.ip"][0], "ipv": 4},
        "library": {"name": "test", "ip": "not an address"},
    }
    event["traits"] = {**(event.get("traits") or {}), "ip": RAW_IPS["traits.ip"][0]}
    event["userId"] = "u-ip"
    if identity_secret is not None:
        event["context"]["userHash"] = user_hash(identity_secret, "u-ip")
    return event


def _every_stored_text(engine) -> str:
    """Every payload, trait set, rejected raw text and dead letter in the store, as one text."""
    with engine.connect() as conn:
        values = [
            *conn.execute(sa.select(events.c.payload)).scalars(),
            *conn.execute(sa.select(customers.c.traits)).scalars(),
            *conn.execute(sa.select(customers.c.unverified_traits)).scalars(),
            *conn.execute(sa.select(rejected_events.c.raw)).scalars(),
            *conn.execute(sa.select(dead_letters.c.payload)).scalars(),
        ]
    return orjson.dumps(values).decode()


@pytest.mark.parametrize("signed", [True, False], ids=["verified", "unverified"])
@pytest.mark.parametrize("route", ["batch", "track", "identify", "page", "group", "pixel"])
def test_no_raw_ip_is_stored_on_any_path(client, site, app, route, signed):
    # Signed by the shop's server: traits land in customers.traits; unsigned (a browser's claim):
    # in customers.unverified_traits. Both are cut.
    secret = site.identity_secret if signed else None
    accepted = _with_ips(base_event(route), secret)
    refused = {**_with_ips(base_event(route), secret), "timestamp": "never"}
    too_big = _with_ips(base_event(route), secret)
    # Over the 32 KB event limit but within a single call's envelope: refused per event (413).
    # Its addresses come before the padding, within the 4 KB of it that rejected_events keeps.
    too_big.pop("properties", None)
    too_big["properties"] = {"pad": "x" * 32_600}
    for event, status in ((accepted, 200), (refused, 422), (too_big, 413)):
        response = send(client, site, route, event, headers={"X-Forwarded-For": "192.0.2.99"})
        assert response.status_code == status, response.get_json()
    drain(app)
    engine = app.extensions["ecrm"].engine
    assert count(engine, events) == 1 and count(engine, rejected_events) == 2
    text = _every_stored_text(engine)
    for raw, _ in RAW_IPS.values():
        assert raw not in text
    assert "not an address" not in text
    assert "192.0.2.99" not in text
    with engine.connect() as conn:
        payload = conn.execute(sa.select(events.c.payload)).scalar_one()
        column = customers.c.traits if signed else customers.c.unverified_traits
        traits = conn.execute(sa.select(column)).scalar_one()
        raws = conn.execute(sa.select(rejected_events.c.raw)).scalars().all()
    # The request's own address (the test client's 127.0.0.1) replaces the client's context.ip.
    assert payload["context"]["ip"] == "127.0.0.0"
    assert payload["context"]["traits"]["ip"] == RAW_IPS["context.traits.ip"][1]
    assert payload["context"]["device"] == {"ip": RAW_IPS["context.device.ip"][1], "ipv": 4}
    assert payload["context"]["library"] == {"name": "test"}
    assert payload["traits"]["ip"] == RAW_IPS["traits.ip"][1]
    assert traits["ip"] in (RAW_IPS["traits.ip"][1], RAW_IPS["context.traits.ip"][1])
    for raw in raws:
        assert RAW_IPS["context.ip"][1] in raw and RAW_IPS["traits.ip"][1] in raw


# --- 6. behind a proxy: ECRM_TRUSTED_PROXIES ------------------------------------------------------


@pytest.mark.parametrize(
    "hops,forwarded,expected",
    [
        (0, "198.51.100.99", "10.1.2.0"),  # no proxy trusted: a client cannot spoof its address
        (1, "198.51.100.99", "198.51.100.0"),
        (1, "203.0.113.5, 198.51.100.99", "198.51.100.0"),  # the spoofed first hop is ignored
        (2, "203.0.113.5, 198.51.100.99", "203.0.113.0"),
    ],
)
def test_trusted_proxies_pick_the_client_address(app_config, hops, forwarded, expected):
    application = create_app({**app_config, "TRUSTED_PROXIES": hops})
    c = application.extensions["ecrm"]
    c.redis.flushdb()
    empty_store(c.engine)
    try:
        site, _ = create_site(c.engine, "Proxied shop", [])
        response = application.test_client().post(
            "/v1/track",
            json=base_event("track"),
            auth=(site.write_key, ""),
            headers={"X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": "10.1.2.3"},
        )
        assert response.status_code == 200, response.get_json()
        drain(application)
        with c.engine.connect() as conn:
            payload = conn.execute(sa.select(events.c.payload)).scalar_one()
        assert payload["context"]["ip"] == expected
        # The scheme and host the proxy was asked for, too (the OpenAPI document names them);
        # each proxy appends its own value, read as many from the right as there are hops.
        document = application.test_client().get(
            "/v1/openapi.json",
            headers={
                "X-Forwarded-Proto": ", ".join(["https"] * max(hops, 1)),
                "X-Forwarded-Host": ", ".join(["api.shop.example"] * max(hops, 1)),
            },
        )
        server = document.get_json()["servers"][0]["url"]
        assert server == ("https://api.shop.example" if hops else "http://localhost")
    finally:
        application.extensions["ecrm_serving"].close()
        c.engine.dispose()
        c.redis.close()


@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_trusted_proxies_must_be_a_hop_count(value):
    with pytest.raises(ConfigError, match="ECRM_TRUSTED_PROXIES"):
        load_config({"TESTING": True}, environ={"ECRM_TRUSTED_PROXIES": value})


def test_trusted_proxies_default_to_none():
    assert load_config({"TESTING": True}, environ={})["TRUSTED_PROXIES"] == 0
    assert (
        load_config({"TESTING": True}, environ={"ECRM_TRUSTED_PROXIES": "2"})["TRUSTED_PROXIES"]
        == 2
    )
