"""Versioned schema migrations owned by the project.

Each migration is a function of a connection, applied once, in order, inside one transaction
with its row in ``schema_migrations``. Add new ones at the end; never edit a shipped one.

Migration 1 creates the tables as :mod:`tracking.schema` defines them today, so on a new
database later migrations find their work done: each one adds only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from tracking import customer_lookup, interaction_log, log, schema
from tracking.sites import new_identity_secret


def _initial(conn: sa.Connection) -> None:
    tables = [t for t in schema.metadata.sorted_tables if t is not schema.schema_migrations]
    schema.metadata.create_all(conn, tables=tables)


def _add_column(conn: sa.Connection, table: sa.Table, name: str) -> None:
    """ALTER TABLE ... ADD COLUMN as the schema defines it, unless the column exists."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    if name in present:
        return
    spec = sa.schema.CreateColumn(table.c[name]).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {spec}"))


def _closed_loop(conn: sa.Connection) -> None:
    # Existing rows predate the holdout: nobody was held out, so false is the truth for them.
    _add_column(conn, schema.events, "holdout")
    _add_column(conn, schema.orders, "holdout")
    schema.attributions.create(conn, checkfirst=True)
    for index in schema.attributions.indexes:
        index.create(conn, checkfirst=True)
    for index in schema.orders.indexes:
        index.create(conn, checkfirst=True)


def _interaction_log(conn: sa.Connection) -> None:
    # Stores that predate the log get it written once from their events and order lines.
    schema.interaction_chunks.create(conn, checkfirst=True)
    for index in schema.interaction_chunks.indexes:
        index.create(conn, checkfirst=True)
    for site_id in conn.execute(sa.select(schema.sites.c.site_id)).scalars():
        if interaction_log.row_count(conn, site_id) == 0:
            interaction_log.rebuild(conn, site_id)


def _identity_verification(conn: sa.Connection) -> None:
    # Every existing site gets its own identity secret and verification on: a browser's user id
    # is a claim from now on (tracking.identity). Sites turn it off with `sites update`.
    _add_column(conn, schema.sites, "identity_secret")
    _add_column(conn, schema.sites, "verify_identity")
    _add_column(conn, schema.customers, "unverified_traits")
    sites = schema.sites
    for site_id in conn.execute(
        sa.select(sites.c.site_id).where(sites.c.identity_secret.is_(None))
    ).scalars():
        conn.execute(
            sites.update()
            .where(sites.c.site_id == site_id)
            .values(identity_secret=new_identity_secret())
        )


def _customer_lookup(conn: sa.Connection) -> None:
    # The console's customer search reads keys, never traits: existing customers get theirs.
    schema.customer_lookup.create(conn, checkfirst=True)
    for index in schema.customer_lookup.indexes:
        index.create(conn, checkfirst=True)
    customer_lookup.fill(conn)


def _erased_ids(conn: sa.Connection) -> None:
    # The erasure tombstone (tracking.erased); empty until the first erasure.
    schema.erased_ids.create(conn, checkfirst=True)


def _personalisation_opt_outs(conn: sa.Connection) -> None:
    schema.personalisation_opt_outs.create(conn, checkfirst=True)


# Visitor and item ids on events: PostgreSQL keeps this many most common values of each (the
# default is 100). The ingest worker's rollups look events up by lists of a few hundred of these
# ids, and the planner compared every listed id with every common value: with 10 kept, such a
# read planned in 0.6 ms instead of 1.4 at 10M events, and 0.4 instead of 0.8 (the same plans).
# The ten most common ids are still known; the rest are estimated from the distinct count.
ID_STATISTICS = 10


def _shorter_id_statistics(conn: sa.Connection) -> None:
    if conn.dialect.name != "postgresql":  # SQLite keeps no such statistics
        return
    columns = ("anonymous_id", "user_id", "item_id")
    conn.execute(
        sa.text(
            "ALTER TABLE events "
            + ", ".join(f"ALTER COLUMN {c} SET STATISTICS {ID_STATISTICS}" for c in columns)
        )
    )
    # Now, not at autovacuum's next visit, and the whole table as autovacuum does: the other
    # columns' target of 100 keeps the sample at 30,000 rows whatever the table's size, where
    # these three columns alone would be counted on 3,000 (300 rows per unit of target).
    conn.execute(sa.text("ANALYZE events"))


# (version, name, function of a connection)
Migration = tuple[int, str, Callable[[sa.Connection], None]]

MIGRATIONS: list[Migration] = [
    (1, "initial tables", _initial),
    (2, "holdout labels on events and orders; attributions", _closed_loop),
    (3, "interaction log for training", _interaction_log),
    (4, "identity verification: site secrets, unverified traits", _identity_verification),
    (5, "customer search keys", _customer_lookup),
    (6, "erasure tombstone", _erased_ids),
    (7, "customers with personalisation off", _personalisation_opt_outs),
    (8, "events: fewer common values kept of visitor and item ids", _shorter_id_statistics),
]


def current_version(engine: sa.Engine) -> int:
    """The highest applied migration, 0 for an empty database."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("schema_migrations"):
            return 0
        return (
            conn.execute(sa.select(sa.func.max(schema.schema_migrations.c.version))).scalar() or 0
        )


def upgrade(engine: sa.Engine, extra: Sequence[Migration] = ()) -> list[int]:
    """Apply pending migrations; return the versions applied.

    ``extra`` holds the migrations of packages this one may not import (``analytics``,
    ``accounts``: each numbers its own from 101 and 201); ``webapp.database.upgrade`` passes them.
    """
    applied = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Serialise concurrent upgrades (several processes starting at once).
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(4242001)"))
        schema.schema_migrations.create(conn, checkfirst=True)
        done = set(conn.execute(sa.select(schema.schema_migrations.c.version)).scalars())
        for version, name, migrate in sorted([*MIGRATIONS, *extra]):
            if version in done:
                continue
            log.info("applying migration %d: %s", version, name)
            migrate(conn)
            conn.execute(
                schema.schema_migrations.insert().values(
                    version=version, name=name, applied_at=datetime.now(UTC)
                )
            )
            applied.append(version)
    return applied
