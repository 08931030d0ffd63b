"""Recommendation models on data whose right answer is known (the matrix: test_interactions).

The demo shop plants taste clusters: each customer buys mostly from their cluster's items, so a
working model recommends in-cluster items far above chance (1 / n_clusters).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from demo import ShopSpec, generate_shop
from recommender.event_frames import frame_from_segment
from recommender.interactions import EventWeights, Interactions, build_interactions
from recommender.models import (
    ALSModel,
    ALSParams,
    BlendModel,
    BlendParams,
    BPRModel,
    BPRParams,
    CoVisitModel,
    CoVisitParams,
    EASEModel,
    EASEParams,
    ItemKNNModel,
    ItemKNNParams,
    ModelNotReady,
    PopularityModel,
    PopularityParams,
    Recommender,
    covisit_counts,
    load_model,
    normalise_scores,
)

CLUSTERS = 4
T0 = datetime(2026, 11, 1, tzinfo=UTC)


# Planted taste clusters


@pytest.fixture(scope="module")
def shop():
    return generate_shop(
        ShopSpec(seed=11, n_customers=240, n_items=96, n_clusters=CLUSTERS, days=28)
    )


@pytest.fixture(scope="module")
def interactions(shop) -> Interactions:
    return build_interactions(frame_from_segment(shop.events), EventWeights(half_life_days=14.0))


@pytest.fixture(scope="module")
def clusters(shop, interactions):
    """(cluster of each row or -1 for anonymous visitors, cluster of each column)."""
    of_customer, of_item = shop.cluster_of_customer(), shop.cluster_of_item()
    users = np.array([of_customer.get(u, -1) for u in interactions.user_ids])
    items = np.array([of_item[i] for i in interactions.item_ids])
    return users, items


def build_models() -> dict:
    als = ALSModel(ALSParams(factors=16, regularization=0.1, alpha=2.0, iterations=12))
    ease = EASEModel(EASEParams(regularization=20.0))
    knn = ItemKNNModel(ItemKNNParams(K=30))
    return {
        "als": als,
        "bpr": BPRModel(BPRParams(factors=16, iterations=60, learning_rate=0.05)),
        "item_knn": knn,
        "ease": ease,
        "covisit": CoVisitModel(CoVisitParams(window=10)),
        "popularity": PopularityModel(),
        "blend": BlendModel(
            {
                "als": ALSModel(ALSParams(factors=16, regularization=0.1, iterations=12)),
                "ease": EASEModel(EASEParams(regularization=20.0)),
                "item_knn": ItemKNNModel(ItemKNNParams(K=30)),
            },
            BlendParams({"als": 1.0, "ease": 1.0, "item_knn": 0.5}),
        ),
    }


@pytest.fixture(scope="module")
def models(interactions) -> dict:
    fitted = build_models()
    for model in fitted.values():
        model.fit(interactions.user_items, last_seen=interactions.last_seen)
    return fitted


PERSONAL = ["als", "bpr", "item_knn", "ease", "covisit", "blend"]


def in_cluster_share(ids: np.ndarray, wanted: np.ndarray, item_clusters: np.ndarray) -> float:
    valid = ids >= 0
    return float(
        (item_clusters[ids[valid]] == np.repeat(wanted, ids.shape[1])[valid.ravel()]).mean()
    )


@pytest.mark.parametrize("name", PERSONAL)
def test_each_model_recommends_in_cluster_items(name, models, interactions, clusters):
    user_clusters, item_clusters = clusters
    customers = np.flatnonzero(user_clusters >= 0)
    ids, scores = models[name].recommend(
        customers,
        interactions.user_items[customers],
        N=5,
        last_seen=interactions.last_seen[customers],
    )
    assert ids.shape == scores.shape == (len(customers), 5)
    assert np.all(np.diff(scores, axis=1) <= 0), "scores come best first"
    share = in_cluster_share(ids, user_clusters[customers], item_clusters)
    assert share > 0.6, f"{name}: {share:.2f} of recommendations in the customer's cluster"
    # Already liked items are filtered.
    liked = interactions.user_items[customers]
    assert not any(set(ids[r]) & set(liked[r].indices) for r in range(len(customers)))


def test_popularity_ranks_by_customers_and_is_the_same_for_everyone(models, interactions):
    counts = np.bincount(interactions.user_items.indices, minlength=interactions.shape[1])
    empty = sp.csr_matrix((2, interactions.shape[1]), dtype=np.float32)
    ids, scores = models["popularity"].recommend([0, 1], empty, N=3)
    assert list(ids[0]) == list(ids[1])
    assert counts[ids[0][0]] == counts.max()
    assert scores[0][0] == pytest.approx(1.0)


def visitor_rows(interactions, items: list[int], start=T0) -> Interactions:
    """A new visitor's three product views, built exactly like training rows."""
    frame = pd.DataFrame(
        {
            "user_id": ["visitor"] * len(items),
            "item_id": interactions.item_ids[items],
            "event": ["Product Viewed"] * len(items),
            "timestamp": [start + timedelta(minutes=i) for i in range(len(items))],
        }
    )
    return build_interactions(
        frame, interactions.weights, user_ids=["visitor"], item_ids=interactions.item_ids
    )


