"""Snapshot chunks as COPY text that the source server writes: no Python work per value.

Reading a row through PyMySQL and the mapping costs tens of microseconds in Python; the copy of
a million-row table is bound by it. For a mapping that only *copies* columns (renames allowed),
the value the target gets is the source value itself, so MariaDB can spell each row as one line
of PostgreSQL's COPY text format, and syncd hands the lines to COPY unread:

* numbers and dates as MySQL prints them (`-12.50`, `2024-02-29`); DATETIME as its wall time,
  followed by the source zone's offset when the target column is a `timestamptz` (so only zones
  with a fixed offset take part: a named zone with daylight saving has ambiguous wall times);
* text converted to UTF-8 with `\\`, tab, newline and carriage return escaped; NULL as `\\N`;
* fields joined by tabs, each line ended by a newline.

The lines go through the same staging table and `INSERT ... ON CONFLICT` as mapped rows
(syncd.sink.postgres.Staging), so PostgreSQL converts each value as it would a parameter. Only
pairs of types where the text means the same to both servers take part (`value_kind` in
pushdown.py; a DECIMAL only into `numeric`). A chunk PostgreSQL rejects (a zero date, a value
out of range) rolls back and is copied again through the mapping, which turns the bad rows into
dead letters one by one: the result is the same as the mapping's, only the fast way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from syncd.config import fixed_offset
from syncd.mapping.plan import Mapping
from syncd.model import ColumnType
from syncd.reconcile.layout import plain_copy
from syncd.reconcile.pushdown import offset_text, source_type_of, value_kind
from syncd.sqlnames import my_name

# Hex literals with an introducer: the same bytes whatever the session's sql_mode (a backslash
# in a quoted literal is an escape unless NO_BACKSLASH_ESCAPES).
_BACKSLASH, _TAB, _NEWLINE, _RETURN = "_utf8mb4 X'5C'", "_utf8mb4 X'09'", "_utf8mb4 X'0A'", "_utf8mb4 X'0D'"
_ESCAPES = ((_BACKSLASH, "_utf8mb4 X'5C5C'"), (_TAB, "_utf8mb4 X'5C74'"), (_NEWLINE, "_utf8mb4 X'5C6E'"),
            (_RETURN, "_utf8mb4 X'5C72'"))
_NULL = "_utf8mb4 X'5C4E'"


@dataclass(frozen=True)
class CopyText:
    """How the source server writes one mapping's rows as COPY lines."""

    line: str
    """MySQL expression: the row's COPY line, newline included, as a binary string."""
    columns: tuple[str, ...]
    """The target columns the line's fields fill, in order."""


def plan_copy_text(mapping: Mapping, source_types: dict[str, str], target_types: dict[str, ColumnType],
                   source_zone: tzinfo, target_encoding: str, *,
                   raw: frozenset[str] = frozenset()) -> CopyText | None:
    """The COPY line of this mapping's rows, or None when the mapping does more than copy values
    whose text both servers read alike, or copies a column of `raw` (text in a charset whose
    bytes the server may fail to convert: it would write `?` where the mapping path
    dead-letters the row, syncd/source/chunks.py)."""
    spec = mapping.spec
    if (mapping.in_scope is not None or mapping.identity is not None or mapping.lookups
            or spec.soft_delete_column or spec.commit_time_column or target_encoding.upper() != "UTF8"):
        return None
    fields, columns = [], []
    for column in spec.columns:
        source = plain_copy(column)
        if source is None or source not in source_types or source in raw:
            return None
        field = _field(source, source_type_of(source, source_types), target_types.get(column.target),
                       source_zone)
        if field is None:
            return None
        fields.append(f"IFNULL({field}, {_NULL})")
        columns.append(column.target)
    line = f", {_TAB}, ".join(fields)
    return CopyText(line=f"CAST(CONCAT({line}, {_NEWLINE}) AS BINARY)", columns=tuple(columns))


def _field(source: str, source_type: str, kind: ColumnType | None, zone: tzinfo) -> str | None:
    value = value_kind(source_type, kind, zone)
    quoted = my_name(source)
    if value is None or (value == "decimal" and kind is not None and kind.data_type != "numeric"):
        return None  # a DECIMAL into an integer column rounds as a parameter but fails as text
    if value == "text":
        text = f"CONVERT({quoted} USING utf8mb4)"
        for plain, escaped in _ESCAPES:
            text = f"REPLACE({text}, {plain}, {escaped})"
        return text
    if value == "datetime+":
        offset = fixed_offset(zone)
        assert offset is not None
        return f"CONCAT(CAST({quoted} AS CHAR), '{offset_text(offset)}')"
    return f"CAST({quoted} AS CHAR)"
