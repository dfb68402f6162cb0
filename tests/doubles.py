"""In-memory stand-ins for the pipeline's seams: `ListSource` (a ChangeSource, syncd/source/base.py)
and `MemorySink` (a Sink, syncd/sink/base.py).

They let tests/unit/service/test_pipeline.py check the pipeline's invariants in milliseconds;
tests/contract/test_sink_contract.py holds `MemorySink` and `PostgresSink` to the same promises,
so what the unit tests prove on the double is what the product's sink does.
"""

from __future__ import annotations

import copy
import dataclasses
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from syncd.errors import NoPrimaryKey
from syncd.model import (
    REPAIR_AT,
    Checkpoint,
    ColumnSchema,
    DeadLetter,
    Delete,
    DeleteSlice,
    Heartbeat,
    KeyOutcome,
    Pause,
    Position,
    RepairRequest,
    Row,
    RowOp,
    SoftDelete,
    SourceEvent,
    TableSchema,
    TargetTable,
    Upsert,
)
from syncd.sink.batch import Batch, PlannedOp, reduce_ops, repair_rows
from syncd.source.continuity import ResumeGuard
from syncd.source.gtid import GtidState
from syncd.source.schema_history import SchemaHistory

Tables = dict[tuple[TargetTable, tuple[Any, ...]], dict[str, Any]]


def apply_ops(state: Tables, ops: Iterable[RowOp]) -> Tables:
    """The in-memory model of the target: what PostgreSQL does with each statement."""
    rows = {k: dict(v) for k, v in state.items()}
    for op in ops:
        if isinstance(op, Upsert):
            key = (op.table, tuple(op.values[k] for k in op.key))
            rows[key] = {**rows.get(key, {}), **op.values}  # ON CONFLICT DO UPDATE SET every column
        elif isinstance(op, Delete):
            rows.pop((op.table, op.key_values), None)
        elif isinstance(op, SoftDelete):
            row = rows.get((op.table, op.key_values))
            if row is not None:  # UPDATE ... WHERE key: nothing when the row is absent
                row[op.column] = op.at
        else:
            _apply_slice(rows, op)
    return rows


def _apply_slice(rows: Tables, op: DeleteSlice) -> None:
    inside = [k for k, row in rows.items()
              if k[0] == op.table and all(row.get(c) == v for c, v in op.slice)]
    for key in inside:
        if op.soft_column is None:
            del rows[key]
        elif rows[key].get(op.soft_column) is None:
            rows[key][op.soft_column] = op.at


# --------------------------------------------------------------------------- the source


STOP = object()
"""In a ListSource's events: set the pipeline's stop event here (as a daemon's stop would)."""


class ListStream:
    """The events of a ListSource past `start`; once they are all taken, sets `stop`."""

    def __init__(self, events: list[object], stop: threading.Event) -> None:
        self.events = list(events)
        self.stop = stop
        self.closed = False
        self.handed_bytes = 0
        self.event_bytes = 0

    def get(self, timeout: float) -> SourceEvent | BaseException:
        while self.events:
            item = self.events.pop(0)
            if item is STOP:
                self.stop.set()
                raise queue.Empty
            self.handed_bytes += self.event_bytes
            return item  # type: ignore[return-value]
        self.stop.set()
        raise queue.Empty

    def close(self) -> None:
        self.closed = True


@dataclass
class ListKeyReader:
    """A consistent read of a ListSource's rows at `position`."""

    rows: dict[str, list[Row]]
    keys: dict[str, tuple[str, ...]]
    position: Position
    closed: bool = False
    zero_dates: dict[tuple, tuple[str, ...]] = field(default_factory=dict)

    def read_point(self) -> Position:
        return self.position

    def row_key(self, table: str, source_key: tuple[str, ...] = (),
                mapping: str | None = None) -> tuple[str, ...]:
        key = source_key or self.keys.get(table, ())
        if not key:
            raise NoPrimaryKey(f"table {table} has no primary key")
        return key

    def rows_by_key(self, table: str, key: tuple[str, ...], keys: list[tuple]) -> dict[tuple, Row]:
        by_key = {tuple(row[k] for k in key): dict(row) for row in self.rows.get(table, [])}
        return {k: by_key[k] for k in keys if k in by_key}

    def close(self) -> None:
        self.closed = True


