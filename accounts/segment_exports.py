"""Exports of a customer segment (issue 14): the members who allow a channel, a seeded random
control share held back, the export and each member's side stored (migration 115) and written to
the audit log. The targets go out as CSV; the control is only recorded, to compare against.
"""

from __future__ import annotations

import csv
import io
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import IO, Any

import sqlalchemy as sa

from accounts import audit, preferences
from accounts.segment_filters import allows, text_trait
from accounts.segment_members import CHUNK, snapshot, where
from accounts.segments import SegmentError, get, number
from analytics.value_schema import segment_export_members, segment_exports, value_scores
from tracking.schema import customers
from tracking.spreadsheet import safe_cell

MAX_CONTROL_SHARE = 0.5


@dataclass(frozen=True)
class Export:
    id: int
    segment_id: int
    segment_name: str
    snapshot_day: date
    currency: str
    channel: str
    topic: str
    control_share: float
    seed: int
    targets: int
    controls: int


ADDRESS_TRAIT = {"email": "email", "sms": "phone"}  # push: the shop's own device tokens
CSV_IN_MEMORY = 8 * 1024 * 1024  # characters of an export's CSV held before it goes to a file


def channel_addresses(conn, site_id: int, users: list[str], channel: str) -> dict[str, str]:
    """user id -> the channel's address (email or phone) from verified traits, where known (for
    a list of users; a segment export reads them in its own query)."""
    trait = ADDRESS_TRAIT.get(channel)
    found: dict[str, str] = {}
    for start in range(0, len(users) if trait else 0, 1000):
        rows = conn.execute(
            sa.select(customers.c.user_id, customers.c.traits).where(
                customers.c.site_id == site_id,
                customers.c.user_id.in_(users[start : start + 1000]),
            )
        )
        for user_id, traits in rows:
            value = (traits or {}).get(trait) if isinstance(traits, dict) else None
            if isinstance(value, str) and value:
                found[user_id] = value
    return found


