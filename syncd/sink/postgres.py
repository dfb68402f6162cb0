"""Applies row operations and the source checkpoint to PostgreSQL in one transaction.

A batch is reduced by target key (the last operation on a key wins), then written with one
`executemany` per table and statement shape. If PostgreSQL rejects a row (a constraint, a value
it cannot store), the batch is rolled back and replayed one operation at a time inside
savepoints: the rejected operations become dead letters naming PostgreSQL's reason, the rest is
applied, and the checkpoint still moves in the same transaction.

Operations of mappings with an `identity:` block or `lookup:` columns are resolved to person ids
first, in the same transaction (`syncd.sink.identity`), and the unified rows of the persons
they touch are rebuilt after the rows are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper, PyFormat, Transformer

from syncd.config import TargetConfig
from syncd.errors import RowsRejected, SinkUnavailable
from syncd.model import (
    REPAIR_AT,
    Checkpoint,
    DeadLetter,
    Delete,
    DeleteSlice,
    Pause,
    RepairRequest,
    RowOp,
    TableSchema,
    TargetTable,
    Upsert,
)
from syncd.sink.batch import Batch, PlannedOp, reduce_ops, repair_rows
from syncd.sink.connection import ADAPTERS, connect, first_line
from syncd.sink.dead_letters import retire_rows
from syncd.sink.identity import IdentitySession, spaces_of
from syncd.sink.schema_history import read_schema_history, write_schemas
from syncd.sink.state import (
    clear_pause,
    finish_repair,
    insert_dead_letters,
    next_repair,
    read_checkpoint,
    read_pauses,
    write_checkpoint,
    write_pause,
)
from syncd.sink.statements import Statements, apply_staged, names, shape_of, stage_table, table_name

try:  # the C part (syncd/sink/_pgtext.c); without it, psycopg formats datetimes itself
    from syncd.sink._pgtext import timestamp_text
except ImportError:
    timestamp_text = None

# Errors that mean "this row cannot be stored", as opposed to "the server is unreachable".
_ROW_REJECTED = (psycopg.errors.DataError, psycopg.errors.IntegrityError,
                 psycopg.errors.InvalidTextRepresentation, psycopg.errors.ProgrammingError)
_NOT_THE_ROW = (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedColumn,
                psycopg.errors.UndefinedTable, psycopg.errors.ReadOnlySqlTransaction)
"""Refusals of every row alike, caught before `_ROW_REJECTED` (some are ProgrammingErrors): a
revoked grant, a renamed column or table, a read-only server (a standby after a failover). Not
dead letters: the batch is retried (SinkUnavailable) until the target is fixed."""


STAGE_MIN_ROWS = 64
"""Groups of at least this many operations go through a staging table; smaller ones are
written with `executemany` (the staging round trips would cost more than they save)."""


class Staging:
    """Bulk groups: COPY into a temporary table, then one statement applies the whole group.

    COPY costs a fraction of `executemany` on both sides (measured here: 2 vs 8 us of client CPU
    per row, 2-3x the rows/s). Each shape (table, operation, columns) has its own temporary table,
    created with the target's column types, so values convert exactly as in a plain INSERT; the
    applying statement empties it (DELETE ... RETURNING), so a long transaction can reuse it.
    """

    def __init__(self) -> None:
        self._ready: dict[tuple, tuple[sql.Composed, sql.Composed]] = {}

    def forget(self) -> None:
        """Tables created by a transaction that rolled back are gone: create them again."""
        self._ready.clear()

    def write(self, cur: psycopg.Cursor, op: RowOp, rows: list[tuple[Any, ...]]) -> None:
        copy, apply = self._prepare(cur, shape_of(op))
        self._copy(cur, copy, rows)
        cur.execute(apply)

    def refusing_column(self, cur: psycopg.Cursor, op: RowOp, row: tuple[Any, ...]) -> str | None:
        """The column whose value PostgreSQL refused in `row` (an operation's parameters), when its
        error did not say (a value out of range for the column's type, too long for it): the row
        is COPYed into the operation's staging table (the target's column types, no constraints)
        inside a savepoint rolled back either way; COPY's error context names the column."""
        shape = shape_of(op)
        known = shape in self._ready
        try:
            with cur.connection.transaction(force_rollback=True):
                self._copy(cur, self._prepare(cur, shape)[0], [row])
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            return copy_column(exc)
        finally:
            if not known:  # created inside the savepoint: gone with it
                self._ready.pop(shape, None)
        return None

    @staticmethod
    def _copy(cur: psycopg.Cursor, copy: sql.Composed, rows: list[tuple[Any, ...]]) -> None:
        with _copy_cursor(cur) as copying, copying.copy(copy) as copier:
            for row in rows:
                copier.write_row(row)

    def write_text(self, cur: psycopg.Cursor, table: TargetTable, key: tuple[str, ...],
                   columns: tuple[str, ...], lines: bytes, *, insert: bool = False) -> None:
        """Upsert rows given as COPY text lines (syncd.reconcile.copytext), `columns` in order;
        `insert`: COPY them straight into the table, which fails on a row whose key is there."""
        if insert:
            copy = sql.SQL("COPY {} ({}) FROM STDIN").format(table_name(table), names(columns))
            with cur.copy(copy) as copier:
                copier.write(lines)
            return
        copy, apply = self._prepare(cur, (table, "upsert", columns, key))
        with cur.copy(copy) as copier:
            copier.write(lines)
        cur.execute(apply)

    def _prepare(self, cur: psycopg.Cursor, shape: tuple) -> tuple[sql.Composed, sql.Composed]:
        ready = self._ready.get(shape)
        if ready is None:
            table, kind, columns, key = shape
            stage = stage_table(hashlib.sha1(repr(shape).encode()).hexdigest()[:20])
            listed = names(columns)
            cur.execute(sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS "
                                "SELECT {} FROM {} WITH NO DATA").format(stage, listed, table_name(table)))
            copy = sql.SQL("COPY {} ({}) FROM STDIN").format(stage, listed)
            ready = self._ready[shape] = (copy, apply_staged(stage, table, kind, columns, key))
        return ready


