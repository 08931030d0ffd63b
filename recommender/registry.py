"""The model registry: versions under ``var/models/<version>/``, one of them current.

A version is written into a staging folder, renamed into place, and made current by atomically
replacing the ``current`` symlink, so readers see either the old model or the new one, never half
of one. ``promotions.jsonl`` records every switch. ``rollback`` steps back through the versions
that were ever current, newest first: a second rollback goes one version further back rather than
returning to the newer model, and ``rollback(to=...)`` picks one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says why."""


class ModelRegistry:
    """Versions of trained models on disk."""

    def __init__(self, root: str | os.PathLike, keep: int = 5):
        self.root = Path(root)
        self.keep = keep

    @property
    def current_link(self) -> Path:
        """The symlink naming the current version."""
        return self.root / "current"

    def new_version(self) -> str:
        """A sortable, unique version name."""
        return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f") + "-" + uuid.uuid4().hex[:6]

    def staging_dir(self, version: str) -> Path:
        """An empty folder to write a version into before :meth:`commit`."""
        path = self.root / f".staging-{version}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def commit(self, version: str) -> Path:
        """Move a staged version into place (not yet current)."""
        staged = self.root / f".staging-{version}"
        final = self.root / version
        os.rename(staged, final)
        return final

    def versions(self) -> list[str]:
        """Committed versions, oldest first."""
        if not self.root.exists():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        )

    def current(self) -> str | None:
        """The current version's name, or None before the first promotion."""
        try:
            return os.readlink(self.current_link)
        except FileNotFoundError:
            return None

    def path(self, version: str | None = None) -> Path:
        """The folder of a version (default: the current one)."""
        version = version or self.current()
        if version is None:
            raise RegistryError("no model has been promoted yet; run the train command")
        return self.root / version

    def promote(self, version: str, reason: str = "trained") -> None:
        """Make ``version`` current, atomically."""
        if version not in self.versions():
            raise RegistryError(f"unknown model version {version!r}")
        temporary = self.root / f".current-{uuid.uuid4().hex}"
        os.symlink(version, temporary)
        os.replace(temporary, self.current_link)
        with open(self.root / "promotions.jsonl", "a", encoding="utf-8") as log:
            entry = {"version": version, "at": datetime.now(UTC).isoformat(), "reason": reason}
            log.write(json.dumps(entry) + "\n")
        self.prune()

    def history(self) -> list[dict]:
        """Every promotion, oldest first."""
        path = self.root / "promotions.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def rollback(self, to: str | None = None) -> str:
        """Make an earlier version current again and return it.

        Without ``to``: the newest kept version older than the current one that was ever
        current, so repeated rollbacks walk back one version at a time. With ``to``: that
        version (any kept one, older or newer).
        """
        current = self.current()
        if to is not None:
            if to not in self.versions():
                kept = ", ".join(self.versions()) or "none"
                raise RegistryError(f"unknown model version {to!r}; kept versions: {kept}")
            if to == current:
                raise RegistryError(f"model {to} is already current")
            self.promote(to, reason=f"rollback from {current}")
            return to
        earlier = [v for v in self.promoted_versions() if current is None or v < current]
        if not earlier:
            raise RegistryError(
                f"no model version older than {current} is kept to roll back to"
                if current
                else "no model has been promoted yet; run the train command"
            )
        self.promote(earlier[-1], reason=f"rollback from {current}")
        return earlier[-1]

    def promoted_versions(self) -> list[str]:
        """Kept versions that were current at some time, oldest first."""
        ever = {entry["version"] for entry in self.history()}
        return [v for v in self.versions() if v in ever]

    def listing(self) -> list[dict]:
        """Kept versions, oldest first: version, current, first promoted at, validation nDCG."""
        first_promoted: dict[str, str] = {}
        for entry in self.history():
            first_promoted.setdefault(entry["version"], entry["at"])
        current = self.current()
        rows = []
        for version in self.versions():
            sidecar = self.root / version / "train.json"
            metrics: dict = {}
            if sidecar.exists():
                try:
                    metrics = json.loads(sidecar.read_text())["validation"]["metrics"]
                except (ValueError, KeyError, TypeError):
                    metrics = {}
            rows.append(
                {
                    "version": version,
                    "current": version == current,
                    "promoted_at": first_promoted.get(version),
                    "metrics": metrics,
                }
            )
        return rows

    def prune(self) -> list[str]:
        """Delete the oldest versions beyond ``keep``: never current, previous or newer ones."""
        current = self.current()
        protected = {current}
        history = [e["version"] for e in self.history()]
        protected.update(history[-2:])
        removed = []
        versions = self.versions()
        for version in versions[: max(0, len(versions) - self.keep)]:
            if version not in protected and current is not None and version < current:
                shutil.rmtree(self.root / version, ignore_errors=True)
                removed.append(version)
        for stale in self.root.glob(".staging-*"):
            # Staging folders older than a day were left by a crashed training run.
            if datetime.now().timestamp() - stale.stat().st_mtime > 86400:
                shutil.rmtree(stale, ignore_errors=True)
        return removed
