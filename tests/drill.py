"""The fault drill's moving parts: a real gunicorn, ingest workers, Redis, senders, kills.

Used by tests/test_fault_drill.py. Every process is started in its own session (process group)
with its output in a log file, so a failure can show the tail of each, and teardown can
``killpg`` whatever is left.
"""

from __future__ import annotations

import base64
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from tests.conftest import PROJECT_ROOT

WAIT_SECONDS = 60.0  # upper bound of every wait; a healthy run needs a fraction of it
POLL_SECONDS = 0.02


class DrillFailure(AssertionError):
    """A bounded wait gave up; the message carries the state and the logs' tails."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Process:
    """A subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name, self.log_path = name, log_path
        self.started_at = time.monotonic()
        with open(log_path, "ab") as log_file:
            self.popen = subprocess.Popen(
                argv,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # killpg reaches the whole group, and only it
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group and reap it."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=WAIT_SECONDS)

    def terminate(self) -> int:
        """SIGTERM (a graceful stop); SIGKILL if it ignores it. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def tail(self) -> str:
        return f"--- {self.name} ({self.log_path.name}):\n{log_tail(self.log_path)}"


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc; no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def wait_until(condition, state, logs=lambda: "", timeout: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` until true; fail with ``state()`` and the logs otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DrillFailure(f"gave up after {timeout:.0f}s; state: {state()}\n{logs()}")
        time.sleep(POLL_SECONDS)


# --- what the senders send and what they were told -------------------------------------------


@dataclass
class Ledger:
    """What the senders know: every messageId sent, acknowledged, accepted or rejected."""

    accepted: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)  # order_ids of accepted Order Completed
    requests_acknowledged: int = 0
    resends: int = 0  # requests sent again with the same messageIds
    retry_statuses: dict[str, int] = field(default_factory=dict)  # 5xx / errors that were retried
    unexpected: list[str] = field(default_factory=list)  # answers a good client never expects
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_batch(sender: int, number: int, size: int, invalid_every: int) -> list[dict]:
    """One request's events: track, page and Order Completed, with an invalid one now and then."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    batch = []
    for i in range(size):
        n = number * size + i
        event: dict = {
            "messageId": str(uuid.uuid4()),
            "anonymousId": f"drill-{sender}-{n % 97}",
            "timestamp": now,
        }
        if n % invalid_every == invalid_every - 1:
            # Kept as a rejected event with its reason; the rest of the batch is stored.
            event.update(type="track", event="Product Viewed", timestamp="not a time")
        elif n % 10 == 3:
            event.update(
                type="track",
                event="Order Completed",
                userId=f"cust-{sender}-{n % 41}",
                properties={
                    "order_id": f"o-{sender}-{n}",
                    "total": 25.0,
                    "currency": "EUR",
                    "products": [{"product_id": f"sku-{n % 30:04d}", "price": 12.5, "quantity": 2}],
                },
            )
        elif n % 10 == 7:
            event.update(type="page", name="Home", properties={"path": "/"})
        else:
            event.update(
                type="track",
                event="Product Viewed",
                properties={"product_id": f"sku-{n % 30:04d}", "price": 9.99},
            )
        batch.append(event)
    return batch


class Sender(threading.Thread):
    """Sends its batches one by one like a Segment client: resend the same body until a 2xx.

    A 5xx, a 429 or a broken connection means "not stored, try again later"; the retry carries
    the same messageIds, so a request whose answer was lost (a killed web worker) is resent.
    Before batch ``j`` the sender waits for ``gate(j)``, which spreads the kills over the load.
    """

    def __init__(
        self,
        number: int,
        port: int,
        write_key: str,
        batches: list[list[dict]],
        ledger: Ledger,
        gate,
        stop: threading.Event,
    ):
        super().__init__(name=f"sender-{number}", daemon=True)
        self.number, self.port, self.batches = number, port, batches
        self.ledger, self.gate, self.stop = ledger, gate, stop
        token = base64.b64encode(f"{write_key}:".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self.error: BaseException | None = None
        self.done = 0
        self._rng = random.Random(number)
        self._conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        try:
            for j, batch in enumerate(self.batches):
                self.gate(j)
                self._send(batch)
                self.done = j + 1
        except BaseException as e:  # reported by the test, with the state
            self.error = e
        finally:
            if self._conn is not None:
                self._conn.close()

    def _post(self, body: bytes) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        self._conn.request("POST", "/v1/batch", body=body, headers=self.headers)
        response = self._conn.getresponse()
        return response.status, response.read()

    def _note_retry(self, what: str) -> None:
        with self.ledger.lock:
            self.ledger.retry_statuses[what] = self.ledger.retry_statuses.get(what, 0) + 1

    def _send(self, batch: list[dict]) -> None:
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = orjson.dumps({"batch": batch, "sentAt": sent_at})
        delay = 0.02
        attempts = 0
        while not self.stop.is_set():
            attempts += 1
            try:
                status, answer = self._post(body)
            except (OSError, http.client.HTTPException) as e:
                # Refused, reset, or the web worker died mid-request: the answer is unknown.
                self._note_retry(type(e).__name__)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
            else:
                if 200 <= status < 300:
                    self._record(batch, orjson.loads(answer), resent=attempts > 1)
                    return
                if status in (429,) or status >= 500:
                    self._note_retry(str(status))
                else:
                    with self.ledger.lock:
                        self.ledger.unexpected.append(f"{status}: {answer[:300]!r}")
                    return
            time.sleep(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, 0.5)

    def _record(self, batch: list[dict], answer: dict, resent: bool) -> None:
        rejected = {r["index"] for r in answer.get("rejected", [])}
        with self.ledger.lock:
            self.ledger.requests_acknowledged += 1
            self.ledger.resends += int(resent)
            for i, event in enumerate(batch):
                if i in rejected:
                    self.ledger.rejected.add(event["messageId"])
                else:
                    self.ledger.accepted.add(event["messageId"])
                    if event.get("event") == "Order Completed":
                        self.ledger.orders.add(event["properties"]["order_id"])


# --- the processes under test -----------------------------------------------------------------


class Cluster:
    """Gunicorn, ingest workers and a Redis of the drill's own, all on one VAR_DIR."""

    def __init__(self, tmp: Path, database_url: str, redis_server, extra_env: dict[str, str]):
        self.tmp, self.database_url, self.redis = tmp, database_url, redis_server
        self.var_dir = tmp / "var"
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.extra_env = extra_env
        self.gunicorn: Process | None = None
        self.workers: dict[str, Process] = {}  # consumer name -> its latest process
        self.retired: list[Process] = []
        self._starts = 0

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment every process gets (no ECRM_* leaks in from the caller's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECRM_")}
        env.update(
            PYTHONUNBUFFERED="1",
            ECRM_SECRET_KEY="fault-drill-secret",
            ECRM_DATABASE_URL=self.database_url,
            ECRM_REDIS_URL=self.redis.url,
            ECRM_VAR_DIR=str(self.var_dir),
            ECRM_REDIS_TIMEOUT_SECONDS="1.0",
            ECRM_HOLDOUT_SHARE="0",
            **self.extra_env,
        )
        env.update(overrides)
        return env

    def start_gunicorn(self, workers: int = 2) -> None:
        """gunicorn with the shipped configuration, on a free port; waits for /healthz."""
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(PROJECT_ROOT / "webapp" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--control-socket",
            str(self.var_dir / "gunicorn.ctl"),
            "wsgi:app",
        ]
        env = self.env(ECRM_WEB_WORKERS=str(workers))
        self.gunicorn = Process("gunicorn", argv, env, self.tmp / "gunicorn.log")
        wait_until(
            lambda: self.healthy() and len(self.web_workers()) == workers,
            lambda: f"gunicorn alive={self.gunicorn.alive()} workers={self.web_workers()}",
            lambda: self.gunicorn.tail(),
        )

    def healthy(self) -> bool:
        """/healthz answers 200."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def web_workers(self) -> list[int]:
        """The gunicorn arbiter's worker processes."""
        if self.gunicorn is None or not self.gunicorn.alive():
            return []
        return children(self.gunicorn.pid)

    def start_worker(self, consumer: str) -> Process:
        """`flask --app wsgi ingest --consumer NAME`, small batches, quick claims."""
        self._starts += 1
        url = self.database_url
        if url.startswith(("postgresql", "postgres:")):
            # Names the backend serving this worker, so the drill can kill exactly that one.
            separator = "&" if "?" in url else "?"
            url = f"{url}{separator}application_name=ecrm-drill-ingest-{consumer}"
        argv = [sys.executable, "-m", "flask", "--app", "wsgi", "ingest", "--consumer", consumer]
        log = self.tmp / f"ingest-{consumer}-{self._starts}.log"
        env = self.env(
            ECRM_DATABASE_URL=url,
            ECRM_INGEST_BATCH_SIZE="10",
            ECRM_INGEST_BLOCK_MS="100",
            ECRM_INGEST_CLAIM_IDLE_MS="3000",
        )
        process = Process(f"ingest {consumer}", argv, env, log)
        old = self.workers.get(consumer)
        if old is not None:
            self.retired.append(old)
        self.workers[consumer] = process
        return process

    def spooled(self) -> int:
        """Requests the web workers wrote to the spool because Redis was down (their log)."""
        if self.gunicorn is None:
            return 0
        return self.gunicorn.log_path.read_text(errors="replace").count("spooling events locally")

    def exits(self) -> Counter[int]:
        """Exit codes of the ingest processes that have ended (-9: killed by the drill)."""
        ended = [p.popen.returncode for p in [*self.retired, *self.workers.values()]]
        return Counter(code for code in ended if code is not None)

    def crashed_workers(self) -> list[str]:
        """Consumers whose latest process has exited (killed by the drill, or crashed)."""
        return [name for name, p in self.workers.items() if not p.alive()]

    def logs(self) -> str:
        """Tails of gunicorn's, every worker's and Redis' logs."""
        parts = [self.gunicorn.tail()] if self.gunicorn else []
        parts += [p.tail() for p in self.workers.values()]
        parts.append(f"--- redis:\n{log_tail(self.redis.directory / 'redis.log', 10)}")
        return "\n".join(parts)

    def close(self) -> None:
        """Kill whatever is still running (teardown, also after a failure)."""
        for process in [*self.workers.values(), *self.retired]:
            if process.alive():
                process.kill()
        if self.gunicorn is not None and self.gunicorn.alive():
            self.gunicorn.kill()
