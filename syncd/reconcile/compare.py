"""Pure comparison: values as the target stores them, chunk checks and row-by-row diffs.

No I/O here. A target row is represented as `(key, values)`: `key` is the tuple of the
mapping's target key columns, `values` the tuple of its compared columns (the mapped columns
minus the key, the soft-delete column and the commit-time column), both canonical.

Canonical means "what PostgreSQL would store and hand back": a Decimal written into
`numeric(12,2)` is rounded to 2 places, a naive datetime written into `timestamptz` is an
instant in the session's zone, text written into an integer column is parsed, JSON compares
by content. Python's own equality then does the rest: `Decimal('1.10') == Decimal('1.1')`,
aware datetimes compare as instants whatever their zone, a naive and an aware datetime are
never equal. Canonical values are hashable (JSON becomes its sorted text, arrays tuples).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from syncd.model import ColumnType

Canon = Callable[[Any], Any]
Key = tuple[Any, ...]
Values = tuple[Any, ...]

NAN = "NaN"
"""Canonical form of a not-a-number (NaN is not equal to itself, so it would always differ)."""


# --------------------------------------------------------------------------- canonical values


def canonical(value: Any) -> Any:
    """A type-independent canonical form (used where the target type is unknown).

    Decimal by value, aware datetimes as UTC instants, naive ones as they are, bytes-likes as
    bytes, JSON-like containers as sorted JSON text, NaN as one marker.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    for kinds, convert in _CANONICAL:
        if isinstance(value, kinds):
            return convert(value)
    return value


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _canonical_decimal(value: Decimal) -> Any:
    if value.is_nan():
        return NAN
    return value.normalize() if value.is_finite() else value


