"""The type corpus: every column type and modifier, edge values, and the server as the oracle.

`TYPES` is the table: one line per column type (with its modifiers), saying how the server
prints what a column holds (`Oracle`: an SQL expression such as `CAST(c AS CHAR)` or `HEX(c)`,
and how that text becomes syncd's value), the PostgreSQL column it is copied into, and its
values (SQL expressions: boundaries, plus values drawn from a seeded random generator). A new
type or modifier is one more line.

Columns are batched into a few tables (`Kind.table`): tables whose every column the C decoder
reads, tables the source server can write as COPY text and the servers can checksum (integers,
decimals, text, dates), and the rest. Row r of a table holds value r of each column (cycling
through shorter lists); row 0 is NULL in every nullable column.

The oracle's value of a column is its value in syncd's normal form (docs/types.md) *derived from
the server's own text*, never from syncd's conversion code, so a rule that syncd applies the
same wrong way on two paths cannot hide.
"""

from __future__ import annotations

import math
import os
import random
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from pymysql.converters import escape_string

SEED = int(os.environ.get("SYNCD_CORPUS_SEED") or random.SystemRandom().randrange(1 << 32))
"""The random values of this run; set SYNCD_CORPUS_SEED to draw the same ones again."""

SOURCE_ZONE = timezone(timedelta(hours=8))
"""The source's `timezone` in tests/integration/scenario.py: DATETIME into timestamptz is read in it."""


class ZeroDate:
    """The oracle's value of a zero or partial-zero date: syncd reads it as NULL and warns."""

    def __repr__(self) -> str:
        return "ZERO_DATE"


ZERO = ZeroDate()


# --------------------------------------------------------------------------- oracles


@dataclass(frozen=True)
class Oracle:
    """How the server prints a column's value, and the normal-form value of that text."""

    expression: str
    """SQL over `{c}`, the quoted column (read in a session with time_zone '+00:00')."""
    parse: Callable[[str], Any]

    def sql(self, column: str) -> str:
        return self.expression.format(c=f"`{column}`")


