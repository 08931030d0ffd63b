"""A site's catalogue as served: the rules' arrays and the details a response shows.

Read in one query (:meth:`CatalogueView.load`) and swapped whole with the site's state
(recommender.site_state), which reloads it every ``catalogue_refresh`` seconds and on the
catalogue API's changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from recommender.rules import Catalogue, catalogue_from_rows


@dataclass
class CatalogueView:
    """A site's catalogue as served: rule arrays plus the details a response shows."""

    catalogue: Catalogue
    details: dict[str, dict[str, Any]]
    loaded_at: float

    @classmethod
    def load(cls, engine: sa.Engine, site_id: int) -> CatalogueView:
        """Read the site's items (one query)."""
        from tracking.schema import items

        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    items.c.item_id,
                    items.c.title,
                    items.c.category,
                    items.c.price,
                    items.c.currency,
                    items.c.url,
                    items.c.image_url,
                    items.c.active,
                    items.c.hidden,
                    items.c.in_stock,
                    items.c.attributes,
                )
                .where(items.c.site_id == site_id)
                .order_by(items.c.item_id)
            ).all()
        details = {}
        for r in rows:
            details[r.item_id] = {
                "item_id": r.item_id,
                "title": r.title,
                "price": float(r.price) if r.price is not None else None,
                "currency": r.currency,
                "url": r.url,
                "image_url": r.image_url,
            }
        catalogue = catalogue_from_rows(rows)
        return cls(catalogue, details, time.monotonic())

    def same_as(self, other: CatalogueView) -> bool:
        """Nothing a response shows or filters on differs."""
        mine, theirs = self.catalogue, other.catalogue
        return (
            self.details == other.details
            and np.array_equal(mine.servable, theirs.servable)
            and np.array_equal(mine.category, theirs.category)
            and mine.flags.keys() == theirs.flags.keys()
            and all(np.array_equal(mine.flags[k], theirs.flags[k]) for k in mine.flags)
        )

    def servable(self, item_id: str) -> bool:
        """Known, active, not hidden and in stock."""
        position = self.catalogue.index.get(item_id)
        return position is not None and bool(self.catalogue.servable[position])

    def top_category(self, item_id: str) -> str:
        """The first part of the item's category path ('' when it has none)."""
        return self.catalogue.category[self.catalogue.index[item_id]].split("/", 1)[0]

    def in_category(self, item_id: str, prefix: str) -> bool:
        """The item's category is ``prefix`` or below it."""
        category = self.catalogue.category[self.catalogue.index[item_id]]
        return category == prefix or category.startswith(prefix + "/")
