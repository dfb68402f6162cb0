"""The pure parts of reconcile: canonical values, chunk checks, diff classification, layouts, reports."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Network
from pathlib import Path
from uuid import UUID

import pytest

from syncd.mapping.plan import compile_mapping
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import ColumnType
from syncd.reconcile import compare
from syncd.reconcile.compare import (
    NAN,
    canonical,
    canonicalize_rows,
    compare_chunk,
    expected_canon,
    key_text,
    stored_canon,
)
from syncd.reconcile.expected import chunk_mapper, map_chunk
from syncd.reconcile.layout import build_layout
from syncd.reconcile.report import MappingReport, as_json, as_text, exit_code
from syncd.source.chunks import after_condition, after_params

SHANGHAI = timezone(timedelta(hours=8))


class TestCanonical:
    def test_decimals_compare_by_value(self) -> None:
        assert canonical(Decimal("1.10")) == canonical(Decimal("1.1"))
        assert hash(canonical(Decimal("1.10"))) == hash(canonical(Decimal("1.1")))
        assert canonical(Decimal("100")) == Decimal("1E+2")
        assert canonical(Decimal("1.1")) != canonical(Decimal("1.2"))

    def test_aware_datetimes_are_instants(self) -> None:
        utc = datetime(2024, 5, 1, 4, 30, tzinfo=UTC)
        local = datetime(2024, 5, 1, 12, 30, tzinfo=SHANGHAI)
        assert canonical(utc) == canonical(local)
        assert canonical(local).tzinfo is UTC

    def test_naive_datetimes_stay_and_never_equal_aware_ones(self) -> None:
        naive = datetime(2024, 5, 1, 4, 30)
        assert canonical(naive) == naive
        assert canonical(naive) != canonical(naive.replace(tzinfo=UTC))

    def test_other_values(self) -> None:
        assert canonical(None) is None
        assert canonical(True) is True
        assert canonical(memoryview(b"ab")) == b"ab"
        assert canonical({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
        assert canonical(float("nan")) == NAN
        assert canonical(Decimal("NaN")) == NAN
        assert canonical("x") == "x"

    @pytest.mark.parametrize(("column", "mapped", "stored"), [
        (ColumnType("amount", "numeric", 2), Decimal("1.1"), Decimal("1.10")),
        (ColumnType("amount", "numeric", 2), Decimal("1.005"), Decimal("1.01")),
        (ColumnType("amount", "numeric", 2), 5, Decimal("5.00")),
        (ColumnType("amount", "numeric", 2), "12.5", Decimal("12.50")),
        (ColumnType("status", "smallint"), "3", 3),
        (ColumnType("status", "integer"), Decimal("3"), 3),
        (ColumnType("note", "text"), 42, "42"),
        (ColumnType("flag", "text"), True, "true"),
        (ColumnType("flag", "boolean"), "yes", True),
        (ColumnType("code", "character", None, 5), "ab", "ab   "),
        (ColumnType("data", "jsonb"), '{"b": 1, "a": 2}', '{"a": 2, "b": 1}'),
        (ColumnType("raw", "bytea"), bytearray(b"x"), b"x"),
        (ColumnType("id", "uuid"), "12345678-1234-5678-1234-567812345678",
         UUID("12345678-1234-5678-1234-567812345678")),
        (ColumnType("at", "timestamp with time zone"), datetime(2024, 5, 1, 12, 30, tzinfo=SHANGHAI),
         datetime(2024, 5, 1, 4, 30, tzinfo=UTC)),
        (ColumnType("at", "timestamp with time zone"), datetime(2024, 5, 1, 4, 30),
         datetime(2024, 5, 1, 4, 30, tzinfo=UTC)),
        (ColumnType("at", "timestamp without time zone"), datetime(2024, 5, 1, 12, 30, tzinfo=SHANGHAI),
         datetime(2024, 5, 1, 4, 30)),
        (ColumnType("day", "date"), datetime(2024, 5, 1, 23, 0), date(2024, 5, 1)),
        (ColumnType("real", "real"), 0.1, 0.10000000149011612),
        (ColumnType("real", "real"), 1.23457, 1.23457),  # psycopg reads a float4 by its shortest text
        (ColumnType("real", "real"), 3.40282e38, 3.40282e38),
        (ColumnType("ip", "inet"), "10.0.0.1", IPv4Address("10.0.0.1")),
        (ColumnType("ip", "inet"), "::ffff:1.2.3.4", IPv6Address("::ffff:1.2.3.4")),
        (ColumnType("ip", "inet"), "10.0.0.0/8", IPv4Interface("10.0.0.0/8")),
        (ColumnType("net", "cidr"), "2001:db8::/32", IPv6Network("2001:db8::/32")),
        (ColumnType("slot", "time without time zone"), timedelta(hours=12, minutes=34, microseconds=780000),
         time(12, 34, 0, 780000)),
        (ColumnType("slot", "time without time zone"), timedelta(0), time(0)),
        (ColumnType("slot", "time without time zone"), timedelta(seconds=86399, microseconds=990000),
         time(23, 59, 59, 990000)),
    ])
    def test_mapped_values_compare_as_the_target_stores_them(self, column: ColumnType, mapped: object,
                                                              stored: object) -> None:
        expected = expected_canon(column, UTC)(mapped)
        read_back = stored_canon(column)
        assert expected == (read_back(stored) if read_back else stored)

    @pytest.mark.parametrize(("source", "stored"), [  # the source's JSON text; PostgreSQL's jsonb text
        ('"abc"', '"abc"'), ("null", "null"), ('""', '""'), ('"null"', '"null"'), ("-0", "0"),
        ("1.0", "1.0"), ("1e2", "100"), ("1E400", "1" + "0" * 400), ("true", "true"),
        ("12345678901234567890.123456789", "12345678901234567890.123456789"),
        ('{"k": 1, "k": 2}', '{"k": 2}'), ('"\\u4e2d 😀"', '"中 😀"'), ("[1.50, 2]", "[1.50, 2]"),
        ('{"b": [1, "x", null], "a": {"c": false}}', '{"a": {"c": false}, "b": [1, "x", null]}'),
    ])
    @pytest.mark.parametrize("kind", ["json", "jsonb"])
    def test_json_compares_by_what_it_says(self, source: str, stored: str, kind: str) -> None:
        """A JSON string or null is not text or SQL NULL; numbers compare by value, as in jsonb."""
        column = ColumnType("data", kind)
        read_back = stored_canon(column)
        assert read_back is not None
        assert expected_canon(column)(source) == read_back(stored)

    @pytest.mark.parametrize(("one", "other"), [
        ('"abc"', "abc"), ("null", '"null"'), ("1", '"1"'), ("[]", "{}"), ("0", "false"), ("1", "1.01"),
        ('{"a": 1}', '{"a": "1"}'), ("[1, 2]", "[2, 1]")])
    def test_different_json_stays_different(self, one: str, other: str) -> None:
        canon = expected_canon(ColumnType("data", "jsonb"))
        assert canon(one) != canon(other)

    def test_canonicalize_rows_is_column_wise_and_keeps_none(self) -> None:
        canons = [expected_canon(ColumnType("a", "smallint")), None,
                  expected_canon(ColumnType("c", "numeric", 1))]
        rows = [("1", object, Decimal("1.26")), (None, None, None), (2, "x", 3)]
        assert canonicalize_rows(rows, canons) == [(1, object, Decimal("1.3")), (None, None, None),
                                                   (2, "x", Decimal("3.0"))]
        assert canonicalize_rows([], canons) == []


class TestChunks:
    COLUMNS = ("status", "amount")

    def test_equal_chunk_has_no_diff(self) -> None:
        rows = {("shop", 1): (1, Decimal("2.00"))}
        assert not compare_chunk(rows, {("shop", 1): (1, Decimal("2"))}, self.COLUMNS)

    def test_diff_classification(self) -> None:
        expected = {("shop", 1): (1, Decimal("1")), ("shop", 2): (2, Decimal("2")),
                    ("shop", 3): (3, Decimal("3")), ("shop", 4): (4, Decimal("4"))}
        actual = {("shop", 1): (1, Decimal("1")), ("shop", 2): (0, Decimal("2")),
                  ("shop", 3): (0, Decimal("9")), ("shop", 9): (1, None), ("shop", 8): (1, None)}
        diff = compare_chunk(expected, actual, self.COLUMNS, ignore=[("shop", 8)])
        assert diff.missing == [("shop", 4)]
        assert diff.extra == [("shop", 9)]
        assert diff.differ == [(("shop", 2), ("status",)), (("shop", 3), ("status", "amount"))]
        assert diff.all_keys() == [("shop", 4), ("shop", 9), ("shop", 2), ("shop", 3)]

    def test_key_text(self) -> None:
        assert key_text(("shop", 42)) == "shop,42"
        assert key_text((date(2024, 1, 2),)) == "2024-01-02"


MAPPING = """
mappings:
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [channel, source_order_id]
    delete: soft
    soft_delete_column: deleted_at
    where: {status: {ne: 已取消}}
    columns:
      channel: {value: shop}
      source_order_id: id
      status: {from: status, map: {待支付: 0, 已支付: 1}}
      amount: {from: amount_text, transform: parse_amount}
      created_at: created_at
