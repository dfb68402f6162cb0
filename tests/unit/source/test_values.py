"""The value normal form (syncd/source/values.py): binlog values made what a SELECT reads."""

from __future__ import annotations

import json
import struct
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymysqlreplication.packet import BinLogPacketWrapper

from syncd.source import binlog, fastpath
from syncd.source.definitions import ColumnDefinition
from syncd.source.values import (
    BLOB,
    DATETIME,
    DATETIME2,
    DOUBLE,
    FLOAT,
    STRING,
    VARCHAR,
    binlog_converter,
    float_as_printed,
    inet6_text,
    json_document,
    needs_definition,
    time_from_binary,
    unreadable,
)

assert binlog  # reads MySQL's binary JSON as text (it replaces the library's reader)


def binary_column(kind: int, length: int) -> SimpleNamespace:
    return SimpleNamespace(type=kind, character_set_name="binary", max_length=length, name="b")


@given(st.integers(min_value=1, max_value=255).flatmap(
    lambda n: st.tuples(st.just(n), st.binary(max_size=n))))
def test_binary_arrives_padded_to_its_length_as_mysql_holds_it(case: tuple[int, bytes]) -> None:
    """The binlog drops a BINARY value's trailing zero bytes; the library reads nothing as ''."""
    length, held = case
    logged = held.rstrip(b"\x00") or ""
    convert = binlog_converter(binary_column(STRING, length))
    assert convert is not None
    assert convert(logged) == held.ljust(length, b"\x00")


def test_an_empty_varbinary_or_blob_is_empty_bytes() -> None:
    for kind in (VARCHAR, BLOB):
        convert = binlog_converter(binary_column(kind, 10))
        assert convert is not None
        assert convert("") == b""
        assert convert(b"\x00") == b"\x00"


@pytest.mark.parametrize(("stored", "decimals", "printed"), [
    (30.12346076965332, 5, "30.12346"),             # FLOAT(35,5)
    (12345.669921875, 2, "12345.67"),               # FLOAT(10,2)
    (-0.050000000000000044, 2, "-0.05"),            # DOUBLE(10,2): stored off the nearest double
    (1.100000023841858, 30, "1.100000023841858000000000000000"),  # FLOAT(35,30)
    (1234567.75, 1, "1234567.8"),                   # FLOAT(10,1): an exact tie, rounded to even
    (-9.999999562023526e24, 5, "-9999999562023526000000000.00000"),
    (1.2345677614212036, None, "1.23457"),          # FLOAT: 6 significant digits
    (3.4028234663852886e38, None, "3.40282e38"),
    (1234565.0, None, "1234560"),                   # ties at the sixth digit, to even
    (1234575.0, None, "1234580"),
])
def test_a_float_is_the_value_the_server_prints(stored: float, decimals: int | None, printed: str) -> None:
    """Texts measured on MariaDB 10.11 (`CAST(col AS CHAR)` of the stored number)."""
    assert float_as_printed(decimals)(stored) == float(printed)


def float_column(kind: int) -> SimpleNamespace:
    return SimpleNamespace(type=kind, name="f")


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.integers(min_value=0, max_value=30))
def test_a_float_with_decimals_is_its_own_text_with_that_many(value: float, decimals: int) -> None:
    convert = binlog_converter(float_column(FLOAT), ColumnDefinition("float", decimals))
    assert convert is not None
    assert convert(value) == float(f"{value:.{decimals}f}")
    assert convert(convert(value)) == convert(value)


def test_only_floats_and_doubles_need_their_definition() -> None:
    assert needs_definition(float_column(FLOAT)) and needs_definition(float_column(DOUBLE))
    assert binlog_converter(float_column(DOUBLE), ColumnDefinition("double")) is None
    assert binlog_converter(float_column(DOUBLE), None) is None
    assert binlog_converter(float_column(FLOAT), None) is not None


