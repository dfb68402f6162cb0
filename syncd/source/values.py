"""One value, one form: binlog rows and SELECT rows normalised to the same Python values.

The binlog library and PyMySQL disagree on several types (measured on MariaDB 10.11):

| type | binlog library | SELECT (PyMySQL) | syncd |
|---|---|---|---|
| FLOAT | single precision widened (1.2345677614…) | as MySQL prints it (1.23457) | as MySQL prints it |
| FLOAT(M,D), DOUBLE(M,D) | the stored number (D: not in TABLE_MAP) | D decimals (30.12346) | D decimals |
| BIT(n) | text of 0s and 1s | bytes | int |
| YEAR 0000 | 1900 | 0 | None (zero date) |
| TIMESTAMP 0 | 1970-01-01 | '0000-00-00 00:00:00' | None (zero date) |
| zero/partial DATE, DATETIME | None | text | None (zero date) |
| BINARY(n) | trailing NULs stripped (all NULs: `''`) | padded | padded |
| VARBINARY, BLOB | bytes (empty: `''`) | bytes | bytes |
| SET | Python set | 'a,c' | 'a,c' (definition order) |
| JSON (MySQL) | parsed (bytes strings, null as None) | text | text (binlog.py reads it) |
| GEOMETRY | SRID + WKB | SRID + WKB | WKB |
| UUID, INET4, INET6 (MariaDB) | BINARY(16/4/16) bytes | text | text (as the server prints it) |
| TIMESTAMP | naive UTC | naive in session zone (UTC) | aware UTC |
| old-format TIME | unsigned (negative: wrong) | timedelta | timedelta (binlog.py reads it) |

Zero dates become None; the converter reports which columns it nulled, so the caller can warn.
What the binlog does not say about a column (the D of FLOAT(M,D), a MariaDB UUID/INET type, an
old-format temporal column's fraction) comes from its definition in information_schema
(syncd/source/definitions.py); `needs_definition` says which columns need one, `unreadable`
which ones cannot be read at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from syncd.source.definitions import ColumnDefinition

Convert = Callable[[Any], Any]

ZERO_DATE = object()
"""Returned by a converter for a zero date; the caller stores None and records a warning."""

_EPOCH = datetime(1970, 1, 1)

# MySQL column type codes (same numbers in the binlog and the client protocol).
DECIMAL, FLOAT, DOUBLE, TIMESTAMP, DATE, TIME, DATETIME, YEAR, NEWDATE = 0, 4, 5, 7, 10, 11, 12, 13, 14
VARCHAR = 15
BIT, TIMESTAMP2, DATETIME2, JSON, SET, BLOB, STRING, GEOMETRY = 16, 17, 18, 245, 248, 252, 254, 255
_OLD_TEMPORAL = (TIME, DATETIME, TIMESTAMP)
"""Type codes of TIME, DATETIME and TIMESTAMP in the format from before MySQL 5.6.4 / MariaDB 10.1."""
_DEFINED = (FLOAT, DOUBLE, *_OLD_TEMPORAL)

FLOAT_DIGITS = 6
"""Significant digits MySQL and MariaDB print of a FLOAT declared without D (FLT_DIG)."""


def float_as_printed(decimals: int | None) -> Convert:
    """A FLOAT or DOUBLE as the server prints it (`SELECT col`, `CAST(col AS CHAR)`), as the value
    of that text: with its D decimals when declared (M,D), else a FLOAT with 6 significant digits.

    The server rounds a value to D decimals when it stores it, but the stored binary number need
    not be the one nearest to that decimal (DOUBLE(10,2) -0.05 is stored as
    -0.050000000000000044; FLOAT(35,5) 30.12346 as 30.1234607696…); printed with D decimals it is.
    Printing the same number here (correctly rounded, as the server's dtoa) gives the same text.
    """
    spec = f".{FLOAT_DIGITS}g" if decimals is None else f".{decimals}f"

    def convert(value: Any) -> Any:
        return float(format(value, spec)) if isinstance(value, float) else value

    return convert


def bit_from_text(value: Any) -> Any:
    return int(value, 2) if isinstance(value, str) else value


def bit_from_bytes(value: Any) -> Any:
    return int.from_bytes(value, "big") if isinstance(value, bytes | bytearray) else value


def timestamp_from_binlog(value: Any) -> Any:
    """The library returns naive UTC, and 1970-01-01 00:00:00 for a zero TIMESTAMP."""
    if isinstance(value, datetime):
        return ZERO_DATE if value == _EPOCH else value.replace(tzinfo=UTC)
    return value


def timestamp_from_select(value: Any) -> Any:
    """SELECT runs with time_zone '+00:00'; a zero TIMESTAMP comes back as text."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return ZERO_DATE if isinstance(value, str) else value


def date_from_select(value: Any) -> Any:
    """PyMySQL returns text for zero and partial-zero dates it cannot parse."""
    return ZERO_DATE if isinstance(value, str) else value


def year_from_binlog(value: Any) -> Any:
    return ZERO_DATE if value == 1900 else value  # 1900 is not a YEAR value: it is 0000 + 1900


def year_from_select(value: Any) -> Any:
    return ZERO_DATE if value == 0 else value


def geometry(value: Any) -> Any:
    """MySQL's internal form is a 4-byte SRID followed by WKB; keep the standard WKB."""
    return bytes(value[4:]) if isinstance(value, bytes | bytearray) else value


def binary_padder(length: int) -> Convert:
    """BINARY(n): the binlog stores the value without its trailing zero bytes (all of them for
    a value of n zero bytes, which the library reads as ``''``); MySQL holds it padded to n."""

    def pad(value: Any) -> Any:
        if value == "":
            return bytes(length)
        if isinstance(value, bytes) and len(value) < length:
            return value.ljust(length, b"\x00")
        return value

    return pad


def uuid_text(value: bytes) -> str:
    """MariaDB's UUID as it prints it. The binlog carries the value in text order (MariaDB swaps
    the segments of version 1-5 UUIDs in its records, not in the binlog)."""
    return str(uuid.UUID(bytes=value))


def inet4_text(value: bytes) -> str:
    return ".".join(str(byte) for byte in value)


def inet6_text(value: bytes) -> str:
    """MariaDB's INET6 as it prints it (plugin/type_inet, Inet6::to_string): lower-case hex words
    without leading zeros; the longest run of zero words (the first of equal ones, even a single
    word) written `::`; an IPv4-compatible (`::1.2.3.4`) or IPv4-mapped (`::ffff:1.2.3.4`) address
    with its last 32 bits dotted. Python's ipaddress differs on all three."""
    words = [int.from_bytes(value[i:i + 2], "big") for i in range(0, 16, 2)]
    start, length = _longest_zero_run(words)
    if start == 0 and (length == 6 or (length == 5 and words[5] == 0xFFFF)):
        return ("::ffff:" if length == 5 else "::") + inet4_text(value[12:])
    if length == 0:
        return ":".join(f"{w:x}" for w in words)
    head = ":".join(f"{w:x}" for w in words[:start])
    tail = ":".join(f"{w:x}" for w in words[start + length:])
    return f"{head}::{tail}"


def _longest_zero_run(words: list[int]) -> tuple[int, int]:
    best = (0, 0)
    start = None
    for index, word in enumerate([*words, 1]):
        if word == 0 and start is None:
            start = index
        elif word != 0 and start is not None:
            if index - start > best[1]:
                best = (start, index - start)
            start = None
    return best


_PRINTED_BINARY: dict[str, Callable[[bytes], str]] = {
    "uuid": uuid_text, "inet4": inet4_text, "inet6": inet6_text}
"""MariaDB's types stored as BINARY(n), by information_schema DATA_TYPE: the text a SELECT reads."""


def _printed_binary(pad: Convert, text: Callable[[bytes], str]) -> Convert:
    def convert(value: Any) -> Any:
        padded = pad(value)
        return text(padded) if isinstance(padded, bytes) else padded

    return convert


def binary_bytes(value: Any) -> Any:
    """VARBINARY and BLOB: the library reads an empty value as ``''``; it is empty bytes."""
    return b"" if value == "" else value


def set_joiner(labels: list[str]) -> Convert:
    def join(value: Any) -> Any:
        if isinstance(value, set | frozenset):
            return ",".join(label for label in labels if label in value)
        return value

    return join


def json_document(value: Any) -> str:
    """MySQL's binary JSON, as the library parses it, written as JSON text.

    Whatever the document is at the top: an object or array (with bytes keys and strings), a
    string (bytes), a number, true, false, or null (None: syncd/source/binlog.py reads the
    document itself, so that the literal null is not taken for SQL NULL). DECIMAL values stay
    numbers; dates and times inside a document are strings.
    """
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_string(k)}: {json_document(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(json_document(v) for v in value) + "]"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float | Decimal):
        return str(value) if isinstance(value, Decimal) else json.dumps(value)
    return _json_string(value)


def _json_string(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def needs_definition(column: Any) -> bool:
    """Whether `binlog_converter` needs this column's definition from information_schema: the D
    of a FLOAT/DOUBLE, whether a BINARY(n) is one of MariaDB's UUID, INET4, INET6, and whether an
    old-format temporal column has fractional seconds (`unreadable`)."""
    return column.type in _DEFINED or (column.type == STRING and _is_binary(column))


def unreadable(column: Any, definition: ColumnDefinition | None) -> str | None:
    """Why the binlog's values of this column cannot be read exactly, or None.

    A TIME, DATETIME or TIMESTAMP with fractional seconds in MariaDB's format from before 10.1
    (tables created by MariaDB 5.3-10.0, or with mysql56_temporal_format=OFF) is logged with
    the old type codes and without its length: the row cannot be read past it.
    """
    if column.type in _OLD_TEMPORAL and definition is not None and definition.fraction:
        kind = definition.data_type.upper()
        return (f"{kind}({definition.fraction}) is stored in MariaDB's format from before 10.1, whose "
                f"binlog values cannot be read; rebuild the table in the current format "
                f"(SET GLOBAL mysql56_temporal_format = ON, then ALTER TABLE ... FORCE)")
    return None



def binlog_converter(column: Any, definition: ColumnDefinition | None = None) -> Convert | None:
    """The converter for one binlog column (a library Column), or None when none is needed.

    `definition`: the column's, for a column that `needs_definition` (None: unknown).
    """
    kind = column.type
    scale = definition.scale if definition is not None else None
    if kind == FLOAT or (kind == DOUBLE and scale is not None):
        return float_as_printed(scale)  # a DOUBLE without D: the shortest text of the number
    simple: dict[int, Convert] = {
        BIT: bit_from_text, TIMESTAMP: timestamp_from_binlog,
        TIMESTAMP2: timestamp_from_binlog, YEAR: year_from_binlog, GEOMETRY: geometry,
    }
    if kind in simple:
        return simple[kind]
    if kind == SET:
        return set_joiner(list(column.set_values or []))
    if _is_binary(column):
        if kind == STRING:
            pad = binary_padder(int(column.max_length))
            text = _PRINTED_BINARY.get(definition.data_type) if definition is not None else None
            return pad if text is None else _printed_binary(pad, text)
        if kind in (VARCHAR, BLOB):
            return binary_bytes
    return None


def _is_binary(column: Any) -> bool:
    return getattr(column, "character_set_name", None) == "binary"


def select_converter(type_code: int) -> Convert | None:
    """The converter for one SELECT result column (by its type code), or None.

    A FLOAT needs none: PyMySQL reads the text the server printed.
    """
    return {
        BIT: bit_from_bytes, TIMESTAMP: timestamp_from_select,
        DATE: date_from_select, NEWDATE: date_from_select, DATETIME: date_from_select,
        YEAR: year_from_select, GEOMETRY: geometry,
    }.get(type_code)


def apply_converters(row: dict[str, Any], converters: list[tuple[str, Convert]]) -> tuple[str, ...]:
    """Convert in place; returns the columns whose zero date became None."""
    nulled: list[str] = []
    for name, convert in converters:
        value = row.get(name)
        if value is None:
            continue
        converted = convert(value)
        if converted is ZERO_DATE:
            row[name] = None
            nulled.append(name)
        else:
            row[name] = converted
    return tuple(nulled)


def time_from_binary(data: bytes) -> timedelta:
    """Decode an old-format TIME (no fraction): a signed 3-byte little-endian ±HHMMSS."""
    packed = int.from_bytes(data[:3], "little", signed=True)
    magnitude = abs(packed)
    value = timedelta(hours=magnitude // 10000, minutes=magnitude // 100 % 100, seconds=magnitude % 100)
    return -value if packed < 0 else value


def read_time2_exact(event: Any, column: Any) -> timedelta:
    """The library's TIME2 reader as syncd installs it (binlog.py): the library decodes negative
    TIME values with fractions wrongly; this reads them exactly. The C row decoder reads TIME
    columns only while this is the reader in force (syncd/source/fastpath.py)."""
    return time2_from_binary(event.packet.read(3 + (column.fsp + 1) // 2), column.fsp)


def time2_from_binary(data: bytes, fsp: int) -> timedelta:
    """Decode MySQL's TIME2 storage exactly, negative values with fractions included.

    The integer part (3 bytes) and the fraction (0-3 bytes) form one big-endian number with
    an offset; a negative value borrows from the integer part, so both must be read together.
    """
    frac_bytes = (fsp + 1) // 2
    intpart = int.from_bytes(data[:3], "big") - 0x800000
    if frac_bytes == 0:
        packed = intpart << 24
    elif frac_bytes == 3:
        packed = int.from_bytes(data[:6], "big") - 0x800000000000
    else:
        frac = int.from_bytes(data[3:3 + frac_bytes], "big")
        if intpart < 0 and frac:
            intpart += 1
            frac -= 1 << (8 * frac_bytes)
        packed = (intpart << 24) + frac * (10000 if frac_bytes == 1 else 100)
    negative = packed < 0
    packed = abs(packed)
    hms, micros = packed >> 24, packed % (1 << 24)
    value = timedelta(hours=(hms >> 12) % (1 << 10), minutes=(hms >> 6) % (1 << 6),
                      seconds=hms % (1 << 6), microseconds=micros)
    return -value if negative else value
