"""Columns and values as a MySQL 8.4 row event stores them.

Sources followed: mysql-server ``libs/mysql/binlog/event/rows_event.h`` (Table_map_event:
column types, per-type metadata, the optional metadata TLV fields and their order),
``sql/log_event.cc`` (``Table_map_log_event::init_*_field``), ``sql/field.cc`` (each type's
``pack``: CHAR drops trailing pad characters -- spaces, or 0x00 for BINARY), the reference
manual's "Date and Time Data Type Representation" pages (DATETIME2/TIMESTAMP2/TIME2 and
DATE), ``strings/decimal.cc`` (``decimal2bin``) and ``sql-common/json_binary.cc`` (MySQL's
binary JSON: objects and arrays small or large, keys sorted by length then bytes, literals
and small integers inlined).
"""

from __future__ import annotations

import datetime
import decimal
import json as jsonlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.mysql_double.wire import lenenc_int, lenenc_str

# Column types (include/field_types.h).
T_DECIMAL, T_TINY, T_SHORT, T_LONG, T_FLOAT, T_DOUBLE = 0, 1, 2, 3, 4, 5
T_LONGLONG, T_INT24, T_DATE, T_YEAR, T_VARCHAR, T_BIT = 8, 9, 10, 13, 15, 16
T_TIMESTAMP2, T_DATETIME2, T_TIME2, T_JSON, T_NEWDECIMAL = 17, 18, 19, 245, 246
T_ENUM, T_SET, T_BLOB, T_STRING, T_GEOMETRY = 247, 248, 252, 254, 255

# Optional metadata field types (rows_event.h, Table_map_event::Optional_metadata_field_type).
OM_SIGNEDNESS, OM_DEFAULT_CHARSET, OM_COLUMN_CHARSET, OM_COLUMN_NAME = 1, 2, 3, 4
OM_SET_STR_VALUE, OM_ENUM_STR_VALUE, OM_GEOMETRY_TYPE, OM_SIMPLE_PRIMARY_KEY = 5, 6, 7, 8
OM_PRIMARY_KEY_WITH_PREFIX, OM_ENUM_AND_SET_DEFAULT_CHARSET = 9, 10
OM_ENUM_AND_SET_COLUMN_CHARSET, OM_COLUMN_VISIBILITY = 11, 12

# Collation ids of the character sets tests use: (id, Python codec, bytes per character).
CHARSETS = {
    "utf8mb4": (255, "utf-8", 4),  # utf8mb4_0900_ai_ci, 8.4's default
    "utf8mb4_general_ci": (45, "utf-8", 4),
    "utf8mb3": (33, "utf-8", 3),
    "latin1": (8, "cp1252", 1),  # MySQL's latin1 is cp1252
    "gbk": (28, "gbk", 2),
    "binary": (63, None, 1),
}

_INTEGERS = {"tinyint": (T_TINY, 1), "smallint": (T_SHORT, 2), "mediumint": (T_INT24, 3),
             "int": (T_LONG, 4), "bigint": (T_LONGLONG, 8)}
_BLOBS = {"tinyblob": 1, "blob": 2, "mediumblob": 3, "longblob": 4,
          "tinytext": 1, "text": 2, "mediumtext": 3, "longtext": 4}
_NUMERIC = {T_TINY, T_SHORT, T_INT24, T_LONG, T_LONGLONG, T_NEWDECIMAL, T_FLOAT, T_DOUBLE, T_YEAR}
GEOMETRY_TYPES = {"geometry": 0, "point": 1, "linestring": 2, "polygon": 3, "multipoint": 4,
                  "multilinestring": 5, "multipolygon": 6, "geometrycollection": 7}


