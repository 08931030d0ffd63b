"""'Train now' jobs, the version listing and the inspector's queries, without the console pages."""

from __future__ import annotations

import json
import time

import pytest

from demo import ShopSpec
from recommender.inspector import (
    UnknownCustomer,
    anonymous_ids,
    customer_traits,
    purchases,
    recent_events,
)
from recommender.model_versions import version_rows
from recommender.registry import ModelRegistry
from recommender.train_jobs import (
    RUNNING_TTL_SECONDS,
    TRAINER_KEY,
    TrainJobs,
    active_key,
    job_key,
)
from recommender.training import TrainSettings, train
from tests.store_snapshot import stock_shop
from tracking.sites import create_site
from webapp.supervisor import trainer_argv
from webapp.train_cli import registry_dir, run_requested_job

SPEC = ShopSpec(seed=7, n_customers=100, n_items=50, n_clusters=4, days=14)


@pytest.fixture(scope="module")
def stocked(database_url):
    """(site, shop, snapshot): the shop stored through the write path once per database."""
    return stock_shop(database_url, "Shop to train", SPEC)


@pytest.fixture
def shop_site(db, stocked):
    """The stocked shop's rows put back into this test's empty store."""
    site, shop, snapshot = stocked
    snapshot.restore(db)
    return site, shop


def test_one_job_at_a_time_per_site_and_its_progress(redis):
    jobs = TrainJobs(redis)
    first, created = jobs.request(1, "ana@shop.example")
    assert created and first.state == "queued" and first.progress == 0.0
    again, created_again = jobs.request(1, "bo@shop.example")
    assert not created_again and again.job_id == first.job_id  # the queued one is shown
    other, created_other = jobs.request(2, "ana@shop.example")
    assert created_other and other.job_id != first.job_id  # another site has its own
    assert redis.ttl(job_key(first.job_id)) > 0 and redis.ttl(active_key(1)) > 0

    taken = jobs.take()
    assert taken.job_id == first.job_id and taken.state == "running"
    jobs.stage(taken.job_id, "fit", "als + item_knn on 80 customers")
    running = jobs.get(taken.job_id)
    assert running.progress == pytest.approx(0.6) and running.message.startswith("fit: als")
    assert jobs.request(1, "bo@shop.example")[0].job_id == first.job_id  # still one at a time

    jobs.finish(taken.job_id, "v2", "model v2 is now current")
    done = jobs.get(taken.job_id)
    assert done.state == "done" and done.progress == 1.0 and done.as_json()["version"] == "v2"
    assert jobs.active(1) is None and jobs.latest(1).job_id == first.job_id
    fresh, created_fresh = jobs.request(1, "bo@shop.example")  # a finished job frees the site
    assert created_fresh and fresh.job_id != first.job_id
    assert jobs.take().job_id == other.job_id  # first in, first out
    assert jobs.take().job_id == fresh.job_id and jobs.take() is None


def test_a_job_not_heard_from_for_an_hour_reads_as_failed(redis):
    jobs = TrainJobs(redis)
    job, _ = jobs.request(3, "ana@shop.example")
    redis.hset(job_key(job.job_id), "updated_at", time.time() - RUNNING_TTL_SECONDS - 5)
    stale = jobs.get(job.job_id)
    assert stale.state == "failed" and "stopped answering" in stale.message
    # ...and the site may ask again.
    again, created = jobs.request(3, "ana@shop.example")
    assert created and again.job_id != job.job_id
    assert jobs.get("no-such-job") is None and jobs.get("x" * 200) is None


def test_the_trainer_runs_a_requested_job_and_reports_each_stage(app, redis, shop_site):
    site, _ = shop_site
    jobs = TrainJobs(redis)
    job, _ = jobs.request(site.site_id, "ana@shop.example")
    with app.app_context():
        returned = run_requested_job(0.0)
        registry = ModelRegistry(registry_dir(site.site_id))
    done = jobs.get(job.job_id)
    assert returned == done and done.state == "done", done
    assert done.progress == 1.0 and done.version == registry.current()
    assert f"model {done.version} is now current" == done.message
    assert redis.exists(TRAINER_KEY)  # the page can tell a trainer is listening
    with app.app_context():
        assert run_requested_job(0.0) is None  # nothing queued: returns at once


def test_stage_messages_reach_the_job_while_it_runs(app, redis, shop_site, monkeypatch):
    site, _ = shop_site
    jobs = TrainJobs(redis)
    job, _ = jobs.request(site.site_id, "ana@shop.example")
    snapshots = []
    stage = TrainJobs.stage

    def watching(self, job_id, name, message):
        stage(self, job_id, name, message)
        snapshots.append(self.get(job_id))

    monkeypatch.setattr(TrainJobs, "stage", watching)
    with app.app_context():
        run_requested_job(0.0)
    assert [s.state for s in snapshots] == ["running"] * len(snapshots)
    names = [s.message.split(":")[0] for s in snapshots]
    assert names[0] == "read" and "evaluate" in names and "promote" in names
    progress = [s.progress for s in snapshots]
    assert progress == sorted(progress) and 0 < progress[0] < progress[-1] < 1
    assert jobs.get(job.job_id).state == "done"


