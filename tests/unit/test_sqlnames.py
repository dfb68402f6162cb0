"""The SQL builders introduce no names but the reserved ones (syncd/sqlnames.py), and never write
a reserved name bare where a column could be meant.

Every builder that writes SQL around a user's table is run here on one mapping with hostile
names (a `%`, a backtick, a space, CJK, mixed case), on both servers; the readers run against
fake connections that record the statements. Each statement is then split into tokens: every
quoted identifier must be one of the user's names or a reserved one, and every bare word SQL
vocabulary. A builder that invents an alias (`AS t`) fails here; a new keyword or function goes
into the vocabulary below, a new name of syncd's own into syncd/sqlnames.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from psycopg import sql

from syncd import sqlnames
from syncd.mapping.plan import Mapping, compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import ColumnType, Delete, DeleteSlice, SoftDelete, SourceColumn, TargetTable, Upsert
from syncd.reconcile.compare import canonicalize_rows
from syncd.reconcile.copytext import plan_copy_text
from syncd.reconcile.layout import Layout, build_layout
from syncd.reconcile.pushdown import Pushdown, plan_pushdown
from syncd.sink.postgres import Staging
from syncd.sink.slices import TargetReader, slice_has_rows
from syncd.sink.statements import Statements, apply_staged, pg_name, stage_table
from syncd.source.chunks import SourceReader
from syncd.source.snapshot import SourceSnapshot, select_statement

MAPPING = """
mappings:
  - name: m
    source: shop
    table: "legacy`log%"
    target: "order lines%"
    target_schema: Sch
    key: [channel, "Source Id"]
    columns:
      channel: {value: shop}
      "Source Id": id
      "Memo%": "memo%"
      amount: amount
      "booked at": booked_at
      名称: 名称
  - name: copied
    source: shop
    table: "legacy`log%"
    target: "order lines%"
    target_schema: Sch
    key: ["Source Id"]
    columns:
      "Source Id": id
      "Memo%": "memo%"
      名称: 名称
"""
SOURCE_TYPES = {"id": "bigint", "memo%": "varchar", "amount": "decimal", "booked_at": "datetime",
                "名称": "varchar"}
SOURCE_COLUMNS = {n: SourceColumn(n, t, scale=2 if t == "decimal" else None) for n, t in SOURCE_TYPES.items()}
TARGET_TYPES = {"channel": "text", "Source Id": "bigint", "Memo%": "text", "amount": "numeric",
                "booked at": "timestamp without time zone", "名称": "text", "gone at": "timestamptz"}
TABLE = TargetTable("Sch", "order lines%")
USER = {"legacy`log%", *SOURCE_TYPES, TABLE.schema, TABLE.name, *TARGET_TYPES}

PG_VOCABULARY = {
    "AND", "AS", "AT", "BY", "COMMIT", "CONFLICT", "COPY", "CREATE", "DATA", "DELETE", "DO", "EXISTS",
    "FROM", "IF", "IN", "INSERT", "INTERVAL", "INTO", "IS", "NO", "NOT", "NOTHING", "NULL", "ON",
    "RETURNING", "ROWS", "SELECT", "SET", "STDIN", "TABLE", "TEMPORARY", "TIME", "UPDATE", "USING",
    "VALUES", "WHERE", "WITH", "ZONE", "bigint",
    "ISOLATION", "LEVEL", "READ", "REPEATABLE", "TRANSACTION", "bit", "coalesce", "concat", "count",
    "hash_record_extended", "max", "md5", "min", "octet_length", "substr", "sum", "text", "true",
    "string_agg", "to_char", "encode", "OR", "ORDER", "GROUP", "unnest", "numeric",
}
MY_VOCABULARY = {
    "AND", "AS", "BINARY", "BY", "CAST", "CHAR", "COALESCE", "CONCAT", "CONCAT_WS", "CONV", "CONVERT",
    "COUNT", "CRC32", "CRC32C", "DATE_FORMAT", "FROM", "IFNULL", "IN", "ISNULL", "LENGTH", "LIMIT", "MAX",
    "MD5", "MIN", "OR", "ORDER", "REPLACE", "SELECT", "SUBSTRING", "SUM", "TRAILING", "TRIM", "UNSIGNED",
    "USING", "WHERE", "X", "_utf8mb4", "utf8mb4",
    # statements that name no table or column
    "COMMIT", "CONSISTENT", "LIKE", "MASTER", "SHOW", "SNAPSHOT", "START", "STATUS", "TRANSACTION", "WITH",
    # the catalogue, read for a table's column charsets
    "information_schema", "COLUMNS", "COLUMN_NAME", "ORDINAL_POSITION", "CHARACTER_SET_NAME", "DATA_TYPE",
    "TABLE_NAME", "TABLE_SCHEMA", "IS", "NOT", "NULL",
    "COLUMN_TYPE", "NUMERIC_SCALE", "NUMERIC_PRECISION",
    # the SQL forms of mapped columns (syncd/reconcile/columnsql.py) and their digests
    "IF", "DECIMAL", "CASE", "WHEN", "THEN", "ELSE", "END", "REGEXP", "GROUP_CONCAT", "SEPARATOR", "DIV",
    "GROUP", "OFFSET", "ASCII", "LEFT", "RIGHT", "CHAR_LENGTH", "REPEAT", "TRUNCATE", "ABS", "INTERVAL",
    "SECOND", "DAY", "YEAR", "HEX", "LOWER", "TIMESTAMP", "DATE", "TIME", "TIME_TO_SEC", "MICROSECOND",
    "FLOOR", "TRUE", "FALSE", "BOTH",
}
PG_NAMES = {"excluded", "pg_temp"}
"""Names PostgreSQL gives meaning to: the proposed row of ON CONFLICT, the session's temp schema."""
AFTER = {"AS", "WITH", "FROM", "USING", "."}
"""A reserved name is defined (`AS x`, `WITH x`, `FROM x`, `USING x`) or qualifies (`x.`)."""

