"""Report periods: a date range checked once, and the period before it to compare with.

Shared by the console's date range and the report API's ``from``/``to``, so both refuse the same
ranges with the same reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tracking.errors import FieldError

PRESETS = (7, 30, 90)  # days, ending today
MAX_DAYS = 731  # two years, a leap day included


class PeriodError(FieldError):
    """A range that cannot be reported on: ``field`` says which input, ``reason`` why."""


@dataclass(frozen=True)
class Period:
    """Whole UTC days from ``start`` to ``end``, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        end = self.start - timedelta(days=1)
        return Period(end - timedelta(days=self.days - 1), end)

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def utc_today() -> date:
    """Today in UTC: reports count whole UTC days."""
    return datetime.now(UTC).date()


def last_days(days: int, today: date) -> Period:
    """The ``days`` days ending today."""
    return Period(today - timedelta(days=days - 1), today)


def parse_day(text: str | None, field: str) -> date:
    """An ISO date (YYYY-MM-DD) or a PeriodError naming ``field``."""
    if text is None or not str(text).strip():
        raise PeriodError(field, "missing; give a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise PeriodError(field, f"{str(text)[:40]!r} is not a date; use YYYY-MM-DD") from None


def checked(start: date, end: date, today: date, to_field: str = "to") -> Period:
    """The period, or a PeriodError: ``to`` before ``from``, in the future, or over two years."""
    if end < start:
        raise PeriodError(to_field, f"{end.isoformat()} is before the start {start.isoformat()}")
    if end > today + timedelta(days=1):  # a day of slack for time zones ahead of UTC
        raise PeriodError(to_field, f"{end.isoformat()} is in the future (today is {today})")
    if (end - start).days + 1 > MAX_DAYS:
        raise PeriodError(to_field, "the range is longer than two years; choose a shorter one")
    return Period(start, end)


def parse_range(from_text: str | None, to_text: str | None, today: date) -> Period:
    """``from``/``to`` as the report API takes them (both required)."""
    return checked(parse_day(from_text, "from"), parse_day(to_text, "to"), today)
