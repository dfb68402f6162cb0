"""`syncd snapshot`: copy mapped tables again in row-key chunks, resumable, safe while streaming.

Chunks follow the row key: the mappings' `source_key` when they name one, else the primary key.

Two ways, chosen by who holds the source's lock (syncd.sink.lock.SourceLock):

* **No daemon holds it** (re-initialisation after the binlog was purged, or a planned re-copy):
  this process takes the lock for the whole copy, takes the binlog position P of a consistent
  snapshot, and copies each table chunk by chunk through the mappings into the target, each
  chunk one short read of its own (no transaction stays open, so DDL on the source never waits
  for the copy). Every chunk commits together with its progress row (`snapshot_progress`: row
  key, last key copied, rows copied), so an interrupted copy continues after its last committed
  chunk. The P of the *first* start is kept across chunks and resumes: every chunk is read at
  or after it, and streaming from the earliest position converges, because every row event
  carries the full row and applies idempotently (syncd/source/snapshot.py). After the copy,
  target rows of each mapping's slice whose source row no longer exists are removed, and the
  source's checkpoint (position P, snapshot done) is written in the last transaction, which
  also clears the progress rows. Two tables are copied side by side (`TABLE_WORKERS`), each in
  a thread with connections, read-ahead and progress row of its own, so that one table's chunk
  is computed by the source server and mapped while the other's is written by PostgreSQL; each
  resumes after its own last committed chunk. A copy restricted to one mapping (`--mapping`) never moves the
  checkpoint: the stream replays from its own checkpoint over the copied rows and converges.
* **A daemon holds it**: every chunk of keys becomes a repair request (syncd.reconcile.repair) that the
  daemon applies in stream order, so nothing the stream applies is overwritten by an older
  image. Progress is recorded after each chunk the daemon confirms.

The module is long because both ways share the per-table job, its resume state and the schema
history recorded at the copy's position, which read best beside each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Generator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog

from syncd.config import DEFAULT_CHUNK_ROWS, Config, SourceConfig
from syncd.errors import RowsRejected, SnapshotError, Stopped, TransformError
from syncd.mapping.load import SourcePlan
from syncd.mapping.plan import (
    ZERO_DATE_READ_AS_NULL,
    ChangeContext,
    ColumnPlan,
    Mapping,
    dead_letter,
    map_change,
    remove_op,
    zero_date_fields,
)
from syncd.model import (
    SNAPSHOT_AT,
    Checkpoint,
    CopyProgress,
    Op,
    Position,
    Row,
    RowChange,
    undecodable_columns,
)
from syncd.reconcile.ahead import read_ahead, rows_per_read
from syncd.reconcile.compare import ChunkDiff, Key
from syncd.reconcile.copytext import CopyText, plan_copy_text
from syncd.reconcile.engine import REPAIR_BATCH, Options, scan_mapping
from syncd.reconcile.repair import repair
from syncd.reconcile.report import SourceKey
from syncd.sink.batch import Batch, PlannedOp
from syncd.sink.connection import Connection, connect
from syncd.sink.dead_letters import letters_clock, retire_superseded
from syncd.sink.lock import SourceLock
from syncd.sink.postgres import PostgresSink, copy_fields
from syncd.sink.schema_history import move_pauses, read_schema_history, write_schemas
from syncd.sink.slices import column_types, server_encoding, slice_has_rows
from syncd.sink.state import clear_progress, create_state_schema, read_progress, save_progress
from syncd.source import history
from syncd.source.chunks import Fetched, SourceReader, ZeroDates
from syncd.source.mysql import MySQLSource
from syncd.source.snapshot import SnapshotPoint, SourceSnapshot

log = structlog.get_logger("syncd.snapshot")

STREAM = "stream"
"""`snapshot_progress.position` of a copy made through the running daemon's stream."""

PIN_ATTEMPTS = 3
"""Snapshot points a fresh copy takes at most to find one where every table's columns can be
pinned (a DDL that runs just then makes the first one unusable)."""

TABLE_WORKERS = 2
"""Tables copied side by side (without a daemon): while one table's chunk is written by
PostgreSQL, another's is computed by the source server and mapped (see `_Job._copy_tables`)."""

Progress = Callable[[str, str, int, int], None]
"""progress(source, table, rows copied so far, estimated rows of the table)."""


