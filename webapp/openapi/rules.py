"""The merchandising rules' operations (secret server key): read all, replace or remove one.

The body model here validates requests too (:mod:`webapp.openapi.parse`); the recommender's
own checks (:meth:`recommender.rules.Rules.from_dict`, :func:`recommender.rule_store.check`)
then refuse what a schema cannot say (a maximum price under the minimum, a campaign ending
before it starts, pins of items the catalogue lacks).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, StringConstraints

from recommender.rule_document import MAX_BOOST, MAX_CAMPAIGNS, MAX_LIST, MAX_PRICE, MAX_TEXT
from webapp.openapi.parts import SERVER_KEY, SERVER_KEY_ERRORS, error, sample
from webapp.openapi.schema import ApiModel
from webapp.openapi.spec import Operation, Reply, RequestBody

TAG = (
    "Merchandising rules per placement, as marketers edit them in the console: filters, price "
    "range, diversity, pinned and boosted items, campaigns with dates. Placement `default` is the "
    "site's default, used by every placement without its own rules. A change reaches every "
    "answer, cached ones included, within seconds, and is written to the audit log."
)
PLACEMENT_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
DATE_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

# Not blank (the document is read stripped) and without NUL.
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT, pattern="^[^\\x00]*[^\\s\\x00][^\\x00]*$"),
]
Texts = Annotated[list[Text], Field(max_length=MAX_LIST)]
Boosts = Annotated[
    dict[Text, Annotated[float, Field(gt=0, le=MAX_BOOST)]],
    Field(max_length=MAX_LIST, description="Item id -> score multiplier (2 doubles its score)."),
]
Day = Annotated[str, StringConstraints(pattern=DATE_PATTERN)]


# JSON types as written (no "5" for 5) and no unknown fields, as Rules.from_dict checks.
STRICT = ConfigDict(strict=True, extra="forbid", regex_engine="python-re", defer_build=True)


class TraitConstraint(ApiModel):
    """Items whose `attribute` is true are shown only to customers whose `trait` is at least
    `minimum` (customers without the trait do not see them)."""

    attribute: Text = Field(examples=["age_restricted"])
    trait: Text = Field(examples=["age"])
    minimum: float = Field(ge=-MAX_PRICE, le=MAX_PRICE, examples=[18])
    model_config = STRICT


class Campaign(ApiModel):
    """Items pinned or boosted from `starts` to `ends` only (UTC days, both included); it pins
    or boosts at least one item."""

    name: str = Field("", max_length=100)
    starts: Day | None = Field(None, description="First day (YYYY-MM-DD); none: running now.")
    ends: Day | None = Field(None, description="Last day, included; not before `starts`.")
    pinned: Texts = Field([], description="Items placed first while it runs, in this order.")
    boosts: Boosts = {}
    model_config = STRICT


class VipVariant(ApiModel):
    """What the placement adds for VIP customers (the VIP flag of the site's newest customer
    value snapshot, by its VIP rule): items pinned before every other pin, and boosts
    multiplied into the placement's own. Other customers never see it; with `only`, they see
    nothing in the placement at all."""

    pinned: Texts = Field([], description="Placed first for VIPs, in this order.")
    boosts: Boosts = {}
    only: bool = Field(
        False,
        description="The VIPs' own placement: anyone else is answered no items "
        "(`source` `vip_only`) and the widget's slot collapses.",
    )
    model_config = STRICT


class RulesDocument(ApiModel):
    """One placement's rules. Every field is optional; absent ones take the defaults shown.
    Categories are prefixes: `Music` covers `Music/Jazz`. Unknown categories and excluded
    items are accepted with a warning; pinned or boosted items must be in the catalogue."""

    exclude_purchased: bool = Field(True, description="Leave out what the customer bought.")
    rebuy_categories: Texts = Field([], description="...except in these (consumables).")
    include_categories: Texts = Field([], description="Only these; empty: every category.")
    exclude_categories: Texts = []
    exclude_items: Texts = []
    min_price: float | None = Field(None, ge=0, le=MAX_PRICE)
    max_price: float | None = Field(None, ge=0, le=MAX_PRICE, description="Not below min_price.")
    max_per_category: int | None = Field(
        None, ge=1, description="At most this many items per top-level category (diversity)."
    )
    pinned: Texts = Field([], description="Items always placed first, in this order.")
    boosts: Boosts = {}
    trait_constraints: list[TraitConstraint] = Field(
        [TraitConstraint(attribute="age_restricted", trait="age", minimum=18)], max_length=20
    )
    campaigns: list[Campaign] = Field([], max_length=MAX_CAMPAIGNS)
    vip: VipVariant | None = Field(
        None, description="The VIP variant; absent: VIPs get the same rules as everyone."
    )
    model_config = STRICT


class PlacementPath(ApiModel):
    """The placement a rules call is about."""

    placement: str = Field(
        pattern=PLACEMENT_PATTERN,
        description="As the widget or the API names it (`placement=`); `default` is the "
        "site's default.",
        examples=["home"],
    )
    reasons: ClassVar[dict[str, str]] = {"placement": "must be 1-64 letters, digits, '-' or '_'"}


class _Change(ApiModel):
    version: int = Field(description="Who changed it last: the site's rules version then.")
    at: str = Field(description="When (UTC, ISO 8601).")
    by: str = Field(description="The staff member's email, or `api`.")


class RuleBook(ApiModel):
    """Every placement's rules of the calling site."""

    version: int = Field(description="The site's rules version; each change adds one.")
    default: RulesDocument
    placements: dict[str, RulesDocument] = Field(description="Placements with their own rules.")
    updated: dict[str, _Change] = Field(description="Per placement with stored rules.")


