"""The durable buffer between the collector and the SQL store.

Accepted requests become one entry each in a Redis stream (AOF on). When Redis cannot be reached,
the entry goes to a local spool file instead (appended, fsynced) and is replayed into the stream
once Redis answers again. Only when both fail does the collector answer 503.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import redis

log = logging.getLogger("ecrm.tracking")

ENTRY_VERSION = b"1"
ENTRY_START = b'{"v":'  # how a spooled entry's line begins (orjson, the version first)


class Unavailable(Exception):
    """Neither the stream nor the spool could take the entry; the client should retry."""


def make_entry(
    *, request_id: str, site_id: int, received_at: str, events: list, rejected: list
) -> dict[bytes, bytes]:
    """The stream entry for one request: its accepted and rejected events."""
    return {
        b"v": ENTRY_VERSION,
        b"rid": request_id.encode(),
        b"site": str(site_id).encode(),
        b"recv": received_at.encode(),
        b"events": orjson.dumps(events),
        b"rejected": orjson.dumps(rejected),
    }


def parse_entry(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """Decode a stream entry written by :func:`make_entry`; raises ValueError if malformed."""
    try:
        return {
            "rid": fields[b"rid"].decode(),
            "site_id": int(fields[b"site"]),
            "received_at": fields[b"recv"].decode(),
            "events": orjson.loads(fields[b"events"]),
            "rejected": orjson.loads(fields[b"rejected"]),
        }
    except (KeyError, ValueError, orjson.JSONDecodeError) as e:
        raise ValueError(f"malformed stream entry: {e!r}") from e


class Spool:
    """Append-only, fsynced files of entries that could not reach Redis.

    Each process appends to its own file under a lock; a replayer renames a file before reading
    it, and writers check after locking that they still hold the live file, so an append never
    lands in a file that is already being replayed.

    A line torn by a crash (or a failed write) never costs the entries after it: file names carry
    a token of their own besides the process id (a reused pid starts a new file), an append that
    finds a file not ending in a newline ends the torn line first, and the reader finds a whole
    entry glued to a torn fragment (as files written before these rules may hold).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._token = uuid.uuid4().hex[:12]

    def _live_path(self) -> Path:
        # The pid too: a process forked after this object was made writes a file of its own.
        name = f"spool-{socket.gethostname()}-{os.getpid()}-{self._token}.jsonl"
        return self.directory / name

    def append(self, entry: dict[bytes, bytes]) -> None:
        """Write the entry durably (fsync) or raise OSError."""
        line = orjson.dumps({k.decode(): v.decode() for k, v in entry.items()}) + b"\n"
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._live_path()
        for _ in range(5):
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # renamed by a replayer while we waited: use a fresh file
                    continue
                size = os.fstat(fd).st_size
                # A torn last line (a crash mid-append): end it, or this entry would be glued to
                # it and skipped at replay.
                data = b"\n" + line if size and os.pread(fd, 1, size - 1) != b"\n" else line
                if os.write(fd, data) != len(data):
                    raise OSError(f"short write to spool file {path}")
                os.fsync(fd)
                return
            finally:
                os.close(fd)  # closing releases the lock
        raise OSError(f"spool file {path} kept moving; giving up")

    def depth(self) -> int:
        """How many spooled entries wait for replay (counts lines; cheap at spool sizes)."""
        total = 0
        for path in self._files():
            try:
                with open(path, "rb") as f:
                    total += sum(1 for _ in f)
            except FileNotFoundError:
                pass
        return total

    def _files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.startswith("spool-"))

    def _claim(self, path: Path) -> Path | None:
        if path.suffix == ".replaying":
            return path  # left by a replayer that died: replay again (the store dedupes)
        target = path.with_name(f"{path.name}.{os.getpid()}.{time.time_ns()}.replaying")
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(path, target)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)
        return target

    def entries(self, path: Path) -> Iterator[dict[bytes, bytes]]:
        """The complete entries of a claimed file; a torn last line was never acknowledged."""
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                data = _entry_of(line)
                if data is None:
                    log.warning("skipping a torn line in %s", path.name)
                    continue
                yield {k.encode(): v.encode() for k, v in data.items()}

    def replay(self, client: redis.Redis, stream_key: str) -> int:
        """Move spooled entries into the stream; return how many were moved."""
        if not self.directory.exists():
            return 0
        # One replayer at a time, so a ".replaying" file is always one whose replayer died.
        lock_fd = os.open(self.directory / "replay.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            return self._replay_locked(client, stream_key)
        finally:
            os.close(lock_fd)

    def _replay_locked(self, client: redis.Redis, stream_key: str) -> int:
        moved = 0
        for path in self._files():
            claimed = self._claim(path)
            if claimed is None:
                continue
            batch = list(self.entries(claimed))
            pipe = client.pipeline(transaction=False)
            for entry in batch:
                pipe.xadd(stream_key, entry)
            pipe.execute()
            claimed.unlink()
            moved += len(batch)
            log.info("replayed %d spooled entries from %s", len(batch), claimed.name)
        return moved


def _entry_of(line: bytes) -> dict | None:
    """The entry on a spool line, also when it follows a torn fragment; None if there is none."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    # A whole entry appended straight after a torn one starts where its first field does; inside
    # an entry that text only occurs escaped (the events are a JSON string), never bare.
    start = line.find(ENTRY_START, 1)
    while start != -1:
        try:
            return orjson.loads(line[start:])
        except orjson.JSONDecodeError:
            start = line.find(ENTRY_START, start + 1)
    return None


class EventSink:
    """Where the collector puts accepted requests: the stream, else the spool, else 503."""

    def __init__(
        self, client: redis.Redis, stream_key: str, spool: Spool, breaker_seconds: float = 1.0
    ):
        self.client, self.stream_key, self.spool = client, stream_key, spool
        self.breaker_seconds = breaker_seconds
        self._redis_down_until = 0.0
        self._lock = threading.Lock()

    def publish(self, entry: dict[bytes, bytes]) -> str:
        """Store the entry durably; return "stream" or "spool", or raise Unavailable."""
        if time.monotonic() >= self._redis_down_until:
            try:
                self.client.xadd(self.stream_key, entry)
                return "stream"
            except redis.RedisError as e:
                # Skip Redis for a moment so every request does not wait on a dead server.
                with self._lock:
                    self._redis_down_until = time.monotonic() + self.breaker_seconds
                log.warning("Redis unavailable (%s); spooling events locally", e)
        try:
            self.spool.append(entry)
            return "spool"
        except OSError as e:
            log.error("spool unavailable (%s); refusing events with 503", e)
            raise Unavailable(str(e)) from e


def ensure_group(client: redis.Redis, stream_key: str, group: str) -> None:
    """Create the consumer group (and the stream) if missing."""
    try:
        client.xgroup_create(stream_key, group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def trim_acknowledged(client: redis.Redis, stream_key: str) -> int:
    """Trim entries every group has acknowledged; never past a pending or unread entry."""
    try:
        groups = client.xinfo_groups(stream_key)
    except redis.ResponseError:
        return 0
    if not groups:
        return 0
    floor = None
    for group in groups:
        name = group["name"]
        pending = client.xpending(stream_key, name)
        if pending["pending"]:
            candidate = _stream_id(pending["min"])
        else:
            # Everything up to last-delivered-id is acknowledged; keep the entries after it.
            last = _stream_id(group["last-delivered-id"])
            candidate = (last[0], last[1] + 1)
        floor = candidate if floor is None else min(floor, candidate)
    if floor is None or floor == (0, 1):
        return 0
    return client.xtrim(stream_key, minid=f"{floor[0]}-{floor[1]}", approximate=False)


def _stream_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
