"""The spool: a torn last line never costs the entries appended after it."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
import redis as redis_lib

from tracking.stream import Spool, make_entry


@pytest.fixture
def stream(redis_url):
    """A Redis client and a stream key of this test's own (deleted afterwards)."""
    client = redis_lib.Redis.from_url(redis_url)
    key = f"test-spool:{uuid.uuid4().hex}"
    yield client, key
    client.delete(key)
    client.close()


def _entry(n: int) -> dict[bytes, bytes]:
    return make_entry(
        request_id=f"r{n}",
        site_id=1,
        received_at="2026-11-20T10:00:00.000Z",
        events=[],
        rejected=[],
    )


def _replayed(client, key) -> list[str]:
    return [fields[b"rid"].decode() for _, fields in client.xrange(key)]


def _tear(path: Path, entry: dict[bytes, bytes]) -> None:
    """What a process killed in the middle of an append leaves: part of a line, no newline."""
    line = orjson.dumps({k.decode(): v.decode() for k, v in entry.items()})
    with open(path, "ab") as f:
        f.write(line[: len(line) // 2])


def _spool_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("spool-"))


def test_torn_line_then_same_pid_keeps_later_entries(tmp_path, stream):
    client, key = stream
    first = Spool(tmp_path)
    first.append(_entry(1))
    (path,) = _spool_files(tmp_path)
    _tear(path, _entry(2))  # the process dies mid-append; entry 2 was never acknowledged
    # A new process that got the same process id (here: this one) appends after the torn line.
    again = Spool(tmp_path)
    again.append(_entry(3))
    again.append(_entry(4))
    assert again.replay(client, key) == 3
    assert sorted(_replayed(client, key)) == ["r1", "r3", "r4"]  # files in any order
    assert _spool_files(tmp_path) == []


def test_torn_line_in_own_file_keeps_later_entries(tmp_path, stream):
    client, key = stream
    spool = Spool(tmp_path)
    spool.append(_entry(1))
    (path,) = _spool_files(tmp_path)
    _tear(path, _entry(2))  # a write that failed half way (disk full), answered 503
    spool.append(_entry(3))
    assert spool.depth() == 3  # the torn line counts until replay drops it
    assert spool.replay(client, key) == 2
    assert _replayed(client, key) == ["r1", "r3"]


def test_replay_recovers_an_entry_glued_to_a_torn_fragment(tmp_path, stream):
    # A file written before the fix: the next append went straight after the torn fragment.
    client, key = stream
    path = tmp_path / "spool-host-123.jsonl"
    lines = [orjson.dumps({k.decode(): v.decode() for k, v in _entry(n).items()}) for n in (1, 3)]
    path.write_bytes(lines[0] + b"\n")
    _tear(path, _entry(2))
    with open(path, "ab") as f:
        f.write(lines[1] + b"\n")
        f.write(b'{"v": "1", "rid"\n')  # a torn line that is not followed by an entry
    assert Spool(tmp_path).replay(client, key) == 2
    assert _replayed(client, key) == ["r1", "r3"]
