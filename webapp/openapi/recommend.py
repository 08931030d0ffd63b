"""The recommendation operations: for a customer or visitor, similar items, similar customers.

The views (webapp/recommend.py) keep their hand-written checks on this hot path;
tests/test_openapi_unchanged.py checks that these declarations and those checks agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from tracking.events import MAX_ID_LENGTH
from webapp.openapi.events import NO_NUL
from webapp.openapi.parts import SERVER_KEY, error, sample
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply

# At most 100 comma-separated ids of at most 255 characters (empty entries are skipped).
EXCLUDE_PATTERN = (
    f"^,*(?:[^,\\x00]{{1,{MAX_ID_LENGTH}}}(?:,+[^,\\x00]{{1,{MAX_ID_LENGTH}}}){{0,99}})?,*$"
)
SOURCES = (
    "personal",
    "similar_customers",
    "item_neighbours",
    "popular",
    "trending",
    "fallback",
    "personalisation_off",
    "vip_only",
)
SOURCES_NOTE = (
    "`source` says which link of the fallback chain answered; without a model or Redis the "
    "answer falls back to popular items and says so, never a 5xx."
)
MAX_K = 100
EXAMPLE_RECOMMENDATIONS = {
    "rec_id": "5f0c6e2b9a8d4c1e8b7a6f5e4d3c2b1a",
    "model_version": "20261124T101500Z-ab12",
    "source": "personal",
    "placement": "home",
    "holdout": False,
    "items": [
        {
            "item_id": "sku-0001",
            "title": "Blue mug",
            "price": 12.5,
            "currency": "EUR",
            "url": "https://shop.example/p/sku-0001",
            "image_url": "https://shop.example/i/sku-0001.jpg",
            "reason": "bought by 7 customers like you",
            "score": 0.83,
            "position": 1,
        }
    ],
}


class RecommendedItem(ApiModel):
    item_id: str
    title: str
    price: float | None
    currency: str | None
    url: str | None
    image_url: str | None
    reason: str = Field(examples=["bought by 7 customers like you"])
    score: float
    position: int = Field(ge=1, description="1 for the first.")


class Recommendations(ApiModel):
    rec_id: str = Field(
        pattern="^[0-9a-f]{32}$",
        description="New for every answer; send it back with Recommendation Shown and "
        "Recommendation Clicked events for attribution.",
    )
    model_version: str | None = Field(description="null before the first model.")
    source: Literal[SOURCES]
    placement: str
    holdout: bool = Field(
        description="The visitor is in the holdout group: popular items only, to measure lift."
    )
    items: list[RecommendedItem]


class CustomerSegment(ApiModel):
    """The customer's standing in the site's newest customer value snapshot."""

    segment: str = Field(
        description="The RFM segment (quintile R x F map).", examples=["Champions"]
    )
    vip: bool = Field(description="A VIP by the site's VIP rule: served the VIP variant.")


class PersonalRecommendations(Recommendations):
    customer: CustomerSegment | None = Field(
        None,
        description="Server-key answers only (never with the public write key): the "
        "customer's segment and VIP flag; null for a visitor or a customer not yet scored.",
    )


class _SimilarCustomer(ApiModel):
    user_id: str
    similarity: float


class SimilarCustomers(Recommendations):
    customers: list[_SimilarCustomer]


# The schemas this module adds to the reference, in the order it lists them.
SCHEMAS = (
    RecommendedItem,
    Recommendations,
    CustomerSegment,
    PersonalRecommendations,
    SimilarCustomers,
)


# Empty query values count as absent, so optional ids may be empty; NUL is refused.
Id = Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH, pattern=NO_NUL)]
# A path segment: the route takes any characters but a leading `/` and line breaks.
PathId = Annotated[
    str, StringConstraints(max_length=MAX_ID_LENGTH, pattern="^[^\\x00\\n/][^\\x00\\n]*$")
]
USER_ID = (
    "The customer (Segment `userId`); personalises. With the public write key it counts only "
    "with a valid `user_hash` (unless the site turned identity verification off); otherwise "
    "the answer is the `anonymous_id`'s, or an unknown visitor's."
)
ANONYMOUS_ID = (
    "The visitor (Segment `anonymousId`): personalises visitors from their recent events and "
    "decides the sticky holdout group (`user_id` decides it when there is no `anonymous_id`)."
)


class _Who(
    ApiModel,
    extra="forbid",
    json_schema_extra={
        "anyOf": [
            {"required": ["user_id"], "properties": {"user_id": {"minLength": 1}}},
            {"required": ["anonymous_id"], "properties": {"anonymous_id": {"minLength": 1}}},
        ]
    },
):
    user_id: Id = None
    anonymous_id: Id = None


class ItemSimilarPath(ApiModel):
    """The similar-items route's path parameter."""

    item_id: PathId = Field(
        description="The shop's item id (it may contain `/`).", examples=["sku-0001"]
    )


