"""Unit tests for syncd.mapping.timeofday: a MySQL TIME into a PostgreSQL time/timetz column."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from syncd.errors import TransformError
from syncd.mapping.plan import ChangeContext, compile_mapping, map_change
from syncd.mapping.spec import parse_document
from syncd.mapping.timeofday import time_of_day
from syncd.mapping.transforms import TransformContext
from syncd.model import Op, RowChange, Upsert
from syncd.yamlfile import Checker, Where, load_text

MAPPING = """\
mappings:
  - name: shifts
    source: shop
    table: shifts
    target: shifts
    key: [id]
    columns:
      id: id
      starts: tm
      label: {from: tm, map: {"1:00:00": one}, default: other}
      ends: tm2
"""
CTX = ChangeContext("shop", "mysql-bin.000001:4", datetime(2024, 5, 1, tzinfo=UTC))


@pytest.mark.parametrize(("value", "expected"), [
    (timedelta(0), time(0)),
    (timedelta(hours=23, minutes=59, seconds=59, microseconds=999999), time(23, 59, 59, 999999)),
    (timedelta(hours=12, microseconds=500000), time(12, 0, 0, 500000)),
    ("12:00", "12:00"), (None, None),
])
def test_a_time_within_the_day_keeps_its_exact_fraction(value: object, expected: object) -> None:
    assert time_of_day("starts")(value) == expected


def test_timetz_gets_the_time_of_day_in_utc() -> None:
    clock = time_of_day("starts", zoned=True)
    assert clock(timedelta(hours=1, microseconds=1)) == time(1, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(("value", "shown"), [
    (timedelta(hours=838, minutes=59, seconds=59, microseconds=999000), "838:59:59.999"),
    (-timedelta(hours=12, microseconds=500000), "-12:00:00.5"),
    (-timedelta(microseconds=1), "-00:00:00.000001"),
    (timedelta(days=1), "24:00:00"),
])
def test_a_time_outside_the_day_is_refused_naming_column_and_value(value: timedelta, shown: str) -> None:
    with pytest.raises(TransformError) as raised:
        time_of_day("starts")(value)
    assert raised.value.column == "starts"
    assert f"TIME {shown} is outside" in str(raised.value)
    assert str(raised.value).startswith("column starts: ")


def compiled(clocks: dict[str, bool]) -> object:
    check = Checker()
    (spec,) = parse_document(load_text(MAPPING, "m.yaml"), Where("m.yaml", 1, 1), check, None)
    assert check.problems == []
    return compile_mapping(spec, TransformContext(lambda k, n: "", UTC), "public", set(), (),
                           clock_columns=clocks)


def test_the_mapping_dead_letters_a_time_out_of_the_day_into_a_time_column() -> None:
    mapping = compiled({"starts": False})
    row = {"id": 1, "tm": timedelta(hours=838, minutes=59, seconds=59), "tm2": None}
    mapped = map_change(mapping, RowChange("shifts", Op.INSERT, None, row), CTX)  # type: ignore[arg-type]
    assert mapped.ops == []
    assert mapped.dead_letters[0].reason.startswith("column starts: TIME 838:59:59 is outside")
    fine = {**row, "tm": timedelta(hours=1, microseconds=250000)}
    (upsert,) = map_change(mapping, RowChange("shifts", Op.INSERT, None, fine), CTX).ops  # type: ignore[arg-type]
    assert isinstance(upsert, Upsert)
    assert upsert.values["starts"] == time(1, 0, 0, 250000)


def test_a_timetz_column_and_an_interval_column_beside_it() -> None:
    mapping = compiled({"label": False, "ends": True})
    row = {"id": 1, "tm": timedelta(hours=1), "tm2": -timedelta(hours=1)}
    mapped = map_change(mapping, RowChange("shifts", Op.INSERT, None, row), CTX)  # type: ignore[arg-type]
    assert "column ends: TIME -01:00:00 is outside" in mapped.dead_letters[0].reason
    row["tm2"] = timedelta(hours=2)
    (upsert,) = map_change(mapping, RowChange("shifts", Op.INSERT, None, row), CTX).ops  # type: ignore[arg-type]
    assert upsert.values["ends"] == time(2, tzinfo=UTC)  # type: ignore[union-attr]
    assert upsert.values["starts"] == timedelta(hours=1)  # an interval column: as it is
