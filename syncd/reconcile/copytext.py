"""Snapshot chunks as COPY text that the source server writes: no Python work per value.

Reading a row through PyMySQL and the mapping costs tens of microseconds in Python; the copy of
a million-row table is bound by it. The source server can compute most mapped values itself
(syncd/reconcile/columnsql.py: value maps, masks, amounts, time zones, constants...), so it
spells each row as one line of PostgreSQL's COPY text format, and syncd hands the lines to COPY
unread: fields joined by tabs (text with `\\`, tab, newline and carriage return escaped, NULL as
`\\N`), the line ended by a newline; a soft-delete column as `\\N`, a commit-time column as the
copy's time, as the mapping writes them.

A row the SQL form cannot vouch for (its line is NULL) is read again and mapped in Python, which
gives a value or a dead letter; a row outside the `where:` filter has an empty line and is not
copied. Columns without an exact SQL form (`deferred`) are read as values and appended to the
line in Python. The lines go through the same staging table and `INSERT ... ON CONFLICT` as
mapped rows (syncd.sink.postgres.Staging), so PostgreSQL converts each value as it would a
parameter. A chunk PostgreSQL rejects (a value out of range, NUL in text) rolls back and is
copied again through the mapping, which turns the bad rows into dead letters one by one: the
result is the same as the mapping's, only the fast way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from syncd.mapping.plan import Mapping
from syncd.model import ColumnType, SourceColumn
from syncd.reconcile.columnsql import compile_column, literal, scope_sql

_TAB, _NEWLINE = "_utf8mb4 X'09'", "_utf8mb4 X'0A'"
_NULL = "_utf8mb4 X'5C4E'"


@dataclass(frozen=True)
class CopyText:
    """How the source server writes one mapping's rows as COPY lines."""

    line: str
    """MySQL expression: the row's COPY line (newline included) as a binary string; empty for a
    row outside the filter, NULL for a row left to Python (a PyMySQL format string)."""
    columns: tuple[str, ...]
    """The target columns the line's fields fill, in order; the deferred ones last."""
    deferred: tuple[str, ...] = ()
    """Target columns computed in Python, appended to each line."""
    reads: tuple[str, ...] = ()
    """The source columns the deferred columns read."""


def plan_copy_text(mapping: Mapping, sources: dict[str, SourceColumn], target_types: dict[str, ColumnType],
                   source_zone: tzinfo, target_encoding: str, *,
                   commit_time: datetime | None = None) -> CopyText | None:
    """The COPY line of this mapping's rows, or None when the source server can compute none of
    its columns (or the mapping has identity or lookup columns, or the target is not UTF8)."""
    spec = mapping.spec
    if mapping.identity is not None or mapping.lookups or target_encoding.upper() != "UTF8":
        return None
    fields, columns, deferred, reads = [], [], [], []
    for column in spec.columns:
        compiled = compile_column(column, sources, target_types.get(column.target), source_zone)
        if compiled.copy is None:
            deferred.append(column.target)
            reads += [s for s in column.sources if s not in reads]
            continue
        fields.append(compiled.copy)
        columns.append(column.target)
    if not fields or any(r not in sources for r in reads):
        return None
    fields += _written(spec.soft_delete_column, spec.commit_time_column, commit_time, columns)
    line = f"CONCAT({f', {_TAB}, '.join(fields)}{'' if deferred else f', {_NEWLINE}'})"
    scope = scope_sql(spec.conditions, sources)
    if scope is not None:
        line = f"CASE {scope} WHEN 1 THEN {line} WHEN 0 THEN '' END"
    return CopyText(line=f"CAST({line} AS BINARY)", columns=(*columns, *deferred), deferred=tuple(deferred),
                    reads=tuple(reads))


def _written(soft_delete: str | None, commit_time_column: str | None, commit_time: datetime | None,
             columns: list[str]) -> list[str]:
    """Fields of the columns the mapping writes itself: soft delete NULL, commit time."""
    fields = []
    if soft_delete:
        fields.append(_NULL)
        columns.append(soft_delete)
    if commit_time_column:
        assert commit_time is not None
        fields.append(literal(str(commit_time)))
        columns.append(commit_time_column)
    return fields
