"""A serving process forgets an erased customer at once, without reloading its model.

The rows are listed (recommender.forget.mark) and the process told, as erasure does: the
model it holds loses the customer's ids, history rows and factors in place (the same model
object keeps serving); their answers are no longer personal and nobody's "customers like you"
names them. A process that loads the version before its files are rewritten applies the list
first; after the rewrite the version keeps its name and nothing is reloaded.
"""

from __future__ import annotations

from recommender import forget, forgotten
from recommender.serving import ServingLayer
from tests.models_helpers import buyers, install_versions, stock


def told(layer: ServingLayer, site_id: int) -> None:
    """The message erasure publishes, handed to the listener as it arrives."""
    layer.sites._on_message({"channel": forgotten.CHANNEL.encode(), "data": str(site_id).encode()})


def test_an_erased_customer_is_forgotten_in_memory_at_once(app, site, db, model_versions):
    shop, trained, _ = model_versions
    root = install_versions(app, site.site_id, trained)
    stock(db, site.site_id, shop)
    layer: ServingLayer = app.extensions["ecrm_serving"]
    gone, other = buyers(shop)[:2]
    assert layer.recommend(site.site_id, user_id=gone).source == "personal"
    bundle = layer.state(site.site_id).bundle
    row = bundle.interactions.user_index[gone]
    factors = bundle.model.members["als"].user_factors
    assert factors[row].any() and bundle.interactions.user_items[row].nnz

    assert forget.mark(root, {gone}).rows >= 1
    told(layer, site.site_id)

    state = layer.state(site.site_id)
    assert state.bundle is bundle  # not reloaded
    assert gone not in bundle.interactions.user_index and not state.knows(gone, None)
    assert not factors[row].any() and not bundle.interactions.user_items[row].data.any()
    assert bundle.interactions.user_ids[row] is None
    layer.local.clear()  # their cached answers (erasure scrubs them from Redis too)
    if layer.redis is not None:
        layer.redis.flushdb()
    assert layer.recommend(site.site_id, user_id=gone).source != "personal"
    everyone = len(bundle.interactions.user_ids)
    like = layer.similar_customers(site.site_id, other, k=everyone, n=5)
    named = [c["user_id"] for c in like.extra["customers"]]
    assert named and gone not in named and None not in named

    # A process starting now loads the version as its files still are, and applies the list.
    fresh = ServingLayer(db, None, root.parent)
    try:
        loaded = fresh.state(site.site_id).bundle
        assert loaded is not bundle and gone not in loaded.interactions.user_index
        assert not loaded.model.members["als"].user_factors[row].any()
    finally:
        fresh.close()

    # The rewrite keeps the version's name: this process keeps the model it holds.
    assert forget.rewrite_pending(root).versions
    assert layer.refresh(site.site_id).bundle is bundle
    assert gone not in forget.users_of(root / bundle.version)


def test_a_lost_message_is_caught_up_by_the_model_check(app, site, db, model_versions):
    shop, trained, _ = model_versions
    root = install_versions(app, site.site_id, trained)
    stock(db, site.site_id, shop)
    layer: ServingLayer = app.extensions["ecrm_serving"]
    gone = buyers(shop)[0]
    bundle = layer.state(site.site_id).bundle
    assert gone in bundle.interactions.user_index
    # No message: the maintenance thread's round (here called directly, holding its lock so
    # that its own round cannot come first) reads the list.
    with layer.sites._lock:
        forget.mark(root, {gone})
        assert layer.sites._apply_forgotten(site.site_id) == 1
        assert layer.sites._apply_forgotten(site.site_id) == 0  # unchanged list: not read again
    assert gone not in bundle.interactions.user_index


def test_the_scheduler_finishes_a_rewrite_left_pending(app, site, model_versions):
    from webapp.scheduler import JOBS, finish_model_erasures

    shop, trained, versions = model_versions
    root = install_versions(app, site.site_id, trained)
    gone = buyers(shop)[0]
    forget.mark(root, {gone})  # listed, as by an erasure whose rewrite then died
    assert set(forget.pending(root)) == set(versions)
    assert finish_model_erasures in [job[2] for job in JOBS]
    with app.app_context():
        assert finish_model_erasures(site).startswith("3 model versions rewritten")
        assert finish_model_erasures(site) == "nothing to rewrite"
    assert forget.pending(root) == {}
    assert all(gone not in forget.users_of(root / v) for v in versions)
