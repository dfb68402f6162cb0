"""Reconcile of unified rows: each identity space's unified table against its contributions.

The mapping passes run first: they compare source rows with target rows and repair through the
sink, whose identity session rewrites the repaired records' contributions and their persons'
unified rows in the same transaction. Then, for every identity space that a selected mapping's
`identity:` block belongs to and that has a unified table, the unified rows are compared with
what the merge policies make of the stored live contributions of all the space's mappings,
whatever their source (`syncd.sink.identity.expected_unified`):

- missing: a person with live contributions has no unified row;
- extra: a unified row of no person with a live contribution (merged away, all records deleted,
  or an id that was never a person);
- differ: both exist, with other values; the report names the columns.

Persons are walked in chunks (keyset over the ids that have live contributions, the unified
rows read over the same id range, the first and last ranges open, so no row escapes). Each chunk
is one REPEATABLE READ, READ ONLY snapshot: the sink writes contributions and unified rows in
one transaction, so a snapshot never shows a person half-changed and a difference needs no
re-check. `repair` rewrites the differing persons' rows (`recompute_unified`) in a transaction
holding the space's advisory lock, as the daemon's batches do, so a repair and the stream
take turns and neither writes over the other.

Each space's pass is reported and recorded like a mapping's, named `identity:<space>`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from syncd.config import Config
from syncd.errors import ReconcileError, SinkError, Stopped, SyncdError
from syncd.mapping.load import SourcePlan
from syncd.mapping.plan import Mapping
from syncd.model import IdentitySpace, UnifiedTable
from syncd.reconcile.compare import (
    Canon,
    ChunkDiff,
    Key,
    Values,
    canonicalize_rows,
    compare_chunk,
    expected_canon,
    stored_canon,
)
from syncd.reconcile.report import REPORT_KEYS, SAMPLE_KEYS, MappingReport
from syncd.sink.connection import Connection
from syncd.sink.persons import recompute_persons, refused_persons, unified_chunk
from syncd.sink.runs import finish_run, start_run
from syncd.sink.slices import column_types, session_zone

log = structlog.get_logger("syncd.reconcile")

PREFIX = "identity:"
"""Reports and recorded runs of a space are named `identity:<space>`."""
MODE = "unified"

@dataclass(frozen=True)
class SpaceScope:
    """An identity space to check, with the sources of every mapping contributing to it."""

    space: IdentitySpace
    unified: UnifiedTable
    sources: tuple[str, ...]


def spaces_in_scope(plans: dict[str, SourcePlan],
                    selected: list[tuple[SourcePlan, Mapping]]) -> list[SpaceScope]:
    """The spaces with a unified table that the selected mappings' `identity:` blocks belong to."""
    spaces: dict[str, IdentitySpace] = {}
    for _, mapping in selected:
        identity = mapping.identity
        if identity is not None and identity.space.unified is not None:
            spaces.setdefault(identity.space.name, identity.space)
    scopes = []
    for name, space in sorted(spaces.items()):
        assert space.unified is not None
        sources = sorted({plan.source.name for plan in plans.values() for m in plan.mappings
                          if m.identity is not None and m.identity.space.name == name})
        scopes.append(SpaceScope(space, space.unified, tuple(sources)))
    return scopes


def reconcile_identities(config: Config, plans: dict[str, SourcePlan],
                         selected: list[tuple[SourcePlan, Mapping]], *, conn: Connection,
                         repair: bool, chunk_rows: int,
                         stop: threading.Event | None = None) -> list[MappingReport]:
    """One report per space in scope, after the mapping passes; recorded in reconcile_runs."""
    reports = []
    for scope in spaces_in_scope(plans, selected):
        if stop is not None and stop.is_set():
            break
        reports.append(check_space(config, scope, conn=conn, repair=repair, chunk_rows=chunk_rows,
                                   stop=stop))
    return reports


def check_space(config: Config, scope: SpaceScope, *, conn: Connection, repair: bool,
                chunk_rows: int, stop: threading.Event | None = None) -> MappingReport:
    """One space's pass; errors end up in the report (status "error"), never raised."""
    schema = config.target.state_schema
    name = PREFIX + scope.space.name
    report = MappingReport(name, ",".join(scope.sources), str(scope.unified.table), (scope.unified.key,),
                           repair, mode=MODE)
    report.run_id = start_run(conn, schema, name, report.source, repair)
    began = time.monotonic()
    bound = log.bind(mapping=name, source=report.source)
    bound.info("reconcile_started", repair=repair, chunk_rows=chunk_rows)
    try:
        _SpacePass(conn, schema, scope, report, chunk_rows=chunk_rows, stop=stop).run()
    except Stopped:
        report.error = "stopped before the end of the table"
    except SyncdError as exc:
        report.error = str(exc) or type(exc).__name__
    report.seconds = time.monotonic() - began
    report.settle()
    finish_run(conn, schema, report.run_id, status=report.status, rows_compared=report.rows_compared,
               missing=report.missing, extra=report.extra, differ=report.differ, repaired=report.repaired,
               explained=report.explained_by_dead_letters,
               sample=[list(k) for k in report.repaired_keys_sample], error=report.error)
    bound.info("reconcile_finished", status=report.status, rows=report.rows_compared,
               missing=report.missing, extra=report.extra, differ=report.differ,
               repaired=report.repaired, seconds=round(report.seconds, 3), error=report.error)
    return report


