"""Reconcile: compare what each mapping says the target should hold with what it holds.

Per mapping, the source table is read in primary-key chunks (keyset pagination, one
consistent read per chunk), every row goes through the *current* mapping (`map_row`, the
`where` filter), and the result is compared with the mapping's slice of the target table over
the same key range: first the whole chunk at once, then row by row only where it differs.
Differences are re-checked against a fresh read of both sides (after the running daemon has
applied everything up to that read) before they are reported or repaired, so rows changing
while the pass runs are not taken for drift. Repairs go through `syncd.reconcile.repair.repair`, which
re-reads each key from the source and applies it in stream order when a daemon holds the
source. docs/reconcile.md describes the algorithm, the report and the limits.

The module is long because the pass's three ways of comparing a range (digests inside both
servers, remembered checksums, row by row) feed one comparison, one re-check and one report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from syncd.config import DEFAULT_CHUNK_ROWS, Config
from syncd.errors import ReconcileError, Stopped, SyncdError
from syncd.identity.core import LinkStore
from syncd.identity.preview import Wanted
from syncd.mapping.load import SourcePlan
from syncd.mapping.plan import Mapping, row_key_text
from syncd.model import ColumnType, Position
from syncd.reconcile.ahead import Sides, read_ahead, rows_per_read
from syncd.reconcile.compare import (
    ChunkDiff,
    Key,
    Values,
    canonicalize_rows,
    compare_chunk,
    expected_canon,
    stored_canon,
)
from syncd.reconcile.deferred import DeferredColumns, SourceRange, found_rows, needed_sources, odd_buckets
from syncd.reconcile.expected import Expected, chunk_mapper, map_chunk
from syncd.reconcile.layout import build_layout
from syncd.reconcile.persons import PersonColumns
from syncd.reconcile.pushdown import BUCKETS, SPAN_CHUNKS, Pushdown, differing_spans, plan_pushdown
from syncd.reconcile.repair import RepairResult, normal_key, repair
from syncd.reconcile.report import REPORT_KEYS, SAMPLE_KEYS, MappingReport, SourceKey
from syncd.reconcile.unified import reconcile_identities
from syncd.reconcile.verified import Entry, VerifiedChunks, fingerprint
from syncd.sink.connection import Connection, connect
from syncd.sink.dead_letters import letters_clock, pending_row_keys, retire_in_sync
from syncd.sink.lock import daemon_streams
from syncd.sink.persons import load_stores
from syncd.sink.runs import finish_run, start_run
from syncd.sink.slices import TargetReader, column_types, server_encoding, server_version, session_zone
from syncd.sink.state import create_state_schema, read_checkpoint
from syncd.sink.verified import ensure_table, target_supports
from syncd.source.chunks import Digested, RangeChunk, SourceReader

log = structlog.get_logger("syncd.reconcile")

REPAIR_BATCH = 1_000
SIDES = 2
"""Source connections taking a pushed-down pass's source digests at once."""
RANGES_PER_READ = 200
"""Differing buckets of a pushed-down range read and compared in one go."""
KEYS_PER_READ = 1000
"""Rows set aside by the digests read and compared in one go."""
CONFIRM_ATTEMPTS = 3
CONFIRM_WAIT_S = 10.0
"""How long a re-check waits for the running daemon to apply the source up to its read."""
LETTERS_FRESH_S = 1.0
"""Pending dead letters are read again at most this often, for a row none of them explains yet."""

def select_mappings(plans: dict[str, SourcePlan], source: str | None = None,
                    mapping: str | None = None,
                    sources: Collection[str] | None = None) -> list[tuple[SourcePlan, Mapping]]:
    """The (plan, mapping) pairs a run covers (`sources`: only these sources' mappings);
    ReconcileError names what does not exist."""
    if source is not None and source not in plans:
        raise ReconcileError(f"no source named {source!r}; configured: {sorted(plans)}")
    chosen = [(plan, m) for name, plan in plans.items()
              if source in (None, name) and (sources is None or name in sources)
              for m in plan.mappings if mapping in (None, m.name)]
    if mapping is not None and not chosen:
        names = sorted(m.name for p in plans.values() for m in p.mappings)
        where = f" of source {source!r}" if source else ""
        raise ReconcileError(f"no mapping named {mapping!r}{where}; mappings: {names}")
    return chosen


