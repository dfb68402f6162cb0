"""Table maps without full row metadata: checked against the schema history, then completed.

A TABLE_MAP event written under `binlog_row_metadata` MINIMAL or NO_LOG lists each column's
storage type and its type metadata (a VARCHAR's byte length, a DECIMAL's precision and scale, a
DATETIME's fraction digits, ...) and which columns may be NULL; MINIMAL adds signedness and the
charsets of text columns. It names nothing. The columns come from the schema history entry in
force (syncd/source/schema_history.py), and this module decides whether that entry really
describes the event:

* `mismatch` compares the event with the entry: the column count, each column's type code and
  metadata as the entry's `information_schema` definition implies them (`expected`), its
  nullability, and, where the event carries them, signedness and charsets. Any difference
  means the entry does not describe these rows (a DDL that never reached the binlog, a table
  changed while syncd could not pin it): the rows are not read by name.
* `complete` then gives the library's columns what full metadata would have given them: names,
  signedness, collations (binary for binary strings), ENUM/SET labels and the primary key, so
  every decoder (the library's, the generated Python, the C one) reads these rows exactly as it
  reads rows written with full metadata.

`read_columns` reads a table's entry from `information_schema` (pinning it to a binlog position
is syncd/source/pinning.py's job).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymysql
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.row_event import find_charset

from syncd.model import ColumnSchema, Position, TableSchema
from syncd.source.charsets import charset_of_collation

_INTEGERS = {"tinyint": FIELD_TYPE.TINY, "smallint": FIELD_TYPE.SHORT, "mediumint": FIELD_TYPE.INT24,
             "int": FIELD_TYPE.LONG, "integer": FIELD_TYPE.LONG, "bigint": FIELD_TYPE.LONGLONG}
_BLOBS = {"tinytext": 1, "tinyblob": 1, "text": 2, "blob": 2, "mediumtext": 3, "mediumblob": 3,
          "longtext": 4, "longblob": 4}
_GEOMETRY = frozenset(("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                       "multipolygon", "geometrycollection"))
_BINARY = frozenset(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
                     "uuid", "inet4", "inet6", *_GEOMETRY))
"""Types whose values are bytes: a table map with full metadata gives them collation 'binary'."""
_FIXED_BINARY = {"uuid": 16, "inet6": 16, "inet4": 4}
"""MariaDB's own types, logged as BINARY(n)."""
_NUMERIC = frozenset((FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG,
                      FIELD_TYPE.LONGLONG, FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE))
"""The columns whose signedness a table map carries (the library's `_is_numeric_column`)."""

Expected = tuple[frozenset[int], Callable[[Any], str | None]]
"""The type codes a column's table map may show, and a check of its metadata (None: fits)."""


def _attribute(name: str, wanted: int | None) -> Callable[[Any], str | None]:
    def check(column: Any) -> str | None:
        found = getattr(column, name, None)
        return None if wanted is None or found == wanted else f"{name} {found}, the schema says {wanted}"
    return check


def _attributes(*pairs: tuple[str, int | None]) -> Callable[[Any], str | None]:
    checks = [_attribute(name, wanted) for name, wanted in pairs]
    return lambda column: next((problem for check in checks if (problem := check(column))), None)


def _set_size(labels: int) -> int:
    size = (labels + 7) // 8
    return 8 if size > 4 else size


def _fits(_: Any) -> None:
    return None


def expected(column: ColumnSchema) -> Expected | None:
    """What a table map shows of this column (None: a type syncd cannot check; it is not)."""
    kind = column.data_type
    if kind in _INTEGERS:
        return frozenset((_INTEGERS[kind],)), _fits
    if kind in ("decimal", "numeric"):
        return frozenset((FIELD_TYPE.NEWDECIMAL,)), _attributes(("precision", column.precision),
                                                                ("decimals", column.scale))
    simple = {"float": FIELD_TYPE.FLOAT, "double": FIELD_TYPE.DOUBLE, "real": FIELD_TYPE.DOUBLE,
              "year": FIELD_TYPE.YEAR, "date": FIELD_TYPE.DATE}
    if kind in simple:
        return frozenset((simple[kind],)), _fits
    if kind == "bit":
        return frozenset((FIELD_TYPE.BIT,)), _attribute("bits", column.precision)
    temporal = {"datetime": (FIELD_TYPE.DATETIME2, FIELD_TYPE.DATETIME),
                "timestamp": (FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIMESTAMP),
                "time": (FIELD_TYPE.TIME2, FIELD_TYPE.TIME)}
    if kind in temporal:
        new, old = temporal[kind]
        fraction = column.fraction or 0
        return frozenset((new, old)), lambda c: _attribute("fsp", fraction)(c) if c.type == new else None
    return _strings(column)


