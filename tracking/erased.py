"""The erasure tombstone: who was erased, kept as digests so nothing of theirs comes back.

Erasing a person (accounts.erasure) deletes their rows, but events of theirs may still be on
their way: in the stream, in a spool file, in a browser's retry queue, or read by an ingest
worker a moment before the erasure. The tombstone (``erased_ids``) holds a sha256 digest of
each erased user id and anonymous id, per site, never the id itself. The ingest worker drops
every event whose user id or anonymous id is in it (:func:`drop_erased_events`, counted as
``erased``), and training leaves such customers out of a model (:func:`erased_model_users`).

A digest of an id is not the id, but whoever holds a candidate id can test it: the tombstone
says "this id was erased" and nothing else (no traits, no time of any event).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from tracking.db import chunks, insert_ignore
from tracking.schema import erased_ids

USER, ANONYMOUS = "u", "a"
ANON_PREFIX = "anon:"  # how a model names a visitor never stitched to a customer


def digest(site_id: int, kind: str, value: str) -> str:
    """The tombstone's digest of one id (``kind``: USER or ANONYMOUS)."""
    return hashlib.sha256(f"{site_id}\x1f{kind}\x1f{value}".encode()).hexdigest()


def remember(
    conn: sa.Connection, site_id: int, user_ids: Iterable[str], anonymous_ids: Iterable[str]
) -> int:
    """Add ids to the site's tombstone (idempotent); return how many were new."""
    now = datetime.now(UTC)
    rows = [
        {"site_id": site_id, "digest": digest(site_id, kind, value), "erased_at": now}
        for kind, values in ((USER, user_ids), (ANONYMOUS, anonymous_ids))
        for value in values
    ]
    if not rows:
        return 0
    unique = list({row["digest"]: row for row in rows}.values())
    insert = insert_ignore(conn.engine, erased_ids).returning(erased_ids.c.digest)
    return len(conn.execute(insert, unique).all())


def erased(
    conn: sa.Connection, site_id: int, ids: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The (kind, id) pairs among ``ids`` that the site's tombstone holds.

    The ingest worker asks this for every batch, so the query goes to the driver as plain SQL:
    building and compiling an expanding IN through SQLAlchemy cost several times the lookup.
    """
    by_digest = {digest(site_id, kind, value): (kind, value) for kind, value in ids}
    found: set[tuple[str, str]] = set()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for part in chunks(list(by_digest)):
        statement = (
            f"SELECT digest FROM {erased_ids.name} WHERE site_id = {mark} "
            f"AND digest IN ({', '.join([mark] * len(part))})"
        )
        for (hit,) in conn.exec_driver_sql(statement, (site_id, *part)):
            found.add(by_digest[hit])
    return found


def _ids_of(event: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    if event.get("userId") not in (None, ""):
        found.append((USER, str(event["userId"])))
    if event.get("anonymousId") not in (None, ""):
        found.append((ANONYMOUS, str(event["anonymousId"])))
    return found


def _rejected_ids(rejection: dict[str, Any]) -> list[tuple[str, str]]:
    """The ids a refused event's kept raw payload names, when it is whole enough to read."""
    try:
        raw = orjson.loads(rejection.get("raw") or "null")
    except orjson.JSONDecodeError:
        return []
    return _ids_of(raw) if isinstance(raw, dict) else []


def drop_erased_events(conn: sa.Connection, entries: list[dict[str, Any]]) -> int:
    """Remove, in place, the events (and refused events) of erased people from parsed stream
    entries; return how many.

    One indexed query per site in the batch. The entries are changed in place, so whatever the
    caller does with them afterwards (the serving layer's activity lists) never sees them.
    """
    by_site: dict[int, set[tuple[str, str]]] = {}
    for entry in entries:
        ids = by_site.setdefault(entry["site_id"], set())
        for event in entry["events"]:
            ids.update(_ids_of(event))
        for rejection in entry["rejected"]:
            ids.update(_rejected_ids(rejection))
    dropped = 0
    for site_id, ids in by_site.items():
        if not ids:
            continue
        gone = erased(conn, site_id, ids)
        if not gone:
            continue
        for entry in entries:
            if entry["site_id"] != site_id:
                continue
            kept = [e for e in entry["events"] if not gone.intersection(_ids_of(e))]
            refused = [r for r in entry["rejected"] if not gone.intersection(_rejected_ids(r))]
            dropped += len(entry["events"]) - len(kept) + len(entry["rejected"]) - len(refused)
            entry["events"], entry["rejected"] = kept, refused
    return dropped


def erased_model_users(
    conn: sa.Connection, site_id: int, model_user_ids: Iterable[str]
) -> set[str]:
    """The model users (user ids, or ``anon:<anonymous id>``) whose id the tombstone holds."""
    pairs = {}
    for user in model_user_ids:
        user = str(user)
        if user.startswith(ANON_PREFIX):
            pairs[(ANONYMOUS, user[len(ANON_PREFIX) :])] = user
        else:
            pairs[(USER, user)] = user
    return {pairs[pair] for pair in erased(conn, site_id, pairs)}
