"""Dead letters: stream entries (or single events of one) the ingest worker could not store.

Each row keeps a complete stream entry as written by :func:`tracking.stream.make_entry`, so
replaying it is an XADD of that entry; the store ignores messages it already has, so replaying
twice, or replaying an entry whose events were stored meanwhile, stores nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis
import sqlalchemy as sa

from tracking.schema import dead_letters

log = logging.getLogger("ecrm.tracking.dead_letters")


@dataclass(frozen=True)
class DeadLetter:
    """One row of ``dead_letters``."""

    id: int
    stream_id: str
    attempts: int
    error: str
    created_at: datetime
    payload: str

    def fields(self) -> dict[bytes, bytes]:
        """The stream entry to XADD again."""
        return {k.encode(): v.encode() for k, v in orjson.loads(self.payload).items()}

    def readable_payload(self) -> dict[str, Any]:
        """The payload with its JSON-encoded fields (events, rejected) decoded, for reading."""
        payload = orjson.loads(self.payload)
        for name in ("events", "rejected"):
            try:
                payload[name] = orjson.loads(payload[name])
            except (KeyError, TypeError, orjson.JSONDecodeError):
                pass  # shown as stored: a malformed entry is what is being inspected
        return payload


def _letter(row: sa.Row) -> DeadLetter:
    return DeadLetter(row.id, row.stream_id, row.attempts, row.error, row.created_at, row.payload)


def list_dead_letters(engine: sa.Engine) -> list[DeadLetter]:
    """Every dead letter, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(dead_letters).order_by(dead_letters.c.id)).all()
    return [_letter(row) for row in rows]


def get_dead_letters(engine: sa.Engine, ids: list[int]) -> dict[int, DeadLetter]:
    """The dead letters with these ids (missing ids are absent from the answer)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(dead_letters).where(dead_letters.c.id.in_(ids))).all()
    return {row.id: _letter(row) for row in rows}


def replay(
    engine: sa.Engine, client: redis.Redis, stream_key: str, letters: list[DeadLetter]
) -> list[tuple[DeadLetter, str]]:
    """Put each letter back on the stream as a new entry, then delete it; return (letter, new id).

    A letter is deleted only after its XADD succeeded, so a failure (Redis down) loses nothing:
    the exception propagates and the letters not yet replayed stay in the table.
    """
    done = []
    for letter in letters:
        new_id = client.xadd(stream_key, letter.fields())
        with engine.begin() as conn:
            conn.execute(dead_letters.delete().where(dead_letters.c.id == letter.id))
        new_id = new_id.decode() if isinstance(new_id, bytes) else new_id
        log.info("replayed dead letter %d (%s) as %s", letter.id, letter.stream_id, new_id)
        done.append((letter, new_id))
    return done
