"""What each kept model version is, read from its ``train.json``: for people choosing one.

One row per version of a :class:`~recommender.registry.ModelRegistry`, oldest first: the data
window it learned from, its counts, validation nDCG@10 of the model and of popularity on the same
split, its kind (the blend's members), how long training took, when it was first promoted and
whether it is current. A figure an older sidecar did not record is None ("not recorded").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from recommender.registry import ModelRegistry

NDCG = "ndcg@10"


def _moment(seconds: Any) -> datetime | None:
    """Epoch seconds (or nanoseconds, as older sidecars wrote) as an aware datetime."""
    if not isinstance(seconds, int | float):
        return None
    value = float(seconds)
    if value > 1e11:
        value /= 1e9
    return datetime.fromtimestamp(value, UTC)


def _iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def trained_at(version: str) -> datetime | None:
    """When a version was made: its name starts with the UTC time (``new_version``)."""
    try:
        return datetime.strptime(version[:22], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def model_kind(config: dict[str, Any]) -> str | None:
    """The blend's members and their weights, e.g. ``als 1 + item_knn 0.5``."""
    weights = (config.get("blend") or {}).get("weights") if isinstance(config, dict) else None
    if not weights:
        return None
    return " + ".join(f"{name} {float(weight):g}" for name, weight in weights.items())


def _number(mapping: Any, key: str) -> float | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _count(mapping: Any, key: str) -> int | None:
    value = _number(mapping, key)
    return int(value) if value is not None else None


def read_sidecar(registry: ModelRegistry, version: str) -> dict[str, Any]:
    """A version's ``train.json`` ({} when missing or unreadable)."""
    try:
        data = json.loads((registry.root / version / "train.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def version_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    """Every kept version, newest first, with what its sidecar recorded (None: not recorded)."""
    first_promoted: dict[str, datetime | None] = {}
    last_promoted: dict[str, datetime | None] = {}
    for entry in registry.history():
        at = _iso(entry.get("at"))
        first_promoted.setdefault(entry["version"], at)
        last_promoted[entry["version"]] = at
    current = registry.current()
    rows = []
    for version in reversed(registry.versions()):
        meta = read_sidecar(registry, version)
        window = meta.get("data_window") or {}
        counts = meta.get("counts") or {}
        validation = meta.get("validation") or {}
        timings = meta.get("timings")
        seconds = (
            round(sum(v for v in timings.values() if isinstance(v, int | float)), 3)
            if isinstance(timings, dict) and timings
            else None
        )
        model_ndcg = _number(validation.get("metrics"), NDCG)
        popular_ndcg = _number(validation.get("popularity"), NDCG)
        rows.append(
            {
                "version": version,
                "current": version == current,
                "status": "current" if version == current else "",
                "trained_at": _iso(meta.get("trained_at")) or trained_at(version),
                "data_from": _moment(window.get("from_epoch")),
                "data_to": _moment(window.get("to_epoch")),
                "customers": _count(counts, "customers"),
                "items": _count(counts, "items"),
                "interactions": _count(counts, "interactions"),
                "ndcg": model_ndcg,
                "popularity_ndcg": popular_ndcg,
                "ndcg_gain": (
                    model_ndcg / popular_ndcg - 1.0
                    if model_ndcg is not None and popular_ndcg
                    else None
                ),
                "kind": model_kind(meta.get("config") or {}),
                "training_seconds": seconds,
                "promoted_at": first_promoted.get(version),
                "last_promoted_at": last_promoted.get(version),
            }
        )
    return rows