@dataclass(frozen=True)
class Col:
    """One column of a table definition, in MySQL's terms.

    ``kind`` is the SQL type name (``int``, ``bigint``, ``decimal``, ``varchar``, ``char``,
    ``binary``, ``varbinary``, ``text``, ``blob``..., ``datetime``, ``timestamp``, ``time``,
    ``date``, ``year``, ``float``, ``double``, ``enum``, ``set``, ``bit``, ``json``,
    ``geometry``/``point``/...); ``length`` is characters (CHAR/VARCHAR), bytes (BINARY/
    VARBINARY) or bits (BIT); ``values`` the ENUM/SET labels; ``prefix`` a primary key prefix
    length in characters (0: the whole column).
    """

    name: str
    kind: str
    length: int = 0
    unsigned: bool = False
    nullable: bool = True
    charset: str = "utf8mb4"
    precision: int = 10
    scale: int = 0
    fsp: int = 0
    values: tuple[str, ...] = ()
    primary: bool = False
    prefix: int = 0
    visible: bool = True

    @property
    def binary(self) -> bool:
        return self.kind in ("binary", "varbinary") or (self.kind in _BLOBS and "blob" in self.kind)

    @property
    def collation(self) -> int:
        return CHARSETS["binary" if self.binary else self.charset][0]

    @property
    def codec(self) -> str | None:
        return None if self.binary else CHARSETS[self.charset][1]

    @property
    def max_bytes(self) -> int:
        return self.length * (1 if self.binary else CHARSETS[self.charset][2])


@dataclass(frozen=True)
class Table:
    """A table as a TABLE_MAP event describes it. ``table_id`` is MySQL's 6-byte table id."""

    schema: str
    name: str
    columns: tuple[Col, ...]
    table_id: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))

    def row_tuple(self, row: dict[str, Any] | Sequence[Any]) -> tuple[Any, ...]:
        if isinstance(row, dict):
            unknown = set(row) - {c.name for c in self.columns}
            if unknown:
                raise KeyError(f"{self.schema}.{self.name} has no column {sorted(unknown)[0]!r}")
            return tuple(row.get(c.name) for c in self.columns)
        if len(row) != len(self.columns):
            raise ValueError(f"{self.schema}.{self.name} has {len(self.columns)} columns, "
                             f"the row has {len(row)} values")
        return tuple(row)


# -- the TABLE_MAP event -------------------------------------------------------------------


def column_type(col: Col) -> int:
    if col.kind in _INTEGERS:
        return _INTEGERS[col.kind][0]
    simple = {"float": T_FLOAT, "double": T_DOUBLE, "decimal": T_NEWDECIMAL, "date": T_DATE,
              "year": T_YEAR, "datetime": T_DATETIME2, "timestamp": T_TIMESTAMP2,
              "time": T_TIME2, "varchar": T_VARCHAR, "varbinary": T_VARCHAR, "bit": T_BIT,
              "json": T_JSON, "char": T_STRING, "binary": T_STRING, "enum": T_STRING,
              "set": T_STRING}
    if col.kind in simple:
        return simple[col.kind]
    if col.kind in _BLOBS:
        return T_BLOB
    if col.kind in GEOMETRY_TYPES:
        return T_GEOMETRY
    raise ValueError(f"column {col.name!r}: type {col.kind!r} is not supported by the double")


def real_type(col: Col) -> int:
    """The type MySQL's metadata code looks at (ENUM and SET are STRING in the type array)."""
    return {"enum": T_ENUM, "set": T_SET}.get(col.kind, column_type(col))


def _enum_set_pack_length(col: Col) -> int:
    if col.kind == "enum":
        return 1 if len(col.values) < 256 else 2
    return (len(col.values) + 7) // 8 if len(col.values) <= 32 else 8


def _string_metadata(col: Col) -> bytes:
    if col.kind in ("enum", "set"):
        return bytes((real_type(col), _enum_set_pack_length(col)))
    size = col.max_bytes  # CHAR: the high bits of a length above 255 hide in the type byte
    return bytes((T_STRING ^ ((size & 0x300) >> 4), size & 0xFF))