class CustomerSimilarPath(ApiModel):
    """The similar-customers route's path parameter."""

    user_id: PathId = Field(
        description="The customer (Segment `userId`; it may contain `/`).",
        examples=["cust-00042"],
    )


# The query parameters every recommendation call shares (``n`` is set per configuration).
PLACEMENT = Field(
    "default",
    pattern="^[A-Za-z0-9_-]{0,64}$",
    description="Where the list is shown (empty: `default`); echoed in the answer and in "
    "attribution reports.",
    examples=["home"],
)
CATEGORY = Field(
    None,
    max_length=500,
    pattern=NO_NUL,
    description="Only items whose category path starts with this (`Music/Jazz`).",
)
EXCLUDE = Field(
    None,
    pattern=EXCLUDE_PATTERN,
    description=f"Comma-separated item ids to leave out (at most 100, each at most "
    f"{MAX_ID_LENGTH} characters).",
    examples=["sku-0001,sku-0002"],
)
USER_HASH = Field(
    None,
    max_length=128,
    pattern=NO_NUL,
    description="Identity verification: the hex HMAC-SHA256 of `user_id` (UTF-8) keyed with the "
    "site's identity secret, computed by the shop's server. Not needed with the server key.",
    examples=["3f0c5a1e9b7d2c4a6e8f0b1d3c5e7a9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c"],
)


@lru_cache(maxsize=8)
def queries(max_n: int) -> dict[str, type[ApiModel]]:
    """The three operations' query models, with ``n`` up to this configuration's maximum."""
    n_field = Annotated[
        int, Field(ge=1, le=max_n, description="How many items (empty: the default).")
    ]

    class RecommendationsQuery(ApiModel):
        who: _Who = Field(
            description="`user_id` and/or `anonymous_id` (at least one, not empty) as query "
            f"parameters. `user_id`: {USER_ID} `anonymous_id`: {ANONYMOUS_ID}",
            examples=[{"user_id": "cust-00042"}],
            json_schema_extra={"parameter": {"style": "form", "explode": True}},
        )
        user_hash: str = USER_HASH
        n: n_field = 10
        placement: str = PLACEMENT
        category: str = CATEGORY
        exclude: str = EXCLUDE
        item_id: Id = Field(
            None,
            description="The item on the page: left out of the results.",
            examples=["sku-0001"],
        )

    class SimilarItemsQuery(ApiModel):
        user_id: Id = Field(None, description=USER_ID, examples=["cust-00042"])
        user_hash: str = USER_HASH
        anonymous_id: Id = Field(None, description=ANONYMOUS_ID, examples=["a-1"])
        n: n_field = 10
        placement: str = PLACEMENT
        category: str = CATEGORY
        exclude: str = EXCLUDE

    class SimilarCustomersQuery(ApiModel):
        k: int = Field(10, ge=1, le=MAX_K, description="How many similar customers.")
        n: n_field = 10
        placement: str = PLACEMENT

    return {
        "recommendations": RecommendationsQuery,
        "similarItems": SimilarItemsQuery,
        "similarCustomers": SimilarCustomersQuery,
    }


OK_HEADERS = {
    "Cache-Control": {"description": "`no-store`", "schema": {"type": "string"}},
    "X-Ecrm-Cache": {
        "description": "Which cache answered.",
        "schema": {"type": "string", "enum": ["local", "redis", "miss", "none"]},
    },
}
# A write key (query, or Basic) needs an allowed Origin; the server key does not.
BROWSER_OR_SERVER = [{"writeKeyQuery": []}, {"writeKey": []}, *SERVER_KEY]
NOT_FOUND = error(
    404,
    "No such route: the id in the path starts with `/` or contains a line break.",
    "not_found",
    "path",
    "/v1/items/a%0Ab/similar does not exist",
)
# curl sends no Origin by itself; a browser on the shop's page does.
AS_BROWSER: dict[str, Any] = {
    "extra": ("-H 'Origin: https://shop.example'",),
    "label": "curl (as a browser: write key)",
}


def _ok(schema: type[ApiModel], example: dict) -> Reply:
    return Reply("The recommendations (`items` may be empty).", schema, example, headers=OK_HEADERS)