def test_a_site_without_data_fails_its_job_with_the_reason(app, db, redis):
    site, _ = create_site(db, "Empty shop", [])
    jobs = TrainJobs(redis)
    job, _ = jobs.request(site.site_id, "ana@shop.example")
    with app.app_context():
        run_requested_job(0.0)
    failed = jobs.get(job.job_id)
    assert failed.state == "failed" and "not enough data" in failed.message
    assert jobs.active(site.site_id) is None


def test_the_supervisors_trainer_takes_requests_even_with_scheduled_training_off():
    config = {"TRAIN_INTERVAL_MINUTES": 60.0, "TRAIN_TUNE_SECONDS": 30.0}
    scheduled = trainer_argv("python", {**config, "ATTRIBUTION_WINDOW_DAYS": 7})
    assert "--take-requests" in scheduled and "--every" in scheduled
    off = trainer_argv("python", {**config, "TRAIN_INTERVAL_MINUTES": 0.0})
    assert "--only-requests" in off and "--every" not in off


def test_version_rows_say_what_each_version_learned_and_how_well(db, shop_site, tmp_path):
    site, _ = shop_site
    root = tmp_path / "models"
    reports = [train(db, TrainSettings(site.site_id, root, tune_seconds=0)) for _ in range(3)]
    assert all(r.promoted for r in reports)
    registry = ModelRegistry(root)
    registry.rollback()  # the second version is current again
    rows = version_rows(registry)
    assert [r["version"] for r in rows] == [r.version for r in reversed(reports)]
    assert [r["current"] for r in rows] == [False, True, False]
    newest = rows[0]
    report = reports[-1]
    assert newest["customers"] == report.n_users and newest["items"] == report.n_items
    assert newest["interactions"] == report.n_interactions
    assert newest["ndcg"] == pytest.approx(report.metrics["ndcg@10"])
    assert newest["popularity_ndcg"] == pytest.approx(report.baseline["ndcg@10"])
    assert newest["ndcg_gain"] > 0  # it was promoted: it beat popularity
    assert newest["data_from"] < newest["data_to"]
    assert newest["data_from"].isoformat().startswith("2026-10-01")
    assert newest["training_seconds"] > 0 and "als" in newest["kind"]
    assert newest["trained_at"] is not None and newest["promoted_at"] is not None
    assert rows[1]["last_promoted_at"] > rows[1]["promoted_at"]  # promoted, then rolled back to

    # An older sidecar without the figures: the row says "not recorded" (None), no error.
    old = rows[2]["version"]
    (root / old / "train.json").write_text(json.dumps({"version": old}))
    (root / rows[0]["version"] / "model.npz").unlink()  # a broken folder still lists
    plain = {r["version"]: r for r in version_rows(registry)}[old]
    assert plain["customers"] is None and plain["ndcg"] is None and plain["data_from"] is None
    assert plain["kind"] is None and plain["training_seconds"] is None


def test_the_inspectors_queries_read_one_customers_rows(db, shop_site):
    site, shop = shop_site
    orders = [e for e in shop.events if e.get("event") == "Order Completed"]
    customer = orders[0]["userId"]
    with db.connect() as conn:
        customer_traits(conn, site.site_id, customer)
        with pytest.raises(UnknownCustomer):
            customer_traits(conn, site.site_id, "nobody")
        anonymous = anonymous_ids(conn, site.site_id, customer)
        events = recent_events(conn, site.site_id, customer, anonymous, limit=15)
        bought = purchases(conn, site.site_id, [customer, "nobody"], per_customer=50)
    theirs = [
        e
        for e in shop.events
        if e.get("userId") == customer or e.get("anonymousId") in set(anonymous)
    ]
    newest = sorted(theirs, key=lambda e: e["timestamp"], reverse=True)[:15]
    assert len(events) == 15
    assert [e["at"].isoformat()[:19] for e in events] == [e["timestamp"][:19] for e in newest]
    titles = {i["item_id"]: i["title"] for i in shop.items}
    with_items = [e for e in events if e["item_id"]]
    assert with_items and all(e["title"] == titles[e["item_id"]] for e in with_items)
    assert set(bought) == {customer}
    expected = [
        p["product_id"]
        for o in sorted(
            (o for o in orders if o["userId"] == customer),
            key=lambda o: o["timestamp"],
            reverse=True,
        )
        for p in o["properties"]["products"]
    ]
    assert [line["item_id"] for line in bought[customer]] == expected
    assert bought[customer][0]["title"] == titles[expected[0]]