class TimestampText(Dumper):
    """A datetime in COPY text, as psycopg writes it (`str(value)`), formatted in C.

    psycopg's own dumper picks a naive or an aware variant for each value first: 1.8 µs per
    value here, two thirds of formatting a row with two timestamps. Only for COPY, where the
    server reads the text as the column's type: as a parameter the type sent (timestamp or
    timestamptz) matters, and psycopg's dumpers stay."""

    def dump(self, obj: datetime) -> bytes:
        return timestamp_text(obj)


_COPY_ESCAPES = {b"\\": b"\\\\", b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}
_COPY_SPECIAL = re.compile(rb"[\\\t\n\r]")
_dumpers = threading.local()


def copy_fields(values: Sequence[Any]) -> bytes:
    """Values as tab-separated COPY text fields, each as psycopg writes it in a COPY (the rest of
    a line the source server wrote: syncd/reconcile/copytext.py). Each thread keeps one psycopg
    Transformer, which remembers the dumper of each type (a new one looks them up for every row)."""
    dumped = _transformer().dump_sequence(values, [PyFormat.TEXT] * len(values))
    fields = [b"\\N" if field is None else bytes(field) for field in dumped]
    if _COPY_SPECIAL.search(b"".join(field for field in dumped if field is not None)):
        fields = [field if dumped[index] is None else _COPY_SPECIAL.sub(_escape, field)
                  for index, field in enumerate(fields)]
    return b"\t".join(fields)


def _escape(special: re.Match[bytes]) -> bytes:
    return _COPY_ESCAPES[special.group()]


def _transformer() -> Transformer:
    transformer = getattr(_dumpers, "transformer", None)
    if transformer is None:
        transformer = _dumpers.transformer = Transformer(ADAPTERS)
    return transformer


def _copy_cursor(cur: psycopg.Cursor) -> psycopg.Cursor:
    copying = cur.connection.cursor()
    if timestamp_text is not None:
        copying.adapters.register_dumper(datetime, TimestampText)
    return copying


