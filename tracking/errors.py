"""FieldError: the base of every "this input is wrong" error, naming the input and the reason.

Each package raises its own subclass (InquiryError, PeriodError, InvalidRules, ...) so callers can
catch what they handle; the web layer turns any of them into a 4xx naming ``field``.
"""

from __future__ import annotations


class FieldError(ValueError):
    """An input that cannot be accepted: ``field`` says which, ``reason`` why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason
