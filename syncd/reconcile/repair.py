"""Repairs: make target rows equal to the mapping of the *current* source rows, by source key.

The source key is the row key: the mapping's `source_key` when it names one, else the primary key.

Used by `syncd reconcile --repair`, `syncd dlq retry` and a live `syncd snapshot`. When a
daemon streams the source, the request is queued in `state_schema.repair_requests` and the
daemon's pipeline applies it *in stream order* (a consistent read of the keys, then the
DBLog rule: keys the binlog changes in the meantime are left to the stream), so a repair never
puts an older image over a newer one. When no daemon holds the source, this process takes the
source's lock and applies the repair itself through the same sink.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import structlog

from syncd.config import Config
from syncd.errors import RepairError, TransformError
from syncd.mapping.load import SourcePlan
from syncd.mapping.plan import (
    ZERO_DATE_READ_AS_NULL,
    ChangeContext,
    Mapping,
    dead_letter,
    in_scope,
    map_change,
    map_key,
    remove_op,
    row_key_text,
    zero_date_fields,
)
from syncd.model import (
    REPAIR_AT,
    KeyOutcome,
    MappedChange,
    Op,
    Outcome,
    Position,
    Row,
    RowChange,
    undecodable_columns,
)
from syncd.sink.batch import Batch, PlannedOp, RepairDone
from syncd.sink.connection import connect
from syncd.sink.lock import SourceLock
from syncd.sink.postgres import PostgresSink
from syncd.sink.state import read_repair, request_repair
from syncd.source.base import KeyReader
from syncd.source.snapshot import SourceSnapshot

log = structlog.get_logger("syncd.reconcile.repair")


@dataclass(frozen=True)
class RepairResult:
    """What a repair did, key by key (see `syncd.model.Outcome`)."""

    request_id: int | None
    outcomes: tuple[KeyOutcome, ...]
    via: str
    """"stream" (the running daemon applied it) or "direct" (no daemon held the source)."""

    def count(self, *outcomes: Outcome) -> int:
        return sum(o.outcome in outcomes for o in self.outcomes)

    @property
    def applied(self) -> int:
        """Keys whose target row was written, or removed because the source row is gone."""
        return self.count(Outcome.APPLIED, Outcome.SOURCE_GONE)

    @property
    def skipped(self) -> int:
        """Keys the stream changed meanwhile: its newer change is applied by the stream itself."""
        return self.count(Outcome.NEWER_IN_STREAM)

    @property
    def dead_lettered(self) -> list[KeyOutcome]:
        """Keys whose current source row still cannot be applied: pending dead letters."""
        return [o for o in self.outcomes if o.outcome is Outcome.DEAD_LETTERED]

    def outcome_for(self, key: tuple[Any, ...]) -> KeyOutcome | None:
        """The outcome of a requested key (keys from JSON and from a SELECT match by their text)."""
        return self._by_key.get(normal_key(key))

    @cached_property
    def _by_key(self) -> dict[tuple[str, ...], KeyOutcome]:
        return {normal_key(o.key): o for o in self.outcomes}


def find_mapping(plans: dict[str, SourcePlan], name: str) -> tuple[SourcePlan, Mapping]:
    for plan in plans.values():
        for mapping in plan.mappings:
            if mapping.name == name:
                return plan, mapping
    raise RepairError(f"no mapping named {name!r}")


REQUEST_POLL_S = 0.05
"""How often a request handed to the running daemon is looked at until it is done."""


def repair(config: Config, plans: dict[str, SourcePlan], mapping_name: str,
           keys: list[tuple[Any, ...]], *, requested_by: str, timeout: float = 300.0) -> RepairResult:
    """Repair these source keys of one mapping; waits until done (stream) or does it (direct)."""
    plan, mapping = find_mapping(plans, mapping_name)
    lock = SourceLock(config.target, plan.source.name)
    if lock.try_acquire():
        try:
            lock.record_health("repair", None)  # for `syncd status` while it runs
            sink = PostgresSink(config.target, f"syncd:repair:{plan.source.name}")
            try:
                outcomes = apply_repair_direct(plan, mapping, keys, sink)
            finally:
                sink.close()
        finally:
            lock.release()
        return RepairResult(None, outcomes, "direct")
    return _through_stream(config, plan, mapping, keys, requested_by=requested_by, timeout=timeout)


def _through_stream(config: Config, plan: SourcePlan, mapping: Mapping, keys: list[tuple[Any, ...]],
                    *, requested_by: str, timeout: float) -> RepairResult:
    conn = connect(config.target, "syncd:repair")
    schema = config.target.state_schema
    try:
        request_id = request_repair(conn, schema, plan.source.name, mapping.name,
                                    keys=[list(k) for k in keys], requested_by=requested_by)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = read_repair(conn, schema, request_id)
            if request is not None and request.status != "pending":
                if request.status == "failed":
                    raise RepairError(f"repair {request_id} failed: {request.error}")
                return RepairResult(request_id, tuple(request.key_outcomes()), "stream")
            time.sleep(REQUEST_POLL_S)
    finally:
        conn.close()
    raise RepairError(f"repair {request_id} not applied by the running daemon within {timeout:.0f}s; "
                      "it stays queued and will be applied when the daemon gets to it")


def key_text(value: Any) -> str:
    """Keys from JSON and keys from a SELECT compare by their text (1 == '1' == Decimal(1))."""
    return "" if value is None else str(value)


def normal_key(key: tuple[Any, ...] | list[Any]) -> tuple[str, ...]:
    return tuple(key_text(v) for v in key)


@dataclass
class RepairRead:
    """Source rows of the requested keys as of one binlog position (absent keys map to None)."""

    mapping: Mapping
    key_columns: tuple[str, ...]
    position: Position
    rows: dict[tuple[str, ...], tuple[tuple[Any, ...], Row | None]]
    """normalised key -> (key as requested, source row or None)."""
    newer: list[tuple[Any, ...]] = field(default_factory=list)
    """Keys (as requested) the binlog changed after the read: left to the stream."""
    zero_dates: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    """normalised key -> the columns whose zero date the read row read as NULL."""

    def drop_changed(self, change: RowChange) -> None:
        """DBLog's rule: a key the binlog changes after the read is the stream's to apply."""
        for image in (change.before, change.after):
            if image is None:
                continue
            key = normal_key(tuple(image.get(k) for k in self.key_columns))
            found = self.rows.pop(key, None)
            if found is not None:
                self.newer.append(found[0])


def read_keys(snapshot: KeyReader, mapping: Mapping,
              keys: list[tuple[Any, ...]] | list[list[Any]]) -> RepairRead:
    """Read the current source rows for these keys in one consistent snapshot (already open).

    Raises NoPrimaryKey / UnusableSourceKey when the table has no usable row key."""
    key_columns = snapshot.row_key(mapping.spec.table, mapping.spec.source_key, mapping.name)
    wanted = [tuple(k) for k in keys]
    found = snapshot.rows_by_key(mapping.spec.table, key_columns, wanted)
    by_text = {normal_key(k): row for k, row in found.items()}
    rows = {normal_key(k): (k, by_text.get(normal_key(k))) for k in wanted}
    zeros = {normal_key(k): columns for k, columns in snapshot.zero_dates.items()}
    return RepairRead(mapping, key_columns, snapshot.read_point(), rows, zero_dates=zeros)


def repair_batch(read: RepairRead, source: str, commit_time: datetime,
                 request_id: int | None = None) -> Batch:
    """The target operations that make each read key's target row match its source row, and the
    repair's planned outcome per key (settled by the sink when it commits the batch)."""
    batch = Batch()
    ctx = ChangeContext(source, f"{REPAIR_AT}{read.position}", commit_time)
    planned = [KeyOutcome(key, row_key_text(read.key_columns, key), Outcome.NEWER_IN_STREAM)
               for key in read.newer]
    for normal, (original, row) in read.rows.items():
        mapped, change = _mapped(read, original, row, ctx)
        change.zero_dates = read.zero_dates.get(normal, ())
        if change.zero_dates and (zeros := zero_date_fields(change, [read.mapping], ctx.position)):
            log.warning(ZERO_DATE_READ_AS_NULL, source=source, **zeros)
        origin = dead_letter(read.mapping, change, ctx, "")
        if mapped.dead_letters:
            batch.dead_letters.extend(mapped.dead_letters)
            reason = "; ".join(d.reason for d in mapped.dead_letters)
            planned.append(KeyOutcome(original, origin.row_key, Outcome.DEAD_LETTERED, reason))
            continue
        batch.ops.extend(PlannedOp(op, origin) for op in mapped.ops)
        gone = row is None or not in_scope(read.mapping, row)
        planned.append(KeyOutcome(original, origin.row_key, Outcome.SOURCE_GONE if gone else Outcome.APPLIED))
    batch.repairs.append(RepairDone(request_id, read.mapping.name, tuple(planned)))
    return batch


