"""Erase a person everywhere their data lives, and leave a receipt that names no one.

:func:`erase` runs these steps, each safe to run again (a retry after a crash, or a second
request, finishes the job and answers with the same receipt):

1. **Tombstone and receipt** (one transaction): the digests of the user id and of every
   anonymous id stitched to them go into ``erased_ids`` (tracking.erased), so from this commit
   on no ingest worker stores an event of theirs and no training keeps them; a receipt row is
   started.
2. **The stream**: entries not yet stored (pending or unread) are rewritten without the
   person's events (deleted, and added again with the others' events when they had any).
3. **Spool files** (events that waited for Redis): rewritten the same way, under the spool's
   locks.
4. **Redis**: every key naming one of their visitor ids (activity lists, generation counters,
   cached answers under any model version, locks), and an invalidation so every web process
   drops its in-memory answer at once.
5. **Models**: every kept model version that was trained on them is rewritten without their
   rows (recommender.forget); the current one becomes a new version, promoted at once, and
   every web process is told to reload.
6. **SQL** (one transaction): every table of accounts.personal_data's registry, as it says
   (delete; orders unlinked; order lines and attributions kept), and the interaction log's
   chunks rewritten without their rows; the receipt completed with the counts. On SQLite,
   ``secure_delete`` overwrites the freed bytes and a WAL checkpoint moves the result into the
   database file.

The emails in the outbox (P3's accounts.outbox) are not reached yet: see README "Data rights".
"""

from __future__ import annotations

import fcntl
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis as redis_lib
import sqlalchemy as sa

from accounts import personal_data
from accounts.personal_data import Person
from accounts.rights_schema import erasure_receipts
from recommender import forget
from tracking import erased, interaction_log
from tracking.activity import CATALOGUE_CHANNEL, INVALIDATION_CHANNEL
from tracking.schema import customers, interaction_chunks
from tracking.stream import make_entry

log = logging.getLogger("ecrm.accounts.erasure")

SCAN_COUNT = 1000
STREAM_PAGE = 500


class UnknownCustomer(LookupError):
    """The site has no data about this user id, and never erased it."""


@dataclass(frozen=True)
class Stores:
    """Where a person's data may be, besides SQL: explicit, so CLI, web and tests share it."""

    engine: sa.Engine
    redis: redis_lib.Redis | None
    stream_key: str
    spool_dir: Path
    models_dir: Path  # <models_dir>/<site_id> is a site's model registry


def visitors(person: Person) -> list[str]:
    """The serving layer's visitor ids of a person (tracking.activity)."""
    return [f"u:{person.user_id}", *(f"a:{a}" for a in person.anonymous_ids)]


def model_users(person: Person) -> set[str]:
    """The ids a model knows the person by: the user id, and never-stitched anonymous ids."""
    return {person.user_id, *(f"{erased.ANON_PREFIX}{a}" for a in person.anonymous_ids)}


def _receipt_json(row: Any) -> dict[str, Any]:
    row = row._mapping if hasattr(row, "_mapping") else row
    return {
        "receipt_id": row["receipt_id"],
        "site_id": row["site_id"],
        "requested_by": row["requested_by"],
        "requested_at": _iso(row["requested_at"]),
        "completed_at": _iso(row["completed_at"]) if row["completed_at"] else None,
        "counts": dict(row["counts"] or {}),
    }


def _iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def receipt_of(conn: sa.Connection, site_id: int, user_id: str) -> dict[str, Any] | None:
    """The receipt of an earlier erasure of this user id, or None."""
    subject = erased.digest(site_id, erased.USER, user_id)
    row = conn.execute(
        sa.select(erasure_receipts).where(
            erasure_receipts.c.site_id == site_id, erasure_receipts.c.subject == subject
        )
    ).first()
    return _receipt_json(row) if row is not None else None


def erase(stores: Stores, site_id: int, user_id: str, *, requested_by: str) -> dict[str, Any]:
    """Erase a customer of a site everywhere (see the module docstring); return the receipt.

    Raises :class:`UnknownCustomer` when the site holds nothing about ``user_id`` and never
    erased it.
    """
    subject = erased.digest(site_id, erased.USER, user_id)
    with stores.engine.begin() as conn:
        person = personal_data.find_person(conn, site_id, user_id)
        previous = receipt_of(conn, site_id, user_id)
        if person is None:
            if previous is None:
                raise UnknownCustomer(user_id)
            person = Person(site_id, user_id)  # a retry: sweep what the user id still finds
        erased.remember(conn, site_id, [person.user_id], person.anonymous_ids)
        if previous is None:
            conn.execute(
                erasure_receipts.insert(),
                {
                    "receipt_id": uuid.uuid4().hex,
                    "site_id": site_id,
                    "subject": subject,
                    "requested_by": requested_by[:64],
                    "requested_at": datetime.now(UTC),
                    "completed_at": None,
                    "counts": {},
                },
            )
    counts: dict[str, int] = {}
    if stores.redis is not None:
        counts["stream"] = scrub_stream(stores.redis, stores.stream_key, person)
    counts["spool"] = scrub_spool(stores.spool_dir, person)
    if stores.redis is not None:
        counts["redis"] = scrub_redis(stores.redis, person)
    report = forget.forget_users(stores.models_dir / str(site_id), model_users(person))
    counts["models"] = len(report.versions)
    if report.versions and stores.redis is not None:
        # Every web process reloads the site's state (and with it the rewritten model) now.
        _publish(stores.redis, CATALOGUE_CHANNEL, str(site_id))
    counts.update(erase_sql(stores.engine, person))
    with stores.engine.begin() as conn:
        row = conn.execute(
            sa.select(erasure_receipts).where(
                erasure_receipts.c.site_id == site_id, erasure_receipts.c.subject == subject
            )
        ).first()
        total = dict(row.counts or {})
        for name, value in counts.items():
            total[name] = int(total.get(name, 0)) + int(value)
        conn.execute(
            erasure_receipts.update()
            .where(erasure_receipts.c.receipt_id == row.receipt_id)
            .values(counts=total, completed_at=datetime.now(UTC))
        )
    if stores.engine.dialect.name == "sqlite":
        with stores.engine.connect() as conn:
            # The freed pages were overwritten (secure_delete); move them into the file now.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if stores.redis is not None:
        _rewrite_aof(stores.redis)
    with stores.engine.connect() as conn:
        receipt = receipt_of(conn, site_id, user_id)
    log.info("erasure %s done on site %s", receipt["receipt_id"], site_id)
    return receipt