@dataclass
class ListSource:
    """A ChangeSource whose binlog is a list of events (and `STOP` marks, exceptions to raise).

    A stream starts after `start`: events ending at or before it are skipped, as a server
    resumes after a position. `rows` are the tables' current rows (read by repairs), `columns`
    their live columns (name -> type)."""

    events: list[object]
    stop: threading.Event
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    rows: dict[str, list[Row]] = field(default_factory=dict)
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    read_position: Position = field(default_factory=lambda: Position("bin.000001", 4))
    streams: list[ListStream] = field(default_factory=list)
    started_at: list[Position] = field(default_factory=list)
    metadata: str = "FULL"
    """The server's binlog_row_metadata."""
    schemas: dict[str, tuple[ColumnSchema, ...] | None] = field(default_factory=dict)
    """What `pin_schemas` pins of each table (missing: the table does not exist)."""
    histories: list[SchemaHistory | None] = field(default_factory=list)
    """The schema history each stream was given."""
    event_bytes: int = 0
    """Bytes each event counts as having come in (a decoder process's frames)."""

    def stream(self, start: Position, tables: set[str], gtid: GtidState,
               guard: ResumeGuard | None, history: SchemaHistory | None = None) -> ListStream:
        self.started_at.append(start)
        self.histories.append(history)
        events = [e for e in self.events if _after(e, start)]
        stream = ListStream(events, self.stop)
        stream.event_bytes = self.event_bytes
        self.streams.append(stream)
        return stream

    def live_columns(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        return {t: dict(self.columns[t]) for t in tables if t in self.columns}

    def key_reader(self) -> ListKeyReader:
        return ListKeyReader(copy.deepcopy(self.rows), self.keys, self.read_position)

    def row_metadata(self) -> str:
        return self.metadata

    def pin_schemas(self, tables: Iterable[str], at: Position) -> list[TableSchema]:
        return [TableSchema(t, at, self.schemas.get(t, ()), self.keys.get(t, ()), "pinned", self.metadata)
                for t in tables]


def _after(event: object, start: Position) -> bool:
    end = getattr(event, "end", None)
    return end is None or isinstance(event, Heartbeat) or end > start


# --------------------------------------------------------------------------- the sink


@dataclass
class MemoryState:
    """Everything a MemorySink holds; replaced whole by each commit (all or nothing)."""

    rows: Tables = field(default_factory=dict)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    pauses: dict[str, Pause] = field(default_factory=dict)
    requests: dict[int, RepairRequest] = field(default_factory=dict)
    outcomes: dict[int, tuple[KeyOutcome, ...]] = field(default_factory=dict)
    schemas: dict[tuple[str, str, Position], TableSchema] = field(default_factory=dict)
    """(source, table, position) -> schema history entry."""


class MemorySink:
    """A Sink over a `MemoryState`. `refuse(op)` returns the reason a row is refused, or None;
    `fail(batch)` may raise to make a commit fail (after applying part of it)."""

    def __init__(self, refuse: Callable[[RowOp], str | None] | None = None) -> None:
        self.state = MemoryState()
        self.refuse = refuse or (lambda op: None)
        self.fail: Callable[[Batch], None] = lambda batch: None
        self.commits: list[Batch] = []
        self.closed = False

    def read_checkpoint(self, source: str) -> Checkpoint | None:
        found = self.state.checkpoints.get(source)
        return dataclasses.replace(found) if found is not None else None

    def read_pauses(self, source: str) -> list[Pause]:
        return [p for p in self.state.pauses.values() if p.source == source]

    def read_schema_history(self, source: str) -> list[TableSchema]:
        ordered = sorted(self.state.schemas.items(), key=lambda item: (item[0][2], item[0][1]))
        return [entry for (owner, _, _), entry in ordered if owner == source]

    def next_repair(self, source: str) -> RepairRequest | None:
        pending = [r for r in self.state.requests.values() if r.source == source and r.status == "pending"]
        return min(pending, key=lambda r: r.id) if pending else None

    def queue_repair(self, source: str, mapping: str, keys: list[list[Any]]) -> int:
        request_id = len(self.state.requests) + 1
        self.state.requests[request_id] = RepairRequest(request_id, source, mapping, keys, "test")
        return request_id

    def commit(self, batch: Batch) -> list[DeadLetter]:
        state = copy.deepcopy(self.state)
        rejected = self._apply(state, batch.ops)
        self._finish(state, batch, rejected)
        self.fail(batch)
        self.state = state
        self.commits.append(batch)
        return rejected

    @contextmanager
    def long_transaction(self) -> Iterator[MemoryPart]:
        part = MemoryPart(self, copy.deepcopy(self.state))
        yield part
        self.state = part.state

    def close(self) -> None:
        self.closed = True

    def _apply(self, state: MemoryState, ops: list[PlannedOp]) -> list[DeadLetter]:
        rejected = []
        kept = []
        for planned in reduce_ops(ops):
            reason = self.refuse(planned.op)
            if reason is None:
                kept.append(planned.op)
            else:
                rejected.append(dataclasses.replace(planned.origin, reason=reason))
        state.rows = apply_ops(state.rows, kept)
        return rejected

    def _finish(self, state: MemoryState, batch: Batch, rejected: list[DeadLetter]) -> None:
        state.dead_letters += batch.dead_letters + rejected
        for pause in batch.pauses:
            state.pauses[pause.mapping] = pause
        for mapping in batch.resumed:
            state.pauses.pop(mapping, None)
        for source, entry in batch.schemas:
            known = state.schemas.get((source, entry.table, entry.position))
            if known is None or (not known.known and entry.known):
                state.schemas[(source, entry.table, entry.position)] = entry
        kept = repair_rows(reduce_ops(batch.ops))
        refused = {(d.mapping, d.row_key): d.reason for d in rejected if d.position.startswith(REPAIR_AT)}
        for done in batch.repairs:
            done.settle(kept, refused)
            if done.request_id is not None:
                state.outcomes[done.request_id] = done.outcomes
                request = state.requests[done.request_id]
                state.requests[done.request_id] = dataclasses.replace(request, status="done",
                                                                      error=done.error)
        if batch.checkpoint is not None:
            state.checkpoints[batch.checkpoint.source] = dataclasses.replace(batch.checkpoint)


class MemoryPart:
    """The open transaction of a MemorySink's long_transaction: a copy, kept only at the end."""

    def __init__(self, sink: MemorySink, state: MemoryState) -> None:
        self.sink = sink
        self.state = state
        self.rejected: list[DeadLetter] = []

    def apply(self, ops: list[PlannedOp], dead_letters: list[DeadLetter]) -> None:
        self.rejected += self.sink._apply(self.state, ops)
        self.state.dead_letters += dead_letters

    def finish(self, batch: Batch) -> list[DeadLetter]:
        self.rejected += self.sink._apply(self.state, batch.ops)
        self.sink._finish(self.state, batch, self.rejected)
        self.sink.fail(batch)
        self.sink.commits.append(batch)
        return self.rejected
