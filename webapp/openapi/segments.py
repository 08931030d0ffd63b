"""The members of a saved customer segment (secret server key): ``GET
/v1/segments/{segment_id}/members``, a page at a time in user id order.

The view validates its query with :class:`MembersQuery` (webapp.segments_api).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from webapp.openapi.parts import SERVER_KEY, SERVER_KEY_ERRORS, error, sample
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply

TAG = (
    "Customer segments marketers save in the console (RFM segments and cells, lifetime value and "
    "P(alive) ranges, last order and visit, category affinity, traits, consent): their members "
    "in the newest customer value snapshot. Secret server key."
)
MEMBERS = "/v1/segments/{segment_id}/members"
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
CURSOR_PREFIX = b"s1:"
MAX_USER_ID = 255


def encode_cursor(user_id: str) -> str:
    """An opaque cursor: the next page starts after this user id."""
    return base64.urlsafe_b64encode(CURSOR_PREFIX + user_id.encode()).decode().rstrip("=")


def _cursor_user(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        user_id = raw.removeprefix(CURSOR_PREFIX).decode() if raw.startswith(CURSOR_PREFIX) else ""
    except (binascii.Error, ValueError, UnicodeDecodeError):
        user_id = ""
    if not user_id or "\x00" in user_id or len(user_id) > MAX_USER_ID:
        raise PydanticCustomError("cursor", "not a cursor from this API")
    return user_id


def _whole_number(value: Any) -> Any:
    if isinstance(value, str) and not value.isdigit():
        raise PydanticCustomError("not_digits", "not a whole number")
    return value


class MembersQuery(ApiModel):
    """The members list's query parameters, as documented and as the view validates them."""

    limit: Annotated[int, BeforeValidator(_whole_number)] = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Members per page.", examples=[100]
    )
    cursor: Annotated[str, AfterValidator(_cursor_user)] = Field(
        None, min_length=1, description="`next_cursor` of the previous page (opaque)."
    )

    reasons: ClassVar[dict[str, str]] = {
        "limit": f"must be a whole number from 1 to {MAX_LIMIT}",
        "cursor": "not a cursor from this API; pass next_cursor as given",
    }
    empty_is_absent: ClassVar[tuple[str, ...]] = ("cursor",)
    check_order: ClassVar[tuple[str, ...]] = ("limit", "cursor")


class SegmentMember(ApiModel):
    """One member's scores in the snapshot."""

    user_id: str
    segment: str = Field(description="The RFM segment's name.")
    r_score: int = Field(description="Recency quintile, 5 = most recent.")
    f_score: int = Field(description="Frequency quintile, 5 = most orders.")
    revenue: float = Field(description="Net revenue to date, in `currency`.")
    clv: float | None = Field(description="Lifetime value in `currency`; null: no fitted model.")
    p_alive: float | None = Field(description="P(alive), 0 to 1; null: no fitted model.")
    last_order_at: str = Field(description="ISO 8601, UTC.")


class SegmentMembers(ApiModel):
    """One page of a segment's members."""

    segment_id: int
    name: str
    snapshot_day: str | None = Field(description="The value snapshot read; null before any.")
    currency: str | None = Field(description="The snapshot currency the members are scored in.")
    count: int = Field(description="Members in all, on every page (counted now).")
    members: list[SegmentMember]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


EXAMPLE = {
    "segment_id": 3,
    "name": "Champions who read email",
    "snapshot_day": "2026-11-30",
    "currency": "EUR",
    "count": 1,
    "members": [
        {
            "user_id": "cust-00042",
            "segment": "Champions",
            "r_score": 5,
            "f_score": 5,
            "revenue": 512.4,
            "clv": 830.15,
            "p_alive": 0.97,
            "last_order_at": "2026-11-27T09:12:00Z",
        }
    ],
    "next_cursor": None,
}


def operations() -> list[Operation]:
    """The segment operations."""
    return [
        Operation(
            "get",
            MEMBERS,
            "listSegmentMembers",
            "Segments",
            "List a segment's members",
            "The members of a segment saved in the console, computed now from the newest "
            "customer value snapshot and the store's tables, in `user_id` order, a page at a "
            "time (keyset paging: `next_cursor`). `count` is the whole segment's size.",
            SERVER_KEY,
            {
                200: Reply("One page; `next_cursor` is null on the last.", SegmentMembers, EXAMPLE),
                400: error(
                    400,
                    "A bad `limit` or `cursor`.",
                    "invalid_request",
                    "limit",
                    f"must be a whole number from 1 to {MAX_LIMIT}",
                ),
                **SERVER_KEY_ERRORS,
                404: error(
                    404,
                    "No segment with this id on this site.",
                    "not_found",
                    "segment_id",
                    "no segment 3 on this site",
                ),
            },
            parameters=(
                {
                    "name": "segment_id",
                    "in": "path",
                    "required": True,
                    "description": "The segment's id (the console shows it).",
                    "schema": {"type": "integer", "minimum": 1},
                },
            ),
            query=MembersQuery,
            samples=(sample("GET", "/v1/segments/3/members", auth="server", query="limit=100"),),
        )
    ]
