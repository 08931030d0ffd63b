"""Forget customers in trained models: rewrite every kept version without their rows.

Erasure (accounts.erasure) must reach the model: a version folder names each customer it was
trained on (``interactions.json``/``purchases.json`` list the model users) and holds their rows
(the interaction matrices, the factor models' ``user_factors``). :func:`forget_users` rewrites
each kept version of a site that holds any of the given model users (user ids, or
``anon:<anonymous id>``) without them: their id, their matrix rows, their factor rows. What the
items learnt from them (item factors, neighbours, popularity counts) stays: it describes items,
not a person, and the next training recomputes it without them.

Serving processes load a version once and keep it in memory, so the current version is not
rewritten in place: the rewrite becomes a new version (``<version>.e<time>``, which sorts just
after it) promoted atomically, and the old folder is removed; every process picks the new
version up when the ``current`` link moves. Versions that are not current are rewritten in
place (written beside, then swapped by two renames).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recommender.artifacts import artifact_paths, read_artifact, write_artifact
from recommender.registry import ModelRegistry

log = logging.getLogger("ecrm.recommender")

USERS_FILE = "interactions.json"  # the sidecar listing a version's model users, in row order
BASE_LENGTH = 29  # "%Y%m%dT%H%M%S.%f-xxxxxx": ModelRegistry.new_version's names


@dataclass
class ForgetReport:
    """What :func:`forget_users` did to one site's registry."""

    versions: list[str] = field(default_factory=list)  # rewritten (their names after)
    rows: int = 0  # model users removed, summed over versions
    current: str | None = None  # the new current version, when the current one was rewritten


def users_of(folder: Path) -> list[str]:
    """The model users of a version folder, in row order ([] when it lists none)."""
    try:
        return list(json.loads((folder / USERS_FILE).read_text())["user_ids"])
    except (FileNotFoundError, KeyError, ValueError):
        return []


def rewrite_folder(source: Path, target: Path, users: set[str], version: str) -> int:
    """Write ``source``'s artifacts into ``target`` without the rows of ``users``, as model
    ``version``; return the rows removed. ``target`` may be ``source`` (a staging folder
    rewritten where it is)."""
    listed = users_of(source)
    drop = np.array([u in users for u in listed], dtype=bool)
    removed = int(drop.sum())
    target.mkdir(parents=True, exist_ok=True)
    if target != source:
        for path in source.iterdir():
            if path.is_file() and path.suffix not in (".json", ".npz"):
                shutil.copy2(path, target / path.name)
    for sidecar_path in sorted(source.glob("*.json")):
        if sidecar_path.name == "train.json":
            continue
        sidecar = json.loads(sidecar_path.read_text())
        if "npz_sha256" not in sidecar:
            if target != source:
                shutil.copy2(sidecar_path, target / sidecar_path.name)
            continue
        stem = sidecar_path.with_suffix("")
        npz_path = artifact_paths(stem)[0]
        if "user_ids" not in sidecar and not _has_user_rows(npz_path):
            # Item-side only (EASE, neighbours, popularity): nothing of theirs to drop, and
            # hundreds of MB not worth reading and writing again. write_artifact never writes
            # through an existing file, so the new version may share the old one's.
            if target != source:
                for path in (npz_path, sidecar_path):
                    _link_or_copy(path, target / path.name)
            continue
        arrays, sidecar = read_artifact(stem)
        sidecar.pop("npz_sha256", None)
        if "user_ids" in sidecar:
            if len(sidecar["user_ids"]) != len(drop):
                raise ValueError(f"{sidecar_path} lists other users than {USERS_FILE}")
            kept = zip(sidecar["user_ids"], drop, strict=True)
            sidecar["user_ids"] = [u for u, gone in kept if not gone]
            for name in [n[: -len("_shape")] for n in arrays if n.endswith("_shape")]:
                arrays.update(_drop_csr_rows(arrays, name, drop))
        factors = arrays.get("user_factors")
        if factors is not None and len(factors) == len(drop):
            arrays["user_factors"] = factors[~drop]
        elif factors is not None and len(factors):
            raise ValueError(f"{stem}.npz has {len(factors)} user rows, {USERS_FILE} {len(drop)}")
        write_artifact(target / stem.name, arrays, sidecar)
    train = source / "train.json"
    if train.exists():
        meta = json.loads(train.read_text())
        meta.setdefault("counts", {})["customers"] = len(listed) - removed
        meta["version"] = version
        from recommender.training import _digest  # training imports this module

        meta["digest"] = _digest(target)
        (target / "train.json").write_text(json.dumps(meta, indent=2, default=float))
    return removed


def _has_user_rows(npz_path: Path) -> bool:
    """Whether an artifact's arrays hold per-user rows (read from the archive's names only)."""
    with zipfile.ZipFile(npz_path) as archive:
        return "user_factors.npy" in archive.namelist()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links refused
        shutil.copy2(source, target)


def _drop_csr_rows(arrays: dict[str, np.ndarray], name: str, drop: np.ndarray) -> dict:
    shape = arrays[f"{name}_shape"]
    if int(shape[0]) != len(drop):
        raise ValueError(f"matrix {name} has {int(shape[0])} rows for {len(drop)} users")
    indptr = arrays[f"{name}_indptr"]
    lengths = np.diff(indptr)
    keep_rows = ~drop
    keep_values = np.repeat(keep_rows, lengths)
    new_indptr = np.concatenate([[0], np.cumsum(lengths[keep_rows])]).astype(indptr.dtype)
    return {
        f"{name}_data": arrays[f"{name}_data"][keep_values],
        f"{name}_indices": arrays[f"{name}_indices"][keep_values],
        f"{name}_indptr": new_indptr,
        f"{name}_shape": np.array([int(keep_rows.sum()), int(shape[1])], dtype=shape.dtype),
    }


def forget_users(registry_root: str | Path, users: Iterable[str]) -> ForgetReport:
    """Rewrite every kept version of a registry that holds any of ``users`` (model user ids)."""
    users = {str(u) for u in users}
    registry = ModelRegistry(registry_root)
    report = ForgetReport()
    if not users:
        return report
    current = registry.current()
    for version in registry.versions():
        folder = registry.root / version
        if not users.intersection(users_of(folder)):
            continue
        if version == current:
            name = f"{version[:BASE_LENGTH]}.e{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
            staging = registry.staging_dir(name)
            report.rows += rewrite_folder(folder, staging, users, name)
            registry.commit(name)
            registry.promote(name, reason=f"erasure: rewritten from {version}")
            shutil.rmtree(folder, ignore_errors=True)
            report.current = name
            report.versions.append(name)
        else:
            token = uuid.uuid4().hex[:8]
            fresh = registry.root / f".forget-{version}-{token}"
            report.rows += rewrite_folder(folder, fresh, users, version)
            old = registry.root / f".forgotten-{version}-{token}"
            folder.rename(old)
            fresh.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
            report.versions.append(version)
    if report.versions:
        log.info("models: %d version(s) rewritten without erased customers", len(report.versions))
    return report