@pytest.mark.parametrize("name", PERSONAL)
def test_three_views_fold_in_towards_the_visitors_cluster(name, models, interactions, clusters):
    _, item_clusters = clusters
    counts = np.bincount(interactions.user_items.indices, minlength=interactions.shape[1])
    shares = {}
    for cluster in range(CLUSTERS):
        members = np.flatnonzero(item_clusters == cluster)
        viewed = members[np.argsort(-counts[members], kind="stable")][:3].tolist()
        visitor = visitor_rows(interactions, viewed)
        ids, _ = models[name].recommend(
            -1, visitor.user_items, N=8, recalculate_user=True, last_seen=visitor.last_seen
        )
        assert not set(ids) & set(viewed)
        shares[cluster] = float(np.mean(item_clusters[ids[ids >= 0]] == cluster))
    # Each visitor's results lean to their own cluster: at least twice chance (1/4) everywhere,
    # and far above it on average. (Per cluster, 4 of 8 happens: the old demo catalogue gave
    # 3 of 8 for one cluster at seed 14, and the repriced one gives 4 of 8 at this seed.)
    assert min(shares.values()) >= 0.5, shares
    assert np.mean(list(shares.values())) > 0.6, shares


def test_fold_in_moves_als_results_and_partial_fit_stores_them(models, interactions, clusters):
    _, item_clusters = clusters
    als = models["als"]
    members = [np.flatnonzero(item_clusters == c)[:3].tolist() for c in (0, 1)]
    rows = sp.vstack([visitor_rows(interactions, m).user_items for m in members]).tocsr()
    ids, _ = als.recommend([-1, -1], rows, N=5, recalculate_user=True)
    assert np.mean(item_clusters[ids[0]] == 0) > np.mean(item_clusters[ids[1]] == 0)
    new = np.array([als.user_factors.shape[0]])
    als_copy = load_roundtrip(als, None)
    als_copy.partial_fit_users(new, rows[:1])
    stored, _ = als_copy.recommend(new, rows[:1], N=5)
    assert list(stored[0]) == list(ids[0])


# Popularity has no item-to-item signal by design; BPR's item cosine is too noisy to assert on.
@pytest.mark.parametrize("name", ["als", "item_knn", "ease", "covisit", "blend"])
def test_similar_items_stay_in_cluster(name, models, clusters):
    _, item_clusters = clusters
    items = np.arange(0, len(item_clusters), 7)
    ids, _ = models[name].similar_items(items, N=5)
    assert not np.any(ids == items[:, None]), "the item itself is left out"
    assert in_cluster_share(ids, item_clusters[items], item_clusters) > 0.6


def test_similar_customers_are_alike_and_explain_with_counts(models, interactions, clusters):
    user_clusters, item_clusters = clusters
    als = models["als"]
    customers = np.flatnonzero(user_clusters >= 0)[:30]
    same = []
    for row in customers:
        found = als.similar_customers(int(row), interactions.user_items, k=10, N=5)
        assert row not in found.customers
        assert len(found.customers) == 10
        assert np.all(np.diff(found.counts) <= 0) and np.all(found.counts >= 1)
        assert not set(found.items) & set(interactions.user_items[row].indices)
        chosen = interactions.user_items[found.customers]
        for item, count in zip(found.items, found.counts, strict=True):
            assert count == (chosen[:, item].toarray() > 0).sum()
        same.append(np.mean(user_clusters[found.customers] == user_clusters[row]))
    assert np.mean(same) > 0.6
    blend = models["blend"].similar_customers(int(customers[0]), interactions.user_items, k=5)
    assert len(blend.customers) == 5


