"""The text a mapped value is stored as in a PostgreSQL text column: one rule for every path.

A DATETIME, a number, a boolean or bytes mapped into a `text`/`varchar`/`char` column used to be
stored as whatever the write path made of it: an `INSERT` parameter as PostgreSQL prints its
type (`12:30:45.5`), a COPY as Python prints it (`12:30:45.500000`). The same source row then read
differently depending on how it arrived, and `syncd reconcile` could not tell which was right.
The mapping now turns such a value into text itself, by this rule, so every path writes the
same string and reconcile expects exactly it:

- as PostgreSQL prints the value's own type in a UTC session: a timestamp `2024-05-01
  12:30:45.5` (fraction without trailing zeros), an instant in UTC with `+00`, a date
  `2024-05-01`, a boolean `true`/`false`, bytes `\\x4142`, a DECIMAL with its scale `100.50`,
  floats shortest (`0.1`, `2`, `NaN`, `Infinity`);
- a MySQL TIME (a duration) as MySQL prints it: `-01:02:03.25`, `838:59:59`;
- JSON containers as JSON text; text as it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any


def _fraction(microsecond: int) -> str:
    return f".{microsecond:06d}".rstrip("0") if microsecond else ""


def _datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        return _datetime(value.astimezone(UTC).replace(tzinfo=None)) + "+00"
    return value.isoformat(" ", "seconds") + _fraction(value.microsecond)


def _time(value: time) -> str:
    return value.replace(tzinfo=None).isoformat("seconds") + _fraction(value.microsecond)


def _duration(value: timedelta) -> str:
    micros = abs(value) // timedelta(microseconds=1)
    seconds, microsecond = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    sign = "-" if value < timedelta(0) else ""
    return f"{sign}{hours:02d}:{minute:02d}:{second:02d}{_fraction(microsecond)}"


def _decimal(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "-Infinity" if value < 0 else "Infinity"
    return format(value, "f")


def _float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _bytes(value: bytes | bytearray | memoryview) -> str:
    return "\\x" + bytes(value).hex()


def json_text(value: Any) -> str:
    """A JSON value (an object or array from `json_get`) as JSON text, written like a MySQL JSON
    column is (`{"a": [1, 2.50]}`: exact decimals as written, no ASCII escapes). A text column and
    a `jsonb` one (syncd/sink/connection.py) receive this same text."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_key(k)}: {json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _json_key(key: Any) -> str:
    return json.dumps(key if isinstance(key, str) else str(key), ensure_ascii=False)


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    bool: lambda v: "true" if v else "false", int: str, Decimal: _decimal, float: _float,
    datetime: _datetime, date: date.isoformat, time: _time, timedelta: _duration,
    bytes: _bytes, bytearray: _bytes, memoryview: _bytes, dict: json_text, list: json_text,
}


def as_text(value: Any) -> Any:
    """The text `value` is stored as in a text column; text, NULL and markers (an undecodable
    value) as they are."""
    if value.__class__ is str or value is None:
        return value
    convert = _BY_TYPE.get(type(value))
    if convert is not None:
        return convert(value)
    for kind, found in _BY_TYPE.items():
        if isinstance(value, kind):
            return found(value)
    return value
