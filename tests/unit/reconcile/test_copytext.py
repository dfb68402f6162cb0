"""Which mappings the source server can snapshot as COPY text, and the line it writes (pure)."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.mapping.plan import compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import ColumnType
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
SOURCE = {"id": "bigint", "memo": "varchar", "amount": "decimal", "booked_at": "datetime", "score": "double"}
TARGET = {"source_id": "bigint", "memo": "text", "amount": "numeric", "booked_at": "timestamp with time zone",
          "score": "double precision", "channel": "text", "synced_at": "timestamp with time zone"}


def plan(tmp_path: Path, text: str = PLAIN, *, zone=UTC, encoding: str = "UTF8", target=None, source=None):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    context = TransformContext(secret=lambda kind, name: "salt", source_timezone=zone)
    mapping = compile_mapping(load_mappings([path])[0], context, "public")
    types = {n: ColumnType(n, t) for n, t in (target or TARGET).items()}
    return plan_copy_text(mapping, source or SOURCE, types, zone, encoding)


def test_a_plain_copy_mapping_becomes_one_line_per_row(tmp_path: Path) -> None:
    found = plan(tmp_path, zone=timezone(timedelta(hours=8)))
    assert found is not None
    assert found.columns == ("source_id", "memo", "amount", "booked_at")
    assert found.line.startswith("CAST(CONCAT(IFNULL(CAST(`id` AS CHAR), _utf8mb4 X'5C4E'), _utf8mb4 X'09', ")
    assert found.line.endswith(", _utf8mb4 X'0A') AS BINARY)")
    # backslash first: the escapes added afterwards are not escaped again
    assert ("REPLACE(REPLACE(REPLACE(REPLACE(CONVERT(`memo` USING utf8mb4), "
            "_utf8mb4 X'5C', _utf8mb4 X'5C5C'), _utf8mb4 X'09', _utf8mb4 X'5C74'), "
            "_utf8mb4 X'0A', _utf8mb4 X'5C6E'), "
            "_utf8mb4 X'0D', _utf8mb4 X'5C72')") in found.line
    assert "CONCAT(CAST(`booked_at` AS CHAR), '+08:00')" in found.line


@pytest.mark.parametrize("change", [
    "      memo: {from: memo, transform: strip}\n",          # a transform
    "      memo: {value: x}\n",                              # a constant
    "      score: score\n",                                  # a float: its text differs by server
    "      memo: {from: memo, map: {a: b}}\n",               # a value map
    "      memo: missing\n",                                 # no such source column: the mapping dead-letters
])
def test_anything_but_plain_copies_of_exact_types_is_not(tmp_path: Path, change: str) -> None:
    assert plan(tmp_path, PLAIN.replace("      memo: memo\n", change)) is None


@pytest.mark.parametrize("extra", [
    "    where: {memo: {ne: x}}\n",
    "    commit_time_column: synced_at\n",
])
def test_filters_and_written_columns_keep_the_mapping(tmp_path: Path, extra: str) -> None:
    assert plan(tmp_path, PLAIN.replace("    columns:", extra + "    columns:")) is None


def test_a_decimal_only_into_numeric(tmp_path: Path) -> None:
    # As a parameter 1.5 rounds into an integer column; as COPY text it is refused.
    assert plan(tmp_path, target={**TARGET, "amount": "bigint"}) is None
    integers = plan(tmp_path, source={**SOURCE, "amount": "int"}, target={**TARGET, "amount": "bigint"})
    assert integers is not None


def test_datetime_into_timestamptz_needs_a_fixed_offset_zone(tmp_path: Path) -> None:
    assert plan(tmp_path, zone=ZoneInfo("Asia/Shanghai")) is None
    naive = {**TARGET, "booked_at": "timestamp without time zone"}
    found = plan(tmp_path, zone=ZoneInfo("Asia/Shanghai"), target=naive)
    assert found is not None
    assert "CAST(`booked_at` AS CHAR)" in found.line and "'+" not in found.line


def test_only_into_a_utf8_target(tmp_path: Path) -> None:
    assert plan(tmp_path, encoding="LATIN1") is None
