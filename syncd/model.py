"""Value types that cross the pipeline's seams: source -> mapping -> sink.

They are frozen dataclasses, except the records built once or more for every row change
(`RowChange`, `SourceTransaction`, `Upsert`, `Delete`, `SoftDelete`, and `ChangeContext`,
`PlannedOp`, `Checkpoint` elsewhere): a frozen dataclass's ``__init__`` sets each field through
``object.__setattr__`` and costs about four times as much, which is several percent of the
streaming path. Nothing changes them once built.

The module is long because it is the whole vocabulary: every type that crosses a seam is looked
up in one place, and none of them carries behaviour beyond a few derived properties.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

Row = dict[str, Any]
"""A row image: column name -> Python value, as decoded from the binlog or a SELECT."""


@dataclass(frozen=True, slots=True)
class BinlogFileId:
    """Which binlog file a file name stands for: the header of its first event
    (FORMAT_DESCRIPTION) says when the file was created and by which server. After a
    `RESET MASTER`, a restore or on another server, the same name is another file: the pair
    differs (see syncd/source/continuity.py)."""

    created: int
    """Unix time (seconds) of the file's creation."""
    server_id: int

    def __str__(self) -> str:
        created = datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"created {created} by server_id {self.server_id}"


@dataclass(frozen=True, order=True)
class Position:
    """A binlog position just after a committed transaction: where to resume from."""

    file: str
    pos: int
    gtid: str | None = field(default=None, compare=False)
    file_id: BinlogFileId | None = field(default=None, compare=False)
    """Which file `file` is (None: not known)."""

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


@dataclass(frozen=True, slots=True)
class Lineage:
    """What a checkpoint records, beside its position, about the binlog history it belongs to;
    every resume proves it still holds (syncd/source/continuity.py)."""

    server: str | None = None
    """The source server's identity (MariaDB: server_id, gtid_domain_id; MySQL: server_uuid)."""
    applied_gtid: str | None = None
    """GTID of the last applied source transaction that changed a mapped table."""
    applied_digest: str | None = None
    """Digest of that transaction's changes and commit time (`continuity.transaction_digest`)."""


