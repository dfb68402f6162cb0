"""The SQL form of each mapped column equals the Python mapping, on real servers (columnsql.py).

For every transform with an SQL form, hypothesis draws source values (edge inputs among them:
NULL, empty and blank text, full-width digits, odd spacing, huge and negative numbers, values
outside a map, invalid amounts, wall times a clock change skips), MariaDB stores them, and:

* the row reader reads them and the mapping computes each value in Python (or fails: a dead
  letter);
* MariaDB computes the column's COPY field and its hashed part.

Where the SQL form vouches for a row (its field is not NULL) the Python path must have a value,
PostgreSQL must store the same value from the COPY field as from the Python value written by
psycopg (compared as PostgreSQL prints them), and PostgreSQL's hashed part of the stored value
must equal MariaDB's. Where the SQL form does not vouch, Python decides (nothing to compare).
Each case also checks that the SQL form vouches for the values it is meant for (`typical`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.errors import TransformError
from syncd.mapping.plan import compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.reconcile.columnsql import compile_column, scope_sql
from syncd.sink.postgres import copy_fields
from syncd.sink.slices import column_types
from syncd.source.chunks import SourceReader
from tests.integration.binlog_reads import root_source

SHANGHAI, NEW_YORK = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")
EAST8, WEST5 = timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))


@dataclass(frozen=True)
class Case:
    name: str
    source_type: str
    column: str
    """The mapping column's YAML."""
    target_type: str
    values: st.SearchStrategy
    typical: tuple[Any, ...] = ()
    """Values the SQL form must vouch for."""
    zone: tzinfo = EAST8


STATUSES = ["待支付", "已支付", "已发货", " 待支付 ", "待支付\u3000", "\t已支付", "已支付\n", "未知", "", " ",
            "x", "10", "\u200b已支付"]
EDGES = ["热爱生活。", "咖啡☕", "\u3002\u3000", "\u3000\u3002", "☕\u2003", "\u2003☕", "\u1680x", "x\u00a0",
         "\u00a9x\u00a9", " \ufeffx", "x\u200b ", "\u3001"]
PHONES = ["13812345678", "138 1234 5678", "138-1234-5678", "+8613812345678", "008613812345678",
          "8613812345678", "+86 138 1234 5678", "１３８１２３４５６７８", "12345678901", "1381234567",
          "010-12345678", "1234", "", "12", "abc", "138\t12345678", "13812345678\n", " 13812345678 ",
          "+1 555 123 4567", "4008123123", "19912345678"]
AMOUNTS = ["100元", "¥1,299.50", "1,299.50元", "-5元", "-¥5", "¥-5", "+5", "0", "-0", ".5", "5.", "1,2345",
           "12,345,678.999", "１００元", "100 元", " 100元 ", "RMB 12", "12CNY", "1e3", "", " ", "abc",
           "100圆", "99999999999999999999.995", "-0.005", "1" * 40, "0.0000001", "１，２９９．５０",
           "−5", "100元\n", "12.3456789", " 12.30 元", "- 5 元", "¥ 1,299.50 ", "1 000", "1, 299", "12 . 5",
           "5 元 元", "¥ - 5", "\u3000100元"]
WALL_TIMES = [datetime(2024, 1, 1, 8), datetime(1988, 4, 10, 2, 30), datetime(1988, 9, 11, 1, 30),
              datetime(2024, 3, 10, 2, 30), datetime(2024, 11, 3, 1, 30), datetime(1000, 1, 1),
              datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(1901, 1, 1), datetime(2200, 6, 1),
              datetime(1970, 1, 1, 0, 0, 0, 1), datetime(9999, 12, 31, 19),
              datetime(9999, 12, 31, 18, 59, 59, 999999)]

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
digits_text = st.text(alphabet="0123456789 -+１２", max_size=16)
numbers = st.integers(min_value=-(10 ** 18), max_value=10 ** 18)
wall_times = st.one_of(st.sampled_from(WALL_TIMES),
                       st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))


