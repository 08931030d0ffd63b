"""The rules page's form: a rules document as form fields and back, errors by form field.

Lists are written comma-separated or one per line; boosts one ``item_id = multiplier`` per line
(the VIP variant's pins and boosts alike, as ``vip_pinned`` and ``vip_boosts``);
trait constraints one ``attribute: trait >= minimum`` per line; campaigns one row each (plus an
empty row to add one). What the form cannot read (a price that is not a number) is an error
beside its field, as is what :meth:`recommender.rules.Rules.from_dict` refuses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from recommender.rule_document import LISTS
from recommender.rules import Rules

CONSTRAINT = re.compile(r"^\s*([^:]+?)\s*:\s*(\S+?)\s*>=\s*(\S+)\s*$")
NUMBERS = ("min_price", "max_price", "max_per_category")


class FormErrors(Exception):
    """The form's values that could not be read: form field name -> reason."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(", ".join(errors))
        self.errors = errors


def split_list(text: str) -> list[str]:
    """Comma-separated or one per line; blanks dropped."""
    return [part.strip() for part in re.split(r"[,\n]", text or "") if part.strip()]


def _number(text: str, field: str, errors: dict[str, str], whole: bool = False) -> Any:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text) if whole else float(text)
    except ValueError:
        errors[field] = "must be a whole number" if whole else "must be a number"
        return None


def _boosts(text: str, field: str, errors: dict[str, str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        item_id, sep, factor = line.rpartition("=")
        try:
            if not sep or not item_id.strip():
                raise ValueError
            found[item_id.strip()] = float(factor)
        except ValueError:
            errors[field] = f"{line.strip()[:60]!r}: write item_id = multiplier, one per line"
            break
    return found


def _constraints(text: str, errors: dict[str, str]) -> list[dict[str, Any]]:
    found = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        match = CONSTRAINT.match(line)
        try:
            if match is None:
                raise ValueError
            found.append({"attribute": match[1], "trait": match[2], "minimum": float(match[3])})
        except ValueError:
            errors["trait_constraints"] = (
                f"{line.strip()[:60]!r}: write attribute: trait >= minimum, one per line"
            )
            break
    return found


def document_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The rules document the form's values describe (raises :class:`FormErrors`)."""
    errors: dict[str, str] = {}
    document: dict[str, Any] = {
        "exclude_purchased": form.get("exclude_purchased") == "on",
        **{name: split_list(form.get(name, "")) for name in LISTS},
        "min_price": _number(form.get("min_price", ""), "min_price", errors),
        "max_price": _number(form.get("max_price", ""), "max_price", errors),
        "max_per_category": _number(
            form.get("max_per_category", ""), "max_per_category", errors, whole=True
        ),
        "boosts": _boosts(form.get("boosts", ""), "boosts", errors),
        "trait_constraints": _constraints(form.get("trait_constraints", ""), errors),
        "campaigns": [],
        "vip": {
            "pinned": split_list(form.get("vip_pinned", "")),
            "boosts": _boosts(form.get("vip_boosts", ""), "vip_boosts", errors),
            "only": form.get("vip_only") == "on",
        },
    }
    try:
        rows = min(int(form.get("campaign_rows", "0")), 50)
    except ValueError:
        rows = 0
    for i in range(rows):
        prefix = f"campaigns-{i}-"
        values = {k: form.get(prefix + k, "").strip() for k in CAMPAIGN_KEYS}
        if not any(values.values()):
            continue  # the empty row for adding one
        document["campaigns"].append(
            {
                "name": values["name"],
                "starts": values["starts"] or None,
                "ends": values["ends"] or None,
                "pinned": split_list(values["pinned"]),
                "boosts": _boosts(values["boosts"], prefix + "boosts", errors),
                "_row": i,
            }
        )
    if errors:
        raise FormErrors(errors)
    return document


CAMPAIGN_KEYS = ("name", "starts", "ends", "pinned", "boosts")


def without_rows(document: dict[str, Any]) -> dict[str, Any]:
    """The document without the form's row numbers (what is parsed and stored)."""
    return {
        **document,
        "campaigns": [{k: v for k, v in c.items() if k != "_row"} for c in document["campaigns"]],
    }


def form_field(path: str, document: dict[str, Any]) -> str:
    """The form field a document path names: ``campaigns[0].ends`` -> ``campaigns-<row>-ends``."""
    match = re.match(r"campaigns\[(\d+)\]\.(\w+)", path)
    if match:
        index, name = int(match[1]), match[2]
        campaigns = document.get("campaigns", [])
        row = campaigns[index].get("_row", index) if index < len(campaigns) else index
        return f"campaigns-{row}-{name}"
    if path.startswith("vip."):  # vip.pinned, vip.boosts.<item>: the VIP variant's fields
        return "vip_" + path.split(".")[1]
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def form_values(rules: Rules) -> dict[str, Any]:
    """The form's text for stored rules (what the fields show)."""
    document = rules.to_dict()

    def number(value):
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    values = {
        "exclude_purchased": document["exclude_purchased"],
        **{name: "\n".join(document[name]) for name in LISTS},
        **{name: number(document[name]) for name in NUMBERS},
        "boosts": "\n".join(f"{k} = {v:g}" for k, v in document["boosts"].items()),
        "trait_constraints": "\n".join(
            f"{c['attribute']}: {c['trait']} >= {c['minimum']:g}"
            for c in document["trait_constraints"]
        ),
        "campaigns": [
            {
                "name": c["name"],
                "starts": c["starts"] or "",
                "ends": c["ends"] or "",
                "pinned": ", ".join(c["pinned"]),
                "boosts": "\n".join(f"{k} = {v:g}" for k, v in c["boosts"].items()),
            }
            for c in document["campaigns"]
        ],
        "vip_pinned": "\n".join(rules.vip.pinned),
        "vip_boosts": "\n".join(f"{k} = {v:g}" for k, v in rules.vip.boosts.items()),
        "vip_only": rules.vip.only,
    }
    return values


def values_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The form's values as sent (shown again beside the errors)."""
    values: dict[str, Any] = {
        name: form.get(name, "")
        for name in (*LISTS, *NUMBERS, "boosts", "trait_constraints", "vip_pinned", "vip_boosts")
    }
    values["exclude_purchased"] = form.get("exclude_purchased") == "on"
    values["vip_only"] = form.get("vip_only") == "on"
    try:
        rows = min(int(form.get("campaign_rows", "0")), 50)
    except ValueError:
        rows = 0
    campaigns = [
        {k: form.get(f"campaigns-{i}-{k}", "") for k in CAMPAIGN_KEYS} for i in range(rows)
    ]
    values["campaigns"] = [c for c in campaigns if any(v.strip() for v in c.values())]
    return values
