"""Durations of durable steps: a number of seconds, a ``datetime.timedelta`` or a text such as
``"10 seconds"``, ``"1.5 minutes"``, ``"26 hours"`` (units millisecond, second, minute, hour, day,
week, month = 30 days, year = 365 days; singular or plural)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from ..exceptions import StepConfigError

__all__ = ["Duration", "to_epoch_ms", "to_ms"]

Duration = float | int | str | timedelta

_UNITS_MS = {
    "millisecond": 1,
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 7 * 86_400_000,
    "month": 30 * 86_400_000,
    "year": 365 * 86_400_000,
}
_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(millisecond|second|minute|hour|day|week|month|year)s?\s*$")


def to_ms(value: Duration, what: str) -> int:
    """``value`` in whole milliseconds; ``what`` names it in the error."""
    if isinstance(value, bool):
        raise StepConfigError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, timedelta):
        ms = value.total_seconds() * 1000
    elif isinstance(value, (int, float)):
        ms = float(value) * 1000
    elif isinstance(value, str):
        match = _TEXT.match(value)
        if match is None:
            raise StepConfigError(
                f"{what}: {value!r} is not a duration (use seconds, a timedelta or text like '10 seconds')"
            )
        ms = float(match.group(1)) * _UNITS_MS[match.group(2)]
    else:
        raise StepConfigError(f"{what}: expected a duration, got {type(value).__name__}")
    if not math.isfinite(ms) or ms < 0:
        raise StepConfigError(f"{what}: a duration must be finite and not negative, got {value!r}")
    return round(ms)


def to_epoch_ms(when: datetime | float | int, what: str) -> int:
    """A point in time as milliseconds since the epoch: an aware ``datetime`` (a naive one is
    taken as UTC) or a number of seconds since the epoch."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return round(when.timestamp() * 1000)
    if isinstance(when, (int, float)) and not isinstance(when, bool) and math.isfinite(when):
        return round(float(when) * 1000)
    raise StepConfigError(f"{what}: expected a datetime or epoch seconds, got {when!r}")