class PostgresSink:
    """Writes batches for one source over its own connection."""

    def __init__(self, target: TargetConfig, application_name: str) -> None:
        self.target = target
        self.application_name = application_name
        self.statements = Statements()
        self.staging = Staging()
        self._conn: psycopg.Connection | None = None

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.target, self.application_name)
        return self._conn

    def read_checkpoint(self, source: str) -> Checkpoint | None:
        return read_checkpoint(self.conn, self.target.state_schema, source)

    def read_pauses(self, source: str) -> list[Pause]:
        return read_pauses(self.conn, self.target.state_schema, source)

    def next_repair(self, source: str) -> RepairRequest | None:
        return next_repair(self.conn, self.target.state_schema, source)

    def read_schema_history(self, source: str) -> list[TableSchema]:
        return read_schema_history(self.conn, self.target.state_schema, source)

    def close(self) -> None:
        self.staging.forget()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def commit(self, batch: Batch) -> list[DeadLetter]:
        """Apply the batch and move the checkpoint atomically; returns rows PostgreSQL rejected."""
        ops = reduce_ops(batch.ops)
        try:
            try:
                self._write(ops, batch, rejected=[])
                return []
            except _NOT_THE_ROW:
                raise
            except _ROW_REJECTED:
                rejected: list[DeadLetter] = []
                self._write(ops, batch, rejected=rejected, one_by_one=True)
                return rejected
        except _NOT_THE_ROW as exc:
            raise _not_ready(exc) from exc
        except psycopg.OperationalError as exc:
            self.close()
            raise SinkUnavailable(f"target write failed: {first_line(exc)}") from exc

    @contextmanager
    def long_transaction(self) -> Iterator[LongTransaction]:
        """One target transaction fed part by part (a large source transaction)."""
        try:
            conn = self.conn
            with conn.transaction(), conn.cursor() as cur:
                yield LongTransaction(self, conn, cur)
        except BaseException as exc:
            self.staging.forget()
            if isinstance(exc, _NOT_THE_ROW):
                raise _not_ready(exc) from exc
            if not isinstance(exc, psycopg.OperationalError):
                raise
            self.close()
            raise SinkUnavailable(f"target write failed: {first_line(exc)}") from exc

    def _write(self, ops: list[PlannedOp], batch: Batch, rejected: list[DeadLetter],
               one_by_one: bool = False) -> None:
        conn = self.conn
        try:
            with conn.transaction(), conn.cursor() as cur:
                if one_by_one:
                    rejected.extend(self._apply_each(conn, cur, ops))
                else:
                    self._apply_grouped(cur, ops)
                self._finish(cur, batch, rejected)
        except BaseException:
            self.staging.forget()
            raise

    def _finish(self, cur: psycopg.Cursor, batch: Batch, rejected: list[DeadLetter]) -> None:
        """Dead letters, pauses, repairs, schema history entries and the checkpoint: the tail of
        every target transaction."""
        schema = self.target.state_schema
        insert_dead_letters(cur, schema, batch.dead_letters + rejected)
        for pause in batch.pauses:
            write_pause(cur, schema, pause)
        for mapping in batch.resumed:
            clear_pause(cur, schema, mapping)
        write_schemas(cur, schema, batch.schemas)
        if batch.repairs:
            self._settle_repairs(batch, rejected)
        for done in batch.repairs:
            retire_rows(cur, schema, done.mapping, [o.row_key for o in done.outcomes if o.outcome.settled])
            if done.request_id is not None:
                finish_repair(cur, schema, done.request_id, done.outcomes, error=done.error)
        if batch.checkpoint is not None:
            write_checkpoint(cur, schema, batch.checkpoint)

    @staticmethod
    def _settle_repairs(batch: Batch, rejected: list[DeadLetter]) -> None:
        kept = repair_rows(reduce_ops(batch.ops))
        refused = {(d.mapping, d.row_key): d.reason for d in rejected if d.position.startswith(REPAIR_AT)}
        for done in batch.repairs:
            done.settle(kept, refused)

    def _apply_grouped(self, cur: psycopg.Cursor, ops: list[PlannedOp]) -> None:
        identity = IdentitySession(cur, self.target.state_schema)
        identity.lock(spaces_of(ops))  # before any row is written: no lock waits while holding rows
        segment: list[PlannedOp] = []
        for planned in ops:
            if isinstance(planned.op, DeleteSlice):
                self._apply_segment(cur, identity.resolve(segment))
                segment = []
                identity.release_slice(planned)
                cur.execute(*self.statements.for_op(planned.op))
            else:
                segment.append(planned)
        self._apply_segment(cur, identity.resolve(segment))
        identity.finish()

    def _apply_segment(self, cur: psycopg.Cursor, ops: list[PlannedOp]) -> None:
        # Deletes first: a unique value freed by a delete may be taken by an upsert.
        deletes = [p for p in ops if type(p.op) is Delete]
        ordered = [*deletes, *(p for p in ops if type(p.op) is not Delete)] if deletes else ops
        # Statements are cached, so identity groups operations of the same shape.
        groups: dict[int, tuple[sql.Composed, RowOp, list[tuple[Any, ...]]]] = {}
        for planned in ordered:
            statement, params = self.statements.for_op(planned.op)
            groups.setdefault(id(statement), (statement, planned.op, []))[2].append(params)
        for statement, first, rows in groups.values():
            if len(rows) >= STAGE_MIN_ROWS:
                self.staging.write(cur, first, rows)
            else:
                cur.executemany(statement, rows)

    def _refusing_column(self, cur: psycopg.Cursor, op: RowOp, exc: psycopg.Error) -> str | None:
        """The column of a value of an upsert PostgreSQL refused as data (SQLSTATE class 22) without
        naming its column; None otherwise (a constraint, NOT NULL: the error names it)."""
        if exc.diag.column_name or not (exc.diag.sqlstate or "").startswith("22") or type(op) is not Upsert:
            return None
        return self.staging.refusing_column(cur, op, self.statements.for_op(op)[1])

    def _apply_each(self, conn: psycopg.Connection, cur: psycopg.Cursor,
                    ops: list[PlannedOp]) -> list[DeadLetter]:
        rejected = []
        identity = IdentitySession(cur, self.target.state_schema)
        identity.lock(spaces_of(ops))
        for planned in ops:
            op = planned.op
            try:
                with conn.transaction():
                    if isinstance(op, DeleteSlice):
                        identity.release_slice(planned)
                    else:
                        op = identity.resolve([planned])[0].op
                    cur.execute(*self.statements.for_op(op))
            except _NOT_THE_ROW:
                raise
            except _ROW_REJECTED as exc:
                column = self._refusing_column(cur, op, exc)
                rejected.append(dataclasses.replace(planned.origin, reason=rejection_reason(exc, column)))
        for space, person, origin in identity.pending():
            try:
                with conn.transaction():
                    identity.recompute(space, [person])
            except _NOT_THE_ROW:
                raise
            except _ROW_REJECTED as exc:
                if origin is not None:
                    rejected.append(dataclasses.replace(origin, refused_person=(space, person), reason=(
                        f"unified row of person {person} (identity {space}): {rejection_reason(exc)}")))
        return rejected


