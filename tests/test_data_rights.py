"""Data rights end to end: export and erasure across SQL, the stream, the spool, Redis, models.

The marker test plants a unique string in one customer's traits and events, stitches an
anonymous id to them, trains two model versions on a real store, caches answers, leaves entries
of theirs in the stream and in a spool file, erases them with the API, then searches every
store for the marker and their ids: the SQL database (SQLite: the file's bytes; PostgreSQL:
every text and JSON column of every table), every Redis key and value, and every file under
the var folder (models, spool, mail).
"""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from accounts import addresses, inquiries, preferences
from accounts.mailer import Mailer, MailSettings
from accounts.outbox import enqueue_email
from accounts.webhook_delivery import Deliverer, DeliverySettings
from accounts.webhooks import SIGNATURE_HEADER, get_endpoint, set_endpoint, verify_signature
from analytics import value
from demo import ShopSpec, generate_shop
from recommender import forget
from recommender.training import TrainSettings, train
from tests.conftest import count, drain, make_event, store_events
from tests.test_portal_pages import ADDRESS
from tests.test_webhooks import Receiver
from tracking import erased
from tracking.catalogue import upsert_items, validate_item
from tracking.events import iso
from tracking.schema import customers, events, interaction_chunks, orders, rejected_events
from tracking.stream import Spool, make_entry
from webapp import database

SPEC = ShopSpec(seed=5, n_customers=60, n_items=30, n_clusters=3, days=10)


def auth(key: str) -> dict:
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Planted:
    """One customer with a marker in their traits and events, and their ids."""

    def __init__(self, site, items: list[str]):
        tag = uuid.uuid4().hex[:12]
        self.site = site
        self.marker = f"MARKER{tag}"
        self.user_id = f"rights-user-{tag}"
        self.anonymous_id = f"rights-anon-{tag}"
        self.items = items
        self.order_id = f"order-{uuid.uuid4().hex[:12]}"  # the shop's reference: kept
        self.needles = [self.marker, self.user_id, self.anonymous_id]

    @property
    def ids(self) -> dict[str, str]:
        return {"userId": self.user_id, "anonymousId": self.anonymous_id}

    def events(self, n: int = 6, *, stitched: bool = True) -> list[dict]:
        """Views by the anonymous id, an identify stitching it, views and an order as the user."""
        now = "2026-11-20T10:00:00.000Z"
        found = []
        for i in range(n):
            found.append(
                make_event(
                    anonymousId=self.anonymous_id,
                    timestamp=now,
                    properties={"product_id": self.items[i % len(self.items)], "note": self.marker},
                )
            )
        if stitched:
            found.append(
                {
                    "type": "identify",
                    "messageId": str(uuid.uuid4()),
                    "userId": self.user_id,
                    "anonymousId": self.anonymous_id,
                    "timestamp": now,
                    "traits": {"email": f"{self.marker.lower()}@example.com", "name": self.marker},
                }
            )
        for i in range(n):
            found.append(
                make_event(
                    userId=self.user_id,
                    anonymousId=self.anonymous_id,
                    timestamp=now,
                    properties={
                        "product_id": self.items[(i + 3) % len(self.items)],
                        "note": self.marker,
                    },
                )
            )
        found.append(
            make_event(
                event="Order Completed",
                userId=self.user_id,
                anonymousId=self.anonymous_id,
                timestamp=now,
                properties={
                    "order_id": self.order_id,
                    "total": 30.0,
                    "currency": "EUR",
                    "products": [{"product_id": self.items[0], "price": 10.0, "quantity": 3}],
                },
            )
        )
        return found


def shop_site(app, site) -> list[str]:
    """Stock the site with a small shop's catalogue and history; the item ids."""
    engine = app.extensions["ecrm"].engine
    shop = generate_shop(SPEC)
    upsert_items(engine, site.site_id, [validate_item(i) for i in shop.items])
    store_events(engine, site.site_id, shop.events)
    return [i["item_id"] for i in shop.items]