_PG_TOKEN = re.compile(r"""(?P<skip>'(?:[^']|'')*'|%s|\d+(?:\.\d+)?)|U&"(?P<escaped>(?:[^"]|"")*)"|"""
                       r""""(?P<quoted>(?:[^"]|"")*)"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<dot>\.)""")
_MY_TOKEN = re.compile(r"""(?P<skip>'(?:[^']|'')*'|%s|0x[0-9a-f]+|\d+)|`(?P<quoted>(?:[^`]|``)*)`|"""
                       r"""(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<dot>\.)""")


def pg_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) of each identifier, word and dot; literals and placeholders left out."""
    tokens = []
    for match in _PG_TOKEN.finditer(text):
        if match["escaped"] is not None:
            name = match["escaped"].replace('""', '"')
            tokens.append(("name", re.sub(r"\\(\\|[0-9A-Fa-f]{4})",
                                          lambda m: "\\" if m[1] == "\\" else chr(int(m[1], 16)), name)))
        elif match["quoted"] is not None:
            tokens.append(("name", match["quoted"].replace('""', '"')))
        elif match["word"] is not None or match["dot"] is not None:
            tokens.append(("word", match[0]))
    return tokens


def my_tokens(text: str) -> list[tuple[str, str]]:
    """The same for MySQL, of a statement as PyMySQL formats it."""
    tokens = []
    for match in _MY_TOKEN.finditer(text.replace("%%", "%")):
        if match["quoted"] is not None:
            tokens.append(("name", match["quoted"].replace("``", "`")))
        elif match["word"] is not None or match["dot"] is not None:
            tokens.append(("word", match[0]))
    return tokens


def check(tokens: list[tuple[str, str]], vocabulary: set[str], statement: str) -> None:
    reserved = sqlnames.reserved_names()
    for index, (kind, value) in enumerate(tokens):
        if kind == "word":
            assert value == "." or value in vocabulary or value in PG_NAMES, \
                f"bare word {value!r} is not SQL vocabulary in: {statement}"
            continue
        if value in USER:
            continue
        before = tokens[index - 1][1] if index else ""
        after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if value in PG_NAMES:
            assert after == ".", f"{value!r} not qualifying in: {statement}"
            continue
        assert value.startswith(reserved), f"{value!r} is neither the user's nor reserved in: {statement}"
        assert before in AFTER or after == ".", f"reserved {value!r} used bare in: {statement}"


# --------------------------------------------------------------------------- the builders


@pytest.fixture(scope="module")
def mappings(tmp_path_factory: pytest.TempPathFactory) -> list[Mapping]:
    """`m` (a slice of the table, reconciled through pushdown) and `copied` (copied as COPY text)."""
    path: Path = tmp_path_factory.mktemp("m") / "m.yaml"
    path.write_text(MAPPING)
    context = TransformContext(secret=lambda kind, name: "salt", source_timezone=UTC)
    return [compile_mapping(spec, context, "public") for spec in load_mappings([path])]


@pytest.fixture(scope="module")
def mapping(mappings: list[Mapping]) -> Mapping:
    return mappings[0]


@pytest.fixture(scope="module")
def layout(mapping: Mapping) -> Layout:
    types = {n: ColumnType(n, t) for n, t in TARGET_TYPES.items()}
    return build_layout(mapping, ("id",), SOURCE_TYPES, types)


@pytest.fixture(scope="module")
def pushdown(layout: Layout) -> Pushdown:
    types = {n: ColumnType(n, t) for n, t in TARGET_TYPES.items()}
    found = plan_pushdown(layout, SOURCE_COLUMNS, types, UTC, "UTF8")
    assert found is not None
    return found


class Recorder:
    """A psycopg or PyMySQL connection (and cursor) that records statements and answers zeros."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.description = [("id", 253), ("b", 253), ("c", 253)]
        self.rows: list[tuple] = []

    def execute(self, query: Any, params: Any = None) -> Recorder:
        text = query.as_string(None) if isinstance(query, sql.Composable) else query
        self.statements.append(text)
        if text.startswith("SHOW"):
            self.rows = [("binlog_snapshot_file", "f"), ("binlog_snapshot_position", "4")]
        elif "GROUP_CONCAT" in text:  # digests: bucket, count, MD5, keys set aside
            self.rows = [(0, 0, None, None)]
        else:  # the catalogue: no column read as bytes (utf8mb4 only)
            self.rows = [] if "information_schema" in text else [(0, 0, 0)]
        return self

    def fetchall(self) -> list[tuple]:
        return self.rows

    def fetchone(self) -> tuple:
        return self.rows[0]

    def fetchmany(self, size: int) -> list[tuple]:
        rows, self.rows = self.rows[:0], []
        return rows

    def cursor(self, name: str | None = None) -> Recorder:
        return self

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    @contextmanager
    def copy(self, statement: Any) -> Iterator[None]:
        self.execute(statement)
        yield

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def rollback(self) -> None:
        return None


