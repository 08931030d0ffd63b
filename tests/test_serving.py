"""The recommendation API over a real Redis and SQL store: caches, invalidation, swaps, fallbacks.

One small shop (planted taste clusters) is trained once per run; each test copies the promoted
model into its own app's registry, so what is served comes from a real model.
"""

from __future__ import annotations

import base64
import os
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from demo import ShopSpec, generate_shop
from recommender.answer_cache import recs_key
from recommender.precompute import precompute
from recommender.training import TrainSettings, train
from tests.conftest import ORIGIN, drain, store_events
from tracking import migrations
from tracking.catalogue import upsert_items, validate_item
from tracking.db import make_engine
from tracking.holdout import in_holdout
from tracking.redis_server import EmbeddedRedis
from tracking.sites import create_site
from webapp import create_app

SPEC = ShopSpec(seed=11, n_customers=200, n_items=80, n_clusters=4, days=21)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(shop, registry folder of a promoted model) trained on SQLite once for this module."""
    root = tmp_path_factory.mktemp("serving-model")
    engine = make_engine(f"sqlite:///{root / 'train.db'}")
    migrations.upgrade(engine)
    site, _ = create_site(engine, "Training shop", [])
    shop = generate_shop(SPEC)
    upsert_items(engine, site.site_id, [validate_item(i) for i in shop.items])
    store_events(engine, site.site_id, shop.events)
    report = train(engine, TrainSettings(site.site_id, root / "models", tune_seconds=0))
    assert report.promoted, report.failures
    engine.dispose()
    return shop, root / "models"


def auth(site) -> dict:
    token = base64.b64encode(f"{site.server_key}:".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class Served:
    """A test app's site with the trained model promoted in its registry."""

    def __init__(self, app, client, site, shop, registry: Path):
        self.app, self.client, self.site, self.shop = app, client, site, shop
        self.layer = app.extensions["ecrm_serving"]
        self.registry = Path(app.config["VAR_DIR"]) / "models" / str(site.site_id)
        shutil.copytree(registry, self.registry, symlinks=True)
        upsert_items(self.engine, site.site_id, [validate_item(i) for i in shop.items])
        self.version = os.readlink(self.registry / "current")
        # Start serving and wait until invalidations are heard, as a live process would be.
        self.layer.state(site.site_id)
        assert self.layer.listening.wait(5)

    @property
    def engine(self):
        return self.app.extensions["ecrm"].engine

    def get(self, path="/v1/recommendations", headers=None, **params):
        return self.client.get(
            path, query_string=params, headers=auth(self.site) if headers is None else headers
        )

    def customers(self, cluster=None) -> list[str]:
        of = self.shop.cluster_of_customer()
        return [c for c, k in of.items() if cluster is None or k == cluster]

    def in_cluster(self, cluster: int, items: list[dict]) -> float:
        of = self.shop.cluster_of_item()
        return float(np.mean([of[i["item_id"]] == cluster for i in items])) if items else 0.0

    def swap_to_copy(self) -> str:
        """Promote a copy of the current version under a new name (a retrain, for the cache)."""
        new = self.version + "-b"
        shutil.copytree(self.registry / self.version, self.registry / new)
        link = self.registry / "current.tmp"
        os.symlink(new, link)
        os.replace(link, self.registry / "current")
        return new


@pytest.fixture
def served(app, client, site, trained):
    shop, registry = trained
    return Served(app, client, site, shop, registry)