@dataclass
class SnapshotResult:
    source: str
    mode: str
    """"direct" (no daemon: copied into the target) or "stream" (repairs through the daemon)."""
    position: str | None = None
    """The binlog position the copy stands for (direct mode), as `file:pos`."""
    resumed: bool = False
    copied: dict[str, int] = field(default_factory=dict)
    """Rows copied in this run, per table."""
    removed: int = 0
    """Target rows removed because their source row no longer exists."""
    dead_letters: int = 0
    letters_retired: int = 0
    """Pending dead letters of rows the copy wrote from their current source rows, marked retried."""
    finished: bool = False
    checkpoint_written: bool = False
    seconds: float = 0.0


@dataclass
class _TableCopy:
    """What copying one table's chunks needs."""

    table: str
    key: tuple[str, ...]
    columns: list[str]
    mappings: list[Mapping]
    text: CopyText | None
    """Set when the source server can write the rows as COPY text (syncd.reconcile.copytext)."""
    ctx: ChangeContext
    progress_key: str
    position: str
    rows: int
    """Rows per chunk: `chunk_rows`, fewer when the rows read hold many values (ahead.rows_per_read:
    every column mapped in Python, times the tables copied side by side; a COPY line's fields, its
    key and the columns left to Python)."""
    insert: bool = False
    """COPY text goes straight into the target table, not through the staging table's upsert:
    the table held no row when its copy started (not resumed). A chunk refused for a key that
    is there after all is written by upsert, as the rest of the table."""

    def progress(self, last: tuple[Any, ...] | None, rows: int, done: bool) -> CopyProgress:
        return CopyProgress(self.progress_key, self.position, list(last) if last is not None else None,
                              rows, done, list(self.key))


def _copy_text(sink: PostgresSink, mappings: list[Mapping], reader: SourceReader, table: str, *,
               plan: SourcePlan, commit_time: datetime) -> CopyText | None:
    if len(mappings) != 1:
        return None
    target_types = column_types(sink.conn, mappings[0].table)
    return plan_copy_text(mappings[0], reader.source_columns(table), target_types, plan.source.timezone,
                          server_encoding(sink.conn), commit_time=commit_time)


def _snapshot_point(source: SourceConfig) -> SnapshotPoint:
    """The binlog position of a consistent snapshot, closed at once. Every later read sees at
    least what it saw, so chunks are read by short reads of their own: a transaction held open
    for the whole copy would hold metadata locks that make DDL on the source (and every query
    queued behind that DDL) wait for the copy to end."""
    snap = SourceSnapshot(source)
    try:
        return snap.open()
    finally:
        snap.close()


def _check_columns(mapping: Mapping, table: str, columns: dict[str, str]) -> None:
    gone = sorted(mapping.source_columns - set(columns))
    if gone:
        where = mapping.spec.where
        at = f" at {where.file}:{where.line}" if where is not None else ""
        raise SnapshotError(f"mapping {mapping.name!r} reads column(s) {', '.join(gone)} that source table "
                            f"{table} does not have: edit the mapping{at} (and reload a running syncd), "
                            "then copy")


def _progress_key(table: str, mapping: str | None) -> str:
    return f"{table}#{mapping}" if mapping else table


def _snapshot_checkpoint(source: SourceConfig, position: str) -> Checkpoint:
    """The checkpoint a whole copy ends with, with the binlog history its position belongs to
    (syncd/source/continuity.py proves it at every resume)."""
    at, lineage, note = history.snapshot_record(source, _parse_position(position))
    return Checkpoint(source.name, at, None, snapshot_done=True, lineage=lineage, continuity=note)


def _parse_position(text: str) -> Position:
    file, _, pos = text.rpartition(":")
    return Position(file, int(pos))


def select_plans(plans: dict[str, SourcePlan], source: str | None,
                 mapping: str | None) -> list[tuple[SourcePlan, dict[str, list[Mapping]]]]:
    """(plan, table -> mappings) per source the snapshot covers."""
    if source is not None and source not in plans:
        raise SnapshotError(f"no source named {source!r}; configured: {sorted(plans)}")
    chosen = []
    for name, plan in plans.items():
        if source not in (None, name):
            continue
        tables: dict[str, list[Mapping]] = {}
        for m in plan.mappings:
            if mapping in (None, m.name):
                tables.setdefault(m.spec.table, []).append(m)
        if tables:
            chosen.append((plan, tables))
    if mapping is not None and not chosen:
        raise SnapshotError(f"no mapping named {mapping!r}" + (f" of source {source!r}" if source else ""))
    return chosen


