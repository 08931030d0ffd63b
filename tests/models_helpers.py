"""A small shop with three trained model versions, for the models page's tests (HTTP, browser)."""

from __future__ import annotations

import shutil
from pathlib import Path

from demo import ShopSpec, generate_shop
from recommender.training import TrainSettings, train
from tests.conftest import store_events
from tracking import migrations
from tracking.catalogue import upsert_items, validate_item
from tracking.db import make_engine
from tracking.sites import create_site

SPEC = ShopSpec(seed=7, n_customers=100, n_items=50, n_clusters=4, days=14)
HOSTILE = "<img src=x onerror=alert(1)>"


def train_versions(root: Path):
    """(shop, registry folder with three promoted versions, their names oldest first)."""
    engine = make_engine(f"sqlite:///{root / 'train.db'}")
    migrations.upgrade(engine)
    site, _ = create_site(engine, "Training shop", [])
    shop = generate_shop(SPEC)
    store_events(engine, site.site_id, shop.events)
    versions = []
    for _ in range(3):
        report = train(engine, TrainSettings(site.site_id, root / "models", tune_seconds=0))
        assert report.promoted, report.failures
        versions.append(report.version)
    engine.dispose()
    return shop, root / "models", versions


def install_versions(app, site_id: int, registry: Path) -> Path:
    """Copy trained versions into the app's registry of ``site_id``; returns that folder."""
    target = Path(app.config["VAR_DIR"]) / "models" / str(site_id)
    shutil.copytree(registry, target, symlinks=True)
    return target


def stock(engine, site_id: int, shop, title_of: dict[str, str] | None = None) -> None:
    """Store the shop's catalogue (titles changed as asked) and its events."""
    titles = title_of or {}
    items = [{**i, "title": titles.get(i["item_id"], i["title"])} for i in shop.items]
    upsert_items(engine, site_id, [validate_item(i) for i in items])
    store_events(engine, site_id, shop.events)


def buyers(shop) -> list[str]:
    """Customers with orders, in the order of their first."""
    ordered = [e["userId"] for e in shop.events if e.get("event") == "Order Completed"]
    return list(dict.fromkeys(ordered))
