"""Find a local PostgreSQL for the test suite: ``make test`` runs its PostgreSQL variants on it.

``python -m tests.local_postgres`` prints ``postgresql://postgres@127.0.0.1:5432/ecrm_test``
when a server answers there (creating the database if it is missing), else prints nothing and
says why on stderr; the tests then skip their PostgreSQL variants and say why too.
"""

from __future__ import annotations

import socket
import sys

import sqlalchemy as sa

HOST, PORT, USER, DATABASE = "127.0.0.1", 5432, "postgres", "ecrm_test"


def find(host: str = HOST, port: int = PORT, database: str = DATABASE) -> tuple[str | None, str]:
    """(URL of a usable test database, or None; why)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as e:
        return None, f"no PostgreSQL answers on {host}:{port} ({e.strerror or e})"
    url = f"postgresql+psycopg://{USER}@{host}:{port}/{database}"
    try:
        sa.create_engine(url).connect().close()
    except sa.exc.OperationalError as e:
        if "does not exist" not in str(e):
            return None, f"PostgreSQL on {host}:{port} refused {USER}: {str(e.orig).strip()}"
        try:
            admin = sa.create_engine(
                f"postgresql+psycopg://{USER}@{host}:{port}/postgres", isolation_level="AUTOCOMMIT"
            )
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
            admin.dispose()
        except sa.exc.SQLAlchemyError as e2:
            return None, f"cannot create the database {database} on {host}:{port}: {e2}"
    return f"postgresql://{USER}@{host}:{port}/{database}", f"PostgreSQL answers on {host}:{port}"


if __name__ == "__main__":
    found, why = find()
    print(
        f"{why}: the PostgreSQL tests run on {found}"
        if found
        else f"{why}: the PostgreSQL tests skip (set ECRM_TEST_DATABASE_URL to run them)",
        file=sys.stderr,
    )
    print(found or "")
