"""`where:` row filters: a source row is in a mapping's scope when every condition holds."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from syncd.errors import TransformError
from syncd.mapping.spec import Condition
from syncd.model import Row

RowTest = Callable[[Row], bool]

_ORDERED = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}


def values_equal(row_value: Any, wanted: Any) -> bool:
    """Equality that lets YAML `0` match a source `0`, `'0'` or a Decimal 0, but never NULL."""
    if row_value is None or wanted is None:
        return row_value is None and wanted is None
    if row_value == wanted:
        return True
    return str(row_value) == str(wanted)


def _read(row: Row, column: str) -> Any:
    """The row's value; a column missing from the image (dropped or renamed) is an error, not NULL."""
    try:
        return row[column]
    except KeyError:
        raise TransformError(f"where: source column {column!r} is not in the row", column) from None


def _test(condition: Condition) -> RowTest:
    column, op, value = condition.column, condition.op, condition.value
    if op == "eq":
        return lambda row: values_equal(_read(row, column), value)
    if op == "ne":
        return lambda row: not values_equal(_read(row, column), value)
    if op == "in":
        return lambda row: any(values_equal(_read(row, column), v) for v in value)
    if op == "not_in":
        return lambda row: not any(values_equal(_read(row, column), v) for v in value)
    if op == "is_null":
        return lambda row: (_read(row, column) is None) == value
    compare = _ORDERED[op]

    def ordered(row: Row) -> bool:
        current = _read(row, column)
        if current is None:
            return False
        try:
            return compare(current, value)
        except TypeError:
            pass
        try:
            return compare(current, _as_kind_of(current, value))
        except (TypeError, ValueError, ArithmeticError):
            raise TransformError(f"where.{column}: cannot compare the row's {_kind(current)} {current} "
                                 f"with the bound {value!r}{_hint(current, value)}", column) from None

    return ordered


def _as_kind_of(current: Any, bound: Any) -> Any:
    """A bound written as text (quoted in YAML) read as the row value's kind: a date-time, a
    date or a number; ValueError when it is not one."""
    if not isinstance(bound, str) or isinstance(current, str):
        return bound
    if isinstance(current, datetime):
        return datetime.fromisoformat(bound.strip())
    if isinstance(current, date):
        return date.fromisoformat(bound.strip())
    if isinstance(current, int | Decimal | float) and not isinstance(current, bool):
        return Decimal(bound.strip())
    return bound


def _kind(value: Any) -> str:
    if isinstance(value, datetime):
        return "instant (TIMESTAMP)" if value.tzinfo is not None else "date-time (DATETIME)"
    return {date: "date", str: "text", bytes: "bytes"}.get(type(value), "number")


def _hint(current: Any, bound: Any) -> str:
    if isinstance(current, datetime) and current.tzinfo is not None:
        return ": a TIMESTAMP column holds instants, give the bound a UTC offset (2030-01-01 00:00:00+08:00)"
    if isinstance(current, datetime):
        return ": a DATETIME column holds wall times, write the bound without an offset (2030-01-01 00:00:00)"
    return ": compare like with like (docs/mappings.md, where)"


def build_filter(conditions: Sequence[Condition]) -> RowTest | None:
    """None when the mapping has no filter (every row is in scope)."""
    if not conditions:
        return None
    tests = [_test(c) for c in conditions]
    return lambda row: all(test(row) for test in tests)