# SQL


def erase_sql(engine: sa.Engine, person: Person) -> dict[str, int]:
    """Every registered table's rows of the person, as the registry says; rows per table."""
    counts: dict[str, int] = {}
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
            conn.commit()
        try:
            with conn.begin():
                # The customer row first: an ingest worker storing their event right now holds
                # it, so the deletes below wait for that batch and see its rows.
                first = conn.execute(
                    customers.delete().where(
                        customers.c.site_id == person.site_id,
                        customers.c.user_id == person.user_id,
                    )
                )
                for entry in personal_data.HOLDINGS:
                    if entry.erase == "custom":
                        counts[entry.name] = _erase_chunks(conn, person)
                        continue
                    condition = personal_data.where(entry, person)
                    if condition is None or entry.erase == "keep":
                        continue
                    if entry.erase == "delete":
                        result = conn.execute(entry.table.delete().where(condition))
                    else:
                        values = {column: None for column in entry.unlink}
                        result = conn.execute(entry.table.update().where(condition).values(values))
                    counts[entry.name] = result.rowcount
                counts["customers"] = counts.get("customers", 0) + first.rowcount
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA secure_delete = OFF")
                conn.commit()
    return {name: n for name, n in counts.items() if n}


def _erase_chunks(conn: sa.Connection, person: Person) -> int:
    """Rewrite the site's interaction log chunks that hold the person's rows; rows removed."""
    users = {person.user_id}
    anonymous = set(person.anonymous_ids)
    forms = [f for v in (person.user_id, *person.anonymous_ids) for f in personal_data.quoted(v, 1)]
    vocabulary = interaction_chunks.c.vocabulary
    candidates = sa.or_(
        *(vocabulary.like(f"%{personal_data._escape_like(f)}%", escape="\\") for f in forms)
    )
    rows = conn.execute(
        sa.select(
            interaction_chunks.c.id,
            interaction_chunks.c.vocabulary,
            interaction_chunks.c.codes,
            interaction_chunks.c.seconds,
        ).where(interaction_chunks.c.site_id == person.site_id, candidates)
    ).all()
    removed = 0
    for row in rows:
        chunk = interaction_log.decode(row)
        user_column = chunk.column("users")
        anonymous_column = chunk.column("anonymous")
        mine = [
            u in users or a in anonymous for u, a in zip(user_column, anonymous_column, strict=True)
        ]
        gone = sum(mine)
        if not gone:
            continue
        removed += gone
        keep = [not m for m in mine]
        if not any(keep):
            conn.execute(interaction_chunks.delete().where(interaction_chunks.c.id == row.id))
            continue
        columns = [chunk.column(name)[keep] for name in interaction_log.CODE_COLUMNS]
        conn.execute(
            interaction_chunks.update()
            .where(interaction_chunks.c.id == row.id)
            .values(interaction_log.encode(*columns, chunk.seconds[keep]))
        )
    return removed


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


def _keys_naming(client: redis_lib.Redis, person: Person) -> list[bytes]:
    """Every ``ecrm:`` key of the site that ends with one of the person's visitor ids."""
    wanted = {v.encode() for v in visitors(person)}
    site = f":{person.site_id}:".encode()
    found = []
    for key in client.scan_iter(match="ecrm:*", count=SCAN_COUNT):
        if site not in key:
            continue
        for marker in (b":u:", b":a:"):
            position = key.find(marker)
            while position != -1:
                if key[position + 1 :] in wanted:
                    found.append(key)
                    break
                position = key.find(marker, position + 1)
    return list(dict.fromkeys(found))


def scrub_redis(client: redis_lib.Redis, person: Person) -> int:
    """Delete every key naming the person and tell web processes to drop their copies; keys."""
    keys = _keys_naming(client, person)
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    message = "\n".join(f"{person.site_id}\t{v}" for v in visitors(person))
    _publish(client, INVALIDATION_CHANNEL, message)
    return len(keys)


def _publish(client: redis_lib.Redis, channel: str, message: str) -> None:
    try:
        client.publish(channel, message)
    except redis_lib.RedisError as e:  # caches catch up by their TTLs and the model check
        log.warning("could not publish on %s: %s", channel, e)


def _rewrite_aof(client: redis_lib.Redis) -> None:
    """Ask Redis to rewrite its append-only file, which still holds deleted values."""
    try:
        client.bgrewriteaof()
    except redis_lib.ResponseError as e:  # one already running (it then includes ours) or off
        log.info("AOF rewrite not started: %s", e)
    except redis_lib.RedisError as e:
        log.warning("AOF rewrite not started: %s", e)
