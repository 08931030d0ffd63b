"""Wording shared by messages: counts with nouns."""

from __future__ import annotations

import numpy as np
import pytest

from tracking.text import plural


@pytest.mark.parametrize(
    ("count", "noun", "expected"),
    [
        (1, "item", "1 item"),
        (0, "item", "0 items"),
        (2, "customer", "2 customers"),
        (1200, "interaction", "1,200 interactions"),
        (np.int64(1), "customer", "1 customer"),
        (2.0, "day", "2 days"),
        (0.5, "day", "0.5 days"),
        (3, "entry", "3 entries"),
    ],
)
def test_counts_read_as_english(count, noun, expected):
    assert plural(count, noun) == expected
