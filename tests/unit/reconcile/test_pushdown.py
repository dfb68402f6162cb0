"""Which mappings reconcile through in-server checksums, and the SQL both servers run (pure)."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.config import fixed_offset
from syncd.mapping.plan import compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import ColumnType
from syncd.reconcile.layout import build_layout
from syncd.reconcile.pushdown import plan_pushdown
from syncd.source.chunks import source_sums_sql

PLAIN = """
mappings:
  - name: m
    source: shop
    table: ledger
    target: ledger
    key: [channel, source_id]
    columns:
      channel: {value: shop}
      source_id: id
      memo: memo
      amount: amount
      booked_at: booked_at
"""
SOURCE = {"id": "bigint", "memo": "varchar", "amount": "decimal", "booked_at": "datetime",
          "score": "double", "status": "varchar"}
TARGET = {"channel": "text", "source_id": "bigint", "memo": "text", "amount": "numeric",
          "booked_at": "timestamp with time zone", "score": "double precision", "status": "integer"}


def plan(tmp_path: Path, text: str = PLAIN, *, zone=UTC, encoding: str = "UTF8", target=None,
         key: tuple[str, ...] = ("id",)):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    spec = load_mappings([path])[0]
    context = TransformContext(secret=lambda kind, name: "salt", source_timezone=zone)
    mapping = compile_mapping(spec, context, "public")
    types = {n: ColumnType(n, t) for n, t in (target or TARGET).items()}
    return plan_pushdown(build_layout(mapping, key, SOURCE, types), SOURCE, types, zone, encoding)


def test_a_plain_copy_mapping_is_pushed_down(tmp_path: Path) -> None:
    found = plan(tmp_path)
    assert found is not None
    source_hash = found.source_hash % ()  # a PyMySQL format string
    assert "TRIM(TRAILING '0' FROM DATE_FORMAT(`booked_at`, '%Y-%m-%d %H:%i:%s.%f'))" in source_hash
    assert "CAST(`id` + 0 AS CHAR)" in source_hash  # a ZEROFILL column's text has its zeros
    assert "CONVERT(`memo` USING utf8mb4)" in source_hash
    text = found.target_hash
    assert "\"booked_at\" AT TIME ZONE INTERVAL '+00:00'" in text
    assert "\"channel\"" not in text  # the slice's constant is a filter, not a hashed value


@pytest.mark.parametrize("change", [
    "      memo: {from: memo, transform: strip}\n",          # a transform
    "      memo: {value: x}\n",                              # a constant outside the key
    "      score: score\n",                                  # a float: its text differs by server
    "      status: {from: status, map: {a: 1}}\n",            # a value map
])
def test_anything_but_plain_copies_of_exact_types_is_not(tmp_path: Path, change: str) -> None:
    text = PLAIN.replace("      memo: memo\n", change)
    assert plan(tmp_path, text) is None


def test_a_where_filter_keeps_the_row_by_row_path(tmp_path: Path) -> None:
    text = PLAIN.replace("    columns:", "    where: {memo: {ne: x}}\n    columns:")
    assert plan(tmp_path, text) is None


def test_datetime_into_timestamptz_needs_a_fixed_offset_zone(tmp_path: Path) -> None:
    assert plan(tmp_path, zone=timezone(timedelta(hours=8))) is not None
    assert plan(tmp_path, zone=ZoneInfo("Asia/Shanghai")) is None  # daylight saving 1986-1991
    naive = {**TARGET, "booked_at": "timestamp without time zone"}
    assert plan(tmp_path, zone=ZoneInfo("Asia/Shanghai"), target=naive) is not None


def test_a_target_database_not_in_utf8_is_not_pushed_down(tmp_path: Path) -> None:
    assert plan(tmp_path, encoding="LATIN1") is None


def test_composite_keys_are_not_pushed_down(tmp_path: Path) -> None:
    text = PLAIN.replace("source_id: id", "source_id: id\n      memo_key: memo")
    assert plan(tmp_path, text.replace("[channel, source_id]", "[source_id, memo_key]"),
                key=("id", "memo"), target={**TARGET, "memo_key": "bigint"}) is None


def test_offsets() -> None:
    assert fixed_offset(UTC) == timedelta(0)
    assert fixed_offset(ZoneInfo("Etc/UTC")) == timedelta(0)
    assert fixed_offset(timezone(timedelta(hours=-3, minutes=-30))) == timedelta(hours=-3, minutes=-30)
    assert fixed_offset(ZoneInfo("Europe/Berlin")) is None


def test_source_sums_are_exact_integers_in_a_format_string() -> None:
    query = source_sums_sql("MD5(DATE_FORMAT(`d%%`, '%%Y'))", "t%", " WHERE (`id` > %s)")
    assert query % (1,) == (
        "SELECT COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTRING(`syncd_hashed`.`syncd_hash`, 1, 15), 16, 10) "
        "AS UNSIGNED)), 0), COALESCE(SUM(CAST(CONV(SUBSTRING(`syncd_hashed`.`syncd_hash`, 16, 15), 16, 10) "
        "AS UNSIGNED)), 0) FROM (SELECT MD5(DATE_FORMAT(`d%`, '%Y')) AS `syncd_hash` FROM `t%` "
        "WHERE (`id` > 1)) AS `syncd_hashed`")