class Op(enum.Enum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


class JsonArray(list):
    """A JSON array as a mapped value (`json_get` of an array): a list the sink writes as its
    JSON text, like an object (a dict), not as a PostgreSQL array (what psycopg makes of a list)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Undecodable:
    """The value of a text column whose bytes the source server itself cannot convert to text
    (syncd/source/charsets.py). Not a str, so it cannot reach PostgreSQL as text: a mapping that
    reads it dead-letters the change with `reason`."""

    column: str
    charset: str
    hex: str
    """The whole value's bytes, in hex."""
    reason: str
    """What cannot be converted, and what to do (UndecodableText's message)."""

    def __str__(self) -> str:
        return f"<{self.charset} X'{self.hex.upper()}': not text>"


def undecodable_columns(row: Row) -> tuple[str, ...]:
    """The columns of a row image holding an `Undecodable` (for row images read by a SELECT)."""
    return tuple(name for name, value in row.items() if type(value) is Undecodable)


@dataclass(slots=True)  # per-change record: not frozen (see the module docstring)
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
    undecodable: tuple[str, ...] = ()
    """Columns of either image holding an `Undecodable` value instead of text."""


@dataclass(slots=True)  # per-change record: not frozen (see the module docstring)
class SourceTransaction:
    """A committed source transaction: all its row changes, and where it ends."""

    source: str
    changes: list[RowChange]
    end: Position
    commit_time: datetime
    """Commit time at the source (UTC, tz-aware)."""
    follows_parts: bool = False
    """True when earlier changes of this transaction came as TransactionPart events."""
    gtid: str | None = None
    """Its GTID (None without GTIDs)."""
    doubts: tuple[tuple[str, str], ...] = ()
    """(table, reason) of tables whose rows in this transaction could not be read by name (their
    table map does not fit the schema history): their changes are not in `changes`."""


@dataclass(frozen=True, slots=True)
class TransactionPart:
    """The first changes of a large, still open source transaction (bounded memory)."""

    source: str
    changes: list[RowChange]
    commit_time: datetime
    """The time the whole transaction is written with (its commit's is read only after its parts):
    its first binlog event's (syncd/source/binlog.py)."""


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A DDL statement seen in the binlog (it is its own transaction)."""

    source: str
    schema: str
    statement: str
    end: Position
    commit_time: datetime
    gtid: str | None = None
    schemas: tuple[TableSchema, ...] = ()
    """The schema history's new entries at `end`: the mapped tables the statement touched, as
    they are from `end` on (syncd/source/schema_history.py); empty for a source with full row
    metadata."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The source is idle; nothing new up to this point."""

    source: str
    position: Position | None = None
    """The binlog position, when no transaction is open there (a safe point to checkpoint)."""


SourceEvent = SourceTransaction | TransactionPart | SchemaChange | Heartbeat
"""What a source's stream yields, in binlog order."""


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column of a source table as information_schema.COLUMNS describes it: what a row
    event without full metadata does not say (its name, signedness, charset, ENUM/SET labels)
    and what its table map must show (type and lengths)."""

    name: str
    data_type: str
    """DATA_TYPE, lower case: 'int', 'varchar', 'enum', 'longtext', 'uuid', ..."""
    column_type: str
    """COLUMN_TYPE: 'int(10) unsigned', "enum('a','b')", ..."""
    nullable: bool = True
    octet_length: int | None = None
    """CHARACTER_OCTET_LENGTH: the most bytes a CHAR/VARCHAR/BINARY value takes."""
    precision: int | None = None
    """NUMERIC_PRECISION (a DECIMAL's digits, a BIT's bits)."""
    scale: int | None = None
    """NUMERIC_SCALE (a DECIMAL's, or the D of FLOAT(M,D) / DOUBLE(M,D))."""
    fraction: int | None = None
    """DATETIME_PRECISION: fractional digits of a TIME, DATETIME or TIMESTAMP."""
    charset: str | None = None
    collation: str | None = None
    labels: tuple[str, ...] = ()
    """An ENUM's or a SET's labels, in their definition order."""

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()


@dataclass(frozen=True, slots=True)
class TableSchema:
    """One entry of a source's schema history: a table's columns from a binlog position on,
    until the table's next entry."""

    table: str
    position: Position
    """Where it starts to hold: a transaction boundary (a DDL's end, a snapshot's position)."""
    columns: tuple[ColumnSchema, ...] | None
    """In table order; None: not known from `position` on (`note` says why); (): the table does
    not exist."""
    primary_key: tuple[str, ...] = ()
    note: str = ""
    """How it was recorded, or why the columns are not known."""
    metadata: str | None = None
    """The server's binlog_row_metadata when it was recorded ('' where the server has none)."""

    @property
    def known(self) -> bool:
        return self.columns is not None


@dataclass(frozen=True, slots=True)
class TargetTable:
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class UnifiedTable:
    """The target table holding one unified row per person of an identity space."""

    table: TargetTable
    key: str
    """The column holding the person id (primary key or unique)."""
    policies: tuple[tuple[str, str, tuple[str, ...]], ...]
    """(column, policy name, policy arguments): how each column is chosen among contributions."""


@dataclass(frozen=True, slots=True)
class IdentitySpace:
    """An identity space (`identities:` in the mapping files), as the sink needs it."""

    name: str
    references: tuple[tuple[TargetTable, str], ...] = ()
    """Every target (table, column) that holds person ids of this space: re-pointed on merges."""
    unified: UnifiedTable | None = None


@dataclass(frozen=True, slots=True)
class IdentityClaim:
    """A source record of a mapping with an `identity:` block; its person is resolved by the sink.

    Match keys are hashed already (`syncd.identity.keys`): a plain value never gets this far.
    """

    space: IdentitySpace
    mapping: str
    source: str
    table: TargetTable
    record: str
    """The record's target key as canonical JSON, e.g. '{"channel":"app","source_user_id":5}'."""
    keys: tuple[tuple[str, str], ...]
    """(kind, hash) of every non-empty match key."""
    column: str | None
    """Target column that receives the person id (None: the mapping only links and contributes)."""
    values: Row
    """This record's contribution to the unified row: the mapped values of the unified columns."""
    commit_time: datetime
    position: str
    alive: bool = True
    """False when the same batch also deleted the record (an upsert merged with a soft delete)."""
    earlier: tuple[tuple[tuple[str, str], ...], ...] = ()
    """The keys of this record's earlier versions in the same batch (reduced into this one, see
    syncd/sink/batch.py), oldest first: the sink claims them first, as if each had been applied."""


@dataclass(frozen=True, slots=True)
class IdentityLookup:
    """A column filled with the person id that a match key resolves to (`lookup:`)."""

    space: IdentitySpace
    column: str
    kind: str
    key_hash: str | None
    """None when the source value is NULL or empty: the column is NULL."""
    mapping: str
    record: str


@dataclass(frozen=True, slots=True)
class IdentityRelease:
    """A source record of an identity mapping was deleted: its contribution goes, its links stay."""

    space: IdentitySpace
    mapping: str
    record: str
    at: datetime | None = None


@dataclass(slots=True)  # per-change record: not frozen (see the module docstring)
class Upsert:
    """Insert or update the target row with these values (key columns included)."""

    table: TargetTable
    key: tuple[str, ...]
    values: Row
    identity: IdentityClaim | None = None
    """Set for mappings with an `identity:` block: the sink fills the person column."""
    lookups: tuple[IdentityLookup, ...] = ()
    """`lookup:` columns: the sink fills them with person ids."""


@dataclass(slots=True)  # per-change record: not frozen (see the module docstring)
class Delete:
    """Remove the target row with this key (hard delete)."""

    table: TargetTable
    key: tuple[str, ...]
    key_values: tuple[Any, ...]
    identity: IdentityRelease | None = None


@dataclass(slots=True)  # per-change record: not frozen (see the module docstring)
class SoftDelete:
    """Mark the target row with this key deleted, at the source commit time."""

    table: TargetTable
    key: tuple[str, ...]
    key_values: tuple[Any, ...]
    column: str
    at: datetime
    identity: IdentityRelease | None = None


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
    refused_person: tuple[str, int] | None = None
    """(identity space, person) when PostgreSQL refused that person's unified row: reconcile
    finds the persons whose unified rows are explained by pending dead letters by it."""


@dataclass(frozen=True, slots=True)
class SourceColumn:
    """A source column as information_schema describes it (what its SQL form needs to know)."""

    name: str
    data_type: str
    column_type: str = ""
    scale: int | None = None
    precision: int | None = None
    charset: str | None = None
    raw: bool = False
    """Read as bytes by the row reader: text in a charset the server may fail to convert."""


@dataclass(frozen=True, slots=True)
class ColumnType:
    """A target column's type, as information_schema.columns describes it."""

    name: str
    data_type: str
    """information_schema data_type: 'integer', 'numeric', 'timestamp with time zone', ..."""
    numeric_scale: int | None = None
    char_length: int | None = None


@dataclass(frozen=True, slots=True)
class SliceShape:
    """What a mapping owns of a target table, as reconcile reads it: the rows of `slice` (constant
    key values), live ones only when `soft_delete_column` is set, keyed by `key`."""

    table: TargetTable
    key: tuple[str, ...]
    compared: tuple[str, ...]
    """The columns compared, after the key, in this order."""
    slice: tuple[tuple[str, Any], ...]
    soft_delete_column: str | None
    range_columns: tuple[str, ...] | None
    """The target columns holding the source key (key ranges are read by them), when they exist."""
    extra_columns: tuple[str, ...] = ()
    """More columns read with every key (they name its source key)."""


@dataclass
class CopyProgress:
    """How far a copy (`syncd snapshot`, the initial load) got in one table: resumable from here."""

    table: str
    position: str
    last_key: list[Any] | None
    rows_copied: int
    done: bool
    key_columns: list[str] | None = None
    """The row key `last_key` is a value of (None in progress rows of older versions)."""

    def continues(self, key: tuple[str, ...]) -> bool:
        """Whether a copy by row key `key` can go on from here (the key may have been changed)."""
        if self.key_columns is not None:
            return list(key) == self.key_columns
        return self.last_key is None or len(self.last_key) == len(key)


REPAIR_AT = "repair@"
"""Position prefix of changes read again by key (repairs, retries, live snapshots): `repair@file:pos`."""
HISTORY_PAUSE = "syncd does not guess column names"
"""In the reason of every pause whose rows cannot be named by the schema history: a snapshot of
the mapping moves such a pause to its own position (the copy holds the rows up to there)."""
COPY_NEEDED = "its rows must be copied again"
"""In the reason of a pause whose table was replaced by another (an online schema change's swap:
`RENAME TABLE t TO t_old, t_new TO t`): the stream never carried the new table's rows, so the
pause holds through reloads until a snapshot of the mapping moves it (`COPIED_AGAIN`)."""
COPIED_AGAIN = "by syncd snapshot: resumes from there"
"""Appended to the reason of a pause that a snapshot moved to its own position."""
SNAPSHOT_AT = "snapshot@"
"""Position prefix of rows read by a copy (initial load, `syncd snapshot`): `snapshot@file:pos`."""


class Outcome(enum.Enum):
    """What applying one source row by its key did (a repair, a retry, a live snapshot chunk)."""

    APPLIED = "applied"
    """The target row now equals the mapping of the source row."""
    SOURCE_GONE = "source_gone"
    """The source row is gone (or outside the mapping's filter): the target row was removed."""
    NEWER_IN_STREAM = "newer_in_stream"
    """The binlog changed the key after the read: the stream applies that newer change itself."""
    DEAD_LETTERED = "dead_lettered"
    """The row cannot be mapped, or PostgreSQL refused it: it is (still) a pending dead letter."""

    @property
    def settled(self) -> bool:
        """Whether the target now holds what the source says (a pending dead letter can go)."""
        return self is not Outcome.DEAD_LETTERED


@dataclass(frozen=True, slots=True)
class KeyOutcome:
    """The outcome for one source key, named as dead letters name rows (`id=42`)."""

    key: tuple[Any, ...]
    """The source key values as requested."""
    row_key: str
    outcome: Outcome
    reason: str = ""
    """Why it was dead-lettered (empty otherwise)."""


@dataclass(frozen=True, slots=True)
class MappedChange:
    """What one source row change becomes in the target."""

    ops: list[RowOp]
    dead_letters: list[DeadLetter]


def json_value(value: Any) -> Any:
    """The one JSON form of a row value (dead letter images, command output, reports): exact
    decimals as text, dates and times in ISO 8601, TIME as seconds, bytes as `\\x` hex, sets
    sorted, NaN and infinities as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((json_value(v) for v in value), key=str)
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)  # Decimal (exact text) and anything else


_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def one_line(text: str) -> str:
    """Control characters (newlines, tabs, NUL, DEL and the C1 controls U+0080 to U+009F that
    latin1 bytes 0x80-0x9F read as) written as escapes, so a value stays on its line and visible."""
    return text.translate(_CONTROL)


def key_json(value: Any) -> Any:
    """A key component as JSON: numbers stay numbers when exact, the rest becomes text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


_EXACT_TAGS: dict[str, Callable[[Any], Any]] = {
    "bytes": bytes.fromhex, "decimal": Decimal, "datetime": datetime.fromisoformat,
    "date": date.fromisoformat, "time": time.fromisoformat,
    "micros": lambda micros: timedelta(microseconds=micros),
}


def exact_key_json(value: Any) -> Any:
    """A key value as JSON that reads back as the very same value (`exact_key_value`): a key
    handed to another process (a repair request) must find its row, a BINARY key included.
    JSON's own kinds stay as they are, the others are tagged (`{"bytes": "41ff"}`)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, timedelta):
        return {"micros": value // timedelta(microseconds=1)}
    for tag, kind in (("decimal", Decimal), ("datetime", datetime), ("date", date), ("time", time)):
        if isinstance(value, kind):
            return {tag: str(value) if kind is Decimal else value.isoformat()}
    return str(value)


def exact_key_value(found: Any) -> Any:
    """The key value `exact_key_json` wrote (untagged JSON as it is)."""
    if isinstance(found, dict) and len(found) == 1:
        ((tag, text),) = found.items()
        if tag in _EXACT_TAGS:
            return _EXACT_TAGS[tag](text)
    return found


@dataclass(frozen=True)
class Headroom:
    """How long the binlog file a checkpoint needs stays on the server."""

    needed_file: str
    kind: str
    """``limited`` (seconds is a time left), ``unlimited`` (the server never deletes it by
    itself), ``unknown`` (the file's age could not be found), ``purged`` (already gone)."""
    seconds: float | None = None
    """Time left; negative when overdue (deleted at the server's next purge); None unless
    ``limited``."""
    limited_by: str | None = None
    """``age`` or ``size``: which rule deletes the file first."""
    at_least: bool = False
    """The needed file is still being written: it cannot expire before it is closed, so the
    real headroom is longer than ``seconds``."""
    detail: str = ""

    def is_low(self, threshold_seconds: float) -> bool:
        """True when the file is gone or may be gone within ``threshold_seconds``."""
        if self.kind == "purged":
            return True
        return self.kind == "limited" and self.seconds is not None and self.seconds < threshold_seconds

    @property
    def metric_value(self) -> float:
        """The gauge value: +Inf when unlimited, 0 when purged, NaN when unknown."""
        if self.kind == "limited" and self.seconds is not None:
            return self.seconds
        return {"unlimited": math.inf, "purged": 0.0}.get(self.kind, math.nan)


@dataclass(slots=True)  # per-change record: not frozen (see syncd/model.py)
class Checkpoint:
    """How far one source has been applied to the target."""

    source: str
    position: Position
    last_event_time: datetime | None
    snapshot_done: bool
    updated_at: datetime | None = None
    lag_seconds: float | None = None
    lineage: Lineage | None = None
    """Which binlog history `position` belongs to (with `position.file_id`; None: not known)."""
    continuity: str | None = None
    """What the last resume proved about that history (written by `record_continuity`, and by
    a snapshot; a plain checkpoint write leaves it as it is)."""
    continuity_at: datetime | None = None


@dataclass(frozen=True)
class RepairRequest:
    """Make the target rows of these source keys equal to the mapping of the current source rows.

    `keys` are source primary-key values, one list per row, in the key's column order.
    """

    id: int
    source: str
    mapping: str
    keys: list[list[Any]]
    requested_by: str
    status: str = "pending"
    applied: int = 0
    skipped: int = 0
    error: str | None = None
    dead_letter_reasons: list[str] | None = None
    """Why keys whose current source row still cannot be applied were dead-lettered again."""
    outcomes: list[dict[str, Any]] | None = None
    """Per key (done requests): {"key": [...], "row_key": "id=42", "outcome": ..., "reason": ...}."""

    def key_outcomes(self) -> list[KeyOutcome]:
        return [KeyOutcome(tuple(o["key"]), o["row_key"], Outcome(o["outcome"]), o.get("reason", ""))
                for o in self.outcomes or []]


@dataclass(frozen=True)
class Pause:
    """A mapping stopped by a source schema change (or left out by a reload); it resumes from
    `position` once fixed (or back)."""

    mapping: str
    source: str
    position: Position
    statement: str
    reason: str
    """What broke, then "; " and the fix (syncd/service/schema_policy.py)."""
    paused_at: datetime | None = field(default=None, compare=False)
    """When it was recorded (as read back from the state schema)."""

    @property
    def cause(self) -> str:
        """The reason without its fix: one short clause for one-line reports."""
        return self.reason.split("; ", 1)[0]

    @property
    def waits_for_copy(self) -> bool:
        """A replaced table's pause that no snapshot has moved yet: no reload resumes it."""
        return COPY_NEEDED in self.reason and COPIED_AGAIN not in self.reason
