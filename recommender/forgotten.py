"""The rows of erased customers in a model version, and blanking them in a loaded model at once.

Erasure (accounts.erasure) must take a customer out of the model every web process serves now,
and out of the files later. A version's rows never move: an erased customer's row stays where
it was, blank (no id, no entries, factors of zero), so a row number means the same thing in
every copy of a version, in memory or on disk. ``forgotten.json`` in a version folder lists
the rows erased from it (``rows``) and those already blank in its files (``rewritten``,
recommender.forget); it names no one: a row number says nothing once the row is blank.

Every serving process blanks the listed rows in the model it holds (:func:`blank_bundle`, in
place, a few microseconds): when told on :data:`CHANNEL`, when it notices the file changed
(each model check), and whenever it loads a version. No process reloads a model for an
erasure, so serving does not slow down while erasures run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson
import scipy.sparse as sp

if TYPE_CHECKING:
    from recommender.answers import ModelBundle
    from recommender.interactions import Interactions

FILE = "forgotten.json"
CHANNEL = "ecrm:models:forgotten"  # message: a site id whose current version has new rows
LOCK = ".forgotten.lock"  # in the registry root: read-modify-write of any version's list


def read(folder: Path) -> tuple[set[int], set[int]]:
    """(rows erased, rows already blank in the files) of a version folder; empty sets without
    the file."""
    try:
        data = orjson.loads((Path(folder) / FILE).read_bytes())
    except FileNotFoundError:
        return set(), set()
    return {int(r) for r in data.get("rows", [])}, {int(r) for r in data.get("rewritten", [])}


def write(folder: Path, rows: Iterable[int], rewritten: Iterable[int]) -> None:
    """Replace a version's list (written beside, then renamed: readers see one or the other)."""
    folder = Path(folder)
    body = orjson.dumps({"rows": sorted(set(rows)), "rewritten": sorted(set(rewritten))})
    temporary = folder / f".{FILE}-{uuid.uuid4().hex}"
    with open(temporary, "wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, folder / FILE)


@contextlib.contextmanager
def locked(registry_root: Path) -> Iterator[None]:
    """Hold the registry's lock on every version's list (held for milliseconds only)."""
    root = Path(registry_root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def add(folder: Path, rows: Iterable[int]) -> set[int]:
    """Add rows to a version's list (the caller holds :func:`locked`); the rows that were new."""
    listed, rewritten = read(folder)
    fresh = set(rows) - listed
    if fresh:
        write(folder, listed | fresh, rewritten)
    return fresh


def stamp(folder: Path) -> tuple[int, int, int] | None:
    """What tells a change of a version's list cheaply: (inode, mtime ns, size), None without."""
    try:
        found = os.stat(Path(folder) / FILE)
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


# In memory


def blank_bundle(bundle: ModelBundle, rows: Iterable[int]) -> set[int]:
    """Blank rows of a loaded model version in place; the rows blanked now.

    The ids go from the id maps first (no request finds the rows from then on), then their
    history rows and their factors are overwritten. Rows blanked before are skipped.
    """
    done = bundle.__dict__.setdefault("_forgotten", set())
    n_users = len(bundle.interactions.user_ids)
    todo = sorted(r for r in set(rows) - done if 0 <= r < n_users)
    if not todo:
        return set()
    positions = np.asarray(todo, dtype=np.int64)
    for interactions in (bundle.interactions, bundle.purchases):
        if len(interactions.user_ids) == n_users:
            _blank_ids(interactions, positions)
    for interactions in (bundle.interactions, bundle.purchases):
        if len(interactions.user_ids) == n_users:
            for matrix in (interactions.user_items, interactions.last_seen):
                if matrix is not None:
                    blank_csr_rows(matrix, positions)
    for member in getattr(bundle.model, "members", {"model": bundle.model}).values():
        factors = getattr(member, "user_factors", None)
        if factors is not None and len(factors) == n_users:
            factors[positions] = 0
    done.update(todo)
    return set(todo)


def _blank_ids(interactions: Interactions, positions: np.ndarray) -> None:
    index = interactions.__dict__.get("user_index")
    if index is not None:
        for user_id in interactions.user_ids[positions]:
            if user_id is not None:
                index.pop(user_id, None)
    interactions.__dict__.pop("_user_lookup", None)  # rebuilt from the blanked ids when used
    interactions.user_ids[positions] = None


def blank_csr_rows(matrix: sp.csr_matrix, positions: np.ndarray) -> None:
    """Overwrite the entries of CSR rows in place: values 0 at columns 0, 1, ... (the row keeps
    its length, so nothing moves and the matrix stays canonical; nothing of the row is left)."""
    for row in positions:
        start, end = int(matrix.indptr[row]), int(matrix.indptr[row + 1])
        matrix.data[start:end] = 0
        columns = np.arange(end - start) % max(matrix.shape[1], 1)
        matrix.indices[start:end] = columns.astype(matrix.indices.dtype)