_METADATA: dict[int, Callable[[Col], bytes]] = {
    T_FLOAT: lambda c: b"\x04", T_DOUBLE: lambda c: b"\x08",
    T_NEWDECIMAL: lambda c: bytes((c.precision, c.scale)),
    T_TIMESTAMP2: lambda c: bytes((c.fsp,)), T_DATETIME2: lambda c: bytes((c.fsp,)),
    T_TIME2: lambda c: bytes((c.fsp,)), T_VARCHAR: lambda c: struct.pack("<H", c.max_bytes),
    T_BIT: lambda c: bytes((c.length % 8, c.length // 8)), T_BLOB: lambda c: bytes((_BLOBS[c.kind],)),
    T_JSON: lambda c: b"\x04", T_GEOMETRY: lambda c: b"\x04", T_STRING: _string_metadata,
}


def column_metadata(col: Col) -> bytes:
    """The column's bytes in the TABLE_MAP metadata block (none for integers and dates)."""
    metadata = _METADATA.get(column_type(col))
    return metadata(col) if metadata else b""


def _bits(flags: Sequence[bool]) -> bytes:
    """A bitmap with the first item in the most significant bit (optional metadata)."""
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i // 8] |= 0x80 >> (i % 8)
    return bytes(out)


def null_bitmap(flags: Sequence[bool]) -> bytes:
    """A bitmap with the first item in the least significant bit (row events, TABLE_MAP)."""
    out = bytearray((len(flags) + 7) // 8)
    for i, flag in enumerate(flags):
        if flag:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _is_character(col: Col) -> bool:
    return real_type(col) in (T_STRING, T_VARCHAR, T_BLOB)


def _charset_fields(cols: list[Col], default_type: int, column_type_: int) -> bytes:
    """DEFAULT_CHARSET or COLUMN_CHARSET for ``cols``, whichever is shorter, as MySQL chooses."""
    if not cols:
        return b""
    ids = [c.collation for c in cols]
    default = max(set(ids), key=ids.count)
    by_default = lenenc_int(default) + b"".join(
        lenenc_int(i) + lenenc_int(cid) for i, cid in enumerate(ids) if cid != default)
    by_column = b"".join(lenenc_int(cid) for cid in ids)
    if len(by_default) <= len(by_column):
        return _tlv(default_type, by_default)
    return _tlv(column_type_, by_column)


def _tlv(kind: int, value: bytes) -> bytes:
    return bytes((kind,)) + lenenc_int(len(value)) + value


def _labels(col: Col) -> bytes:
    codec = CHARSETS[col.charset][1] or "utf-8"
    return lenenc_int(len(col.values)) + b"".join(lenenc_str(v.encode(codec)) for v in col.values)


def optional_metadata(table: Table, full: bool) -> bytes:
    """The optional metadata TLV fields, in the order Table_map_log_event writes them.

    MINIMAL (binlog_row_metadata's default) carries signedness, charsets and geometry types;
    FULL adds names, ENUM/SET labels, the primary key and column visibility.
    """
    cols = list(table.columns)
    numeric = [c for c in cols if real_type(c) in _NUMERIC]
    out = _tlv(OM_SIGNEDNESS, _bits([c.unsigned for c in numeric])) if numeric else b""
    out += _charset_fields([c for c in cols if _is_character(c)], OM_DEFAULT_CHARSET, OM_COLUMN_CHARSET)
    out += _charset_fields([c for c in cols if real_type(c) in (T_ENUM, T_SET)],
                           OM_ENUM_AND_SET_DEFAULT_CHARSET, OM_ENUM_AND_SET_COLUMN_CHARSET)
    geometry = [c for c in cols if column_type(c) == T_GEOMETRY]
    if geometry:
        out += _tlv(OM_GEOMETRY_TYPE, b"".join(lenenc_int(GEOMETRY_TYPES[c.kind]) for c in geometry))
    if not full:
        return out
    out += _tlv(OM_COLUMN_NAME, b"".join(lenenc_str(c.name.encode()) for c in cols))
    sets = [c for c in cols if c.kind == "set"]
    enums = [c for c in cols if c.kind == "enum"]
    if sets:
        out += _tlv(OM_SET_STR_VALUE, b"".join(_labels(c) for c in sets))
    if enums:
        out += _tlv(OM_ENUM_STR_VALUE, b"".join(_labels(c) for c in enums))
    out += _primary_key(cols)
    if not all(c.visible for c in cols):
        out += _tlv(OM_COLUMN_VISIBILITY, _bits([c.visible for c in cols]))
    return out


def _primary_key(cols: list[Col]) -> bytes:
    keys = [(i, c.prefix) for i, c in enumerate(cols) if c.primary]
    if not keys:
        return b""
    if all(prefix == 0 for _, prefix in keys):
        return _tlv(OM_SIMPLE_PRIMARY_KEY, b"".join(lenenc_int(i) for i, _ in keys))
    return _tlv(OM_PRIMARY_KEY_WITH_PREFIX,
                b"".join(lenenc_int(i) + lenenc_int(prefix) for i, prefix in keys))


def table_map_body(table: Table, full: bool) -> bytes:
    """Post-header and body of a TABLE_MAP_EVENT (flags 1: TM_BIT_LEN_EXACT_F)."""
    cols = table.columns
    metadata = b"".join(column_metadata(c) for c in cols)
    return (table.table_id.to_bytes(6, "little") + struct.pack("<H", 1)
            + bytes((len(table.schema.encode()),)) + table.schema.encode() + b"\0"
            + bytes((len(table.name.encode()),)) + table.name.encode() + b"\0"
            + lenenc_int(len(cols)) + bytes(column_type(c) for c in cols)
            + lenenc_int(len(metadata)) + metadata
            + null_bitmap([c.nullable for c in cols]) + optional_metadata(table, full))


# -- values --------------------------------------------------------------------------------


def encode_value(col: Col, value: Any) -> bytes:
    """The bytes of one non-NULL value in a row image."""
    kind = column_type(col)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        raise ValueError(f"column {col.name!r}: no encoder for type {kind}")
    try:
        return encoder(col, value)
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        raise ValueError(f"column {col.name!r} ({col.kind}): cannot store {value!r}: {exc}") from exc


def _integer(col: Col, value: int) -> bytes:
    size = _INTEGERS[col.kind][1]
    return int(value).to_bytes(size, "little", signed=not col.unsigned)


def _text(col: Col, value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if col.codec is None:
        raise TypeError("binary columns take bytes")
    return value.encode(col.codec)


def _varchar(col: Col, value: str | bytes) -> bytes:
    data = _text(col, value)
    return (bytes((len(data),)) if col.max_bytes <= 255 else struct.pack("<H", len(data))) + data


def _char(col: Col, value: str | bytes) -> bytes:
    if col.kind == "enum":
        index = col.values.index(value) + 1 if value != "" else 0
        return index.to_bytes(_enum_set_pack_length(col), "little")
    if col.kind == "set":
        members = value.split(",") if isinstance(value, str) else list(value)
        mask = sum(1 << col.values.index(m) for m in members if m != "")
        return mask.to_bytes(_enum_set_pack_length(col), "little")
    pad = b"\0" if col.binary else b" "
    data = _text(col, value).rstrip(pad)
    return (bytes((len(data),)) if col.max_bytes <= 255 else struct.pack("<H", len(data))) + data


def _blob(col: Col, value: str | bytes) -> bytes:
    data = _text(col, value)
    return len(data).to_bytes(_BLOBS[col.kind], "little") + data


def _fraction(usec: int, fsp: int) -> bytes:
    if fsp == 0:
        return b""
    size = (fsp + 1) // 2
    return (usec // 10 ** (6 - 2 * size)).to_bytes(size, "big", signed=True)


def _datetime2(col: Col, value: datetime.datetime) -> bytes:
    ymd = ((value.year * 13 + value.month) << 5) | value.day
    hms = (value.hour << 12) | (value.minute << 6) | value.second
    packed = (1 << 39) | (ymd << 17) | hms
    return packed.to_bytes(5, "big") + _fraction(_truncated(value.microsecond, col.fsp), col.fsp)


def _truncated(usec: int, fsp: int) -> int:
    step = 10 ** (6 - fsp)
    return usec // step * step


def _timestamp2(col: Col, value: datetime.datetime) -> bytes:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    seconds = int(value.timestamp()) if value.year > 1970 or value.timestamp() > 0 else 0
    return struct.pack(">I", seconds) + _fraction(_truncated(value.microsecond, col.fsp), col.fsp)


def _time2(col: Col, value: datetime.timedelta) -> bytes:
    """TIME2 (my_time_packed_to_binary): int part and fraction as one signed number."""
    total_us = value.days * 86400_000_000 + value.seconds * 1_000_000 + value.microseconds
    step = 10 ** (6 - col.fsp)
    total_us = int(total_us / step) * step  # MySQL truncates towards zero
    sign = -1 if total_us < 0 else 1
    seconds, usec = divmod(abs(total_us), 1_000_000)
    hours, rest = divmod(seconds, 3600)
    intpart = sign * ((hours << 12) | ((rest // 60) << 6) | (rest % 60))
    frac_units = sign * (usec // 10 ** (6 - 2 * ((col.fsp + 1) // 2))) if col.fsp else 0
    size = (col.fsp + 1) // 2
    if size == 0:
        return (intpart + 0x800000).to_bytes(3, "big")
    if size == 3:
        return ((intpart << 24) + frac_units + 0x800000000000).to_bytes(6, "big")
    if intpart < 0 and frac_units:
        intpart += 1
        frac_units -= 256 ** size
    return (intpart + 0x800000).to_bytes(3, "big") + frac_units.to_bytes(size, "big", signed=True)


def _date(_col: Col, value: datetime.date) -> bytes:
    return (value.day | value.month << 5 | value.year << 9).to_bytes(3, "little")


def _year(_col: Col, value: int) -> bytes:
    return bytes((0 if value == 0 else value - 1900,))


def _bit(col: Col, value: int | bytes) -> bytes:
    size = (col.length + 7) // 8
    return value.rjust(size, b"\0") if isinstance(value, bytes) else int(value).to_bytes(size, "big")


_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def _decimal(col: Col, value: decimal.Decimal | str | int) -> bytes:
    """decimal2bin: 9 digits per 4 bytes, big-endian, negative values inverted, sign bit flipped."""
    number = decimal.Decimal(value)
    negative = number.is_signed() and number != 0
    exponent = decimal.Decimal(1).scaleb(-col.scale)
    digits = format(number.copy_abs().quantize(exponent, rounding=decimal.ROUND_HALF_UP,
                                         context=decimal.Context(prec=100)), "f")
    whole, _, frac = digits.partition(".")
    intg = col.precision - col.scale
    whole = whole.lstrip("0").rjust(intg, "0")
    if len(whole) > intg:
        raise ValueError(f"out of range for DECIMAL({col.precision},{col.scale})")
    fraction = frac.ljust(col.scale, "0")
    out = bytearray(_decimal_part(whole, leading=True) + _decimal_part(fraction, leading=False))
    if negative:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


def _decimal_part(digits: str, leading: bool) -> bytes:
    extra = len(digits) % 9
    groups = [digits[:extra], *_chunks(digits[extra:])] if leading else [
        *_chunks(digits[:len(digits) - extra]), digits[len(digits) - extra:]]
    out = b""
    for group in groups:
        if group:
            size = 4 if len(group) == 9 else _DIG2BYTES[len(group)]
            out += int(group).to_bytes(size, "big")
    return out


def _chunks(digits: str) -> list[str]:
    return [digits[i:i + 9] for i in range(0, len(digits), 9)]


def _float(col: Col, value: float) -> bytes:
    return struct.pack("<f" if col.kind == "float" else "<d", value)


def _json(_col: Col, value: Any) -> bytes:
    data = json_binary(value)
    return struct.pack("<I", len(data)) + data


def _geometry(_col: Col, value: bytes) -> bytes:
    return struct.pack("<I", len(value)) + value


_ENCODERS: dict[int, Callable[[Col, Any], bytes]] = {
    T_TINY: _integer, T_SHORT: _integer, T_INT24: _integer, T_LONG: _integer,
    T_LONGLONG: _integer, T_FLOAT: _float, T_DOUBLE: _float, T_NEWDECIMAL: _decimal,
    T_DATE: _date, T_YEAR: _year, T_DATETIME2: _datetime2, T_TIMESTAMP2: _timestamp2,
    T_TIME2: _time2, T_VARCHAR: _varchar, T_STRING: _char, T_BLOB: _blob, T_BIT: _bit,
    T_JSON: _json, T_GEOMETRY: _geometry,
}


def row_image(table: Table, values: Sequence[Any]) -> bytes:
    """One full row image: the NULL bitmap of all columns, then the non-NULL values."""
    out = bytearray(null_bitmap([v is None for v in values]))
    for col, value in zip(table.columns, values, strict=True):
        if value is not None:
            out += encode_value(col, value)
    return bytes(out)


# -- MySQL binary JSON ---------------------------------------------------------------------

J_SMALL_OBJECT, J_LARGE_OBJECT, J_SMALL_ARRAY, J_LARGE_ARRAY = 0, 1, 2, 3
J_LITERAL, J_INT16, J_UINT16, J_INT32, J_UINT32, J_INT64, J_UINT64 = 4, 5, 6, 7, 8, 9, 10
J_DOUBLE, J_STRING = 11, 12


@dataclass(frozen=True)
class _Encoded:
    type: int
    data: bytes
    inline: int | None = None
    """The value as an inlined entry holds it (literals and small integers), else None."""


def json_binary(value: Any) -> bytes:
    """A JSON document in MySQL's binary format (a str value is first parsed as JSON text)."""
    if isinstance(value, str):
        value = jsonlib.loads(value)
    encoded = _json_value(value)
    return bytes((encoded.type,)) + encoded.data


def _json_value(value: Any) -> _Encoded:
    if value is None or isinstance(value, bool):
        literal = {None: 0, True: 1, False: 2}[value]
        return _Encoded(J_LITERAL, bytes((literal,)), literal)
    if isinstance(value, int):
        return _json_int(value)
    if isinstance(value, float):
        return _Encoded(J_DOUBLE, struct.pack("<d", value))
    if isinstance(value, str):
        raw = value.encode()
        return _Encoded(J_STRING, _json_varlen(len(raw)) + raw)
    if isinstance(value, dict):
        return _json_container(list(value.items()), is_object=True)
    if isinstance(value, list | tuple):
        return _json_container([(None, v) for v in value], is_object=False)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _json_int(value: int) -> _Encoded:
    if -(1 << 15) <= value < 1 << 15:
        return _Encoded(J_INT16, struct.pack("<h", value), value & 0xFFFF)
    if -(1 << 31) <= value < 1 << 31:
        return _Encoded(J_INT32, struct.pack("<i", value), value & 0xFFFFFFFF)
    if -(1 << 63) <= value < 1 << 63:
        return _Encoded(J_INT64, struct.pack("<q", value))
    return _Encoded(J_UINT64, struct.pack("<Q", value))


def _json_varlen(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if not length:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _json_container(items: list[tuple[str | None, Any]], is_object: bool) -> _Encoded:
    if is_object:
        items = sorted(items, key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
    small = _json_layout(items, is_object, large=False)
    if small is not None:
        return _Encoded(J_SMALL_OBJECT if is_object else J_SMALL_ARRAY, small)
    large = _json_layout(items, is_object, large=True)
    if large is None:
        raise ValueError("JSON document too large")
    return _Encoded(J_LARGE_OBJECT if is_object else J_LARGE_ARRAY, large)


def _json_layout(items: list[tuple[str | None, Any]], is_object: bool, large: bool) -> bytes | None:
    """Header (count, size), key entries, value entries, keys, then values; offsets count
    from the start of the header. None when it does not fit the small format's 16 bits."""
    width = 4 if large else 2
    inlinable = {J_LITERAL, J_INT16, J_UINT16, J_INT32, J_UINT32} if large else {J_LITERAL, J_INT16, J_UINT16}
    keys = [k.encode() for k, _ in items] if is_object else []
    header = 2 * width + len(keys) * (width + 2) + len(items) * (1 + width)
    offset = header + sum(len(k) for k in keys)
    key_entries = bytearray()
    position = header
    for key in keys:
        key_entries += position.to_bytes(width, "little") + struct.pack("<H", len(key))
        position += len(key)
    value_entries, value_data = bytearray(), bytearray()
    for _, item in items:
        encoded = _json_value(item)
        if encoded.inline is not None and encoded.type in inlinable:
            value_entries += bytes((encoded.type,)) + encoded.inline.to_bytes(width, "little")
        else:
            value_entries += bytes((encoded.type,)) + _offset(offset + len(value_data), width)
            value_data += encoded.data
    size = offset + len(value_data)
    if size >= 1 << (8 * width):
        return None
    return (len(items).to_bytes(width, "little") + size.to_bytes(width, "little") + key_entries
            + value_entries + b"".join(keys) + value_data)


def _offset(value: int, width: int) -> bytes:
    """An offset, or a placeholder when it overflows (the layout is then dropped as too big)."""
    return value.to_bytes(width, "little") if value < 1 << (8 * width) else b"\xff" * width
