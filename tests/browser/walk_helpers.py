"""Helpers for walks through the console in Chromium: a watched browser context, signing staff
in, reading a page's tables, charts drawn, events sent to the live collector, and a local webhook
receiver."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.browser.conftest import Watch
from tests.browser.test_portal_walk import REPORT_VIOLATIONS
from tests.staff_helpers import PASSWORD
from webapp.console.tables import format_cell


def watched_context(browser, violations: list[str]):
    """A browser context whose every page reports Content-Security-Policy violations into
    ``violations`` (an init script runs before the page's own and is not subject to it)."""
    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(15_000)
    context.expose_function("__cspReport", lambda report: violations.append(report))
    context.add_init_script(REPORT_VIOLATIONS)
    return context


def signed_in(context, origin: str, email: str):
    """A new page of ``context`` with ``email`` signed in to the console (page.watch: errors)."""
    page = context.new_page()
    page.watch = Watch(page)
    page.goto(f"{origin}/console/sign-in")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/console/*/**")
    return page


def shown(page, element_id: str) -> list[list[str]]:
    """The text of every body cell of the table in (or with) id ``element_id``, row by row."""
    return page.eval_on_selector_all(
        f"#{element_id} tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))",
    )


def expected(rows: list[dict], columns: str) -> list[list[str]]:
    """What a console table shows for ``rows``; ``columns`` is "key:kind key ..." (kind as in
    webapp.console.tables, text when left out), formatted as the pages format their cells."""
    spec = [(c.partition(":")[0], c.partition(":")[2] or "text") for c in columns.split()]
    return [[format_cell(row.get(key), kind) for key, kind in spec] for row in rows]


def charts_drawn(page) -> int:
    """Wait until every chart of the page is drawn on its canvas (by the vendored Chart.js,
    from console.js: the policy allows no inline script); returns how many there are."""
    figures = page.locator("figure.chart").count()
    assert figures > 0, "no chart on this page"
    page.wait_for_function(
        f"document.querySelectorAll('figure.chart[data-drawn] canvas').length === {figures}"
    )
    return figures


def event(user_id: str, name: str, at: datetime, **properties) -> dict:
    """A track event of a signed-in customer at ``at``."""
    return {
        "type": "track",
        "event": name,
        "messageId": str(uuid.uuid4()),
        "userId": user_id,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "properties": properties,
    }


def collect(collector: str, server_key: str, batch: list[dict]) -> None:
    """POST a batch to the live collector with the server key, as the shop's backend does."""
    token = base64.b64encode(f"{server_key}:".encode()).decode()
    request = urllib.request.Request(
        f"{collector}/v1/batch",
        data=json.dumps({"batch": batch}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, response.read()


class _Hooks(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # the test reads ``received``; nothing to log
        pass


@contextmanager
def webhook_receiver() -> Iterator[ThreadingHTTPServer]:
    """A local threading HTTP server standing for a shop's webhook endpoint: ``.received`` holds
    each POST's (headers, raw body); it answers 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