@dataclass(frozen=True)
class Chunk:
    """One snapshot's persons: expected and actual unified rows, canonical, keyed by (person,)."""

    expected: dict[Key, Values]
    actual: dict[Key, Values]
    upper: int | None
    """The last person id of the range; None: the range is open (the last chunk)."""


class _SpacePass:
    def __init__(self, conn: Connection, schema: str, scope: SpaceScope, report: MappingReport, *,
                 chunk_rows: int, stop: threading.Event | None) -> None:
        self.conn = conn
        self.schema = schema
        self.space = scope.space
        self.unified = scope.unified
        self.report = report
        self.chunk_rows = chunk_rows
        self.stop = stop
        self.columns = tuple(column for column, _, _ in self.unified.policies)

    def run(self) -> None:
        self._prepare()
        refused = refused_persons(self.conn, self.schema, self.space.name)
        for chunk in self._chunks():
            report = self.report
            report.chunks += 1
            report.rows_compared += len(chunk.expected.keys() | chunk.actual.keys())
            diff = compare_chunk(chunk.expected, chunk.actual, self.columns)
            if not diff:
                continue
            report.chunks_differing += 1
            self._record(diff, refused)
            if report.repair:
                self._repair(sorted(key[0] for key in diff.all_keys()))

    def _prepare(self) -> None:
        table = self.unified.table
        types = column_types(self.conn, table)
        if not types:
            raise ReconcileError(f"identity {self.space.name!r}: unified table {table} does not exist")
        names = [self.unified.key, *self.columns]
        absent = [n for n in names if n not in types]
        if absent:
            raise ReconcileError(f"identity {self.space.name!r}: unified table {table} has no column "
                                 f"{', '.join(absent)}")
        zone = session_zone(self.conn)
        self.expect: list[Canon | None] = [expected_canon(types[n], zone) for n in names]
        self.stored: list[Canon | None] = [stored_canon(types[n]) for n in names]

    def _chunks(self) -> Iterator[Chunk]:
        after: int | None = None
        while True:
            if self.stop is not None and self.stop.is_set():
                raise Stopped("stopped")
            chunk = self._read(after)
            yield chunk
            if chunk.upper is None:
                return
            after = chunk.upper

    def _read(self, after: int | None) -> Chunk:
        """The persons after `after` with live contributions (chunk_rows of them), in one snapshot."""
        read = unified_chunk(self.conn, self.schema, self.space, self.columns, after=after,
                             limit=self.chunk_rows)
        rows = [(person, *(row[c] for c in self.columns)) for person, row in read.expected.items()]
        return Chunk(_keyed(canonicalize_rows(rows, self.expect)),
                     _keyed(canonicalize_rows(read.actual, self.stored)), read.upper)

    def _record(self, diff: ChunkDiff, refused: set[int]) -> None:
        report = self.report
        report.missing += len(diff.missing)
        report.extra += len(diff.extra)
        report.differ += len(diff.differ)
        report.missing_keys.extend(diff.missing[:max(0, REPORT_KEYS - len(report.missing_keys))])
        report.extra_keys.extend(diff.extra[:max(0, REPORT_KEYS - len(report.extra_keys))])
        report.differ_rows.extend(diff.differ[:max(0, REPORT_KEYS - len(report.differ_rows))])
        report.explained_by_dead_letters += sum(1 for key in diff.all_keys() if key[0] in refused)
        log.debug("reconcile_drift", mapping=report.mapping, missing=len(diff.missing),
                  extra=len(diff.extra), differ=len(diff.differ))

    def _repair(self, persons: list[int]) -> None:
        """Rewrite these persons' rows under the space's lock; one by one when the batch is refused."""
        try:
            self._recompute(persons)
        except SinkError as exc:
            if len(persons) == 1:
                self.report.repair_errors.append(f"person {persons[0]}: {exc}")
                return
            for person in persons:
                self._repair([person])
            return
        self.report.repaired += len(persons)
        room = SAMPLE_KEYS - len(self.report.repaired_keys_sample)
        self.report.repaired_keys_sample.extend((p,) for p in persons[:max(0, room)])

    def _recompute(self, persons: list[int]) -> None:
        written, removed = recompute_persons(self.conn, self.schema, self.space, persons)
        log.info("identity_unified_repaired", space=self.space.name, persons=len(persons), written=written,
                 removed=removed)


def _keyed(rows: list[tuple[Any, ...]]) -> dict[Key, Values]:
    return {row[:1]: row[1:] for row in rows}