def registry_dir(app, site) -> Path:
    return Path(app.config["VAR_DIR"]) / "models" / str(site.site_id)


def train_site(app, site) -> str:
    engine = app.extensions["ecrm"].engine
    report = train(engine, TrainSettings(site.site_id, registry_dir(app, site), tune_seconds=0))
    assert report.promoted, report.failures
    return report.version


def redis_dump(client) -> list[bytes]:
    """Every key and every value Redis holds, as bytes."""
    found = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == b"string":
            found.append(client.get(key) or b"")
        elif kind == b"list":
            found.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                found.extend((field, value))
        elif kind == b"set":
            found.extend(client.smembers(key))
        elif kind == b"zset":
            found.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"stream":
            for _, fields in client.xrange(key):
                for field, value in fields.items():
                    found.extend((field, value))
    return found


def sql_hits(engine: sa.Engine, needles: list[str]) -> list[str]:
    """Where the needles are in SQL: the SQLite file's bytes, or every PostgreSQL text column."""
    hits = []
    if engine.dialect.name == "sqlite":
        engine.dispose()  # no connection holds a read snapshot or the WAL
        path = Path(engine.url.database)
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                data = file.read_bytes()
                hits.extend(f"{file.name}: {n}" for n in needles if n.encode() in data)
        return hits
    with engine.connect() as conn:
        for metadata in database.METADATA:
            for table in metadata.sorted_tables:
                for column in table.columns:
                    if not isinstance(column.type, sa.String | sa.Text | sa.JSON):
                        continue
                    text = sa.cast(column, sa.Text)
                    for needle in needles:
                        n = conn.execute(
                            sa.select(sa.func.count())
                            .select_from(table)
                            .where(text.like(f"%{needle}%"))
                        ).scalar()
                        if n:
                            hits.append(f"{table.name}.{column.name}: {needle}")
    return hits


