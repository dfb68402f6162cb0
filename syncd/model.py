"""Value types that cross the pipeline's seams: source -> mapping -> sink."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Row = dict[str, Any]
"""A row image: column name -> Python value, as decoded from the binlog or a SELECT."""


@dataclass(frozen=True, order=True)
class Position:
    """A binlog position just after a committed transaction: where to resume from."""

    file: str
    pos: int
    gtid: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


class Op(enum.Enum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row changed in a source table (one row of a binlog rows event)."""

    table: str
    op: Op
    before: Row | None
    after: Row | None
    event_pos: int = 0
    """End position of the rows event within the binlog file (identifies the change)."""
    row_index: int = 0
    """Index of the row within its rows event."""
    key_columns: tuple[str, ...] = ()
    """The source table's primary key columns, when known."""
    zero_dates: tuple[str, ...] = ()
    """Columns whose zero or partial-zero date ('0000-00-00', '2024-00-15') was read as NULL."""


@dataclass(frozen=True, slots=True)
class SourceTransaction:
    """A committed source transaction: all its row changes, and where it ends."""

    source: str
    changes: list[RowChange]
    end: Position
    commit_time: datetime
    """Commit time at the source (UTC, tz-aware)."""
    follows_parts: bool = False
    """True when earlier changes of this transaction came as TransactionPart events."""


@dataclass(frozen=True, slots=True)
class TransactionPart:
    """The first changes of a large, still open source transaction (bounded memory)."""

    source: str
    changes: list[RowChange]


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A DDL statement seen in the binlog (it is its own transaction)."""

    source: str
    schema: str
    statement: str
    end: Position
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The source is idle; nothing new up to this point."""

    source: str


@dataclass(frozen=True, slots=True)
class TargetTable:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert or update the target row with these values (key columns included)."""

    table: TargetTable
    key: tuple[str, ...]
    values: Row


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the target row with this key (hard delete)."""

    table: TargetTable
    key: tuple[str, ...]
    key_values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SoftDelete:
    """Mark the target row with this key deleted, at the source commit time."""

    table: TargetTable
    key: tuple[str, ...]
    key_values: tuple[Any, ...]
    column: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DeleteSlice:
    """Remove every target row of a mapping's slice (a source TRUNCATE), hard or soft."""

    table: TargetTable
    slice: tuple[tuple[str, Any], ...]
    soft_column: str | None = None
    at: datetime | None = None


RowOp = Upsert | Delete | SoftDelete | DeleteSlice


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A change that could not be applied, kept with everything needed to retry it."""

    source: str
    source_table: str
    mapping: str
    row_key: str
    position: str
    row_image: Row
    reason: str
    event_pos: int = 0
    row_index: int = 0


@dataclass(frozen=True, slots=True)
class MappedChange:
    """What one source row change becomes in the target."""

    ops: list[RowOp]
    dead_letters: list[DeadLetter]