def _zero_or(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A date of which any part (year, month or day) is zero is a zero date."""
    def read(text: str) -> Any:
        year, month, day = text[:10].split("-")
        return ZERO if 0 in (int(year), int(month), int(day)) else parse(text)
    return read


def _time(text: str) -> timedelta:
    negative = text.startswith("-")
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    value = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(whole),
                      microseconds=int(fraction.ljust(6, "0")))
    return -value if negative else value


def _timestamp(text: str) -> Any:
    return ZERO if text.startswith("0000-00-00") else datetime.fromisoformat(text).replace(tzinfo=UTC)


INTEGER = Oracle("CAST({c} AS CHAR)", int)
DECIMAL = Oracle("CAST({c} AS CHAR)", Decimal)
FLOAT = Oracle("CAST({c} AS CHAR)", float)
"""The text MySQL prints of a FLOAT or DOUBLE (`SELECT f` prints the same), as a float."""
TEXT = Oracle("HEX(CONVERT({c} USING utf8mb4))", lambda h: bytes.fromhex(h).decode("utf-8"))
BYTES = Oracle("HEX({c})", bytes.fromhex)
BITS = Oracle("HEX({c})", lambda h: int(h, 16))
DATE = Oracle("CAST({c} AS CHAR)", _zero_or(date.fromisoformat))
DATETIME = Oracle("CAST({c} AS CHAR)", _zero_or(datetime.fromisoformat))
TIMESTAMP = Oracle("CAST({c} AS CHAR)", _timestamp)
TIME = Oracle("CAST({c} AS CHAR)", _time)
YEAR = Oracle("CAST({c} AS CHAR)", lambda t: ZERO if t == "0000" else int(t))
JSON = Oracle("CONVERT({c} USING utf8mb4)", str)
WKB = Oracle("HEX(ST_AsWKB({c}))", bytes.fromhex)
"""Geometry as standard WKB (MySQL's SRID prefix is not carried)."""
PRINTED = Oracle("CONVERT({c} USING utf8mb4)", str)
"""Types the server prints as text of their own (UUID, INET4, INET6)."""


# --------------------------------------------------------------------------- values


Values = Callable[[random.Random], list[str]]
"""SQL expressions of a column's values; the generator draws the random ones."""


def fixed(*values: str) -> Values:
    return lambda rng: list(values)


def ints(low: int, high: int) -> Values:
    def make(rng: random.Random) -> list[str]:
        edges = [low, low + 1, -1, 0, 1, 2, high - 1, high, *(rng.randint(low, high) for _ in range(4))]
        return [str(v) for v in dict.fromkeys(v for v in edges if low <= v <= high)]
    return make


def decimals(precision: int, scale: int, unsigned: bool = False) -> Values:
    whole = precision - scale

    def number(int_digits: str, frac_digits: str, negative: bool) -> str:
        text = (int_digits or "0") + ("." + frac_digits if scale else "")
        return ("-" if negative else "") + text

    def make(rng: random.Random) -> list[str]:
        top = number("9" * whole, "9" * scale, False)
        tiny = number("", "0" * (scale - 1) + "1", False) if scale else "1"
        drawn = [number("".join(rng.choice("0123456789") for _ in range(rng.randint(0, whole))),
                        "".join(rng.choice("0123456789") for _ in range(scale)), rng.random() < 0.5)
                 for _ in range(4)]
        values = [top, "-" + top, "0", tiny, "-" + tiny, "0.5" if scale else "5", *drawn]
        return [v.lstrip("-") if unsigned else v for v in values]
    return make


def _float32(rng: random.Random) -> float:
    while True:
        value = struct.unpack("<f", rng.randbytes(4))[0]
        if math.isfinite(value):
            return value


def _float64(rng: random.Random) -> float:
    while True:
        value = struct.unpack("<d", rng.randbytes(8))[0]
        if math.isfinite(value):
            return value


def singles(unsigned: bool = False) -> Values:
    """FLOAT without (M,D): extremes, denormals, integers past 2^24, ties at the sixth digit."""
    def make(rng: random.Random) -> list[str]:
        values = [0.0, 1.2345678, 3.4028234e38, 1.17549435e-38, 1.4e-45, 16777216.0, 16777217.0,
                  1234565.0, 1234575.0, 0.1, -0.0, -3.4028234e38, *(_float32(rng) for _ in range(4))]
        return [repr(abs(v) if unsigned else v) for v in values]
    return make


def fixed_point_floats(precision: int, scale: int) -> Values:
    """FLOAT(M,D) / DOUBLE(M,D): decimals that fit M and D, and ones with more decimals than D."""
    def make(rng: random.Random) -> list[str]:
        whole, digits = min(precision - scale, 30), min(scale + 3, 30)
        drawn = [f"{rng.uniform(-(10 ** whole) + 1, 10 ** whole - 1):.{digits}f}" for _ in range(4)]
        return ["0", "30.12346", "12345.67", "-0.05", "0.125", "1.005", "-1.5", "2.5", *drawn]
    return make


def doubles() -> Values:
    def make(rng: random.Random) -> list[str]:
        values = [0.1 + 0.2, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 2.2250738585072014e-308,
                  9007199254740993.0, 0.1, -0.0, 1e22, *(_float64(rng) for _ in range(4))]
        return [repr(v) for v in values]
    return make


def _quoted(text: str) -> str:
    return "'" + escape_string(text) + "'"


_ALPHABET = "aZ09 ~'\"\\\t\n\r%_é中文字😀🎉\u0301\u3000\u200b\ufeff"


def texts(length: int, bmp: bool = False, latin1: bool = False) -> Values:
    """Text up to `length` characters: CJK, emoji, quotes, backslashes, control characters,
    trailing blanks (CHAR drops them, VARCHAR keeps them)."""
    alphabet = "aZ09 ~'\"\\\t\n%_éü" if latin1 else _ALPHABET.replace("😀🎉", "") if bmp else _ALPHABET

    def make(rng: random.Random) -> list[str]:
        fixed_values = ["", " ", "a  ", "  a", "中文", "'", "\\", "NULL", "a" * length]
        drawn = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, min(length, 40))))
                 for _ in range(4)]
        return [_quoted(v[:length]) for v in fixed_values + drawn]
    return make