def file_hits(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.name.endswith((".db", ".db-wal", ".db-shm")):
            data = path.read_bytes()
            hits.extend(f"{path.relative_to(root)}: {n}" for n in needles if n.encode() in data)
    return hits


@pytest.fixture
def receiver():
    """The shop's webhook receiver: a real HTTP server on 127.0.0.1."""
    server = Receiver()
    yield server
    server.close()


def test_the_marker_is_found_nowhere_after_erasure(app, client, site, db, redis, receiver):
    items = shop_site(app, site)
    person = Planted(site, items)
    other = f"bystander-{uuid.uuid4().hex[:8]}"
    headers = auth(site.server_key)
    r = client.post("/v1/batch", json={"batch": person.events()}, headers=headers)
    assert r.status_code == 200, r.json
    # A refused event naming them: its raw payload is kept in rejected_events.
    bad = make_event(**person.ids, timestamp="not a time", properties={"x": person.marker})
    mixed = [bad, make_event(anonymousId=person.anonymous_id)]
    assert client.post("/v1/batch", json={"batch": mixed}, headers=headers).status_code == 200
    drain(app)
    assert count(db, customers, customers.c.user_id == person.user_id) == 1
    assert count(db, events, events.c.anonymous_id == person.anonymous_id) >= 6

    first = train_site(app, site)
    current = train_site(app, site)
    assert first != current
    # Answers cached for the user and for the anonymous id.
    for params in ({"user_id": person.user_id}, {"anonymous_id": person.anonymous_id}):
        r = client.get("/v1/recommendations", query_string=params, headers=headers)
        assert r.status_code == 200, r.json
    assert any(person.user_id.encode() in k for k in redis.scan_iter("ecrm:recs:*"))

    # Still in the stream, unread: one entry of theirs only, one shared with a bystander.
    later = make_event(**person.ids, properties={"product_id": items[1], "m": person.marker})
    theirs_and_other = [
        later,
        make_event(userId=other, anonymousId=other, properties={"product_id": items[2]}),
    ]
    for batch in ([make_event(anonymousId=person.anonymous_id)], theirs_and_other):
        assert client.post("/v1/batch", json={"batch": batch}, headers=headers).status_code == 200
    # And in a spool file, as when Redis was down.
    spool = Spool(app.config["SPOOL_DIR"])
    received = iso(datetime.now(UTC))
    for batch in (
        [make_event(**person.ids, properties={"m": person.marker})],
        [make_event(userId=other, anonymousId=other, properties={"product_id": items[3]})],
    ):
        entry = make_entry(
            request_id=uuid.uuid4().hex,
            site_id=site.site_id,
            received_at=received,
            events=[{**e, "receivedAt": received, "sentAt": None} for e in batch],
            rejected=[],
        )
        spool.append(entry)

    # What the portal, the console and the scores keep of them: an inquiry with a reply, an
    # address, consent records, an email written to var/mail, a notice queued for the shop,
    # a customer value snapshot.
    set_endpoint(db, site.site_id, receiver.url, allow_private=True)
    with db.begin() as conn:
        inquiry = inquiries.open_inquiry(
            conn,
            site.site_id,
            person.user_id,
            category="question",
            subject=f"About {person.marker}",
            body=f"Where is {person.marker}?",
        )
        address, problems = addresses.check_address({**ADDRESS, "name": person.marker})
        assert problems == {}
        addresses.add_address(conn, site.site_id, person.user_id, address)
        preferences.set_preferences(
            conn,
            site.site_id,
            person.user_id,
            {"email:offers": True},
            source="portal",
            wording="Offers by email",
        )
        enqueue_email(
            conn,
            site_id=site.site_id,
            to=f"{person.marker.lower()}@example.com",
            template="inquiry_reply",
            locale="en",
            context={
                "site_name": "Shop",
                "subject": f"About {person.marker}",
                "reply_text": f"{person.marker} ships today",
                "inquiry_url": "http://localhost/account/",
            },
            user_id=person.user_id,
        )
    Mailer(db, MailSettings.from_config(app.config)).run_once()
    assert list((Path(app.config["VAR_DIR"]) / "mail").glob("*.eml"))
    value.refresh(db, site.site_id)

    # The export holds them first.
    exported = client.get(f"/v1/customers/{person.user_id}/export", headers=headers)
    assert exported.status_code == 200, exported.json
    document = exported.json
    assert document["anonymous_ids"] == [person.anonymous_id]
    assert document["tables"]["customers"]["rows"][0]["traits"]["name"] == person.marker
    assert len(document["tables"]["events"]["rows"]) == count(
        db,
        events,
        sa.or_(events.c.user_id == person.user_id, events.c.anonymous_id == person.anonymous_id),
    )
    assert document["tables"]["orders"]["rows"][0]["order_id"] == person.order_id
    assert document["tables"]["rejected_events"]["rows"]
    assert len(document["interactions"]) >= 12
    assert document["models"]["versions"] == sorted([first, current])
    assert document["redis"]["recent_activity"]
    assert f"u:{person.user_id}" in document["redis"]["cached_recommendations"]
    assert "audit_log" in document["excluded"]
    tables = document["tables"]
    assert tables["inquiries"]["rows"][0]["id"] == inquiry
    assert person.marker in tables["inquiry_messages"]["rows"][0]["body"]
    assert tables["customer_addresses"]["rows"][0]["name"] == person.marker
    assert tables["consent_records"]["rows"] and tables["webhook_deliveries"]["rows"]
    assert tables["email_outbox"]["rows"] and tables["value_scores"]["rows"]

    r = client.delete(f"/v1/customers/{person.user_id}", headers=headers)
    assert r.status_code == 200, r.json
    # Serving forgot them at once: nothing personal, from the version it already held (the
    # model files are rewritten by a background process: waited for below).
    held = app.extensions["ecrm_serving"].state(site.site_id).bundle
    assert person.user_id not in held.interactions.user_index and held.version == current
    recs = client.get(
        "/v1/recommendations", query_string={"user_id": person.user_id}, headers=headers
    )
    assert recs.status_code == 200 and recs.json["source"] != "personal", recs.json
    receipt = r.json["receipt"]
    text = orjson.dumps(receipt).decode()
    assert not any(n in text for n in person.needles), text
    assert receipt["completed_at"] and receipt["requested_by"] == "api"
    counts = receipt["counts"]
    assert counts["customers"] == 1 and counts["events"] >= 13 and counts["identities"] == 1
    assert counts["stream"] == 2 and counts["spool"] == 1 and counts["models"] == 2
    assert counts["interaction_chunks"] >= 12 and counts["redis"] >= 2 and counts["orders"] == 1

    # The order stays for accounting, without them.
    with db.connect() as conn:
        order = conn.execute(sa.select(orders).where(orders.c.order_id == person.order_id)).one()
    assert order.user_id is None and order.anonymous_id is None and float(order.total) == 30.0
    needles = person.needles

    # The shop is told, signed, with their id and the receipt; the stored notice then forgets
    # the id (the receiver, the shop's side, keeps what it was sent).
    assert Deliverer(db, DeliverySettings.from_config(app.config)).run_once() == 1
    (notice,) = receiver.requests
    assert notice["headers"]["Ecrm-Event-Type"] == "customer.deleted"
    secret = get_endpoint(db, site.site_id).secret
    assert verify_signature(secret, notice["headers"][SIGNATURE_HEADER], notice["body"])
    assert orjson.loads(notice["body"])["data"] == {
        "user_id": person.user_id,
        "receipt_id": receipt["receipt_id"],
        "erased_at": receipt["completed_at"],
    }

    # The bystander's events, in the stream and the spool, are still stored.
    drain(app)
    assert count(db, events, events.c.user_id == other) == 2
    # Nothing of theirs came back through the stream or the spool.
    assert count(db, events, events.c.user_id == person.user_id) == 0

    assert sql_hits(db, needles) == []
    # Once the rewrite of the model files finishes (erasure's background process), they hold
    # nothing of them either.
    models = registry_dir(app, site)
    assert forget.wait_for_rewrites(models, timeout=120) and forget.pending(models) == {}
    dump = redis_dump(redis)
    assert [n for n in needles if any(n.encode() in v for v in dump)] == []
    assert file_hits(Path(app.config["VAR_DIR"]), needles) == []

    # The model serving now is the rewritten one, without them.
    r = client.get("/v1/recommendations", query_string={"user_id": person.user_id}, headers=headers)
    assert r.status_code == 200 and r.json["source"] != "personal", r.json
    assert r.json["model_version"] == os.readlink(registry_dir(app, site) / "current")
    # Asking again answers the same receipt, and finds nothing more.
    again = client.delete(f"/v1/customers/{person.user_id}", headers=headers)
    assert again.status_code == 200
    assert again.json["receipt"]["receipt_id"] == receipt["receipt_id"]
    # Their export is gone too.
    assert client.get(f"/v1/customers/{person.user_id}/export", headers=headers).status_code == 404


def test_events_arriving_after_erasure_are_dropped_and_training_leaves_them_out(
    app, client, site, db, redis
):
    items = shop_site(app, site)
    person = Planted(site, items)
    headers = auth(site.server_key)
    assert client.post("/v1/batch", json={"batch": person.events()}, headers=headers).status_code
    drain(app)
    r = client.delete(f"/v1/customers/{person.user_id}", headers=headers)
    assert r.status_code == 200, r.json
    # A browser retries its queue afterwards: accepted (a 2xx), never stored, no activity; a
    # refused event of theirs is not kept either.
    bad = make_event(**person.ids, timestamp="not a time", properties={"x": person.marker})
    late = [*person.events(2), bad]
    assert client.post("/v1/batch", json={"batch": late}, headers=headers).status_code == 200
    worker = drain(app)
    assert worker.totals.erased == len(late)
    assert count(db, events, events.c.anonymous_id == person.anonymous_id) == 0
    assert count(db, customers, customers.c.user_id == person.user_id) == 0
    assert count(db, rejected_events, rejected_events.c.raw.like(f"%{person.marker}%")) == 0
    assert not [k for k in redis.scan_iter("ecrm:*") if person.anonymous_id.encode() in k]
    # Rows written behind the tombstone's back (a worker racing the erasure) never reach a model.
    store_events(db, site.site_id, person.events(3))
    assert count(db, interaction_chunks) > 0
    version = train_site(app, site)
    users = orjson.loads((registry_dir(app, site) / version / "interactions.json").read_bytes())
    assert person.user_id not in users["user_ids"]
    assert f"anon:{person.anonymous_id}" not in users["user_ids"]
    with db.connect() as conn:
        assert erased.erased_model_users(conn, site.site_id, [person.user_id, "someone"]) == {
            person.user_id
        }


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("DELETE", "/v1/customers/nobody", 404, "user_id"),
        ("GET", "/v1/customers/nobody/export", 404, "user_id"),
        ("DELETE", "/v1/customers/a%00b", 400, "user_id"),
        ("GET", "/v1/customers/a%00b/export", 400, "user_id"),
        ("DELETE", "/v1/customers/" + "x" * 256, 400, "user_id"),
        ("GET", "/v1/customers/" + "x" * 256 + "/export", 400, "user_id"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(client, site, method, path, status, field):
    r = client.open(path, method=method, headers=auth(site.server_key))
    assert r.status_code == status, r.json
    assert r.json["error"]["field"] == field


def test_only_the_sites_server_key_reaches_its_customers(app, client, site, db):
    from tracking.sites import create_site

    other_site, other_key = create_site(db, "Other shop", [])
    person = Planted(site, ["sku-1", "sku-2", "sku-3", "sku-4"])
    store_events(db, site.site_id, person.events(2))
    path = f"/v1/customers/{person.user_id}"
    for method, url in (("GET", path + "/export"), ("DELETE", path)):
        assert client.open(url, method=method).status_code == 401
        assert client.open(url, method=method, headers=auth(site.write_key)).status_code == 401
        # Another site's key finds no such customer.
        assert client.open(url, method=method, headers=auth(other_key)).status_code == 404
        browser = {**auth(site.server_key), "Sec-Fetch-Site": "cross-site"}
        assert client.open(url, method=method, headers=browser).status_code == 403
    assert count(db, customers, customers.c.user_id == person.user_id) == 1
    assert other_site.site_id != site.site_id


def test_without_redis_the_api_answers_503_and_a_retry_finishes(
    app, client, site, db, monkeypatch, tmp_path
):
    import redis as redis_lib

    from webapp import customers_api

    person = Planted(site, ["sku-1", "sku-2", "sku-3", "sku-4"])
    store_events(db, site.site_id, person.events(2))
    working = customers_api.stores
    dead = redis_lib.Redis(unix_socket_path=str(tmp_path / "no-redis.sock"))
    monkeypatch.setattr(
        customers_api,
        "stores",
        lambda: working().__class__(**{**working().__dict__, "redis": dead}),
    )
    headers = auth(site.server_key)
    for method, path in (("GET", "/export"), ("DELETE", "")):
        r = client.open(f"/v1/customers/{person.user_id}{path}", method=method, headers=headers)
        assert r.status_code == 503, r.json
        assert r.json["error"]["field"] == "redis" and r.json["retry"] is True
        assert int(r.headers["Retry-After"]) > 0
    # The tombstone is down already: nothing of theirs is stored from here on.
    with db.connect() as conn:
        assert erased.erased(conn, site.site_id, [(erased.USER, person.user_id)])
    monkeypatch.setattr(customers_api, "stores", working)
    r = client.delete(f"/v1/customers/{person.user_id}", headers=headers)
    assert r.status_code == 200 and r.json["receipt"]["completed_at"]
    assert count(db, events, events.c.anonymous_id == person.anonymous_id) == 0
