"""Signed webhooks: URL checks, emit in the caller's transaction, delivery to a real HTTP server."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from accounts import audit
from accounts.messaging_schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from accounts.webhook_delivery import (
    Deliverer,
    DeliverySettings,
    recent_attempts,
    recent_deliveries,
)
from accounts.webhooks import (
    InvalidWebhook,
    check_url,
    emit,
    enable,
    erase_customer,
    get_endpoint,
    rotate_secret,
    set_endpoint,
    sign,
    verify_signature,
)
from tests.conftest import PROJECT_ROOT, count


class Receiver:
    """A real HTTP server on 127.0.0.1 answering each POST with the next of ``statuses``."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ecrm?shop=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def endpoint(db, site, receiver):
    """The test site's endpoint at the local receiver (a loopback address: allowed for testing)."""
    return set_endpoint(db, site.site_id, receiver.url, allow_private=True)


def _emit(db, site_id: int, event_type: str = "customer.updated", **data):
    with db.begin() as conn:
        return emit(conn, site_id=site_id, event_type=event_type, data=data or {"user_id": "c-1"})


def _delivery(db, delivery_id: int) -> dict:
    with db.connect() as conn:
        query = sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
        return dict(conn.execute(query).mappings().one())


def _make_due(db) -> None:
    with db.begin() as conn:
        conn.execute(webhook_deliveries.update().values(next_attempt_at=datetime.now(UTC)))


def _deliverer(db, **changes) -> Deliverer:
    values = {"timeout": 5.0, "max_attempts": 3, "retry_seconds": 60.0, "disable_after": 20}
    values.update(changes)
    return Deliverer(db, DeliverySettings(**values))


# -- signatures ----------------------------------------------------------------------------------


def test_a_signature_verifies_only_the_same_body_secret_and_a_recent_time():
    body = b'{"id":"evt_1","type":"customer.updated"}'
    now = 1_790_000_000
    header = sign("whsec_a", now, body)
    assert header.startswith(f"t={now},v1=") and len(header.rpartition("=")[2]) == 64
    assert verify_signature("whsec_a", header, body, now=now + 10)
    assert verify_signature("whsec_a", header, body.decode(), now=now)  # str bodies too
    assert not verify_signature("whsec_b", header, body, now=now)
    assert not verify_signature("whsec_a", header, body + b" ", now=now)
    assert not verify_signature("whsec_a", header, body, now=now + 301)  # replayed too late
    assert verify_signature("whsec_a", header, body, tolerance=600, now=now + 301)
    other = sign("whsec_old", now, body).rpartition(",")[2]
    assert verify_signature("whsec_a", f"{other},{header}", body, now=now)
    digest = header.rpartition("=")[2]
    for broken in ("", "t=abc,v1=00", f"v1={digest}", f"t={now}", f"t={now},v1=é{digest}"):
        assert not verify_signature("whsec_a", broken, body, now=now)


