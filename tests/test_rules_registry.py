"""Business rules and the model registry."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.registry import ModelRegistry, RegistryError
from recommender.rules import Catalogue, Rules, TraitConstraint, apply_rules, load_catalogue
from tracking.catalogue import upsert_items, validate_item
from tracking.sites import create_site


def catalogue() -> Catalogue:
    ids = ["jazz-1", "jazz-2", "jazz-3", "rock-1", "coffee-1", "wine-1", "gone-1"]
    return Catalogue(
        item_ids=np.array(ids, dtype=object),
        category=np.array(
            [
                "Music/Jazz",
                "Music/Jazz",
                "Music/Jazz",
                "Music/Rock",
                "Grocery/Coffee",
                "Wine/Red",
                "Music/Jazz",
            ],
            dtype=object,
        ),
        price=np.array([10.0, 25.0, 40.0, 15.0, 8.0, 20.0, 5.0]),
        servable=np.array([True, True, True, True, True, True, False]),
        flags={"age_restricted": np.array([False] * 5 + [True, False])},
    )


RANKED = ["gone-1", "jazz-1", "wine-1", "jazz-2", "coffee-1", "jazz-3", "rock-1", "unknown"]
SCORES = [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0]


def ids(result):
    return [item_id for item_id, _ in result]


def test_unservable_unknown_and_age_restricted_items_are_dropped():
    result = apply_rules(RANKED, SCORES, catalogue(), Rules(), 10)
    assert ids(result) == ["jazz-1", "jazz-2", "coffee-1", "jazz-3", "rock-1"]
    adult = apply_rules(RANKED, SCORES, catalogue(), Rules(), 10, traits={"age": 30})
    assert "wine-1" in ids(adult)
    teen = apply_rules(RANKED, SCORES, catalogue(), Rules(), 10, traits={"age": "16"})
    assert "wine-1" not in ids(teen)
    custom = Rules(trait_constraints=(TraitConstraint("age_restricted", "adult", 1),))
    assert "wine-1" in ids(
        apply_rules(RANKED, SCORES, catalogue(), custom, 10, traits={"adult": 1})
    )


def test_purchased_excluded_except_rebuy_categories():
    rules = Rules(rebuy_categories=("Grocery",))
    result = apply_rules(RANKED, SCORES, catalogue(), rules, 10, purchased=["jazz-1", "coffee-1"])
    assert "jazz-1" not in ids(result) and "coffee-1" in ids(result)
    keep_all = Rules(exclude_purchased=False)
    assert "jazz-1" in ids(
        apply_rules(RANKED, SCORES, catalogue(), keep_all, 10, purchased=["jazz-1"])
    )


def test_categories_price_and_diversity():
    only_music = Rules(include_categories=("Music",), exclude_categories=("Music/Rock",))
    assert ids(apply_rules(RANKED, SCORES, catalogue(), only_music, 10)) == [
        "jazz-1",
        "jazz-2",
        "jazz-3",
    ]
    priced = Rules(min_price=9, max_price=30)
    assert ids(apply_rules(RANKED, SCORES, catalogue(), priced, 10)) == [
        "jazz-1",
        "jazz-2",
        "rock-1",
    ]
    diverse = Rules(max_per_category=1)
    assert ids(apply_rules(RANKED, SCORES, catalogue(), diverse, 10)) == ["jazz-1", "coffee-1"]
    assert len(apply_rules(RANKED, SCORES, catalogue(), Rules(), 2)) == 2


def test_pins_and_boosts():
    rules = Rules(pinned=("rock-1", "gone-1"), boosts={"jazz-3": 3.0}, exclude_items=("jazz-2",))
    result = apply_rules(RANKED, SCORES, catalogue(), rules, 4)
    assert ids(result) == ["rock-1", "jazz-3", "jazz-1", "coffee-1"]


def test_load_catalogue_from_store(app, db):
    site, _ = create_site(db, "Shop", [])
    rows = [
        {
            "item_id": "a",
            "title": "A",
            "category": "Wine/Red",
            "price": 9,
            "attributes": {"age_restricted": True},
        },
        {"item_id": "b", "title": "B", "in_stock": False},
        {"item_id": "c", "title": "C", "active": False},
    ]
    upsert_items(db, site.site_id, [validate_item(r) for r in rows])
    loaded = load_catalogue(db, site.site_id)
    assert list(loaded.item_ids) == ["a", "b", "c"]
    assert list(loaded.servable) == [True, False, False]
    assert list(loaded.flags["age_restricted"]) == [True, False, False]
    assert loaded.price[0] == 9 and np.isnan(loaded.price[1])


def _stage(registry: ModelRegistry, payload: str) -> str:
    version = registry.new_version()
    (registry.staging_dir(version) / "model.txt").write_text(payload)
    registry.commit(version)
    return version


def test_registry_promote_rollback_prune(tmp_path):
    registry = ModelRegistry(tmp_path / "models", keep=3)
    with pytest.raises(RegistryError, match="run the train command"):
        registry.path()
    versions = [_stage(registry, f"v{i}") for i in range(5)]
    for version in versions:
        registry.promote(version)
    assert registry.current() == versions[-1]
    assert (registry.path() / "model.txt").read_text() == "v4"
    assert len(registry.versions()) == 3  # older ones pruned
    assert registry.rollback() == versions[-2]
    assert (registry.path() / "model.txt").read_text() == "v3"
    assert registry.history()[-1]["reason"].startswith("rollback from")
    with pytest.raises(RegistryError, match="unknown model version"):
        registry.promote("nope")


def test_rollback_steps_back_one_version_at_a_time_and_to_a_chosen_one(tmp_path):
    registry = ModelRegistry(tmp_path / "models", keep=5)
    versions = [_stage(registry, f"v{i}") for i in range(4)]
    for version in versions:
        registry.promote(version)
    # Each rollback goes one further back; it never bounces back to the newer model.
    assert registry.rollback() == versions[2]
    assert registry.rollback() == versions[1]
    assert registry.rollback() == versions[0]
    assert registry.current() == versions[0]
    with pytest.raises(RegistryError, match="no model version older than"):
        registry.rollback()
    assert registry.rollback(to=versions[3]) == versions[3]
    assert (registry.path() / "model.txt").read_text() == "v3"
    assert registry.rollback(to=versions[1]) == versions[1]
    assert registry.rollback() == versions[0]
    with pytest.raises(RegistryError, match="unknown model version 'nope'; kept versions"):
        registry.rollback(to="nope")
    with pytest.raises(RegistryError, match="already current"):
        registry.rollback(to=versions[0])
    listing = registry.listing()
    assert [row["version"] for row in listing] == versions
    assert [row["current"] for row in listing] == [True, False, False, False]
    assert all(row["promoted_at"] for row in listing)


def test_rollback_skips_versions_that_were_never_current(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    first, never, last = (_stage(registry, f"v{i}") for i in range(3))
    registry.promote(first)
    registry.promote(last)  # ``never`` was committed by a run that died before promoting it
    assert registry.rollback() == first
    with pytest.raises(RegistryError, match="no model has been promoted yet"):
        ModelRegistry(tmp_path / "empty").rollback()
    assert never in registry.versions()
