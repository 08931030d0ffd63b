"""One visitor's answer from a trained model: planted clusters found, fold-in, rules, reasons."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from demo import ShopSpec, generate_shop
from recommender.answers import ModelBundle, RecommendationService
from recommender.rules import Rules, load_catalogue
from recommender.training import TrainSettings, train
from tests.conftest import empty_store, store_events
from tracking.catalogue import hide_item, upsert_items, validate_item
from tracking.db import make_engine
from tracking.sites import create_site

SPEC = ShopSpec(seed=11, n_customers=200, n_items=80, n_clusters=4, days=21)


@pytest.fixture(scope="module")
def registry(database_url, tmp_path_factory):
    """(shop, registry folder): the shop stored and trained once per database for this module."""
    root = tmp_path_factory.mktemp("answers-model")
    engine = make_engine(database_url)
    empty_store(engine)
    site, _ = create_site(engine, "Served shop", [])
    shop = generate_shop(SPEC)
    upsert_items(engine, site.site_id, [validate_item(i) for i in shop.items])
    store_events(engine, site.site_id, shop.events)
    report = train(engine, TrainSettings(site.site_id, root / "models", tune_seconds=0))
    assert report.promoted, report.failures
    engine.dispose()
    return shop, root / "models"


@pytest.fixture
def trained(db, tmp_path, registry):
    """The module's model, copied into this test's folder, served over this test's catalogue."""
    shop, models = registry
    site, _ = create_site(db, "Served shop", [])
    upsert_items(db, site.site_id, [validate_item(i) for i in shop.items])
    shutil.copytree(models, tmp_path / "models", symlinks=True)
    bundle = ModelBundle.current(tmp_path / "models")
    service = RecommendationService(bundle, load_catalogue(db, site.site_id))
    return site, shop, service


def in_cluster_share(shop, cluster: int, item_ids) -> float:
    clusters = shop.cluster_of_item()
    return float(np.mean([clusters[i] == cluster for i in item_ids])) if item_ids else 0.0


def test_customers_get_items_from_their_own_taste_cluster(trained):
    site, shop, service = trained
    of_customer = shop.cluster_of_customer()
    shares = []
    for user_id in list(of_customer)[:60]:
        recs = service.recommend_for_customer(user_id, 10)
        assert len(recs) == 10 and recs.model_version == service.version
        if recs.source == "personal":
            shares.append(in_cluster_share(shop, of_customer[user_id], recs.item_ids))
    assert len(shares) >= 40
    assert np.mean(shares) > 0.6  # chance is 1/4


def test_a_visitor_three_views_fold_in_towards_their_cluster(trained):
    site, shop, service = trained
    clusters = shop.cluster_of_item()
    assert service.recommend_for_visitor([], 10).source in ("trending", "popular")
    results = {}
    for cluster in (0, 1):
        viewed = [i for i, c in clusters.items() if c == cluster][:3]
        recs = service.recommend_for_visitor(
            [{"item_id": i, "event": "Product Viewed"} for i in viewed], 10
        )
        assert recs.source == "personal" and not set(viewed) & set(recs.item_ids)
        assert in_cluster_share(shop, cluster, recs.item_ids) >= 0.6
        results[cluster] = recs.item_ids
    assert results[0] != results[1]


def test_a_customers_newest_events_count_without_retraining(trained):
    site, shop, service = trained
    of_customer = shop.cluster_of_customer()
    user_id = next(iter(of_customer))
    other = (of_customer[user_id] + 1) % SPEC.n_clusters
    before = service.recommend_for_customer(user_id, 10)
    news = [i for i, c in shop.cluster_of_item().items() if c == other][:6]
    after = service.recommend_for_customer(
        user_id, 10, recent_events=[{"item_id": i, "event": "Product Added"} for i in news]
    )
    assert in_cluster_share(shop, other, after.item_ids) > in_cluster_share(
        shop, other, before.item_ids
    )


