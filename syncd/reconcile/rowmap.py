"""A chunk of source rows through a mapping, column by column (what `map_row` gives, faster).

`map_row(mapping, row)` computes every column of one row. Reconcile maps whole chunks, so it
computes each column over the chunk instead, and exploits what the mapping code guarantees:

* a column with one source column is a function of that value alone (transforms are pure and
  deterministic, see syncd/mapping/transforms.py), so its results are remembered per distinct
  value: a `map:` over 5 statuses runs 5 times per chunk, not 10,000 times;
* a plain copy returns its value unchanged, except a naive datetime going to a timestamptz
  column, which the column's own function localises, a value other than text going to a
  text column, which it makes text (syncd/mapping/astext.py), and a TIME going to a time
  column, which it makes a time of day or refuses (syncd/mapping/timeofday.py).

Rows whose mapping raises TransformError are reported with the reason of their first failing
column, in the mapping's column order, exactly as `map_row` would raise it. The `where:`
filter runs first, on the row as a dict, as in `map_change`; rows outside it are skipped.
tests/unit/reconcile/test_rowmap.py checks the results against `map_row` and `map_key`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from syncd.errors import TransformError
from syncd.mapping.astext import as_text
from syncd.mapping.plan import ColumnPlan, Mapping
from syncd.mapping.spec import ColumnSpec
from syncd.mapping.timeofday import TimeOfDay
from syncd.model import Undecodable

_MEMO_TYPES = frozenset({str, int, Decimal, bytes, date, datetime, time, timedelta})
"""Types whose equal values are identical (not float: 0.0 == -0.0; not bool: True == 1)."""
_CHECKED = frozenset({datetime, Undecodable})
"""Values a plain copy still computes: naive datetimes (a source time zone), undecodable text."""
_TEXT_AS_IS = frozenset({str, type(None)})
"""Values a copy into a text column passes on unchanged (others are made text)."""
_MEMO_LIMIT = 200_000
_MEMO_TRIAL = 20_000


@dataclass
class _Failed:
    reason: str


@dataclass
class MappedRows:
    """The in-scope rows of a chunk: their source keys and target column values."""

    source_keys: list[tuple[Any, ...]] = field(default_factory=list)
    values: list[tuple[Any, ...]] = field(default_factory=list)
    """Per row, the values of the requested target columns, in the requested order."""
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    """Per row, the source row itself (what identity keys are read from, syncd.reconcile.persons)."""
    failed: list[tuple[tuple[Any, ...], str, dict[str, Any]]] = field(default_factory=list)
    """Rows the mapping cannot map: source key, reason, and the row (for its key)."""


class _Column:
    def __init__(self, plan: ColumnPlan, spec: ColumnSpec | None) -> None:
        self.target = plan.target
        self.compute = plan.compute
        self.constant = spec.constant if spec is not None and spec.is_constant else None
        self.is_constant = spec is not None and spec.is_constant
        self.source = spec.sources[0] if spec is not None and len(spec.sources) == 1 else None
        self.plain = (spec is not None and self.source is not None and not spec.transforms
                      and spec.value_map is None)
        self.texted = plan.then is as_text
        self.checked = _CHECKED | {timedelta} if isinstance(plan.then, TimeOfDay) else _CHECKED
        """Value types a plain copy still computes (a TIME into a time column too: timeofday.py)."""
        self.memo: dict[Any, Any] | None = {} if self.source is not None and not self.plain else None
        self.seen = 0
        self.may_fail = False
        """Set once a value of this column failed (remembered failures come back from the memo)."""

    def one(self, value: Any) -> Any:
        if type(value) is Undecodable:  # text the source server cannot convert: a dead letter
            self.may_fail = True
            return _Failed(value.reason)
        try:
            return self.compute({self.source: value})
        except TransformError as exc:
            self.may_fail = True
            return _Failed(str(exc))

    def over(self, values: Sequence[Any]) -> list[Any]:
        """This column's results for one source column's values."""
        if self.plain and self.texted:
            return [v if type(v) in _TEXT_AS_IS else self.one(v) for v in values]
        if self.plain:
            checked = self.checked
            return [self.one(v) if type(v) in checked else v for v in values]
        memo = self.memo
        if memo is None:
            return [self.one(v) for v in values]
        out = []
        one = self.one
        for value in values:
            if type(value) in _MEMO_TYPES:
                try:
                    out.append(memo[value])
                    continue
                except KeyError:
                    result = memo[value] = one(value)
            else:
                result = one(value)
            out.append(result)
        self._tune(len(values), len(memo))
        return out

    def _tune(self, seen: int, distinct: int) -> None:
        """Stop remembering a column whose values hardly repeat; bound the memory."""
        self.seen += seen
        if self.seen >= _MEMO_TRIAL and distinct > self.seen // 2:
            self.memo = None
        elif distinct > _MEMO_LIMIT:
            self.memo = {}


class ChunkMapper:
    """Maps chunks of one table's rows through one mapping; keeps memos across chunks."""

    def __init__(self, mapping: Mapping, outputs: Sequence[str], *, keys_only: bool = False,
                 only_outputs: bool = False) -> None:
        """`only_outputs`: compute the `outputs` columns alone (rows read with only their sources);
        a row fails by the first of them that fails."""
        self.mapping = mapping
        plans = mapping.key_columns if keys_only else mapping.columns
        if only_outputs:
            plans = [p for p in plans if p.target in outputs]
        self.columns = [_Column(p, mapping.spec.column(p.target)) for p in plans]
        order = {c.target: i for i, c in enumerate(self.columns)}
        self.outputs = [order[name] for name in outputs]

    def map(self, names: Sequence[str], rows: Sequence[tuple[Any, ...]],
            source_key: Sequence[str]) -> MappedRows:
        index = {name: i for i, name in enumerate(names)}
        key_at = [index[k] for k in source_key]
        out = MappedRows()
        rows = self._in_scope(names, rows, key_at, out)
        if not rows:
            return out
        count = len(rows)
        data = list(zip(*rows, strict=True))
        results: list[Sequence[Any]] = []
        for column in self.columns:
            if column.is_constant:
                results.append([column.constant] * count)
            elif column.source is not None and column.source in index:
                results.append(column.over(data[index[column.source]]))
            else:
                results.append(self._per_row(column, names, rows))
        failed = self._failures(results)
        chosen = [results[i] for i in self.outputs]
        if len(key_at) == 1:
            keys = [(v,) for v in data[key_at[0]]]
        else:
            keys = list(zip(*(data[i] for i in key_at), strict=True))
        values = list(zip(*chosen, strict=True))
        if not failed:
            out.source_keys, out.values, out.rows = keys, values, list(rows)
            return out
        for i, row in enumerate(rows):
            if i in failed:
                out.failed.append((keys[i], failed[i], dict(zip(names, row, strict=True))))
            else:
                out.source_keys.append(keys[i])
                out.values.append(values[i])
                out.rows.append(row)
        return out

    def _failures(self, results: list[Sequence[Any]]) -> dict[int, str]:
        """Row index -> reason of its first failing column (columns in the mapping's order)."""
        failed: dict[int, str] = {}
        for column, values in zip(self.columns, results, strict=True):
            if column.may_fail:
                for i, value in enumerate(values):
                    if type(value) is _Failed and i not in failed:
                        failed[i] = value.reason
        return failed

    def _in_scope(self, names: Sequence[str], rows: Sequence[tuple[Any, ...]], key_at: list[int],
                  out: MappedRows) -> Sequence[tuple[Any, ...]]:
        test = self.mapping.in_scope
        if test is None:
            return rows
        kept = []
        for row in rows:
            image = dict(zip(names, row, strict=True))
            try:
                if test(image):
                    kept.append(row)
            except TransformError as exc:
                out.failed.append((tuple(row[k] for k in key_at), str(exc), image))
        return kept

    @staticmethod
    def _per_row(column: _Column, names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        results = []
        for row in rows:
            try:
                results.append(column.compute(dict(zip(names, row, strict=True))))
            except TransformError as exc:
                column.may_fail = True
                results.append(_Failed(str(exc)))
        return results