def snapshot(config: Config, plans: dict[str, SourcePlan], *, source: str | None = None,
             mapping: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
             stop: threading.Event | None = None, progress: Progress | None = None,
             map_every_row: bool = False) -> list[SnapshotResult]:
    """Copy (or, with a daemon running, repair) every chosen source's mapped tables.

    `map_every_row` reads every row through the mapping in Python, also for mappings that only
    copy values (which the source server otherwise writes as COPY text: syncd.reconcile.copytext).

    Returns one result per source; a result with `finished` False was stopped and resumes next
    time. Raises SnapshotError for unknown names, NoPrimaryKey for a table without a primary key
    or `source_key`, UnusableSourceKey for a source_key that is no unique NOT NULL key,
    SourceUnavailable / SinkUnavailable when a server cannot be reached.
    """
    if chunk_rows < 1:
        raise SnapshotError("chunk_rows must be at least 1")
    results = []
    for plan, tables in select_plans(plans, source, mapping):
        if stop is not None and stop.is_set():
            break
        job = _Job(config, plans, plan, tables=tables, mapping=mapping, chunk_rows=chunk_rows, stop=stop,
                   progress=progress, map_every_row=map_every_row)
        results.append(job.run())
    return results


def initial_copy(config: Config, plan: SourcePlan, *, stop: threading.Event,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS) -> SnapshotResult:
    """`syncd run`'s initial load, by a process that already holds the source's lock.

    The same resumable copy as `syncd snapshot` without a daemon: an interrupted load continues
    from its last finished chunk, and the checkpoint is written when every table is copied.
    """
    job = _Job(config, {plan.source.name: plan}, plan, tables=plan.by_table(), mapping=None,
               chunk_rows=chunk_rows, stop=stop, progress=None)
    conn = connect(config.target, f"syncd:snapshot:{plan.source.name}")
    try:
        return job._direct(conn)
    finally:
        conn.close()