def wait_for(predicate, seconds=3.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_customer_gets_personal_items_with_details_and_a_rec_id(served):
    user = served.customers(cluster=1)[0]
    r = served.get(user_id=user, n=8, placement="home")
    assert r.status_code == 200, r.json
    body = r.json
    assert len(body["rec_id"]) == 32 and int(body["rec_id"], 16) >= 0
    assert body["model_version"] == served.version
    assert body["source"] == "personal" and body["placement"] == "home"
    assert body["holdout"] is False
    assert len(body["items"]) == 8
    first = body["items"][0]
    assert set(first) >= {"item_id", "title", "price", "currency", "url", "image_url", "reason"}
    assert [i["position"] for i in body["items"]] == list(range(1, 9))
    assert served.in_cluster(1, body["items"]) > 0.6
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Ecrm-Cache"] == "miss"
    again = served.get(user_id=user, n=8, placement="home")
    assert again.headers["X-Ecrm-Cache"] == "local"
    assert again.json["rec_id"] != body["rec_id"]
    assert [i["item_id"] for i in again.json["items"]] == [i["item_id"] for i in body["items"]]


def test_precomputed_entries_are_redis_hits_under_the_model_version(served, redis):
    model_users = set(served.layer.state(served.site.site_id).bundle.interactions.user_ids)
    users = [u for u in served.customers() if u in model_users][:30]
    written = precompute(served.layer, served.site.site_id, users)
    assert written == 30
    assert redis.exists(recs_key(served.site.site_id, served.version, f"u:{users[0]}"))
    ttl = redis.pttl(recs_key(served.site.site_id, served.version, f"u:{users[0]}"))
    assert 0.85 * 24 * 3600e3 < ttl <= 1.1 * 24 * 3600e3  # one day, +-10% jitter
    assert served.get(user_id=users[0]).headers["X-Ecrm-Cache"] == "redis"
    assert served.get(user_id=users[0]).headers["X-Ecrm-Cache"] == "local"


def test_new_events_invalidate_the_entry_and_change_the_answer(served, client):
    user = served.customers(cluster=0)[0]
    before = served.get(user_id=user, n=10)
    assert served.get(user_id=user, n=10).headers["X-Ecrm-Cache"] == "local"
    other = [i for i, c in served.shop.cluster_of_item().items() if c == 2][:8]
    batch = [
        {
            "type": "track",
            "event": "Product Added",
            "userId": user,
            "messageId": f"news-{n}",
            "properties": {"product_id": item},
        }
        for n, item in enumerate(other)
    ]
    r = client.post("/v1/batch", json={"batch": batch}, headers=auth(served.site))
    assert r.status_code == 200
    drain(served.app)
    # The ingest worker published the invalidation: this process's entry is gone.
    assert wait_for(
        lambda: served.layer.local.get((served.site.site_id, f"u:{user}"), served.version) is None
    )
    after = served.get(user_id=user, n=10)
    assert after.headers["X-Ecrm-Cache"] == "miss"
    assert served.in_cluster(2, after.json["items"]) > served.in_cluster(2, before.json["items"])
    assert not set(other) & {i["item_id"] for i in after.json["items"]}  # added: not re-shown


def test_a_model_swap_serves_the_old_entry_then_the_new_version(served, redis):
    user = served.customers()[3]
    precompute(served.layer, served.site.site_id, [user])
    new = served.swap_to_copy()
    served.layer.refresh(served.site.site_id)
    r = served.get(user_id=user)
    assert r.status_code == 200
    # Stale while revalidating: the previous version's entry answers at once...
    assert r.headers["X-Ecrm-Cache"] == "redis" and r.json["model_version"] == served.version
    # ...while one background computation writes the new version's entry.
    assert wait_for(lambda: redis.exists(recs_key(served.site.site_id, new, f"u:{user}")))
    served.layer.local.clear()
    r = served.get(user_id=user)
    assert r.json["model_version"] == new and r.headers["X-Ecrm-Cache"] == "redis"


def test_requests_during_swaps_never_fail(served):
    users = served.customers()[:40]
    failures, stop = [], threading.Event()

    def swapper():
        registry = served.registry
        names = [served.version, served.swap_to_copy()]
        flips = 0
        while not stop.is_set():
            link = registry / "current.tmp"
            os.symlink(names[flips % 2], link)
            os.replace(link, registry / "current")
            served.layer.refresh(served.site.site_id)
            flips += 1

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        for n in range(200):
            r = served.get(user_id=users[n % len(users)], n=5)
            if r.status_code != 200 or len(r.json["items"]) != 5:
                failures.append((r.status_code, r.json))
    finally:
        stop.set()
        thread.join()
    assert failures == []


def test_cached_results_honour_the_rules_and_the_request(served, client):
    user = served.customers(cluster=3)[0]
    first = served.get(user_id=user, n=10).json["items"]
    gone, out_of_stock = first[0]["item_id"], first[1]["item_id"]
    assert served.get(user_id=user).headers["X-Ecrm-Cache"] == "local"
    r = client.delete(f"/v1/items/{gone}", headers=auth(served.site))
    assert r.status_code in (200, 204)
    item = next(i for i in served.shop.items if i["item_id"] == out_of_stock)
    r = client.put(
        f"/v1/items/{out_of_stock}", json={**item, "in_stock": False}, headers=auth(served.site)
    )
    assert r.status_code in (200, 201), r.json
    # The catalogue API announces the change; without it the refresh interval (15 s) would.
    assert wait_for(
        lambda: (
            not {gone, out_of_stock}
            & {i["item_id"] for i in served.get(user_id=user).json["items"]}
        )
    )
    items = served.get(user_id=user, n=10).json["items"]
    ids = {i["item_id"] for i in items}
    assert gone not in ids and out_of_stock not in ids and len(items) == 10
    # Request filters on the cached list: exclude, context item, category, n.
    excluded = [items[0]["item_id"], items[1]["item_id"]]
    r = served.get(user_id=user, n=4, exclude=",".join(excluded), item_id=items[2]["item_id"])
    assert r.headers["X-Ecrm-Cache"] == "local" and len(r.json["items"]) == 4
    assert not set(excluded + [items[2]["item_id"]]) & {i["item_id"] for i in r.json["items"]}
    category = served.shop.items[0]["category"]
    r = served.get(user_id=user, n=5, category=category)
    assert r.json["items"] and all(
        next(i for i in served.shop.items if i["item_id"] == x["item_id"])["category"] == category
        for x in r.json["items"]
    )


def test_visitors_fold_in_their_views_and_unknown_visitors_get_trending(served, client):
    r = served.get(anonymous_id="never-seen")
    assert r.status_code == 200 and r.json["source"] == "trending" and r.json["items"]
    viewed = [i for i, c in served.shop.cluster_of_item().items() if c == 2][:3]
    batch = [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "fresh-visitor",
            "messageId": f"view-{n}",
            "properties": {"product_id": item},
        }
        for n, item in enumerate(viewed)
    ]
    assert served.get(anonymous_id="fresh-visitor").json["source"] == "trending"
    client.post("/v1/batch", json={"batch": batch}, headers=auth(served.site))
    drain(served.app)
    assert wait_for(lambda: served.get(anonymous_id="fresh-visitor").json["source"] == "personal")
    items = served.get(anonymous_id="fresh-visitor").json["items"]
    assert served.in_cluster(2, items) >= 0.6


