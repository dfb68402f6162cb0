"""The C row decoder against the fast path's generated Python, on random table definitions.

Valid images are compared with the library in tests/unit/source/test_fastpath.py (which decodes with
the C decoder wherever it can). Here any bytes at all are fed to both: the C decoder must give
exactly the Python path's rows, or None (then the event is decoded in Python, errors included).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymysqlreplication.constants import FIELD_TYPE

from syncd.source import binlog, fastpath


@dataclass
class Column:
    """The attributes of a library column that the decoders read."""

    name: str
    type: int
    unsigned: bool = False
    size: int = 0
    enum_values: list[str] | None = None
    set_values: list[str] | None = None
    bits: int = 0
    bytes: int = 0
    precision: int = 0
    decimals: int = 0
    fsp: int = 0
    max_length: int = 0
    length_size: int = 0
    collation_name: str | None = None


def test_the_c_decoder_is_built() -> None:
    """`make install` builds it (setup.py; scripts/install.sh installs gcc and the Python headers)."""
    assert fastpath._rowimage is not None
    assert fastpath.native_enabled()


def test_time_columns_are_decoded_in_c_only_with_the_exact_time_reader(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """binlog.py installs syncd's TIME reader; with the library's own, TIME stays with the Python."""
    column = Column("t", FIELD_TYPE.TIME2, fsp=3)
    assert binlog.RowsEvent._RowsEvent__read_time2 is fastpath.read_time2_exact
    assert fastpath._native_time2(column) is not None
    monkeypatch.setattr(binlog.RowsEvent, "_RowsEvent__read_time2", lambda event, column: None)
    assert fastpath._native_time2(column) is None


COLUMNS = [
    *(lambda n, t=t, u=u: Column(n, t, unsigned=u)
      for t in (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.LONG, FIELD_TYPE.LONGLONG, FIELD_TYPE.INT24)
      for u in (False, True)),
    lambda n: Column(n, FIELD_TYPE.YEAR), lambda n: Column(n, FIELD_TYPE.FLOAT),
    lambda n: Column(n, FIELD_TYPE.DOUBLE), lambda n: Column(n, FIELD_TYPE.DATE),
    lambda n: Column(n, FIELD_TYPE.ENUM, size=1, enum_values=["", "待支付", "已支付"]),
    lambda n: Column(n, FIELD_TYPE.ENUM, size=2, enum_values=["", "x"]),
    *(lambda n, f=f: Column(n, FIELD_TYPE.DATETIME2, fsp=f) for f in range(7)),
    *(lambda n, p=p, s=s: Column(n, FIELD_TYPE.NEWDECIMAL, precision=p, decimals=s)
      for p, s in ((12, 2), (65, 30), (10, 0), (9, 0), (4, 4), (19, 9), (1, 0))),
    *(lambda n, m=m, c=c: Column(n, FIELD_TYPE.VARCHAR, max_length=m, collation_name=c)
      for m in (40, 400) for c in ("utf8mb4_general_ci", "latin1_swedish_ci", "gbk_chinese_ci", "binary",
                                   "utf8mb3_general_ci", "ucs2_general_ci", "koi8r_general_ci")),
    lambda n: Column(n, FIELD_TYPE.STRING, max_length=40, collation_name="utf8mb4_bin"),
    *(lambda n, s=s: Column(n, FIELD_TYPE.BLOB, length_size=s, collation_name="utf8mb4_unicode_ci")
      for s in (1, 2, 3, 4)),
    lambda n: Column(n, FIELD_TYPE.BLOB, length_size=2, collation_name=None),
    *(lambda n, f=f: Column(n, FIELD_TYPE.TIMESTAMP2, fsp=f) for f in range(7)),
    *(lambda n, f=f: Column(n, FIELD_TYPE.TIME2, fsp=f) for f in range(7)),
    *(lambda n, b=b: Column(n, FIELD_TYPE.BIT, bits=b, bytes=(b + 7) // 8) for b in (1, 7, 8, 9, 33, 64)),
    *(lambda n, s=s, m=m: Column(n, FIELD_TYPE.SET, size=s, set_values=m)
      for s, m in ((1, ["新客", "老客", "会员"]), (2, [f"m{i}" for i in range(12)]),
                   (3, [f"m{i}" for i in range(20)]), (4, ["a", "b"]), (8, [f"m{i}" for i in range(64)]))),
]


def decoders(columns: list[Column],
             monkeypatch: pytest.MonkeyPatch) -> tuple[fastpath.RowDecoder, fastpath.RowDecoder]:
    monkeypatch.setenv(fastpath.DECODER_ENV, "python")
    python = fastpath.RowDecoder(columns)
    monkeypatch.setenv(fastpath.DECODER_ENV, "fast")
    native = fastpath.RowDecoder(columns)
    assert python.native is None and native.native is not None
    return python, native


def python_rows(decoder: fastpath.RowDecoder, data: bytes, update: bool) -> Any:
    try:
        if update:
            return decoder.update_rows(data, 0, len(data))
        return decoder.single_rows(data, 0, len(data))
    except Exception as exc:
        return exc


def width(column: Column) -> int | None:
    """Bytes of a fixed-width value; None for length-prefixed text."""
    fixed = {FIELD_TYPE.TINY: 1, FIELD_TYPE.SHORT: 2, FIELD_TYPE.LONG: 4, FIELD_TYPE.LONGLONG: 8,
             FIELD_TYPE.INT24: 3, FIELD_TYPE.YEAR: 1, FIELD_TYPE.FLOAT: 4, FIELD_TYPE.DOUBLE: 8,
             FIELD_TYPE.DATE: 3, FIELD_TYPE.ENUM: column.size,
             FIELD_TYPE.DATETIME2: 5 + (column.fsp + 1) // 2,
             FIELD_TYPE.TIMESTAMP2: 4 + (column.fsp + 1) // 2,
             FIELD_TYPE.TIME2: 3 + (column.fsp + 1) // 2, FIELD_TYPE.BIT: column.bytes,
             FIELD_TYPE.SET: column.size}
    if column.type == FIELD_TYPE.NEWDECIMAL:
        return fastpath._decimal_layout(column.precision, column.decimals)[0]
    return fixed.get(column.type)


@st.composite
def images(draw: st.DrawFn, columns: list[Column]) -> bytes:
    """Well-formed images (null bitmap, then each non-NULL value) of random bytes; sometimes cut
    short or followed by noise."""
    out = bytearray()
    for _ in range(draw(st.integers(1, 3))):
        nulls = draw(st.integers(0, (1 << len(columns)) - 1) | st.just(0))
        out += nulls.to_bytes((len(columns) + 7) // 8, "little")
        for i, column in enumerate(columns):
            if nulls >> i & 1:
                continue
            size = width(column)
            if size is None:
                size = column.length_size or (2 if column.max_length > 255 else 1)
                text = draw(st.binary(max_size=6) | st.text(max_size=4).map(str.encode))
                out += len(text).to_bytes(size, "little") + text
            else:
                out += draw(st.binary(min_size=size, max_size=size))
    cut = draw(st.none() | st.integers(0, len(out)))
    return bytes(out[:cut]) + draw(st.just(b"") | st.binary(max_size=3))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(range(len(COLUMNS))), min_size=1, max_size=9), data=st.data(),
       update=st.booleans())
def test_any_bytes_read_as_the_python_path_reads_them_or_go_to_it(
        kinds: list[int], data: st.DataObject, update: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text the server cannot convert: the Python path reads a marker, the C decoder hands back."""
    columns = [COLUMNS[k](f"c{i}") for i, k in enumerate(kinds)]
    python, native = decoders(columns, monkeypatch)
    image = data.draw(images(columns))
    assert native.native is not None
    mine = native.native.rows(image, 0, len(image), update)
    theirs = python_rows(python, image, update)
    if mine is not None:  # repr: tells 1 from True, 0.0 from -0.0, and NaN equals itself
        assert not isinstance(theirs, Exception)
        assert repr(mine) == repr(theirs)


