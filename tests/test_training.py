"""The training job: promotion on good data, refusal of broken models, rollback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from demo import ShopSpec, generate_shop
from recommender.evaluate import split_by_customer, split_matrices
from recommender.event_frames import frame_from_segment, read_events
from recommender.interactions import build_interactions
from recommender.models import ALSModel, ALSParams, BlendParams, PopularityModel, load_model
from recommender.registry import ModelRegistry
from recommender.training import NotEnoughData, TrainSettings, check_model, final_model, train
from recommender.tuning import BlendConfig
from tests.conftest import PROJECT_ROOT
from tests.store_snapshot import stock_shop
from tracking.sites import create_site

SPEC = ShopSpec(seed=7, n_customers=160, n_items=80, n_clusters=4, days=21)


@pytest.fixture(scope="module")
def stocked(database_url):
    """(site, shop, snapshot): the shop stored through the write path once per database."""
    return stock_shop(database_url, "Trained shop", SPEC)


@pytest.fixture
def shop_site(db, stocked):
    """The stocked shop's rows put back into this test's empty store."""
    site, shop, snapshot = stocked
    snapshot.restore(db)
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
    assert "promoted" in first.output and "  evaluate " in first.output
    second = runner.invoke(args=["train", "--site", site.write_key, "--tune-seconds", "0"])
    third = runner.invoke(args=["train", "--site", site.write_key, "--tune-seconds", "0"])
    assert "promoted" in second.output and "promoted" in third.output
    registry = ModelRegistry(f"{app.config['VAR_DIR']}/models/{site.site_id}")
    versions = [entry["version"] for entry in registry.history()]
    assert len(versions) == 3 and registry.current() == versions[2]
    back = runner.invoke(args=["rollback", "--site", site.write_key])
    assert back.exit_code == 0 and versions[1] in back.output
    # A second rollback steps further back; it does not return to the newest model.
    again = runner.invoke(args=["rollback", "--site", site.write_key])
    assert again.exit_code == 0 and versions[0] in again.output
    assert registry.current() == versions[0]
    none_left = runner.invoke(args=["rollback", "--site", site.write_key])
    assert none_left.exit_code != 0 and "no model version older than" in none_left.output
    chosen = runner.invoke(args=["rollback", "--site", site.write_key, "--to", versions[2]])
    assert chosen.exit_code == 0 and registry.current() == versions[2]
    unknown = runner.invoke(args=["rollback", "--site", site.write_key, "--to", "nope"])
    assert unknown.exit_code != 0 and "unknown model version 'nope'" in unknown.output
    listed = runner.invoke(args=["rollback", "--site", site.write_key, "--list"])
    assert listed.exit_code == 0 and registry.current() == versions[2]
    rows = [line for line in listed.output.splitlines() if any(v in line for v in versions)]
    assert [line.removeprefix(" -> ").split()[0] for line in rows] == versions
    assert rows[2].startswith(" -> ") and rows[2].endswith("(current)")
    assert not any(r.startswith(" -> ") for r in rows[:2])
    nothing = runner.invoke(args=["train", "--site", "wk_nope"])
    assert nothing.exit_code != 0 and "no active site" in nothing.output


def test_train_prints_one_readable_line_per_stage(runner, shop_site):
    site, _ = shop_site
    result = runner.invoke(args=["train", "--site", site.write_key, "--tune-seconds", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(line.strip() for line in lines), "no blank lines"
    assert "{" not in result.output, "no raw dicts"
    stages = [line.split()[0] for line in lines if line.startswith("  ")]
    # The first model is promoted before its cache is warmed (nothing to protect yet).
    assert stages == ["read", "tune", "tune", "fit", "evaluate", "promote", "cache"]
    for line in lines[1:-1]:  # each stage line: its name, seconds, then what it did
        assert re.match(r"  [a-z]+ +\d+\.\d s  \S", line), line
    evaluate = next(line for line in lines if line.startswith("  evaluate"))
    # Rounded to three significant digits: no 17-digit floats.
    assert re.search(r"validation ndcg@10 0\.\d{1,4}(,|;)", evaluate), evaluate
    measured = [line for line in lines if line.startswith(("  tune", "  evaluate"))]
    assert not any(re.search(r"\d\.\d{5,}", line) for line in measured), measured
    assert lines[-1].startswith("promoted ") and lines[-1].endswith(" s")


@pytest.mark.slow
def test_train_by_hand_is_quiet_about_openblas_and_shows_stages_in_a_pipe(app, shop_site):
    """`flask --app wsgi train` run as a newcomer would, its output a pipe, not a terminal."""
    site, _ = shop_site
    c = app.config
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECRM_", "OPENBLAS"))}
    env.update(
        ECRM_SECRET_KEY="train-test-secret",
        ECRM_DATABASE_URL=c["DATABASE_URL"],
        ECRM_REDIS_URL=c["REDIS_URL"],
        ECRM_VAR_DIR=c["VAR_DIR"],
    )
    argv = ["train", "--site", site.write_key, "--tune-seconds", "0"]
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OpenBLAS" not in done.stderr and "Warning" not in done.stderr, done.stderr
    stages = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]
    assert stages == ["read", "fit", "evaluate", "promote", "cache"], done.stdout


def test_the_log_and_the_store_give_the_matrix_of_the_events_sent(db, shop_site):
    site, shop = shop_site
    logged = read_events(db, site.site_id)  # what the ingest path appended, batch by batch
    scanned = read_events(db, site.site_id, chunksize=97, source="store")
    assert len(logged) == len(scanned) > 0
    built = [build_interactions(frame) for frame in (logged, scanned)]
    sent = build_interactions(frame_from_segment(shop.events))
    for matrix in built:
        assert list(matrix.user_ids) == list(sent.user_ids)
        assert list(matrix.item_ids) == list(sent.item_ids)
        assert (matrix.user_items != sent.user_items).nnz == 0
        np.testing.assert_allclose(matrix.last_seen.toarray(), sent.last_seen.toarray())


def test_the_validated_model_brought_up_to_date_still_finds_the_clusters():
    shop = generate_shop(SPEC)
    frame = frame_from_segment(shop.events)
    fit_frame, valid_frame = split_by_customer(frame, 0.2)
    # An item only the held-out events know: the final model must still give it ALS factors.
    newest = fit_frame["item_id"].iloc[-1]
    fit_frame = fit_frame[fit_frame["item_id"] != newest]
    config = BlendConfig(
        als=ALSParams(factors=16, regularization=0.1, iterations=12),
        blend=BlendParams({"als": 1.0, "item_knn": 0.5, "covisit": 1.0, "popularity": 0.1}),
    )
    fit_part, _ = split_matrices(fit_frame, valid_frame, config.weights)
    candidate = config.build().fit(fit_part.user_items, last_seen=fit_part.last_seen)
    knn_before = candidate.members["item_knn"].similarity.copy()
    full = build_interactions(frame, config.weights)
    assert newest not in fit_part.item_index and full.shape[1] > fit_part.shape[1]

    model = final_model(candidate, fit_part, full)
    assert model.n_items == full.shape[1] and check_model(model, full) == []
    als = model.members["als"]
    assert als.user_factors.shape[0] == full.shape[0]
    assert np.any(als.item_factors[full.item_index[newest]])
    columns = full.item_positions(fit_part.item_ids)  # item side kept, only moved
    knn_after = model.members["item_knn"].similarity[columns][:, columns]
    assert (knn_after != knn_before).nnz == 0

    of_customer, of_item = shop.cluster_of_customer(), shop.cluster_of_item()
    customers = np.array([row for row, u in enumerate(full.user_ids) if u in of_customer])
    ids, _ = model.recommend(
        customers, full.user_items[customers], N=5, last_seen=full.last_seen[customers]
    )
    wanted = np.repeat([of_customer[full.user_ids[row]] for row in customers], 5)
    got = np.array([of_item[item] for item in full.items(ids.ravel())])
    assert np.mean(got == wanted) > 0.6