def test_similar_items_and_similar_customers(served):
    item = served.shop.items[5]["item_id"]
    r = served.get(f"/v1/items/{item}/similar", n=6, placement="product")
    assert r.status_code == 200 and r.json["source"] == "item_neighbours"
    assert len(r.json["items"]) == 6 and item not in {i["item_id"] for i in r.json["items"]}
    user = served.customers()[0]
    r = served.get(f"/v1/customers/{user}/similar", k=5, n=4)
    assert r.status_code == 200 and r.json["source"] == "similar_customers"
    assert len(r.json["customers"]) == 5 and user not in [c["user_id"] for c in r.json["customers"]]
    # What those customers bought comes first, each saying so; a list they cannot fill is topped up
    # with popular items that say that instead.
    reasons = [i["reason"] for i in r.json["items"]]
    bought = [reason for reason in reasons if reason.startswith("bought by")]
    assert bought and reasons[: len(bought)] == bought
    assert all(reason == "popular now" for reason in reasons[len(bought) :])


def test_browsers_use_the_write_key_from_an_allowed_origin(served):
    site = served.site
    r = served.get(headers={"Origin": ORIGIN}, write_key=site.write_key, anonymous_id="v1")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    r = served.get(headers={"Referer": ORIGIN + "/cart"}, write_key=site.write_key, user_id="x")
    assert r.status_code == 200  # same-origin GETs carry no Origin header; Referer tells
    r = served.get(
        headers={"Origin": "https://evil.example"}, write_key=site.write_key, user_id="x"
    )
    assert r.status_code == 403 and r.json["error"]["field"] == "Origin"
    r = served.get(headers={}, write_key=site.write_key, user_id="x")
    assert r.status_code == 403 and r.json["error"]["field"] == "Origin"
    r = served.get("/v1/customers/x/similar", headers={"Origin": ORIGIN}, write_key=site.write_key)
    assert r.status_code == 403 and r.json["error"]["field"] == "Authorization"


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "user_id"),
        ({"user_id": "u", "n": "0"}, "n"),
        ({"user_id": "u", "n": "51"}, "n"),
        ({"user_id": "u", "n": "ten"}, "n"),
        ({"user_id": "u", "placement": "home page"}, "placement"),
        ({"user_id": "u" * 256}, "user_id"),
        ({"user_id": "u", "exclude": ",".join(str(i) for i in range(101))}, "exclude"),
        ({"user_id": "u", "category": "x" * 501}, "category"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(served, params, field):
    r = served.get(**params)
    assert r.status_code == 400 and r.json["success"] is False
    assert r.json["error"]["field"] == field and r.json["error"]["reason"]


def test_keys_are_required(served):
    assert served.get(headers={}, user_id="u").json["error"]["field"] == "write_key"
    r = served.get(headers={"Authorization": "Bearer nope"}, user_id="u")
    assert r.status_code == 401
    r = served.get("/v1/customers/u/similar", headers={})
    assert r.status_code == 401


def test_holdout_visitors_see_popular_items_labelled(app, client, site, trained):
    shop, registry = trained
    served = Served(app, client, site, shop, registry)
    served.layer.settings = replace(served.layer.settings, holdout_share=0.5)
    ids = [f"visitor-{n}" for n in range(40)]
    seen = {}
    for anonymous_id in ids:
        body = served.get(anonymous_id=anonymous_id).json
        seen[anonymous_id] = body["holdout"]
        assert body["holdout"] == in_holdout(site.site_id, anonymous_id, 0.5)
        if body["holdout"]:
            assert body["source"] == "popular"
    assert 5 < sum(seen.values()) < 35
    for anonymous_id in ids[:10]:  # sticky
        assert served.get(anonymous_id=anonymous_id).json["holdout"] == seen[anonymous_id]


def test_before_the_first_model_the_catalogue_answers_as_fallback(app, client, site, trained):
    shop, _ = trained
    upsert_items(
        app.extensions["ecrm"].engine, site.site_id, [validate_item(i) for i in shop.items]
    )
    r = client.get(
        "/v1/recommendations", query_string={"user_id": "anyone", "n": 5}, headers=auth(site)
    )
    assert r.status_code == 200 and r.json["source"] == "fallback"
    assert r.json["model_version"] is None and len(r.json["items"]) == 5


def test_every_fallback_with_the_redis_process_stopped(app_config, trained, tmp_path):
    """A Redis of its own, stopped mid-test: the model and popularity still answer."""
    shop, registry = trained
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    app = create_app({**app_config, "REDIS_URL": server.url, "VAR_DIR": str(tmp_path / "var")})
    try:
        engine = app.extensions["ecrm"].engine
        site, server_key = create_site(engine, "Redis-less shop", [ORIGIN])
        object.__setattr__(site, "server_key", server_key)
        client = app.test_client()
        served = Served(app, client, site, shop, registry)
        user = served.customers(cluster=2)[0]
        assert served.get(user_id=user).headers["X-Ecrm-Cache"] == "miss"
        server.stop()
        served.layer.local.clear()
        r = served.get(user_id=user, n=10)
        assert r.status_code == 200 and r.headers["X-Ecrm-Cache"] == "none"
        assert r.json["source"] == "personal" and served.in_cluster(2, r.json["items"]) > 0.6
        r = served.get(anonymous_id="stranger")
        assert r.status_code == 200 and r.json["source"] == "trending"
        r = served.get(f"/v1/items/{shop.items[0]['item_id']}/similar")
        assert r.status_code == 200 and r.json["items"]
        # No model either: popular from the catalogue, labelled.
        shutil.rmtree(served.registry)
        served.layer.refresh(site.site_id)
        r = served.get(user_id=user, n=3)
        assert r.status_code == 200 and r.json["source"] == "fallback" and len(r.json["items"]) == 3
        # Redis back: caching resumes once the retry pause is over.
        server.start()
        shutil.copytree(registry, served.registry, symlinks=True)
        served.layer.refresh(site.site_id)
        assert wait_for(
            lambda: served.get(user_id=user).headers["X-Ecrm-Cache"] in ("miss", "local"), 5
        )
    finally:
        app.extensions["ecrm_served"].close()  # its flush thread would outlive this Redis
        app.extensions["ecrm_serving"].close()
        app.extensions["ecrm"].engine.dispose()
        app.extensions["ecrm"].redis.close()
        server.stop()


def test_one_computation_per_key_under_concurrent_misses(served, monkeypatch):
    layer, calls = served.layer, []
    real = layer._compute

    def slow_compute(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(layer, "_compute", slow_compute)
    user = served.customers()[7]
    state = layer.state(served.site.site_id)
    results = []

    def ask():
        results.append(layer._entry(state, f"u:{user}", user, None))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len({tuple(map(tuple, entry["c"])) for entry, _ in results}) == 1


def test_the_train_command_precomputes_the_new_versions_cache(app, runner, site, redis):
    shop = generate_shop(SPEC)
    engine = app.extensions["ecrm"].engine
    upsert_items(engine, site.site_id, [validate_item(i) for i in shop.items])
    store_events(engine, site.site_id, shop.events)
    result = runner.invoke(args=["train", "--site", site.write_key, "--tune-seconds", "0"])
    assert result.exit_code == 0, result.output
    assert "customers precomputed" in result.output
    version = os.readlink(Path(app.config["VAR_DIR"]) / "models" / str(site.site_id) / "current")
    keys = redis.keys(f"ecrm:recs:{site.site_id}:{version}:u:*")
    assert len(keys) > 100
    user = keys[0].decode().rsplit(":u:", 1)[1]
    # Warmed by train (after promoting a first model, before swapping later ones): a Redis hit.
    app.extensions["ecrm_serving"].refresh(site.site_id)
    r = app.test_client().get(
        "/v1/recommendations", query_string={"user_id": user}, headers=auth(site)
    )
    assert r.headers["X-Ecrm-Cache"] == "redis" and r.json["model_version"] == version


def test_a_catalogue_reload_without_changes_keeps_the_encoded_answers(served, client):
    layer, site_id = served.layer, served.site.site_id
    before = layer.refresh(site_id, catalogue=True)
    assert layer.refresh(site_id, catalogue=True) is before  # same rows: same state, same memo
    item = served.shop.items[0]
    r = client.put(
        f"/v1/items/{item['item_id']}", json={**item, "in_stock": False}, headers=auth(served.site)
    )
    assert r.status_code in (200, 201)
    after = layer.refresh(site_id, catalogue=True)
    assert after is not before and not after.view.servable(item["item_id"])


def test_train_warms_the_cache_before_the_new_version_becomes_current(app, site, tmp_path):
    shop = generate_shop(SPEC)
    engine = app.extensions["ecrm"].engine
    upsert_items(engine, site.site_id, [validate_item(i) for i in shop.items])
    store_events(engine, site.site_id, shop.events)
    registry = tmp_path / "models"
    seen = []

    def before_promote(path: Path) -> None:
        current = registry / "current"
        seen.append((path.name, os.readlink(current) if current.is_symlink() else None))

    report = train(
        engine,
        TrainSettings(site.site_id, registry, tune_seconds=0, before_promote=before_promote),
    )
    assert report.promoted and seen == [(report.version, None)]
    assert os.readlink(registry / "current") == report.version
