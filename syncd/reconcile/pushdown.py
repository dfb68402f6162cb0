"""Digests computed inside both servers: a key range in sync is confirmed without moving rows.

Mapping every row in Python bounds a pass (PyMySQL decoding, transforms, canonical values). The
source server can compute most mapped values itself (syncd/reconcile/columnsql.py), so both
servers can spell the same text of each row — the target value of every compared column as
PostgreSQL prints it, each part self-delimiting (text as `byte length:text`, other values as
`text|`, NULL as `-` or `~|`), the key first — and digest a key range: the row count, and MD5 of
the rows' texts concatenated in key order (MariaDB's `GROUP_CONCAT`, PostgreSQL's `string_agg`;
one MD5 per range costs a fraction of one per row).

Rows the SQL cannot vouch for (their text is NULL: a status outside the map, an amount written
in full-width digits, a zero date...) are set aside: the source's digest leaves them out and
names their keys, the target's leaves out the rows of those keys, and those rows alone are
compared through the mapping in Python, which decides. A few such rows scattered over a table
cost their own reads, not their neighbours' (as a range or bucket that differs would).

Equal digests: the rest of the range is in sync (the texts of all its rows are equal, up to a
1-in-2^128 chance). Different digests — drift, or a false alarm (a target `numeric` of another
scale) — send the range to be narrowed down to buckets of keys, and the buckets that differ are
compared row by row through the mapping.

Only the mapping's compared columns whose value has an exact SQL form are in the digest; the
others (`deferred`) are compared in Python, with only those columns read (deferred.py). A
mapping takes part
when its ranges align (its key columns copy integer source key columns), it has no identity or
lookup columns, and the target database is in UTF8.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import tzinfo

from syncd.model import ColumnType, SourceColumn
from syncd.reconcile.columnsql import compile_column, scope_sql
from syncd.reconcile.layout import Layout

_MAX_ARGS = 100  # PostgreSQL's FUNC_MAX_ARGS
SPAN_CHUNKS = 4
"""A pushed-down range spans this many chunks' worth of rows."""
BUCKETS = 2_000
"""A differing range is narrowed down to about this many buckets of keys."""


@dataclass(frozen=True)
class Pushdown:
    """The row texts of one mapping, one per server."""

    source_row: str
    """MySQL expression over the source table's columns (a PyMySQL format string); NULL for a
    row the SQL cannot vouch for."""
    target_row: str
    """PostgreSQL expression over the target table's columns (SQL text, names quoted)."""
    scope: str | None
    """MySQL: 1/0/NULL, the `where:` filter (rows with 0 are left out), None without one."""
    deferred: tuple[str, ...] = ()
    """Compared target columns computed in Python (no exact SQL form)."""


def plan_pushdown(layout: Layout, sources: dict[str, SourceColumn], target_types: dict[str, ColumnType],
                  source_zone: tzinfo, target_encoding: str) -> Pushdown | None:
    """The row texts for this mapping, or None when nothing of it can be compared in SQL exactly."""
    mapping = layout.mapping
    if (layout.range_columns is None or mapping.identity is not None or mapping.lookups
            or target_encoding.upper() != "UTF8"):
        return None
    specs = {c.target: c for c in mapping.spec.columns}
    source_parts: list[str] = []
    target_parts: list[str] = []
    deferred: list[str] = []
    for column in (*layout.range_columns, *layout.compared):
        compiled = compile_column(specs[column], sources, target_types.get(column), source_zone)
        if compiled.source_part is None or compiled.target_part is None:
            if column in layout.range_columns:
                return None
            deferred.append(column)
            continue
        source_parts.append(compiled.source_part)
        target_parts.append(compiled.target_part)
    if len(deferred) == len(layout.compared) and deferred:
        return None
    scope = scope_sql(mapping.spec.conditions, sources)
    row = f"CONCAT({', '.join(source_parts)})"
    if scope is not None:
        row = f"IF({scope} IS NULL, NULL, {row})"
    return Pushdown(source_row=row, target_row=_concat(target_parts), scope=scope,
                    deferred=tuple(deferred))


def _concat(parts: list[str]) -> str:
    """`concat(parts)`, nested where needed: a PostgreSQL call takes at most 100 arguments
    (FUNC_MAX_ARGS), a wide table's row text more."""
    while len(parts) > _MAX_ARGS:
        parts = [f"concat({', '.join(parts[i:i + _MAX_ARGS])})" for i in range(0, len(parts), _MAX_ARGS)]
    return f"concat({', '.join(parts)})"


Digests = dict[int, tuple[int, str | None]]
"""Bucket (`first key column DIV width`) -> (rows, digest)."""
Bound = tuple[int, ...] | None
Span = tuple[tuple[int, ...], tuple[int, ...]]


def differing_spans(source: Digests, target: Digests, width: int, lower: Bound, upper: Bound, *,
                    also: Collection[int] = (), aside: Collection[tuple[int, ...]] = ()
                    ) -> tuple[list[Span], int, list[tuple[int, ...]]]:
    """The (lower, upper] key spans of the buckets whose digests differ or that are named in
    `also`; the source rows of the other buckets (in sync); and the keys `aside` (rows the
    digests left out) outside those buckets, in key order: each bucket and key compared row by
    row."""
    differing = sorted({b for b in source.keys() | target.keys() if source.get(b) != target.get(b)}
                       | set(also))
    in_sync = sum(rows for bucket, (rows, _) in source.items() if bucket not in differing)
    skipped = set(differing)
    alone = sorted({k for k in aside if bucket_of(k[0], width) not in skipped})
    return [_bucket_span(b, width, lower, upper) for b in differing], in_sync, alone


def bucket_of(first: int, width: int) -> int:
    """The bucket of a key whose first column is `first`: MySQL's `first DIV width`, which
    truncates towards zero (PostgreSQL's integer `/` too), not Python's `//`."""
    quotient = abs(first) // width
    return quotient if first >= 0 else -quotient


def _bucket_span(bucket: int, width: int, lower: Bound, upper: Bound) -> Span:
    """The keys whose first column `DIV width` is `bucket` (DIV truncates towards zero), within
    the range. A side of the bucket inside the range is bounded by the first column alone (a
    bound shorter than the key, syncd.source.chunks.range_condition); a side where the range
    ends within the bucket keeps the range's own bound, all of the key's columns."""
    first = bucket * width if bucket > 0 else bucket * width - width + 1
    last = bucket * width + width - 1 if bucket >= 0 else bucket * width
    low = (first - 1,) if lower is None or lower[0] < first else tuple(lower)
    high = (last,) if upper is None or upper[0] > last else tuple(upper)
    return low, high
