"""What a compiled mapping column does to each value besides its transforms, made cheap per row.

A drain maps every row of a backlog through the same few columns, so two things repeat:

* text and whole numbers that come again (statuses, amounts as text, flags, enum labels) go
  through the same transforms and value maps: `memoized` keeps each distinct input's result
  (in a column whose values do come again);
* naive DATETIME values are read in the source time zone, and in a zone with clock changes each
  must be checked to exist: `localizer` checks a wall-clock hour once and remembers it.

Both give exactly what the per-value computation gives (tests/unit/mapping/test_columnvalues.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from syncd.config import fixed_offset
from syncd.errors import TransformError

_combine = datetime.combine

MEMO_SIZE = 256
"""Distinct source values whose mapped value a column keeps (statuses, amounts, flags repeat)."""

_MEMO_INPUTS = (str, int)
_MEMO_RESULTS = frozenset((str, int, bool, float, Decimal, bytes, type(None), date, datetime, time,
                           timedelta))
"""Values that cannot change once made: a kept result is handed to every row that maps to it."""


def memoized(change: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`change`, its results kept per distinct text or whole-number input (every transform and
    value map is a pure function of its value). The first `MEMO_SIZE` distinct inputs are kept;
    a column whose kept inputs came back fewer times than there are of them by then (phones,
    e-mails, ids) lets them go and keeps none from there on, so it holds no memory for nothing
    and pays nothing more per row. Errors are not kept (the next row with that value raises
    again)."""
    kept: dict[Any, Any] = {}
    missing = object()
    hits = 0
    keeping = True

    def run(value: Any) -> Any:
        nonlocal hits, keeping
        if not keeping or value.__class__ not in _MEMO_INPUTS:
            return change(value)
        found = kept.get(value, missing)
        if found is not missing:
            hits += 1
            return found
        found = change(value)
        if found.__class__ in _MEMO_RESULTS:
            if len(kept) < MEMO_SIZE:
                kept[value] = found
            elif hits < len(kept):
                kept.clear()
                keeping = False
        return found

    return run


def localizer(tz: tzinfo) -> Callable[[Any], Any]:
    """A naive datetime read in the source time zone; any other value as it is."""
    if fixed_offset(tz) is not None:  # no daylight-saving gaps: every wall time exists (the common, hot case)
        def fixed(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is None:
                if value.year in _EDGE_YEARS:
                    return _localize_checked(value, tz)
                # what `value.replace(tzinfo=tz)` gives (fold too) in a sixth of the time
                return _combine(value, value.time(), tz)
            return value

        return fixed
    quiet: dict[tuple[int, int, int, int], bool] = {}

    def localize(value: Any) -> Any:
        if not isinstance(value, datetime) or value.tzinfo is not None:
            return value
        hour = (value.year, value.month, value.day, value.hour)
        known = quiet.get(hour)
        if known is None:
            known = _quiet_hour(value, tz)
            if len(quiet) < QUIET_HOURS:
                quiet[hour] = known
        if known:
            return _combine(value, value.time(), tz)
        return _localize_checked(value, tz)

    return localize


_EDGE_YEARS = (1, 9999)
"""Years in which a wall time may lie outside years 1 to 9999 once read as UTC (offsets are under
a day)."""

QUIET_HOURS = 8192
"""Wall-clock hours a zone with clock changes remembers as free of them."""


def _quiet_hour(value: datetime, tz: tzinfo) -> bool:
    """Whether the wall-clock hour of `value` holds no clock change in `tz`: its first and last
    instants exist and have the same offset. (A gap inside the hour would give them different
    offsets; no zone changes its clock twice within one hour.)"""
    first = datetime(value.year, value.month, value.day, value.hour, tzinfo=tz)
    last = first.replace(minute=59, second=59, microsecond=999999)
    try:
        return first.utcoffset() == last.utcoffset() and _exists(first, tz) and _exists(last, tz)
    except (OverflowError, ValueError):
        return False


def _exists(aware: datetime, tz: tzinfo) -> bool:
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == aware.replace(tzinfo=None)


def _localize_checked(value: datetime, tz: tzinfo) -> datetime:
    """`value` in `tz`, refused when a clock change skips it or its instant is not in years 1 to
    9999 (UTC), where no date-time of Python or of a PostgreSQL driver can hold it."""
    aware = value.replace(tzinfo=tz)
    try:
        exists = _exists(aware, tz)
    except OverflowError:
        raise TransformError(f"{value} in the source time zone {tz} is outside years 1 to 9999 "
                             "once read as UTC") from None
    if not exists:
        raise TransformError(f"{value} does not exist in the source time zone {tz} "
                             "(skipped by a daylight-saving change)")
    return aware
