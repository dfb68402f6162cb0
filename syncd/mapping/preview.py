"""What one mapping makes of given source rows, writing nothing (`syncd preview`), pure.

The rows are read from the source in one READ ONLY transaction (syncd/source/snapshot.py
`read_source_rows`: the operator's `--where` is raw SQL, so the server itself refuses anything
but reading), mapped here exactly as the pipeline maps an INSERT of that row (`map_change`),
and shown beside the target row they would produce, or with the reason they are filtered out
or would become a dead letter. For a mapping with an `identity:` block or `lookup:` columns,
each mapped row also shows how its person would resolve against the links stored now
(`syncd.identity.preview`, the links read by syncd/sink/persons.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.errors import TransformError
from syncd.identity import preview as identity_preview
from syncd.identity.preview import IdentityPreview, StoredLinks
from syncd.mapping.astext import as_text
from syncd.mapping.filters import build_filter
from syncd.mapping.plan import ChangeContext, Mapping, map_change, source_key_text
from syncd.mapping.spec import Condition, MappingSpec
from syncd.model import Op, Row, RowChange, Upsert, json_value, one_line, undecodable_columns

MAPPED = "mapped"
FILTERED = "filtered"
DEAD_LETTER = "dead_letter"


# --------------------------------------------------------------------------- mapping rows


@dataclass(frozen=True)
class PreviewRecord:
    """One source row and what the mapping makes of it."""

    key: str
    """`id=42` style text naming the source row."""
    source: Row
    status: str
    """MAPPED, FILTERED or DEAD_LETTER."""
    target: Row | None
    """The target row it would write (MAPPED only)."""
    reason: str | None
    """Why it is filtered out or dead-lettered."""
    warnings: tuple[str, ...] = ()
    """Things the pipeline would log about the row (zero dates read as NULL)."""
    op: Upsert | None = field(default=None, repr=False, compare=False)
    """The upsert it maps to (MAPPED only): its hashed match keys and lookups."""
    identity: IdentityPreview | None = None
    """How its person would resolve (`with_identity`), for mappings with identity or lookups."""


def preview_row(mapping: Mapping, row: Row, key_columns: tuple[str, ...], ctx: ChangeContext,
                zero_dates: tuple[str, ...] = ()) -> PreviewRecord:
    """What the pipeline does with this row when it is inserted (or copied by the initial load)."""
    change = RowChange(mapping.spec.table, Op.INSERT, None, row, key_columns=key_columns,
                       zero_dates=zero_dates, undecodable=undecodable_columns(row))
    key = source_key_text(change)
    warnings = tuple(f"{column}: a zero date, read as NULL" for column in zero_dates
                     if column in mapping.source_columns)
    mapped = map_change(mapping, change, ctx)
    if mapped.dead_letters:
        return PreviewRecord(key, row, DEAD_LETTER, None, mapped.dead_letters[0].reason, warnings)
    upserts = [op for op in mapped.ops if isinstance(op, Upsert)]
    if not upserts:
        return PreviewRecord(key, row, FILTERED, None, filter_reason(mapping.spec, row), warnings)
    return PreviewRecord(key, row, MAPPED, dict(upserts[-1].values), None, warnings, op=upserts[-1])


def filter_reason(spec: MappingSpec, row: Row) -> str:
    """`filtered out by where: is_test: 0 (is_test is 1)`, naming every condition that fails."""
    failed = []
    for condition in spec.conditions:
        test = build_filter([condition])
        try:
            holds = test is None or test(row)
        except TransformError as exc:
            failed.append(f"{condition_text(condition)} ({exc})")
            continue
        if not holds:
            failed.append(f"{condition_text(condition)} ({condition.column} is "
                          f"{show_value(row.get(condition.column))})")
    return "filtered out by where: " + ("; ".join(failed) or "the row is not in scope")


def condition_text(condition: Condition) -> str:
    """A `where:` condition written back as YAML: `is_test: 0`, `amount: {ge: 100}`."""
    if condition.op == "eq":
        return f"{condition.column}: {_yaml_scalar(condition.value)}"
    if isinstance(condition.value, list):
        value = "[" + ", ".join(_yaml_scalar(v) for v in condition.value) + "]"
    else:
        value = _yaml_scalar(condition.value)
    return f"{condition.column}: {{{condition.op}: {value}}}"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class SourceRows:
    """Rows read for a preview, normalised as the initial load normalises them."""

    key_columns: tuple[str, ...]
    rows: list[Row]
    zero_dates: list[tuple[str, ...]]
    """Per row: columns whose zero date ('0000-00-00') was read as NULL."""


def preview_rows(mapping: Mapping, read: SourceRows, source_name: str,
                 now: datetime | None = None) -> list[PreviewRecord]:
    ctx = ChangeContext(source_name, "preview", now or datetime.now(UTC))
    zero_dates: Iterable[tuple[str, ...]] = read.zero_dates or [()] * len(read.rows)
    return [preview_row(mapping, row, read.key_columns, ctx, zeros)
            for row, zeros in zip(read.rows, zero_dates, strict=True)]


def uses_identity(mapping: Mapping) -> bool:
    return mapping.identity is not None or bool(mapping.lookups)


def with_identity(records: list[PreviewRecord], stored: StoredLinks) -> list[PreviewRecord]:
    """The mapped records with how their person would resolve against the stored links."""
    return [replace(r, identity=identity_preview.resolve(stored, r.op)) if r.op is not None else r
            for r in records]


# --------------------------------------------------------------------------- reading the source


def show_value(value: Any) -> str:
    """A value for people: text in quotes (so '' and ' 1 ' differ from NULL and 1), NULL bare."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + one_line(value) + "'"
    return one_line(_plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, timedelta):  # a TIME, as MySQL prints it: -838:59:59, -00:00:00.001
        return str(as_text(value))
    if isinstance(value, dict | list):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(value)