# -- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "enter"),
        ("ftp://8.8.8.8/hook", "https://"),
        ("javascript:alert(1)", "https://"),
        ("https:///hook", "no host"),
        ("https://user:pass@8.8.8.8/hook", "password"),
        ("https://8.8.8.8/ho ok", "spaces"),
        ("https://8.8.8.8/a<b", "percent-encoded"),
        ("https://bücher.example/hook", "xn--"),
        ("https://8.8.8.8:99999/hook", "not valid"),
        ("https://8.8.8.8/" + "a" * 2000, "longer"),
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.1.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "private"),
        ("http://0.0.0.0/hook", "private"),
        ("http://100.64.0.1/hook", "public"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_webhook_urls_that_are_refused(url, reason):
    with pytest.raises(InvalidWebhook) as raised:
        check_url(url)
    assert raised.value.field == "url" and reason in raised.value.reason


def test_a_public_address_is_accepted_and_a_private_one_only_when_the_site_allows_it():
    assert check_url(" https://8.8.8.8/hooks ") == "https://8.8.8.8/hooks"
    assert check_url("http://127.0.0.1:9/hooks", allow_private=True) == "http://127.0.0.1:9/hooks"


# -- emitting ------------------------------------------------------------------------------------


def test_emit_queues_nothing_without_an_enabled_endpoint(db, site):
    assert _emit(db, site.site_id) is None
    assert count(db, webhook_deliveries) == 0


def test_emit_queues_one_delivery_inside_the_callers_transaction(db, site, endpoint):
    with db.connect() as conn:
        with conn.begin() as tx:
            emit(conn, site_id=site.site_id, event_type="address.created", data={"user_id": "c"})
            tx.rollback()
    assert count(db, webhook_deliveries) == 0
    delivery_id = _emit(
        db,
        site.site_id,
        "preferences.updated",
        user_id="c-1",
        changed_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        birth_date=date(1990, 5, 17),
        name="김민지",
    )
    row = _delivery(db, delivery_id)
    assert row["status"] == "pending" and row["user_id"] == "c-1"
    payload = json.loads(row["body"])
    assert list(payload) == ["id", "type", "created_at", "data"]
    assert payload["id"] == row["event_id"] and payload["id"].startswith("evt_")
    assert payload["type"] == "preferences.updated" and payload["created_at"].endswith("Z")
    assert payload["data"] == {
        "user_id": "c-1",
        "changed_at": "2026-12-01T09:30:00Z",
        "birth_date": "1990-05-17",
        "name": "김민지",
    }
    assert _emit(db, site.site_id + 1) is None  # another site has no endpoint


@pytest.mark.parametrize(
    ("event_type", "data", "field"),
    [
        ("order.created", {}, "event_type"),
        ("customer.updated", ["not", "a", "dict"], "data"),
        ("customer.updated", {"when": object()}, "data"),
    ],
)
def test_emit_refuses_unknown_events_and_data_that_is_not_json(
    db, site, endpoint, event_type, data, field
):
    with pytest.raises(InvalidWebhook) as raised:
        with db.begin() as conn:
            emit(conn, site_id=site.site_id, event_type=event_type, data=data)
    assert raised.value.field == field


# -- delivering ----------------------------------------------------------------------------------


def test_a_delivery_is_posted_signed_and_logged(db, site, endpoint, receiver):
    delivery_id = _emit(db, site.site_id, user_id="c-1", email="ada@example.test")
    assert _deliverer(db).run_once() == 1
    assert _deliverer(db).run_once() == 0
    [request] = receiver.requests
    row = _delivery(db, delivery_id)
    assert request["path"] == "/hooks/ecrm?shop=1"
    assert request["body"] == row["body"].encode()
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Ecrm-Event-Type"] == "customer.updated"
    assert headers["Ecrm-Event-Id"] == row["event_id"]
    assert verify_signature(endpoint.secret, headers["Ecrm-Signature"], request["body"])
    assert row["status"] == "delivered" and row["last_status_code"] == 200
    assert row["attempts"] == 1 and row["delivered_at"] is not None
    [attempt] = recent_attempts(db, site.site_id)
    assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, None)
    [delivery] = recent_deliveries(db, site.site_id)
    assert delivery.status == "delivered" and delivery.event_type == "customer.updated"


def test_failures_are_retried_with_growing_waits_then_given_up(db, site, endpoint, receiver):
    receiver.statuses = [500, 302, 503]
    delivery_id = _emit(db, site.site_id)
    deliverer = _deliverer(db, max_attempts=3, retry_seconds=60.0)
    waits = []
    for attempt in (1, 2, 3):
        before = datetime.now(UTC)
        assert deliverer.run_once() == 1
        row = _delivery(db, delivery_id)
        assert row["attempts"] == attempt
        if attempt < 3:
            assert row["status"] == "pending"
            waits.append(round((row["next_attempt_at"].replace(tzinfo=UTC) - before).seconds / 60))
            assert deliverer.run_once() == 0  # not due yet
            _make_due(db)
    assert waits == [1, 2]
    assert row["status"] == "failed" and row["last_status_code"] == 503
    log = [(a.attempt, a.status_code, a.error) for a in recent_attempts(db, site.site_id)]
    assert log == [
        (3, 503, "HTTP 503"),
        (2, 302, "HTTP 302 (redirects are not followed)"),
        (1, 500, "HTTP 500"),
    ]
    assert len(receiver.requests) == 3  # the redirect was not followed


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(db, site, endpoint, receiver):
    receiver.delay = 2.0
    delivery_id = _emit(db, site.site_id)
    assert _deliverer(db, timeout=0.3).run_once() == 1
    row = _delivery(db, delivery_id)
    assert row["status"] == "pending" and "timed out" in row["last_error"]
    [attempt] = recent_attempts(db, site.site_id)
    assert attempt.status_code is None and "timed out" in attempt.error


