"""The rules document a site stores per placement: its limits and the plain checks that read it.

The document is JSON (the API's body, the console's form, the stored row); :func:`parse` turns
it into :class:`~recommender.rules.Rules` or raises
:class:`~recommender.rules.InvalidRules` naming the field by its JSON path. Checks that need
the site's catalogue (do pinned items exist?) are :func:`recommender.rule_store.check`'s.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from recommender.rules import Campaign, InvalidRules, Rules, TraitConstraint, VipRules

MAX_LIST = 500  # ids or categories per list
MAX_TEXT = 255  # an item id, a category, a trait or attribute name
MAX_CAMPAIGNS = 50
MAX_BOOST = 100.0
MAX_PRICE = 1e12
LISTS = (
    "rebuy_categories",
    "include_categories",
    "exclude_categories",
    "exclude_items",
    "pinned",
)
FIELDS = (
    "exclude_purchased",
    *LISTS,
    "min_price",
    "max_price",
    "max_per_category",
    "boosts",
    "trait_constraints",
    "campaigns",
    "vip",
)
VIP_FIELDS = ("pinned", "boosts", "only")
CAMPAIGN_FIELDS = ("name", "starts", "ends", "pinned", "boosts")


def _object(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRules(where or "body", "must be a JSON object")
    for key in value:
        if key not in allowed:
            raise InvalidRules(_join(where, str(key)), "unknown field")
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRules(where, "must be a non-empty string")
    if len(value) > MAX_TEXT or "\x00" in value:
        raise InvalidRules(where, f"must be at most {MAX_TEXT} characters without NUL")
    return value.strip()


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidRules(where, "must be a list of strings")
    if len(value) > MAX_LIST:
        raise InvalidRules(where, f"at most {MAX_LIST} entries")
    found: list[str] = []
    for i, item in enumerate(value):
        text = _text(item, f"{where}[{i}]")
        if text not in found:
            found.append(text)
    return tuple(found)


def _number(value: Any, where: str, low: float, high: float, *, strict_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRules(where, "must be a number")
    if value < low or (strict_low and value == low) or value > high:
        bound = f"more than {low:g}" if strict_low else f"at least {low:g}"
        raise InvalidRules(where, f"must be {bound} and at most {high:g}, got {value:g}")
    return float(value)


def _boosts(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRules(where, "must be an object of item id -> multiplier")
    if len(value) > MAX_LIST:
        raise InvalidRules(where, f"at most {MAX_LIST} items")
    return {
        _text(item_id, where): _number(factor, f"{where}.{item_id}", 0, MAX_BOOST, strict_low=True)
        for item_id, factor in value.items()
    }


def _date(value: Any, where: str) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRules(where, "must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRules(where, f"{value[:40]!r} is not a date, YYYY-MM-DD") from None


def _campaign(value: Any, where: str) -> Campaign:
    raw = _object(value, where, CAMPAIGN_FIELDS)
    name = raw.get("name") or ""
    if not isinstance(name, str) or len(name) > 100 or "\x00" in name:
        raise InvalidRules(f"{where}.name", "must be text of at most 100 characters")
    starts, ends = (
        _date(raw.get("starts"), f"{where}.starts"),
        _date(raw.get("ends"), f"{where}.ends"),
    )
    if starts is not None and ends is not None and ends < starts:
        raise InvalidRules(f"{where}.ends", f"ends ({ends}) before it starts ({starts})")
    campaign = Campaign(
        name.strip(),
        starts,
        ends,
        _texts(raw.get("pinned"), f"{where}.pinned"),
        _boosts(raw.get("boosts"), f"{where}.boosts"),
    )
    if not campaign.pinned and not campaign.boosts:
        raise InvalidRules(f"{where}.pinned", "a campaign pins or boosts at least one item")
    return campaign


def _vip(value: Any, where: str) -> VipRules:
    if value is None:
        return VipRules()
    raw = _object(value, where, VIP_FIELDS)
    only = raw.get("only", False)
    if not isinstance(only, bool):
        raise InvalidRules(f"{where}.only", "must be true or false")
    return VipRules(
        _texts(raw.get("pinned"), f"{where}.pinned"),
        _boosts(raw.get("boosts"), f"{where}.boosts"),
        only,
    )


def _constraint(value: Any, where: str) -> TraitConstraint:
    raw = _object(value, where, ("attribute", "trait", "minimum"))
    for name in ("attribute", "trait", "minimum"):
        if name not in raw:
            raise InvalidRules(f"{where}.{name}", "required")
    return TraitConstraint(
        _text(raw["attribute"], f"{where}.attribute"),
        _text(raw["trait"], f"{where}.trait"),
        _number(raw["minimum"], f"{where}.minimum", -MAX_PRICE, MAX_PRICE),
    )


def parse(document: Any, where: str = "") -> Rules:
    """Rules from a JSON document (see the module docstring); absent fields take defaults."""
    raw = _object(document, where, FIELDS)
    defaults = Rules()
    exclude_purchased = raw.get("exclude_purchased", True)
    if not isinstance(exclude_purchased, bool):
        raise InvalidRules(_join(where, "exclude_purchased"), "must be true or false")
    prices = {}
    for name in ("min_price", "max_price"):
        value = raw.get(name)
        prices[name] = None if value is None else _number(value, _join(where, name), 0, MAX_PRICE)
    if (
        prices["min_price"] is not None
        and prices["max_price"] is not None
        and prices["min_price"] > prices["max_price"]
    ):
        raise InvalidRules(
            _join(where, "max_price"),
            f"below min_price ({prices['max_price']:g} < {prices['min_price']:g})",
        )
    cap = raw.get("max_per_category")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise InvalidRules(_join(where, "max_per_category"), "must be a whole number, at least 1")
    constraints = raw.get("trait_constraints")
    if constraints is None:
        trait_constraints = defaults.trait_constraints
    elif isinstance(constraints, list) and len(constraints) <= 20:
        trait_constraints = tuple(
            _constraint(c, f"{_join(where, 'trait_constraints')}[{i}]")
            for i, c in enumerate(constraints)
        )
    else:
        raise InvalidRules(_join(where, "trait_constraints"), "must be a list of at most 20")
    campaigns = raw.get("campaigns") or []
    if not isinstance(campaigns, list) or len(campaigns) > MAX_CAMPAIGNS:
        raise InvalidRules(_join(where, "campaigns"), f"must be a list of at most {MAX_CAMPAIGNS}")
    lists = {name: _texts(raw.get(name), _join(where, name)) for name in LISTS}
    return Rules(
        exclude_purchased=exclude_purchased,
        min_price=prices["min_price"],
        max_price=prices["max_price"],
        max_per_category=cap,
        boosts=_boosts(raw.get("boosts"), _join(where, "boosts")),
        trait_constraints=trait_constraints,
        campaigns=tuple(
            _campaign(c, f"{_join(where, 'campaigns')}[{i}]") for i, c in enumerate(campaigns)
        ),
        vip=_vip(raw.get("vip"), _join(where, "vip")),
        **lists,
    )


def item_ids(rules: Rules) -> dict[str, list[str]]:
    """Every item id the rules pin or boost, by the field naming it (to check they exist)."""
    found = {"pinned": list(rules.pinned), "boosts": list(rules.boosts)}
    found["vip.pinned"] = list(rules.vip.pinned)
    found["vip.boosts"] = list(rules.vip.boosts)
    for i, campaign in enumerate(rules.campaigns):
        found[f"campaigns[{i}].pinned"] = list(campaign.pinned)
        found[f"campaigns[{i}].boosts"] = list(campaign.boosts)
    return found


def categories(rules: Rules) -> dict[str, tuple[str, ...]]:
    """Every category prefix the rules name, by field (unknown ones earn a warning)."""
    return {
        name: getattr(rules, name)
        for name in ("rebuy_categories", "include_categories", "exclude_categories")
    }
