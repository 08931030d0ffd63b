"""The whole SQL schema: tracking's migrations with those of analytics/, accounts/, recommender/.

``tracking`` may import neither package, so the one place that knows every migration and every
data table is here, in the layer that imports them all.
"""

from __future__ import annotations

import sqlalchemy as sa

from accounts import messaging_schema, portal_schema, prefs_schema, rights_schema
from accounts import schema as accounts_schema
from analytics import schema as analytics_schema
from analytics import trigger_schema, value_schema
from recommender import schema as recommender_schema
from tracking import migrations
from tracking import schema as tracking_schema

METADATA = (
    tracking_schema.metadata,
    analytics_schema.metadata,
    value_schema.metadata,
    trigger_schema.metadata,
    accounts_schema.metadata,
    prefs_schema.metadata,
    portal_schema.metadata,
    messaging_schema.metadata,
    recommender_schema.metadata,
    rights_schema.metadata,
)
DATA_TABLES = (
    *prefs_schema.DATA_TABLES,
    *portal_schema.DATA_TABLES,
    *rights_schema.DATA_TABLES,
    *accounts_schema.DATA_TABLES,
    *messaging_schema.DATA_TABLES,
    *recommender_schema.DATA_TABLES,
    *analytics_schema.DATA_TABLES,
    *tracking_schema.DATA_TABLES,
)


def upgrade(engine: sa.Engine) -> list[int]:
    """Apply every pending migration of every package; return the versions applied."""
    return migrations.upgrade(
        engine,
        extra=[
            *analytics_schema.MIGRATIONS,
            *accounts_schema.MIGRATIONS,
            *recommender_schema.MIGRATIONS,
        ],
    )


def drop_all(conn: sa.Connection) -> None:
    """Drop every table (tests resetting a shared PostgreSQL)."""
    for metadata in reversed(METADATA):
        metadata.drop_all(conn)