def reconcile(config: Config, plans: dict[str, SourcePlan], *, source: str | None = None,
              mapping: str | None = None, repair: bool = False,
              chunk_rows: int = DEFAULT_CHUNK_ROWS, pause_s: float = 0.0,
              stop: threading.Event | None = None,
              confirm_wait_s: float = CONFIRM_WAIT_S, full: bool = False,
              sources: Collection[str] | None = None,
              progress: ProgressFn | None = None) -> list[MappingReport]:
    """Reconcile the chosen mappings one after another, then the unified rows of their identity
    spaces (unified.py); one report each, recorded in reconcile_runs. `sources` narrows the run
    to these sources' mappings (an identity space fed by several of them is checked once).

    Raises ReconcileError for unknown names and SinkUnavailable when the target cannot be
    reached; `full` compares every row even where remembered checksums say nothing changed
    (verified.py). A failure within one mapping (source down, no primary key...) ends that mapping's
    report with status "error" and the next mapping still runs.
    """
    if chunk_rows < 1:
        raise ReconcileError("chunk_rows must be at least 1")
    selected = select_mappings(plans, source, mapping, sources)
    conn = connect(config.target, "syncd:reconcile")
    try:
        create_state_schema(conn, config.target.state_schema)
        reports = []
        for plan, chosen in selected:
            if stop is not None and stop.is_set():
                break
            options = Options(repair=repair, chunk_rows=chunk_rows, pause_s=pause_s, stop=stop,
                              confirm_wait_s=confirm_wait_s, use_verified=not full, progress=progress)
            reports.append(scan_mapping(config, plans, plan, chosen, conn=conn, options=options))
        # Then the unified rows of the identity spaces in scope, from the (repaired) contributions.

        reports += reconcile_identities(config, plans, selected, conn=conn, repair=repair,
                                        chunk_rows=chunk_rows, stop=stop)
        return reports
    finally:
        conn.close()


DriftHandler = Callable[[ChunkDiff, dict[Key, SourceKey]], None]
Bounds = tuple[SourceKey | None, SourceKey | None]
AskBuckets = Callable[[Bounds, int], Future]
"""ask(range, width) -> the future bucket digests of the range on the source (pushdown.py)."""
Ahead = RangeChunk | tuple[Entry, str | SourceRange]
"""Source rows to compare, or a remembered range with its source checksum or, to compare by its
digests, its source side (engine._chunks)."""
ProgressFn = Callable[[str, int, int, int], None]
"""progress(mapping, rows compared so far, chunks so far, estimated rows of the source table)."""


@dataclass(frozen=True)
class Options:
    """How one mapping's pass runs."""

    repair: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    pause_s: float = 0.0
    stop: threading.Event | None = None
    confirm_wait_s: float = CONFIRM_WAIT_S
    keys_only: bool = False
    """Compare keys only (which rows exist), not values: used to find extra rows."""
    on_drift: DriftHandler | None = None
    """Called with each chunk's confirmed differences (instead of repairing them)."""
    record: bool = True
    """Record the run in reconcile_runs."""
    streaming: bool | None = None
    """Whether a daemon streams the source (None: look at its lock)."""
    use_verified: bool = True
    """Skip ranges unchanged since a pass found them in sync (verified.py); False: compare all."""
    progress: ProgressFn | None = None
    """Called after every chunk compared."""


def scan_mapping(config: Config, plans: dict[str, SourcePlan], plan: SourcePlan, mapping: Mapping, *,
                 conn: Connection, options: Options) -> MappingReport:
    """One mapping's pass; errors end up in the report (status "error"), never raised."""
    schema = config.target.state_schema
    report = MappingReport(mapping.name, plan.source.name, str(mapping.table), mapping.key, options.repair)
    if options.record:
        report.run_id = start_run(conn, schema, mapping.name, plan.source.name, options.repair)
    began = time.monotonic()
    bound = log.bind(mapping=mapping.name, source=plan.source.name)
    bound.info("reconcile_started", repair=options.repair, chunk_rows=options.chunk_rows,
               keys_only=options.keys_only)
    try:
        _Pass(config, plans, plan, mapping, conn=conn, report=report, options=options).run()
    except Stopped:
        report.error = "stopped before the end of the table"
    except SyncdError as exc:
        report.error = str(exc) or type(exc).__name__
    report.seconds = time.monotonic() - began
    report.settle()
    if report.run_id is not None:
        finish_run(conn, schema, report.run_id, status=report.status,
                   rows_compared=report.rows_compared, missing=report.missing, extra=report.extra,
                   differ=report.differ, repaired=report.repaired,
                   explained=report.explained_by_dead_letters,
                   sample=[list(k) for k in report.repaired_keys_sample], error=report.error)
    bound.info("reconcile_finished", status=report.status, rows=report.rows_compared,
               missing=report.missing, extra=report.extra, differ=report.differ,
               unmappable=report.unmappable, repaired=report.repaired,
               seconds=round(report.seconds, 3), rows_per_second=round(report.rows_per_second),
               error=report.error)
    return report


