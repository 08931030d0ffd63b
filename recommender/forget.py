"""Forget customers in trained models: their rows listed at once, blanked in the files after.

Erasure (accounts.erasure) must reach the model: a version folder names each customer it was
trained on (``interactions.json``/``purchases.json`` list the model users, user ids or
``anon:<anonymous id>``) and holds their rows (the interaction matrices, the factor models'
``user_factors``). It happens in two steps, and a row never moves in either:

1. :func:`mark` (milliseconds): the customers' rows in every kept version go into the version's
   ``forgotten.json`` (recommender.forgotten); every serving process blanks them in the model
   it holds when told, or at its next model check, and whenever it loads a version.
2. :func:`rewrite_pending` (seconds: the files are read and written whole): every version
   whose list has rows not yet blank in its files is written again beside itself with those
   rows blank (no id, no entries, factors of zero), the files without user rows hard-linked,
   and swapped in by two renames. The version keeps its name, so no process reloads it. One
   rewriter per registry at a time; whatever it finds listed and not yet blank, it blanks, so
   a rewrite that died is finished by the next one (the scheduler looks every minute).
   Erasure runs it off the request path, in a process of its own
   (:func:`rewrite_in_background`).

What the items learnt from the customers (item factors, neighbours, popularity counts) stays:
it describes items, not a person, and the next training recomputes it without them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from recommender import forgotten
from recommender.artifacts import artifact_paths, folder_digest, read_artifact, write_artifact
from recommender.registry import ModelRegistry

log = logging.getLogger("ecrm.recommender")

USERS_FILE = "interactions.json"  # the sidecar listing a version's model users, in row order
REWRITE_LOCK = ".rewrite.lock"  # in the registry root: one rewriter at a time


@dataclass
class ForgetReport:
    """What :func:`mark` or :func:`rewrite_pending` did to one site's registry."""

    versions: list[str] = field(default_factory=list)  # versions with rows listed or blanked
    rows: int = 0  # rows listed (mark) or blanked in files (rewrite), summed over versions


def users_of(folder: Path) -> list[str | None]:
    """The model users of a version folder in row order (None: a blank row); [] without."""
    try:
        return list(orjson.loads((Path(folder) / USERS_FILE).read_bytes())["user_ids"])
    except (FileNotFoundError, KeyError, ValueError):
        return []


def rows_of(folder: Path, users: Iterable[str]) -> set[int]:
    """The rows of these model users in a version folder."""
    wanted = set(users)
    return {row for row, user in enumerate(users_of(folder)) if user in wanted}


def mark(registry_root: str | Path, users: Iterable[str]) -> ForgetReport:
    """List the rows of ``users`` (model user ids) in every kept version that holds them."""
    users = {str(u) for u in users}
    registry = ModelRegistry(registry_root)
    report = ForgetReport()
    if not users or not registry.root.exists():
        return report
    with forgotten.locked(registry.root):
        for version in registry.versions():
            folder = registry.root / version
            try:
                fresh = forgotten.add(folder, rows_of(folder, users))
            except FileNotFoundError:  # pruned meanwhile (training): nothing left to forget
                continue
            if fresh:
                report.versions.append(version)
                report.rows += len(fresh)
    return report


def pending(registry_root: str | Path) -> dict[str, set[int]]:
    """Versions whose files still hold listed rows: version -> those rows."""
    registry = ModelRegistry(registry_root)
    found = {}
    for version in registry.versions():
        rows, rewritten = forgotten.read(registry.root / version)
        if rows - rewritten:
            found[version] = rows - rewritten
    return found


