"""Erase a person everywhere their data lives, and leave a receipt that names no one.

:func:`erase` runs these steps, each safe to run again (a retry after a crash, or a second
request, finishes the job and answers with the same receipt):

1. **Tombstone and receipt** (one transaction): the digests of the user id and of every
   anonymous id stitched to them go into ``erased_ids`` (tracking.erased), so from this commit
   on no ingest worker stores an event of theirs and no training keeps them; a receipt row is
   started.
2. **Models, at once**: the rows of the person in every kept model version are listed in its
   ``forgotten.json`` (recommender.forget.mark, milliseconds) and every web process is told:
   each blanks the rows in the model it holds, in place (its ids, history rows and factors),
   without reloading it (recommender.forgotten); a process that missed the message does so at
   its next model check (a second), and one that loads a version applies the list first.
   Before the caches are scrubbed, so no answer is computed from their rows afterwards.
3. **The stream**: entries not yet stored (pending or unread) are rewritten without the
   person's events (deleted, and added again with the others' events when they had any).
4. **Spool files** (events that waited for Redis): rewritten the same way, under the spool's
   locks.
5. **Redis**: every key naming one of their visitor ids (activity lists, generation counters,
   cached answers under any model version, locks), and an invalidation so every web process
   drops its in-memory answer at once.
6. **SQL** (one transaction): every table of accounts.personal_data's registry, as it says
   (delete; orders unlinked; order lines and attributions kept), the interaction log's chunks
   rewritten without their rows, the outbox's emails to them with their ``.eml`` files
   (accounts.outbox.erase_recipient) and the webhook notices about them
   (accounts.webhooks.erase_customer), all but a ``customer.deleted`` still on its way. On
   SQLite, ``secure_delete`` overwrites the freed bytes and a WAL checkpoint moves the result
   into the database file.
7. **Receipt and notice** (one transaction): the receipt is completed with the counts and, the
   first time it is, a ``customer.deleted`` webhook (user id, receipt id, when) is queued for
   the shop; it is queued after step 6 so that step cannot delete it, and the deliverer removes
   the user id from it once it is delivered or given up (accounts.webhook_delivery).
8. **Model files, off the request path**: a process of its own, watched by a thread of this
   one (recommender.forget.rewrite_in_background, started after step 2, so it runs while the
   database works), writes the listed rows blank into the files of every version, which keep
   their names: no process reloads anything. :func:`wait_for_models` waits for it; a rewrite
   that died is finished by the next erasure or by the scheduler (``model erasures``, every
   minute), and ``forget.pending`` says what is left. Once it is done, no model file names the
   person.

Steps 3 to 5 are in :mod:`accounts.erasure_stores`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis as redis_lib
import sqlalchemy as sa

from accounts import outbox, personal_data, prefs_schema, webhooks
from accounts.erasure_stores import (
    publish,
    rewrite_aof,
    scrub_redis,
    scrub_spool,
    scrub_stream,
)
from accounts.messaging_schema import webhook_deliveries
from accounts.personal_data import Person
from accounts.rights_schema import erasure_receipts
from recommender import forget, forgotten
from tracking import erased, interaction_log
from tracking.schema import customers, interaction_chunks

log = logging.getLogger("ecrm.accounts.erasure")


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
    counts: dict[str, int] = {"models": forget_in_models(stores, site_id, person)}
    registry = stores.models_dir / str(site_id)
    if forget.pending(registry):  # read and written while the database erases the rows
        forget.rewrite_in_background(registry)
    if stores.redis is not None:
        counts["stream"] = scrub_stream(stores.redis, stores.stream_key, person)
    counts["spool"] = scrub_spool(stores.spool_dir, person)
    if stores.redis is not None:
        counts["redis"] = scrub_redis(stores.redis, person)
    counts.update(erase_sql(stores.engine, person))
    _complete(stores.engine, site_id, subject, user_id, counts)
    if stores.engine.dialect.name == "sqlite":
        with stores.engine.connect() as conn:
            # The freed pages were overwritten (secure_delete); move them into the file now.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    if stores.redis is not None:
        rewrite_aof(stores.redis)
    with stores.engine.connect() as conn:
        receipt = receipt_of(conn, site_id, user_id)
    log.info("erasure %s done on site %s", receipt["receipt_id"], site_id)
    return receipt


def forget_in_models(stores: Stores, site_id: int, person: Person) -> int:
    """List the person's rows in the site's model versions and tell every web process to
    blank them now (step 2); the versions that held them."""
    report = forget.mark(stores.models_dir / str(site_id), model_users(person))
    if report.versions and stores.redis is not None:
        publish(stores.redis, forgotten.CHANNEL, str(site_id))
    return len(report.versions)


def wait_for_models(stores: Stores, site_id: int, timeout: float | None = None) -> bool:
    """Wait until the model files of the site hold no erased row (step 8 of this process, or
    done here when no thread of this process is at it); whether none is left."""
    registry = stores.models_dir / str(site_id)
    forget.wait_for_rewrites(registry, timeout)
    if forget.pending(registry):
        forget.rewrite_pending(registry)
    return not forget.pending(registry)


def _complete(
    engine: sa.Engine, site_id: int, subject: str, user_id: str, counts: dict[str, int]
) -> None:
    """Add the counts to the receipt and complete it; the first time, queue the shop's
    ``customer.deleted`` notice in the same transaction (a retry never queues a second)."""
    with engine.begin() as conn:
        query = sa.select(erasure_receipts).where(
            erasure_receipts.c.site_id == site_id, erasure_receipts.c.subject == subject
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # two erasures at once: one notice
        row = conn.execute(query).first()
        total = dict(row.counts or {})
        for name, value in counts.items():
            total[name] = int(total.get(name, 0)) + int(value)
        now = datetime.now(UTC)
        conn.execute(
            erasure_receipts.update()
            .where(erasure_receipts.c.receipt_id == row.receipt_id)
            .values(counts=total, completed_at=now)
        )
        if row.completed_at is None:
            webhooks.emit(
                conn,
                site_id=site_id,
                event_type="customer.deleted",
                data={"user_id": user_id, "receipt_id": row.receipt_id, "erased_at": now},
            )


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
                # Rows the registry's deletes would orphan or leave files of, first: inquiry
                # messages (they name the inquiry, not the person), the outbox with its .eml
                # files, the webhook deliveries with their attempt log.
                counts["inquiry_messages"] = _erase_inquiry_messages(conn, person)
                counts["email_outbox"] = outbox.erase_recipient(
                    conn, person.site_id, person.user_id, list(person.emails)
                )
                counts["webhook_deliveries"] = webhooks.erase_customer(
                    conn, person.site_id, person.user_id
                )
                for entry in personal_data.HOLDINGS:
                    if entry.table is webhook_deliveries:
                        continue  # above: a customer.deleted on its way stays
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


def _erase_inquiry_messages(conn: sa.Connection, person: Person) -> int:
    messages, inquiries = prefs_schema.inquiry_messages, prefs_schema.inquiries
    theirs = sa.select(inquiries.c.id).where(
        inquiries.c.site_id == person.site_id, inquiries.c.user_id == person.user_id
    )
    return conn.execute(messages.delete().where(messages.c.inquiry_id.in_(theirs))).rowcount


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
