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