def binaries(length: int) -> Values:
    def make(rng: random.Random) -> list[str]:
        values = [b"", b"\x00", b"\x00" * length, b"\x01", b"\x00\x01", b"\x01\x00", b"\xff" * length,
                  *(rng.randbytes(rng.randint(1, length)) for _ in range(4))]
        return [f"X'{v[:length].hex()}'" for v in values]
    return make


def dates() -> Values:
    def make(rng: random.Random) -> list[str]:
        drawn = [date.fromordinal(rng.randint(date(1000, 1, 1).toordinal(), date(9999, 12, 31).toordinal()))
                 for _ in range(3)]
        values = ["1000-01-01", "9999-12-31", "2024-02-29", "1970-01-01", "0000-00-00", "2024-00-15",
                  "2024-01-00", "0001-01-01", *map(str, drawn)]
        return [_quoted(v) for v in values]
    return make


def _microseconds(rng: random.Random, fsp: int) -> int:
    return rng.randrange(10 ** fsp) * 10 ** (6 - fsp) if fsp else 0


def datetimes(fsp: int) -> Values:
    def make(rng: random.Random) -> list[str]:
        low, high = datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59)
        drawn = [low + timedelta(seconds=rng.randint(0, int((high - low).total_seconds())),
                                 microseconds=_microseconds(rng, fsp)) for _ in range(3)]
        top = "9999-12-31 23:59:59" + ("." + "9" * fsp if fsp else "")
        values = ["1000-01-01 00:00:00", top, "2024-02-29 12:34:56.123456", "0000-00-00 00:00:00",
                  "2024-01-00 10:00:00", "1970-01-01 00:00:00", *(d.isoformat(" ") for d in drawn)]
        return [_quoted(v) for v in values]
    return make


def timestamps(fsp: int) -> Values:
    """Written by a session in +05:00 (the oracle reads them in UTC)."""
    def make(rng: random.Random) -> list[str]:
        drawn = [datetime(1970, 1, 2) + timedelta(seconds=rng.randint(0, 2 ** 31 - 200_000),
                                                  microseconds=_microseconds(rng, fsp)) for _ in range(3)]
        top = "2038-01-19 08:14:07" + ("." + "9" * fsp if fsp else "")
        values = ["1970-01-01 05:00:01", top, "0000-00-00 00:00:00", "2024-02-29 12:34:56.654321",
                  *(d.isoformat(" ") for d in drawn)]
        return [_quoted(v) for v in values]
    return make


def times(fsp: int) -> Values:
    def make(rng: random.Random) -> list[str]:
        frac = "." + "9" * fsp if fsp else ""
        drawn = [timedelta(seconds=rng.randint(-3020399, 3020399), microseconds=_microseconds(rng, fsp))
                 for _ in range(3)]
        values = [f"-838:59:59{frac}", f"838:59:59{frac}", "-00:00:00.000001", "-00:00:01.5", "00:00:00",
                  "24:00:00", "-838:59:58.999999", *(_time_text(d) for d in drawn)]
        return [_quoted(v) for v in values]
    return make


