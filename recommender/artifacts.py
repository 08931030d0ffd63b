"""Model and matrix artifacts: arrays in ``<stem>.npz`` (never pickled), the rest in a JSON sidecar.

The sidecar carries the sha256 of the npz, computed while it is written, and :func:`read_artifact`
checks it before loading, so a half-written or corrupt artifact is refused rather than served.
Sparse matrices are stored as four arrays each (``<name>_data``, ``_indices``, ``_indptr``,
``_shape``): see :func:`csr_arrays` and :func:`csr_from`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def artifact_paths(path: str | Path) -> tuple[Path, Path]:
    """(``<stem>.npz``, ``<stem>.json``) for a path given with or without a suffix."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".npz", ".json") else path
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def write_artifact(path: str | Path, arrays: Mapping[str, np.ndarray], sidecar: dict) -> None:
    """Write arrays to ``<path>.npz`` and ``sidecar`` (plus the npz's sha256) to ``<path>.json``."""
    npz_path, json_path = artifact_paths(path)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    # A new file, never the old one rewritten: versions may share an artifact's files (hard
    # links made by recommender.forget), and writing through one name would change both.
    npz_path.unlink(missing_ok=True)
    json_path.unlink(missing_ok=True)
    with open(npz_path, "wb") as handle:
        hashing = _HashingWriter(handle)
        np.savez(hashing, **{k: np.asarray(v) for k, v in arrays.items()})
    digest = hashing.hexdigest()
    json_path.write_text(json.dumps({**sidecar, "npz_sha256": digest}, default=_json_default))


class _HashingWriter:
    """A file wrapper that feeds every byte written to sha256 (no second read of the file).

    Only sequential writes: numpy's zip writer seeks back to patch headers only when it cannot
    tell the position, and this wrapper does not offer ``seek``, so it streams.
    """

    def __init__(self, handle):
        self.handle, self.sha, self.position = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.position += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.position

    def read(self, *args):  # numpy takes objects with ``read`` as open files
        raise OSError("write only")

    def flush(self) -> None:
        self.handle.flush()

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def read_artifact(path: str | Path, verify: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and sidecar written by :func:`write_artifact`; checks the digest unless told not."""
    npz_path, json_path = artifact_paths(path)
    sidecar = json.loads(json_path.read_text())
    if verify:
        digest = hashlib.sha256(npz_path.read_bytes()).hexdigest()
        if digest != sidecar.get("npz_sha256"):
            raise ValueError(
                f"{npz_path} does not match the digest in {json_path.name}; the artifact is "
                "corrupt or half-written: retrain or restore this model version"
            )
    with np.load(npz_path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, sidecar


def folder_digest(directory: Path) -> str:
    """sha256 over a version folder's artifact names and JSON sidecars (``train.json`` aside),
    each of which holds its arrays' sha256 (``npz_sha256``): every byte is covered without
    reading the arrays again."""
    sha = hashlib.sha256()
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file() and path.name != "train.json":
            sha.update(path.name.encode())
            if path.suffix != ".npz":
                sha.update(path.read_bytes())
    return sha.hexdigest()


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def csr_arrays(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """The four arrays that store a CSR matrix under ``name`` in an artifact."""
    matrix = sp.csr_matrix(matrix)
    return {
        f"{name}_data": matrix.data,
        f"{name}_indices": matrix.indices,
        f"{name}_indptr": matrix.indptr,
        f"{name}_shape": np.array(matrix.shape, dtype=np.int64),
    }


def csr_from(arrays: Mapping[str, np.ndarray], name: str) -> sp.csr_matrix:
    """The CSR matrix that :func:`csr_arrays` stored under ``name``."""
    return sp.csr_matrix(
        (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
        shape=tuple(int(n) for n in arrays[f"{name}_shape"]),
    )
