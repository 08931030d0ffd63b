"""A campaign list's members who allow a channel, as CSV, audited like segment exports.

The consent rule is the segment export's (accounts.segment_members.consenting: the customer's
newest record for channel x topic, else the topic's default), and so are the channel, topic
checks and the address column (accounts.segment_exports: the email or phone from verified
traits). Each download is an audit entry, ``campaign_list.export``, with the list, channel,
topic and how many were exported; no copy of the members is stored (the list itself is).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import sqlalchemy as sa

from accounts import audit, preferences
from accounts.segment_exports import ADDRESS_TRAIT, channel_addresses, check_export
from accounts.segment_members import consenting
from accounts.segments import SegmentError
from analytics.campaign_lists import CampaignList, InvalidList, Member, get_list, members
from tracking.spreadsheet import safe_cell


@dataclass(frozen=True)
class ListExport:
    """One download: the list, the channel and topic, the members who allow them."""

    campaign_list: CampaignList
    channel: str
    topic: str
    members: list[Member]
    addresses: dict[str, str]  # user id -> the channel's address from verified traits


def export(
    conn: sa.Connection,
    site_id: int,
    list_id: int,
    channel: object,
    topic: object = "offers",
    by: str | None = None,
    staff_id: int | None = None,
) -> ListExport:
    """The list's members who allow ``channel`` x ``topic`` now, written to the audit log in the
    caller's transaction; InvalidList naming ``channel``, ``topic`` or ``list`` otherwise."""
    try:
        channel, topic, _ = check_export(channel, topic or "offers", 0)
    except SegmentError as e:
        raise InvalidList(e.field, e.reason) from None
    known = [t.topic for t in preferences.topics(conn, site_id)]
    if topic not in known:
        raise InvalidList("topic", f"this site has no topic {topic}; one of {', '.join(known)}")
    found = get_list(conn, site_id, list_id)
    if found is None:
        raise InvalidList("list", "no such campaign list")
    everyone = members(conn, list_id, limit=None)
    allowed = consenting(conn, site_id, [m.user_id for m in everyone], channel, topic)
    chosen = [m for m in everyone if m.user_id in allowed]
    audit.record(
        conn,
        "campaign_list.export",
        staff_id=staff_id,
        email=by,
        site_id=site_id,
        detail={
            "list_id": found.list_id,
            "list": found.name,
            "channel": channel,
            "topic": topic,
            "members": found.members,
            "exported": len(chosen),
        },
    )
    addresses = channel_addresses(conn, site_id, [m.user_id for m in chosen], channel)
    return ListExport(found, channel, topic, chosen, addresses)


def export_csv(done: ListExport) -> str:
    """One row per member to contact: user id, the channel's address (email or SMS; blank when
    unknown), when they were added and by which rule."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    trait = ADDRESS_TRAIT.get(done.channel)
    writer.writerow(["user_id", *([trait] if trait else []), "added_at", "rule"])
    for m in done.members:
        address = [done.addresses.get(m.user_id, "")] if trait else []
        added = m.added_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        writer.writerow([safe_cell(v) for v in (m.user_id, *address, added, m.rule_name)])
    return out.getvalue()