def postgres_statements(mapping: Mapping, layout: Layout, pushdown: Pushdown) -> list[str]:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    key = ("channel", "Source Id")
    values = {"channel": "shop", "Source Id": 1, "Memo%": "m", "amount": 1, "booked at": at, "名称": "n"}
    statements = Statements()
    ops = [Upsert(TABLE, key, values), Delete(TABLE, key, ("shop", 1)),
           SoftDelete(TABLE, key, ("shop", 1), "gone at", at),
           DeleteSlice(TABLE, (("channel", "shop"),)),
           DeleteSlice(TABLE, (("channel", "shop"),), "gone at", at)]
    found = [statements.for_op(op)[0].as_string(None) for op in ops]
    recorder = Recorder()
    for kind, columns in (("upsert", tuple(values)), ("soft", ("gone at", *key)), ("delete", key)):
        copy, apply = Staging()._prepare(recorder, (TABLE, kind, columns, key))
        found += [copy.as_string(None), apply.as_string(None)]
    stage = stage_table("0" * 20)
    found.append(apply_staged(stage, TABLE, "upsert", tuple(values), key).as_string(None))
    reader = TargetReader(recorder, layout.slice_shape(), lambda rows: canonicalize_rows(rows, []))
    reader.range_with_checksum(None, (10,))
    reader.digest(pushdown.target_row, (1,), (10,))
    reader.bucket_digests(pushdown.target_row, (1,), (10,), 5, [(3,), (4,)])
    reader.in_ranges([((1,), (10,)), ((20,), (30,))])
    reader.by_keys([("shop", 1)])
    list(reader.slice_keys())
    slice_has_rows(recorder, TABLE, {"channel": "shop"})
    return found + recorder.statements


