"""Erasure outside SQL: stream entries, spool files and Redis keys naming a person.

Called by :func:`accounts.erasure.erase`; each function is idempotent and returns how many
events or keys it removed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis as redis_lib

from accounts import personal_data
from accounts.personal_data import Person
from tracking.activity import INVALIDATION_CHANNEL
from tracking.stream import make_entry

log = logging.getLogger("ecrm.accounts.erasure")

SCAN_COUNT = 1000
STREAM_PAGE = 500


def visitors(person: Person) -> list[str]:
    """The serving layer's visitor ids of a person (tracking.activity)."""
    return [f"u:{person.user_id}", *(f"a:{a}" for a in person.anonymous_ids)]


# The stream and the spool


def _event_is_theirs(event: Any, person: Person) -> bool:
    if not isinstance(event, dict):
        return False
    anonymous = set(person.anonymous_ids)
    return event.get("userId") == person.user_id or event.get("anonymousId") in anonymous


def _names_them(text: str | bytes, forms: list[bytes]) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return any(form in data for form in forms)


def _forms(person: Person) -> list[bytes]:
    return [
        form.encode()
        for value in (person.user_id, *person.anonymous_ids)
        for form in personal_data.quoted(value)
    ]


def _filter_entry(
    fields: dict[str, str], person: Person, forms: list[bytes]
) -> tuple[dict[str, str] | None, int]:
    """(the entry without the person's events and rejections (None: nothing left), removed)."""
    if str(fields.get("site")) != str(person.site_id):
        return fields, 0
    events = orjson.loads(fields["events"])
    rejected = orjson.loads(fields["rejected"])
    kept_events = [e for e in events if not _event_is_theirs(e, person)]
    kept_rejected = [r for r in rejected if not _names_them(orjson.dumps(r), forms)]
    removed = len(events) - len(kept_events) + len(rejected) - len(kept_rejected)
    if not removed:
        return fields, 0
    if not kept_events and not kept_rejected:
        return None, removed
    entry = make_entry(
        request_id=fields["rid"],
        site_id=int(fields["site"]),
        received_at=fields["recv"],
        events=kept_events,
        rejected=kept_rejected,
    )
    return {k.decode(): v.decode() for k, v in entry.items()}, removed


def scrub_stream(client: redis_lib.Redis, stream_key: str, person: Person) -> int:
    """Remove the person's events from stream entries not yet trimmed; events removed.

    An entry holding others' events too is added again without theirs, then deleted (the store
    ignores messages it already has, so a crash in between duplicates nothing).
    """
    forms = _forms(person)
    removed = 0
    start = "-"
    while True:
        page = client.xrange(stream_key, min=start, max="+", count=STREAM_PAGE)
        if not page:
            return removed
        for entry_id, raw in page:
            if not any(_names_them(v, forms) for v in raw.values()):
                continue
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            try:
                kept, count = _filter_entry(fields, person, forms)
            except (KeyError, ValueError, orjson.JSONDecodeError):
                kept, count = None, 1  # a malformed entry naming them: it goes
            if not count:
                continue
            if kept is not None:
                client.xadd(stream_key, {k.encode(): v.encode() for k, v in kept.items()})
            client.xdel(stream_key, entry_id)
            removed += count
        last = page[-1][0].decode()
        ms, _, seq = last.partition("-")
        start = f"{ms}-{int(seq) + 1}"


def scrub_spool(directory: Path, person: Person) -> int:
    """Rewrite spool files without the person's events; events (or torn lines) removed.

    Holds the replay lock (no replay meanwhile) and each file's lock (no append meanwhile); a
    writer that waited finds the file replaced and appends to the new one (tracking.stream).
    """
    directory = Path(directory)
    if not directory.exists():
        return 0
    forms = _forms(person)
    removed = 0
    lock_fd = os.open(directory / "replay.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        for path in sorted(p for p in directory.iterdir() if p.name.startswith("spool-")):
            removed += _scrub_spool_file(path, person, forms)
    finally:
        os.close(lock_fd)
    return removed


def _scrub_spool_file(path: Path, person: Person, forms: list[bytes]) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                return 0
        except FileNotFoundError:
            return 0
        with os.fdopen(os.dup(fd), "rb") as handle:
            lines = handle.read().splitlines(keepends=True)
        if not any(_names_them(line, forms) for line in lines):
            return 0
        removed = 0
        out = []
        for line in lines:
            if not _names_them(line, forms):
                out.append(line)
                continue
            try:
                fields = orjson.loads(line)
                kept, count = _filter_entry(fields, person, forms)
            except (KeyError, ValueError, TypeError, orjson.JSONDecodeError):
                kept, count = None, 1  # a torn line naming them: never acknowledged, it goes
            removed += count
            if kept is not None:
                out.append(orjson.dumps(kept) + b"\n")
        temporary = path.with_name(f".scrub-{uuid.uuid4().hex}")
        with open(temporary, "wb") as handle:
            handle.write(b"".join(out))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_dir(path.parent)
        return removed
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Redis


def keys_naming(client: redis_lib.Redis, person: Person) -> dict[bytes, str]:
    """Every ``ecrm:`` key of the site that ends with one of the person's visitor ids, and that
    visitor id."""
    wanted = {v.encode(): v for v in visitors(person)}
    site = f":{person.site_id}:".encode()
    found: dict[bytes, str] = {}
    for key in client.scan_iter(match="ecrm:*", count=SCAN_COUNT):
        if site not in key:
            continue
        for marker in (b":u:", b":a:"):
            position = key.find(marker)
            while position != -1:
                visitor = wanted.get(key[position + 1 :])
                if visitor is not None:
                    found[key] = visitor
                    break
                position = key.find(marker, position + 1)
    return found


def scrub_redis(client: redis_lib.Redis, person: Person) -> int:
    """Delete every key naming the person and tell web processes to drop their copies; keys."""
    keys = list(keys_naming(client, person))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    message = "\n".join(f"{person.site_id}\t{v}" for v in visitors(person))
    publish(client, INVALIDATION_CHANNEL, message)
    return len(keys)


def publish(client: redis_lib.Redis, channel: str, message: str) -> None:
    try:
        client.publish(channel, message)
    except redis_lib.RedisError as e:  # caches catch up by their TTLs and the model check
        log.warning("could not publish on %s: %s", channel, e)


def rewrite_aof(client: redis_lib.Redis) -> None:
    """Ask Redis to rewrite its append-only file, which still holds deleted values."""
    try:
        client.bgrewriteaof()
    except redis_lib.ResponseError as e:  # one already running (it then includes ours) or off
        log.info("AOF rewrite not started: %s", e)
    except redis_lib.RedisError as e:
        log.warning("AOF rewrite not started: %s", e)