def test_rules_are_honoured(trained, db):
    site, shop, service = trained
    user_id = next(iter(shop.cluster_of_customer()))
    first = service.recommend_for_customer(user_id, 10)
    hide_item(db, site.site_id, first.item_ids[0])
    service.catalogue = load_catalogue(db, site.site_id)
    again = service.recommend_for_customer(user_id, 10)
    assert first.item_ids[0] not in again.item_ids
    jazz = service.recommend_for_customer(user_id, 10, rules=Rules(include_categories=("Music",)))
    items = {i["item_id"]: i for i in shop.items}
    assert all(items[i]["category"].startswith("Music/") for i in jazz.item_ids)
    cheap = service.recommend_for_customer(user_id, 10, rules=Rules(max_price=15))
    assert all(items[i]["price"] <= 15 for i in cheap.item_ids)
    diverse = service.recommend_for_customer(user_id, 10, rules=Rules(max_per_category=2))
    tops = [items[i]["category"].split("/")[0] for i in diverse.item_ids]
    assert max(tops.count(t) for t in set(tops)) <= 2
    for recs in (again, jazz, cheap, diverse):
        assert all(items[i]["in_stock"] and items[i]["active"] for i in recs.item_ids)
        assert not any(items[i]["attributes"].get("age_restricted") for i in recs.item_ids)
    wine = [i for i, item in items.items() if item["attributes"].get("age_restricted")]
    pinned = Rules(pinned=(wine[0],), include_categories=("Wine",))
    adult = service.recommend_for_customer(user_id, 5, rules=pinned, traits={"age": 40})
    minor = service.recommend_for_customer(user_id, 5, rules=pinned, traits={"age": 15})
    if items[wine[0]]["in_stock"] and items[wine[0]]["active"]:
        assert adult.item_ids[0] == wine[0]
    assert minor.item_ids == [] or wine[0] not in minor.item_ids


def test_purchases_are_not_recommended_again(trained):
    site, shop, service = trained
    buyers = {e["userId"]: e for e in shop.events if e.get("event") == "Order Completed"}
    user_id, order = next(iter(buyers.items()))
    bought = {p["product_id"] for p in order["properties"]["products"]}
    bought_non_grocery = {i for i in bought if not i.startswith("Grocery")}
    recs = service.recommend_for_customer(user_id, 20)
    assert not bought_non_grocery & set(recs.item_ids)


def test_similar_items_and_similar_customers_explain_themselves(trained):
    site, shop, service = trained
    clusters = shop.cluster_of_item()
    item_id = next(i for i, c in clusters.items() if c == 2)
    similar = service.similar_items(item_id, 8)
    assert similar.source == "item_neighbours" and item_id not in similar.item_ids
    assert in_cluster_share(shop, 2, similar.item_ids) >= 0.5
    assert set(similar.reasons) == {"customers who bought this also bought"}
    buyer = next(e["userId"] for e in shop.events if e.get("event") == "Order Completed")
    like_you = service.similar_customers(buyer, k=10, n=5)
    assert like_you.source == "similar_customers" and len(like_you.extra["customers"]) == 10
    # Down the list, items bought by a single neighbour: the reason is singular there.
    longer = like_you.reasons + service.similar_customers(buyer, k=10, n=50).reasons
    assert "bought by 1 customer like you" in longer
    assert all(re.fullmatch(r"bought by (1 customer|\d+ customers) like you", r) for r in longer)
    assert not any(r.startswith("bought by 1 customers") for r in longer)
    unknown = service.similar_items("no-such-item", 5)
    assert unknown.source == "popular"


def test_without_a_model_the_catalogue_answers(db, tmp_path):
    site, _ = create_site(db, "New shop", [])
    upsert_items(db, site.site_id, [validate_item({"item_id": "a", "title": "A"})])
    assert ModelBundle.current(tmp_path / "none") is None
    service = RecommendationService(None, load_catalogue(db, site.site_id))
    recs = service.recommend_for_customer("anyone", 5)
    assert recs.item_ids == ["a"] and recs.source == "fallback" and recs.model_version is None
