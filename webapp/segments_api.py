"""``GET /v1/segments/<segment_id>/members``: a saved segment's members, paged (server key)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from accounts import segments
from accounts.segment_members import page
from tracking.db import aware
from webapp.auth import site_for_server
from webapp.clients import clients
from webapp.errors import ApiError
from webapp.openapi.parse import parse_query
from webapp.openapi.segments import MembersQuery, encode_cursor

bp = Blueprint("segments_api", __name__, url_prefix="/v1/segments")


@bp.get("/<segment_id>/members")
def segment_members(segment_id: str):
    """One page of the segment's members in user id order."""
    site = site_for_server()
    args = parse_query(MembersQuery)
    not_found = ApiError(
        404, "segment_id", f"no segment {segment_id[:40]} on this site", "not_found"
    )
    if not segment_id.isdigit() or len(segment_id) > 9:
        raise not_found
    with clients().engine.connect() as conn:
        try:
            segment = segments.get(conn, site.site_id, int(segment_id))
        except segments.UnknownSegment:
            raise not_found from None
        found = page(conn, site.site_id, segment.definition, args.cursor, args.limit)
    return jsonify(
        segment_id=segment.id,
        name=segment.name,
        snapshot_day=found.day.isoformat() if found.day else None,
        currency=found.currency,
        count=found.count,
        members=[
            {
                "user_id": m.user_id,
                "segment": m.segment,
                "r_score": m.r_score,
                "f_score": m.f_score,
                "revenue": m.revenue,
                "clv": m.clv,
                "p_alive": m.p_alive,
                "last_order_at": aware(m.last_order_at).isoformat().replace("+00:00", "Z"),
            }
            for m in found.members
        ],
        next_cursor=encode_cursor(found.members[-1].user_id) if found.more else None,
    )
