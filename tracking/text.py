"""Wording shared by every message that shows a count: "1 item", "2 items", "1,200 customers"."""

from __future__ import annotations

# Nouns whose plural is not the singular plus "s".
IRREGULAR = {"entry": "entries", "category": "categories", "match": "matches", "person": "people"}


def plural(count: int | float, noun: str, plural_form: str | None = None) -> str:
    """``count`` and ``noun``, singular for exactly one: plural(1, "item") == "1 item"."""
    if count == 1:
        return f"1 {noun}"
    many = plural_form or IRREGULAR.get(noun) or f"{noun}s"
    # numpy integers and whole floats print as integers too.
    number = f"{int(count):,}" if float(count).is_integer() else f"{count:,g}"
    return f"{number} {many}"