def _not_ready(exc: psycopg.Error) -> SinkUnavailable:
    return SinkUnavailable(f"target write failed: {first_line(exc)} (every row is refused alike: "
                           "retried until the target is fixed, nothing is dead-lettered)")


def rejection_reason(exc: psycopg.Error, column: str | None = None) -> str:
    """PostgreSQL's reason a row was refused, naming the constraint and the column when known:
    the error's own column, else `column` (found by `Staging.refusing_column`), else the column
    a COPY's error context names."""
    diag = exc.diag
    parts = [f"PostgreSQL rejected the row: {diag.message_primary or first_line(exc)}"]
    if diag.constraint_name:
        parts.append(f"constraint {diag.constraint_name}")
    column = diag.column_name or column or copy_column(exc)
    if column:
        parts.append(f"column {column}")
    if diag.message_detail:
        parts.append(diag.message_detail)
    return "; ".join(parts)


_COPY_CONTEXT = re.compile(r"^COPY .*, line [0-9]+, column (.+?)(?:: .*)?$")


def copy_column(exc: psycopg.Error) -> str | None:
    """The column a COPY's error context names (`COPY t, line 1, column u8: "40000"`), if any."""
    found = _COPY_CONTEXT.match((exc.diag.context or "").split("\n")[0])
    return found.group(1) if found else None


class LongTransaction:
    """Parts of one source transaction applied into one open target transaction."""

    def __init__(self, sink: PostgresSink, conn: psycopg.Connection, cur: psycopg.Cursor) -> None:
        self.sink, self.conn, self.cur = sink, conn, cur
        self.rejected: list[DeadLetter] = []

    def apply(self, ops: list[PlannedOp], dead_letters: list[DeadLetter]) -> None:
        """Apply a part inside a savepoint; rows PostgreSQL rejects become dead letters."""
        reduced = reduce_ops(ops)
        try:
            with self.conn.transaction():
                self.sink._apply_grouped(self.cur, reduced)
        except _NOT_THE_ROW:
            raise
        except _ROW_REJECTED:
            self.sink.staging.forget()
            self.rejected += self.sink._apply_each(self.conn, self.cur, reduced)
        insert_dead_letters(self.cur, self.sink.target.state_schema, dead_letters)

    def write_text(self, table: TargetTable, key: tuple[str, ...], columns: tuple[str, ...],
                   lines: bytes, *, insert: bool = False) -> None:
        """Upsert rows given as COPY text lines (syncd/reconcile/copytext.py); RowsRejected when
        PostgreSQL refuses any of them (the transaction must then be given up). `insert`: insert
        them, for a table that held none of their keys (a key already there is a refusal)."""
        try:
            self.sink.staging.write_text(self.cur, table, key, columns, lines, insert=insert)
        except _NOT_THE_ROW:
            raise
        except _ROW_REJECTED as exc:
            raise RowsRejected(rejection_reason(exc)) from exc

    def finish(self, batch: Batch) -> list[DeadLetter]:
        """The last part, then the checkpoint; the commit happens when the block ends."""
        self.apply(batch.ops, [])
        self.sink._finish(self.cur, batch, self.rejected)
        return self.rejected
