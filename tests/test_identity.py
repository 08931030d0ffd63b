"""Identity verification: a browser's user id is a claim until the shop's server signs it.

What the public write key can no longer do (rewrite a customer's traits, link an anonymous id to
them, add to their history or model, read their recommendations), what the signed user id, the
server key and a site with verification off still do, and the migration that gave every site
its identity secret.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import ORIGIN, drain, make_event, store_events
from tests.test_serving import Served, trained  # noqa: F401 (trained: a fixture)
from tracking import interaction_log, migrations
from tracking.schema import customers, events, identities, schema_migrations, sites

BROWSER = {"Origin": ORIGIN}


def sign(site, user_id: str) -> str:
    """The shop server's signature of a user id (identity verification)."""
    from tracking.identity import user_hash

    return user_hash(site.identity_secret, user_id)


def identify(user_id, anonymous_id, traits, **fields) -> dict:
    return {
        "type": "identify",
        "messageId": str(uuid.uuid4()),
        "userId": user_id,
        "anonymousId": anonymous_id,
        "traits": traits,
        "timestamp": "2026-11-20T10:00:00.000Z",
        **fields,
    }


def browser_batch(client, site, batch: list[dict]):
    """POST /v1/batch as a browser on the shop's page: the public write key, an allowed Origin."""
    response = client.post(
        "/v1/batch", json={"batch": batch, "writeKey": site.write_key}, headers=BROWSER
    )
    assert response.status_code == 200, response.get_json()
    assert not response.get_json().get("rejected"), response.get_json()
    return response


def server_batch(client, site, batch: list[dict]):
    """POST /v1/batch from the shop's backend, with the secret server key."""
    response = client.post("/v1/batch", json={"batch": batch}, auth=(site.server_key, ""))
    assert response.status_code == 200, response.get_json()
    return response


def customer(db, user_id: str):
    with db.connect() as conn:
        return conn.execute(sa.select(customers).where(customers.c.user_id == user_id)).one()


def links(db) -> set[tuple[str, str]]:
    with db.connect() as conn:
        return {(r.anonymous_id, r.user_id) for r in conn.execute(sa.select(identities))}


def logged_users(db, site_id: int) -> list[tuple[str | None, str | None]]:
    """(user, anonymous) of every interaction in the training log."""
    with db.connect() as conn:
        chunks = list(interaction_log.read(conn, site_id))
    return [
        (user, anonymous)
        for chunk in chunks
        for user, anonymous in zip(chunk.column("users"), chunk.column("anonymous"), strict=True)
    ]


REAL_TRAITS = {"age": 34, "email": "ada@example.test"}


def test_a_browser_cannot_rewrite_a_customer_or_link_itself_to_them(app, client, site, db):
    server_batch(client, site, [identify("cust-42", "ada-phone", REAL_TRAITS)])
    attack = [
        # The age trait gates age-restricted items (recommender.rules); the email is theirs.
        identify("cust-42", "mallory", {"age": 12, "email": "mallory@evil.test"}),
        # A marker sent by the client is no proof: the collector always sets its own.
        identify("cust-42", "mallory", {"plan": "gold"}, verified=True),
        make_event(1, userId="cust-42", anonymousId="mallory", context={"traits": {"age": 12}}),
        make_event(2, userId="cust-42", anonymousId="mallory", verified=True),
        # Nor is a claim the client names itself.
        identify(None, "mallory-2", {"age": 12}, claimedUserId="cust-99"),
    ]
    browser_batch(client, site, attack)
    drain(app)
    with db.connect() as conn:
        assert conn.execute(sa.select(customers.c.user_id)).scalars().all() == ["cust-42"]

    row = customer(db, "cust-42")
    assert row.traits == REAL_TRAITS
    assert links(db) == {("ada-phone", "cust-42")}
    # Kept, but as what they are: claims.
    assert row.unverified_traits == {"age": 12, "email": "mallory@evil.test", "plan": "gold"}
    with db.connect() as conn:
        stored = conn.execute(
            sa.select(events.c.user_id, events.c.anonymous_id, events.c.payload).where(
                events.c.anonymous_id == "mallory"
            )
        ).all()
    assert len(stored) == 4 and {r.user_id for r in stored} == {None}
    assert all(r.payload["verified"] is False for r in stored)
    assert all(r.payload["claimedUserId"] == "cust-42" for r in stored)
    # The product views count for the anonymous visitor only: no customer's model moves.
    assert logged_users(db, site.site_id) == [(None, "mallory"), (None, "mallory")]


