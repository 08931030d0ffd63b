"""The patterns and bounds the event schemas state: what the collector's validator enforces."""

from __future__ import annotations

from datetime import timedelta

from tracking.events import CENT, FIRST_TIME, LAST_TIME, MAX_MONEY

# JSON Schema cannot say "no NUL anywhere" in one keyword: every string and key says it.
NO_NUL = "^[^\\x00]*$"


def _python_whitespace() -> str:
    """What ``str.strip`` removes, as a character-class body both Python and ECMA read alike.

    ECMA's ``\\s`` differs from Python's (U+FEFF is space to one, U+001C..U+001F to the
    other), and the validator's "blank" is Python's: so the class is spelled out.
    """
    spaces = [code for code in range(0x10000) if chr(code).isspace()]  # all in the BMP
    ranges: list[list[int]] = []
    for code in spaces:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}"
        for first, last in ranges
    )


WHITESPACE = _python_whitespace()
# A string with something besides whitespace, and no NUL (ids, names).
NOT_BLANK = f"^[^\\x00]*[^\\x00{WHITESPACE}][^\\x00]*$"
# Python's `$` also matches before a final newline, ECMA's does not: patterns that refuse a
# newline start with this guard, so Python validators (schemathesis) and ECMA ones agree.
NO_NEWLINE = "(?![^\\n]*\\n)"
# Event names: no C0, DEL or C1 control character (tracking.events.CONTROL_CHARACTERS).
_NOT_CONTROL = "[^\\x00-\\x1f\\x7f-\\x9f]"
NO_CONTROL = f"^{NO_NEWLINE}{_NOT_CONTROL}*$"
NAME_TEXT = f"^{NO_NEWLINE}{_NOT_CONTROL}*[^\\x00-\\x1f\\x7f-\\x9f{WHITESPACE}]{_NOT_CONTROL}*$"
# Three ASCII letters (any case: stored upper-cased), or "" for none.
CURRENCY = f"^{NO_NEWLINE}(?:[A-Za-z]{{3}})?$"
# The largest magnitude that rounds (half to even, as tracking.events._cents) below 10^12 cents'
# worth: every number under it is kept, and this one, rounded, is 10^12 and refused.
MONEY_BOUND = float(MAX_MONEY - CENT / 2)
# What the JSON decoder (orjson) reads as an integer; larger integers arrive as floats, and a
# float is not an id.
MIN_INTEGER_ID, MAX_INTEGER_ID = -(2**63), 2**64 - 1
FIRST_YEAR = 2001  # 2000-01-01 with a positive offset is still 1999 in UTC: refused
MAX_TIME_LENGTH = 40
FIRST_DAY, LAST_DAY = (
    FIRST_TIME.date().isoformat(),
    (LAST_TIME.date() - timedelta(days=1)).isoformat(),
)


def time_pattern(last_year: int) -> str:
    """ISO 8601 times from FIRST_YEAR to the end of ``last_year``, in the forms Python parses.

    Days stop at 28 so that every month/day pair exists; the document states the window
    (2000 to 24 hours ahead) in words, the pattern is a subset every such time fits.
    """
    years = "|".join(str(y) for y in range(FIRST_YEAR, max(FIRST_YEAR, last_year) + 1))
    return (
        f"^{NO_NEWLINE}(?:{years})-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
        "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
        "(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])?$"
    )