class _Job:
    """One source's snapshot."""

    def __init__(self, config: Config, plans: dict[str, SourcePlan], plan: SourcePlan, *,
                 tables: dict[str, list[Mapping]], mapping: str | None, chunk_rows: int,
                 stop: threading.Event | None, progress: Progress | None,
                 map_every_row: bool = False) -> None:
        self.config = config
        self.map_every_row = map_every_row
        self.plans = plans
        self.plan = plan
        self.name = plan.source.name
        self.tables = tables
        self.partial = mapping
        self.chunk_rows = chunk_rows
        self.stop = stop or threading.Event()
        self.progress = progress
        self.schema = config.target.state_schema
        self.log = log.bind(source=self.name)
        self._counting = threading.Lock()
        """Tables copied side by side add to one result."""
        self._side_by_side = 1
        """Tables being copied at once: the rows of a chunk mapped in Python are bounded for all
        of them together (ahead.READ_VALUES), so that memory stays what one table's copy holds."""

    def run(self) -> SnapshotResult:
        began = time.monotonic()
        self._check_tables()
        lock = SourceLock(self.config.target, self.name)
        conn = connect(self.config.target, f"syncd:snapshot:{self.name}")
        try:
            create_state_schema(conn, self.schema)
            if lock.try_acquire():
                try:
                    lock.record_health("snapshot", None)  # for `syncd status` while it runs
                    result = self._direct(conn)
                finally:
                    lock.release()
            else:
                result = self._through_stream(conn)
        finally:
            conn.close()
        result.seconds = time.monotonic() - began
        self.log.info("snapshot_finished" if result.finished else "snapshot_interrupted",
                      mode=result.mode, copied=result.copied, removed=result.removed,
                      dead_letters=result.dead_letters, letters_retired=result.letters_retired,
                      position=result.position, seconds=round(result.seconds, 3))
        return result

    def _check_tables(self) -> None:
        """A mapped table missing from the source, or a column a mapping reads that its table no
        longer has, is named as such before anything is written (every row would be a dead letter)."""
        reader = SourceReader(self.plan.source)
        try:
            columns = {table: reader.columns(table) for table in self.tables}
            self._check_missing(columns)
            for table, mappings in self.tables.items():
                reader.row_key(table, mappings[0])  # a table without a usable row key says so first
                for mapping in mappings:
                    _check_columns(mapping, table, columns[table])
        finally:
            reader.close()

    def _check_missing(self, columns: dict[str, dict[str, str]]) -> None:
        missing = [table for table, found in columns.items() if not found]
        if missing:
            database, names = self.plan.source.database, ", ".join(
                f"{table} (mapping {', '.join(m.name for m in self.tables[table])})" for table in missing)
            raise SnapshotError(f"source {self.name}: table(s) {names} do not exist in database {database}: "
                                "create them or fix `table:` in the mapping")

    def _keys(self) -> list[str]:
        return [_progress_key(t, self.partial) for t in self.tables]

    def _stale(self, found: dict[str, CopyProgress], mode: str) -> bool:
        """Progress left by the other way of copying cannot be continued (start over then)."""
        mine = [found[k] for k in self._keys() if k in found]
        return any((p.position == STREAM) != (mode == STREAM) for p in mine)

    # -- no daemon: copy into the target ----------------------------------------------------

    def _direct(self, conn: Connection) -> SnapshotResult:
        found = read_progress(conn, self.schema, self.name)
        if self._stale(found, "direct"):
            with conn.cursor() as cur:
                clear_progress(cur, self.schema, self.name, self._keys())
            found = {}
        fresh = self._empty_slices(conn, found)
        point = _snapshot_point(self.plan.source)
        mine = [found[k] for k in self._keys() if k in found]
        if mine:
            self._record_schemas(conn, _parse_position(mine[0].position))
        else:
            point = self._pinned_point(conn, point)
        position = mine[0].position if mine else str(point.position)
        result = SnapshotResult(self.name, "direct", position, resumed=bool(mine))
        began = letters_clock(conn)
        self.log.info("snapshot_started", mode="direct", position=position, resumed=result.resumed,
                      snapshot_position=str(point.position), tables=sorted(self.tables))
        todo = [(table, mappings, state) for table, mappings in self.tables.items()
                if (state := found.get(_progress_key(table, self.partial))) is None or not state.done]
        if not self._copy_tables(todo, position, result):
            return result
        sink = PostgresSink(self.config.target, f"syncd:snapshot:{self.name}")
        try:
            if not self._remove_extra_direct(conn, sink, result, skip=fresh):
                return result
            self._finish_direct(sink, position, result, None if result.resumed else began)
        finally:
            sink.close()
        result.finished = True
        return result

    def _pinned_point(self, conn: Connection, point: SnapshotPoint) -> SnapshotPoint:
        """A fresh copy's snapshot point, with the copied tables' columns recorded there; a point
        where one cannot be pinned (a DDL ran at that moment) is taken again."""
        for _ in range(PIN_ATTEMPTS - 1):
            if self._record_schemas(conn, point.position):
                return point
            point = _snapshot_point(self.plan.source)
        self._record_schemas(conn, point.position)
        return point

    def _record_schemas(self, conn: Connection, at: Position) -> bool:
        """For a source read with the schema history (syncd/source/schema_history.py): the copied
        tables' columns recorded at the copy's position, where the stream after the copy reads
        from (an entry there is kept). False when one cannot be pinned there."""
        source = MySQLSource(self.plan.source)
        known = read_schema_history(conn, self.schema, self.name)
        if not known and source.row_metadata() == "FULL":
            return True
        there = {entry.table for entry in known if entry.position == at and entry.known}
        missing = sorted(set(self.tables) - there)
        entries = source.pin_schemas(missing, at) if missing else []
        with conn.cursor() as cur:
            write_schemas(cur, self.schema, [(self.name, entry) for entry in entries])
        self.log.info("snapshot_schemas_recorded", position=str(at), tables=missing,
                      unknown=[entry.table for entry in entries if not entry.known])
        return all(entry.known for entry in entries)

    def _move_pauses(self, cur: Any, to: Position) -> None:
        names = [mapping.name for mappings in self.tables.values() for mapping in mappings]
        moved = move_pauses(cur, self.schema, self.name, names, to)
        if moved:
            self.log.info("snapshot_moved_pauses", mappings=moved, position=str(to),
                          action="they resume from the copy's position once syncd reloads")

    def _copy_tables(self, todo: list[tuple[str, list[Mapping], CopyProgress | None]], position: str,
                     result: SnapshotResult) -> bool:
        """Copy these tables, `TABLE_WORKERS` at a time (each in a thread with connections of its
        own, its chunks committed with its own progress row); False when stopped. A table that
        fails stops the others after their current chunk, and its error is raised."""
        halt = _Halt(self.stop)
        self._side_by_side = min(TABLE_WORKERS, max(1, len(todo)))
        for table, _, _ in todo:
            result.copied.setdefault(table, 0)
        with ThreadPoolExecutor(self._side_by_side, thread_name_prefix="copy") as pool:
            futures = [pool.submit(self._copy_one, table, mappings, state, position=position, result=result,
                                   halt=halt) for table, mappings, state in todo]
            wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                halt.set()
            done = [future.result() for future in futures]
        return all(done)

    def _copy_one(self, table: str, mappings: list[Mapping], state: CopyProgress | None, *, position: str,
                  result: SnapshotResult, halt: threading.Event) -> bool:
        """One table's copy over connections of its own."""
        if halt.is_set():
            return False
        sink = PostgresSink(self.config.target, f"syncd:snapshot:{self.name}")
        reader = SourceReader(self.plan.source)
        try:
            return self._copy_table(reader, sink, table, mappings, position=position, state=state,
                                    result=result, stop=halt)
        finally:
            reader.close()
            sink.close()

    def _copy_table(self, reader: SourceReader, sink: PostgresSink, table: str, mappings: list[Mapping], *,
                    position: str, state: CopyProgress | None, result: SnapshotResult,
                    stop: threading.Event) -> bool:
        columns = reader.columns(table)
        ctx = ChangeContext(self.name, f"{SNAPSHOT_AT}{position}", datetime.now(UTC))
        text = None if self.map_every_row else _copy_text(sink, mappings, reader, table, plan=self.plan,
                                                          commit_time=ctx.commit_time)
        key = reader.row_key(table, mappings[0])  # fan-out mappings share one source_key (spec.py)
        job = _TableCopy(
            table=table,
            key=key,
            columns=list(columns),
            mappings=mappings,
            text=text,
            ctx=ctx,
            progress_key=_progress_key(table, self.partial),
            position=position,
            rows=rows_per_read(self.chunk_rows, len(columns) * self._side_by_side if text is None
                               else len(text.columns) + len(key) + len(text.reads)))
        state = self._continuable(state, job.key)
        job.insert = (text is not None and state is None
                      and not slice_has_rows(sink.conn, mappings[0].table, {}))
        estimate = max(reader.estimated_rows(table), state.rows_copied if state else 0)
        after = tuple(state.last_key) if state is not None and state.last_key is not None else None
        copied = state.rows_copied if state is not None else 0
        self.log.info("snapshot_table", table=table, copy_text=job.text is not None, resume_after=after)
        chunks = read_ahead(partial(self._read_chunks, job, after), name=f"snapshot-{table}", stop=stop)
        try:
            for chunk in chunks:
                self._write_chunk(reader, sink, job, chunk, copied=copied, result=result)
                copied += chunk.count
                result.copied[table] += chunk.count
                if chunk.count:
                    self._report(table, copied, max(estimate, copied))
        except Stopped:
            return False
        return True

    def _read_chunks(self, job: _TableCopy, after: tuple[Any, ...] | None) -> Generator[_Chunk, None, None]:
        """The table's chunks after key `after`, read and mapped on a connection of their own (in
        the read-ahead thread, while the previous chunk is written)."""
        reader = SourceReader(self.plan.source)
        try:
            while True:
                chunk = _read_chunk(reader, job, after, job.rows)
                yield chunk
                if chunk.count < job.rows:
                    return
                after = chunk.last
        finally:
            reader.close()

    def _write_chunk(self, reader: SourceReader, sink: PostgresSink, job: _TableCopy, chunk: _Chunk, *,
                     copied: int, result: SnapshotResult) -> None:
        """Write one chunk with its progress row. When PostgreSQL rejects its COPY text, the rows
        of the chunk's key range are read again and all go through the mapping."""
        state = job.progress(chunk.last, copied + chunk.count, chunk.count < job.rows)
        if chunk.lines is not None:
            done = self._commit_text(sink, job, chunk.lines, chunk.batch, state)
            if done is not None:
                self._warn_zero_dates(job, chunk.rows, chunk.zeros)
                self._count_dead_letters(result, done)
                return
            rows, zeros = reader.rows_between(job.table, job.key, job.columns, chunk.after, chunk.last)
            chunk = _Chunk(chunk.after, chunk.last, chunk.count, None, rows, zeros,
                           _map_rows(job.table, job.key, rows, job.mappings, job.ctx))
        self._warn_zero_dates(job, chunk.rows, chunk.zeros)
        self._count_dead_letters(result, self._commit(sink, chunk.batch, state))

    def _count_dead_letters(self, result: SnapshotResult, count: int) -> None:
        with self._counting:
            result.dead_letters += count

    def _warn_zero_dates(self, job: _TableCopy, rows: list[Row], zeros: ZeroDates) -> None:
        """What streaming logs of the zero dates it reads as NULL, for the copied rows (a COPY line
        is never written for a row with one: such rows are mapped in Python)."""
        for index, columns in zeros.items():
            change = RowChange(job.table, Op.INSERT, None, rows[index], key_columns=job.key,
                               zero_dates=columns)
            if fields := zero_date_fields(change, job.mappings, job.ctx.position):
                self.log.warning(ZERO_DATE_READ_AS_NULL, **fields)

    def _commit_text(self, sink: PostgresSink, job: _TableCopy, lines: list[bytes], batch: Batch,
                     state: CopyProgress) -> int | None:
        """The chunk as COPY text, with the rows mapped in Python (`batch`); the dead letters, or
        None when PostgreSQL rejects a row (the whole chunk goes through the mapping then)."""
        assert job.text is not None
        mapping = job.mappings[0]
        try:
            with sink.long_transaction() as tx:
                if lines:
                    tx.write_text(mapping.table, mapping.key, job.text.columns, b"".join(lines),
                                  insert=job.insert)
                rejected = tx.finish(batch)
                save_progress(tx.cur, self.schema, self.name, state)
        except RowsRejected as exc:
            if job.insert:  # a key there after all (a daemon of another source writes the table)
                job.insert = False
                return self._commit_text(sink, job, lines, batch, state)
            self.log.info("copy_text_rejected", table=job.table, rows=len(lines), reason=exc.reason)
            return None
        return len(batch.dead_letters) + len(rejected)

    def _continuable(self, state: CopyProgress | None, key: tuple[str, ...]) -> CopyProgress | None:
        """The progress to go on from, or None (start the table over) when it was made by another
        row key, e.g. after a mapping's `source_key` changed."""
        if state is None or state.continues(key):
            return state
        self.log.warning("snapshot_key_changed", table=state.table, was=state.key_columns,
                         now=list(key), rows_copied=state.rows_copied)
        return None

    def _commit(self, sink: PostgresSink, batch: Batch, state: CopyProgress) -> int:
        with sink.long_transaction() as tx:
            rejected = tx.finish(batch)
            save_progress(tx.cur, self.schema, self.name, state)
        return len(batch.dead_letters) + len(rejected)

    def _report(self, table: str, copied: int, total: int) -> None:
        if self.progress is not None:
            self.progress(self.name, table, copied, total)
        self.log.info("snapshot_progress", table=table, rows=copied, estimated_total=total)

    def _empty_slices(self, conn: Connection, found: dict[str, CopyProgress]) -> set[str]:
        """Mappings about to copy their table afresh into a slice that holds no row yet: every row
        of the slice afterwards comes from this copy's snapshot, so none can be extra."""
        empty = set()
        for table, mappings in self.tables.items():
            if _progress_key(table, self.partial) in found:
                continue  # resumed: rows may have been there before the first attempt
            for mapping in mappings:
                if not slice_has_rows(conn, mapping.table, mapping.spec.slice_values()):
                    empty.add(mapping.name)
        return empty

    def _remove_extra_direct(self, conn: Connection, sink: PostgresSink,
                             result: SnapshotResult, skip: set[str]) -> bool:
        """Delete target rows of each slice that no source row (through the mapping) produces;
        `skip`: mappings whose slice was empty before the copy."""
        ctx = ChangeContext(self.name, f"{SNAPSHOT_AT}{result.position}", datetime.now(UTC))

        def remove(diff: ChunkDiff, _source_of: dict[Key, SourceKey], mapping: Mapping) -> None:
            if not diff.extra:
                return
            origin = dead_letter(mapping, RowChange(mapping.spec.table, Op.DELETE, {}, None), ctx, "")
            ops = [PlannedOp(remove_op(mapping, key, ctx), origin) for key in diff.extra]
            sink.commit(Batch(ops=ops))
            result.removed += len(diff.extra)

        return self._extra_pass(conn, remove, streaming=False, skip=skip)

    def _extra_pass(self, conn: Connection,
                    handle: Callable[[ChunkDiff, dict[Key, SourceKey], Mapping], None],
                    streaming: bool, skip: Collection[str] = ()) -> bool:
        for mappings in self.tables.values():
            for mapping in mappings:
                if mapping.name in skip:
                    continue
                options = Options(chunk_rows=max(self.chunk_rows, 10_000), stop=self.stop, keys_only=True,
                                  record=False, streaming=streaming,
                                  on_drift=lambda diff, known, m=mapping: handle(diff, known, m))
                report = scan_mapping(self.config, self.plans, self.plan, mapping, conn=conn, options=options)
                if report.error is not None:
                    if self.stop.is_set():
                        return False
                    raise SnapshotError(f"mapping {mapping.name!r}: looking for rows to remove: "
                                        f"{report.error}")
        return True

    def _finish_direct(self, sink: PostgresSink, position: str, result: SnapshotResult,
                       began: datetime | None) -> None:
        """The checkpoint (a whole source copied), progress cleared, pauses moved; the older
        dead letters of the copied mappings retired (not after a resumed copy: the letters of its
        first run are as old as those it superseded)."""
        batch = Batch()
        whole = self.partial is None and set(self.tables) == set(self.plan.by_table())
        if whole:
            batch.checkpoint = _snapshot_checkpoint(self.plan.source, position)
        copied = [m.name for mappings in self.tables.values() for m in mappings]
        with sink.long_transaction() as tx:
            tx.finish(batch)
            clear_progress(tx.cur, self.schema, self.name, None if whole else self._keys())
            self._move_pauses(tx.cur, _parse_position(position))
            if began is not None:
                result.letters_retired = retire_superseded(tx.cur, self.schema, copied, began)
        result.checkpoint_written = whole

    # -- a daemon holds the source: repairs through its stream ------------------------------

    def _through_stream(self, conn: Connection) -> SnapshotResult:
        found = read_progress(conn, self.schema, self.name)
        if self._stale(found, STREAM):
            with conn.cursor() as cur:
                clear_progress(cur, self.schema, self.name, self._keys())
            found = {}
        result = SnapshotResult(self.name, STREAM, None,
                                resumed=any(k in found for k in self._keys()))
        # Every read of this copy is at or after `start`: paused mappings can resume from there.
        start = None
        if not result.resumed:
            start = self._pinned_point(conn, _snapshot_point(self.plan.source)).position
        self.log.info("snapshot_started", mode=STREAM, resumed=result.resumed, tables=sorted(self.tables))
        reader = SourceReader(self.plan.source)
        try:
            for table, mappings in self.tables.items():
                state = found.get(_progress_key(table, self.partial))
                if (state is None or not state.done) and \
                        not self._repair_table(conn, reader, table, mappings, state=state, result=result):
                    return result
        finally:
            reader.close()

        def request(diff: ChunkDiff, source_of: dict[Key, SourceKey], mapping: Mapping) -> None:
            keys = list(dict.fromkeys(source_of[k] for k in diff.extra if k in source_of))
            for start in range(0, len(keys), REPAIR_BATCH):
                done = repair(self.config, self.plans, mapping.name, keys[start:start + REPAIR_BATCH],
                              requested_by="snapshot")
                result.removed += done.applied + done.skipped

        if not self._extra_pass(conn, request, streaming=True):
            return result
        with conn.cursor() as cur:
            clear_progress(cur, self.schema, self.name, self._keys())
            if start is not None:
                self._move_pauses(cur, start)
        result.finished = True
        return result

    def _repair_table(self, conn: Connection, reader: SourceReader, table: str,
                      mappings: list[Mapping], *, state: CopyProgress | None,
                      result: SnapshotResult) -> bool:
        key = reader.row_key(table, mappings[0])  # fan-out mappings share one source_key (spec.py)
        state = self._continuable(state, key)
        estimate = max(reader.estimated_rows(table), state.rows_copied if state else 0)
        after = tuple(state.last_key) if state is not None and state.last_key is not None else None
        copied = state.rows_copied if state is not None else 0
        result.copied.setdefault(table, 0)
        while True:
            if self.stop.is_set():
                return False
            read = reader.chunk_rows(table, key, key, after, self.chunk_rows)
            rows = read.rows
            last = len(rows) < self.chunk_rows
            keys = [tuple(row[k] for k in key) for row in rows]
            for mapping in mappings if keys else ():  # one request per chunk: the daemon reads it at once
                done = repair(self.config, self.plans, mapping.name, keys, requested_by="snapshot")
                result.dead_letters += len(done.dead_lettered)
            if read.last is not None:
                after = read.last
            copied += len(rows)
            state = CopyProgress(_progress_key(table, self.partial), STREAM,
                                   list(after) if after is not None else None, copied, last, list(key))
            with conn.cursor() as cur:
                save_progress(cur, self.schema, self.name, state)
            result.copied[table] += len(rows)
            if rows:
                self._report(table, copied, max(estimate, copied))
            if last:
                return True


