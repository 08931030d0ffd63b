"""Download my data (GDPR Art. 20): one JSON document with every row linked to the person.

The document is built from accounts.personal_data's registry, so a table added there is
exported without a change here. It holds, for one customer of one site:

- ``tables``: each registered table's rows of theirs (found through their user id, every
  anonymous id stitched to them, their sessions and orders), with the registry's note;
- ``interactions``: what the training log holds of theirs (item, event, time);
- ``redis``: their recent-activity lists and the recommendations cached for them;
- ``models``: the kept model versions trained on them (their factors are derived numbers, not
  exported);
- ``excluded``: the tables that link to customers but are not exported, each with its reason.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import redis as redis_lib
import sqlalchemy as sa

from accounts import personal_data, prefs_schema
from accounts.erasure import Stores, model_users
from accounts.erasure_stores import keys_naming, visitors
from accounts.personal_data import Person
from recommender import forget
from recommender.registry import ModelRegistry
from tracking import interaction_log
from tracking.activity import recent_key
from tracking.schema import interaction_chunks

FORMAT = "ecrm-export/1"


class UnknownCustomer(LookupError):
    """The site holds nothing about this user id."""


def _default(value: Any) -> Any:
    """What orjson cannot write itself: money as a string, bytes as base64."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(document: dict[str, Any]) -> bytes:
    """The export document as JSON bytes (times in UTC with a ``Z``, money as strings).

    Rows keep the database's values until here: converting them one by one in Python cost
    more than reading them (10,000 events: 3 s of 6).
    """
    return orjson.dumps(document, default=_default, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def _plain(value: datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def _inquiry_messages(conn: sa.Connection, person: Person) -> list[dict]:
    messages, inquiries = prefs_schema.inquiry_messages, prefs_schema.inquiries
    theirs = sa.select(inquiries.c.id).where(
        inquiries.c.site_id == person.site_id, inquiries.c.user_id == person.user_id
    )
    rows = conn.execute(
        sa.select(messages).where(messages.c.inquiry_id.in_(theirs)).order_by(messages.c.id)
    )
    return [{str(k): v for k, v in row._mapping.items()} for row in rows]


def _rows(conn: sa.Connection, entry: personal_data.Holding, person: Person) -> list[dict]:
    condition = personal_data.where(entry, person)
    if condition is None:
        return []
    order = [c for c in entry.table.primary_key.columns]
    # JSON columns are read as their text and written out as it is (orjson.Fragment): decoding
    # each event's payload only to encode it again was a third of an export's time.
    json_columns = {c.name for c in entry.table.columns if isinstance(c.type, sa.JSON)}
    columns = [
        sa.cast(c, sa.Text).label(c.name) if c.name in json_columns else c
        for c in entry.table.columns
    ]
    result = conn.execute(sa.select(*columns).where(condition).order_by(*order))
    keys = [str(k) for k in result.keys()]
    return [
        {
            key: orjson.Fragment(value) if key in json_columns and value is not None else value
            for key, value in zip(keys, row, strict=True)
        }
        for row in result
    ]


def _interactions(conn: sa.Connection, person: Person) -> list[dict]:
    """The person's rows of the interaction log, oldest first."""
    users, anonymous = {person.user_id}, set(person.anonymous_ids)
    found = []
    chunks = interaction_chunks.c
    query = sa.select(chunks.vocabulary, chunks.codes, chunks.seconds).where(
        chunks.site_id == person.site_id
    )
    for row in conn.execute(query):
        if not any(form in row.vocabulary for form in _forms(person)):
            continue
        chunk = interaction_log.decode(row)
        columns = [chunk.column(name) for name in interaction_log.CODE_COLUMNS]
        for user, anon, item, event, second in zip(*columns, chunk.seconds, strict=True):
            if user in users or anon in anonymous:
                moment = datetime.fromtimestamp(float(second), UTC)
                found.append(
                    {
                        "user_id": user,
                        "anonymous_id": anon,
                        "item_id": item,
                        "event": event,
                        "timestamp": _plain(moment),
                    }
                )
    found.sort(key=lambda r: r["timestamp"])
    return found


def _forms(person: Person) -> list[str]:
    return [personal_data.quoted(v, 1)[0] for v in (person.user_id, *person.anonymous_ids)]


def _redis(client: redis_lib.Redis | None, person: Person) -> dict[str, Any]:
    if client is None:
        return {}
    recent: dict[str, list] = {}
    cached: dict[str, list] = {}
    for visitor in visitors(person):
        rows = client.lrange(recent_key(person.site_id, visitor), 0, -1)
        if rows:
            recent[visitor] = [orjson.loads(r) for r in rows]
    for key, visitor in keys_naming(client, person).items():
        if not key.startswith(b"ecrm:recs:"):
            continue
        raw = client.get(key)
        if raw is None:
            continue
        entry = orjson.loads(raw)
        cached.setdefault(visitor, []).append(
            {"model_version": entry.get("v"), "items": [c[0] for c in entry.get("c", [])]}
        )
    return {"recent_activity": recent, "cached_recommendations": cached}


def _models(models_dir: Path, person: Person) -> list[str]:
    registry = ModelRegistry(models_dir / str(person.site_id))
    wanted = model_users(person)
    return [
        version
        for version in registry.versions()
        if wanted.intersection(forget.users_of(registry.root / version))
    ]


def export(stores: Stores, site_id: int, user_id: str) -> dict[str, Any]:
    """The whole export document of a customer; raises :class:`UnknownCustomer`."""
    with stores.engine.connect() as conn:
        person = personal_data.find_person(conn, site_id, user_id)
        if person is None:
            raise UnknownCustomer(user_id)
        tables = {}
        for entry in personal_data.HOLDINGS:
            if not entry.export or entry.erase == "custom":
                continue
            tables[entry.name] = {"note": entry.note, "rows": _rows(conn, entry, person)}
        tables["inquiry_messages"] = {
            "note": "the messages of the customer's inquiries, theirs and the shop's replies",
            "rows": _inquiry_messages(conn, person),
        }
        interactions = _interactions(conn, person)
    return {
        "format": FORMAT,
        "site_id": site_id,
        "user_id": person.user_id,
        "anonymous_ids": list(person.anonymous_ids),
        "generated_at": _plain(datetime.now(UTC)),
        "tables": tables,
        "interactions": interactions,
        "redis": _redis(stores.redis, person),
        "models": {
            "versions": _models(stores.models_dir, person),
            "note": "model versions trained on this customer's interactions (their factors are "
            "numbers derived from the interactions above)",
        },
        "excluded": dict(personal_data.EXCLUDED),
    }
