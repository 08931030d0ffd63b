"""The collector while the SQL store is down: Redis still takes events, so keys keep working.

Found by the bounded fuzz/drill work: once the cached sites expired, a request while SQL was
unreachable was a 500. Each process now keeps its last copy of the sites; with no copy at all
the answer is a 503 with Retry-After (retry later), never a 500.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_event
from tracking import migrations
from tracking.db import make_engine
from tracking.sites import create_site
from webapp import create_app


@pytest.fixture
def sqlite_app(tmp_path, redis_url):
    """An app on its own SQLite file (which the tests take away) and the test Redis."""
    path = tmp_path / "ecrm.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    site, _ = create_site(engine, "Shop", ["https://shop.example"])
    engine.dispose()
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "VAR_DIR": str(tmp_path / "var"),
            "SITE_CACHE_SECONDS": 0.0,
        }
    )
    yield app, site, path
    app.extensions["ecrm_serving"].close()
    app.extensions["ecrm"].engine.dispose()


def _take_away(path: Path) -> None:
    # A directory where the file was: SQLite can neither open nor create the store.
    app_engine_files = [
        path,
        path.with_name(path.name + "-wal"),
        path.with_name(path.name + "-shm"),
    ]
    for file in app_engine_files:
        if file.exists():
            file.rename(file.with_name(file.name + ".away"))
    path.mkdir()


def test_events_are_accepted_from_the_last_copy_of_the_sites(sqlite_app):
    app, site, path = sqlite_app
    client = app.test_client()
    first = client.post("/v1/batch", json={"batch": [make_event(1)]}, auth=(site.write_key, ""))
    assert first.status_code == 200
    app.extensions["ecrm"].engine.dispose()
    _take_away(path)
    again = client.post("/v1/batch", json={"batch": [make_event(2)]}, auth=(site.write_key, ""))
    assert again.status_code == 200, again.get_json()


def test_no_copy_of_the_sites_is_a_503_not_a_500(sqlite_app):
    app, site, path = sqlite_app
    app.extensions["ecrm"].engine.dispose()
    _take_away(path)
    response = app.test_client().post(
        "/v1/batch", json={"batch": [make_event(1)]}, auth=(site.write_key, "")
    )
    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "unavailable"