def _time_text(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    micros = abs(value) // timedelta(microseconds=1)
    seconds, micro = divmod(micros, 1_000_000)
    return f"{sign}{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{micro:06d}"


def _stored_time(value: timedelta | None) -> str | None:
    """A TIME as an `interval` should hold it: its text as the source prints it, which
    PostgreSQL keeps in the interval's time part (never split into days)."""
    return None if value is None else _time_text(value)


def bits(width: int) -> Values:
    def make(rng: random.Random) -> list[str]:
        values = [0, 1, (1 << width) - 1, 1 << (width - 1), *(rng.getrandbits(width) for _ in range(3))]
        return [f"b'{v:b}'" for v in dict.fromkeys(values)]
    return make


def _json_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind < 5:
        return [None, True, rng.randint(-(2 ** 70), 2 ** 70), rng.uniform(-1e6, 1e6),
                "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 6)))][kind]
    if kind == 5:
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {"".join(rng.choice("ab中") for _ in range(2)): _json_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


JSON_TEXTS = ('"abc"', "null", '""', '"null"', "0", "-0", "1.0", "1e2", "-1.5E-7",
              "12345678901234567890.123456789", "18446744073709551616", "true", "false", "[]", "{}",
              '{"b": [1, "x", null], "a": {"c": false, "d": [[[]]]}}', '{"k": 1, "k": 2}',
              '"\\u4e2d\\u6587 😀 \\"q\\" \\\\ \\n"', '[1.50, "1.50", 1.5e0]', '  {"sp" : [ 1 , 2 ] }  ')


def jsons() -> Values:
    import json as _json

    def make(rng: random.Random) -> list[str]:
        drawn = [_json.dumps(_json_value(rng, 0), ensure_ascii=rng.random() < 0.5) for _ in range(4)]
        return [_quoted(v) for v in (*JSON_TEXTS, *drawn)]
    return make


def geometries(srid: int) -> Values:
    shapes = ("POINT(1 2)", "POINT(-180.5 90)", "LINESTRING(0 0, 1 1, 2 0)",
              "POLYGON((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))", "MULTIPOINT(1 1, 2 2)",
              "MULTILINESTRING((0 0, 1 1), (2 2, 3 3))", "MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)))",
              "GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1))", "GEOMETRYCOLLECTION EMPTY")
    return fixed(*(f"ST_GeomFromText('{s}', {srid})" for s in shapes))


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Kind:
    """One column type, with its modifiers."""

    name: str
    """The column's name (in the source and the target)."""
    sql: str
    """Its declaration in MySQL/MariaDB."""
    oracle: Oracle
    target: str
    """The PostgreSQL column it is copied into."""
    values: Values
    table: str
    """The corpus table that holds it."""
    expect: Callable[[Any], Any] = field(default=lambda value: value)
    """What the target should hold, from the normal-form value (most: the value itself)."""
    nullable: bool = True
    settable: bool = True
    """False for a generated column: its values are only ever DEFAULT."""


def _local(value: Any) -> Any:
    """A DATETIME copied into timestamptz is wall time in the source's zone."""
    return value.replace(tzinfo=SOURCE_ZONE) if isinstance(value, datetime) else value


NUM, FLT, CHR, BIN, TIM = "c_num", "c_flt", "c_chr", "c_bin", "c_tim"
ETC, BITS_TABLE, GEO, OLD = "etc", "bit", "geo", "old"
NATIVE = (NUM, FLT, CHR, BIN, TIM)
"""Tables of column types the C decoder reads (syncd/source/_rowimage.c)."""
PUSHED = (NUM, CHR, TIM)
"""Tables the source server writes as COPY text and both servers checksum (reconcile pushdown)."""
OLD_FORMAT = (OLD,)
"""Tables created in MariaDB's temporal format from before 10.1 (mysql56_temporal_format=OFF), as
tables made by MySQL 5.5 or MariaDB 5.3-10.0 still are."""

K = Kind
TYPES: list[Kind] = [
    # integers: signed, UNSIGNED, ZEROFILL, display widths
    K("ti", "TINYINT", INTEGER, "smallint", ints(-128, 127), NUM),
    K("ti_u", "TINYINT UNSIGNED", INTEGER, "smallint", ints(0, 255), NUM),
    K("ti_zf", "TINYINT(3) UNSIGNED ZEROFILL", INTEGER, "smallint", ints(0, 255), NUM),
    K("bool", "BOOL", INTEGER, "smallint", ints(-128, 127), NUM),
    K("si", "SMALLINT", INTEGER, "smallint", ints(-32768, 32767), NUM),
    K("si_u", "SMALLINT UNSIGNED", INTEGER, "integer", ints(0, 65535), NUM),
    K("mi", "MEDIUMINT", INTEGER, "integer", ints(-8388608, 8388607), NUM),
    K("mi_uzf", "MEDIUMINT(8) UNSIGNED ZEROFILL", INTEGER, "integer", ints(0, 16777215), NUM),
    K("i", "INT", INTEGER, "integer", ints(-2147483648, 2147483647), NUM),
    K("i_u", "INT UNSIGNED", INTEGER, "bigint", ints(0, 4294967295), NUM),
    K("i_nn", "INT NOT NULL", INTEGER, "bigint", ints(-(2 ** 31), 2 ** 31 - 1), NUM, nullable=False),
    K("bi", "BIGINT", INTEGER, "bigint", ints(-(2 ** 63), 2 ** 63 - 1), NUM),
    K("bi_u", "BIGINT UNSIGNED", INTEGER, "numeric(20,0)", ints(0, 2 ** 64 - 1), NUM),
    K("bi_zf", "BIGINT(20) ZEROFILL", INTEGER, "numeric(20,0)", ints(0, 2 ** 64 - 1), NUM),
    # fixed point
    K("dec65_30", "DECIMAL(65,30)", DECIMAL, "numeric(65,30)", decimals(65, 30), NUM),
    K("dec65_0", "DECIMAL(65,0)", DECIMAL, "numeric(65,0)", decimals(65, 0), NUM),
    K("dec12_2", "DECIMAL(12,2)", DECIMAL, "numeric(12,2)", decimals(12, 2), NUM),
    K("dec5_5", "DECIMAL(5,5)", DECIMAL, "numeric(5,5)", decimals(5, 5), NUM),
    K("dec10_4_uzf", "DECIMAL(10,4) UNSIGNED ZEROFILL", DECIMAL, "numeric(10,4)", decimals(10, 4, True), NUM),
    K("num1", "NUMERIC(1,0)", DECIMAL, "numeric(1,0)", decimals(1, 0), NUM),
    # floating point: without and with (M,D), UNSIGNED, ZEROFILL, FLOAT(p)
    K("f", "FLOAT", FLOAT, "double precision", singles(), FLT),
    K("f_real", "FLOAT", FLOAT, "real", singles(), FLT),
    K("f_u", "FLOAT UNSIGNED", FLOAT, "double precision", singles(unsigned=True), FLT),
    K("f_p20", "FLOAT(20)", FLOAT, "double precision", singles(), FLT),
    K("f35_5", "FLOAT(35,5)", FLOAT, "double precision", fixed_point_floats(35, 5), FLT),
    K("f10_2", "FLOAT(10,2)", FLOAT, "double precision", fixed_point_floats(10, 2), FLT),
    K("f10_2_zf", "FLOAT(10,2) UNSIGNED ZEROFILL", FLOAT, "double precision", fixed_point_floats(10, 2), FLT),
    K("f7_0", "FLOAT(7,0)", FLOAT, "double precision", fixed_point_floats(7, 0), FLT),
    K("f35_30", "FLOAT(35,30)", FLOAT, "double precision", fixed_point_floats(35, 30), FLT),
    K("f_p30", "FLOAT(30)", FLOAT, "double precision", doubles(), FLT),
    K("d", "DOUBLE", FLOAT, "double precision", doubles(), FLT),
    K("d_real", "REAL", FLOAT, "double precision", doubles(), FLT),
    K("d10_2", "DOUBLE(10,2)", FLOAT, "double precision", fixed_point_floats(10, 2), FLT),
    K("d65_30", "DOUBLE(65,30)", FLOAT, "double precision", fixed_point_floats(65, 30), FLT),
    K("d_uzf", "DOUBLE(20,3) UNSIGNED ZEROFILL", FLOAT, "double precision", fixed_point_floats(20, 3), FLT),
    # text: fixed and variable length, blob-backed, other charsets, ENUM
    K("c1", "CHAR(1)", TEXT, "text", texts(1), CHR),
    K("c10", "CHAR(10)", TEXT, "character(10)", texts(10), BIN),  # not text to the COPY path
    K("c255", "CHAR(255)", TEXT, "text", texts(255), CHR),
    K("vc", "VARCHAR(300)", TEXT, "text", texts(300), CHR),
    K("vc_pg", "VARCHAR(20)", TEXT, "character varying(20)", texts(20), CHR),
    K("tt", "TINYTEXT", TEXT, "text", texts(63), CHR),
    K("tx", "TEXT", TEXT, "text", texts(2000), CHR),
    K("mt", "MEDIUMTEXT", TEXT, "text", texts(3000), CHR),
    K("lt", "LONGTEXT", TEXT, "text", texts(3000), CHR),
    K("mb3", "VARCHAR(30) CHARACTER SET utf8mb3", TEXT, "text", texts(30, bmp=True), BIN),  # read raw
    K("l1", "VARCHAR(30) CHARACTER SET latin1", TEXT, "text", texts(30, latin1=True), CHR),
    K("c_bin_coll", "VARCHAR(30) COLLATE utf8mb4_bin", TEXT, "text", texts(30), CHR),
    K("en", "ENUM('小', '中', '大', 'a b', '')", TEXT, "text", fixed("'小'", "'a b'", "''", "'x'", "3"), CHR),
    # binary: fixed length (padded with zero bytes), variable length, blobs
    K("b1", "BINARY(1)", BYTES, "bytea", binaries(1), BIN),
    K("b16", "BINARY(16)", BYTES, "bytea", binaries(16), BIN),
    K("b255", "BINARY(255)", BYTES, "bytea", binaries(255), BIN),
    K("vb", "VARBINARY(300)", BYTES, "bytea", binaries(300), BIN),
    K("tb", "TINYBLOB", BYTES, "bytea", binaries(255), BIN),
    K("bl", "BLOB", BYTES, "bytea", binaries(1000), BIN),
    K("mb", "MEDIUMBLOB", BYTES, "bytea", binaries(1000), BIN),
    K("lb", "LONGBLOB", BYTES, "bytea", binaries(1000), BIN),
    # dates and date-times, fractional seconds 0-6, into timestamp and timestamptz
    K("dt", "DATE", DATE, "date", dates(), TIM),
    *(K(f"dtm{n}", f"DATETIME({n})", DATETIME, "timestamp", datetimes(n), TIM) for n in range(7)),
    K("dtm_tz", "DATETIME(6)", DATETIME, "timestamptz", datetimes(6), TIM, expect=_local),
    # TIME, TIMESTAMP (fractional seconds 0-6), YEAR, SET, JSON
    *(K(f"tm{n}", f"TIME({n})", TIME, "interval", times(n), ETC, expect=_stored_time) for n in range(7)),
    *(K(f"ts{n}", f"TIMESTAMP({n}) NULL", TIMESTAMP, "timestamptz", timestamps(n), ETC) for n in range(7)),
    K("yr", "YEAR", YEAR, "smallint", fixed("1901", "2155", "0", "2000", "'0000'", "69", "70"), ETC),
    K("st", "SET('a', 'b', '中', 'd e')", TEXT, "text",
      fixed("''", "'a'", "'b,a'", "'a,b,中,d e'", "'中'", "15", "'a,a'"), ETC),
    K("js", "JSON", JSON, "jsonb", jsons(), ETC),
    K("js_text", "JSON", JSON, "json", jsons(), ETC),
    # MariaDB's own types: UUID, INET4, INET6
    K("uu", "UUID", PRINTED, "uuid", fixed("'00000000-0000-0000-0000-000000000000'",
                                          "'ffffffff-ffff-4fff-bfff-ffffffffffff'", "UUID()",
                                          "'123e4567-e89b-12d3-a456-426655440000'"), ETC),
    K("ip4", "INET4", PRINTED, "inet", fixed("'0.0.0.0'", "'255.255.255.255'", "'10.0.0.1'"), ETC),
    K("ip6", "INET6", PRINTED, "inet", fixed("'::'", "'::1'", "'::ffff:1.2.3.4'", "'::1.2.3.4'",
                                           "'2001:db8::1'", "'fe80::1:2:3:4'",
                                           "'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'", "'1::'"), ETC),
    # generated and invisible columns, DEFAULT expressions
    K("gen_v", "BIGINT AS (i_nn * 2) VIRTUAL", INTEGER, "bigint", fixed("DEFAULT"), NUM, settable=False),
    K("gen_s", "VARCHAR(40) AS (CONCAT(vc_pg, '!')) STORED", TEXT, "text", fixed("DEFAULT"), CHR,
      settable=False),
    K("inv", "INT INVISIBLE DEFAULT 7", INTEGER, "integer", fixed("DEFAULT", "-5", "NULL"), ETC),
    K("inv_num", "BIGINT INVISIBLE", INTEGER, "bigint", ints(-(2 ** 63), 2 ** 63 - 1), NUM),
    K("def_now", "DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6)", DATETIME, "timestamp", fixed("DEFAULT"), ETC),
    K("def_uuid", "VARCHAR(36) DEFAULT (UUID())", TEXT, "text", fixed("DEFAULT"), ETC),
    K("def_expr", "INT DEFAULT (1 + 1)", INTEGER, "integer", fixed("DEFAULT"), ETC),
    K("def_blob", "BLOB DEFAULT ('x')", BYTES, "bytea", fixed("DEFAULT"), ETC),
    K("def_json", "JSON DEFAULT ('{}')", JSON, "jsonb", fixed("DEFAULT"), ETC),
    # TIME, DATETIME, TIMESTAMP in the format of MySQL 5.5 / MariaDB 10.0 (no fractional seconds)
    K("o_tm", "TIME", TIME, "interval", times(0), OLD, expect=_stored_time),
    K("o_dtm", "DATETIME", DATETIME, "timestamp", datetimes(0), OLD),
    K("o_ts", "TIMESTAMP NULL", TIMESTAMP, "timestamptz", timestamps(0), OLD),
    K("o_dt", "DATE", DATE, "date", dates(), OLD),
    # BIT(1..64)
    *(K(f"bit{n}", f"BIT({n})", BITS, "numeric(20,0)", bits(n), BITS_TABLE) for n in range(1, 65)),
    # spatial types with SRIDs
    K("geo", "GEOMETRY", WKB, "bytea", geometries(0), GEO),
    K("geo_4326", "GEOMETRY", WKB, "bytea", geometries(4326), GEO),
    K("pt", "POINT", WKB, "bytea", fixed("POINT(1, 2)", "ST_GeomFromText('POINT(-1.5 1e300)', 3857)"), GEO),
    K("ls", "LINESTRING", WKB, "bytea", fixed("ST_GeomFromText('LINESTRING(0 0, 1 1)', 4326)"), GEO),
    K("pg", "POLYGON", WKB, "bytea", fixed("ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))')"), GEO),
    K("mpt", "MULTIPOINT", WKB, "bytea", fixed("ST_GeomFromText('MULTIPOINT(0 0, 1 1)')"), GEO),
    K("gc", "GEOMETRYCOLLECTION", WKB, "bytea", fixed("ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1))')"),
      GEO),
]


# --------------------------------------------------------------------------- tables and rows


def tables() -> dict[str, list[Kind]]:
    grouped: dict[str, list[Kind]] = {}
    for kind in TYPES:
        grouped.setdefault(kind.table, []).append(kind)
    return grouped


def source_ddl(table: str, kinds: Sequence[Kind]) -> str:
    columns = ", ".join(f"`{k.name}` {k.sql}" for k in kinds)
    return f"CREATE TABLE `{table}` (id INT PRIMARY KEY, {columns}) CHARACTER SET utf8mb4"


def target_ddl(table: str, kinds: Sequence[Kind]) -> str:
    columns = ", ".join(f'"{k.name}" {k.target}' for k in kinds)
    return f'CREATE TABLE "{table}" (id integer PRIMARY KEY, {columns})'


def mapping(table: str, kinds: Sequence[Kind]) -> str:
    columns = ", ".join(f"{k.name}: {k.name}" for k in kinds)
    return (f"  - {{name: {table}, source: shop, table: {table}, target: {table}, key: [id],\n"
            f"     columns: {{id: id, {columns}}}}}\n")


@dataclass
class Rows:
    """The values of one table's rows: row r holds value r of each column."""

    kinds: list[Kind]
    values: list[list[str]]
    """Per column, its SQL expressions."""

    @classmethod
    def draw(cls, kinds: list[Kind], rng: random.Random) -> Rows:
        return cls(kinds, [k.values(rng) for k in kinds])

    @property
    def count(self) -> int:
        return 1 + max(len(v) for v in self.values)

    def value(self, column: int, row: int) -> str:
        kind, values = self.kinds[column], self.values[column]
        if row == 0 and kind.nullable and kind.settable:
            return "NULL"
        return values[(row - 1) % len(values)] if kind.settable else "DEFAULT"

    def insert(self, table: str, ids: Iterable[tuple[int, int]]) -> str:
        """INSERT of rows (id, value row) in one statement."""
        names = ", ".join(f"`{k.name}`" for k in self.kinds)
        tuples = ", ".join(f"({i}, " + ", ".join(self.value(c, r) for c in range(len(self.kinds))) + ")"
                           for i, r in ids)
        return f"INSERT INTO `{table}` (id, {names}) VALUES {tuples}"

    def update(self, table: str, row_id: int, row: int) -> str:
        sets = ", ".join(f"`{k.name}` = {self.value(c, row)}" for c, k in enumerate(self.kinds) if k.settable)
        return f"UPDATE `{table}` SET {sets} WHERE id = {row_id}"


def oracle_query(table: str, kinds: Sequence[Kind]) -> str:
    return f"SELECT id, {', '.join(k.oracle.sql(k.name) for k in kinds)} FROM `{table}` ORDER BY id"


def oracle_rows(fetched: Sequence[tuple], kinds: Sequence[Kind]) -> dict[int, dict[str, Any]]:
    """Row id -> column -> the oracle's value (None for NULL, ZERO for a zero date)."""
    return {row[0]: {k.name: None if text is None else k.oracle.parse(text)
                     for k, text in zip(kinds, row[1:], strict=True)}
            for row in fetched}


def normal(value: Any) -> Any:
    """The oracle's value as syncd carries it: a zero date is NULL."""
    return None if value is ZERO else value


def zero_columns(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(name for name, value in row.items() if value is ZERO))


def same(one: Any, other: Any) -> bool:
    """Equal values of the same type (a float compared by its bits: -0.0 is not 0.0)."""
    if type(one) is not type(other):
        return False
    if isinstance(one, float):
        return struct.pack("<d", one) == struct.pack("<d", other)
    return bool(one == other)


def differences(found: dict[str, Any], expected: dict[str, Any], where: str) -> list[str]:
    return [f"{where} {name}: {found.get(name)!r} != {normal(value)!r}"
            for name, value in expected.items() if not same(found.get(name), normal(value))]


_ID = re.compile(r"^id=(\d+)$")


def row_id(row_key: str) -> int:
    match = _ID.match(row_key)
    assert match, row_key
    return int(match.group(1))