def wait_applied(conn: Connection, schema: str, source: str, position: Position,
                 timeout: float) -> bool:
    """Wait until the source's checkpoint reaches `position`; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        checkpoint = read_checkpoint(conn, schema, source)
        if checkpoint is not None and checkpoint.position >= position:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


class _Pass:
    """One mapping's pass over its source table."""

    def __init__(self, config: Config, plans: dict[str, SourcePlan], plan: SourcePlan, mapping: Mapping, *,
                 conn: Connection, report: MappingReport, options: Options) -> None:
        self.config = config
        self.plans = plans
        self.plan = plan
        self.mapping = mapping
        self.conn = conn
        self.report = report
        self.options = options
        self.schema = config.target.state_schema
        self.table = mapping.spec.table
        self.unmappable_keys: set[str] = set()
        """The row keys (`id=42`) of every source row the mapping could not map in this pass."""

    def run(self) -> None:
        retiring = self.options.repair and self.options.on_drift is None
        began = letters_clock(self.conn) if retiring else None
        reader = SourceReader(self.plan.source)
        try:
            self.reader = reader
            self._prepare()
            if self.layout.aligned:
                self._aligned()
            else:
                self._slice_scan()
        finally:
            reader.close()
        if began is not None:
            self._retire_letters(began)

    def _retire_letters(self, began: datetime) -> None:
        """After a whole `--repair` pass: the pending dead letters older than the pass of rows it
        found in sync (the stream applied a later change of theirs) are retired; not after a pass
        that left a difference it could not repair."""
        report = self.report
        if report.repair_errors or report.unrepaired or report.unrepairable:
            return
        report.letters_retired = retire_in_sync(self.conn, self.schema, self.plan.source.name,
                                                self.mapping.name, before=began, keep=self.unmappable_keys)

    def _prepare(self) -> None:
        source_types = self.reader.columns(self.table)
        if not source_types:
            raise ReconcileError(f"mapping {self.mapping.name!r}: table {self.plan.source.database}."
                                 f"{self.table} does not exist on source {self.plan.source.name}")
        key = self.reader.row_key(self.table, self.mapping)
        target_types = column_types(self.conn, self.mapping.table)
        if not target_types:
            raise ReconcileError(f"mapping {self.mapping.name!r}: target table {self.mapping.table} "
                                 "does not exist")
        self.layout = build_layout(self.mapping, key, source_types, target_types)
        if self.options.keys_only:  # the key's and the filter's columns read, no other
            self.layout = replace(self.layout, compared=(), persons=(),
                                  source_columns=needed_sources(self.layout, ()))
        zone = session_zone(self.conn)
        names = [*self.layout.target_key, *self.layout.compared]
        self.canons = [expected_canon(target_types[n], zone) if n in target_types else None
                       for n in names]
        self.stored = [stored_canon(target_types[n]) if n in target_types else None for n in names]
        self.target = TargetReader(self.conn, self.layout.slice_shape(),
                                   partial(canonicalize_rows, canons=self.stored), target_types)
        self.mapper = chunk_mapper(self.layout, self.options.keys_only)
        self.persons = (PersonColumns(self.mapping, self._read_persons)
                        if self.layout.persons or self.mapping.identity is not None else None)
        self.dead_letters = pending_row_keys(self.conn, self.schema, self.plan.source.name,
                                                     self.mapping.name)
        self._letters_read = time.monotonic()
        self.streaming = (self.options.streaming if self.options.streaming is not None
                          else daemon_streams(self.conn, self.schema, self.plan.source.name))
        self.report.mode = self.layout.mode
        self.read_rows = rows_per_read(self.options.chunk_rows, len(self.layout.source_columns))
        self.estimate = self.reader.estimated_rows(self.table) if self.options.progress is not None else 0
        self.pushdown = self._pushdown(target_types)
        self.verified = (None if self.pushdown is not None and not self.pushdown.deferred
                         else self._verified_chunks(source_types, target_types, zone))
        self.deferred = self._deferred(target_types)

    def _chunk_done(self, rows: int) -> None:
        """One more chunk compared (however: in sync by checksums, unchanged, or row by row)."""
        self.report.chunks += 1
        self.report.rows_compared += rows
        if self.options.progress is not None:
            self.options.progress(self.mapping.name, self.report.rows_compared, self.report.chunks,
                                  self.estimate)

    def _read_persons(self, wanted: Wanted) -> dict[str, LinkStore]:
        stored = load_stores(self.conn, self.schema, wanted)
        log.debug("reconcile_persons_read", mapping=self.mapping.name, spaces=sorted(wanted),
                  keys=sum(len(keys) for keys, _ in wanted.values()),
                  records=sum(len(records) for _, records in wanted.values()), note=stored.note)
        return stored.stores

    def _pushdown(self, target_types: dict[str, ColumnType]) -> Pushdown | None:
        if not self.options.use_verified or self.options.keys_only:  # --full: map every row
            return None
        encoding = server_encoding(self.conn)
        return plan_pushdown(self.layout, self.reader.source_columns(self.table), target_types,
                             self.plan.source.timezone, encoding)

    def _deferred(self, target_types: dict[str, ColumnType]) -> DeferredColumns | None:
        """The pushed-down mapping's columns without an SQL form, compared in Python (deferred.py)."""
        if self.pushdown is None or not self.pushdown.deferred:
            return None
        return DeferredColumns(self.layout, self.pushdown, self.table, target=self.target,
                               expected=self.canons, stored=self.stored, target_types=target_types,
                               checksums=self.verified is not None)

    def _verified_chunks(self, source_types: dict[str, str], target_types: dict[str, ColumnType],
                         zone: Any) -> VerifiedChunks | None:
        options = self.options
        if not (options.use_verified and options.record and not options.keys_only and self.layout.aligned
                and target_supports(self.conn) and self.reader.has_crc32c()):
            return None
        ensure_table(self.conn, self.schema)
        versions = [self.reader.version(), server_version(self.conn)]
        print_ = fingerprint(self.layout, source_timezone=self.plan.source.timezone, session_zone=zone,
                             target_types=target_types, source_types=source_types, versions=versions)
        return VerifiedChunks(self.conn, self.schema, self.mapping.name, print_)

    def _chunks(self, ranges: list[Entry]) -> Iterator[Ahead]:
        """What to compare, range after range, in key order, read ahead by a second thread.

        A RangeChunk is source rows to compare; `(entry, source checksum)` is a remembered
        verified range whose source checksum was just taken (verified.py). For a mapping with
        deferred columns, a remembered range not verified, or whose source checksum changed,
        comes with its source side instead (deferred.py), to compare by its bucket digests. The
        reader thread has its own connection, so the source's query time overlaps the
        comparison work.
        """
        return read_ahead(partial(self._read_ahead, ranges), name=f"reconcile-{self.mapping.name}", depth=1,
                          stop=self.options.stop)

    def _read_ahead(self, ranges: list[Entry]) -> Generator[Ahead, None, None]:
        reader = SourceReader(self.plan.source)
        try:
            for entry in ranges:
                checksum = (reader.checksum(self.table, self.layout.source_key, self.layout.source_columns,
                                            entry.lo, entry.hi) if entry.verified else None)
                if self.deferred is not None and (checksum is None or checksum != entry.source_sum):
                    yield entry, self.deferred.source_side((entry.lo, entry.hi), self._width(), reader)
                elif checksum is not None:
                    yield entry, checksum
                else:
                    for chunk in self._walk(reader, entry.lo, entry.hi):
                        yield chunk
                        self._pause()
        finally:
            reader.close()

    def _walk(self, reader: SourceReader, lower: SourceKey | None,
              upper: SourceKey | None) -> Iterator[RangeChunk]:
        """The source rows of (lower, upper] in chunks of chunk_rows."""
        after = lower
        while True:
            chunk = reader.chunk_range(self.table, self.layout.source_key, self.layout.source_columns,
                                       after=after, upto=upper, limit=self.read_rows,
                                       checksum=self.verified is not None)
            yield chunk
            if not chunk.full or chunk.upper == upper:
                return
            after = chunk.upper

    def _pause(self) -> None:
        if self.options.pause_s > 0:
            if self.options.stop is not None:
                self.options.stop.wait(self.options.pause_s)
            else:
                time.sleep(self.options.pause_s)

    def _aligned(self) -> None:
        remembered = self.verified.load() if self.verified is not None else None
        # With columns computed in Python, remembered checksums spare repeated passes more
        # than the digests do: only a pass that remembers no range in sync is pushed down.
        if self.pushdown is not None and not any(entry.verified for entry in remembered or ()):
            self._pushed_down(self.pushdown)
            return
        ranges = remembered or [Entry(None, None, verified=False)]
        walked: list[Entry] = []
        for item in self._chunks(ranges):
            if isinstance(item, RangeChunk):
                walked.append(self._compare_range(item))
                continue
            entry, source = item
            bounds = (entry.lo, entry.hi)
            if self.deferred is not None and isinstance(source, SourceRange):  # changed, or not in sync
                walked.append(self._with_deferred(self.deferred, source, bounds, self._width())[1])
                continue
            if source == entry.source_sum and self.target.checksum(*bounds) == entry.target_sum:
                self.report.chunks_unchanged += 1
                self._chunk_done(entry.rows)
                walked.append(entry)
                continue
            if self.deferred is not None:  # the target changed: by its digests
                source = self.deferred.source_side(bounds, self._width(), self.reader)
                walked.append(self._with_deferred(self.deferred, source, bounds, self._width())[1])
                continue
            for chunk in self._walk(self.reader, entry.lo, entry.hi):
                walked.append(self._compare_range(chunk))
        if self.verified is not None:
            self.verified.save(walked)

    def _pushed_down(self, pushdown: Pushdown) -> None:
        """Ranges whose in-server digests agree are in sync; the others are narrowed down to
        buckets of keys, and the buckets that differ compared row by row.

        The source's digests are taken by SIDES threads with connections of their own, that
        many ranges ahead, while PostgreSQL takes the target's: the source server (the slower
        one: it computes the mapped values) works on two cores and the faster one never waits.
        Once a range has differed, the next ranges are asked for their bucket digests at once
        (scattered drift is seldom in one range only), which costs the servers about what one
        digest does and spares a second pass over each range.

        A mapping with deferred columns (deferred.py) compares them in each range too, and
        remembers the ranges found in sync with their checksums (verified.py).
        """
        ranges = self._key_ranges()
        width = self._width()
        narrow = False
        walked: list[Entry] = []
        with Sides(partial(SourceReader, self.plan.source), SIDES, f"reconcile-{self.mapping.name}") as sides:

            def ask(index: int) -> tuple[int | None, Future]:
                wanted = width if narrow else None
                work = (partial(self._source_digest, pushdown, ranges[index], wanted) if self.deferred is None
                        else partial(self.deferred.source_side, ranges[index], wanted))
                return wanted, sides.submit(work)

            # Popped when used: a range's source side (its deferred rows) is not kept to the end.
            asked = {index: ask(index) for index in range(min(SIDES, len(ranges)))}
            for index, (lower, upper) in enumerate(ranges):
                if self.options.stop is not None and self.options.stop.is_set():
                    raise Stopped("stopped")
                wanted, source = asked.pop(index)
                if self.deferred is not None:
                    differed, entry = self._with_deferred(self.deferred, source.result(), (lower, upper),
                                                          wanted, partial(self._digests_ahead, sides))
                    walked.append(entry)
                elif wanted is None:
                    differed = self._by_digest(pushdown, sides, source, lower, upper)
                else:
                    differed = self._by_buckets(pushdown, source, lower, upper, wanted)
                narrow = narrow or differed
                if index + SIDES < len(ranges):
                    asked[index + SIDES] = ask(index + SIDES)
                self._pause()
        if self.verified is not None:
            self.verified.save(walked)

    def _with_deferred(self, deferred: DeferredColumns, source: SourceRange, bounds: Bounds,
                       width: int | None, buckets_of: AskBuckets | None = None) -> tuple[bool, Entry]:
        """One range by its digests (bucket digests: `width`) and its deferred columns: whether it
        differed, and the entry remembering it (verified when both sides agreed). The keys whose
        deferred columns differ name buckets compared row by row, beside those whose digests
        differ and the rows the digests set aside (`buckets_of` asks the source for a range's
        bucket digests, when `width` is None)."""
        lower, upper = bounds
        target = deferred.target_side(bounds, width, source.aside)
        odd = deferred.odd_keys(source, target)
        if source.found == target.found and not odd:
            rows = found_rows(source.found)
            self.report.chunks_pushed_down += 1
            self._chunk_done(rows)
            clean = self._compare_keys(source.aside)
            remembered = clean and source.checksum is not None and target.checksum is not None
            return False, Entry(lower, upper, remembered, rows + len(source.aside), source.checksum,
                                target.checksum)
        aside = list(source.aside)
        if width is None:
            assert buckets_of is not None
            width = max(1, max(found_rows(source.found), found_rows(target.found)) // BUCKETS)
            asked = buckets_of(bounds, width).result()
            aside += asked.aside
            buckets = asked.found, self.target.bucket_digests(deferred.pushdown.target_row, lower, upper,
                                                              width, asked.aside)
        else:
            buckets = source.found, target.found
        spans, in_sync, alone = differing_spans(*buckets, width, lower, upper, also=odd_buckets(odd, width),
                                                aside=aside)
        self._chunk_done(in_sync)
        log.debug("pushdown_range_differs", mapping=self.mapping.name, lower=lower, upper=upper,
                  buckets=len(spans), deferred_keys=len(odd), aside=len(alone))
        clean = self._compare_ranges(spans) & self._compare_keys(alone)
        # In sync after all (a false alarm, rows their dead letters explain): remembered as such,
        # with the checksums of the snapshots its digests were taken in.
        remembered = clean and source.checksum is not None and target.checksum is not None
        return True, Entry(lower, upper, remembered, found_rows(source.found) + len(source.aside),
                           source.checksum, target.checksum)

    def _digests_ahead(self, sides: Sides[SourceReader], bounds: Bounds, width: int) -> Future:
        """The range's bucket digests, taken by a side connection."""
        return sides.submit(partial(self._source_digest, self.pushdown, bounds, width))

    def _source_digest(self, pushdown: Pushdown, bounds: tuple[SourceKey | None, SourceKey | None],
                       width: int | None, reader: SourceReader) -> Digested:
        """The range's digest, or its bucket digests when `width` is given."""
        lower, upper = bounds
        key = self.layout.source_key
        if width is None:
            return reader.digest(self.table, key, pushdown.source_row, scope=pushdown.scope,
                                 lower=lower, upper=upper)
        return reader.bucket_digests(self.table, key, pushdown.source_row, scope=pushdown.scope,
                                     lower=lower, upper=upper, width=width)

    def _by_digest(self, pushdown: Pushdown, sides: Sides[SourceReader], source: Future,
                   lower: SourceKey | None, upper: SourceKey | None) -> bool:
        """One range by its two digests, the rows the source set aside row by row; True when the
        digests differ."""
        found: Digested = source.result()
        target = self.target.digest(pushdown.target_row, lower, upper, found.aside)
        if found.found == target:
            self.report.chunks_pushed_down += 1
            self._chunk_done(target[0])
            self._compare_keys(found.aside)
            return False
        width = max(1, max(found.found[0], target[0]) // BUCKETS)  # rows only the target has count too
        buckets = sides.submit(partial(self._source_digest, pushdown, (lower, upper), width))
        self._by_buckets(pushdown, buckets, lower, upper, width)
        return True

    def _by_buckets(self, pushdown: Pushdown, source: Future, lower: SourceKey | None,
                    upper: SourceKey | None, width: int) -> bool:
        """One range by its buckets' digests on both servers, the buckets that differ and the rows
        the source set aside row by row through the mapping; True when a bucket differs."""
        found: Digested = source.result()
        target = self.target.bucket_digests(pushdown.target_row, lower, upper, width, found.aside)
        spans, in_sync, alone = differing_spans(found.found, target, width, lower, upper, aside=found.aside)
        self._chunk_done(in_sync)
        if not spans:
            self.report.chunks_pushed_down += 1
        else:
            log.debug("pushdown_range_differs", mapping=self.mapping.name, lower=lower, upper=upper,
                      buckets=len(spans), aside=len(alone))
        self._compare_ranges(spans)
        self._compare_keys(alone)
        return bool(spans)

    def _compare_ranges(self, spans: list[tuple[SourceKey, SourceKey]]) -> bool:
        """The rows of these key spans, row by row through the mapping; True when all were clean."""
        key, columns = self.layout.source_key, self.layout.source_columns
        return self._compare_parts(spans, RANGES_PER_READ,
                                   partial(self.reader.rows_in_ranges, self.table, key, columns),
                                   self.target.in_ranges)

    def _compare_keys(self, keys: list[SourceKey]) -> bool:
        """The rows of these source keys (set aside by the digests), read by their keys, row by
        row through the mapping; True when all were clean."""
        key, columns = self.layout.source_key, self.layout.source_columns
        return self._compare_parts(keys, KEYS_PER_READ,
                                   partial(self.reader.rows_by_keys, self.table, key, columns),
                                   self.target.at_source_keys)

    def _compare_parts(self, items: list[Any], size: int, source_rows: Callable[[list[Any]], Any],
                       target_rows: Callable[[list[Any]], dict[Key, Values]]) -> bool:
        clean = True
        for start in range(0, len(items), size):
            part = items[start:start + size]
            names, rows = source_rows(part)
            expected = map_chunk(self.layout, names, rows, self.canons, self.mapper, persons=self.persons)
            clean = self._check(rows, expected, target_rows(part)) and clean
        return clean

    def _width(self) -> int:
        """The keys of one bucket of a range asked for its bucket digests straight away."""
        return max(1, self.options.chunk_rows * SPAN_CHUNKS // BUCKETS)

    def _key_ranges(self) -> list[tuple[SourceKey | None, SourceKey | None]]:
        """(lower, upper] ranges of about SPAN_CHUNKS chunks' rows each, in key order, the first
        and the last open: together every key of the source table and of the target slice. A
        range whose deferred columns are read holds them in memory (several ranges at once, read
        ahead, SIDES of them): it has no more rows than READ_VALUES values allow, for each two."""
        every = self.options.chunk_rows * SPAN_CHUNKS
        if self.deferred is not None:
            every = rows_per_read(every, self.deferred.values_per_row * SIDES)
        bounds = self.reader.key_boundaries(self.table, self.layout.source_key, every)
        return list(zip([None, *bounds], [*bounds, None], strict=True))

    def _compare_range(self, chunk: RangeChunk) -> Entry:
        expected = map_chunk(self.layout, chunk.names, chunk.rows, self.canons, self.mapper,
                             persons=self.persons)
        if chunk.checksum is not None:
            actual, target_checksum = self.target.range_with_checksum(chunk.lower, chunk.upper)
        else:
            actual, target_checksum = self.target.range(chunk.lower, chunk.upper), None
        clean = self._check(chunk.rows, expected, actual)
        return Entry(chunk.lower, chunk.upper, clean and target_checksum is not None, len(chunk.rows),
                     chunk.checksum, target_checksum)

    def _slice_scan(self) -> None:
        seen: set[Key] = set()
        for item in self._chunks([Entry(None, None, verified=False)]):
            assert isinstance(item, RangeChunk)
            expected = map_chunk(self.layout, item.names, item.rows, self.canons, self.mapper,
                                 persons=self.persons)
            actual = self.target.by_keys(list(expected.rows))
            seen.update(expected.rows)
            seen.update(expected.ignore)
            self._check(item.rows, expected, actual)
        extra: list[Key] = []
        source_of: dict[Key, SourceKey] = {}
        for key, columns in self.target.slice_keys():
            if key in seen:
                continue
            extra.append(key)
            source_key = self.layout.source_key_of_target(key, columns)
            if source_key is not None:
                source_of[key] = source_key
        for start in range(0, len(extra), self.options.chunk_rows):
            part = extra[start:start + self.options.chunk_rows]
            diff = ChunkDiff(extra=part)
            self.report.chunks_differing += 1
            diff, known = self._confirm(diff, Expected(source_of=source_of))
            self._record(diff, known)
            self._handle(diff, known)

    def _dead_lettered(self, row_key: str) -> bool:
        """Whether a pending dead letter explains this row; the pending keys are read again (at
        most every LETTERS_FRESH_S) when one is not among them: the running daemon may have
        dead-lettered it since the pass began."""
        if row_key in self.dead_letters:
            return True
        if time.monotonic() - self._letters_read < LETTERS_FRESH_S:
            return False
        self.dead_letters = pending_row_keys(self.conn, self.schema, self.plan.source.name,
                                             self.mapping.name)
        self._letters_read = time.monotonic()
        return row_key in self.dead_letters

    def _check(self, rows: list[tuple], expected: Expected, actual: dict[Key, Values]) -> bool:
        """Count, compare, re-check, record and handle one chunk; True when it was clean."""
        report = self.report
        self._chunk_done(len(rows))
        unexplained: list[SourceKey] = []
        for source_key, reason in expected.unmappable:
            report.unmappable += 1
            text = row_key_text(self.layout.source_key, source_key)
            self.unmappable_keys.add(text)
            if self._dead_lettered(text):
                report.explained_by_dead_letters += 1
            else:
                report.unmappable_unexplained += 1
                unexplained.append(source_key)
                if len(report.unexplained_rows) < REPORT_KEYS:
                    report.unexplained_rows.append((text, reason))
            if len(report.unmappable_rows) < REPORT_KEYS:
                report.unmappable_rows.append((text, reason))
        if unexplained and self.options.repair and self.options.on_drift is None:
            self._count_all(self._repair_keys(unexplained), {})  # they become dead letters
        diff = compare_chunk(expected.rows, actual, self.layout.compared, expected.ignore)
        if not diff:
            return not unexplained  # rows their pending dead letters explain are in sync
        report.chunks_differing += 1
        diff, source_of = self._confirm(diff, expected)
        self._record(diff, source_of)
        self._handle(diff, source_of)
        return False

    def _confirm(self, diff: ChunkDiff, expected: Expected) -> tuple[ChunkDiff, dict[Key, SourceKey]]:
        """Re-read the differing keys: a source snapshot at binlog position P, then the target once
        the daemon has applied P. A key still differing is re-checked again (a row the stream is
        changing may show a newer state than P); what differs CONFIRM_ATTEMPTS times is drift."""
        known: dict[Key, SourceKey] = {}
        for key in diff.all_keys():
            source_key = expected.source_of.get(key) or self.layout.source_key_of_target(key)
            if source_key is not None:
                known[key] = source_key
        attempts = CONFIRM_ATTEMPTS if self.streaming else 1
        for _ in range(attempts):
            candidates = diff.all_keys()
            source_keys = list(dict.fromkeys(known[k] for k in candidates if k in known))
            names, rows, position = self.reader.rows_at_position(self.table, self.layout.source_key,
                                                          self.layout.source_columns, source_keys)
            if self.streaming and position is not None:
                wait_applied(self.conn, self.schema, self.plan.source.name, position,
                             self.options.confirm_wait_s)
            fresh = map_chunk(self.layout, names, rows, self.canons, self.mapper, persons=self.persons)
            wanted = set(candidates)
            now_expected = {k: v for k, v in fresh.rows.items() if k in wanted}
            now_actual = self.target.by_keys(candidates)
            known.update(fresh.source_of)
            diff = compare_chunk(now_expected, now_actual, self.layout.compared, fresh.ignore)
            if not diff:
                break
        return diff, known

    def _record(self, diff: ChunkDiff, source_of: dict[Key, SourceKey]) -> None:
        report = self.report
        report.missing += len(diff.missing)
        report.extra += len(diff.extra)
        report.differ += len(diff.differ)
        room = REPORT_KEYS
        report.missing_keys.extend(diff.missing[:max(0, room - len(report.missing_keys))])
        report.extra_keys.extend(diff.extra[:max(0, room - len(report.extra_keys))])
        report.differ_rows.extend(diff.differ[:max(0, room - len(report.differ_rows))])
        for key in diff.all_keys():
            source_key = source_of.get(key)
            if source_key is not None and self._dead_lettered(
                    row_key_text(self.layout.source_key, source_key)):
                report.explained_by_dead_letters += 1
        bound = log.bind(mapping=self.mapping.name)
        bound.debug("reconcile_drift", missing=len(diff.missing), extra=len(diff.extra),
                    differ=len(diff.differ))

    def _handle(self, diff: ChunkDiff, source_of: dict[Key, SourceKey]) -> None:
        if not diff:
            return
        if self.options.on_drift is not None:
            self.options.on_drift(diff, source_of)
        elif self.options.repair:
            self._repair(diff, source_of)

    def _repair(self, diff: ChunkDiff, source_of: dict[Key, SourceKey]) -> None:
        keys: list[SourceKey] = []
        for key in diff.all_keys():
            source_key = source_of.get(key)
            if source_key is None:
                self.report.unrepairable += 1
            else:
                keys.append(source_key)
        results = self._repair_keys(keys)
        self._count_all(results, self._still_differing(diff, source_of) if results else {})

    def _repair_keys(self, keys: list[SourceKey]) -> list[RepairResult]:
        """The rows of these source keys written again from the source (or dead-lettered)."""
        keys = list(dict.fromkeys(keys))
        results: list[RepairResult] = []
        for start in range(0, len(keys), REPAIR_BATCH):
            part = keys[start:start + REPAIR_BATCH]
            try:
                results.append(repair(self.config, self.plans, self.mapping.name, part,
                                      requested_by="reconcile"))
            except SyncdError as exc:
                self.report.repair_errors.append(str(exc))
        return results

    def _count_all(self, results: list[RepairResult], still: dict[tuple[str, ...], Key]) -> None:
        for result in results:
            self._count_repaired(result, still)

    def _still_differing(self, diff: ChunkDiff,
                         source_of: dict[Key, SourceKey]) -> dict[tuple[str, ...], Key]:
        """The keys of `diff` that differ again once repaired (read and compared as `_confirm`
        does), by their source key's text: something on the target side (a trigger, a rule) or
        a value the target cannot hold as given changed what the repair wrote."""
        after, known = self._confirm(diff, Expected(source_of=source_of))
        return {normal_key(known[key]): key for key in after.all_keys() if key in known}

    def _count_repaired(self, result: RepairResult, still: dict[tuple[str, ...], Key]) -> None:
        """Only keys whose target row now holds what the source says count as repaired: the
        others are pending dead letters again, or still differ after the repair, each named in
        the report."""
        report = self.report
        settled = [o for o in result.outcomes if o.outcome.settled]
        unequal = [o for o in settled if normal_key(o.key) in still]
        report.repaired += len(settled) - len(unequal)
        for outcome in unequal:
            report.unrepaired += 1
            if len(report.unrepaired_keys) < REPORT_KEYS:
                report.unrepaired_keys.append(still[normal_key(outcome.key)])
        room = SAMPLE_KEYS - len(report.repaired_keys_sample)
        if room > 0:
            report.repaired_keys_sample.extend([o.key for o in settled if o not in unequal][:room])
        for refused in result.dead_lettered:
            report.dead_lettered += 1
            if len(report.dead_lettered_rows) < REPORT_KEYS:
                report.dead_lettered_rows.append((refused.row_key, refused.reason))
