"""How a site's portal looks: its name (the site's) and two colours, with defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from accounts.portal_schema import portal_settings
from tracking.db import upsert

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_BRAND = "#1f5fa8"
DEFAULT_ACCENT = "#2e7d32"


class InvalidLook(ValueError):
    """A colour is not #rrggbb; the message names it."""


@dataclass(frozen=True)
class PortalLook:
    """The colours of a site's portal pages."""

    brand_colour: str = DEFAULT_BRAND
    accent_colour: str = DEFAULT_ACCENT


def get_look(conn: sa.Connection, site_id: int) -> PortalLook:
    """The site's portal colours (the defaults until set)."""
    row = conn.execute(
        sa.select(portal_settings).where(portal_settings.c.site_id == site_id)
    ).first()
    return PortalLook(row.brand_colour, row.accent_colour) if row else PortalLook()


def set_look(
    engine: sa.Engine, site_id: int, *, brand: str | None = None, accent: str | None = None
) -> PortalLook:
    """Change the site's portal colours (None: unchanged); return them as they are now."""
    for name, value in (("brand", brand), ("accent", accent)):
        if value is not None and not COLOUR.match(value):
            raise InvalidLook(f"{name} colour {value!r}: must look like #1f5fa8")
    with engine.begin() as conn:
        look = get_look(conn, site_id)
        values = {
            "site_id": site_id,
            "brand_colour": (brand or look.brand_colour).lower(),
            "accent_colour": (accent or look.accent_colour).lower(),
            "updated_at": datetime.now(UTC),
        }
        conn.execute(
            upsert(
                engine,
                portal_settings,
                ["site_id"],
                ["brand_colour", "accent_colour", "updated_at"],
            ),
            values,
        )
        return get_look(conn, site_id)