def _bad(field: str, reason: str) -> Reply:
    return error(
        400, "A query parameter is invalid; `field` names it.", "invalid_request", field, reason
    )


BROWSER_ERRORS = {
    401: error(
        401,
        "No key, or an unknown or revoked one (`field` is `write_key` or `Authorization`, where "
        "it was sent).",
        "unauthorized",
        "write_key",
        "unknown or revoked write key",
    ),
    403: error(
        403,
        "A write key from an origin (`Origin`, else the `Referer`'s) that the site does not allow.",
        "forbidden_origin",
        "Origin",
        "https://evil.example: not an allowed origin for this write key; add it to the site, or "
        "call from your server with the secret key",
    ),
}


def operations(config: Mapping[str, Any]) -> list[Operation]:
    """The recommendation operations, with this configuration's ``n`` maximum."""
    max_n = config["RECS_MAX_N"]
    query = queries(max_n)
    return [
        Operation(
            "get",
            "/v1/recommendations",
            "recommendations",
            "Recommendations",
            "Recommendations for a customer or a visitor",
            "Personal recommendations with the site's business rules applied (purchased, "
            "hidden, inactive and out-of-stock items never shown; a VIP customer gets the "
            "placement's VIP variant). At least one of `user_id` and `anonymous_id`. "
            "With the server key the answer carries the customer's segment and VIP flag "
            f"(`customer`). {SOURCES_NOTE}",
            BROWSER_OR_SERVER,
            {
                200: _ok(
                    PersonalRecommendations,
                    {**EXAMPLE_RECOMMENDATIONS, "customer": {"segment": "Champions", "vip": True}},
                ),
                400: _bad("user_id", "give user_id or anonymous_id (or both)"),
                **BROWSER_ERRORS,
            },
            query=query["recommendations"],
            samples=(
                sample(
                    "GET",
                    "/v1/recommendations",
                    # A browser's user_id needs its user_hash; an anonymous id does not.
                    query="anonymous_id=a-1&n=5&placement=home&write_key=$WRITE_KEY",
                    **AS_BROWSER,
                ),
                sample(
                    "GET",
                    "/v1/recommendations",
                    auth="server",
                    query="user_id=cust-00042&n=5",
                    label="curl (from a backend: server key)",
                ),
            ),
        ),
        Operation(
            "get",
            "/v1/items/{item_id}/similar",
            "similarItems",
            "Recommendations",
            "Customers who bought this also bought",
            "Items bought together with `item_id` (source `item_neighbours`, or a fallback), "
            "never `item_id` itself. `anonymous_id` (else `user_id`) only decides the holdout "
            "group here.",
            BROWSER_OR_SERVER,
            {
                200: _ok(Recommendations, {**EXAMPLE_RECOMMENDATIONS, "source": "item_neighbours"}),
                400: _bad("n", f"must be from 1 to {max_n}, got 0"),
                **BROWSER_ERRORS,
                404: NOT_FOUND,
            },
            path_params=ItemSimilarPath,
            query=query["similarItems"],
            samples=(
                sample(
                    "GET",
                    "/v1/items/sku-0001/similar",
                    query="anonymous_id=a-1&n=5&write_key=$WRITE_KEY",
                    **AS_BROWSER,
                ),
            ),
        ),
        Operation(
            "get",
            "/v1/customers/{user_id}/similar",
            "similarCustomers",
            "Recommendations",
            "Customers like this one, and what they bought",
            "Secret server key only. The `k` most similar customers and items they bought "
            "(source `similar_customers`, or a fallback); not cached.",
            SERVER_KEY,
            {
                200: _ok(
                    SimilarCustomers,
                    {
                        **EXAMPLE_RECOMMENDATIONS,
                        "source": "similar_customers",
                        "customers": [{"user_id": "cust-00007", "similarity": 0.91}],
                    },
                ),
                400: _bad("k", "must be from 1 to 100, got 500"),
                401: error(
                    401,
                    "No key, or an unknown or revoked one.",
                    "unauthorized",
                    "Authorization",
                    "unknown or revoked key",
                ),
                403: error(
                    403,
                    "A write key was sent: this call needs the secret server key.",
                    "forbidden",
                    "Authorization",
                    "this call needs the site's secret server key, not the public write key",
                ),
                404: NOT_FOUND,
            },
            path_params=CustomerSimilarPath,
            query=query["similarCustomers"],
            samples=(
                sample("GET", "/v1/customers/cust-00042/similar", auth="server", query="k=10&n=5"),
            ),
        ),
    ]