def _store_sides(conn: sa.Connection, rows: list[tuple[int, int, str, bool]]) -> None:
    """(export id, site id, user id, control) rows: COPY on PostgreSQL, an insert elsewhere."""
    if conn.dialect.name != "postgresql":
        keys = ("export_id", "site_id", "user_id", "control")
        values = [dict(zip(keys, row, strict=True)) for row in rows]
        conn.execute(segment_export_members.insert(), values)
        return
    cursor = conn.connection.driver_connection.cursor()
    columns = "export_id, site_id, user_id, control"
    with cursor.copy(f"COPY segment_export_members ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def check_export(channel: Any, topic: Any, control_share: Any) -> tuple[str, str, float]:
    if channel not in preferences.CHANNELS:
        raise SegmentError("channel", f"must be one of {', '.join(preferences.CHANNELS)}")
    topic = topic or "offers"
    if not isinstance(topic, str) or not preferences.TOPIC_NAME.fullmatch(topic):
        raise SegmentError("topic", "lower-case letters, digits and _, 1-40 characters")
    share = number(
        "control_share", control_share if control_share != "" else 0, 0, MAX_CONTROL_SHARE
    )
    return channel, topic, share or 0.0


def export(
    conn: sa.Connection,
    site_id: int,
    segment_id: int,
    channel: str,
    topic: str = "offers",
    control_share: float = 0.0,
    seed: int | None = None,
    by: str | None = None,
    staff_id: int | None = None,
    out: IO[str] | None = None,
) -> Export:
    """The segment's members who allow ``channel`` x ``topic``, a random ``control_share`` of
    them held back (seeded: the seed is stored), the export and each member's side stored and the
    export written to the audit log, all in the caller's transaction; the targets (never the
    control) written to ``out`` as CSV (see :func:`csv_file`) when given.

    The eligible members are counted first, the seeded shuffle of their positions (in user id
    order) picks the control, and the members are then read in one query a chunk at a time, so
    no list of members is held."""
    channel, topic, control_share = check_export(channel, topic, control_share)
    segment = get(conn, site_id, segment_id)
    day, currency = snapshot(conn, site_id, segment.definition.currency)
    if day is None:
        raise SegmentError("segment", "no value snapshot yet: run `flask analytics refresh`")
    conditions = where(conn, site_id, segment.definition, day, currency)
    d = segment.definition
    if (d.consent_channel, d.consent_topic) != (channel, topic):  # else the definition has it
        conditions.append(allows(conn, site_id, value_scores.c.user_id, channel, topic))
    eligible = conn.execute(
        sa.select(sa.func.count()).select_from(value_scores).where(*conditions)
    ).scalar_one()
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    order = list(range(eligible))
    random.Random(seed).shuffle(order)
    held = set(order[: round(control_share * eligible)])
    del order
    export_id = conn.execute(
        segment_exports.insert().values(
            site_id=site_id,
            segment_id=segment.id,
            segment_name=segment.name,
            definition=segment.definition.as_json(),
            snapshot_day=day,
            currency=currency,
            channel=channel,
            topic=topic,
            control_share=control_share,
            seed=seed,
            targets=0,
            controls=0,
            created_at=datetime.now(UTC),
            created_by=by,
        )
    ).inserted_primary_key[0]
    # Each chunk's rows are written to a buffer and go to ``out`` in one piece: a write per row
    # to a file that has spilled to disk costs more than the row.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> None:
        if out is not None:
            out.write(buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()

    trait = ADDRESS_TRAIT.get(channel)
    writer.writerow(
        ["user_id", *([trait] if trait else []), "segment", "r_score", "f_score"]
        + [f"clv_{currency}", "p_alive"]
    )
    flush()
    s = value_scores.c
    person = customers.alias("person")
    address = text_trait(conn, person.c.traits, trait) if trait else sa.null()
    query = (
        sa.select(s.user_id, address, s.segment, s.r_score, s.f_score, s.clv, s.p_alive)
        .select_from(
            value_scores.outerjoin(
                person, sa.and_(person.c.site_id == s.site_id, person.c.user_id == s.user_id)
            )
        )
        .where(*conditions)
        .order_by(s.user_id)
        .execution_options(stream_results=True, yield_per=CHUNK)
    )
    # One query read a chunk at a time (a server-side cursor on PostgreSQL): each chunk's sides
    # stored and its targets written before the next is fetched.
    position, targets, controls = 0, 0, 0
    for rows in conn.execute(query).partitions():
        sides = []
        for user_id, email_or_phone, named, r, f, clv, p_alive in rows:
            control = position in held
            position += 1
            sides.append((export_id, site_id, user_id, control))
            if control:
                controls += 1
                continue
            targets += 1
            writer.writerow(
                [
                    safe_cell(user_id),
                    *([safe_cell(email_or_phone)] if trait else []),
                    named,
                    r,
                    f,
                    "" if clv is None else round(clv, 2),
                    "" if p_alive is None else round(p_alive, 4),
                ]
            )
        _store_sides(conn, sides)
        flush()
    conn.execute(
        segment_exports.update()
        .where(segment_exports.c.id == export_id)
        .values(targets=targets, controls=controls)
    )
    audit.record(
        conn,
        "segment.export",
        staff_id=staff_id,
        email=by,
        site_id=site_id,
        detail={
            "export_id": export_id,
            "segment_id": segment.id,
            "segment": segment.name,
            "channel": channel,
            "topic": topic,
            "control_share": control_share,
            "seed": seed,
            "targets": targets,
            "controls": controls,
        },
    )
    return Export(
        export_id,
        segment.id,
        segment.name,
        day,
        currency,
        channel,
        topic,
        control_share,
        seed,
        targets,
        controls,
    )


def csv_file() -> IO[str]:
    """Where an export's CSV goes: in memory up to :data:`CSV_IN_MEMORY`, then a temporary
    file (so a million targets are not one string). One row per customer to contact, with their
    email address (email) or phone number (SMS) from their verified traits, blank if none."""
    return tempfile.SpooledTemporaryFile(CSV_IN_MEMORY, mode="w+", newline="", encoding="utf-8")


def csv_chunks(out: IO[str], size: int = 64 * 1024) -> Iterator[str]:
    """A written CSV from its start a piece at a time (a streamed response); closes it."""
    try:
        out.seek(0)
        while piece := out.read(size):
            yield piece
    finally:
        out.close()


def exports(conn: sa.Connection, site_id: int, segment_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(segment_exports)
        .where(segment_exports.c.site_id == site_id, segment_exports.c.segment_id == segment_id)
        .order_by(segment_exports.c.id.desc())
    ).mappings()
    return [dict(r) for r in rows]


def export_members(conn: sa.Connection, export_id: int) -> dict[str, bool]:
    """user id -> held back (control) of one export."""
    rows = conn.execute(
        sa.select(segment_export_members.c.user_id, segment_export_members.c.control).where(
            segment_export_members.c.export_id == export_id
        )
    )
    return {u: bool(c) for u, c in rows}
