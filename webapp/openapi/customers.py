"""The data-rights operations on one customer (secret server key): export and erasure.

The views validate their path with :class:`CustomerPath` too (webapp.customers_api).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from webapp.openapi.parts import SERVER_KEY, SERVER_KEY_ERRORS, error, ref, sample
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply

TAG = (
    "A customer's rights over their data (GDPR Arts. 17 and 20): download everything stored "
    "about them as one JSON document, or erase them from every store (SQL, the event stream and "
    "spool, caches, trained models). Orders are kept for accounting with the customer's ids "
    "removed. Secret server key."
)
MAX_USER_ID = 255  # customers.user_id
ONE = "/v1/customers/{user_id}"
EXPORT = "/v1/customers/{user_id}/export"


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError("nul", "contains a NUL character (%00)")
    return value


class CustomerPath(ApiModel):
    """The customer routes' path parameter."""

    user_id: Annotated[str, BeforeValidator(_no_nul)] = Field(
        min_length=1,
        max_length=MAX_USER_ID,
        description="The customer's user id, as the shop sends it in `identify` and events. Ids "
        "may contain `/` (plain or `%2F`); an id ending in `/export` or `/similar` is reached "
        "by those routes only.",
        examples=["cust-00042"],
    )


class ErasureReceipt(ApiModel):
    """Proof of an erasure that names no one: the counts are rows or entries per store."""

    receipt_id: str = Field(description="Quote it to the customer; asking again returns it.")
    site_id: int
    requested_by: str = Field(description="`api`, or `staff:<id>` from the console.")
    requested_at: str = Field(description="ISO 8601, UTC.")
    completed_at: str | None = Field(description="ISO 8601, UTC; null while unfinished.")
    counts: dict[str, int] = Field(
        description="Per store: SQL tables by name (rows), `interaction_chunks` (training-log "
        "rows), `stream` and `spool` (events), `redis` (keys), `models` (model versions that "
        "held them: forgotten by serving at once, their files rewritten just after)."
    )


class ErasureDone(ApiModel):
    success: bool = Field(description="Always true.")
    receipt: ErasureReceipt


class _TableRows(ApiModel):
    note: str
    rows: list[dict[str, Any]]


class CustomerExport(ApiModel):
    """Everything stored about one customer (format `ecrm-export/1`)."""

    format: str
    site_id: int
    user_id: str
    anonymous_ids: list[str] = Field(description="Devices and browsers stitched to them.")
    generated_at: str
    tables: dict[str, _TableRows] = Field(description="SQL rows per table, with what they are.")
    interactions: list[dict[str, Any]] = Field(description="The training log's rows of theirs.")
    redis: dict[str, Any] = Field(description="Recent activity and cached recommendations.")
    models: dict[str, Any] = Field(description="Model versions trained on their interactions.")
    excluded: dict[str, str] = Field(
        description="Tables that link to customers but are not exported, and why."
    )


BAD_ID = error(
    400,
    f"The user id in the path holds a NUL character or is over {MAX_USER_ID} characters.",
    "invalid_request",
    "user_id",
    "contains a NUL character (%00)",
)
UNAVAILABLE = replace(
    error(
        503,
        "Redis is unreachable; send the same request again (erasure finishes what it started).",
        "unavailable",
        "redis",
        "Redis is unreachable (connection refused); nothing is lost: send the same request again",
    ),
    headers={"Retry-After": ref("headers", "RetryAfter")},
)
NOT_FOUND = error(
    404,
    "The site holds nothing about this user id (and never erased it).",
    "not_found",
    "user_id",
    "no customer 'cust-00042' on this site",
)
RECEIPT = {
    "receipt_id": "6f1c2b0e9a7d4c3b8e5f1a2d3c4b5a69",
    "site_id": 1,
    "requested_by": "api",
    "requested_at": "2026-12-04T10:00:00.000000Z",
    "completed_at": "2026-12-04T10:00:00.420000Z",
    "counts": {"customers": 1, "events": 212, "identities": 2, "redis": 4, "models": 1},
}

ERASED = {"success": True, "receipt": RECEIPT}


def operations() -> list[Operation]:
    """The data-rights operations."""
    return [
        Operation(
            "get",
            EXPORT,
            "exportCustomer",
            "Customers",
            "Download a customer's data",
            "One JSON document with every row linked to the customer: their user id and every "
            "anonymous id stitched to them, across events, sessions, orders, rollups and the "
            "training log, plus what Redis holds about them. Give it to the customer as is.",
            SERVER_KEY,
            {
                200: Reply("The export document.", CustomerExport),
                400: BAD_ID,
                **SERVER_KEY_ERRORS,
                404: NOT_FOUND,
                503: UNAVAILABLE,
            },
            path_params=CustomerPath,
            samples=(sample("GET", "/v1/customers/cust-00042/export", auth="server"),),
        ),
        Operation(
            "delete",
            ONE,
            "eraseCustomer",
            "Customers",
            "Erase a customer everywhere",
            "Erases the customer from SQL, the training log, events still in the stream or a "
            "spool file, Redis caches and activity lists, and every kept model version (the "
            "current one is replaced at once). Orders stay for accounting without the customer's "
            "ids. Events of theirs arriving later are dropped. Safe to repeat: a second call "
            "finishes anything left and answers the same receipt.",
            SERVER_KEY,
            {
                200: Reply("Erased: the receipt.", ErasureDone, ERASED),
                400: BAD_ID,
                **SERVER_KEY_ERRORS,
                404: NOT_FOUND,
                503: UNAVAILABLE,
            },
            path_params=CustomerPath,
            samples=(sample("DELETE", "/v1/customers/cust-00042", auth="server"),),
        ),
    ]
