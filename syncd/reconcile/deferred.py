"""The compared columns of a pushed-down mapping that have no exact SQL form, compared in Python.

A mapping's JSON columns, `json_get`, `hash`... (pushdown.py's `deferred` columns) cannot be in
the digests both servers compute. Mapping every row of the table in Python for them would cost
the whole pass what the digests save, so a pushed-down range reads, besides its digests, only
what those columns need: the source rows' key and the source columns the deferred columns (and
the target key, and the `where:` filter) are computed from, and the target rows' key and
deferred columns. The range is in sync when its digests agree and the deferred columns
computed by the mapping equal the stored ones; otherwise the keys that differ name the buckets
compared row by row through the whole mapping, as for differing digests. The rows the digests
set aside are compared row by row too.

Each side of a range is one consistent read: the source's digest, deferred rows and checksum in
one `START TRANSACTION WITH CONSISTENT SNAPSHOT`, the target's in one REPEATABLE READ
transaction. So the two checksums (verified.py) describe exactly the states the pass found in
sync, and the range can be remembered: the next pass skips it while both are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

from syncd.model import ColumnType
from syncd.reconcile.compare import Canon, Key, Values, canonicalize_rows, compare_chunk
from syncd.reconcile.expected import map_chunk
from syncd.reconcile.layout import Layout
from syncd.reconcile.pushdown import Digests, Pushdown, bucket_of
from syncd.reconcile.report import SourceKey
from syncd.reconcile.rowmap import ChunkMapper
from syncd.sink.slices import TargetReader
from syncd.source.chunks import SourceReader

Bounds = tuple[SourceKey | None, SourceKey | None]
Found = tuple[int, str | None] | Digests
"""A range's digest (rows, MD5), or its bucket digests when read by buckets."""


@dataclass(frozen=True)
class SourceRange:
    """What the source holds in one range, from one consistent snapshot."""

    found: Found
    aside: list[SourceKey]
    """The keys of the rows the digests leave out (the SQL cannot vouch for them)."""
    names: list[str]
    rows: list[tuple]
    """Key and the deferred columns' sources of every row of the range, in key order."""
    checksum: str | None
    """The range's source checksum (verified.py), None when not asked for or not taken in the snapshot."""


@dataclass(frozen=True)
class TargetRange:
    """What the target slice holds in one range, from one REPEATABLE READ snapshot."""

    found: Found
    rows: dict[Key, Values]
    """Key -> deferred columns of every row of the range."""
    checksum: str | None


def needed_sources(layout: Layout, columns: Sequence[str]) -> tuple[str, ...]:
    """The source columns that key, the target key, the `where:` filter and `columns` are
    computed from, in the layout's order."""
    spec = layout.mapping.spec
    wanted = set(layout.source_key) | {c.column for c in spec.conditions}
    for target in (*layout.target_key, *columns):
        column = spec.column(target)
        if column is not None:
            wanted.update(column.sources)
    return tuple(c for c in layout.source_columns if c in wanted)


class DeferredColumns:
    """Reads and compares one pushed-down mapping's deferred columns, range by range."""

    def __init__(self, layout: Layout, pushdown: Pushdown, table: str, *, target: TargetReader,
                 expected: list[Canon | None], stored: list[Canon | None],
                 target_types: dict[str, ColumnType], checksums: bool) -> None:
        """`expected`/`stored`: the canonical forms of the key and compared columns (reconcile's
        `canons`, and the stored ones); `target`: the reader of the whole slice (digests,
        checksums); `checksums`: take both sides' checksums with every range."""
        self.layout = layout
        self.pushdown = pushdown
        self.table = table
        self.columns = pushdown.deferred
        self.full = target
        self.checksums = checksums
        names = [*layout.target_key, *layout.compared]
        picked = [*range(len(layout.target_key)), *(names.index(c) for c in self.columns)]
        self.canons = [expected[i] for i in picked]
        self.reads = needed_sources(layout, self.columns)
        self.mapper = ChunkMapper(layout.mapping, [*layout.target_key, *self.columns], only_outputs=True)
        self.target = TargetReader(target.conn, replace(layout.slice_shape(), compared=self.columns),
                                   partial(canonicalize_rows, canons=[stored[i] for i in picked]),
                                   target_types)

    @property
    def values_per_row(self) -> int:
        """Values one row of a range holds on both sides (source reads, target key and columns)."""
        return len(self.reads) + len(self.layout.target_key) + len(self.columns)

    def source_side(self, bounds: Bounds, width: int | None, reader: SourceReader) -> SourceRange:
        """The range's digest (bucket digests when `width` is given), deferred rows and checksum."""
        lower, upper = bounds
        key = self.layout.source_key
        connection = reader.conn
        row_text, scope = self.pushdown.source_row, self.pushdown.scope
        with reader.consistent():
            digested = (reader.digest(self.table, key, row_text, scope=scope, lower=lower, upper=upper)
                        if width is None else
                        reader.bucket_digests(self.table, key, row_text, scope=scope, lower=lower,
                                              upper=upper, width=width))
            names, rows = reader.rows_in_range(self.table, key, self.reads, lower, upper)
            checksum = (reader.checksum(self.table, key, self.layout.source_columns, lower, upper)
                        if self.checksums else None)
        # A read that had to reconnect (syncd.source.chunks: text PyMySQL cannot decode) left the snapshot.
        return SourceRange(digested.found, digested.aside, names, rows,
                           checksum if reader.conn is connection else None)

    def target_side(self, bounds: Bounds, width: int | None, aside: Sequence[SourceKey]) -> TargetRange:
        """The slice's side of `source_side`, without the rows of the keys it set `aside`."""
        lower, upper = bounds
        row_text = self.pushdown.target_row
        with self.full.snapshot():
            found: Found = (self.full.digest(row_text, lower, upper, aside) if width is None
                            else self.full.bucket_digests(row_text, lower, upper, width, aside))
            rows = self.target.range(lower, upper)
            checksum = self.full.checksum(lower, upper) if self.checksums else None
        return TargetRange(found, rows, checksum)

    def odd_keys(self, source: SourceRange, target: TargetRange) -> list[SourceKey]:
        """The source keys of the rows whose deferred columns differ (missing and extra rows
        included) or that the mapping cannot map: to be compared through the whole mapping."""
        expected = map_chunk(self.layout, source.names, source.rows, self.canons, self.mapper)
        diff = compare_chunk(expected.rows, target.rows, self.columns, expected.ignore)
        keys = [expected.source_of.get(k) or self.layout.source_key_of_target(k) for k in diff.all_keys()]
        return [k for k in keys if k is not None] + [k for k, _ in expected.unmappable]


def odd_buckets(keys: Sequence[SourceKey], width: int) -> set[int]:
    """The buckets (pushdown.bucket_of) of these keys."""
    return {bucket_of(int(key[0]), width) for key in keys}


def found_rows(found: Found) -> int:
    """The rows a range's digest, or its bucket digests, counted."""
    if isinstance(found, dict):
        return sum(rows for rows, _ in found.values())
    return found[0]
