"""The self-service portal's operations (secret server key): open a portal session for a
customer, and read a customer's profile and addresses.

The request model here validates requests too (:mod:`webapp.openapi.parse`); the view then
refuses what a schema cannot say (a `return_url` outside the site's allowed origins).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints

from webapp.openapi.parts import SERVER_KEY, SERVER_KEY_ERRORS, error, sample
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply, RequestBody

TAG = (
    "The customers' self-service portal (`/account/`): a shop with accounts of its own opens a "
    "portal session for its signed-in customer and sends the browser to the `url` it gets; the "
    "shop reads what the customer changed there with `GET /v1/customers/{user_id}`."
)
USER_ID_PATTERN = "^[^\\x00-\\x1f\\x7f]+$"
UserId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=USER_ID_PATTERN)]
# In a path: may contain `/`, not first (the route takes the rest of the path).
PathUserId = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=255, pattern="^[^\\x00-\\x1f\\x7f/][^\\x00-\\x1f\\x7f]*$"
    ),
]
STRICT = ConfigDict(strict=True, extra="forbid", regex_engine="python-re", defer_build=True)


class PortalSessionRequest(ApiModel):
    """Who the portal session is for, where its "back to the shop" link goes, in which language.
    `return_url` must be an http(s) URL on one of the site's allowed origins (a 400 naming it
    otherwise)."""

    user_id: UserId = Field(description="The shop's id of its signed-in customer.")
    return_url: str | None = Field(
        None,
        max_length=2000,
        pattern="^[Hh][Tt][Tt][Pp][Ss]?://",
        description='Where the portal\'s "back to the shop" link and sign-out lead.',
        examples=["https://shop.example/account"],
    )
    locale: Literal["en", "ko"] | None = Field(
        None, description="The pages' language; absent: the browser's Accept-Language."
    )
    model_config = STRICT
    reasons: ClassVar[dict[str, str]] = {
        "user_id:missing": "required: the shop's id of its customer",
        "user_id": "must be 1-255 characters without control characters",
        "locale": "must be en or ko",
        "return_url": "must be an http(s) URL of at most 2000 characters",
    }


class PortalSession(ApiModel):
    """A portal session: send the customer's browser to `url` before `expires_at`. The URL
    works once; the browser then holds a session cookie and lands on a URL without the token."""

    url: str = Field(description="Single use, valid 5 minutes.")
    expires_at: str = Field(description="UTC, ISO 8601.")


class CustomerPath(ApiModel):
    """The customer a call is about."""

    user_id: PathUserId = Field(
        description="The shop's id of the customer (it may contain `/`).", examples=["cust-1001"]
    )
    reasons: ClassVar[dict[str, str]] = {
        "user_id": "must be 1-255 characters without control characters"
    }


class _Address(ApiModel):
    address_id: int
    kind: Literal["shipping", "billing"]
    is_default: bool = Field(description="The default address of its kind.")
    name: str
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str | None
    country: str = Field(description="ISO 3166-1 alpha-2.")
    phone: str | None


class _Orders(ApiModel):
    count: int = Field(ge=0)
    last_ordered_at: str | None = Field(description="UTC, ISO 8601; null without orders.")


class Customer(ApiModel):
    """A customer as the portal keeps them: the profile they edit, their address book and a
    summary of their orders."""

    user_id: str
    name: str | None
    email: str | None
    phone: str | None = Field(description="E.164: + and digits.")
    birthday: str | None = Field(description="YYYY-MM-DD.")
    age: int | None = Field(description="From the birth date, as recommendation rules read it.")
    addresses: list[_Address]
    orders: _Orders
    first_seen_at: str
    last_seen_at: str


EXAMPLE_REQUEST = {
    "user_id": "cust-1001",
    "return_url": "https://shop.example/account",
    "locale": "ko",
}
EXAMPLE_CUSTOMER = {
    "user_id": "cust-1001",
    "name": "Kim Minji",
    "email": "minji@example.com",
    "phone": "+82212345678",
    "birthday": "1990-04-30",
    "age": 36,
    "addresses": [
        {
            "address_id": 7,
            "kind": "shipping",
            "is_default": True,
            "name": "Kim Minji",
            "line1": "12 Sejong-daero",
            "line2": None,
            "city": "Seoul",
            "region": None,
            "postal_code": "04524",
            "country": "KR",
            "phone": None,
        }
    ],
    "orders": {"count": 3, "last_ordered_at": "2026-11-20T10:00:00Z"},
    "first_seen_at": "2026-01-05T09:12:00Z",
    "last_seen_at": "2026-11-20T10:00:00Z",
}


def operations() -> list[Operation]:
    """The portal's operations."""
    return [
        Operation(
            "post",
            "/v1/portal/sessions",
            "createPortalSession",
            "Portal",
            "Open a portal session for a customer",
            "Answers a single-use URL, valid 5 minutes, that signs the customer in to the "
            'self-service pages. Call it from your server when the customer clicks "My '
            'account" and redirect the browser to `url`. `return_url` must be on one of the '
            "site's allowed origins.",
            SERVER_KEY,
            {
                201: Reply(
                    "The session's URL.",
                    PortalSession,
                    {
                        "url": "https://ecrm.example/account/enter/3q2-7wEj...",
                        "expires_at": "2026-11-20T10:05:00Z",
                    },
                ),
                400: error(
                    400,
                    "A field is missing or wrong, or `return_url` is not on one of the site's "
                    "allowed origins: `field` names it.",
                    "invalid_request",
                    "body.return_url",
                    "must be on one of the site's allowed origins (https://shop.example)",
                ),
                **SERVER_KEY_ERRORS,
            },
            body=RequestBody(PortalSessionRequest, EXAMPLE_REQUEST),
            samples=(sample("POST", "/v1/portal/sessions", auth="server", body=EXAMPLE_REQUEST),),
        ),
        Operation(
            "get",
            "/v1/customers/{user_id}",
            "getCustomer",
            "Portal",
            "Read a customer's profile and addresses",
            "What the customer keeps in the portal (profile, address book) and how many orders "
            "they placed, so the shop can stay in step with changes made there.",
            SERVER_KEY,
            {
                200: Reply("The customer.", Customer, EXAMPLE_CUSTOMER),
                400: error(
                    400,
                    "The path's user id is not one.",
                    "invalid_request",
                    "user_id",
                    "must be 1-255 characters without control characters",
                ),
                404: error(
                    404,
                    "No customer of the site has this id.",
                    "not_found",
                    "user_id",
                    "no customer 'cust-1001'",
                ),
                **SERVER_KEY_ERRORS,
            },
            path_params=CustomerPath,
            samples=(sample("GET", "/v1/customers/cust-1001", auth="server"),),
        ),
    ]
