"""Browser fixtures: Debian's headless Chromium driven by Playwright, and the real app served live.

The shop page is served from ``http://localhost:<port>`` and the collector (with ``ecrm.js``) from
``http://127.0.0.1:<port>``: the same server, but two origins, so every request the tracker sends
is a real cross-origin one, answered by the collector's CORS rules. No browser is downloaded:
``/usr/bin/chromium`` (or ``ECRM_CHROMIUM``) is used, and without it these tests skip.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Blueprint, abort, current_app, render_template_string
from werkzeug.serving import make_server

from tests.conftest import drain
from tracking.db import make_engine
from tracking.identity import user_hash
from tracking.schema import events
from tracking.sites import Site, create_site
from webapp import database

CHROMIUM = os.environ.get("ECRM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = Path(__file__).resolve().parent / "pages"
FAST = {"flush-interval": "100"}  # tracker attributes every test page gets unless it says otherwise

pages = Blueprint("browser_pages", __name__, url_prefix="/shop")
# The test shop stands for a customer's site, which may have no policy of its own: the app's
# strict default for its own pages (webapp/security.py) must not apply to it.
SHOP_WITHOUT_POLICY = "default-src * data: blob: 'unsafe-inline' 'unsafe-eval'"


@pages.after_request
def no_policy(response):
    """A customer's page, not one of ours: anything goes."""
    response.headers["Content-Security-Policy"] = SHOP_WITHOUT_POLICY
    return response


@pages.get("/<name>")
def shop_page(name: str):
    """The test shop: pages/shop.html with the tracker snippet, as a customer's site has it."""
    if name not in ("home", "product", "signin", "signout", "init", "plain"):
        abort(404)
    setup = current_app.config["BROWSER_PAGE"]
    return render_template_string((PAGES / "shop.html").read_text(), name=name, **setup)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """SQLite only: these tests are about the tracker, and the store is tested on both databases
    elsewhere; running every browser test twice would only double the time."""
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-sql') / 'ecrm.db'}"
    engine = make_engine(url)
    database.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless Chromium for the whole session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is missing: pip install -r requirements.txt")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium` "
            "(Debian; never `playwright install`), or set ECRM_CHROMIUM to its path"
        )
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@dataclass
class Shop:
    """The live app, its site, and helpers to open pages and read what reached SQL."""

    app: object
    site: Site
    port: int
    setup: dict = field(default_factory=dict)
    hits: list[tuple[str, str]] = field(default_factory=list)  # (method, path) the server saw
    # How to wait: through a page, because Playwright's sync API only runs route handlers and
    # event callbacks while one of its calls is in progress (time.sleep would starve them).
    pause: Callable[[float], None] = time.sleep

    @property
    def origin(self) -> str:
        """Where the shop's pages live (the site's allowed origin)."""
        return f"http://localhost:{self.port}"

    @property
    def collector(self) -> str:
        """Where ecrm.js and /v1/batch live."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str = "home", query: str = "", **attrs: str) -> str:
        """A shop page URL; ``attrs`` are the tracker's data-* options (data-flush-at=...)."""
        options = {**FAST, **{k.replace("_", "-"): v for k, v in attrs.items()}}
        self.setup["attrs"] = {k: v for k, v in options.items() if v is not None}
        return f"{self.origin}/shop/{name}{query}"

    def rows(self, *where) -> list[dict]:
        """Events of this site in SQL (after draining the stream), oldest first."""
        drain(self.app)
        with self.app.extensions["ecrm"].engine.connect() as conn:
            query = (
                sa.select(events)
                .where(events.c.site_id == self.site.site_id, *where)
                .order_by(events.c.id)
            )
            return [dict(r) for r in conn.execute(query).mappings()]

    def wait_rows(
        self, ready: Callable[[list[dict]], bool], *where, timeout: float = 10.0
    ) -> list[dict]:
        """Poll SQL until ``ready(rows)``; fail with what arrived when it never does."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows(*where)
            if ready(rows):
                return rows
            if time.monotonic() > deadline:
                names = [(r["type"], r["event"]) for r in rows]
                raise AssertionError(f"events never arrived as expected; got {names}")
            self.pause(0.1)

    def wait_event(self, name: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        """Wait for ``count`` track events named ``name``; return them."""
        return self.wait_rows(
            lambda rows: len(rows) >= count, events.c.event == name, timeout=timeout
        )


@pytest.fixture
def shop(app) -> Iterator[Shop]:
    """The real app (the ``app`` fixture's config) served by werkzeug in a thread."""
    app.register_blueprint(pages)
    hits: list[tuple[str, str]] = []

    def recorded(environ, start_response):
        hits.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        answer = app(environ, start_response)
        # Read and closed here: werkzeug's server closes a response only after reading the
        # socket, which raises when the browser has dropped the connection mid-answer, leaving
        # a static file open (a ResourceWarning that fails the test). No route streams forever.
        try:
            return [b"".join(answer)]
        finally:
            if hasattr(answer, "close"):
                answer.close()

    server = make_server("127.0.0.1", 0, recorded, threaded=True)
    port = server.server_port
    site, _ = create_site(
        app.extensions["ecrm"].engine, "Browser shop", [f"http://localhost:{port}"]
    )
    live = Shop(app, site, port, hits=hits)
    live.setup.update(
        write_key=site.write_key,
        collector=live.collector,
        leave_to=f"{live.origin}/shop/product",
        attrs=dict(FAST),
        # The signin page's signature of cust-42, as the shop's server computes it.
        user_hash=user_hash(site.identity_secret, "cust-42"),
    )
    app.config["BROWSER_PAGE"] = live.setup
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="live-server", daemon=True
    )
    thread.start()
    yield live
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()
    # Requests still being answered (a beacon sent as the context closed) must finish before
    # the app fixture closes the Redis and SQL clients they use.
    deadline = time.monotonic() + 5
    for worker in threading.enumerate():
        if "process_request_thread" in worker.name:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))


