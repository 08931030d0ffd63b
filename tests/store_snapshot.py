"""A stocked store built once and put back per test: every row, as the real write path left it.

Storing a demo shop's ~18,000 events through the collector's write path (``store_events``) takes
most of a minute on a busy 2-core machine; tests that only need the stocked store, not the
storing, take a :class:`StoreSnapshot` once per module and ``restore`` it into their own emptied
store: the same rows (ids included), inserted in bulk, and PostgreSQL's id sequences moved past
them as the write path would have left them.
"""

from __future__ import annotations

import sqlalchemy as sa

from webapp import database

# PostgreSQL: (sequence, table, column) of every sequence owned by a column (serial or identity).
_OWNED_SEQUENCES = sa.text(
    "SELECT s.oid::regclass::text, t.relname, a.attname FROM pg_class s"
    " JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')"
    " JOIN pg_class t ON t.oid = d.refobjid"
    " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
    " WHERE s.relkind = 'S' AND t.relname = ANY(:names) ORDER BY 1"
)


class StoreSnapshot:
    """Every row of every data table of a store, read once."""

    def __init__(self, engine: sa.Engine):
        with engine.connect() as conn:
            self.rows = {
                table.name: [dict(row) for row in conn.execute(sa.select(table)).mappings()]
                for table in database.DATA_TABLES
            }

    def restore(self, engine: sa.Engine) -> None:
        """Insert the rows into ``engine``'s store, which must be empty (the ``app`` fixture's)."""
        with engine.begin() as conn:
            # DATA_TABLES lists children first (the order rows are deleted in): parents go first.
            for table in reversed(database.DATA_TABLES):
                if self.rows[table.name]:
                    conn.execute(table.insert(), self.rows[table.name])
            if engine.dialect.name == "postgresql":
                names = [t.name for t in database.DATA_TABLES]
                for seq, table, column in conn.execute(_OWNED_SEQUENCES, {"names": names}):
                    conn.exec_driver_sql(
                        f"SELECT setval('{seq}', COALESCE((SELECT max(\"{column}\")"
                        f' FROM "{table}"), 0) + 1, false)'
                    )


def stock_shop(database_url: str, name: str, spec):
    """(site, shop, snapshot): a generated shop stored through the real write path once, its
    rows kept in a snapshot and the store emptied again (a module fixture's body)."""
    from demo import generate_shop
    from tests.conftest import empty_store, store_events
    from tracking.catalogue import upsert_items, validate_item
    from tracking.db import make_engine
    from tracking.sites import create_site

    engine = make_engine(database_url)
    empty_store(engine)
    site, _ = create_site(engine, name, [])
    shop = generate_shop(spec)
    upsert_items(engine, site.site_id, [validate_item(i) for i in shop.items])
    store_events(engine, site.site_id, shop.events)
    snapshot = StoreSnapshot(engine)
    empty_store(engine)
    engine.dispose()
    return site, shop, snapshot
