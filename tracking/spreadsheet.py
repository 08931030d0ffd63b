"""Text cells written to CSV files that marketers open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets (CSV injection, OWASP). Customer ids, addresses and traits
come from browsers, so every exported text cell goes through :func:`safe_cell`, which writes such a
cell with a quote first: the spreadsheet shows it as text and never runs it.
"""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """``value`` as CSV text that no spreadsheet runs (None is empty)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
