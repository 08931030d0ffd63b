"""The interaction log: what the ingest path appends is what the store holds, exactly once.

Training reads the log (recommender.event_frames.read_events); the tables stay the truth, so
every test here compares the log with a scan of ``events`` and ``order_lines``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recommender.event_frames import read_events
from tests.conftest import count, store_events
from tests.test_attribution import at, click, identify, order, shown
from tracking import interaction_log, migrations, schema, store
from tracking.events import Limits, iso, prepare_events
from tracking.schema import interaction_chunks
from tracking.store import write_entries


def view(product_id: str, when: str, *, anon: str | None = "anon-1", user: str | None = None):
    event = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": str(uuid.uuid4()),
        "timestamp": when,
        "properties": {"product_id": product_id},
    }
    if anon:
        event["anonymousId"] = anon
    if user:
        event["userId"] = user
    return event


def entry_of(site_id: int, raw: list[dict]) -> dict:
    received_at = datetime.now(UTC)
    accepted, rejected = prepare_events(
        raw, path="batch", received_at=received_at, batch_sent_at=None, limits=Limits()
    )
    assert not rejected
    return {
        "rid": uuid.uuid4().hex,
        "site_id": site_id,
        "received_at": iso(received_at),
        "events": accepted,
        "rejected": [],
    }


def logged(engine: sa.Engine, site_id: int) -> pd.DataFrame:
    """The log's rows, decoded, as a sorted frame of strings."""
    with engine.connect() as conn:
        chunks = list(interaction_log.read(conn, site_id))
    return _table(
        [
            {name: chunk.column(name) for name in interaction_log.CODE_COLUMNS}
            | {"seconds": chunk.seconds}
            for chunk in chunks
        ]
    )


def scanned(engine: sa.Engine, site_id: int) -> pd.DataFrame:
    """The same rows read from the tables."""
    with engine.connect() as conn:
        parts = list(interaction_log.scan_store(conn, site_id, chunksize=3))
    return _table(
        [dict(zip((*interaction_log.CODE_COLUMNS, "seconds"), part, strict=True)) for part in parts]
    )


def _table(parts: list[dict]) -> pd.DataFrame:
    columns = (*interaction_log.CODE_COLUMNS, "seconds")
    if not parts:
        return pd.DataFrame({name: [] for name in columns})
    data = {name: np.concatenate([p[name] for p in parts]) for name in columns}
    for name in interaction_log.CODE_COLUMNS:
        data[name] = pd.Series([str(value) for value in data[name]], dtype=object)  # None: "None"
    frame = pd.DataFrame(data)
    frame["seconds"] = frame["seconds"].round(3)  # SQLite's julianday keeps milliseconds
    return frame.sort_values(list(columns)).reset_index(drop=True)


def test_the_ingest_path_logs_item_events_and_order_lines_once(db, site):
    batch = [
        view("sku-1", at(minutes=9)),
        view("sku-2", at(minutes=8), anon=None, user="cust-1"),
        view("sku-3", at(minutes=7), anon="anon-2", user="cust-2"),  # the user id is kept
        shown(["sku-1", "sku-2"], at(minutes=6)),  # no product_id: not an item event
        click("sku-4", at(minutes=5)),
        identify("anon-1", "cust-1", at(minutes=4)),
        order("o-1", [("sku-1", 5.0, 1), ("sku-5", 7.5, 2)], at(minutes=3), user="cust-1"),
        {"type": "page", "name": "Home", "messageId": "p-1", "anonymousId": "a", "timestamp": at()},
    ]
    entry = entry_of(site.site_id, batch)
    with db.begin() as conn:
        write_entries(conn, [entry], timedelta(minutes=30))
    got = logged(db, site.site_id)
    assert len(got) == 6  # 4 item events + 2 order lines
    pd.testing.assert_frame_equal(got, scanned(db, site.site_id))
    assert set(got["events"]) == {
        "Product Viewed",
        "Recommendation Clicked",
        "Order Completed",
    }
    row = got[got["items"] == "sku-3"].iloc[0]
    assert (row["users"], row["anonymous"]) == ("cust-2", "None")

    # The same delivery again (a redelivered stream entry), and the same order re-sent under a
    # new message id: the store keeps one of each, and so does the log.
    again = order("o-1", [("sku-9", 1.0, 1)], at(minutes=1), user="cust-1")
    with db.begin() as conn:
        write_entries(conn, [entry, entry_of(site.site_id, [again])], timedelta(minutes=30))
    assert len(logged(db, site.site_id)) == 6
    pd.testing.assert_frame_equal(logged(db, site.site_id), scanned(db, site.site_id))
    assert count(db, interaction_chunks) == 1  # nothing new, no empty chunk


