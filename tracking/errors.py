"""FieldError: the base of every "this input is wrong" error, naming the input and the reason.

InvalidEvent is the collector's own (tracking.events): an event that breaks the schema, with the
HTTP status its rejection carries.

Each package raises its own subclass (InquiryError, PeriodError, InvalidRules, ...) so callers can
catch what they handle; the web layer turns any of them into a 4xx naming ``field``.
"""

from __future__ import annotations


class FieldError(ValueError):
    """An input that cannot be accepted: ``field`` says which, ``reason`` why."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class InvalidEvent(Exception):
    """One event breaks the schema; ``field`` is its path in the request."""

    def __init__(self, field: str, reason: str, status: int = 422):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.status = field, reason, status
