"""Erasure's model rewrite blanks the listed rows where they are, keeps the version's name,
shares item-side artifacts with the old folder instead of copying them, and finishes what a
rewriter that died left; writing an artifact never changes a file another folder shares."""

from __future__ import annotations

import json
import os

import numpy as np

from recommender import forget, forgotten
from recommender.artifacts import read_artifact, write_artifact
from recommender.registry import ModelRegistry


def a_version(registry: ModelRegistry) -> str:
    version = registry.new_version()
    staging = registry.staging_dir(version)
    (staging / "interactions.json").write_text(json.dumps({"user_ids": ["a", "b", "c"]}))
    user_rows = {"user_factors": np.arange(1.0, 7.0).reshape(3, 2), "item_factors": np.ones((4, 2))}
    write_artifact(staging / "model.als", user_rows, {"kind": "als"})
    write_artifact(staging / "model.ease", {"weights": np.eye(4)}, {"kind": "ease"})
    registry.commit(version)
    return version


def files_naming(root, needle: str) -> list[str]:
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and needle.encode() in p.read_bytes()
    ]


def test_marking_lists_rows_and_the_rewrite_blanks_them_in_place(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    older = a_version(registry)
    current = a_version(registry)
    registry.promote(current)
    before = {v: (registry.root / v / "model.ease.npz").stat().st_ino for v in (older, current)}

    marked = forget.mark(registry.root, {"b", "nobody"})

    assert marked.rows == 2 and sorted(marked.versions) == sorted([older, current])
    assert forget.pending(registry.root) == {older: {1}, current: {1}}
    assert forget.mark(registry.root, {"b"}).rows == 0  # listed once
    assert files_naming(registry.root, '"b"')  # until the rewrite, the files still name them

    report = forget.rewrite_pending(registry.root)

    assert report.rows == 2 and sorted(report.versions) == sorted([older, current])
    assert forget.pending(registry.root) == {}
    assert registry.versions() == sorted([older, current]) and registry.current() == current
    for version in (older, current):
        folder = registry.root / version
        arrays, _ = read_artifact(folder / "model.als")  # the digest is checked too
        # The row stays where it was, blank: no row moves, so every copy agrees on positions.
        assert arrays["user_factors"].tolist() == [[1.0, 2.0], [0.0, 0.0], [5.0, 6.0]]
        assert forget.users_of(folder) == ["a", None, "c"]
        ease, _ = read_artifact(folder / "model.ease")
        assert (ease["weights"] == np.eye(4)).all()
        # The item-side file is shared with the folder it was rewritten from, not copied.
        assert (folder / "model.ease.npz").stat().st_ino == before[version]
        assert forgotten.read(folder) == ({1}, {1})
    assert files_naming(registry.root, '"b"') == []
    assert [p.name for p in registry.root.iterdir() if p.name.startswith(".forget")] == []
    assert forget.rewrite_pending(registry.root).versions == []  # nothing left to do


def test_a_rewrite_that_died_between_its_renames_is_finished(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    current = a_version(registry)
    registry.promote(current)
    forget.mark(registry.root, {"a"})
    # The old folder renamed away, the new one never written: the version is missing.
    folder = registry.root / current
    folder.rename(registry.root / f".forgotten-{current}-deadbeef")

    forget.rewrite_pending(registry.root)

    assert registry.versions() == [current]
    assert forget.users_of(folder) == [None, "b", "c"]
    assert read_artifact(folder / "model.als")[0]["user_factors"][0].tolist() == [0.0, 0.0]
    assert files_naming(registry.root, '"a"') == []


def test_writing_through_one_name_leaves_a_shared_file_alone(tmp_path):
    write_artifact(tmp_path / "one", {"weights": np.eye(3)}, {"kind": "ease"})
    os.link(tmp_path / "one.npz", tmp_path / "two.npz")
    os.link(tmp_path / "one.json", tmp_path / "two.json")
    write_artifact(tmp_path / "two", {"weights": np.zeros((3, 3))}, {"kind": "ease"})
    kept, _ = read_artifact(tmp_path / "one")
    assert (kept["weights"] == np.eye(3)).all()
    assert read_artifact(tmp_path / "two")[0]["weights"].sum() == 0
