"""What the pipeline hands the sink: a `Batch` of whole source transactions, each row operation
planned with the dead letter it becomes if PostgreSQL refuses it, and how a batch reduces to one
operation per target row.

Pure (no driver): the pipeline builds batches, any `Sink` applies them, and the reduction that
keeps "same end result as applying every change in order" is unit-tested on its own.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from syncd.model import (
    REPAIR_AT,
    Checkpoint,
    DeadLetter,
    Delete,
    DeleteSlice,
    KeyOutcome,
    Outcome,
    Pause,
    RowOp,
    SoftDelete,
    TableSchema,
    Upsert,
)


@dataclass(slots=True)  # per-change record: not frozen (see syncd/model.py)
class PlannedOp:
    """A row operation and the dead letter it becomes if PostgreSQL rejects it.

    `cause` may be a function building that dead letter: almost no operation is ever rejected,
    so the streaming path defers copying the row image and formatting its key until one is.
    """

    op: RowOp
    cause: DeadLetter | Callable[[], DeadLetter]

    @property
    def origin(self) -> DeadLetter:
        cause = self.cause
        return cause if isinstance(cause, DeadLetter) else cause()


@dataclass(slots=True)
class RepairDone:
    """A repair applied by this batch, with what happened to each of its keys.

    The outcomes are planned when the repair is mapped (applied, source row gone, newer in the
    stream, dead-lettered by the mapping) and settled by the sink, which alone knows which rows
    PostgreSQL refused and which operations a newer stream change in the same batch replaced.
    A queued request (`request_id`) is marked done in the same transaction; a direct repair
    (None) reads its outcomes back from here."""

    request_id: int | None
    mapping: str
    planned: tuple[KeyOutcome, ...] = ()
    error: str | None = None
    outcomes: tuple[KeyOutcome, ...] = ()

    def settle(self, kept: set[tuple[str, str]], refused: dict[tuple[str, str], str]) -> None:
        """`kept`: (mapping, row key) of repair rows written; `refused`: those PostgreSQL refused."""
        self.outcomes = tuple(_settled(o, self.mapping, kept, refused) for o in self.planned)


def _settled(planned: KeyOutcome, mapping: str, kept: set[tuple[str, str]],
             refused: dict[tuple[str, str], str]) -> KeyOutcome:
    if not planned.outcome.settled or planned.outcome is Outcome.NEWER_IN_STREAM:
        return planned
    row = (mapping, planned.row_key)
    if row in refused:
        return dataclasses.replace(planned, outcome=Outcome.DEAD_LETTERED, reason=refused[row])
    if row not in kept:  # a stream change later in the batch replaced the repair's operation
        return dataclasses.replace(planned, outcome=Outcome.NEWER_IN_STREAM)
    return planned


def repair_rows(ops: Iterable[PlannedOp]) -> set[tuple[str, str]]:
    """(mapping, row key) of the repair operations among these (their causes are built already)."""
    return {(cause.mapping, cause.row_key) for planned in ops
            if isinstance(cause := planned.cause, DeadLetter) and cause.position.startswith(REPAIR_AT)}


@dataclass
class Batch:
    """Whole source transactions of one source, ready to commit with the checkpoint."""

    ops: list[PlannedOp] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    transactions: int = 0
    changes_by_table: Counter[str] = field(default_factory=Counter)
    repairs: list[RepairDone] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    schemas: list[tuple[str, TableSchema]] = field(default_factory=list)
    """(source, entry): new entries of a source's schema history (syncd/source/schema_history.py)."""

    def __len__(self) -> int:
        return (len(self.ops) + len(self.dead_letters) + len(self.repairs) + len(self.pauses)
                + len(self.resumed) + len(self.schemas))


def _op_key(op: RowOp) -> tuple[Any, ...]:
    """Schema, table name, then the key values: a flat tuple of builtins hashes fastest."""
    table = op.table
    if isinstance(op, Upsert):
        values = op.values
        return (table.schema, table.name, *[values[k] for k in op.key])  # a list: a generator costs 2x
    if isinstance(op, DeleteSlice):
        return (table.schema, table.name, "<slice>", op.slice)
    return (table.schema, table.name, *op.key_values)


def reduce_ops(ops: Iterable[PlannedOp]) -> list[PlannedOp]:
    """One operation per target row, with the same end result as applying all in order.

    A slice delete (TRUNCATE) is a barrier: what came before it is reduced and kept before it.
    """
    reduced: list[PlannedOp] = []
    run: list[PlannedOp] = []
    for planned in ops:
        if isinstance(planned.op, DeleteSlice):
            reduced += [*_reduce_run(run), planned]
            run = []
        else:
            run.append(planned)
    return reduced + _reduce_run(run)


def _reduce_run(ops: list[PlannedOp]) -> list[PlannedOp]:
    last: dict[tuple[Any, ...], PlannedOp] = {}
    for planned in ops:
        key = _op_key(planned.op)
        previous = last.setdefault(key, planned)
        if previous is planned:  # the row's first operation here (the common case: one hash)
            continue
        del last[key]  # the row's operation moves to where its last change is
        kept = planned
        if isinstance(planned.op, SoftDelete):
            if isinstance(previous.op, Upsert):
                # The row must exist, marked deleted, exactly as if both had been applied.
                values = {**previous.op.values, planned.op.column: planned.op.at}
                claim = previous.op.identity
                if claim is not None:  # the record was seen (it links), then deleted (no contribution)
                    claim = dataclasses.replace(claim, alive=False)
                kept = PlannedOp(dataclasses.replace(previous.op, values=values, identity=claim),
                                 planned.cause)
            elif isinstance(previous.op, Delete):
                kept = previous  # marking a row deleted after removing it changes nothing
        elif isinstance(planned.op, Upsert) and isinstance(previous.op, Upsert):
            kept = _after_earlier(planned, previous)
        last[key] = kept
    return list(last.values())


def _after_earlier(planned: PlannedOp, previous: PlannedOp) -> PlannedOp:
    """The later upsert, still claiming the keys its earlier version held (a person's keys are
    every key its records ever held: a phone changed within a batch still links the old one)."""
    claim, before = planned.op.identity, previous.op.identity
    if claim is None or before is None or (before.keys == claim.keys and not before.earlier):
        return planned
    earlier = (*before.earlier, before.keys, *claim.earlier)
    op = dataclasses.replace(planned.op, identity=dataclasses.replace(claim, earlier=earlier))
    return PlannedOp(op, planned.cause)