def test_an_endpoint_is_disabled_after_failures_in_a_row_and_re_enabled_by_the_owner(
    db, site, endpoint, receiver
):
    receiver.statuses = [500, 200, 500, 500, 500]
    first, second = _emit(db, site.site_id), _emit(db, site.site_id)
    deliverer = _deliverer(db, max_attempts=10, disable_after=3, retry_seconds=1.0)
    assert deliverer.run_once() == 2  # 500, then 200: the run of failures starts again
    assert get_endpoint(db, site.site_id).consecutive_failures == 0
    _make_due(db)
    third = _emit(db, site.site_id)
    for _ in range(3):
        deliverer.run_once()
        _make_due(db)
    disabled = get_endpoint(db, site.site_id)
    assert not disabled.enabled and disabled.consecutive_failures == 3
    assert "3 failed attempts in a row" in disabled.disabled_reason
    assert [e.action for e in audit.entries(db, [site.site_id])][0] == "webhook_disabled"
    assert _emit(db, site.site_id) is None  # nothing is queued for a disabled endpoint
    assert deliverer.run_once() == 0  # and what waits is not attempted
    assert _delivery(db, first)["status"] == "pending"
    assert _delivery(db, second)["status"] == "delivered"
    enabled = enable(db, site.site_id)
    assert enabled.enabled and enabled.consecutive_failures == 0
    assert [e.action for e in audit.entries(db, [site.site_id])][0] == "webhook_enabled"
    assert deliverer.run_once() == 2  # due again at once
    assert {_delivery(db, i)["status"] for i in (first, third)} == {"delivered"}


def test_an_address_that_is_no_longer_allowed_is_refused_at_delivery(db, site, endpoint, receiver):
    with db.begin() as conn:  # as if the name now resolved to a loopback address
        conn.execute(webhook_endpoints.update().values(allow_private=False))
    delivery_id = _emit(db, site.site_id)
    assert _deliverer(db).run_once() == 1
    assert receiver.requests == []
    assert "loopback" in _delivery(db, delivery_id)["last_error"]


def test_a_rotated_secret_signs_the_next_deliveries(db, site, endpoint, receiver):
    rotated = rotate_secret(db, site.site_id)
    assert rotated.secret != endpoint.secret and rotated.secret.startswith("whsec_")
    assert rotated.secret_rotated_at is not None
    _emit(db, site.site_id)
    _deliverer(db).run_once()
    [request] = receiver.requests
    header = request["headers"]["Ecrm-Signature"]
    assert verify_signature(rotated.secret, header, request["body"])
    assert not verify_signature(endpoint.secret, header, request["body"])
    actions = [e.action for e in audit.entries(db, [site.site_id])]
    assert actions[:2] == ["webhook_secret_rotated", "webhook_url_set"]
    assert endpoint.secret not in str([e.detail for e in audit.entries(db, [site.site_id])])


def test_erasure_deletes_a_customers_deliveries_but_the_deletion_notice(
    db, site, endpoint, receiver
):
    updated = _emit(db, site.site_id, "customer.updated", user_id="c-1", email="ada@x.test")
    _deliverer(db).run_once()
    deleted = _emit(db, site.site_id, "customer.deleted", user_id="c-1")
    other = _emit(db, site.site_id, "address.created", user_id="c-2")
    with db.begin() as conn:
        assert erase_customer(conn, site.site_id, "c-1") == 1
    with db.connect() as conn:
        left = set(conn.execute(sa.select(webhook_deliveries.c.id)).scalars())
    assert left == {deleted, other}
    assert updated not in left and count(db, webhook_attempts) == 0


