"""The seam between the pipeline and the target: what `syncd run` needs from where it writes.

`Pipeline` (syncd/service/pipeline.py) is handed a `Sink`; `PostgresSink` (postgres.py) is the
one the product uses and tests/doubles.py `MemorySink` the one the pipeline's unit tests use.
tests/contract/test_sink_contract.py holds both to the promises below, which are what the
checkpoint's guarantee rests on:

- `commit` is all or nothing: the batch's row operations, dead letters, pauses, repairs, schema
  history entries and checkpoint are stored together, or none is (and the error is raised).
- A row the target refuses does not stop the batch: it is stored as a dead letter naming the
  target's reason, returned by `commit`, and the rest (checkpoint included) is committed.
- A long transaction shows nothing until its block ends without an error; any error inside
  the block (a stop included) leaves the target and the checkpoint as they were.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from syncd.model import Checkpoint, DeadLetter, Pause, RepairRequest, TableSchema
from syncd.sink.batch import Batch, PlannedOp


class PartWriter(Protocol):
    """One open target transaction fed the parts of a large source transaction."""

    def apply(self, ops: list[PlannedOp], dead_letters: list[DeadLetter]) -> None:
        """Apply one part; rows the target refuses become dead letters (returned by `finish`)."""

    def finish(self, batch: Batch) -> list[DeadLetter]:
        """The last part with the checkpoint; the commit happens when the block ends."""


class Sink(Protocol):
    """Where one source's batches go, and the state a pipeline resumes from."""

    def read_checkpoint(self, source: str) -> Checkpoint | None: ...

    def read_pauses(self, source: str) -> list[Pause]: ...

    def read_schema_history(self, source: str) -> list[TableSchema]:
        """The source's schema history entries (stored by `commit` from `Batch.schemas`)."""

    def next_repair(self, source: str) -> RepairRequest | None:
        """The oldest queued repair request of `source` not yet done."""

    def commit(self, batch: Batch) -> list[DeadLetter]:
        """Store the batch and its checkpoint atomically; returns the rows the target refused."""

    def long_transaction(self) -> AbstractContextManager[PartWriter]: ...

    def close(self) -> None: ...