class RulesWritten(ApiModel):
    success: Literal[True]
    placement: str
    version: int
    rules: RulesDocument = Field(description="As stored (defaults filled in).")
    warnings: list[str] = Field(description="Unknown categories or excluded items, for people.")


class RulesRemoved(ApiModel):
    success: Literal[True]
    placement: str
    version: int


EXAMPLE = {
    "exclude_categories": ["Gift cards"],
    "max_price": 200,
    "max_per_category": 3,
    "pinned": ["sku-0001"],
    "campaigns": [
        {
            "name": "Winter sale",
            "starts": "2026-12-01",
            "ends": "2026-12-24",
            "boosts": {"sku-0001": 1.5},
        }
    ],
}
STORED = {
    "exclude_purchased": True,
    "rebuy_categories": [],
    "include_categories": [],
    "exclude_categories": ["Gift cards"],
    "exclude_items": [],
    "min_price": None,
    "max_price": 200.0,
    "max_per_category": 3,
    "pinned": ["sku-0001"],
    "boosts": {},
    "trait_constraints": [{"attribute": "age_restricted", "trait": "age", "minimum": 18.0}],
    "campaigns": [{**EXAMPLE["campaigns"][0], "pinned": []}],
}
DEFAULTS = {**STORED, "exclude_categories": [], "max_price": None, "max_per_category": None}
DEFAULTS |= {"pinned": [], "campaigns": []}
ONE = "/v1/rules/{placement}"


def operations() -> list[Operation]:
    """The rules' operations."""
    return [
        Operation(
            "get",
            "/v1/rules",
            "getRules",
            "Rules",
            "Read every placement's rules",
            "The site's default rules, each placement's own, and who changed them last.",
            SERVER_KEY,
            {
                200: Reply(
                    "The site's rules.",
                    RuleBook,
                    {
                        "version": 4,
                        "default": DEFAULTS,
                        "placements": {"home": STORED},
                        "updated": {
                            "home": {"version": 4, "at": "2026-11-20T10:00:00Z", "by": "api"}
                        },
                    },
                ),
                **SERVER_KEY_ERRORS,
            },
            samples=(sample("GET", "/v1/rules", auth="server"),),
        ),
        Operation(
            "put",
            ONE,
            "putRules",
            "Rules",
            "Replace one placement's rules",
            "The body is the whole document for the placement (absent fields take their "
            "defaults); `default` replaces the site's default. Answers the rules as stored and "
            "the site's new version.",
            SERVER_KEY,
            {
                200: Reply(
                    "Stored; every process serves them within seconds.",
                    RulesWritten,
                    {
                        "success": True,
                        "placement": "home",
                        "version": 5,
                        "rules": STORED,
                        "warnings": ["exclude_categories: no item is in category 'Gift cards'"],
                    },
                ),
                400: error(
                    400,
                    "The body breaks the schema or the catalogue: `field` is its JSON path.",
                    "invalid_request",
                    "body.campaigns[0].ends",
                    "ends (2026-11-24) before it starts (2026-12-01)",
                ),
                **SERVER_KEY_ERRORS,
            },
            path_params=PlacementPath,
            body=RequestBody(RulesDocument, EXAMPLE),
            samples=(sample("PUT", "/v1/rules/home", auth="server", body=EXAMPLE),),
        ),
        Operation(
            "delete",
            ONE,
            "deleteRules",
            "Rules",
            "Remove one placement's rules",
            "The placement falls back to the site's default; deleting `default` restores the "
            "built-in defaults.",
            SERVER_KEY,
            {
                200: Reply(
                    "Removed.",
                    RulesRemoved,
                    {"success": True, "placement": "home", "version": 6},
                ),
                400: error(
                    400,
                    "The path's placement is not a placement name.",
                    "invalid_request",
                    "placement",
                    "must be 1-64 letters, digits, '-' or '_'",
                ),
                404: error(
                    404,
                    "The placement has no rules of its own.",
                    "not_found",
                    "placement",
                    "placement 'home' has no rules of its own",
                ),
                **SERVER_KEY_ERRORS,
            },
            path_params=PlacementPath,
            samples=(sample("DELETE", "/v1/rules/home", auth="server"),),
        ),
    ]