def with_null(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


CASES = [
    Case("map_text", "VARCHAR(20)", "{from: v, transform: strip, map: {待支付: 0, 已支付: 1, '10': 3}}",
         "smallint", with_null(st.one_of(st.sampled_from(STATUSES), texts)), ("待支付", "已支付")),
    Case("map_text_keep", "VARCHAR(20)", "{from: v, map: {待支付: paid, a: b}, on_unmapped: keep}",
         "text", with_null(st.one_of(st.sampled_from(STATUSES), texts)), ("待支付", "other")),
    Case("map_null_default", "VARCHAR(20)", "{from: v, map: {~: none, x: y}, default: z}",
         "text", with_null(st.sampled_from(STATUSES)), (None, "x", "q")),
    Case("map_int", "INT", "{from: v, map: {10: 0, 20: 1, '30': 2, 40.0: 3, true: 4, '050': 5}}",
         "smallint", with_null(st.one_of(st.sampled_from([10, 20, 30, 40, 1, 50, 0, -10]), numbers.map(
             lambda n: n % 2 ** 31))), (10, 30, 40, 1)),
    Case("mask_phone", "VARCHAR(40)", "{from: v, transform: mask_phone}", "text",
         with_null(st.one_of(st.sampled_from(PHONES), digits_text, texts)), ("13812345678", "138 1234 5678")),
    Case("mask_phone_int", "BIGINT", "{from: v, transform: mask_phone}", "text",
         with_null(st.one_of(st.sampled_from([13812345678, 8613812345678, 1234, -13812345678]), numbers)),
         (13812345678, 1234)),
    Case("mask", "VARCHAR(20)", "{from: v, transform: {mask: {keep_first: 1, keep_last: 2, char: '#'}}}",
         "text",
         with_null(st.one_of(st.sampled_from(["张三丰", "张三", "李", "", "😀abc"]), texts)), ("张三丰", "")),
    Case("parse_amount", "VARCHAR(60)", "{from: v, transform: {parse_amount: {scale: 2}}}", "numeric(40,2)",
         with_null(st.one_of(st.sampled_from(AMOUNTS), digits_text)),
         ("100元", "¥1,299.50", " 12.30 元", "- 5 元")),
    Case("parse_amount_free", "VARCHAR(60)", "{from: v, transform: parse_amount}", "numeric",
         with_null(st.sampled_from(AMOUNTS)), ("100元", "¥1,299.50", "-0")),
    Case("parse_amount_decimal", "DECIMAL(30,4)", "{from: v, transform: {parse_amount: {scale: 1}}}",
         "numeric(40,2)", with_null(st.decimals(min_value=-10 ** 20, max_value=10 ** 20, places=4)),
         (Decimal("1.25"),)),
    Case("fen_to_yuan", "BIGINT", "{from: v, transform: fen_to_yuan}", "numeric(30,2)", with_null(numbers),
         (129950, 0, -1)),
    Case("fen_to_yuan_decimal", "DECIMAL(20,2)", "{from: v, transform: fen_to_yuan}", "numeric",
         with_null(st.decimals(min_value=-10 ** 15, max_value=10 ** 15, places=2)), (Decimal("12.00"),)),
    Case("fen_to_yuan_text", "VARCHAR(40)", "{from: v, transform: fen_to_yuan}", "numeric(40,2)",
         with_null(st.one_of(digits_text, st.sampled_from(["12", "-0", "1.5", "１２", ""]))), ("12",)),
    Case("yuan_to_fen", "VARCHAR(60)", "{from: v, transform: yuan_to_fen}", "numeric(40,0)",
         with_null(st.sampled_from(AMOUNTS)), ("100元", "¥1,299.50")),
    Case("to_int", "VARCHAR(40)", "{from: v, transform: to_int}", "numeric(40,0)",
         with_null(st.one_of(digits_text, st.sampled_from(["42", "-0", "4.0", "４２", " 42 "]))), ("42",)),
    Case("to_decimal", "VARCHAR(40)", "{from: v, transform: {to_decimal: {scale: 2}}}", "numeric(40,2)",
         with_null(st.one_of(digits_text, st.sampled_from(["12.345", "-0.005", "1,000", ".5"]))),
         ("12.345",)),
    Case("strip_null_if_empty", "VARCHAR(20)", "{from: v, transform: [strip, null_if_empty]}", "text",
         with_null(st.one_of(st.sampled_from(STATUSES + EDGES), texts)),
         ("a b", " ", "", "热爱生活。", "咖啡☕", "\u3002 x \u3002")),
    Case("timezone_fixed", "DATETIME(6)", "{from: v, transform: {timezone: {from: '+08:00', to: UTC}}}",
         "timestamptz", with_null(wall_times), (datetime(2024, 1, 1, 8),)),
    Case("timezone_named", "DATETIME(6)", "{from: v, transform: {timezone: {from: Asia/Shanghai, "
         "to: America/New_York}}}", "timestamp", with_null(wall_times), (datetime(2024, 1, 1, 8),)),
    Case("localized_shanghai", "DATETIME(3)", "v", "timestamptz", with_null(wall_times),
         (datetime(2024, 1, 1, 8),), SHANGHAI),
    Case("localized_west", "DATETIME(6)", "v", "timestamptz", with_null(wall_times),
         (datetime(2024, 1, 1, 8),), WEST5),
    Case("localized_new_york", "DATETIME(6)", "v", "timestamptz", with_null(wall_times),
         (datetime(2024, 1, 1, 8),), NEW_YORK),
    Case("timestamp", "TIMESTAMP(6) NULL", "v", "timestamptz",
         with_null(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2038, 1, 1))),
         (datetime(2024, 1, 1, 8),)),
    Case("timestamp_to_zone", "TIMESTAMP(6) NULL", "{from: v, transform: {timezone: {to: Asia/Shanghai}}}",
         "timestamp", with_null(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2038, 1, 1))),
         (datetime(2024, 1, 1, 8),)),
    Case("time", "TIME(6)", "v", "interval",
         with_null(st.timedeltas(min_value=-timedelta(hours=838), max_value=timedelta(hours=838))),
         (timedelta(hours=-30, microseconds=1),)),
    Case("constant", "INT", "{value: 商城}", "text", with_null(numbers.map(lambda n: n % 100)), (1,)),
]