def test_old_finished_deliveries_are_pruned_with_their_log(db, site, endpoint, receiver):
    receiver.statuses = [200, 500]
    delivered, failed, waiting = (_emit(db, site.site_id) for _ in range(3))
    _deliverer(db, max_attempts=1).run_once(limit=2)
    assert [_delivery(db, i)["status"] for i in (delivered, failed, waiting)] == [
        "delivered",
        "failed",
        "pending",
    ]
    long_ago = datetime(2026, 1, 1, tzinfo=UTC)
    with db.begin() as conn:
        conn.execute(webhook_deliveries.update().values(created_at=long_ago))
    assert _deliverer(db, keep_days=30).prune() == 2
    with db.connect() as conn:
        assert list(conn.execute(sa.select(webhook_deliveries.c.id)).scalars()) == [waiting]
    assert count(db, webhook_attempts) == 0


def test_the_webhooks_command_sets_shows_and_re_enables(app, runner, db, site, receiver):
    result = runner.invoke(args=["webhooks", "set", site.write_key, receiver.url])
    assert result.exit_code == 1 and "loopback" in result.output
    result = runner.invoke(
        args=["webhooks", "set", site.write_key, receiver.url, "--allow-private"]
    )
    assert result.exit_code == 0, result.output
    secret = get_endpoint(db, site.site_id).secret
    assert f"secret:  {secret}" in result.output and "allowed (testing only)" in result.output
    result = runner.invoke(args=["webhooks", "show", site.write_key])
    assert receiver.url in result.output and "enabled" in result.output
    assert runner.invoke(args=["webhooks", "enable", site.write_key]).exit_code == 0
    assert runner.invoke(args=["webhooks", "show", "wk_nope"]).exit_code == 1
    _emit(db, site.site_id)
    result = runner.invoke(args=["mailer", "--once"])
    assert "0 emails and 1 webhook handled" in result.output
    assert len(receiver.requests) == 1


def test_the_readmes_verification_snippet_accepts_a_real_delivery_and_nothing_else(
    db, site, endpoint, receiver
):
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    [snippet] = [b for b in blocks if "def verify_signature" in b]
    namespace: dict = {}
    exec(snippet, namespace)  # the shop's code, as the README gives it
    verify = namespace["verify_signature"]
    _emit(db, site.site_id)
    _deliverer(db).run_once()
    [request] = receiver.requests
    header, body = request["headers"]["Ecrm-Signature"], request["body"]
    assert verify(endpoint.secret, header, body)
    assert not verify(endpoint.secret, header, body.replace(b"c-1", b"c-2"))
    assert not verify("whsec_wrong", header, body)
    stale = sign(endpoint.secret, int(time.time()) - 301, body)
    assert not verify(endpoint.secret, stale, body)
    assert not verify(endpoint.secret, "", body)
    assert not verify(endpoint.secret, header.replace("v1=", "v1=é"), body)


@pytest.fixture
def tls_receiver(tmp_path):
    """The receiver behind TLS, with a self-signed certificate for 127.0.0.1 (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("the HTTPS delivery test needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-addext", "basicConstraints=critical,CA:TRUE"],
        check=True,
        capture_output=True,
    )
    server = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    server.url = server.url.replace("http://", "https://")
    server.cert = cert
    yield server
    server.close()


def test_https_deliveries_check_the_certificate(db, site, tls_receiver, monkeypatch):
    endpoint = set_endpoint(db, site.site_id, tls_receiver.url, allow_private=True)
    first = _emit(db, site.site_id)
    assert _deliverer(db).run_once() == 1
    assert "CERTIFICATE_VERIFY_FAILED" in _delivery(db, first)["last_error"]
    assert tls_receiver.requests == []
    # Trusted (OpenSSL reads SSL_CERT_FILE), the same delivery goes through, signed.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_receiver.cert))
    _make_due(db)
    assert _deliverer(db).run_once() == 1
    assert _delivery(db, first)["status"] == "delivered"
    [request] = tls_receiver.requests
    assert verify_signature(endpoint.secret, request["headers"]["Ecrm-Signature"], request["body"])