def load_roundtrip(model, tmp_path):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp_path or tmp) / "model"
        model.save(path, metadata={"data_window": ["2026-10-01", "2026-10-29"]})
        return load_model(path)


@pytest.mark.parametrize("name", PERSONAL + ["popularity"])
def test_artifacts_round_trip_with_identical_recommendations(name, models, interactions, tmp_path):
    model = models[name]
    model.save(tmp_path / name, metadata={"metrics": {"ndcg@10": 0.5}})
    assert (tmp_path / f"{name}.npz").exists() and (tmp_path / f"{name}.json").exists()
    loaded = load_model(tmp_path / f"{name}.npz")
    assert type(loaded) is type(model)
    users = np.arange(0, interactions.shape[0], 9)
    rows, times = interactions.user_items[users], interactions.last_seen[users]
    before = model.recommend(users, rows, N=10, last_seen=times)
    after = loaded.recommend(users, rows, N=10, last_seen=times)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-6)
    items = np.arange(0, interactions.shape[1], 11)
    np.testing.assert_array_equal(model.similar_items(items)[0], loaded.similar_items(items)[0])


def test_artifacts_are_checked_and_never_pickled(models, tmp_path):
    path = tmp_path / "ease"
    models["ease"].save(path)
    with np.load(tmp_path / "ease.npz", allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    (tmp_path / "ease.npz").write_bytes((tmp_path / "ease.npz").read_bytes()[:-10])
    with pytest.raises(ValueError, match="digest"):
        load_model(path)


def test_interactions_round_trip(interactions, tmp_path):
    interactions.save(tmp_path / "interactions")
    loaded = Interactions.load(tmp_path / "interactions")
    assert (loaded.user_items != interactions.user_items).nnz == 0
    assert (loaded.last_seen != interactions.last_seen).nnz == 0
    assert list(loaded.user_ids) == list(interactions.user_ids)
    assert loaded.weights == interactions.weights


def test_unfitted_and_misshaped_inputs_say_what_to_do(interactions):
    with pytest.raises(ModelNotReady, match="fit"):
        ALSModel().recommend(0, interactions.user_items[:1])
    model = PopularityModel().fit(interactions.user_items)
    with pytest.raises(ValueError, match="columns"):
        model.recommend(0, sp.csr_matrix((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="one row per user"):
        model.recommend([0, 1], interactions.user_items[:1])
    with pytest.raises(ValueError, match="last_seen"):
        CoVisitModel().fit(interactions.user_items)


def test_recommend_restricts_and_filters_items(models, interactions):
    model = models["ease"]
    row = interactions.user_items[:1]
    allowed = np.arange(10)
    ids, _ = model.recommend(0, row, N=20, items=allowed)
    assert set(ids[ids >= 0]) <= set(allowed)
    assert len(ids) == 10
    first, _ = model.recommend(0, row, N=3)
    again, _ = model.recommend(0, row, N=3, filter_items=first[:1])
    assert first[0] not in again


# Co-visitation counts and wider catalogues


@pytest.mark.parametrize("gap_weighting", [False, True])
def test_covisit_counts_per_gap_equal_counting_every_pair(interactions, gap_weighting):
    window = 6
    n_items = interactions.shape[1]
    expected = np.zeros((n_items, n_items))
    last_seen = interactions.last_seen
    for row in range(last_seen.shape[0]):
        start, end = last_seen.indptr[row], last_seen.indptr[row + 1]
        items = last_seen.indices[start:end]
        times = last_seen.data[start:end]
        history = items[np.lexsort((items, times))]  # oldest first, ties by column
        for i, source in enumerate(history):
            for gap, target in enumerate(history[i + 1 : i + 1 + window], start=1):
                expected[source, target] += 1.0 / gap if gap_weighting else 1.0
    counted = covisit_counts(last_seen, n_items, window, gap_weighting)
    np.testing.assert_allclose(counted.toarray(), expected)


@pytest.mark.parametrize("name", ["item_knn", "ease", "covisit", "als", "popularity"])
def test_widen_moves_columns_and_leaves_new_items_empty(name, interactions):
    n_items = interactions.shape[1]
    new = np.array([0, 5, n_items - 1])
    old = np.setdiff1d(np.arange(n_items), new)
    narrow = build_models()[name].fit(
        interactions.user_items[:, old].tocsr(), last_seen=interactions.last_seen[:, old].tocsr()
    )
    before = narrow.item_scores(np.arange(len(old)))
    wide = narrow.widen(old, n_items)
    assert wide.n_items == n_items
    after = wide.item_scores(old)
    np.testing.assert_allclose(after[:, old], before, rtol=1e-5, atol=1e-6)
    if name != "als":  # ALS's new items get zero factors: cosine 0 as well
        assert not np.any(after[:, new])
    if name in ("item_knn", "ease", "covisit"):
        assert not np.any(wide.item_scores(new))


def test_zscore_skips_excluded_entries_with_or_without_non_finite_scores():
    rng = np.random.default_rng(3)
    scores = rng.normal(2.0, 3.0, size=(6, 40)).astype(np.float32)
    rows, cols = np.array([0, 0, 2, 5, 5]), np.array([3, 3, 7, 0, 39])  # (0, 3) twice
    exclude = sp.csr_matrix((np.ones(5, np.float32), (rows, cols)), shape=scores.shape)
    exclude.has_canonical_format = False
    expected = np.empty_like(scores)
    for row in range(len(scores)):
        kept = np.ones(scores.shape[1], bool)
        kept[cols[rows == row]] = False
        expected[row] = (scores[row] - scores[row, kept].mean()) / scores[row, kept].std()
    np.testing.assert_allclose(normalise_scores(scores, exclude, "zscore"), expected, atol=1e-5)
    with_inf = scores.copy()
    with_inf[1, 4] = -np.inf  # the general path: statistics skip it, it stays -inf
    out = normalise_scores(with_inf, exclude, "zscore")
    kept = np.isfinite(with_inf[1])
    row = (with_inf[1, kept] - with_inf[1, kept].mean()) / with_inf[1, kept].std()
    np.testing.assert_allclose(out[1, kept], row, atol=1e-5)
    assert out[1, 4] == -np.inf
    np.testing.assert_allclose(out[[0, 2, 3, 4, 5]], expected[[0, 2, 3, 4, 5]], atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"N": 7, "filter_items": np.array([0, 3, 5])},
        {"N": 4, "items": np.array([1, 2, 4, 6, 8, 9, 11])},
        {"N": 30},  # more than any row has left: -1 pads
        {"N": 5, "filter_already_liked_items": False},
    ],
)
def test_popularity_recommend_matches_scoring_every_item(options):
    rng = np.random.default_rng(3)
    history = sp.random(40, 25, density=0.3, format="csr", random_state=4, dtype=np.float32)
    users = np.arange(40)
    # Distinct popularity: the very lists of the dense path.
    strengths = sp.csr_matrix(rng.permutation(25)[None, :] + 1.0)
    distinct = PopularityModel(PopularityParams(count="strength")).fit(strengths)
    fast = distinct.recommend(users, history, **options)
    dense = Recommender.recommend(distinct, users, history, **options)
    np.testing.assert_array_equal(fast[0], dense[0])
    np.testing.assert_array_equal(fast[1], dense[1])
    one = distinct.recommend(3, history[3], **options)
    np.testing.assert_array_equal(one[0], dense[0][3])
    # Many ties: the same scores; which of the tied items fill the last places may differ
    # (the dense path's argpartition picks any), but each list is valid.
    counts = sp.csr_matrix(rng.integers(0, 3, size=(60, 25)).astype(np.float32))
    tied = PopularityModel().fit(counts)
    ids, scores = tied.recommend(users, history, **options)
    np.testing.assert_array_equal(scores, Recommender.recommend(tied, users, history, **options)[1])
    for row, (listed, values) in enumerate(zip(ids, scores, strict=True)):
        shown = listed[listed >= 0]
        assert len(set(shown)) == len(shown)
        np.testing.assert_array_equal(tied.popularity[shown], values[listed >= 0])
        if options.get("filter_already_liked_items", True):
            assert not set(shown) & set(history[row].indices)
        assert not set(shown) & set(options.get("filter_items", []))
        if "items" in options:
            assert set(shown) <= set(options["items"])