def test_a_row_another_worker_stored_first_is_not_logged_twice(db, site, monkeypatch):
    first = view("sku-1", at(minutes=2))
    second = view("sku-2", at(minutes=1))
    # Another worker stores (and logs) the first event ...
    with db.begin() as conn:
        write_entries(conn, [entry_of(site.site_id, [first])], timedelta(minutes=30))
    # ... after this one looked for duplicates: only the insert itself can tell.
    monkeypatch.setattr(store, "_existing_message_ids", lambda *args: set())
    with db.begin() as conn:
        stats = write_entries(conn, [entry_of(site.site_id, [first, second])], timedelta(30))
    assert (stats.stored, stats.duplicates) == (1, 1)
    got = logged(db, site.site_id)
    assert sorted(got["items"]) == ["sku-1", "sku-2"]
    pd.testing.assert_frame_equal(got, scanned(db, site.site_id))


def test_compaction_merges_small_chunks_and_keeps_every_row(db, site):
    for n in range(40):
        store_events(db, site.site_id, [view(f"sku-{n % 7}", at(minutes=60 - n), anon=f"a-{n}")])
    before = logged(db, site.site_id)
    frame = read_events(db, site.site_id)
    assert count(db, interaction_chunks) == 40
    with db.begin() as conn:
        assert interaction_log.compact(conn, site.site_id, min_chunks=41) == 0  # not yet
        assert interaction_log.compact(conn, site.site_id) == 40
    assert count(db, interaction_chunks) == 1
    pd.testing.assert_frame_equal(logged(db, site.site_id), before)
    pd.testing.assert_frame_equal(read_events(db, site.site_id), frame)


def test_windows_read_from_the_log_match_the_store(db, site):
    raw = [view(f"sku-{n}", at(days=n), user=f"cust-{n % 3}") for n in range(10)]
    store_events(db, site.site_id, raw, chunk=4)
    since = datetime.now(UTC) - timedelta(days=6.5)
    until = datetime.now(UTC) - timedelta(days=2.5)
    windowed = read_events(db, site.site_id, since=since, until=until)
    assert sorted(windowed["item_id"].astype(str)) == ["sku-3", "sku-4", "sku-5", "sku-6"]
    from_store = read_events(db, site.site_id, since=since, until=until, source="store")
    assert sorted(from_store["item_id"].astype(str)) == ["sku-3", "sku-4", "sku-5", "sku-6"]


def test_stitching_is_resolved_when_reading_not_when_logging(db, site):
    store_events(db, site.site_id, [view("sku-1", at(minutes=5), anon="anon-7")])
    assert list(read_events(db, site.site_id)["user_id"]) == ["anon:anon-7"]
    store_events(db, site.site_id, [identify("anon-7", "cust-7", at(minutes=1))])
    assert list(read_events(db, site.site_id)["user_id"]) == ["cust-7"]


def test_encode_and_decode_round_trip_odd_ids():
    users = ["ü-1", None, "x", None]
    anonymous = [None, "a/1\n", None, "a/1\n"]
    items = ["€", "€", '"quoted"', "\\"]
    names = ["Product Viewed"] * 3 + [interaction_log.ORDER_EVENT]
    seconds = [1.5, 2.25, 1e9, 0.0]
    chunk = interaction_log.decode(interaction_log.encode(users, anonymous, items, names, seconds))
    assert list(chunk.column("users")) == users
    assert list(chunk.column("anonymous")) == anonymous
    assert list(chunk.column("items")) == items
    assert list(chunk.column("events")) == names
    assert list(chunk.seconds) == seconds


def test_migration_3_writes_the_log_of_an_older_store(database_url, site, db):
    store_events(
        db,
        site.site_id,
        [
            view("sku-1", at(minutes=3), anon="anon-1"),
            order("o-1", [("sku-2", 3.0, 1)], at(minutes=2), anon="anon-1"),
        ],
    )
    expected = read_events(db, site.site_id)
    with db.begin() as conn:  # the store as it was before migration 3
        conn.execute(interaction_chunks.delete())
        conn.execute(
            schema.schema_migrations.delete().where(schema.schema_migrations.c.version == 3)
        )
    assert read_events(db, site.site_id).empty
    assert migrations.upgrade(db) == [3]
    pd.testing.assert_frame_equal(read_events(db, site.site_id), expected)
    assert len(expected) == 2


def test_the_rebuild_log_command_rewrites_a_sites_log(runner, db, site):
    store_events(db, site.site_id, [view("sku-1", at(minutes=2)), view("sku-2", at(minutes=1))])
    expected = logged(db, site.site_id)
    with db.begin() as conn:
        conn.execute(interaction_chunks.delete())  # as if events had been written directly
    result = runner.invoke(args=["db", "rebuild-log", "--site", site.write_key])
    assert result.exit_code == 0, result.output
    assert "2 interactions" in result.output
    pd.testing.assert_frame_equal(logged(db, site.site_id), expected)
    every = runner.invoke(args=["db", "rebuild-log"])
    assert every.exit_code == 0 and "2 interactions" in every.output
    wrong = runner.invoke(args=["db", "rebuild-log", "--site", "wk_nope"])
    assert wrong.exit_code != 0 and "no site has write key wk_nope" in wrong.output
