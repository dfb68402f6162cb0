"""A time zone's UTC offsets as SQL: what Python's zoneinfo says, spelled for the source server.

The mapping reads a naive DATETIME in a zone (the source's `timezone`, or a `timezone`
transform's `from`) by attaching the zone (the first of two equal wall times; a wall time a
clock change skips is a dead letter), and converts instants to a zone with `astimezone`. The
source server cannot be asked: its time zone tables may be missing or older than Python's.
So the offsets are taken from Python itself: the wall times (or instants) where the zone's
answer changes are found by scanning the zone, each stretch between two of them is asked once,
and the SQL picks the stretch of a value by a binary search of nested IFs. Outside the scanned
years, and in a skipped stretch, the expression is NULL: the row is left to Python.

A zone with a fixed offset (UTC, "+08:00") is one stretch, and its SQL a literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from itertools import accumulate, groupby, repeat
from operator import itemgetter

from syncd.config import fixed_offset

FIRST_YEAR, LAST_YEAR = 1900, 2200
"""The years scanned for clock changes; a zone without any after 2037 holds to year 9999."""
_STEP = timedelta(hours=6)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Offset:
    """A UTC offset as SQL expressions over one datetime value (NULL where it is not known)."""

    seconds: str
    """Offset in seconds (UTC = local - seconds)."""
    text: str
    """As Python prints it after a date-time (`+08:00`, `+08:05:43`)."""


def offset_text(offset: timedelta) -> str:
    """`+08:00` as `str(datetime)` writes an offset (seconds only when there are some)."""
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _literal(offset: timedelta) -> Offset:
    return Offset(str(int(offset.total_seconds())), f"'{offset_text(offset)}'")


def local_offset(zone: tzinfo, wall: str) -> Offset:
    """The offset the mapping gives the naive wall time `wall` (SQL) in `zone`."""
    fixed = fixed_offset(zone)
    if fixed is not None and not fixed:
        return _literal(fixed)
    stretches = ((datetime.min, fixed),) if fixed is not None else _local_stretches(zone)
    return _tree(wall, _in_range(stretches, 1))


def instant_offset(zone: tzinfo, utc: str) -> Offset:
    """The offset of `zone` at the instant whose UTC wall time is `utc` (SQL)."""
    fixed = fixed_offset(zone)
    if fixed is not None and not fixed:
        return _literal(fixed)
    stretches = ((datetime.min, fixed),) if fixed is not None else _instant_stretches(zone)
    return _tree(utc, _in_range(stretches, -1))


Stretch = tuple[datetime, timedelta | None]
"""From this time on (until the next stretch), this offset (None: unknown)."""


def _changes(zone: tzinfo) -> list[datetime]:
    """UTC instants (naive) where the zone's offset changes, within the scanned years: the zone
    is asked every `_STEP`, and each step where its answer changes is bisected. The steps are
    made, asked and grouped by offset in C (itertools): half a million of them cost a second
    of Python otherwise, in every process that copies a table with a zoned column."""
    start, end = datetime(FIRST_YEAR, 1, 1), datetime(LAST_YEAR, 1, 1)
    steps = accumulate(repeat(_STEP, (end - start) // _STEP), initial=start.replace(tzinfo=zone))
    offsets = map(datetime.utcoffset, map(zone.fromutc, steps))
    found: list[datetime] = []
    before: timedelta | None = None
    for _, run in groupby(enumerate(offsets), key=itemgetter(1)):
        first, now = next(run)
        if before is not None:
            at = start + _STEP * first
            found.append(_bisect(zone, at - _STEP, at, before))
        before = now
    return found


def _utcoffset(zone: tzinfo, utc: datetime) -> timedelta:
    offset = utc.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _bisect(zone: tzinfo, low: datetime, high: datetime, before: timedelta) -> datetime:
    """The first second in (low, high] with another offset than `before`."""
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if _utcoffset(zone, middle) == before:
            low = middle
        else:
            high = middle
    return high


def _last_year(changes: list[datetime]) -> datetime:
    if not changes or changes[-1].year <= 2037:
        return datetime(9999, 12, 31, 23, 59, 59, 999999)
    return datetime(LAST_YEAR - 1, 1, 1)


@lru_cache(maxsize=32)
def _local_stretches(zone: tzinfo) -> tuple[Stretch, ...]:
    """Wall times -> the offset the mapping attaches (None in a skipped stretch)."""
    changes = _changes(zone)
    bounds = {datetime(FIRST_YEAR, 1, 2)}
    for change in changes:
        before, after = _utcoffset(zone, change - timedelta(seconds=1)), _utcoffset(zone, change)
        bounds |= {change + before, change + after}
    stretches = [(start, _attached(zone, start)) for start in sorted(bounds)]
    return _merged([(datetime.min, None), *stretches, (_last_year(changes), None)])


def _attached(zone: tzinfo, wall: datetime) -> timedelta | None:
    """What the mapping attaches to this wall time: its offset, or None when it does not exist."""
    aware = wall.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return aware.utcoffset()


@lru_cache(maxsize=32)
def _instant_stretches(zone: tzinfo) -> tuple[Stretch, ...]:
    changes = _changes(zone)
    start = datetime(FIRST_YEAR, 1, 2)
    stretches = [(at, _utcoffset(zone, at)) for at in [start, *changes]]
    return _merged([(datetime.min, None), *stretches, (_last_year(changes), None)])


def _in_range(stretches: tuple[Stretch, ...], sign: int) -> tuple[Stretch, ...]:
    """`stretches` unknown (None) where the other side of the conversion leaves years 1 to 9999:
    the UTC instant of a wall time (`sign` 1: UTC = wall - offset) or the wall time of a UTC
    instant (`sign` -1: wall = UTC + offset). Python refuses such a value, so SQL leaves it to
    Python."""
    ends = [start for start, _ in stretches[1:]] + [None]
    clipped: list[Stretch] = []
    for (start, offset), end in zip(stretches, ends, strict=True):
        if offset is None:
            clipped.append((start, None))
        else:
            clipped += _clipped(start, end, offset, _valid(offset * sign))
    return _merged(clipped)


def _clipped(start: datetime, end: datetime | None, offset: timedelta,
             valid: tuple[datetime, datetime | None]) -> list[Stretch]:
    """The stretch [start, end) of `offset` held to [valid); None for the rest (end None: no end)."""
    first = max(start, valid[0])
    last = valid[1] if end is None else end if valid[1] is None else min(end, valid[1])
    if last is not None and first >= last:
        return [(start, None)]
    kept: list[Stretch] = [(start, None)] if first > start else []
    kept.append((first, offset))
    if last is not None and last != end:
        kept.append((last, None))
    return kept


def _valid(shift: timedelta) -> tuple[datetime, datetime | None]:
    """The values v for which v - shift is in years 1 to 9999: from the first (included) to the
    second (excluded; None: to the end of year 9999)."""
    low = datetime.min + shift if shift > timedelta(0) else datetime.min
    high = datetime.max + shift + _TICK if shift < timedelta(0) else None
    return low, high


def _merged(stretches: list[Stretch]) -> tuple[Stretch, ...]:
    kept: list[Stretch] = []
    for start, offset in stretches:
        if not kept or kept[-1][1] != offset:
            kept.append((start, offset))
    return tuple(kept)


def _tree(value: str, stretches: tuple[Stretch, ...]) -> Offset:
    return Offset(_search(value, stretches, lambda o: str(int(o.total_seconds()))),
                  _search(value, stretches, lambda o: f"'{offset_text(o)}'"))


def _search(value: str, stretches: tuple[Stretch, ...], spell) -> str:
    """Nested IFs: the stretch holding `value`, found in log2(stretches) comparisons."""
    if len(stretches) == 1:
        offset = stretches[0][1]
        return "NULL" if offset is None else spell(offset)
    middle = len(stretches) // 2
    bound = stretches[middle][0].isoformat(" ", "microseconds")  # years before 1000 zero-padded
    return (f"IF({value} < '{bound}', {_search(value, stretches[:middle], spell)}, "
            f"{_search(value, stretches[middle:], spell)})")
