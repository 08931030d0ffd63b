"""Exactly-once details of the store: resent rejections, and sessions under concurrent workers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.conftest import count, drain, make_event
from tracking.events import Limits, iso, prepare_events
from tracking.schema import events, rejected_events, sessions
from tracking.store import write_entries

# --- a resent request does not store its rejected events again ---------------------------------

BAD_EVENTS = {
    "string messageId": {**make_event(1, timestamp="not a time"), "messageId": "bad-1"},
    "no messageId": {"type": "track", "event": "x", "anonymousId": "a", "timestamp": "no"},
    "number messageId": {"type": "tnt", "messageId": 12345, "anonymousId": "a"},
    "not an object": "just a string",
}


@pytest.mark.parametrize("bad", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_resent_request_stores_its_rejections_once(app, tracker, db, bad):
    batch = [make_event(1), bad, make_event(2)]
    for _ in range(2):  # a client resending after a lost response
        response = tracker.batch(batch)
        assert response.status_code == 200, response.get_json()
        assert [r["index"] for r in response.get_json()["rejected"]] == [1]
    worker = drain(app)
    assert count(db, events) == 2
    assert count(db, rejected_events) == 1  # received = stored + rejected, by rows
    t = worker.totals
    assert (t.received, t.stored, t.rejected, t.duplicates) == (6, 2, 1, 3)

    tracker.batch(batch)  # and once more, in a later delivery
    worker = drain(app)
    assert count(db, rejected_events) == 1
    assert (worker.totals.rejected, worker.totals.duplicates) == (0, 3)


def test_different_rejections_are_all_kept(app, tracker, db):
    bad = list(BAD_EVENTS.values())
    # Same payload, another reason; another messageId with the same fault: all distinct rows.
    bad += [{**BAD_EVENTS["no messageId"], "timestamp": 5}]
    bad += [{**BAD_EVENTS["string messageId"], "messageId": "bad-2"}]
    response = tracker.batch([make_event(1), *bad])
    assert len(response.get_json()["rejected"]) == len(bad)
    drain(app)
    assert count(db, rejected_events) == len(bad)


# --- sessions stay exact when two workers store the same messages at once ----------------------


def _store_entry(site_id: int, raw_events: list[dict]) -> dict:
    now = datetime.now(UTC)
    accepted, rejected = prepare_events(
        raw_events, path="batch", received_at=now, batch_sent_at=None, limits=Limits()
    )
    assert not rejected
    return {
        "rid": uuid.uuid4().hex,
        "site_id": site_id,
        "received_at": iso(now),
        "events": accepted,
        "rejected": [],
    }


def _visits(visitors: int, per_visitor: int, start: str, **fields) -> list[dict]:
    first = datetime.fromisoformat(start)
    return [
        make_event(
            v,
            anonymousId=f"visitor-{v}",
            timestamp=iso(first + timedelta(seconds=10 * i)),
            **fields,
        )
        for v in range(visitors)
        for i in range(per_visitor)
    ]


def _interleaved(db, first_entry: dict, second_entry: dict):
    """Store two entries in two transactions that overlap as two workers' would.

    The first transaction writes and holds its work uncommitted; the second reads (and finds
    nothing committed), and the first commits just before the second's first write. That is the
    schedule of two workers handed copies at once, made deterministic.
    """
    timeout = timedelta(minutes=30)
    with db.connect() as first, db.connect() as second:
        first_tx = first.begin()
        write_entries(first, [first_entry], timeout)

        def commit_first(conn, cursor, statement, *args):
            if first_tx.is_active and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
                first_tx.commit()

        sa.event.listen(second, "before_cursor_execute", commit_first)
        with second.begin():
            stats = write_entries(second, [second_entry], timeout)
        assert not first_tx.is_active, "the second transaction never wrote"
    return stats


def _session_counts(db) -> list[tuple[str, int]]:
    with db.connect() as conn:
        return conn.execute(
            sa.select(sessions.c.visitor_id, sessions.c.event_count).order_by(sessions.c.visitor_id)
        ).all()


def test_same_entry_stored_by_two_workers_at_once_counts_sessions_once(app, site, db):
    entry = _store_entry(site.site_id, _visits(4, 5, "2026-11-20T10:00:00+00:00"))
    second = _interleaved(db, entry, entry)
    assert (second.stored, second.duplicates) == (0, 20)
    assert count(db, events) == 20
    assert _session_counts(db) == [(f"visitor-{v}", 5) for v in range(4)]
    with db.connect() as conn:  # every stored event points at a session that exists
        orphans = conn.execute(
            sa.select(sa.func.count())
            .select_from(events)
            .where(events.c.session_id.not_in(sa.select(sessions.c.session_id)))
        ).scalar()
    assert orphans == 0


def test_two_workers_adding_to_one_session_at_once_lose_no_count(app, site, db):
    # Visitor sessions exist (two events each); two workers then add 3 and 4 more at once.
    from tests.conftest import store_events

    store_events(db, site.site_id, _visits(3, 2, "2026-11-20T10:00:00+00:00"))
    later = _store_entry(site.site_id, _visits(3, 3, "2026-11-20T10:05:00+00:00"))
    latest = _store_entry(site.site_id, _visits(3, 4, "2026-11-20T10:10:00+00:00"))
    _interleaved(db, later, latest)
    assert count(db, events) == 27
    assert _session_counts(db) == [(f"visitor-{v}", 9) for v in range(3)]
    with db.connect() as conn:
        spans = conn.execute(sa.select(sessions.c.started_at, sessions.c.last_seen_at)).all()
    for started, last in spans:
        assert (started.minute, started.second) == (0, 0)
        assert (last.minute, last.second) == (10, 30)
