"""Answers served: counted per request in memory, flushed to Redis, moved into SQL exactly once."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import redis as redis_lib
import sqlalchemy as sa

from analytics import rollups
from analytics.schema import rollup_recs
from analytics.served import ServedCounter, live_key, move_served


def served_rows(db):
    with db.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(
                    rollup_recs.c.placement,
                    rollup_recs.c.model_version,
                    rollup_recs.c.source,
                    rollup_recs.c.holdout,
                    rollup_recs.c.served,
                ).order_by(rollup_recs.c.placement, rollup_recs.c.holdout)
            )
        ]


def test_the_api_counts_its_answers(app, client, site, db, redis):
    token = base64.b64encode(f"{site.server_key}:".encode()).decode()
    for placement in ("home", "home", "cart"):
        r = client.get(
            "/v1/recommendations",
            query_string={"user_id": "anyone", "placement": placement},
            headers={"Authorization": f"Basic {token}"},
        )
        assert r.status_code == 200
    app.extensions["ecrm_served"].flush()  # its thread may have flushed some already
    assert move_served(db, redis, site.site_id) == 3
    source = r.json["source"]
    assert served_rows(db) == [("cart", "", source, False, 1), ("home", "", source, False, 2)]
    assert move_served(db, redis, site.site_id) == 0  # nothing new: nothing moved


def test_a_crash_before_the_delete_counts_once(db, redis, site):
    counter = ServedCounter(redis, flush_seconds=None)
    for _ in range(4):
        counter.count(site.site_id, "home", "v1", "personal", True)
    counter.flush()
    real_delete = redis.delete

    def crash(*keys):
        raise redis_lib.ConnectionError("killed after the commit")

    redis.delete = crash
    try:
        with pytest.raises(redis_lib.ConnectionError):
            move_served(db, redis, site.site_id)
    finally:
        redis.delete = real_delete
    assert served_rows(db) == [("home", "v1", "personal", True, 4)]
    # The moving key is still there: the next run sees it was applied and only drops it.
    assert move_served(db, redis, site.site_id) == 0
    assert served_rows(db) == [("home", "v1", "personal", True, 4)]
    assert not list(redis.scan_iter(f"ecrm:served*:{site.site_id}:*"))


def test_a_crash_after_the_rename_applies_next_time(db, redis, site):
    counter = ServedCounter(redis, flush_seconds=None)
    counter.count(site.site_id, "home", None, "popular", False)
    counter.flush()
    live = live_key(site.site_id, datetime.now(UTC).date())
    number = redis.incr(f"ecrm:served-number:{site.site_id}")
    redis.rename(live, f"ecrm:served-moving:{site.site_id}:{live.rsplit(':', 1)[1]}:{number}")
    counter.count(site.site_id, "home", None, "popular", False)  # arrives meanwhile
    counter.flush()
    assert move_served(db, redis, site.site_id) == 2
    assert served_rows(db) == [("home", "", "popular", False, 2)]


def test_a_redis_failure_keeps_the_counts(db, site):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    counter = ServedCounter(dead, flush_seconds=None)
    counter.count(site.site_id, "home", "v1", "personal", False)
    assert counter.flush() == 0
    assert sum(counter._counts.values()) == 1


def test_rebuild_keeps_the_served_counts(db, redis, site):
    counter = ServedCounter(redis, flush_seconds=None)
    counter.count(site.site_id, "home", "v1", "personal", False)
    counter.flush()
    move_served(db, redis, site.site_id)
    rollups.rebuild(db, site.site_id)
    assert served_rows(db) == [("home", "v1", "personal", False, 1)]