def _mapped(read: RepairRead, original: tuple[Any, ...], row: Row | None,
            ctx: ChangeContext) -> tuple[MappedChange, RowChange]:
    """A present, in-scope row is upserted; a missing or filtered-out one is removed by key."""
    mapping, columns = read.mapping, read.key_columns
    if row is not None and in_scope(mapping, row):
        change = RowChange(mapping.spec.table, Op.INSERT, None, row, key_columns=columns,
                           undecodable=undecodable_columns(row))
        return map_change(mapping, change, ctx), change
    image = row if row is not None else dict(zip(columns, original, strict=True))
    change = RowChange(mapping.spec.table, Op.DELETE, image, None, key_columns=columns)
    try:
        return MappedChange([remove_op(mapping, map_key(mapping, image), ctx)], []), change
    except TransformError as exc:
        return MappedChange([], [dead_letter(mapping, change, ctx, str(exc))]), change


def apply_repair_direct(plan: SourcePlan, mapping: Mapping, keys: list[tuple[Any, ...]],
                        sink: PostgresSink) -> tuple[KeyOutcome, ...]:
    """No daemon holds the source: read the keys now and write the result through the sink."""
    snapshot = SourceSnapshot(plan.source)
    snapshot.open()
    try:
        read = read_keys(snapshot, mapping, keys)
    finally:
        snapshot.close()
    batch = repair_batch(read, plan.source.name, datetime.now(UTC))
    sink.commit(batch)
    return batch.repairs[0].outcomes