class _Halt(threading.Event):
    """Set by the copy itself (a table failed) or by its caller's `stop`."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    def is_set(self) -> bool:
        return super().is_set() or self._stop.is_set()


@dataclass(frozen=True)
class _Chunk:
    """One chunk of a table's copy as read and mapped, ready to be written."""

    after: tuple[Any, ...] | None
    """The chunk's keys follow this one (None: from the table's start)."""
    last: tuple[Any, ...] | None
    """The chunk's last key (`after` when it is empty): where the next chunk starts."""
    count: int
    """Source rows read."""
    lines: list[bytes] | None
    """COPY text of the rows the source server wrote it for; None: every row is in `batch`."""
    rows: list[Row]
    """The rows mapped in Python."""
    zeros: ZeroDates
    batch: Batch
    """`rows` through the mappings."""


def _read_chunk(reader: SourceReader, job: _TableCopy, after: tuple[Any, ...] | None, limit: int) -> _Chunk:
    """The next `limit` rows after key `after`: as COPY text where the source server writes it,
    the other rows mapped in Python."""
    if job.text is not None:
        fetched = reader.copy_lines(job.table, job.key, job.text.line, after, limit, reads=job.text.reads)
        last = fetched.key_at(len(fetched.rows) - 1, range(1, 1 + len(job.key))) if fetched.rows else after
        lines, python_keys = _text_lines(job, fetched)
        rows, zeros = reader.rows_by_keys_fetched(job.table, job.key, job.columns, python_keys)
        return _Chunk(after, last, len(fetched.rows), lines, rows, zeros,
                      _map_rows(job.table, job.key, rows, job.mappings, job.ctx))
    read = reader.chunk_rows(job.table, job.key, job.columns, after, limit)
    last = after if read.last is None else read.last
    return _Chunk(after, last, len(read.rows), None, read.rows, read.zeros,
                  _map_rows(job.table, job.key, read.rows, job.mappings, job.ctx))


