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
from syncd.model import ColumnType, SourceColumn
from syncd.reconcile.layout import build_layout
from syncd.reconcile.pushdown import bucket_of, differing_spans, plan_pushdown
from syncd.source.chunks import range_condition

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
SOURCE_TYPES = {"id": "bigint", "memo": "varchar", "amount": "decimal", "booked_at": "datetime",
                "score": "double", "status": "varchar"}
SOURCE = {n: SourceColumn(n, t, scale=2 if t == "decimal" else None) for n, t in SOURCE_TYPES.items()}
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
    return plan_pushdown(build_layout(mapping, key, SOURCE_TYPES, types), SOURCE, types, zone, encoding)


def test_a_plain_copy_mapping_is_pushed_down(tmp_path: Path) -> None:
    found = plan(tmp_path)
    assert found is not None and not found.deferred and found.scope is None
    source_row = found.source_row % ()  # a PyMySQL format string
    assert "DATE_FORMAT(`booked_at`, '%Y-%m-%d %H:%i:%s.%f')" in source_row
    assert "CAST((`id` + 0) AS CHAR)" in source_row  # a ZEROFILL column's text has its zeros
    assert "CONVERT(`memo` USING utf8mb4)" in source_row
    assert source_row.startswith("CONCAT(")  # NULL for a row the SQL cannot vouch for
    text = found.target_row
    assert "to_char(\"booked_at\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')" in text
    assert "\"channel\"" not in text  # the slice's constant is a filter, not a hashed value


@pytest.mark.parametrize("change", [
    "      memo: {from: memo, transform: strip}\n",          # a transform
    "      memo: {value: x}\n",                              # a constant outside the key
    "      status: {from: status, map: {a: 1}}\n",            # a value map
])
def test_mapped_values_are_hashed_by_both_servers(tmp_path: Path, change: str) -> None:
    found = plan(tmp_path, PLAIN.replace("      memo: memo\n", change))
    assert found is not None and not found.deferred


def test_a_column_without_an_exact_text_is_compared_in_python(tmp_path: Path) -> None:
    found = plan(tmp_path, PLAIN.replace("      memo: memo\n", "      score: score\n"))
    assert found is not None and found.deferred == ("score",)  # a float: its text differs by server


def test_a_where_filter_is_pushed_down(tmp_path: Path) -> None:
    found = plan(tmp_path, PLAIN.replace("    columns:", "    where: {memo: {ne: x}}\n    columns:"))
    assert found is not None and found.scope is not None and "IF(" in found.source_row


def test_datetime_into_timestamptz_in_a_zone_with_clock_changes(tmp_path: Path) -> None:
    assert plan(tmp_path, zone=timezone(timedelta(hours=8))) is not None
    found = plan(tmp_path, zone=ZoneInfo("Asia/Shanghai"))  # daylight saving 1986-1991
    assert found is not None and "IF(`booked_at` < '1986-05-04 02:00:00.000000'" in found.source_row


def test_a_target_database_not_in_utf8_is_not_pushed_down(tmp_path: Path) -> None:
    assert plan(tmp_path, encoding="LATIN1") is None


def test_text_keys_are_not_pushed_down(tmp_path: Path) -> None:
    text = PLAIN.replace("source_id: id", "source_id: id\n      memo_key: memo")
    assert plan(tmp_path, text.replace("[channel, source_id]", "[source_id, memo_key]"),
                key=("id", "memo"), target={**TARGET, "memo_key": "bigint"}) is None


def test_offsets() -> None:
    assert fixed_offset(UTC) == timedelta(0)
    assert fixed_offset(ZoneInfo("Etc/UTC")) == timedelta(0)
    assert fixed_offset(timezone(timedelta(hours=-3, minutes=-30))) == timedelta(hours=-3, minutes=-30)
    assert fixed_offset(ZoneInfo("Europe/Berlin")) is None


def test_bucket_spans_of_one_key_column_stay_within_the_range() -> None:
    source = {0: (19, "a"), 1: (20, "b"), 2: (20, "c"), -1: (3, "d")}
    target = {0: (19, "a"), 1: (20, "x"), 2: (20, "c")}
    spans, in_sync, _ = differing_spans(source, target, 20, (-30,), (59,))
    assert spans == [((-30,), (-20,)), ((19,), (39,))]  # DIV truncates: bucket 0 is -19..19
    assert in_sync == 39
    assert differing_spans(source, target, 20, None, None)[0] == [((-40,), (-20,)), ((19,), (39,))]
    assert differing_spans({1: (5, "a")}, {}, 20, (25,), (30,))[0] == [((25,), (30,))]


def test_bucket_spans_of_a_composite_key_bound_the_first_column_inside_the_range() -> None:
    """Buckets of the first column; where the range starts or ends inside a bucket, the span keeps
    the range's own bound over every key column."""
    spans, _, _ = differing_spans({0: (5, "a"), 1: (5, "b"), 2: (5, "c")}, {}, 10, (5, 2), (25, 1))
    assert spans == [((5, 2), (9,)), ((9,), (19,)), ((19,), (25, 1))]
    # a range bound in the bucket before: the first column alone
    assert differing_spans({1: (1, "a")}, {}, 10, (9, 7), (30, 0))[0] == [((9,), (19,))]


def test_a_bound_shorter_than_the_key_bounds_its_first_columns() -> None:
    where, params = range_condition(("a", "b"), (9,), (19, 3))
    assert where == " WHERE ((`a` > %s)) AND ((`a` < %s) OR (`a` = %s AND `b` <= %s))"
    assert params == [9, 19, 19, 3]


def test_buckets_truncate_towards_zero_as_mysql_div() -> None:
    assert [bucket_of(k, 20) for k in (0, 19, 20, 41, -1, -19, -20, -41)] == [0, 0, 1, 2, 0, 0, -1, -2]


def test_keys_set_aside_are_compared_alone_unless_their_bucket_differs() -> None:
    source = {0: (19, "a"), 1: (20, "b"), 2: (20, "c")}
    target = {0: (19, "a"), 1: (20, "b"), 2: (20, "x")}
    aside = [(25,), (45,), (9,), (8,), (9,)]
    spans, in_sync, alone = differing_spans(source, target, 20, None, None, aside=aside)
    assert spans == [((39,), (59,))] and alone == [(8,), (9,), (25,)]  # 45 is in bucket 2, compared with it
    assert in_sync == 39  # the rows the digests of buckets 0 and 1 hold
    aside = [(25, 2), (7, 1)]
    spans, in_sync, alone = differing_spans(source, target, 20, None, None, also={1, 5}, aside=aside)
    assert spans == [((19,), (39,)), ((39,), (59,)), ((99,), (119,))] and alone == [(7, 1)]
    assert in_sync == 19  # the rows of bucket 0 only
