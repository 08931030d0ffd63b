"""Slow and malformed clients against a real gunicorn (and nginx in front, when installed).

Each test starts the servers itself on free ports of 127.0.0.1 with the repo's
webapp/gunicorn.conf.py (and deploy/nginx/ecrm.conf). No timings are asserted: the bounds below
only keep a hanging server from hanging the suite, and each is far above what a healthy server
needs.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tracking import migrations
from tracking.db import make_engine
from tracking.sites import create_site

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
WAIT = 30.0  # generous bound on any one answer while slow clients are held


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = WAIT, headers: dict | None = None):
    """(status, headers, body) of one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, close_write: bool = False) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the answer until the server closes or it is complete."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(data)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            head, sep, rest = received.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")[1:]
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    break
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), f"no HTTP answer: {received[:200]!r}"
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_json_error(status: int, headers: dict, body: bytes, expected: int, field: str) -> dict:
    """The API's error shape, naming ``field``."""
    headers = {k.lower(): v for k, v in headers.items()}
    assert status == expected, body[:300]
    assert headers["content-type"].startswith("application/json"), headers
    payload = json.loads(body)
    assert payload["success"] is False
    assert payload["error"]["field"] == field, payload
    assert set(payload["error"]) >= {"code", "field", "reason", "message"}
    return payload


class SlowClients:
    """Connections that send their request a byte a second: half of them the headers
    (slowloris), half a body after complete headers. Held until ``close``."""

    def __init__(self, port: int, n: int):
        self.socks: list[socket.socket] = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            else:
                s.sendall(
                    b"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
                )
            self.socks.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        while not self.stop.wait(1.0):
            for s in self.socks:
                try:
                    s.send(b"a")
                except OSError:
                    pass  # the server gave up on this one: that is allowed

    def close(self) -> None:
        """Stop sending and close every connection."""
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


class Process:
    """A server process in its own session, stopped with SIGTERM (SIGKILL if it lingers)."""

    def __init__(self, argv: list[str], env: dict, log: Path, cwd: Path = ROOT):
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, port: int) -> None:
        """Until GET /healthz answers 200 on ``port``."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if get(port, "/healthz", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def store(tmp_path_factory, redis_url) -> dict:
    """A migrated SQLite store with one site; what a gunicorn process needs to start."""
    work = tmp_path_factory.mktemp("slow")
    url = f"sqlite:///{work / 'ecrm.db'}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    site, server_key = create_site(engine, "Slow shop", ["https://shop.example"])
    engine.dispose()
    return {"url": url, "redis_url": redis_url, "work": work, "server_key": server_key}


def start_gunicorn(store: dict, worker_class: str | None, name: str) -> tuple[Process, int, Path]:
    """gunicorn with the repo's config on a free port; (process, port, its var dir)."""
    var = store["work"] / f"var-{name}"
    home = store["work"] / f"home-{name}"
    home.mkdir()
    env = dict(
        os.environ,
        HOME=str(home),
        ECRM_VAR_DIR=str(var),
        ECRM_DATABASE_URL=store["url"],
        ECRM_REDIS_URL=store["redis_url"],
        ECRM_SECRET_KEY="slow-clients-test-secret",
        ECRM_WEB_WORKERS=str(WORKERS),
    )
    env.pop("XDG_RUNTIME_DIR", None)
    env.pop("ECRM_WEB_WORKER_CLASS", None)
    if worker_class:
        env["ECRM_WEB_WORKER_CLASS"] = worker_class
    port = free_port()
    conf = str(ROOT / "webapp" / "gunicorn.conf.py")
    argv = [sys.executable, "-m", "gunicorn", "-c", conf, "-b", f"127.0.0.1:{port}", "wsgi:app"]
    process = Process(argv, env, store["work"] / f"gunicorn-{name}.log")
    try:
        process.wait_ready(port)
    except BaseException:
        process.stop()
        raise
    return process, port, var


@pytest.fixture(scope="module")
def run_server(store):
    """What ``make run`` serves: the config's default worker class."""
    process, port, var = start_gunicorn(store, None, "run")
    yield {"port": port, "var": var, "home": store["work"] / "home-run"}
    process.stop()


