"""How one mapping's source keys line up with its target keys (pure).

A mapping owns a *slice* of its target table: the rows whose constant key columns hold its
constants (`channel: {value: shop}`). The remaining key columns usually copy source row-key
columns (`source_order_id: id`; the row key is the mapping's `source_key`, else the primary
key). When every non-constant key column is a plain copy of a source row-key column, one each,
and both sides order those columns the same way (integers), a chunk of source keys `(lo, hi]`
corresponds to exactly the target rows of the slice with copied key in `(lo, hi]`: extra target
rows are found chunk by chunk ("aligned"). Otherwise the target is read by the expected keys,
and extra rows are found by one scan of the slice's keys at the end ("slice scan").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncd.mapping.plan import Mapping
from syncd.mapping.spec import ColumnSpec
from syncd.model import ColumnType, SliceShape
from syncd.reconcile.persons import person_columns

_SOURCE_INTEGER = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_TARGET_INTEGER = {"smallint", "integer", "bigint"}


def plain_copy(column: ColumnSpec) -> str | None:
    """The source column this target column copies unchanged, if it is a plain copy."""
    if column.is_constant or len(column.sources) != 1 or column.transforms or column.value_map is not None:
        return None
    return column.sources[0]


@dataclass(frozen=True)
class Layout:
    """Everything the reconciler needs to know about one mapping's keys and columns."""

    mapping: Mapping
    source_key: tuple[str, ...]
    """The source row key: the mapping's `source_key`, else the table's primary key columns."""
    source_columns: tuple[str, ...]
    """Source columns to read: the row key, then the mapped and filtered columns it has."""
    target_key: tuple[str, ...]
    slice: dict[str, Any]
    """Constant key columns -> their constants: the mapping's slice of the target table."""
    compared: tuple[str, ...]
    """Target columns whose values are compared: the mapped ones (neither key, soft-delete nor
    commit time), then the `persons` columns."""
    range_columns: tuple[str, ...] | None
    """Target columns copying the source key, in source-key order, when ranges align."""
    source_key_in_target: tuple[str, ...] | None
    """Target columns holding a plain copy of each source key column (extra rows -> source key)."""
    soft_delete_column: str | None
    persons: tuple[str, ...] = ()
    """The last columns of `compared`: person ids the sink fills (identity.column, lookup columns)."""

    @property
    def mapped(self) -> tuple[str, ...]:
        """The compared columns the mapping computes from the source row alone."""
        return self.compared[:len(self.compared) - len(self.persons)]

    @property
    def aligned(self) -> bool:
        return self.range_columns is not None

    @property
    def mode(self) -> str:
        return "aligned" if self.aligned else "slice-scan"

    def source_key_of_target(self, key: tuple[Any, ...],
                             extra: dict[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The source key a target row came from, read from its copied columns."""
        if self.source_key_in_target is None:
            return None
        values = dict(zip(self.target_key, key, strict=True)) | (extra or {})
        try:
            return tuple(values[c] for c in self.source_key_in_target)
        except KeyError:
            return None

    @property
    def extra_columns(self) -> tuple[str, ...]:
        """Non-key target columns needed to name the source key of a target row."""
        return tuple(c for c in self.source_key_in_target or () if c not in self.target_key)

    def slice_shape(self) -> SliceShape:
        """What the sink reads of the target table for this layout."""
        return SliceShape(self.mapping.table, self.target_key, self.compared, tuple(self.slice.items()),
                          self.soft_delete_column, self.range_columns, self.extra_columns)


def build_layout(mapping: Mapping, source_key: tuple[str, ...], source_types: dict[str, str],
                 target_types: dict[str, ColumnType]) -> Layout:
    spec = mapping.spec
    slice_values = spec.slice_values()
    copies = {c.target: src for c in spec.columns if (src := plain_copy(c)) is not None}
    skipped = {spec.soft_delete_column, spec.commit_time_column}
    mapped = tuple(c.target for c in mapping.columns if c.target not in spec.key and c.target not in skipped)
    persons = person_columns(mapping)
    wanted = [*source_key, *sorted(mapping.source_columns)]
    source_columns = tuple(dict.fromkeys(c for c in wanted if c in source_types))
    return Layout(
        mapping=mapping,
        source_key=source_key,
        source_columns=source_columns,
        target_key=spec.key,
        slice=slice_values,
        compared=(*mapped, *persons),
        range_columns=_range_columns(spec.key, slice_values=slice_values, copies=copies,
                                     source_key=source_key, source_types=source_types,
                                     target_types=target_types),
        source_key_in_target=_key_in_target(spec.key, copies, source_key),
        soft_delete_column=spec.soft_delete_column,
        persons=persons,
    )


def _range_columns(key: tuple[str, ...], *, slice_values: dict[str, Any], copies: dict[str, str],
                   source_key: tuple[str, ...], source_types: dict[str, str],
                   target_types: dict[str, ColumnType]) -> tuple[str, ...] | None:
    free = [k for k in key if k not in slice_values]
    copied = {copies.get(k): k for k in free}
    if len(free) != len(source_key) or set(copied) != set(source_key):
        return None
    for source_column in source_key:
        target_column = copied[source_column]
        target_type = target_types.get(target_column)
        if source_types.get(source_column, "").lower() not in _SOURCE_INTEGER:
            return None
        if target_type is None or target_type.data_type not in _TARGET_INTEGER:
            return None
    return tuple(copied[s] for s in source_key)


def _key_in_target(key: tuple[str, ...], copies: dict[str, str],
                   source_key: tuple[str, ...]) -> tuple[str, ...] | None:
    holders: list[str] = []
    for source_column in source_key:
        candidates = [t for t, s in copies.items() if s == source_column]
        if not candidates:
            return None
        in_key = [t for t in candidates if t in key]
        holders.append((in_key or candidates)[0])
    return tuple(holders)