@pytest.mark.parametrize(("stored", "printed"), [  # measured on MariaDB 10.11 (`CAST(col AS CHAR)`)
    ("00000000000000000000000000000000", "::"),
    ("00000000000000000000000000000001", "::1"),
    ("00000000000000000000ffff01020304", "::ffff:1.2.3.4"),
    ("00000000000000000000000001020304", "::1.2.3.4"),
    ("20010db8000000000000000000000001", "2001:db8::1"),
    ("00010000000000000000000000000000", "1::"),
    ("fe800000000000000001000200030004", "fe80::1:2:3:4"),
    ("00010000000200030004000500060007", "1::2:3:4:5:6:7"),
    ("00010000000000020000000000000003", "1:0:0:2::3"),
    ("0000000000000000000000000000ffff", "::ffff"),
    ("00000000000000000000ffff00000000", "::ffff:0.0.0.0"),
    ("00000000000000000000000000010000", "::0.1.0.0"),
    ("000000000000000000000001ffff0000", "::1:ffff:0"),
    ("ffffffffffffffffffffffffffffffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
])
def test_an_inet6_is_the_text_mariadb_prints(stored: str, printed: str) -> None:
    assert inet6_text(bytes.fromhex(stored)) == printed


def test_uuid_and_inet4_columns_arrive_as_the_text_mariadb_prints() -> None:
    """The binlog carries them as BINARY(16) and BINARY(4), trailing zero bytes dropped."""
    column = binary_column(STRING, 16)
    uuid_text = binlog_converter(column, ColumnDefinition("uuid"))
    inet6 = binlog_converter(column, ColumnDefinition("inet6"))
    inet4 = binlog_converter(binary_column(STRING, 4), ColumnDefinition("inet4"))
    assert uuid_text is not None and inet6 is not None and inet4 is not None
    logged = bytes.fromhex("123e4567e89b12d3a4564266554400")  # its last zero byte dropped
    assert uuid_text(logged) == "123e4567-e89b-12d3-a456-426655440000"
    assert uuid_text("") == "00000000-0000-0000-0000-000000000000"
    assert inet6(b"\x00\x01") == "1::" and inet6("") == "::"
    assert inet4(b"\n") == "10.0.0.0" and inet4(b"\xff\xff\xff\xff") == "255.255.255.255"
    assert binlog_converter(column, ColumnDefinition("binary"))(b"\x01") == b"\x01" + bytes(15)
    assert needs_definition(column) and not needs_definition(binary_column(VARCHAR, 16))


def binary_json(data: bytes) -> Any:
    """A MySQL binary JSON document read from a row image as syncd reads it (4-byte length)."""
    wrapper = fastpath._value_packet(len(data).to_bytes(4, "little") + data)
    return BinLogPacketWrapper.read_binary_json(wrapper, 4, False)


@pytest.mark.parametrize(("document", "text"), [
    (b"\x04\x00", "null"),                        # the literal null: not SQL NULL
    (b"\x04\x01", "true"),
    (b"\x0c\x03abc", '"abc"'),                    # a string at the top
    (b"\x0c\x06" + "中文".encode(), '"中文"'),
    (b"\x05\xff\xff", "-1"),
    (b"\x0b" + struct.pack("<d", 1.5), "1.5"),
    (b"\x02\x02\x00\x0c\x00\x05\x01\x00\x0c\x0a\x00\x01x", '[1, "x"]'),
    (b"\x00\x01\x00\x0c\x00\x0b\x00\x01\x00\x04\x00\x00a", '{"a": null}'),
])
def test_mysql_binary_json_is_read_as_json_text_whatever_is_at_its_top(document: bytes, text: str) -> None:
    found = binary_json(document)
    assert found == text
    assert json.loads(found) == json.loads(text)


def test_json_documents_keep_decimals_as_numbers() -> None:
    document = {b"k": [Decimal("1.50"), None, False, b"\\"]}
    assert json_document(document) == '{"k": [1.50, null, false, "\\\\"]}'


@given(st.integers(min_value=-838, max_value=838), st.integers(0, 59), st.integers(0, 59))
def test_an_old_format_time_is_signed(hours: int, minutes: int, seconds: int) -> None:
    """Before MySQL 5.6.4 / MariaDB 10.1 a TIME was a signed 3-byte ±HHMMSS."""
    sign = -1 if hours < 0 or (hours == 0 and minutes % 2) else 1
    packed = sign * (abs(hours) * 10000 + minutes * 100 + seconds)
    value = timedelta(hours=abs(hours), minutes=minutes, seconds=seconds)
    assert time_from_binary(packed.to_bytes(3, "little", signed=True)) == sign * value


def test_old_format_fractional_seconds_are_refused_with_the_fix() -> None:
    column = SimpleNamespace(type=DATETIME, name="at")
    assert needs_definition(column)
    assert unreadable(column, ColumnDefinition("datetime", None, 0)) is None
    problem = unreadable(column, ColumnDefinition("datetime", None, 6))
    assert problem is not None and "DATETIME(6)" in problem and "ALTER TABLE ... FORCE" in problem
    current = SimpleNamespace(type=DATETIME2, name="at")  # the format of MySQL 5.6.4+ and MariaDB 10.1+
    assert unreadable(current, ColumnDefinition("datetime", None, 6)) is None
