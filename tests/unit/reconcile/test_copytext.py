"""Which mappings the source server can snapshot as COPY text, and the line it writes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.mapping.plan import compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import ColumnType, SourceColumn
from syncd.reconcile.copytext import plan_copy_text

PLAIN = """
mappings:
  - name: m
    source: shop
    table: ledger
    target: ledger
    key: [source_id]
    columns:
      source_id: id
      memo: memo
      amount: amount
      booked_at: booked_at
"""
SOURCE_TYPES = {"id": "bigint", "memo": "varchar", "amount": "decimal", "booked_at": "datetime",
                "score": "double", "doc": "json"}
SOURCE = {n: SourceColumn(n, t, scale=2 if t == "decimal" else None) for n, t in SOURCE_TYPES.items()}
TARGET = {"source_id": "bigint", "memo": "text", "amount": "numeric", "booked_at": "timestamp with time zone",
          "score": "double precision", "channel": "text", "synced_at": "timestamp with time zone",
          "doc": "jsonb"}


def plan(tmp_path: Path, text: str = PLAIN, *, zone=UTC, encoding: str = "UTF8", target=None, source=None):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    context = TransformContext(secret=lambda kind, name: "salt", source_timezone=zone)
    mapping = compile_mapping(load_mappings([path])[0], context, "public")
    types = {n: ColumnType(n, t) for n, t in (target or TARGET).items()}
    return plan_copy_text(mapping, source or SOURCE, types, zone, encoding,
                          commit_time=datetime(2024, 1, 1, tzinfo=UTC))


def test_a_plain_copy_mapping_becomes_one_line_per_row(tmp_path: Path) -> None:
    found = plan(tmp_path, zone=timezone(timedelta(hours=8)))
    assert found is not None
    assert found.columns == ("source_id", "memo", "amount", "booked_at") and not found.deferred
    assert found.line.startswith(
        "CAST(CONCAT(IFNULL(CAST((`id` + 0) AS CHAR), _utf8mb4 X'5C4E'), _utf8mb4 X'09', ")
    assert found.line.endswith(", _utf8mb4 X'0A') AS BINARY)")
    # backslash first: the escapes added afterwards are not escaped again
    assert ("REPLACE(REPLACE(REPLACE(REPLACE(CONVERT(`memo` USING utf8mb4), "
            "_utf8mb4 X'5C', _utf8mb4 X'5C5C'), _utf8mb4 X'09', _utf8mb4 X'5C74'), "
            "_utf8mb4 X'0A', _utf8mb4 X'5C6E'), "
            "_utf8mb4 X'0D', _utf8mb4 X'5C72')") in found.line
    # the offset, except where the instant would fall before year 1 in UTC (left to Python)
    assert ("CONCAT(CAST(`booked_at` AS CHAR), IF(`booked_at` < '0001-01-01 08:00:00.000000', NULL, "
            "'+08:00'))") in found.line


@pytest.mark.parametrize("change", [
    "      memo: {from: memo, transform: strip}\n",          # a transform
    "      memo: {value: x}\n",                              # a constant
    "      score: score\n",                                  # a double: the printed text
    "      memo: {from: memo, map: {a: b}}\n",               # a value map
])
def test_mapped_values_are_computed_by_the_source_server(tmp_path: Path, change: str) -> None:
    found = plan(tmp_path, PLAIN.replace("      memo: memo\n", change))
    assert found is not None and not found.deferred


@pytest.mark.parametrize("change", [
    "      memo: {from: memo, transform: {hash: {salt_env: S}}}\n",  # the salt never travels to the source
    "      memo: {from: doc, transform: {json_get: a}}\n",
])
def test_a_column_without_an_sql_form_is_computed_in_python(tmp_path: Path, change: str) -> None:
    found = plan(tmp_path, PLAIN.replace("      memo: memo\n", change))
    assert found is not None and found.deferred == ("memo",) and found.columns[-1] == "memo"


def test_a_missing_source_column_leaves_the_mapping_to_python(tmp_path: Path) -> None:
    assert plan(tmp_path, PLAIN.replace("      memo: memo\n", "      memo: {from: missing, transform: "
                                        "{hash: {salt_env: S}}}\n")) is None


def test_filters_and_written_columns_are_part_of_the_line(tmp_path: Path) -> None:
    found = plan(tmp_path, PLAIN.replace("    columns:", "    where: {memo: {ne: x}}\n"
                                         "    commit_time_column: synced_at\n    columns:"))
    assert found is not None and found.columns[-1] == "synced_at"
    assert found.line.startswith("CAST(CASE IF(") and "'2024-01-01 00:00:00+00:00'" not in found.line
    assert "_utf8mb4 X'323032342D30312D30312030303A30303A30302B30303A3030'" in found.line


def test_a_decimal_into_an_integer_column_is_computed_in_python(tmp_path: Path) -> None:
    # As a parameter 1.5 rounds into an integer column; as COPY text it is refused.
    assert plan(tmp_path, target={**TARGET, "amount": "bigint"}).deferred == ("amount",)
    integers = plan(tmp_path, source={**SOURCE, "amount": SourceColumn("amount", "int")},
                    target={**TARGET, "amount": "bigint"})
    assert integers is not None and not integers.deferred


def test_datetime_into_timestamptz_in_a_zone_with_clock_changes(tmp_path: Path) -> None:
    found = plan(tmp_path, zone=ZoneInfo("Asia/Shanghai"))
    assert found is not None and "IF(`booked_at` < '1986-05-04 02:00:00.000000'" in found.line
    naive = {**TARGET, "booked_at": "timestamp without time zone"}
    found = plan(tmp_path, zone=ZoneInfo("Asia/Shanghai"), target=naive)
    assert found is not None
    assert "CAST(`booked_at` AS CHAR)" in found.line and "'+" not in found.line


def test_only_into_a_utf8_target(tmp_path: Path) -> None:
    assert plan(tmp_path, encoding="LATIN1") is None
