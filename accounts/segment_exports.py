"""Exports of a customer segment (issue 14): the members who allow a channel, a seeded random
control share held back, the export and each member's side stored (migration 115) and written to
the audit log. The targets go out as CSV; the control is only recorded, to compare against.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from accounts import audit, preferences
from accounts.segment_members import Member, consenting, members
from accounts.segments import SegmentError, get, number
from analytics.value_schema import segment_export_members, segment_exports
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
    targets: list[Member]
    controls: list[str]
    addresses: dict[str, str]  # user id -> the channel's address from verified traits


ADDRESS_TRAIT = {"email": "email", "sms": "phone"}  # push: the shop's own device tokens


def channel_addresses(conn, site_id: int, users: list[str], channel: str) -> dict[str, str]:
    """user id -> the channel's address (email or phone) from verified traits, where known."""
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
) -> Export:
    """The segment's members who allow ``channel`` x ``topic``, a random ``control_share`` of
    them held back (seeded: the seed is stored), the export and each member's side stored and the
    export written to the audit log, all in the caller's transaction."""
    channel, topic, control_share = check_export(channel, topic, control_share)
    segment = get(conn, site_id, segment_id)
    found = members(conn, site_id, segment.definition)
    if found.day is None:
        raise SegmentError("segment", "no value snapshot yet: run `flask analytics refresh`")
    allowed = consenting(conn, site_id, [m.user_id for m in found.members], channel, topic)
    eligible = [m for m in found.members if m.user_id in allowed]
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    order = list(range(len(eligible)))
    random.Random(seed).shuffle(order)
    held = set(order[: round(control_share * len(eligible))])
    targets = [m for i, m in enumerate(eligible) if i not in held]
    controls = [m.user_id for i, m in enumerate(eligible) if i in held]
    export_id = conn.execute(
        segment_exports.insert().values(
            site_id=site_id,
            segment_id=segment.id,
            segment_name=segment.name,
            definition=segment.definition.as_json(),
            snapshot_day=found.day,
            currency=found.currency,
            channel=channel,
            topic=topic,
            control_share=control_share,
            seed=seed,
            targets=len(targets),
            controls=len(controls),
            created_at=datetime.now(UTC),
            created_by=by,
        )
    ).inserted_primary_key[0]
    mine = {"export_id": export_id, "site_id": site_id}
    rows = [{**mine, "user_id": m.user_id, "control": False} for m in targets]
    rows += [{**mine, "user_id": u, "control": True} for u in controls]
    if rows:
        conn.execute(segment_export_members.insert(), rows)
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
            "targets": len(targets),
            "controls": len(controls),
        },
    )
    return Export(
        export_id,
        segment.id,
        segment.name,
        found.day,
        found.currency,
        channel,
        topic,
        control_share,
        seed,
        targets,
        controls,
        channel_addresses(conn, site_id, [m.user_id for m in targets], channel),
    )


def export_csv(done: Export) -> str:
    """The targets (never the control) as CSV: one row per customer to contact, with their
    email address (email) or phone number (SMS) from their verified traits, blank if none."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    trait = ADDRESS_TRAIT.get(done.channel)
    address = [trait] if trait else []
    writer.writerow(
        ["user_id", *address, "segment", "r_score", "f_score", f"clv_{done.currency}", "p_alive"]
    )
    for m in done.targets:
        writer.writerow(
            [
                safe_cell(m.user_id),
                *([safe_cell(done.addresses.get(m.user_id))] if trait else []),
                m.segment,
                m.r_score,
                m.f_score,
                "" if m.clv is None else round(m.clv, 2),
                "" if m.p_alive is None else round(m.p_alive, 4),
            ]
        )
    return out.getvalue()


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
