"""Repairs applied in stream order: the repair window of one source's pipeline.

A queued repair request (`syncd reconcile --repair`, `syncd dlq retry`) is served between
batches: its keys are read from the source in one consistent read at binlog position P, and a
window opens. Until the stream reaches P, every change the binlog brings to one of those keys
takes the key out of the repair: the stream's newer image wins (DBLog's rule). Once the stream
passes P, the rest is emitted into the batch being built, so it commits with the checkpoint past
P and no repair ever puts an older image over a newer one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from syncd.errors import SyncdError
from syncd.mapping.load import SourcePlan
from syncd.model import Position, RepairRequest, RowChange, SchemaChange, SourceTransaction
from syncd.reconcile.repair import RepairRead, find_mapping, read_keys, repair_batch
from syncd.sink.base import Sink
from syncd.sink.batch import Batch, RepairDone
from syncd.source.base import ChangeSource

POLL_S = 0.1
"""How often the queue of repair requests is looked at (between batches)."""


class RepairWindow:
    """At most one open repair of one source (see the module docstring)."""

    def __init__(self, plan: SourcePlan, source: ChangeSource, sink: Sink,
                 log: structlog.typing.FilteringBoundLogger) -> None:
        self.plan = plan
        self.source = source
        self.sink = sink
        self.log = log
        self.open: tuple[RepairRequest, RepairRead] | None = None
        self._polled = 0.0

    def drop_changed(self, changes: list[RowChange]) -> None:
        """Keys these stream changes touch are left to the stream."""
        if self.open is not None:
            read = self.open[1]
            for change in changes:
                if change.table == read.mapping.spec.table:
                    read.drop_changed(change)

    def before(self, batch: Batch, event: SourceTransaction | SchemaChange) -> None:
        """Before an event is taken into `batch`: its changes come before the read point (they
        take their keys), or it lies past the read point (the repair goes into `batch` first)."""
        if self.open is None:
            return
        if event.end > self.open[1].position:
            self.emit(batch)
        elif isinstance(event, SourceTransaction):
            self.drop_changed(event.changes)

    def emit(self, batch: Batch) -> None:
        """Put the open repair's operations into `batch` and close the window."""
        assert self.open is not None
        request, read = self.open
        self.open = None
        repaired = repair_batch(read, self.plan.source.name, datetime.now(UTC), request.id)
        batch.ops.extend(repaired.ops)
        batch.dead_letters.extend(repaired.dead_letters)
        batch.repairs.extend(repaired.repairs)
        self.log.info("repair_window_closed", request=request.id, mapping=request.mapping,
                      requested_by=request.requested_by, position=str(read.position))

    def serve(self, position: Position | None, commit: Callable[[Batch], None]) -> None:
        """Between batches (everything up to `position` committed): take the next queued request
        when no window is open (read its keys, open the window), and close the window once the
        stream has reached its read point — at once when the stream already stood there (an idle
        source), and then look at the queue again without waiting. `commit` stores a batch."""
        if self.open is None:
            self._take_next(commit)
        if self.open is not None and position is not None and self.open[1].position <= position:
            batch = Batch()
            self.emit(batch)
            commit(batch)
            self._polled = 0.0

    def _take_next(self, commit: Callable[[Batch], None]) -> None:
        now = time.monotonic()
        if now - self._polled < POLL_S:
            return
        self._polled = now
        request = self.sink.next_repair(self.plan.source.name)
        if request is not None:
            self._start(request, commit)

    def _start(self, request: RepairRequest, commit: Callable[[Batch], None]) -> None:
        try:
            read = self._read(request)
        except SyncdError as exc:  # the request is done, with its error: never retried blindly
            commit(Batch(repairs=[RepairDone(request.id, request.mapping, error=str(exc))]))
            return
        self.open = (request, read)
        self.log.info("repair_window_opened", request=request.id, mapping=request.mapping,
                      keys=len(request.keys), position=str(read.position))

    def _read(self, request: RepairRequest) -> RepairRead:
        _, mapping = find_mapping({self.plan.source.name: self.plan}, request.mapping)
        reader = self.source.key_reader()
        try:
            return read_keys(reader, mapping, request.keys)
        finally:
            reader.close()
