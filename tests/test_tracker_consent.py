"""Tracking consent sent by the tracker becomes consent records (accounts.tracker_consent).

Through the real collector and ingest worker: a verified customer's choice is recorded at once;
an unverified claim records nothing in anyone's name; an anonymous visitor's choice is recorded
for the customer that visitor is later (or already) stitched to, once; a consent event the store
could not record is refused naming the field while the rest of its batch is stored; and
migration 208 widens a store made by migration 205 without losing its records.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from accounts import consent, personal_data, tracker_consent
from accounts.erasure import Stores, erase_sql
from accounts.export import export
from accounts.prefs_schema import consent_records
from tests.conftest import ORIGIN, drain, make_event
from tests.test_identity import identify, sign
from tracking.consent_event import CONSENT_EVENT
from tracking.schema import events, rejected_events, schema_migrations
from webapp.database import upgrade

BROWSER = {"Origin": ORIGIN}
WORDS = "We use cookies to see what you view, so that we can recommend products."


def consent_event(granted: bool, *, wording: str | None = WORDS, **fields) -> dict:
    """The event static/ecrm.js sends for ecrm('consent', granted, {wording})."""
    event = {
        "type": "track",
        "event": CONSENT_EVENT,
        "messageId": str(uuid.uuid4()),
        "anonymousId": "visitor-1",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": {} if wording is None else {"wording": wording},
        "context": {"consent": {"categoryPreferences": {"tracking": granted}}},
    }
    event.update(fields)
    return event


def send(client, site, batch: list[dict]):
    """POST /v1/batch as the shop's page does: the public write key and the shop's Origin."""
    return client.post(
        "/v1/batch", json={"batch": batch, "writeKey": site.write_key}, headers=BROWSER
    )


def records(db, user_id: str | None = None) -> list:
    with db.connect() as conn:
        query = sa.select(consent_records).order_by(consent_records.c.id)
        if user_id is not None:
            query = query.where(consent_records.c.user_id == user_id)
        return list(conn.execute(query))


def test_a_verified_customers_choice_is_recorded(app, client, site, db):
    signed = {"userHash": sign(site, "cust-1")}
    given = consent_event(
        True,
        userId="cust-1",
        context={"consent": {"categoryPreferences": {"tracking": True}}, **signed},
    )
    withdrawn = consent_event(
        False,
        userId="cust-1",
        wording=None,
        timestamp="2026-11-21T10:00:00.000Z",
        context={"consent": {"categoryPreferences": {"tracking": False}}, **signed},
    )
    assert send(client, site, [given, withdrawn]).get_json() == {"success": True}
    drain(app)
    with db.connect() as conn:
        history = consent.history(conn, site.site_id, "cust-1", whats=[consent.TRACKING])
    assert [(r.granted, r.source, r.wording) for r in history] == [
        (False, "tracker", tracker_consent.NO_WORDING),
        (True, "tracker", WORDS),
    ]
    assert history[1].at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert {r.message_id for r in history} == {given["messageId"], withdrawn["messageId"]}
    # Sent again (a retried request): stored once, recorded once.
    send(client, site, [given])
    drain(app)
    assert len(records(db)) == 2


def test_an_unverified_claim_records_nothing_in_anyones_name(app, client, site, db):
    bad = consent_event(
        True,
        userId="cust-1",
        context={"consent": {"categoryPreferences": {"tracking": True}}, "userHash": "0" * 64},
    )
    unsigned = consent_event(False, userId="cust-1", anonymousId="visitor-2")
    assert send(client, site, [bad, unsigned]).status_code == 200
    drain(app)
    assert records(db) == []
    # The events are kept, as their visitors' (a claim is no customer).
    with db.connect() as conn:
        kept = conn.execute(sa.select(events.c.user_id, events.c.anonymous_id)).all()
    assert sorted(kept) == [(None, "visitor-1"), (None, "visitor-2")]


def test_an_anonymous_choice_follows_the_visitor_to_the_customer(app, client, site, db, tmp_path):
    # Given before sign-in: the visitor's only, no record yet.
    before = consent_event(True)
    send(client, site, [before, make_event(1, anonymousId="visitor-1")])
    drain(app)
    assert records(db) == []
    # The shop's page identifies the visitor with its server's signature: the choice is theirs.
    signed_in = identify(
        "cust-7",
        "visitor-1",
        {},
        context={"userHash": sign(site, "cust-7")},
        timestamp="2026-11-20T11:00:00.000Z",
    )
    send(client, site, [signed_in])
    drain(app)
    assert [(r.user_id, r.granted, r.message_id) for r in records(db)] == [
        ("cust-7", True, before["messageId"])
    ]
    # Identified again (every page of a signed-in customer): still one record.
    again = dict(signed_in, messageId=str(uuid.uuid4()))
    send(client, site, [again])
    drain(app)
    assert len(records(db)) == 1
    # An anonymous choice arriving after the link (another tab's queue) is theirs too.
    late = consent_event(False, timestamp="2026-11-20T10:30:00.000Z")
    send(client, site, [late])
    drain(app)
    assert [(r.user_id, r.granted) for r in records(db)] == [("cust-7", True), ("cust-7", False)]
    # Newest first by when it was made, whatever the order it was recorded in.
    with db.connect() as conn:
        assert consent.current(conn, site.site_id, "cust-7")["tracking"].granted is False
    # Export carries the records and the events; erasure leaves neither.
    stores = Stores(db, None, "unused", tmp_path / "spool", tmp_path / "models")
    exported = export(stores, site.site_id, "cust-7")["tables"]
    assert {r["message_id"] for r in exported["consent_records"]["rows"]} == {
        before["messageId"],
        late["messageId"],
    }
    with db.connect() as conn:
        person = personal_data.find_person(conn, site.site_id, "cust-7")
    erase_sql(db, person)
    assert records(db) == []
    with db.connect() as conn:
        assert conn.execute(sa.select(events).where(events.c.event == CONSENT_EVENT)).all() == []


def test_choice_and_identify_in_one_batch(app, client, site, db):
    choice = consent_event(True, anonymousId="visitor-3")
    signed_in = identify(
        "cust-3",
        "visitor-3",
        {},
        context={"userHash": sign(site, "cust-3")},
        timestamp="2026-11-20T10:00:01.000Z",
    )
    send(client, site, [choice, signed_in])
    drain(app)
    assert [(r.user_id, r.message_id) for r in records(db)] == [("cust-3", choice["messageId"])]


def test_another_managers_categories_are_stored_and_record_nothing(app, client, site, db):
    other = consent_event(
        True,
        userId="cust-1",
        context={
            "consent": {"categoryPreferences": {"Advertising": True}},
            "userHash": sign(site, "cust-1"),
        },
    )
    assert send(client, site, [other]).get_json() == {"success": True}
    drain(app)
    assert records(db) == []
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 1


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            {"properties": {"wording": "x" * 2001}},
            "batch[1].properties.wording",
            "at most 2,000 characters (this one has 2,001)",
        ),
        (
            {"properties": {"wording": "   "}},
            "batch[1].properties.wording",
            "must be the words the visitor was shown: a non-empty string",
        ),
        (
            {"properties": {"wording": ["yes"]}},
            "batch[1].properties.wording",
            "must be the words the visitor was shown: a non-empty string",
        ),
        (
            {"context": {"consent": {"categoryPreferences": {"tracking": "yes"}}}},
            "batch[1].context.consent.categoryPreferences.tracking",
            "must be true or false",
        ),
        (
            {"context": {"consent": {"categoryPreferences": ["tracking"]}}},
            "batch[1].context.consent.categoryPreferences",
            "must be a JSON object",
        ),
        ({"context": {"consent": "yes"}}, "batch[1].context.consent", "must be a JSON object"),
    ],
)
def test_a_bad_consent_event_is_refused_and_the_batch_kept(
    app, client, site, db, change, field, reason
):
    signed = sign(site, "cust-1")
    good = consent_event(
        True,
        userId="cust-1",
        context={"consent": {"categoryPreferences": {"tracking": True}}, "userHash": signed},
    )
    bad = consent_event(False, userId="cust-1", **change)
    bad["context"] = {**bad["context"], "userHash": signed}
    response = send(client, site, [good, bad, make_event(2)])
    assert response.status_code == 200
    assert response.get_json()["rejected"] == [{"index": 1, "field": field, "reason": reason}]
    drain(app)
    assert [r.message_id for r in records(db)] == [good["messageId"]]
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 2
        assert conn.execute(sa.select(rejected_events.c.field)).scalars().all() == [field]


def test_every_event_refused_is_a_422(client, site):
    response = send(client, site, [consent_event(True, properties={"wording": "x" * 3000})])
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "batch[0].properties.wording"


def test_migration_208_keeps_the_records_of_a_205_store(app, db):
    # The table as migration 205 made it, with one record.
    old = sa.MetaData()
    table_205 = sa.Table(
        "consent_records",
        old,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("site_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("what", sa.String(80), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("wording", sa.Text, nullable=False),
        sa.CheckConstraint(
            "source IN ('portal', 'api', 'console', 'import')", name="ck_consent_source"
        ),
    )
    sa.Index("ix_consent_records_person", table_205.c.site_id, table_205.c.user_id)
    with db.begin() as conn:
        consent_records.drop(conn)
        table_205.create(conn)
        consent.record(conn, 1, "cust-1", "email:offers", True, source="portal", wording=WORDS)
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 208))
    assert upgrade(db) == [208]
    assert upgrade(db) == []
    row = {
        "site_id": 1,
        "user_id": "cust-1",
        "what": "tracking",
        "granted": False,
        "at": datetime.now(UTC),
        "source": "tracker",
        "wording": WORDS,
        "message_id": "m-1",
    }
    with db.begin() as conn:
        conn.execute(consent_records.insert().values(**row))
    with db.connect() as conn:
        kept = consent.history(conn, 1, "cust-1")
    assert [(r.what, r.source) for r in kept] == [
        ("tracking", "tracker"),
        ("email:offers", "portal"),
    ]
    with pytest.raises(sa.exc.IntegrityError), db.begin() as conn:
        conn.execute(consent_records.insert().values(**row))  # one event, one record per customer