def _text_lines(job: _TableCopy, fetched: Fetched) -> tuple[list[bytes], list[tuple[Any, ...]]]:
    """The COPY lines of a chunk, and the keys of the rows left to the mapping: those the SQL
    cannot vouch for, and those a deferred column cannot map (or reads a zero date of)."""
    assert job.text is not None
    text, width = job.text, len(job.key)
    lines: list[bytes] = []
    python_keys: list[tuple[Any, ...]] = []
    deferred = [c for c in job.mappings[0].columns if c.target in text.deferred] if text.deferred else []
    for index, row in enumerate(fetched.rows):
        line = row[0]
        if line is None or (deferred and index in fetched.zero_dates):
            python_keys.append(fetched.key_at(index, range(1, 1 + width)))
        elif line and deferred:
            fields = _deferred_fields(deferred, dict(zip(text.reads, row[1 + width:], strict=True)))
            if fields is None:
                python_keys.append(fetched.key_at(index, range(1, 1 + width)))
            else:
                lines.append(line + fields)
        elif line:
            lines.append(line)
    return lines, python_keys


def _deferred_fields(columns: list[ColumnPlan], row: Row) -> bytes | None:
    """`\tfield...\n` of the columns computed in Python; None when one cannot be mapped."""
    try:
        values = [c.compute(row) for c in columns]
    except TransformError:
        return None
    return b"\t" + copy_fields(values) + b"\n"


def _map_rows(table: str, key: tuple[str, ...], rows: list[Row], mappings: list[Mapping],
              ctx: ChangeContext) -> Batch:
    batch = Batch()
    for row in rows:
        change = RowChange(table, Op.INSERT, None, row, key_columns=key, undecodable=undecodable_columns(row))
        for mapping in mappings:
            mapped = map_change(mapping, change, ctx)
            batch.dead_letters.extend(mapped.dead_letters)
            if mapped.ops:
                origin = partial(dead_letter, mapping, change, ctx, "")
                batch.ops.extend(PlannedOp(op, origin) for op in mapped.ops)
    return batch
