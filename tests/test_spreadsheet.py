"""CSV cells a spreadsheet would run as a formula are written as text."""

from __future__ import annotations

import pytest

from tracking.spreadsheet import safe_cell


@pytest.mark.parametrize(
    "cell",
    [
        '=HYPERLINK("http://evil.example","x")',
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
        "=1+1",
        "+A1",
    ],
)
def test_formulas_are_quoted(cell):
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell", ["+82 10-1234-5678", "-12.5", "+1 (555) 010-0000", "anna@shop.example", "u-1", ""]
)
def test_plain_values_and_phone_numbers_stay(cell):
    assert safe_cell(cell) == cell


def test_none_is_empty():
    assert safe_cell(None) == ""