def _strings(column: ColumnSchema) -> Expected | None:
    kind = column.data_type
    rule = _STRING_RULES.get(kind)
    if rule is not None:
        codes, attribute, value = rule(column)
        return frozenset(codes), _attribute(attribute, value)
    if kind in _GEOMETRY:
        return frozenset((FIELD_TYPE.GEOMETRY,)), _fits
    return None


_STRING_RULES: dict[str, Callable[[ColumnSchema], tuple[tuple[int, ...], str, int | None]]] = {
    "char": lambda c: ((FIELD_TYPE.STRING,), "max_length", c.octet_length),
    "binary": lambda c: ((FIELD_TYPE.STRING,), "max_length", c.octet_length),
    "varchar": lambda c: ((FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING), "max_length", c.octet_length),
    "varbinary": lambda c: ((FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING), "max_length", c.octet_length),
    "enum": lambda c: ((FIELD_TYPE.ENUM,), "size", 1 if len(c.labels) < 256 else 2),
    "set": lambda c: ((FIELD_TYPE.SET,), "size", _set_size(len(c.labels))),
    "json": lambda c: ((FIELD_TYPE.JSON, FIELD_TYPE.BLOB), "length_size", 4),
    **{kind: (lambda c, n=size: ((FIELD_TYPE.STRING,), "max_length", n))
       for kind, size in _FIXED_BINARY.items()},
    **{kind: (lambda c, n=size: ((FIELD_TYPE.BLOB,), "length_size", n)) for kind, size in _BLOBS.items()},
}
"""Per text or binary type: the type codes its table map may show, the metadata attribute
checked and its value."""


# --------------------------------------------------------------------------- the check


def mismatch(event: Any, schema: TableSchema) -> str | None:
    """Why the table map `event` (the library's TableMapEvent) is not described by `schema`,
    or None when it is."""
    columns = schema.columns or ()
    found = event.columns
    if len(found) != len(columns):
        return (f"the binlog's table map has {len(found)} columns, the schema history "
                f"{len(columns)} ({', '.join(c.name for c in columns)})")
    unsigned = getattr(event.optional_metadata, "unsigned_column_list", None) or []
    charsets = _event_charsets(event)
    for index, (column, known) in enumerate(zip(found, columns, strict=True)):
        problem = (_type_problem(column, known) or _null_problem(event, index, known)
                   or _sign_problem(column, known, unsigned, index)
                   or _charset_problem(known, charsets.get(index), event))
        if problem:
            return f"column {index + 1} ({known.name} {known.column_type}): {problem}"
    return None


def _type_problem(column: Any, known: ColumnSchema) -> str | None:
    rule = expected(known)
    if rule is None:
        return None
    codes, check = rule
    if column.type not in codes:
        return f"the binlog has type code {column.type}, the schema expects {sorted(codes)}"
    return check(column)


