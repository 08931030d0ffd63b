"""Find a local PostgreSQL for the test suite: ``make test`` runs its PostgreSQL variants on it.

``python -m tests.local_postgres`` prints ``postgresql://postgres@127.0.0.1:5432/ecrm_test``
when a server answers there (creating the database if it is missing), else prints nothing and
says why on stderr; the tests then skip their PostgreSQL variants and say why too.

When the suite runs in parallel (pytest-xdist), each worker gets a database of its own, named
after the suite's and the worker's: ``ecrm_test_gw0``, ``ecrm_test_gw1``, ... (``worker_url``),
created when missing (``ensure_database``).
"""

from __future__ import annotations

import socket
import sys

import sqlalchemy as sa

HOST, PORT, USER, DATABASE = "127.0.0.1", 5432, "postgres", "ecrm_test"


def ensure_database(url: str) -> str | None:
    """Create the database ``url`` names if it is missing; None when it is usable, else why not."""
    target = sa.engine.make_url(url).set(drivername="postgresql+psycopg")
    # No pool: the test process that calls this must not keep (and later drop) a connection.
    probe = sa.create_engine(target, poolclass=sa.pool.NullPool)
    try:
        probe.connect().close()
        return None
    except sa.exc.OperationalError as e:
        if f'database "{target.database}" does not exist' not in str(e):
            return f"PostgreSQL at {target.host}:{target.port} refused: {str(e.orig).strip()}"
    finally:
        probe.dispose()
    admin = sa.create_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    except sa.exc.ProgrammingError as e:
        if "already exists" not in str(e):  # created meanwhile by someone else: usable
            return f"cannot create the database {target.database}: {str(e.orig).strip()}"
    except sa.exc.SQLAlchemyError as e:
        return f"cannot create the database {target.database}: {e}"
    finally:
        admin.dispose()
    return None


def worker_url(url: str, worker: str) -> str:
    """The database of one pytest-xdist worker (``gw0``, ...): the suite's name + ``_`` + worker."""
    parsed = sa.engine.make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


def find(host: str = HOST, port: int = PORT, database: str = DATABASE) -> tuple[str | None, str]:
    """(URL of a usable test database, or None; why)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as e:
        return None, f"no PostgreSQL answers on {host}:{port} ({e.strerror or e})"
    url = f"postgresql://{USER}@{host}:{port}/{database}"
    why_not = ensure_database(url)
    if why_not:
        return None, why_not
    return url, f"PostgreSQL answers on {host}:{port}"


if __name__ == "__main__":
    found, why = find()
    print(
        f"{why}: the PostgreSQL tests run on {found}"
        if found
        else f"{why}: the PostgreSQL tests skip (set ECRM_TEST_DATABASE_URL to run them)",
        file=sys.stderr,
    )
    print(found or "")
