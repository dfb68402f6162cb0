"""One source's pipeline: initial load if needed, then binlog -> mapping -> batch -> commit.

The binlog is read on its own thread, ahead of the applying thread by a bounded number of row
changes (syncd/source/readahead.py). The applying thread takes whole source transactions and
commits a batch as soon as nothing more has been read (low lag when quiet) or the batch is
full (throughput under backlog). Each commit holds whole source
transactions and that source's checkpoint.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import structlog

from syncd.config import Config
from syncd.errors import SinkError
from syncd.mapping.load import SourcePlan
from syncd.mapping.plan import (
    ZERO_DATE_READ_AS_NULL,
    ChangeContext,
    Mapping,
    dead_letter,
    map_change,
    zero_date_fields,
)
from syncd.model import (
    Checkpoint,
    DeadLetter,
    Heartbeat,
    Lineage,
    Outcome,
    Pause,
    Position,
    RowChange,
    SchemaChange,
    SourceEvent,
    SourceTransaction,
    TableSchema,
    TransactionPart,
)
from syncd.service.schema_policy import MappingGate, decide, history_fix_hint
from syncd.service.window import RepairWindow
from syncd.sink.base import Sink
from syncd.sink.batch import Batch, PlannedOp, RepairDone
from syncd.source.base import ChangeSource, EventStream
from syncd.source.continuity import ResumeGuard, lineage_after
from syncd.source.ddl import table_effects
from syncd.source.gtid import GtidState
from syncd.source.schema_history import SchemaHistory

log = structlog.get_logger("syncd.service.pipeline")

_LINGER_S = 0.002
"""How long a batch ready to commit waits for the next event before committing."""

_ORDERED = (SourceTransaction, SchemaChange)
"""Events that move the position (a tuple: `isinstance` with `A | B` builds the union each time)."""


@dataclass
class Progress:
    """What the daemon reports about a pipeline (read by metrics, health, notify)."""

    connected: bool = False
    last_activity: float = 0.0
    last_event_time: datetime | None = None
    lag_seconds: float | None = None
    applied: int = 0
    pending_since: datetime | None = None
    """The source commit time of the oldest change taken and not committed yet (None: none)."""

    def current_lag(self) -> float | None:
        """The lag as of now: the last commit's, or longer while taken changes wait for their
        commit (a commit blocked by a lock on a mapped table shows as growing lag, not as the
        lag of the batch before it)."""
        if self.pending_since is None:
            return self.lag_seconds
        waiting = (datetime.now(UTC) - self.pending_since).total_seconds()
        return max(waiting, self.lag_seconds or 0.0)


class Pipeline:
    """Runs one source until `stop` is set or an error is raised (the daemon retries).

    `changes` is where the source's events come from, `sink` where batches go, and `copy` the
    initial copy of the mapped tables (run while the checkpoint says no snapshot was taken;
    False: stopped before it finished)."""

    def __init__(self, plan: SourcePlan, config: Config, stop: threading.Event, *,
                 changes: ChangeSource, sink: Sink, copy: Callable[[threading.Event], bool],
                 on_batch: Callable[[str, Batch, float, list[DeadLetter]], None] | None = None) -> None:
        self.plan = plan
        self.source = plan.source
        self.batch_config = config.batch
        self.stop = stop
        self.changes = changes
        self.sink = sink
        self.copy = copy
        self.on_batch = on_batch
        self.progress = Progress()
        self.by_table = plan.by_table()
        self.position: Position | None = None
        self.log = log.bind(source=self.source.name)
        self.window = RepairWindow(plan, changes, sink, self.log)
        self.truncate_policy = config.ddl.truncate
        self.gate = MappingGate([], set(), Position("", 0))
        self.known_columns: dict[str, dict[str, str]] = {}
        self.lineage = Lineage()
        """What the checkpoints written record of the binlog history (see continuity.py)."""
        self._applied: SourceTransaction | None = None
        """The last transaction that changed a mapped table, not yet in `lineage`."""

    def run(self) -> None:
        try:
            checkpoint = self.sink.read_checkpoint(self.source.name)
            if checkpoint is None or not checkpoint.snapshot_done:
                checkpoint = self.initial_load()
            if checkpoint is not None and not self.stop.is_set():
                self.stream(checkpoint)
        except _Abandoned:
            self.log.info("large_transaction_abandoned", position=str(self.position))
        finally:
            self.progress.connected = False
            self.sink.close()

    def initial_load(self) -> Checkpoint | None:
        """Copy every mapped table, then checkpoint the copy's binlog position.

        The same resumable copy as `syncd snapshot`: an interrupted load continues from its last
        finished chunk. Returns None when stopped before the copy finished (no checkpoint then).
        """
        if not self.copy(self.stop):
            return None
        return self.sink.read_checkpoint(self.source.name)

    def _open_gate(self, checkpoint: Checkpoint) -> MappingGate:
        """Paused mappings stay paused unless they are in the plan and the live source fits them
        again (after a reload). The pause of a mapping the plan lacks is kept: brought back by a
        later reload, it replays from there."""
        pauses = self.sink.read_pauses(self.source.name)
        mappings = {m.name: m for m in self.plan.mappings}
        resumable = {p.mapping for p in pauses if p.mapping in mappings and not p.waits_for_copy
                     and not self._broken(mappings[p.mapping])}
        for pause in pauses:
            event = "mapping_resumed" if pause.mapping in resumable else "mapping_still_paused"
            self.log.warning(event, mapping=pause.mapping, position=str(pause.position),
                             statement=pause.statement[:300], reason=pause.reason)
        return MappingGate(pauses, resumable, checkpoint.position)

    def _broken(self, mapping: Mapping) -> bool:
        live = self._live_columns(mapping.spec.table)
        return live is None or not mapping.source_columns <= set(live)

    def _live_columns(self, table: str) -> dict[str, str] | None:
        return self.changes.live_columns([table]).get(table)

    def stream(self, checkpoint: Checkpoint) -> None:
        self.gate = self._open_gate(checkpoint)
        caught_up = self.gate.take_resumed(None)
        if caught_up:  # resumed with nothing to replay: not paused any more, even if no event comes
            self.sink.commit(Batch(resumed=caught_up))
        self.known_columns = self.changes.live_columns(self.by_table)
        start = self.gate.start(checkpoint.position)
        self.lineage = checkpoint.lineage or Lineage()
        # A replay for resumed mappings starts before the checkpoint: no stream check there.
        guard = ResumeGuard(self.source.name, checkpoint.position) if start == checkpoint.position else None
        history = self._schema_history(start)
        events = self.changes.stream(start, set(self.by_table), GtidState.parse(checkpoint.position.gtid),
                                     guard, history)
        self.progress.connected = True
        self.position = checkpoint.position
        self.log.info("streaming_started", position=str(start))
        try:
            self._apply_from(events)
        finally:
            events.close()

    def _schema_history(self, start: Position) -> SchemaHistory:
        """The source's schema history for a stream from `start`, recording (pinning at DDLs)
        when the server writes row events without full metadata, or once did. A mapped table
        without an entry at `start` gets one pinned there first (syncd/source/pinning.py)."""
        entries = self.sink.read_schema_history(self.source.name)
        metadata = self.changes.row_metadata()
        history = SchemaHistory(entries, recording=bool(entries) or metadata != "FULL", metadata=metadata)
        if not history.recording:
            return history
        missing = sorted(t for t in self.by_table if history.at(t, _just_after(start)) is None)
        if missing:
            pinned = self.changes.pin_schemas(missing, start)
            self.sink.commit(Batch(schemas=[(self.source.name, entry) for entry in pinned]))
            for entry in pinned:
                history.add(entry)
        self.log.info("schema_history", binlog_row_metadata=metadata or None, entries=len(history),
                      pinned=missing, position=str(start))
        return history

    def _apply_from(self, events: EventStream) -> None:
        batch = Batch()
        started = 0.0
        at_bytes = events.handed_bytes  # bytes of the events taken before this batch
        while not self.stop.is_set():
            # A batch with whole transactions waits only a moment for more: under a backlog the
            # next event comes within microseconds (the batch grows), on a quiet source it doesn't.
            wait = _LINGER_S if batch.checkpoint is not None else self.batch_config.max_delay_s
            try:
                item = events.get(wait)
            except queue.Empty:
                item = None
            if isinstance(item, BaseException):
                self._flush(batch)
                raise item
            if isinstance(item, TransactionPart):
                self._flush(batch)
                batch = Batch()
                self._apply_long(item, events)
                at_bytes = events.handed_bytes
                continue
            if item is not None:
                if batch.checkpoint is None and not len(batch):  # cheap test first: once per transaction
                    started = time.monotonic()
                self._take(batch, item)
            if batch.checkpoint is not None and (item is None or self._due(batch, started,
                                                                           events.handed_bytes - at_bytes)):
                self._flush(batch)
                batch = Batch()
                at_bytes = events.handed_bytes
            if batch.checkpoint is None and not len(batch):
                self.window.serve(self.position, self._commit)  # between batches: idle or loaded
        self._flush(batch)

    def _apply_long(self, first: TransactionPart, events: EventStream) -> None:
        """A large source transaction: its parts go into one open target transaction.

        Stopping in the middle abandons it (rolled back, checkpoint unchanged), so the target
        never shows part of it and the next start reads it again.
        """
        began = time.monotonic()
        position = f"{self.position} + transaction in progress"
        parts = Batch()  # what the parts did, counted with the last one once it commits
        with self.sink.long_transaction() as target:
            item: object = first
            while isinstance(item, TransactionPart):
                if self.progress.pending_since is None:
                    self.progress.pending_since = item.commit_time
                part = Batch()
                ctx = ChangeContext(self.source.name, position, item.commit_time)
                self.window.drop_changed(item.changes)
                for change in item.changes:
                    mappings = [m for m in self.by_table.get(change.table, [])
                                if self.gate.applies(m.name, _just_after(self.position))]
                    self._map_into(part, change, mappings, ctx)
                target.apply(part.ops, part.dead_letters)
                parts.changes_by_table.update(part.changes_by_table)
                parts.dead_letters += part.dead_letters
                self.progress.applied += len(part.ops)
                self.progress.last_activity = time.monotonic()
                item = self._next(events)
            if not isinstance(item, SourceTransaction):
                raise SinkError(f"large transaction after {self.position} ended without a commit")
            last = Batch()
            self._take(last, item)
            self._seal(last)
            rejected = target.finish(last)
        last.changes_by_table.update(parts.changes_by_table)
        self._after_commit(last, parts.dead_letters + rejected, time.monotonic() - began)

    def _next(self, events: EventStream) -> object:
        """The next event, waiting as long as needed; a stop request abandons the wait."""
        while not self.stop.is_set():
            try:
                item = events.get(0.5)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            return item
        raise _Abandoned

    def _due(self, batch: Batch, started: float, taken_bytes: int) -> bool:
        """Whether the batch is full (rows or the bytes its events came in) or old enough."""
        return (len(batch) >= self.batch_config.max_rows or taken_bytes >= self.batch_config.max_bytes
                or time.monotonic() - started >= self.batch_config.max_delay_s)

    def _take(self, batch: Batch, event: SourceEvent) -> None:
        self.progress.last_activity = time.monotonic()
        before = self.position
        if isinstance(event, _ORDERED):
            self.window.before(batch, event)
            self.position = event.end
        if isinstance(event, SourceTransaction):
            if self.progress.pending_since is None:
                self.progress.pending_since = event.commit_time
            if event.doubts:
                self._doubted(batch, event, before)
            ctx = ChangeContext(self.source.name, str(event.end), event.commit_time)
            gate, by_table, end = self.gate, self.by_table, event.end
            for change in event.changes:
                mappings = by_table.get(change.table, [])
                if not gate.open:
                    mappings = [m for m in mappings if gate.applies(m.name, end)]
                self._map_into(batch, change, mappings, ctx)
            batch.transactions += 1
            if event.changes and (gate.replay_until is None or end > gate.replay_until):
                self._applied = event
        elif isinstance(event, SchemaChange):
            self._schema_change(batch, event)
        if isinstance(event, _ORDERED):
            position = self.gate.checkpoint_for(event.end)
            batch.checkpoint = Checkpoint(self.source.name, position, event.commit_time, True)
            batch.resumed.extend(self.gate.take_resumed(event.end))
        elif isinstance(event, Heartbeat):
            self.progress.lag_seconds = 0.0
            self._replayed_to(batch, event.position)
            self._idle_at(batch, event.position)

    def _replayed_to(self, batch: Batch, position: Position | None) -> None:
        """An idle stream at or past the end of a replay: the resumed mappings have caught up
        (no more transaction needs to come for their pauses to be cleared). What the batch holds
        came before: it is part of the replay, checkpointed at its end."""
        until = self.gate.replay_until
        if until is None or position is None or position < until:
            return
        batch.resumed.extend(self.gate.finish_replay())
        batch.checkpoint = batch.checkpoint or Checkpoint(self.source.name, until, None, True)

    def _idle_at(self, batch: Batch, position: Position | None) -> None:
        """An idle source still moves on (binlog rotation, other databases' transactions): keep
        the checkpoint up with it, so an old binlog file is never needed for nothing."""
        if (position is None or self.position is None or position <= self.position
                or batch.checkpoint is not None or len(batch) or self.gate.replay_until is not None):
            return
        self.position = position
        batch.checkpoint = Checkpoint(self.source.name, position, None, True)
        batch.resumed.extend(self.gate.take_resumed(position))

    def _doubted(self, batch: Batch, event: SourceTransaction, before: Position | None) -> None:
        """Tables whose rows the reader could not name (their table map does not fit the schema
        history): each mapping of them that this transaction feeds pauses just before it."""
        at = before or event.end
        for table, reason in event.doubts:
            for mapping in self.by_table.get(table, []):
                if self.gate.applies(mapping.name, event.end):
                    self._pause(batch, Pause(mapping.name, self.source.name, at,
                                             f"(rows of {table} in the transaction ending at {event.end})",
                                             f"{reason}; {history_fix_hint(mapping)}"))

    def _pause(self, batch: Batch, pause: Pause) -> None:
        self.gate.pause(pause)
        batch.pauses.append(pause)
        self.log.error("mapping_paused", mapping=pause.mapping, statement=pause.statement[:500],
                       position=str(pause.position), reason=pause.reason)

    def _schema_change(self, batch: Batch, event: SchemaChange) -> None:
        tables = [e.table for e in table_effects(event.statement, event.schema, self.source.database)]
        self.log.info("schema_change", statement=event.statement[:500], schema=event.schema,
                      table=",".join(tables) or None, position=str(event.end))
        batch.schemas.extend((self.source.name, entry) for entry in event.schemas)
        if self.gate.replay_until is not None and event.end <= self.gate.replay_until:
            return  # replaying: this statement was handled when it first streamed
        pinned = {entry.table: entry for entry in event.schemas}
        for entry in event.schemas:
            if not entry.known:
                for mapping in self.by_table.get(entry.table, []):
                    if self.gate.applies(mapping.name, event.end):
                        self._pause(batch, Pause(mapping.name, self.source.name, event.end, event.statement,
                                                 f"{entry.note}; {history_fix_hint(mapping)}"))
        decision = decide(event, self.source.database, self.plan.mappings, paused=set(self.gate.paused),
                          columns=partial(_columns_at, pinned, self._live_columns), known=self.known_columns,
                          truncate_policy=self.truncate_policy)
        for name in decision.absorbed:
            self.log.info("schema_change_absorbed", mapping=name, position=str(event.end))
        for pause in decision.pauses:
            self._pause(batch, pause)
        ctx = ChangeContext(self.source.name, str(event.end), event.commit_time)
        for op in decision.ops:
            origin = DeadLetter(self.source.name, event.schema, "", "(whole slice: TRUNCATE)",
                                ctx.position, {}, "")
            batch.ops.append(PlannedOp(op, origin))
            self.log.warning("truncate_propagated", table=str(op.table), position=str(event.end))

    def _map_into(self, batch: Batch, change: RowChange, mappings: list[Mapping], ctx: ChangeContext) -> None:
        batch.changes_by_table[change.table] += 1
        if change.zero_dates and (zeros := zero_date_fields(change, mappings, ctx.position)):
            self.log.warning(ZERO_DATE_READ_AS_NULL, **zeros)
        for mapping in mappings:
            mapped = map_change(mapping, change, ctx)
            if mapped.dead_letters:
                batch.dead_letters.extend(mapped.dead_letters)
            if mapped.ops:
                origin = partial(dead_letter, mapping, change, ctx, "")
                for op in mapped.ops:
                    batch.ops.append(PlannedOp(op, origin))

    def _flush(self, batch: Batch) -> None:
        if batch.checkpoint is None and not len(batch):
            return
        self._commit(batch)

    def _seal(self, batch: Batch) -> None:
        """Give the batch's checkpoint the lineage of what it covers (a digest per batch at most)."""
        if batch.checkpoint is None:
            return
        if self._applied is not None:
            self.lineage, self._applied = lineage_after(self.lineage, self._applied), None
        batch.checkpoint.lineage = self.lineage

    def _commit(self, batch: Batch) -> None:
        began = time.monotonic()
        self._seal(batch)
        rejected = self.sink.commit(batch)
        self._after_commit(batch, rejected, time.monotonic() - began)

    def _after_commit(self, batch: Batch, rejected: list[DeadLetter], seconds: float) -> None:
        self.progress.applied += len(batch.ops)
        self.progress.pending_since = None
        self.progress.last_activity = time.monotonic()
        if batch.checkpoint is not None and batch.checkpoint.last_event_time is not None:
            self.progress.last_event_time = batch.checkpoint.last_event_time
            lag = (datetime.now(UTC) - batch.checkpoint.last_event_time).total_seconds()
            self.progress.lag_seconds = max(0.0, lag)
        for letter in batch.dead_letters + rejected:
            self.log.warning("dead_letter", table=letter.source_table, mapping=letter.mapping,
                             row_key=letter.row_key, position=letter.position, reason=letter.reason)
        for done in batch.repairs:
            self._log_repair(done)
        if self.on_batch is not None:
            self.on_batch(self.source.name, batch, seconds, rejected)
        if batch.checkpoint is not None:
            self.log.debug("batch_committed", rows=len(batch.ops), transactions=batch.transactions,
                           position=str(batch.checkpoint.position), seconds=round(seconds, 4))


    def _log_repair(self, done: RepairDone) -> None:
        """One event per repair, its counts from the per-key outcomes the sink settled."""
        counts = Counter(o.outcome for o in done.outcomes)
        refused = [o.row_key for o in done.outcomes if o.outcome is Outcome.DEAD_LETTERED]
        self.log.info("repair_applied", request=done.request_id, mapping=done.mapping, error=done.error,
                      applied=counts[Outcome.APPLIED], source_gone=counts[Outcome.SOURCE_GONE],
                      newer_in_stream=counts[Outcome.NEWER_IN_STREAM], dead_lettered=len(refused),
                      dead_lettered_keys=refused[:20])


class _Abandoned(Exception):
    """Stop requested in the middle of a large transaction: roll it back, checkpoint unchanged."""


def _columns_at(pinned: dict[str, TableSchema], live: Callable[[str], dict[str, str] | None],
                table: str) -> dict[str, str] | None:
    """A table's columns just after a DDL: its schema history entry there when it has one (the
    columns then, even while catching up on a backlog), else the live ones."""
    entry = pinned.get(table)
    if entry is None or entry.columns is None:
        return live(table)
    return {column.name: column.data_type for column in entry.columns} or None


def _just_after(position: Position | None) -> Position:
    """A position just past `position`: where the changes of a transaction in progress lie."""
    assert position is not None
    return Position(position.file, position.pos + 1)