class Watch:
    """What a page said: uncaught errors, console errors, and the requests to /v1/batch."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.console: list[str] = []
        self.batches: list = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)
        page.on("request", self._request)

    def _console(self, message) -> None:
        # The browser itself logs failed loads ("Failed to load resource: ... 500"); those are
        # the network's, not a script's, and the tests provoke them on purpose.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.console.append(message.text)

    def _request(self, request) -> None:
        if request.url.endswith("/v1/batch"):
            self.batches.append(request)


@pytest.fixture
def context(browser, shop) -> Iterator:
    """A fresh browser context (cookies, storage) per test."""
    ctx = browser.new_context()
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context, shop):
    """A page in the test's context; whatever the test did, no error may reach the page."""
    p = context.new_page()
    p.watch = Watch(p)
    shop.pause = lambda seconds: p.wait_for_timeout(seconds * 1000)
    yield p
    assert not p.watch.errors, f"errors reached the page: {p.watch.errors}"
    assert not p.watch.console, f"console errors: {p.watch.console}"


@pages.get("/recs/<name>")
def recs_page(name: str):
    """A shop page with recommendation slots (pages/recs.html); test_widget.py sets it up."""
    setup = current_app.config["BROWSER_PAGE"]
    return render_template_string(
        (PAGES / "recs.html").read_text(),
        name=name,
        **{"slots": [], "widget_attrs": {}, "below": False, "tracker": "head", **setup},
    )


@pages.get("/img/<name>.svg")
def picture(name: str):
    """A product picture for test catalogues (the demo shop's needs its own site)."""
    hue = sum(name.encode()) % 360
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">'
        f'<rect width="320" height="240" fill="hsl({hue},55%,75%)"/></svg>'
    )
    return current_app.response_class(svg, mimetype="image/svg+xml")
