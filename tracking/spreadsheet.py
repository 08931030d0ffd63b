"""Text cells written to CSV files that marketers open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets (CSV injection, OWASP). Customer ids, addresses and traits
come from browsers, so every exported text cell goes through :func:`safe_cell`, which writes such a
cell with a quote first: the spreadsheet shows it as text and never runs it. A phone number such as
``+82 10-1234-5678`` (digits, spaces, ``+ - ( ) .``) is left as it is: it names no function or
cell, and an SMS tool reading the file needs the plus.
"""

from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_LIKE = re.compile(r"[+-][0-9 ()+.-]*\Z")


def safe_cell(value: object) -> str:
    """``value`` as CSV text that no spreadsheet runs (None is empty)."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not _NUMBER_LIKE.match(text):
        return "'" + text
    return text
