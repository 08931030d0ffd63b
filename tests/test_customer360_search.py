"""Customer search: the search keys kept by ingest and migration 5, and the paged prefix search."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from analytics.customer_search import SearchError, encode_cursor, search
from tests.conftest import drain, store_events
from tracking import migrations
from tracking.customer_lookup import keys_of, normalise, prefix_bounds
from tracking.schema import customer_lookup, schema_migrations
from tracking.sites import create_site


def identify(user_id: str, traits: dict, anonymous_id: str | None = None, **fields) -> dict:
    event = {
        "type": "identify",
        "messageId": str(uuid.uuid4()),
        "userId": user_id,
        "traits": traits,
        "timestamp": "2026-11-20T10:00:00.000Z",
        **fields,
    }
    if anonymous_id:
        event["anonymousId"] = anonymous_id
    return event


def keys(db, site_id: int, user_id: str) -> set[tuple[str, str]]:
    with db.connect() as conn:
        return {
            (kind, value)
            for kind, value in conn.execute(
                sa.select(customer_lookup.c.kind, customer_lookup.c.value).where(
                    customer_lookup.c.site_id == site_id, customer_lookup.c.user_id == user_id
                )
            )
        }


def found(db, site_id: int, text: str, **kwargs) -> list[str]:
    with db.connect() as conn:
        return [row["user_id"] for row in search(conn, site_id, text, **kwargs).rows]


# The keys


def test_normalise_folds_case_width_controls_and_spaces():
    assert normalise("  Ann\tLEE\x00 ") == "ann lee"
    assert normalise("Straße") == "strasse"
    assert normalise("ＡＮＮ") == "ann"  # full-width letters (NFKC)
    assert len(normalise("x" * 1000)) == 255


@pytest.mark.parametrize(
    ("prefix", "inside", "outside"),
    [
        ("ann", ["ann", "anna", "ann lee", "ann\U0010ffff"], ["anm", "ano", "an", "b"]),
        ("a\ud7ff", ["a\ud7ff", "a\ud7ffz"], ["a\ue000"]),  # the successor skips surrogates
        ("é", ["é", "éa"], ["f", "ê"]),
    ],
)
def test_prefix_bounds_hold_exactly_the_strings_with_the_prefix(prefix, inside, outside):
    low, high = prefix_bounds(prefix)
    for text in inside:
        assert low <= text < high
    for text in outside:
        assert not (low <= text < high)


def test_prefix_bounds_of_the_last_code_point_have_no_upper_end():
    assert prefix_bounds("\U0010ffff") == ("\U0010ffff", None)


def test_keys_are_the_id_the_email_and_names_with_their_words():
    traits = {
        "email": "Ann.Lee@Example.COM",
        "first_name": "Ann",
        "last_name": "Lee-Smith",
        "age": 40,
    }
    assert keys_of("CUST-1", traits) == {
        ("id", "cust-1"),
        ("email", "ann.lee@example.com"),
        ("name", "ann lee-smith"),
        ("name", "ann"),
        ("name", "lee-smith"),
        ("name", "lee"),
        ("name", "smith"),
    }


def test_keys_ignore_traits_that_are_not_text_and_cap_long_names():
    assert keys_of("c", {"email": ["a@b"], "name": {"x": 1}}) == {("id", "c")}
    many = keys_of("c", {"name": " ".join(f"w{i}" for i in range(500))})
    assert len([k for k in many if k[0] == "name"]) == 24


# Kept up to date by ingest


def test_ingest_writes_keys_and_follows_trait_changes(app, site, db):
    store_events(db, site.site_id, [identify("cust-1", {"email": "Ann@Example.com"})])
    assert keys(db, site.site_id, "cust-1") == {("id", "cust-1"), ("email", "ann@example.com")}
    store_events(db, site.site_id, [identify("cust-1", {"name": "Ann Lee"})])
    assert keys(db, site.site_id, "cust-1") == {
        ("id", "cust-1"),
        ("email", "ann@example.com"),
        ("name", "ann lee"),
        ("name", "ann"),
        ("name", "lee"),
    }
    store_events(db, site.site_id, [identify("cust-1", {"email": "ann@new.example"})])
    assert ("email", "ann@example.com") not in keys(db, site.site_id, "cust-1")
    assert ("email", "ann@new.example") in keys(db, site.site_id, "cust-1")


def test_unverified_traits_make_no_keys(app, client, site, db):
    # A browser claiming a user id without the shop's signature: traits kept apart, unsearchable.
    response = client.post(
        "/v1/batch",
        json={
            "batch": [identify("cust-7", {"email": "mallory@evil.test"}, anonymous_id="m-1")],
            "writeKey": site.write_key,
        },
        headers={"Origin": "https://shop.example"},
    )
    assert response.status_code == 200
    drain(app)
    assert keys(db, site.site_id, "cust-7") == {("id", "cust-7")}
    assert found(db, site.site_id, "mallory") == []


def test_migration_5_writes_the_keys_of_existing_customers(app, site, db):
    store_events(
        db,
        site.site_id,
        [identify("cust-1", {"email": "a@x.test"}), identify("cust-2", {"name": "Bo Ek"})],
    )
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE customer_lookup"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 5))
    assert migrations.upgrade(db) == [5]
    assert migrations.upgrade(db) == []
    assert keys(db, site.site_id, "cust-1") == {("id", "cust-1"), ("email", "a@x.test")}
    assert keys(db, site.site_id, "cust-2") == {
        ("id", "cust-2"),
        ("name", "bo ek"),
        ("name", "bo"),
        ("name", "ek"),
    }
    assert found(db, site.site_id, "bo") == ["cust-2"]


# Search


@pytest.fixture
def people(app, site, db):
    store_events(
        db,
        site.site_id,
        [
            identify("cust-1", {"email": "ann.lee@example.com", "name": "Ann Lee"}),
            identify(
                "cust-2", {"email": "bob@example.com", "first_name": "Bob", "last_name": "Ann"}
            ),
            identify("cust-3", {"email": "joanne@example.com", "name": "Joanne Smith"}),
            identify("CUST-10", {"email": "Zed@Example.com", "name": "Zed Zulu"}),
        ],
    )
    return site


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cust-2", ["cust-2"]),  # an exact id
        ("CUST-10", ["CUST-10"]),
        ("cust-1", ["cust-1", "CUST-10"]),  # an id is a prefix of another (case folded)
        ("ANN.LEE@EXAMPLE.COM", ["cust-1"]),  # an email, whatever its case
        ("zed@", ["CUST-10"]),  # a prefix of an email
        ("ann", ["cust-1", "cust-2"]),  # a first name, a last name; ann.lee@ too
        ("lee", ["cust-1"]),
        ("smi", ["cust-3"]),  # a prefix of a name's word
        ("joanne smith", ["cust-3"]),  # a whole name
        ("  Ann   LEE ", ["cust-1"]),
        ("nobody", []),
    ],
)
def test_search_by_id_email_or_name(people, db, text, expected):
    assert sorted(found(db, people.site_id, text)) == sorted(expected)


def test_the_exact_id_comes_first(app, site, db):
    # Twelve customers named Kim sort before the customer whose id is "kim"; typed exactly, that
    # id still leads the first page.
    store_events(db, site.site_id, [identify(f"c-{i:02d}", {"name": "Kim"}) for i in range(12)])
    store_events(db, site.site_id, [identify("kim", {"name": "Someone Else"})])
    assert found(db, site.site_id, "kim", limit=5)[0] == "kim"
    assert found(db, site.site_id, "KIM", limit=5)[0] != "kim"  # ids are exact, case and all


def test_a_result_shows_the_verified_name_email_and_what_matched(people, db):
    with db.connect() as conn:
        (row,) = search(conn, people.site_id, "bob").rows
    assert (row["user_id"], row["name"], row["email"]) == ("cust-2", "Bob Ann", "bob@example.com")
    assert row["matched"] == [("name", "bob"), ("name", "bob ann"), ("email", "bob@example.com")]


def test_a_nul_in_the_query_is_dropped_not_sent_to_the_database(people, db):
    assert found(db, people.site_id, "cust-2\x00") == ["cust-2"]


@pytest.mark.parametrize("text", ["", " ", "a", "\x00\x00", "É "])
def test_a_query_too_short_reads_nothing(people, db, text):
    with db.connect() as conn, pytest.raises(SearchError) as caught:
        search(conn, people.site_id, text)
    assert caught.value.field == "q"


def test_another_sites_customers_are_never_found(people, app, db):
    other, _ = create_site(db, "Other shop", ["https://other.example"])
    store_events(db, other.site_id, [identify("cust-99", {"email": "ann@other.example"})])
    assert "cust-99" not in found(db, people.site_id, "ann")
    assert found(db, people.site_id, "cust-99") == []
    assert found(db, other.site_id, "ann") == ["cust-99"]
    assert found(db, other.site_id, "cust-1") == []


def test_results_are_paged_without_gaps_or_repeats(app, site, db):
    store_events(
        db,
        site.site_id,
        [identify(f"c-{i:03d}", {"name": f"Kim Number{i}"}) for i in range(23)],
    )
    seen, after, pages = [], None, 0
    while True:
        with db.connect() as conn:
            results = search(conn, site.site_id, "kim", after=after, limit=10)
        seen += [row["user_id"] for row in results.rows]
        pages += 1
        if results.next_cursor is None:
            break
        assert len(results.rows) == 10
        after = results.next_cursor
    assert pages == 3  # each Kim matches twice ("kim", "kim number1") and shows once
    assert sorted(seen) == [f"c-{i:03d}" for i in range(23)]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "bm90IGpzb24",
        encode_cursor("a", "b", "c")[:-3],
        encode_cursor("ann\x00", "b", "c"),
        "WyJcdWQ4MDAiLCJiIiwiYyJd",  # ["\ud800","b","c"]: a lone surrogate
    ],
)
def test_a_bad_cursor_is_an_error_naming_it(people, db, cursor):
    with db.connect() as conn, pytest.raises(SearchError) as caught:
        search(conn, people.site_id, "ann", after=cursor)
    assert caught.value.field == "after"