@pytest.fixture(scope="module")
def sync_server(store):
    """Sync workers: what runs behind nginx in production."""
    process, port, var = start_gunicorn(store, "sync", "sync")
    yield {"port": port, "var": var}
    process.stop()


@pytest.fixture(scope="module")
def gthread_server(store):
    """Threaded workers (ECRM_WEB_WORKER_CLASS=gthread), the config's third choice."""
    process, port, var = start_gunicorn(store, "gthread", "gthread")
    yield {"port": port, "var": var}
    process.stop()


@pytest.fixture(params=["run", "sync", "gthread"])
def any_server(request) -> dict:
    """Each gunicorn setup in turn."""
    return request.getfixturevalue(f"{request.param}_server")


# -- make run: slow clients ------------------------------------------------------------------


def test_slow_clients_do_not_stall_health(run_server):
    """Many more slow clients than workers, and /healthz still answers."""
    slow = SlowClients(run_server["port"], 8 * WORKERS)
    try:
        time.sleep(2)  # every slow connection has been accepted and has sent something
        for _ in range(3):
            status, _, body = get(run_server["port"], "/healthz")
            assert status == 200, body
    finally:
        slow.close()


def test_control_socket_is_under_var(run_server):
    """gunicorn's control socket lives with the deployment's files, not in $HOME."""
    assert (run_server["var"] / "gunicorn.ctl").is_socket()
    assert not (run_server["home"] / ".gunicorn").exists()


# -- bodies shorter than their Content-Length -------------------------------------------------


SHORT_BODIES = [
    pytest.param(
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n",
        b'{"batch": [',
        id="collector",
    ),
    pytest.param(
        b"PUT /v1/items/sku-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer {server_key}\r\nContent-Length: 100\r\n\r\n",
        b'{"title": "',
        id="catalogue",
    ),
]


@pytest.mark.parametrize("close_write", [False, True], ids=["client-waits", "client-closes"])
@pytest.mark.parametrize(("head", "body"), SHORT_BODIES)
def test_short_body_is_a_400(any_server, store, head, body, close_write):
    """A body shorter than its Content-Length: 400 naming the body, whether the client waits
    or closes its side."""
    head = head.replace(b"{server_key}", store["server_key"].encode())
    status, headers, answer = raw_exchange(any_server["port"], head + body, close_write)
    payload = assert_json_error(status, headers, answer, 400, "body")
    assert "ended before Content-Length" in payload["error"]["reason"]
    assert get(any_server["port"], "/healthz")[0] == 200


# -- gunicorn's own refusals --------------------------------------------------------------------


REFUSALS = [
    pytest.param(
        b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "request line",
        id="uri-too-long",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
        "headers",
        id="header-too-large",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
        + b"\r\n",
        431,
        "headers",
        id="too-many-headers",
    ),
    pytest.param(b"GET\r\n\r\n", 400, "request line", id="malformed-request-line"),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
        400,
        "headers",
        id="malformed-header-name",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "field"), REFUSALS)
def test_gunicorn_refusals_are_json(any_server, request_bytes, status, field):
    """What gunicorn refuses before the app sees it is answered in the API's error shape."""
    got, headers, body = raw_exchange(any_server["port"], request_bytes)
    assert_json_error(got, headers, body, status, field)


# -- production: nginx in front of sync workers -------------------------------------------------