def _null_problem(event: Any, index: int, known: ColumnSchema) -> str | None:
    mask = event.null_bitmask
    nullable = bool(mask[index // 8] & (1 << (index % 8))) if index // 8 < len(mask) else known.nullable
    if nullable == known.nullable:
        return None
    return f"the binlog says {'NULL' if nullable else 'NOT NULL'}, the schema the opposite"


def _sign_problem(column: Any, known: ColumnSchema, unsigned: list[bool], index: int) -> str | None:
    if column.type not in _NUMERIC or index >= len(unsigned) or unsigned[index] == known.unsigned:
        return None
    return f"the binlog says {'UNSIGNED' if unsigned[index] else 'signed'}, the schema the opposite"


def _event_charsets(event: Any) -> dict[int, int]:
    """Column index -> collation id, of the columns whose charset the event carries (MINIMAL)."""
    ids = getattr(event.optional_metadata, "charset_collation_list", None) or []
    characters = [i for i, c in enumerate(event.columns)
                  if event._is_character_column(c.type, dbms=getattr(event, "dbms", "mysql"))]
    return dict(zip(characters, ids, strict=False)) if len(ids) == len(characters) else {}


def _charset_problem(known: ColumnSchema, collation_id: int | None, event: Any) -> str | None:
    if collation_id is None:
        return None
    _, collation, _ = find_charset(str(collation_id), dbms=getattr(event, "dbms", "mysql"))
    if collation is None:  # an id the library does not know: nothing to compare
        return None
    logged = charset_of_collation(collation)
    mine = charset_of_collation(_collation(known) or "binary")
    if _same_charset(logged, mine):
        return None
    return f"the binlog says charset {logged}, the schema {mine}"


def _same_charset(one: str, other: str) -> bool:
    aliases = {"utf8": "utf8mb3"}
    return aliases.get(one, one) == aliases.get(other, other)


def doubt(event: Any, entry: TableSchema | None, at: Position) -> str | None:
    """Why a table map without column names cannot be read by the history entry in force at
    `at`, or None."""
    where = f"table {event.schema}.{event.table} at {at}: its row events carry no column names"
    if entry is None:
        return (f"{where} (binlog_row_metadata was not FULL when they were written) and syncd has "
                "no schema history of the table that early")
    if entry.columns is None:
        return f"{where}, and the schema history does not know its columns here: {entry.note}"
    if not entry.columns:
        return f"{where}, and the schema history says the table did not exist here ({entry.note})"
    problem = mismatch(event, entry)
    if problem is None:
        return None
    return (f"{where}, and the binlog's table map does not fit the schema history entry from "
            f"{entry.position} ({problem}): a DDL syncd did not see (sql_log_bin=0?) may have changed it")


# --------------------------------------------------------------------------- completing


def _collation(known: ColumnSchema) -> str | None:
    if known.data_type in _BINARY:
        return "binary"
    return known.collation


def complete(event: Any, schema: TableSchema) -> None:
    """Give the event's columns and table what full row metadata would have (see the module
    docstring); `schema` fits the event (`mismatch` said so)."""
    for column, known in zip(event.columns, schema.columns or (), strict=True):
        column.name = known.name
        column.unsigned = column.type in _NUMERIC and known.unsigned
        column.is_primary = known.name in schema.primary_key
        collation = _collation(known)
        if collation is not None and column.type not in _NUMERIC:
            column.collation_name = collation
            column.character_set_name = charset_of_collation(collation)
        if column.type == FIELD_TYPE.ENUM:
            column.enum_values = ["", *known.labels]
        elif column.type == FIELD_TYPE.SET:
            column.set_values = list(known.labels)
    key = schema.primary_key
    event.table_obj.primary_key = "" if not key else key[0] if len(key) == 1 else tuple(key)


# --------------------------------------------------------------------------- reading


COLUMNS_QUERY = (
    "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION, "
    "NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION")
KEY_QUERY = ("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
             "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION")


def read_columns(cur: pymysql.cursors.Cursor, database: str,
                 table: str) -> tuple[tuple[ColumnSchema, ...], tuple[str, ...]]:
    """A table's columns and primary key as `information_schema` says now (() for no table)."""
    cur.execute(COLUMNS_QUERY, (database, table))
    columns = tuple(column_schema(row) for row in cur.fetchall())
    cur.execute(KEY_QUERY, (database, table))
    return columns, tuple(str(row[0]) for row in cur.fetchall())


def column_schema(row: tuple) -> ColumnSchema:
    """One row of `COLUMNS_QUERY`."""
    name, kind, column_type, nullable, octets, precision, scale, fraction, charset, collation = row
    kind, column_type = str(kind).lower(), str(column_type)
    labels = enum_labels(column_type) if kind in ("enum", "set") else ()
    return ColumnSchema(str(name), kind, column_type, str(nullable).upper() == "YES", _number(octets),
                        _number(precision), _number(scale), _number(fraction),
                        None if charset is None else str(charset),
                        None if collation is None else str(collation), labels)


def _number(value: Any) -> int | None:
    return None if value is None else int(value)


_ESCAPES = {"0": "\0", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "b": "\b"}


def enum_labels(column_type: str) -> tuple[str, ...]:
    """The labels of `enum('a','it''s','a\\\\b')` / `set(...)` as the server spells COLUMN_TYPE:
    each quoted, a quote doubled, a backslash and control characters escaped."""
    text = column_type[column_type.index("(") + 1:column_type.rindex(")")]
    labels: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "'":
            i += 1
            continue
        label, i = _quoted(text, i + 1)
        labels.append(label)
    return tuple(labels)


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The label starting after an opening quote at `i`; returns it and the index after it."""
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == "'" and text[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        elif char == "'":
            return "".join(out), i + 1
        elif char == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out), i