def test_a_signed_user_id_from_a_browser_is_verified(app, client, site, db):
    signed = {"userHash": sign(site, "cust-42")}
    browser_batch(
        client,
        site,
        [
            identify("cust-42", "ada-phone", REAL_TRAITS, context=signed),
            make_event(1, userId="cust-42", anonymousId="ada-phone", context=dict(signed)),
        ],
    )
    drain(app)
    assert customer(db, "cust-42").traits == REAL_TRAITS
    assert customer(db, "cust-42").unverified_traits is None
    assert links(db) == {("ada-phone", "cust-42")}
    with db.connect() as conn:
        payloads = conn.execute(sa.select(events.c.user_id, events.c.payload)).all()
    assert {r.user_id for r in payloads} == {"cust-42"}
    for r in payloads:
        assert r.payload["verified"] is True
        assert "userHash" not in r.payload["context"]  # the signature is not kept
    # (The log keeps the anonymous id only where there is no user id.)
    assert logged_users(db, site.site_id) == [("cust-42", None)]


@pytest.mark.parametrize(
    ("which", "verified"),
    [
        ("right", True),
        ("upper-case", True),
        ("another user's", False),
        ("truncated", False),
        ("not hex", False),
        ("a number", False),
        ("empty", False),
        ("none", False),
    ],
)
def test_only_the_right_signature_verifies(app, client, site, db, which, verified):
    right = sign(site, "cust-42")
    user_hash = {
        "right": right,
        "upper-case": right.upper(),
        "another user's": sign(site, "cust-43"),
        "truncated": right[:32],
        "not hex": "é" * 64,
        "a number": 42,
        "empty": "",
        "none": None,
    }[which]
    event = identify("cust-42", "visitor", {"email": "x@example.test"})
    event["context"] = {"userHash": user_hash}
    browser_batch(client, site, [event])
    drain(app)
    assert (("visitor", "cust-42") in links(db)) is verified
    assert (customer(db, "cust-42").traits == {"email": "x@example.test"}) is verified


def test_the_server_key_and_server_side_writes_are_trusted(app, client, site, db):
    server_batch(client, site, [identify("cust-1", "a-1", {"age": 40}, verified=False, context={})])
    # The demo loader and store_events write into the stream without the collector: trusted.
    store_events(db, site.site_id, [identify("cust-2", "a-2", {"age": 50})])
    drain(app)
    assert customer(db, "cust-1").traits == {"age": 40}
    assert customer(db, "cust-2").traits == {"age": 50}
    assert links(db) == {("a-1", "cust-1"), ("a-2", "cust-2")}


def test_a_site_can_turn_verification_off(app, client, site, db):
    from tracking.sites import update_site

    update_site(db, site.write_key, verify_identity=False)
    browser_batch(client, site, [identify("cust-9", "v-9", {"age": 21})])
    drain(app)
    assert customer(db, "cust-9").traits == {"age": 21}
    assert links(db) == {("v-9", "cust-9")}


def test_an_unverified_user_id_alone_counts_for_a_visitor_of_its_own(app, client, site, db):
    backend, event = make_event(0, userId="cust-5"), make_event(1, userId="cust-5")
    backend.pop("anonymousId")
    event.pop("anonymousId")
    server_batch(client, site, [backend])
    alias = {"type": "alias", "previousId": "mallory", "userId": "cust-5"}
    browser_batch(client, site, [event, alias])
    drain(app)
    assert links(db) == set()
    assert sorted(logged_users(db, site.site_id), key=str) == [
        ("cust-5", None),
        (None, "unverified:cust-5"),
    ]


def test_migration_4_gives_existing_sites_a_secret(app, db, site):
    # The store as migration 3 left it, with a site and a customer.
    server_batch(app.test_client(), site, [identify("cust-1", "a-1", {"age": 40})])
    drain(app)
    with db.begin() as conn:
        for table, column in [
            ("sites", "identity_secret"),
            ("sites", "verify_identity"),
            ("customers", "unverified_traits"),
        ]:
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 4))
    assert migrations.upgrade(db) == [4]
    assert migrations.upgrade(db) == []
    with db.connect() as conn:
        row = conn.execute(sa.select(sites)).one()
        kept = conn.execute(sa.select(customers)).one()
    assert len(row.identity_secret) == 64 and row.identity_secret != site.identity_secret
    assert row.verify_identity is True
    assert (kept.traits, kept.unverified_traits) == ({"age": 40}, None)


