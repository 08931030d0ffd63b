"""The training job: promotion on good data, refusal of broken models, rollback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recommender.interactions import build_interactions, read_events
from recommender.models import ALSModel, ALSParams, PopularityModel, load_model
from recommender.registry import ModelRegistry
from recommender.training import NotEnoughData, TrainSettings, check_model, train
from tests.conftest import store_events
from tracking.catalogue import upsert_items, validate_item
from tracking.demo import ShopSpec, generate_shop
from tracking.sites import create_site

SPEC = ShopSpec(seed=7, n_customers=160, n_items=80, n_clusters=4, days=21)


@pytest.fixture
def shop_site(db):
    site, _ = create_site(db, "Trained shop", [])
    shop = generate_shop(SPEC)
    upsert_items(db, site.site_id, [validate_item(i) for i in shop.items])
    store_events(db, site.site_id, shop.events)
    return site, shop


def test_train_promotes_a_model_that_beats_popularity(db, shop_site, tmp_path):
    site, shop = shop_site
    stages = []
    report = train(
        db,
        TrainSettings(site.site_id, tmp_path / "models", tune_seconds=0),
        progress=lambda stage, message: stages.append(stage),
    )
    assert report.promoted, report.failures
    assert report.metrics["ndcg@10"] >= report.baseline["ndcg@10"]
    assert {"read", "evaluate", "promote"} <= set(stages)
    registry = ModelRegistry(tmp_path / "models")
    assert registry.current() == report.version
    sidecar = json.loads((registry.path() / "train.json").read_text())
    assert sidecar["digest"] and sidecar["counts"]["customers"] == report.n_users
    assert sidecar["validation"]["metrics"]["ndcg@10"] == report.metrics["ndcg@10"]
    model = load_model(registry.path() / "model")
    assert model.n_items == report.n_items


def test_no_data_is_a_clear_error(db, tmp_path):
    site, _ = create_site(db, "Empty shop", [])
    with pytest.raises(NotEnoughData, match="at least"):
        train(db, TrainSettings(site.site_id, tmp_path / "models", tune_seconds=0))


def test_promotion_refuses_broken_models(db, shop_site):
    site, _ = shop_site
    interactions = build_interactions(read_events(db, site.site_id))
    als = ALSModel(ALSParams(factors=16, iterations=5)).fit(interactions.user_items)
    assert check_model(als, interactions) == []

    transposed = ALSModel(ALSParams(factors=16, iterations=5)).fit(
        interactions.user_items.T.tocsr()
    )
    assert any("orientation" in f for f in check_model(transposed, interactions))

    als.user_factors[3, 0] = np.nan
    assert any("NaN" in f for f in check_model(als, interactions))

    popular = PopularityModel().fit(interactions.user_items)
    assert any("same" in f for f in check_model(popular, interactions))

    worse = check_model(
        ALSModel(ALSParams(factors=16, iterations=5)).fit(interactions.user_items),
        interactions,
        metrics={"ndcg@10": 0.01},
        baseline={"ndcg@10": 0.05},
    )
    assert any("worse than popularity" in f for f in worse)


def test_train_and_rollback_commands(runner, shop_site, app):
    site, _ = shop_site
    first = runner.invoke(args=["train", "--site", site.write_key, "--tune-seconds", "0"])
    assert first.exit_code == 0, first.output
    assert "promoted" in first.output and "evaluate:" in first.output
    second = runner.invoke(args=["train", "--site", site.write_key, "--tune-seconds", "0"])
    assert "promoted" in second.output
    registry = ModelRegistry(f"{app.config['VAR_DIR']}/models/{site.site_id}")
    versions = [entry["version"] for entry in registry.history()]
    assert len(versions) == 2 and registry.current() == versions[1]
    back = runner.invoke(args=["rollback", "--site", site.write_key])
    assert back.exit_code == 0 and versions[0] in back.output
    assert registry.current() == versions[0]
    nothing = runner.invoke(args=["train", "--site", "wk_nope"])
    assert nothing.exit_code != 0 and "no active site" in nothing.output
