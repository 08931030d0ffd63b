"""Erasure's model rewrite shares item-side artifacts with the old version instead of copying
them, and writing an artifact never changes a file another version shares."""

from __future__ import annotations

import json
import os

import numpy as np

from recommender import forget
from recommender.artifacts import read_artifact, write_artifact
from recommender.registry import ModelRegistry


def a_version(registry: ModelRegistry) -> str:
    version = registry.new_version()
    staging = registry.staging_dir(version)
    (staging / "interactions.json").write_text(json.dumps({"user_ids": ["a", "b", "c"]}))
    user_rows = {"user_factors": np.arange(6.0).reshape(3, 2), "item_factors": np.ones((4, 2))}
    write_artifact(staging / "model.als", user_rows, {"kind": "als"})
    write_artifact(staging / "model.ease", {"weights": np.eye(4)}, {"kind": "ease"})
    registry.commit(version)
    return version


def test_the_rewrite_drops_user_rows_and_links_item_side_files(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    older = a_version(registry)
    current = a_version(registry)
    registry.promote(current)
    before = (registry.root / older / "model.ease.npz").stat().st_ino

    report = forget.forget_users(registry.root, {"b"})

    assert report.rows == 2 and len(report.versions) == 2
    new = registry.root / report.current
    assert not (registry.root / current).exists()
    for folder in (new, registry.root / older):
        arrays, _ = read_artifact(folder / "model.als")  # the digest is checked too
        assert arrays["user_factors"].tolist() == [[0.0, 1.0], [4.0, 5.0]]
        ease, _ = read_artifact(folder / "model.ease")
        assert (ease["weights"] == np.eye(4)).all()
    # The older version was rewritten beside itself: its item-side file is the same inode.
    assert (registry.root / older / "model.ease.npz").stat().st_ino == before


def test_writing_through_one_name_leaves_a_shared_file_alone(tmp_path):
    write_artifact(tmp_path / "one", {"weights": np.eye(3)}, {"kind": "ease"})
    os.link(tmp_path / "one.npz", tmp_path / "two.npz")
    os.link(tmp_path / "one.json", tmp_path / "two.json")
    write_artifact(tmp_path / "two", {"weights": np.zeros((3, 3))}, {"kind": "ease"})
    kept, _ = read_artifact(tmp_path / "one")
    assert (kept["weights"] == np.eye(3)).all()
    assert read_artifact(tmp_path / "two")[0]["weights"].sum() == 0
