"""Verified chunks: skip the row-by-row work for key ranges unchanged since they were in sync.

Mapping every row in Python is what bounds a reconcile pass (PyMySQL decoding, transforms).
Periodic passes mostly meet data that has not changed since the last one, so each chunk the
pass found in sync is remembered in `state_schema.reconcile_chunks` with two checksums taken
*from the very reads it compared*:

* the source checksum: count, SUM(CRC32(row text)) and SUM(CRC32C(row text)) over the chunk's
  key range, computed by MariaDB in the same consistent snapshot as the rows;
* the target checksum: count and sum(hash_record_extended(row, 0)) over the same range of the
  slice (live rows, compared columns), computed by PostgreSQL in the same REPEATABLE READ
  transaction as the rows.

The next pass asks both servers for the two checksums of a remembered chunk (no rows travel,
both servers work at once). When both are unchanged, and the mapping's fingerprint (its
definition, transform results on probe values, time zones, column types, server versions) is
the same, the chunk is still in sync: the source rows are the ones that mapped to exactly
these target rows. Otherwise the range is compared row by row again. `--full` ignores the
remembered chunks. Only aligned mappings (integer copied keys) use it. A pushed-down pass of a
mapping with columns computed in Python (deferred.py) remembers its ranges the same way, with
checksums taken in the snapshots its digests and those columns were read in, and compares a
changed range by its digests rather than row by row; a pushed-down mapping without such
columns remembers nothing (its digests cost what the checksums do).

Person-id columns (identity.column, lookup columns) are compared columns like the others: a
chunk is only remembered once they were compared, the target checksum covers them, and the
fingerprint holds their types (chunks remembered by a pass that did not compare them are not
used). Their expected values also depend on the identity state, which under unchanged source
rows only changes by merges, and a merge re-points the target rows it concerns in the same
transaction, which changes the target checksum.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncd.model import ColumnType
from syncd.reconcile.layout import Layout
from syncd.sink.connection import Connection
from syncd.sink.verified import load_chunks, save_chunks

CACHE_VERSION = 2
"""Raised when what a mapping expects of unchanged rows changes between releases (2: values
made text for text columns, syncd/mapping/astext.py), so that chunks remembered before are compared again."""
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
"""Object addresses in reprs (sentinels such as NO_VALUE) differ from one process to the next."""
_PROBES = ("0", 0, "13812345678", "1,299.50元", "a b")



@dataclass(frozen=True)
class Entry:
    """A key range (lo, hi] of the source (None: unbounded) and what its last pass found."""

    lo: tuple[Any, ...] | None
    hi: tuple[Any, ...] | None
    verified: bool
    rows: int = 0
    source_sum: str | None = None
    target_sum: str | None = None


def _key(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if value is not None else None


def chained(rows: Sequence[tuple[Any, ...]], fingerprint: str) -> list[Entry] | None:
    """The remembered chunks (as `sink.verified.load_chunks` reads them), when they still cover the
    whole key space under this fingerprint."""
    if not rows or any(r[6] != fingerprint for r in rows):
        return None
    entries = [Entry(_key(r[0]), _key(r[1]), r[2], r[3], r[4], r[5]) for r in rows]
    whole = entries[0].lo is None and entries[-1].hi is None and all(
        a.hi is not None and a.hi == b.lo for a, b in itertools.pairwise(entries))
    return entries if whole else None


def fingerprint(layout: Layout, *, source_timezone: object, session_zone: object,
                target_types: dict[str, ColumnType], source_types: dict[str, str],
                versions: Sequence[str]) -> str:
    """Everything the expected rows of unchanged source rows depend on."""
    mapping = layout.mapping
    probes = []
    for column in mapping.columns:
        spec = mapping.spec.column(column.target)
        if spec is None or len(spec.sources) != 1 or (not spec.transforms and spec.value_map is None):
            continue
        for value in _PROBES:
            try:
                probes.append(repr(column.compute({spec.sources[0]: value})))
            except Exception as exc:  # any outcome is part of the fingerprint
                probes.append(f"{type(exc).__name__}: {exc}")
    parts = [
        str(CACHE_VERSION), _ADDRESS.sub("", repr(mapping.spec)), repr(source_timezone), repr(session_zone),
        repr(sorted((n, repr(t)) for n, t in target_types.items()
                    if n in (*layout.target_key, *layout.compared))),
        repr([(c, source_types.get(c)) for c in layout.source_columns]),
        repr(layout.source_columns), *probes, *versions,
    ]
    return hashlib.sha256("\x1e".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class VerifiedChunks:
    """One mapping's remembered chunks under one fingerprint."""

    def __init__(self, conn: Connection, schema: str, mapping: str, fingerprint: str) -> None:
        self.conn = conn
        self.schema = schema
        self.mapping = mapping
        self.fingerprint = fingerprint

    def load(self) -> list[Entry] | None:
        return chained(load_chunks(self.conn, self.schema, self.mapping), self.fingerprint)

    def save(self, entries: Sequence[Entry]) -> None:
        save_chunks(self.conn, self.schema, self.mapping, [
            (e.lo, e.hi, self.fingerprint, e.verified, e.rows, e.source_sum, e.target_sum) for e in entries])