def test_valid_images_of_every_kind_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [make(f"c{i}") for i, make in enumerate(COLUMNS)]
    python, native = decoders(columns, monkeypatch)
    image = bytearray(b"\x00" * ((len(columns) + 7) // 8))
    for column in columns:
        image += value_bytes(column)
    data = bytes(image)
    rows = native.native.rows(data, 0, len(data), False) if native.native else None
    assert rows is not None
    assert repr(rows) == repr(python_rows(python, data, False))
    negative = next(c.name for c in columns if (c.precision, c.decimals) == (12, 2))
    assert rows[0]["values"][negative] == Decimal("-1.50")


def value_bytes(column: Column) -> bytes:
    fixed = {FIELD_TYPE.TINY: b"\xff", FIELD_TYPE.SHORT: b"\xfe\xff", FIELD_TYPE.LONG: b"\x01\x00\x00\x80",
             FIELD_TYPE.LONGLONG: b"\xff" * 8, FIELD_TYPE.INT24: b"\x00\x00\x80", FIELD_TYPE.YEAR: b"\x7e",
             FIELD_TYPE.FLOAT: b"\x00\x00\xc0\x7f", FIELD_TYPE.DOUBLE: b"\x00" * 7 + b"\x80",
             FIELD_TYPE.DATE: b"\x00\x00\x00", FIELD_TYPE.ENUM: b"\x01" + b"\x00" * (column.size - 1)}
    if column.type in fixed:
        return fixed[column.type]
    fraction = b"\x01" * ((column.fsp + 1) // 2)
    temporal = {FIELD_TYPE.DATETIME2: b"\x99\x9a\xb4\x20\x00" + fraction,
                FIELD_TYPE.TIMESTAMP2: b"\x65\x43\x21\x0f" + fraction,
                FIELD_TYPE.TIME2: b"\x7f\xef\x45" + b"\xf0" * len(fraction),  # negative, with a fraction
                FIELD_TYPE.BIT: b"\xa5" * column.bytes, FIELD_TYPE.SET: b"\x05" + b"\x00" * (column.size - 1)}
    if column.type in temporal:
        return temporal[column.type]
    if column.type == FIELD_TYPE.NEWDECIMAL:
        size = fastpath._decimal_layout(column.precision, column.decimals)[0]
        if (column.precision, column.decimals) == (12, 2):
            return bytes(b ^ 0xFF for b in b"\x80\x00\x00\x00\x01\x32")  # -1.50
        return b"\x80" + b"\x00" * (size - 1)
    width = column.length_size or (2 if column.max_length > 255 else 1)
    text = "中文".encode() if (column.collation_name or "utf8mb4").startswith("utf8mb4") else b"ab"
    return len(text).to_bytes(width, "little") + text