def rewrite_pending(registry_root: str | Path) -> ForgetReport:
    """Blank the listed rows in the files of every version that still holds some (waits for a
    rewriter already at work, then does what is left)."""
    registry = ModelRegistry(registry_root)
    report = ForgetReport()
    if not registry.root.exists():
        return report
    fd = os.open(registry.root / REWRITE_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _recover(registry)
        for version, rows in pending(registry.root).items():
            report.rows += _rewrite_version(registry, version, rows)
            report.versions.append(version)
    finally:
        os.close(fd)
    if report.versions:
        log.info("models: %d version(s) rewritten without erased customers", len(report.versions))
    return report


def forget_users(registry_root: str | Path, users: Iterable[str]) -> ForgetReport:
    """:func:`mark` then :func:`rewrite_pending`: the files hold none of ``users`` on return."""
    report = mark(registry_root, users)
    rewrite_pending(registry_root)
    return report


_rewriters: dict[Path, threading.Thread] = {}  # per registry, the thread watching a rewriter
_rewriters_lock = threading.Lock()
PROJECT = Path(__file__).resolve().parent.parent  # where ``recommender`` is imported from
REWRITER = (
    "import logging, sys; from recommender.forget import rewrite_pending; "
    "logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: "
    "%(message)s'); rewrite_pending(sys.argv[1])"
)


def rewrite_in_background(registry_root: str | Path) -> threading.Thread:
    """:func:`rewrite_pending` in a process of its own, watched by a thread of this one.

    The rewrite reads and writes hundreds of MB for seconds: in a web process it would hold
    its interpreter lock from requests and leave its memory grown. The watching thread runs
    the rewriter again while rows listed after it began are left (erasures one after another
    share it), and is not a daemon: a process that exits waits for the rewrite first.
    """
    root = Path(registry_root).resolve()
    with _rewriters_lock:
        running = _rewriters.get(root)
        if running is not None and running.is_alive():
            return running  # it looks for what is listed before it stops
        thread = threading.Thread(target=_watch, args=(root,), name="ecrm-forget", daemon=False)
        _rewriters[root] = thread
        thread.start()
    return thread


def _watch(root: Path) -> None:
    while True:
        try:
            done = subprocess.run(
                [sys.executable, "-c", REWRITER, str(root)], cwd=PROJECT, check=False
            )
            failed = done.returncode != 0
        except OSError:
            failed = True
        if failed:  # the rows stay listed: the next erasure or the scheduler tries again
            log.error("models: the rewrite without erased customers failed in %s", root)
        with _rewriters_lock:
            if failed or not pending(root):
                _rewriters.pop(root, None)
                return


def wait_for_rewrites(registry_root: str | Path, timeout: float | None = None) -> bool:
    """Wait for this process's background rewrite of a registry; whether none is running."""
    thread = _rewriters.get(Path(registry_root).resolve())
    if thread is not None:
        thread.join(timeout)
        return not thread.is_alive()
    return True


def _recover(registry: ModelRegistry) -> None:
    """Finish or undo what a rewriter that died left (the caller holds the rewrite lock): a
    version renamed away but not yet replaced gets its rewritten folder; the old folders (they
    still hold the rows) and unfinished rewrites are removed."""
    for old in registry.root.glob(".forgotten-*"):
        version, _, token = old.name[len(".forgotten-") :].rpartition("-")
        fresh = registry.root / f".forget-{version}-{token}"
        if version and not (registry.root / version).exists():
            # The new folder if it was written, else the old one back (its rows stay pending).
            (fresh if fresh.is_dir() else old).rename(registry.root / version)
        if old.exists() and (registry.root / version).exists():
            shutil.rmtree(old, ignore_errors=True)
    for unfinished in registry.root.glob(".forget-*"):
        shutil.rmtree(unfinished, ignore_errors=True)


def _rewrite_version(registry: ModelRegistry, version: str, rows: set[int]) -> int:
    """Write a version again beside itself with ``rows`` blank, swap it in; rows blanked."""
    folder = registry.root / version
    token = uuid.uuid4().hex[:8]
    fresh = registry.root / f".forget-{version}-{token}"
    try:
        blanked = rewrite_folder(folder, fresh, rows, version)
        old = registry.root / f".forgotten-{version}-{token}"
        with forgotten.locked(registry.root):
            # The list as it is now (an erasure may have added rows meanwhile: they stay
            # pending), with these rows recorded as blank in the files.
            listed, rewritten = forgotten.read(folder)
            forgotten.write(fresh, listed, rewritten | rows)
            folder.rename(old)
            fresh.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return blanked
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def rewrite_folder(source: Path, target: Path, rows: Iterable[int], version: str) -> int:
    """Write ``source``'s artifacts into ``target`` with ``rows`` blank, as model ``version``;
    return the rows blanked that held a user. ``target`` may be ``source`` (a staging folder
    rewritten where it is)."""
    listed = users_of(source)
    positions = np.array(sorted(r for r in set(rows) if 0 <= r < len(listed)), dtype=np.int64)
    blanked = sum(1 for r in positions if listed[r] is not None)
    target.mkdir(parents=True, exist_ok=True)
    if target != source:
        for path in source.iterdir():
            if path.is_file() and path.suffix not in (".json", ".npz"):
                shutil.copy2(path, target / path.name)
    for sidecar_path in sorted(source.glob("*.json")):
        if sidecar_path.name in ("train.json", forgotten.FILE):
            continue
        sidecar = _json(sidecar_path.read_bytes())
        if "npz_sha256" not in sidecar:
            if isinstance(sidecar.get("user_ids"), list):  # ids without arrays
                for row in positions:
                    sidecar["user_ids"][row] = None
                _replace(target / sidecar_path.name, json.dumps(sidecar).encode())
            elif target != source:
                shutil.copy2(sidecar_path, target / sidecar_path.name)
            continue
        stem = sidecar_path.with_suffix("")
        npz_path = artifact_paths(stem)[0]
        if "user_ids" not in sidecar and not _has_user_rows(npz_path):
            # Item-side only (EASE, neighbours, popularity): nothing of theirs to blank, and
            # hundreds of MB not worth reading and writing again. write_artifact never writes
            # through an existing file, so both folders may share the file.
            if target != source:
                for path in (npz_path, sidecar_path):
                    _link_or_copy(path, target / path.name)
            continue
        arrays, sidecar = read_artifact(stem)
        sidecar.pop("npz_sha256", None)
        if "user_ids" in sidecar:
            if len(sidecar["user_ids"]) != len(listed):
                raise ValueError(f"{sidecar_path} lists other users than {USERS_FILE}")
            for row in positions:
                sidecar["user_ids"][row] = None
            for name in [n[: -len("_shape")] for n in arrays if n.endswith("_shape")]:
                arrays.update(_empty_csr_rows(arrays, name, positions, len(listed)))
        factors = arrays.get("user_factors")
        if factors is not None and len(factors) == len(listed):
            factors[positions] = 0
        elif factors is not None and len(factors):
            raise ValueError(f"{stem}.npz has {len(factors)} user rows, {USERS_FILE} {len(listed)}")
        write_artifact(target / stem.name, arrays, sidecar)
    train = source / "train.json"
    if train.exists():
        meta = json.loads(train.read_text())
        meta.setdefault("counts", {})["customers"] = sum(1 for u in listed if u is not None) - (
            blanked
        )
        meta["version"] = version
        meta["digest"] = folder_digest(target)
        (target / "train.json").write_text(json.dumps(meta, indent=2, default=float))
    return blanked


def _replace(path: Path, body: bytes) -> None:
    """A new file under ``path`` (never written through: the old one may be shared)."""
    path.unlink(missing_ok=True)
    path.write_bytes(body)


def _json(raw: bytes) -> dict:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # NaN, which the standard module writes and orjson refuses
        return json.loads(raw)


def _has_user_rows(npz_path: Path) -> bool:
    """Whether an artifact's arrays hold per-user rows (read from the archive's names only)."""
    with zipfile.ZipFile(npz_path) as archive:
        return "user_factors.npy" in archive.namelist()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links refused
        shutil.copy2(source, target)


def _empty_csr_rows(
    arrays: dict[str, np.ndarray], name: str, positions: np.ndarray, n_users: int
) -> dict[str, np.ndarray]:
    """A stored CSR matrix with the entries of rows ``positions`` removed (the rows stay)."""
    shape = arrays[f"{name}_shape"]
    if int(shape[0]) != n_users:
        raise ValueError(f"matrix {name} has {int(shape[0])} rows for {n_users} users")
    indptr = arrays[f"{name}_indptr"]
    lengths = np.diff(indptr)
    blank = np.zeros(n_users, dtype=bool)
    blank[positions] = True
    if not lengths[blank].any():
        return {}
    keep_values = np.repeat(~blank, lengths)
    lengths[blank] = 0
    return {
        f"{name}_data": arrays[f"{name}_data"][keep_values],
        f"{name}_indices": arrays[f"{name}_indices"][keep_values],
        f"{name}_indptr": np.concatenate([[0], np.cumsum(lengths)]).astype(indptr.dtype),
    }