def mysql_statements(copied: Mapping, pushdown: Pushdown) -> list[str]:
    recorder = Recorder()
    reader = SourceReader.__new__(SourceReader)
    table, key, columns = "legacy`log%", ("id",), tuple(SOURCE_TYPES)
    reader.source, reader.conn = SimpleNamespace(name="shop", database="shop"), recorder
    reader._raw = {table: {}}  # utf8mb4
    line = plan_copy_text(copied, SOURCE_COLUMNS, {n: ColumnType(n, t) for n, t in TARGET_TYPES.items()},
                          UTC, "UTF8")
    assert line is not None
    reader.chunk(table, key, columns, (1,), 10)
    reader.copy_lines(table, key, line.line, (1,), 10, reads=("memo%",))
    reader.chunk_range(table, key, columns, after=(1,), upto=(10,), limit=10, checksum=True)
    reader.digest(table, key, pushdown.source_row, scope=pushdown.scope, lower=(1,), upper=(10,))
    reader.bucket_digests(table, key, pushdown.source_row, scope="`memo%%` = 1", lower=(1,), upper=(10,),
                          width=5)
    reader.rows_in_ranges(table, key, columns, [((1,), (10,)), ((20,), (30,))])
    reader.rows_by_keys_fetched(table, key, columns, [(1,)])
    reader.source_columns(table)
    reader.rows_by_keys(table, key, columns, [(1,)])
    reader.rows_at_position(table, key, columns, [(1,)])
    snapshot = SourceSnapshot.__new__(SourceSnapshot)
    snapshot._conn, snapshot.source = recorder, SimpleNamespace(database="shop")
    snapshot.rows_by_key(table, key, [(1,)])
    return [*recorder.statements, select_statement(table, key, None, 5)]


def test_postgres_builders_use_only_user_and_reserved_names(mapping: Mapping, layout: Layout,
                                                            pushdown: Pushdown) -> None:
    statements = postgres_statements(mapping, layout, pushdown)
    assert len(statements) > 20
    for statement in statements:
        check(pg_tokens(statement), PG_VOCABULARY, statement)


def test_mysql_builders_use_only_user_and_reserved_names(mappings: list[Mapping], pushdown: Pushdown) -> None:
    statements = mysql_statements(mappings[1], pushdown)
    assert len(statements) > 10
    for statement in statements:
        check(my_tokens(statement), MY_VOCABULARY, statement)


def test_an_invented_alias_is_caught() -> None:
    """The check itself: a bare alias, an unreserved quoted one, a reserved one used bare."""
    for statement in ('SELECT hash_record_extended(t, 0) FROM (SELECT "amount" FROM "Sch"."x") t',
                      'SELECT "h" FROM (SELECT "amount" AS "h" FROM "Sch"."order lines%") AS "hashed"',
                      'SELECT hash_record_extended("syncd_row", 0) FROM (SELECT 1) AS "syncd_row"'):
        with pytest.raises(AssertionError):
            check(pg_tokens(statement), PG_VOCABULARY, statement)


class TestQuoting:
    def test_pg_name_keeps_percent_signs_away_from_psycopg(self) -> None:
        assert pg_name("Sch", "rate%").as_string(None) == '"Sch".U&"rate\\0025"'
        assert pg_name('a\\b"%').as_string(None) == 'U&"a\\\\b""\\0025"'
        assert pg_name("plain").as_string(None) == '"plain"'
        assert pg_tokens(pg_name('a\\b"%', "x").as_string(None)) == [
            ("name", 'a\\b"%'), ("word", "."), ("name", "x")]

    def test_my_name_is_a_format_string(self) -> None:
        assert sqlnames.my_name("we`ird%") == "`we``ird%%`"
        assert f"SELECT {sqlnames.my_name('50%s')} WHERE a = %s" % ("1",) == "SELECT `50%s` WHERE a = 1"
