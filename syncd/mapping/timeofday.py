"""A MySQL TIME (a duration) mapped into a PostgreSQL `time` or `timetz` column: the time of day
it names, or a dead letter.

A TIME runs from `-838:59:59` to `838:59:59`; PostgreSQL's `time` holds one day. Written as an
interval (syncd/sink/connection.py `DurationText`), PostgreSQL's own cast keeps the interval's
time modulo 24 hours: `838:59:59.999` was stored as `22:59:59.999`, `-12:00:00.5` as `11:59:59.5`,
by every write path alike, with no error. The mapping therefore makes the time of day itself,
here, for every path (stream, copy, repair, preview): a value from `00:00:00` up to (not
including) `24:00:00` becomes a `datetime.time` with its exact fraction (in UTC for `timetz`);
any other is refused with a reason naming the column and the value as MySQL prints it, so the
row becomes a dead letter. `24:00:00`, which PostgreSQL's `time` could hold, is refused too:
no Python time (and so no reconcile read of the target) can hold it.

`finishing` says which of these last steps (or astext.py's text) a mapped column takes, by the
type of its target column, for syncd/mapping/plan.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.errors import TransformError
from syncd.mapping.astext import as_text

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MIDNIGHT = datetime.min


class TimeOfDay:
    """What is written into the `time` (`timetz` when `zoned`) column `column`: a TIME as its
    time of day (TransformError outside 00:00:00 to 24:00:00, 24:00:00 excluded); any other
    value as it is. A class, so reconcile's column-wise mapping (syncd/reconcile/rowmap.py)
    knows a plain copy into such a column still computes each TIME."""

    def __init__(self, column: str, zoned: bool = False) -> None:
        self.column = column
        self.zoned = zoned

    def __call__(self, value: Any) -> Any:
        if value.__class__ is not timedelta:
            return value
        if not _ZERO <= value < _DAY:
            kind = "timetz" if self.zoned else "time"
            raise TransformError(f"TIME {as_text(value)} is outside 00:00:00 to 23:59:59.999999, "
                                 f"which a PostgreSQL {kind} column holds: map it into an interval "
                                 "column, or fix the value at the source", self.column)
        clock = (_MIDNIGHT + value).time()
        return clock.replace(tzinfo=UTC) if self.zoned else clock


def time_of_day(column: str, zoned: bool = False) -> Callable[[Any], Any]:
    """See `TimeOfDay`."""
    return TimeOfDay(column, zoned)


def finishing(target: str, textual: bool, clock: bool | None) -> Callable[[Any], Any] | None:
    """What a mapped column does last to its value, by the type of its target column: made text
    in a text column (astext.py), a TIME made a time of day in a `time` (`clock` False) or
    `timetz` (True) column, or nothing (None)."""
    if textual:
        return as_text
    return time_of_day(target, clock) if clock is not None else None