# The recommendation API


@pytest.fixture
def served(app, client, site, trained):  # noqa: F811 (trained: the fixture imported above)
    shop, registry = trained
    return Served(app, client, site, shop, registry)


def browser_get(served, path="/v1/recommendations", **params):
    return served.get(path, headers=BROWSER, write_key=served.site.write_key, **params)


def body(response) -> dict:
    assert response.status_code == 200, response.get_json()
    found = response.get_json()
    found.pop("rec_id")
    return found


def test_a_browser_cannot_read_a_customers_recommendations(served):
    user = served.customers(cluster=1)[0]
    as_customer = body(browser_get(served, user_id=user))
    as_nobody = body(browser_get(served, user_id="cust-nobody"))
    # The same answer whether the customer exists or not: an unknown visitor's.
    assert as_customer == as_nobody
    assert as_customer["source"] != "personal"
    with_visitor = body(browser_get(served, user_id=user, anonymous_id="v-77"))
    assert with_visitor == body(browser_get(served, anonymous_id="v-77"))


def test_a_signed_user_id_or_the_server_key_gets_personal_recommendations(served):
    user = served.customers(cluster=1)[0]
    signed = body(browser_get(served, user_id=user, user_hash=sign(served.site, user)))
    assert signed["source"] == "personal"
    server = body(served.get(user_id=user))  # the server key, as before, but for ...
    assert server.pop("customer") is None  # ... the segment (unscored here): never a browser's
    assert "customer" not in signed
    assert signed == server
    wrong = body(browser_get(served, user_id=user, user_hash=sign(served.site, "cust-other")))
    assert wrong["source"] != "personal"


def test_a_site_without_verification_trusts_browser_user_ids(served):
    from tracking.sites import update_site

    update_site(served.engine, served.site.write_key, verify_identity=False)
    user = served.customers(cluster=1)[0]
    assert body(browser_get(served, user_id=user))["source"] == "personal"


def test_similar_items_take_the_signature(served):
    item = served.shop.items[5]["item_id"]
    user = served.customers()[0]
    r = browser_get(
        served, f"/v1/items/{item}/similar", user_id=user, user_hash=sign(served.site, user)
    )
    assert body(r)["source"] == "item_neighbours"


@pytest.mark.parametrize("path", ["/v1/recommendations", "/v1/items/sku-1/similar"])
def test_an_oversized_user_hash_is_a_400(served, path):
    r = browser_get(served, path, user_id="u", user_hash="f" * 129)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "user_hash"


# The README's examples for shops' servers


def readme_example(language: str) -> str:
    """The first ``language`` block of the README's Identity verification section."""
    from tests.conftest import PROJECT_ROOT

    section = (PROJECT_ROOT / "README.md").read_text().split("\n## Identity verification\n")[1]
    return section.split(f"```{language}\n")[1].split("```")[0]


USER_ID = "cust-00042-Ünïcode"


def test_the_readme_python_example_signs_as_the_collector_verifies(monkeypatch):
    from tracking.identity import verify
    from tracking.sites import new_identity_secret

    secret = new_identity_secret()
    monkeypatch.setenv("ECRM_IDENTITY_SECRET", secret)
    scope = {"user_id": USER_ID}
    exec(readme_example("python"), scope)
    assert verify(secret, USER_ID, scope["user_hash"])


def test_the_readme_node_example_signs_as_the_collector_verifies():
    from tracking.identity import verify
    from tracking.sites import new_identity_secret

    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "Node.js is not installed (apt-get install nodejs): its README example is untested"
        )
    secret = new_identity_secret()
    script = f"const userId = {json.dumps(USER_ID)};\n{readme_example('js')}\n"
    script += "process.stdout.write(userHash);\n"
    done = subprocess.run(
        [node, "-e", script],
        env={"ECRM_IDENTITY_SECRET": secret, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert verify(secret, USER_ID, done.stdout)