def nginx_binary() -> str | None:
    """Debian's nginx, if installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )


def render_nginx(work: Path, listen: int, upstream: int) -> Path:
    """A runnable nginx.conf around deploy/nginx/ecrm.conf, its two marked lines rewritten."""
    site = (ROOT / "deploy" / "nginx" / "ecrm.conf").read_text()
    lines = []
    for line in site.splitlines():
        if "# ecrm:listen" in line:
            line = f"    listen 127.0.0.1:{listen};"
        elif "# ecrm:upstream" in line:
            line = f"    server 127.0.0.1:{upstream};"
        lines.append(line)
    assert sum("127.0.0.1:" in line for line in lines) >= 2, "markers missing from ecrm.conf"
    (work / "ecrm.conf").write_text("\n".join(lines) + "\n")
    temp = "\n".join(
        f"  {kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would otherwise drop to "nobody" and lose these temp folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {work / 'nginx.pid'};\n"
        f"error_log {work / 'error.log'} warn;\n"
        "events { worker_connections 2048; }\n"
        f"http {{\n  access_log off;\n{temp}\n  include {work / 'ecrm.conf'};\n}}\n"
    )
    return conf


def start_nginx(work: Path, upstream: int) -> tuple[Process, int]:
    """nginx on a free port in front of ``upstream``."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    work.mkdir(exist_ok=True)
    port = free_port()
    conf = render_nginx(work, port, upstream)
    check = subprocess.run([binary, "-t", "-p", str(work), "-c", str(conf)], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    argv = [binary, "-p", str(work), "-c", str(conf), "-g", "daemon off;"]
    return Process(argv, dict(os.environ), work / "nginx.log"), port


@pytest.fixture(scope="module")
def nginx(store, sync_server):
    """nginx with deploy/nginx/ecrm.conf in front of sync gunicorn workers."""
    process, port = start_nginx(store["work"] / "nginx", sync_server["port"])
    try:
        process.wait_ready(port)
        yield {"port": port}
    finally:
        process.stop()


def test_nginx_slow_clients_do_not_stall_health(nginx):
    """Slow clients wait at nginx, not in gunicorn's sync workers."""
    slow = SlowClients(nginx["port"], 8 * WORKERS)
    try:
        time.sleep(2)
        for _ in range(3):
            status, _, body = get(nginx["port"], "/healthz")
            assert status == 200, body
    finally:
        slow.close()


def test_nginx_passes_app_errors_through(nginx):
    """The app's own JSON errors reach the client unchanged (here: an unknown write key)."""
    conn = http.client.HTTPConnection("127.0.0.1", nginx["port"], timeout=WAIT)
    try:
        conn.request(
            "POST",
            "/v1/batch",
            body=b'{"writeKey": "wk_nobody", "batch": [{"type": "page"}]}',
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        payload = assert_json_error(
            response.status, dict(response.getheaders()), response.read(), 401, "writeKey"
        )
    finally:
        conn.close()
    assert payload["retry"] is False


NGINX_REFUSALS = [
    pytest.param(
        b"GET /healthz?" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "request line",
        id="uri-too-long",
    ),
    pytest.param(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        431,
        "headers",
        id="header-too-large",
    ),
    pytest.param(b"GET\r\n\r\n", 400, "request", id="malformed-request-line"),
    pytest.param(
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
        413,
        "body",
        id="body-too-large",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "field"), NGINX_REFUSALS)
def test_nginx_refusals_are_json(nginx, request_bytes, status, field):
    """What nginx refuses itself is answered in the API's error shape."""
    got, headers, body = raw_exchange(nginx["port"], request_bytes)
    assert_json_error(got, headers, body, status, field)


def test_nginx_without_gunicorn_is_a_json_503(store):
    """gunicorn down: a JSON 503 with Retry-After, which clients retry."""
    process, port = start_nginx(store["work"] / "nginx-down", free_port())
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, headers, body = get(port, "/v1/recommendations")
                break
            except OSError:
                if time.monotonic() > deadline or process.proc.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        process.stop()
    payload = assert_json_error(status, headers, body, 503, "server")
    assert payload["retry"] is True
    assert {k.lower(): v for k, v in headers.items()}["retry-after"] == "5"


def test_nginx_forwards_the_client_address(store):
    """The client's address is the last X-Forwarded-For entry (what ECRM_TRUSTED_PROXIES=1
    reads), whatever the client claims before it; Host and the scheme are passed on."""
    seen: list[dict] = []

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = b'{"status":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        process, port = start_nginx(store["work"] / "nginx-echo", upstream.server_address[1])
        try:
            process.wait_ready(port)
            status, _, _ = get(
                port, "/v1/track", headers={"X-Forwarded-For": "203.0.113.9", "Host": "shop.test"}
            )
        finally:
            process.stop()
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert status == 200
    headers = seen[-1]
    assert [a.strip() for a in headers["x-forwarded-for"].split(",")] == [
        "203.0.113.9",
        "127.0.0.1",
    ]
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == "shop.test"
