"""What a chunk of source rows should be in the target: the rows through the mapping, keyed
and canonicalized like the stored rows they are compared with (syncd/reconcile/compare.py).

Rows the mapping cannot map are listed with their reason; their target key, when it can still be
told, is set apart so the stored row is not judged. Used by the reconcile pass (engine.py) and,
through it, by the snapshot's verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.errors import TransformError
from syncd.mapping.plan import map_key
from syncd.model import Row
from syncd.reconcile.compare import Canon, Key, Values, canonicalize_rows
from syncd.reconcile.layout import Layout
from syncd.reconcile.persons import PersonColumns
from syncd.reconcile.report import SourceKey
from syncd.reconcile.rowmap import ChunkMapper


@dataclass
class Expected:
    """A chunk of source rows through the mapping."""

    rows: dict[Key, Values] = field(default_factory=dict)
    source_of: dict[Key, SourceKey] = field(default_factory=dict)
    ignore: set[Key] = field(default_factory=set)
    """Target keys of source rows that cannot be mapped (their target row is not judged)."""
    unmappable: list[tuple[SourceKey, str]] = field(default_factory=list)


def map_chunk(layout: Layout, names: list[str], rows: list[tuple[Any, ...]], canons: list[Canon | None],
              mapper: ChunkMapper, *, persons: PersonColumns | None = None) -> Expected:
    """The target rows these source rows should produce (filter applied), keyed by target key;
    `persons` gives the values of the layout's person-id columns (read from the identity state)."""
    mapped = mapper.map(names, rows, layout.source_key)
    if persons is not None:
        mapped = persons.fill(mapped, names)
    width = len(layout.target_key)
    out = Expected()
    canonical = canonicalize_rows(mapped.values, canons)
    keys = [row[:width] for row in canonical]
    out.rows = dict(zip(keys, [row[width:] for row in canonical], strict=True))
    out.source_of = dict(zip(keys, mapped.source_keys, strict=True))
    ignored = []
    for source_key, reason, image in mapped.failed:
        out.unmappable.append((source_key, reason))
        known = _known_key(layout, image, source_key)
        if known is not None:
            ignored.append(known)
    out.ignore = set(canonicalize_rows(ignored, canons[:width]))
    return out


def chunk_mapper(layout: Layout, keys_only: bool = False) -> ChunkMapper:
    return ChunkMapper(layout.mapping, [*layout.target_key, *layout.mapped], keys_only=keys_only)


def _known_key(layout: Layout, row: Row, skey: SourceKey) -> Key | None:
    """The target key of a row that cannot be mapped, when it can still be told."""
    if layout.range_columns is not None:
        values = dict(layout.slice) | dict(zip(layout.range_columns, skey, strict=True))
        return tuple(values[k] for k in layout.target_key)
    try:
        return map_key(layout.mapping, row)
    except TransformError:
        return None