def _canonical_datetime(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value


_CANONICAL: tuple[tuple[type | tuple[type, ...], Canon], ...] = (
    (Decimal, _canonical_decimal),
    (float, lambda v: NAN if math.isnan(v) else v),
    (datetime, _canonical_datetime),
    ((bytes, bytearray, memoryview), bytes),
    ((dict, list), _json_text),
    (tuple, lambda v: tuple(canonical(x) for x in v)),
    ((set, frozenset), lambda v: tuple(sorted(str(x) for x in v))),
)


def _number(value: Any) -> Decimal | None:
    """A number written as int, Decimal, float or text, as an exact Decimal (None if not one)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    text = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _integer(value: Any) -> Any:
    if isinstance(value, int) or value is None:
        return value
    number = _number(value)
    if number is not None and number.is_finite() and number == number.to_integral_value():
        return int(number)
    return value


def _numeric(scale: int | None) -> Canon:
    exponent = Decimal(1).scaleb(-scale) if scale is not None else None

    def canon(value: Any) -> Any:
        number = value if type(value) is Decimal else _number(value)
        if number is None:
            return value
        if not number.is_finite():
            return NAN if number.is_nan() else number
        if exponent is not None:
            try:
                return number.quantize(exponent, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                return number
        return number

    return canon


def _double(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal | str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and math.isnan(value):
        return NAN
    return value


def _real(value: Any) -> Any:
    value = _double(value)
    if isinstance(value, float) and math.isfinite(value):
        return struct.unpack("f", struct.pack("f", value))[0]
    return value


_PG_TRUE = {"t", "true", "y", "yes", "on", "1"}
_PG_FALSE = {"f", "false", "n", "no", "off", "0"}


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _PG_TRUE:
            return True
        if word in _PG_FALSE:
            return False
    return value


def _text(value: Any) -> Any:
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return str(value)
    return value


def _char(length: int | None) -> Canon:
    def canon(value: Any) -> Any:
        value = _text(value)
        return value.rstrip(" ") if isinstance(value, str) else value

    return canon


def _timestamptz(zone: tzinfo) -> Canon:
    """Naive values written into timestamptz are read in the session's zone."""

    def canon(value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=zone)
        return value

    canon.keeps_aware = True  # type: ignore[attr-defined]
    return canon


def _timestamp(zone: tzinfo) -> Canon:
    """Aware values written into timestamp lose their zone after conversion to the session's."""

    def canon(value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(zone).replace(tzinfo=None)
        return value

    return canon


def _date(zone: tzinfo) -> Canon:
    def canon(value: Any) -> Any:
        if isinstance(value, datetime):
            return (value.astimezone(zone) if value.tzinfo is not None else value).date()
        return value

    return canon


def _time_of_day(value: Any) -> Any:
    """A TIME (a duration) written into `time`: the time of day it names, as PostgreSQL reads it
    back (a value outside 0-24 h is refused at the write, so it is left to differ)."""
    if isinstance(value, timedelta) and timedelta(0) <= value < _DAY:
        return (datetime.min + value).time()
    return value


_DAY = timedelta(days=1)


def _json(value: Any) -> Any:
    """JSON by what it says: text (how the target is read, and a mapped value is written) parsed,
    then written one way: keys sorted (the last of repeated keys kept, as jsonb keeps it), numbers
    by value (`1e2` is `100`, `1.0` is `1`, as jsonb compares them), a JSON string quoted, so that
    it never equals other JSON or SQL NULL (which stays None)."""
    if isinstance(value, str):
        try:
            return _json_text_written(value)
        except ValueError:
            return value
    if isinstance(value, dict | list | int | float | bool):
        return _json_written(value)
    return value


_NUMBER = "\x00number:"
_NUMBER_WRITTEN = re.compile(r'"\\u0000number:([^"]*)"')


def _json_text_written(text: str) -> str:
    """`_json_written(json.loads(text))`, written by the C encoder (about five times faster):
    integers are parsed and written by the C code, other numbers are parsed into marked strings
    holding their written form, then unquoted. A text that could hold such a string itself (an
    escaped NUL) is written the slow way."""
    if "\\u0000" in text:
        return _json_written(json.loads(text, parse_float=Decimal))
    written = _ENCODER.encode(_DECODER.decode(text))
    return _NUMBER_WRITTEN.sub(r"\1", written) if "\\u0000number:" in written else written


@functools.lru_cache(maxsize=4096)
def _number_marked(text: str) -> str:
    return _NUMBER + _json_number(Decimal(text))


_DECODER = json.JSONDecoder(parse_float=_number_marked)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_written(value: Any) -> str:
    if isinstance(value, dict):
        items = sorted((str(k), _json_written(v)) for k, v in value.items())
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{v}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_written(v) for v in value) + "]"
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return _json_number(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _json_number(value: int | float | Decimal) -> str:
    """A number by its value: a whole one as its integer digits (`100`, as the C encoder writes a
    parsed `100`, for `1e2` and `100.0` too), any other normalized (`1.5` for `1.50`)."""
    if isinstance(value, int):
        return str(value)
    number = Decimal(repr(value)) if isinstance(value, float) else value
    if not number.is_finite():
        return str(number)
    if number == number.to_integral_value() and number.adjusted() < _WHOLE_DIGITS:
        return str(int(number))
    return str(number.normalize())


_WHOLE_DIGITS = 4000
"""Whole numbers up to this many digits are written as integers (Python refuses to print longer
ones: sys.int_info.default_max_str_digits)."""


def _bytea(value: Any) -> Any:
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


def _inet(value: Any) -> Any:
    """An address, with its netmask (psycopg reads an `inet` as an address object, one with a
    netmask as an interface; a mapped value is text)."""
    try:
        return ipaddress.ip_interface(str(value))
    except ValueError:
        return value


def _uuid(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


def _array(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_array(v) for v in value)
    return canonical(value)


_INTEGER_TYPES = {"smallint", "integer", "bigint"}
_TEXT_TYPES = {"text", "character varying", "citext", "name"}
_AS_IS = {"timestamp with time zone", "timestamp without time zone", "date", "time without time zone",
          "uuid", "boolean",
          "numeric", *_INTEGER_TYPES, *_TEXT_TYPES}

# Canonical forms that depend on nothing but the type name.
_EXPECTED: dict[str, Canon] = {
    **dict.fromkeys(_INTEGER_TYPES, _integer), **dict.fromkeys(_TEXT_TYPES, _text),
    "double precision": _double, "real": _real, "boolean": _boolean, "json": _json, "jsonb": _json,
    "bytea": _bytea, "uuid": _uuid, "ARRAY": _array, "inet": _inet, "cidr": _inet,
    "time without time zone": _time_of_day,
}
_STORED: dict[str, Canon] = {
    "json": _json, "jsonb": _json, "double precision": _double, "real": _real, "bytea": _bytea,
    "ARRAY": _array, "inet": _inet, "cidr": _inet,
}
"""A `real` is read back as the double nearest to its shortest text: its single-precision value
again (psycopg gives 1.23457 for the float4 1.2345699…)."""
_ZONED: dict[str, Callable[[tzinfo], Canon]] = {
    "timestamp with time zone": _timestamptz, "timestamp without time zone": _timestamp, "date": _date,
}


def expected_canon(column: ColumnType, zone: tzinfo = UTC) -> Canon:
    """How a mapped value is stored in this target column (the session reads naive times in `zone`)."""
    kind = column.data_type
    if kind == "numeric":
        return _numeric(column.numeric_scale)
    if kind == "character":
        return _char(column.char_length)
    if kind in _ZONED:
        return _ZONED[kind](zone)
    return _EXPECTED.get(kind, canonical)


def stored_canon(column: ColumnType) -> Canon | None:
    """How a value read back from this target column is made canonical; None: as read."""
    kind = column.data_type
    if kind == "character":
        return _char(column.char_length)
    if kind in _STORED:
        return _STORED[kind]
    return None if kind in _AS_IS else canonical


_KEEP: dict[Canon, tuple[type, ...]] = {
    _integer: (int,), _text: (str,), _double: (float,), _real: (), _boolean: (bool,), _bytea: (bytes,),
    _uuid: (uuid.UUID,),
}
"""Per canonical form: value types it returns unchanged (skipped without a call, for speed)."""


def canonicalize_rows(rows: list[tuple[Any, ...]], canons: Sequence[Canon | None]) -> list[tuple[Any, ...]]:
    """Apply per-column canonical forms column-wise (columns without one are left alone)."""
    if not rows or all(c is None for c in canons):
        return rows
    columns = list(zip(*rows, strict=True))
    for index, canon in enumerate(canons):
        if canon is None:
            continue
        keep = _KEEP.get(canon, ())
        if getattr(canon, "keeps_aware", False):
            columns[index] = tuple([v if v is None or (type(v) is datetime and v.tzinfo is not None)
                                    else canon(v) for v in columns[index]])
        elif len(keep) == 1:
            kept = keep[0]
            columns[index] = tuple([v if v is None or type(v) is kept else canon(v) for v in columns[index]])
        else:
            columns[index] = tuple([None if v is None else canon(v) for v in columns[index]])
    return list(zip(*columns, strict=True))


# --------------------------------------------------------------------------- chunk checks


@dataclass
class ChunkDiff:
    """Differences found in one chunk, by target key."""

    missing: list[Key] = field(default_factory=list)
    """Expected rows the target lacks (or holds soft-deleted)."""
    extra: list[Key] = field(default_factory=list)
    """Target rows in the slice that the source, through the mapping, does not produce."""
    differ: list[tuple[Key, tuple[str, ...]]] = field(default_factory=list)
    """Rows present on both sides with different values: key and differing column names."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.differ)

    def all_keys(self) -> list[Key]:
        return [*self.missing, *self.extra, *(k for k, _ in self.differ)]


def compare_chunk(expected: Mapping[Key, Values], actual: Mapping[Key, Values],
                  columns: Sequence[str], ignore: Iterable[Key] = ()) -> ChunkDiff:
    """Classify the differences between what the target should hold and what it holds.

    The whole chunk is checked first with one exact comparison of the two row sets (done in C);
    only a chunk that differs is walked row by row. `ignore`: target keys whose expected row is
    unknown (its source row cannot be mapped), neither missing nor extra.
    """
    if expected == actual:
        return ChunkDiff()
    ignored = set(ignore)
    diff = ChunkDiff()
    for key, values in expected.items():
        if key not in actual:
            diff.missing.append(key)
        elif actual[key] != values:
            diff.differ.append((key, differing_columns(values, actual[key], columns)))
    diff.extra = [key for key in actual if key not in expected and key not in ignored]
    return diff


def differing_columns(expected: Values, actual: Values, columns: Sequence[str]) -> tuple[str, ...]:
    if len(actual) != len(expected):
        return tuple(columns)
    return tuple(name for name, want, have in zip(columns, expected, actual, strict=True)
                 if want != have)


def key_text(key: Sequence[Any]) -> str:
    """A key as short text for reports: `42`, `shop,42`."""
    return ",".join(_plain(v) for v in key)


def _plain(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