"""

TARGET_TYPES = {
    "channel": ColumnType("channel", "text"),
    "source_order_id": ColumnType("source_order_id", "bigint"),
    "status": ColumnType("status", "smallint"),
    "amount": ColumnType("amount", "numeric", 2),
    "created_at": ColumnType("created_at", "timestamp with time zone"),
    "deleted_at": ColumnType("deleted_at", "timestamp with time zone"),
}
SOURCE_TYPES = {"id": "bigint", "status": "varchar", "amount_text": "varchar", "created_at": "datetime",
                "note": "text"}


def compiled(tmp_path: Path, text: str = MAPPING):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    spec = load_mappings([path])[0]
    return compile_mapping(spec, TransformContext(secret=lambda kind, name: "salt", source_timezone=SHANGHAI),
                           "public", {"created_at", "deleted_at"})


class TestLayout:
    def test_copied_integer_key_aligns(self, tmp_path: Path) -> None:
        layout = build_layout(compiled(tmp_path), ("id",), SOURCE_TYPES, TARGET_TYPES)
        assert layout.aligned and layout.mode == "aligned"
        assert layout.slice == {"channel": "shop"}
        assert layout.range_columns == ("source_order_id",)
        assert layout.compared == ("status", "amount", "created_at")
        assert layout.source_columns == ("id", "amount_text", "created_at", "status")
        assert layout.source_key_of_target(("shop", 7)) == (7,)

    def test_text_or_transformed_keys_fall_back_to_a_slice_scan(self, tmp_path: Path) -> None:
        text_key = build_layout(compiled(tmp_path), ("id",), {**SOURCE_TYPES, "id": "varchar"}, TARGET_TYPES)
        assert not text_key.aligned and text_key.mode == "slice-scan"
        assert text_key.source_key_of_target(("shop", "a")) == ("a",)
        hashed = MAPPING.replace("source_order_id: id", "source_order_id: {from: id, transform: to_int}")
        layout = build_layout(compiled(tmp_path, hashed), ("id",), SOURCE_TYPES, TARGET_TYPES)
        assert not layout.aligned
        assert layout.source_key_of_target(("shop", 1)) is None


class TestMapChunk:
    def test_rows_are_mapped_filtered_and_unmappable_rows_kept_apart(self, tmp_path: Path) -> None:
        layout = build_layout(compiled(tmp_path), ("id",), SOURCE_TYPES, TARGET_TYPES)
        canons = [expected_canon(TARGET_TYPES[n]) for n in (*layout.target_key, *layout.compared)]
        at = datetime(2024, 5, 1, 12, 30)
        rows = [
            {"id": 1, "status": "待支付", "amount_text": "1,299.5元", "created_at": at},
            {"id": 2, "status": "已取消", "amount_text": "1元", "created_at": at},
            {"id": 3, "status": "已退款", "amount_text": "1元", "created_at": None},
        ]
        names = ["id", "status", "amount_text", "created_at"]
        tuples = [tuple(r[n] for n in names) for r in rows]
        out = map_chunk(layout, names, tuples, canons, chunk_mapper(layout))
        assert out.rows == {("shop", 1): (0, Decimal("1299.50"), datetime(2024, 5, 1, 4, 30, tzinfo=UTC))}
        assert out.source_of == {("shop", 1): (1,)}
        assert out.ignore == {("shop", 3)}
        assert [(k, "not in the map" in reason) for k, reason in out.unmappable] == [((3,), True)]
        # Only keys: a row whose other columns cannot be mapped still names its target row.
        keys_layout = replace(layout, compared=())
        keys = map_chunk(keys_layout, names, tuples, canons[:2], chunk_mapper(keys_layout, keys_only=True))
        assert keys.rows == {("shop", 1): (), ("shop", 3): ()}


class TestReport:
    def report(self, **counts: object) -> MappingReport:
        report = MappingReport("shop_orders", "shop", "public.orders", ("channel", "source_order_id"), False)
        for name, value in counts.items():
            setattr(report, name, value)
        report.settle()
        return report

    def test_status_and_exit_code(self) -> None:
        assert self.report().status == "in_sync"
        drift = self.report(missing=1, missing_keys=[("shop", 3)])
        assert drift.status == "drift"
        repaired = self.report(repair=True, missing=1, repaired=1)
        assert repaired.status == "repaired"
        assert self.report(error="boom").status == "error"
        assert exit_code([self.report(), repaired]) == 0
        assert exit_code([self.report(), drift]) == 1
        assert exit_code([drift, self.report(error="boom")]) == 2
        explained = self.report(unmappable=1, explained_by_dead_letters=1)
        assert explained.status == "in_sync"
        assert self.report(unmappable=1, unmappable_unexplained=1).status == "drift"

    def test_json_and_text(self) -> None:
        drift = self.report(missing=1, missing_keys=[("shop", 3)], differ=1,
                            differ_rows=[(("shop", 5), ("status",))], rows_compared=10)
        data = json.loads(json.dumps(as_json([drift])))
        assert data["status"] == "drift" and data["exit_code"] == 1
        entry = data["mappings"][0]
        assert entry["missing"] == {"count": 1, "keys": [["shop", 3]]}
        assert entry["differ"] == {"count": 1, "rows": [{"key": ["shop", 5], "columns": ["status"]}]}
        text = as_text([drift])
        assert text.splitlines()[0].split() == [
            "mapping", "source", "status", "rows", "missing", "extra", "differ", "unmappable",
            "unexplained", "explained", "repaired", "seconds"]
        assert "shop_orders: missing in public.orders (channel, source_order_id): shop,3" in text
        assert "shop_orders: differ (channel, source_order_id): shop,5 (status)" in text

    def test_unmappable_rows_without_a_dead_letter_come_first(self) -> None:
        """The rows that make a pass drift are listed before the dead-lettered ones, in both forms."""
        rows = [(f"id={i}", "unknown status") for i in range(1, 31)]
        report = self.report(unmappable=31, unmappable_unexplained=1, explained_by_dead_letters=30,
                             unmappable_rows=[*rows[:25], ("id=40", "bad amount")],
                             unexplained_rows=[("id=40", "bad amount")])
        lines = as_text([report]).splitlines()
        assert lines[1].split()[7:10] == ["31", "1", "30"]
        assert lines[2] == "shop_orders: cannot map, no dead letter id=40: bad amount"
        assert lines[3] == "shop_orders: cannot map, dead-lettered id=1: unknown status"
        assert len([line for line in lines if "cannot map" in line]) == 20
        entry = as_json([report])["mappings"][0]["unmappable"]
        assert entry["unexplained"] == 1
        assert entry["unexplained_rows"] == [{"row_key": "id=40", "reason": "bad amount"}]


class TestKeysetSql:
    def test_composite_keys_are_spelled_as_ranges(self) -> None:
        assert after_condition(["a"]) == "(`a` > %s)"
        assert after_condition(["a", "b"]) == "(`a` > %s) OR (`a` = %s AND `b` > %s)"
        assert after_params(["a", "b"], (1, 2)) == [1, 1, 2]


@pytest.mark.parametrize("text", [
    '"abc"', "null", '""', '"null"', "0", "-0", "1.0", "1e2", "-1.50E-3", "12345678901234567890.123456789",
    "1E400", "NaN", "-Infinity", "true", "false", "[]", "{}", '{"b": [1, "x", null], "a": {"c": false}}',
    '{"k": 1, "k": 2}', '"\\u4e2d\\u6587 😀"', '[1.50, "1.50"]', '{"z": {"y": [{"b": 2, "a": 1.10}]}}',
    '"\\u0000number:5"', '{"\\u0000": 1, "s": "a\\"b\\\\c\\n"}', '{"a": "\\ud800"}',
])
def test_json_text_is_written_as_its_parsed_value_is(text: str) -> None:
    """The fast writing of JSON text (the C encoder) says exactly what the written value says."""
    assert compare._json(text) == compare._json_written(json.loads(text, parse_float=Decimal))