@pytest.fixture(scope="module")
def servers(mariadb: MariaDBServer, postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    name = "columnsql_src"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    with postgres.connect() as conn:
        conn.execute("DROP DATABASE IF EXISTS columnsql_tgt WITH (FORCE)")
        conn.execute("CREATE DATABASE columnsql_tgt")
    yield name, "columnsql_tgt"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")


def _mapping(tmp_path: Path, case: Case):
    path = tmp_path / f"{case.name}.yaml"
    path.write_text(f"mappings:\n  - {{name: m, source: s, table: {case.name}, target: {case.name}, "
                    "key: [id], "
                    f"columns: {{id: id, v: {case.column}}}}}\n")
    context = TransformContext(secret=lambda kind, name: "salt", source_timezone=case.zone)
    aware = {"v"} if case.target_type == "timestamptz" else set()
    return compile_mapping(load_mappings([path])[0], context, "public", aware_columns=aware)


class Bench:
    """One case's tables on both servers."""

    def __init__(self, case: Case, mariadb: MariaDBServer, postgres: PostgresServer,
                 databases: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.case, self.mariadb, self.database = case, mariadb, databases[0]
        self.pg = psycopg.connect(postgres.dsn(databases[1]), autocommit=True)
        for table in (case.name, f"{case.name}_sql"):
            self.pg.execute(f'DROP TABLE IF EXISTS "{table}"')
            self.pg.execute(f'CREATE TABLE "{table}" (id integer PRIMARY KEY, v {case.target_type})')
        with mariadb.connect(self.database) as conn, conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{case.name}`")
            cur.execute(f"CREATE TABLE `{case.name}` (id INT PRIMARY KEY, v {case.source_type}) "
                        "CHARSET utf8mb4")
        self.mapping = _mapping(tmp_path, case)
        self.reader = SourceReader(root_source(mariadb, self.database, monkeypatch))
        types = column_types(self.pg, self.mapping.table)
        spec = self.mapping.spec.column("v")
        assert spec is not None
        self.compiled = compile_column(spec, self.reader.source_columns(case.name), types.get("v"), case.zone)
        assert self.compiled.copy is not None, case.name

    def close(self) -> None:
        self.reader.close()
        self.pg.close()

    def run(self, values: list[Any]) -> list[Any]:
        """Compares both paths on these values; returns the values the SQL form vouched for."""
        name = self.case.name
        with self.mariadb.connect(self.database) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute(f"DELETE FROM `{name}`")
            if values:
                cur.executemany(f"INSERT INTO `{name}` VALUES (%s, %s)", list(enumerate(values)))
            part = self.compiled.source_part or "NULL"
            cur.execute(f"SELECT id, {self.compiled.copy}, {part} FROM `{name}` ORDER BY id", ())
            computed = {row[0]: row[1:] for row in cur.fetchall()}
        rows, _ = self.reader.chunk(name, ("id",), ["id", "v"], None, 1000)
        vouched = []
        python: dict[int, Any] = {}
        for row in rows:
            copy, part = computed[row["id"]]
            if self.compiled.source_part is not None and (copy is None) != (part is None):
                raise AssertionError(f"{name}: the COPY and hash forms disagree on vouching for {row['v']!r}")
            if copy is None:
                continue
            try:
                python[row["id"]] = self.mapping.columns[1].compute(row)
            except TransformError as exc:
                raise AssertionError(f"{name}: SQL vouched for {row['v']!r}, which Python refuses: "
                                     f"{exc}") from exc
            vouched.append(values[row["id"]])
        self._compare(python, {i: c[0] for i, c in computed.items() if i in python},
                      {i: c[1] for i, c in computed.items() if i in python}, values)
        return vouched

    def _compare(self, python: dict[int, Any], copies: dict[int, bytes], parts: dict[int, str],
                 values: list[Any]) -> None:
        name = self.case.name
        self.pg.execute(f'DELETE FROM "{name}"; DELETE FROM "{name}_sql"')
        with self.pg.cursor() as cur:
            with cur.copy(f'COPY "{name}" (id, v) FROM STDIN') as copy:  # as syncd writes values
                copy.write(b"".join(copy_fields([key, value]) + b"\n" for key, value in python.items()))
            with cur.copy(f'COPY "{name}_sql" (id, v) FROM STDIN') as copy:
                copy.write(b"".join(copy_fields([key]) + b"\t" + _bytes(field) + b"\n"
                                    for key, field in copies.items()))
        stored = dict(self.pg.execute(f'SELECT id, v::text FROM "{name}"').fetchall())
        from_sql = dict(self.pg.execute(f'SELECT id, v::text FROM "{name}_sql"').fetchall())
        part = self.compiled.target_part
        hashed = dict(self.pg.execute(f'SELECT id, {part} FROM "{name}"').fetchall()) if part else {}
        for key, value in python.items():
            where = f"{name}: {values[key]!r} -> Python {value!r}"
            assert from_sql[key] == stored[key], f"{where}: stored {stored[key]!r}, SQL {from_sql[key]!r}"
            if part:
                assert hashed[key] == parts[key], (f"{where}: hashed {hashed[key]!r} by PostgreSQL, "
                                                   f"{parts[key]!r} by MariaDB")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_sql_form_equals_the_python_mapping(case: Case, mariadb: MariaDBServer, postgres: PostgresServer,
                                               servers: tuple[str, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bench = Bench(case, mariadb, postgres, servers, tmp_path, monkeypatch)
    try:
        vouched = bench.run(list(case.typical))
        assert vouched == list(case.typical), f"{case.name}: SQL did not vouch for typical values"

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(st.lists(case.values, max_size=12))
        def check(values: list[Any]) -> None:
            bench.run(values)

        check()
    finally:
        bench.close()


FILTERS = [
    ("v", "INT", "{v: {in: [1, '2', 3]}}", [None, 0, 1, 2, 3, 4]),
    ("v", "VARCHAR(10)", "{v: {ne: 'a'}}", [None, "a", "A", "a ", "b", ""]),
    ("v", "VARCHAR(10)", "{v: {ge: 'b'}}", [None, "a", "b", "ba", "中", "B"]),
    ("v", "INT", "{v: {is_null: true}}", [None, 0, 1]),
    ("v", "DATE", "{v: {lt: 2024-01-01}}", [None, "2023-12-31", "2024-01-01", "0000-00-00"]),
    ("v", "INT", "{v: {eq: true}}", [None, 0, 1]),  # booleans: Python decides
]


@pytest.mark.parametrize(("column", "kind", "where", "values"), FILTERS)
def test_where_filters_in_sql_equal_python(column: str, kind: str, where: str, values: list[Any],
                                           mariadb: MariaDBServer, servers: tuple[str, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(f"mappings:\n  - {{name: f, source: s, table: f, target: f, key: [id], where: {where}, "
                    f"columns: {{id: id}}}}\n")
    mapping = compile_mapping(load_mappings([path])[0], TransformContext(lambda k, n: "", UTC), "public")
    with mariadb.connect(servers[0]) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("DROP TABLE IF EXISTS f")
        cur.execute(f"CREATE TABLE f (id INT PRIMARY KEY, v {kind})")
        cur.executemany("INSERT INTO f VALUES (%s, %s)", list(enumerate(values)))
    reader = SourceReader(root_source(mariadb, servers[0], monkeypatch))
    try:
        scope = scope_sql(mapping.spec.conditions, reader.source_columns("f"))
        assert scope is not None
        rows, _ = reader.chunk("f", ("id",), ["id", "v"], None, 100)
        found = dict(reader._execute(f"SELECT id, {scope} FROM f", ()))
    finally:
        reader.close()
    decided = 0
    for row in rows:
        if found[row["id"]] is None:
            continue
        decided += 1
        assert bool(found[row["id"]]) == mapping.in_scope(row), (where, row)
    assert decided >= (0 if "true" in where else len(values) - 1)


def test_each_case_is_exercised_once() -> None:
    assert len({c.name for c in CASES}) == len(CASES)
    assert not list(itertools.chain.from_iterable(c.name.split() for c in CASES if " " in c.name))


def _bytes(field: str | bytes) -> bytes:
    return field.encode("utf-8") if isinstance(field, str) else bytes(field)
