"""`syncd preview`'s pure parts: mapping rows, the JSON form, and the human table (CJK-aligned)."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from syncd.cli.preview import records_json_text, render_records
from syncd.cli.render import cut, display_width, pad
from syncd.mapping.plan import Mapping, compile_mapping
from syncd.mapping.preview import (
    DEAD_LETTER,
    FILTERED,
    MAPPED,
    SourceRows,
    condition_text,
    filter_reason,
    preview_rows,
    show_value,
)
from syncd.mapping.spec import load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import json_value
from syncd.source.snapshot import select_statement

NOW = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC)

MAPPING = """
mappings:
  - name: shop_orders
    source: shop
    table: orders
    target: orders
    key: [channel, source_order_id]
    delete: soft
    soft_delete_column: deleted_at
    commit_time_column: synced_at
    where:
      is_test: 0
      amount_fen: {ge: 100}
    columns:
      channel: {value: shop}
      source_order_id: id
      买家: {from: buyer, transform: [strip, {mask: {keep_first: 1}}]}
      status: {from: status, map: {待支付: 0, 已支付: 1}}
      amount: {from: amount_fen, transform: fen_to_yuan}
      created_at: created_at
"""


def compile_text(tmp_path: Path, text: str) -> Mapping:
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    spec = load_mappings([path], {"shop"})[0]
    ctx = TransformContext(secret=lambda kind, name: "salt", source_timezone=timezone(timedelta(hours=8)))
    return compile_mapping(spec, ctx, "public", aware_columns={"created_at", "synced_at", "deleted_at"})


@pytest.fixture
def mapping(tmp_path: Path) -> Mapping:
    return compile_text(tmp_path, MAPPING)


def row(order_id: int, **values: object) -> dict[str, object]:
    base: dict[str, object] = {"id": order_id, "buyer": " 张三丰 ", "status": "已支付", "amount_fen": 129950,
                               "is_test": 0, "created_at": datetime(2024, 5, 1, 12, 30, 45)}
    base.update(values)
    return base


def preview(mapping: Mapping, *rows: dict[str, object]) -> list:
    return preview_rows(mapping, SourceRows(("id",), list(rows), []), "shop", now=NOW)


class TestMappingRows:
    def test_a_mapped_row_shows_the_full_target_row_in_mapping_order(self, mapping: Mapping) -> None:
        [record] = preview(mapping, row(1))
        assert record.status == MAPPED and record.reason is None and record.key == "id=1"
        assert record.target == {
            "channel": "shop", "source_order_id": 1, "买家": "张**", "status": 1,
            "amount": Decimal("1299.50"),
            "created_at": datetime(2024, 5, 1, 12, 30, 45, tzinfo=timezone(timedelta(hours=8))),
            "synced_at": NOW, "deleted_at": None,
        }
        assert list(record.target)[:2] == ["channel", "source_order_id"]

    def test_an_unmapped_value_shows_the_dead_letter_reason(self, mapping: Mapping) -> None:
        [record] = preview(mapping, row(2, status="已退款"))
        assert record.status == DEAD_LETTER and record.target is None
        assert record.reason == "column status: value '已退款' is not in the map"

    def test_a_transform_error_shows_the_transform_and_value(self, mapping: Mapping) -> None:
        [record] = preview(mapping, row(3, amount_fen=Decimal("150.5")))
        assert record.status == DEAD_LETTER
        assert record.reason is not None
        assert record.reason.startswith("column amount: fen_to_yuan:") and "150.5" in record.reason

    def test_a_filtered_row_names_each_failing_condition_and_its_value(self, mapping: Mapping) -> None:
        [one, both] = preview(mapping, row(4, is_test=1), row(5, is_test="1", amount_fen=99))
        assert one.status == FILTERED and one.target is None
        assert one.reason == "filtered out by where: is_test: 0 (is_test is 1)"
        assert both.reason == ("filtered out by where: is_test: 0 (is_test is '1'); "
                               "amount_fen: {ge: 100} (amount_fen is 99)")

    def test_a_filter_that_cannot_compare_is_a_dead_letter_like_in_the_pipeline(self,
                                                                                mapping: Mapping) -> None:
        [record] = preview(mapping, row(6, amount_fen="lots"))
        assert record.status == DEAD_LETTER
        assert record.reason is not None and "where.amount_fen: cannot compare" in record.reason

    def test_a_missing_source_column_is_a_dead_letter(self, mapping: Mapping) -> None:
        image = row(7)
        del image["buyer"]
        [record] = preview(mapping, image)
        assert record.status == DEAD_LETTER and "'buyer'" in str(record.reason)

    def test_zero_dates_are_reported_as_warnings(self, mapping: Mapping) -> None:
        records = preview_rows(mapping, SourceRows(("id",), [row(8, created_at=None)], [("created_at",)]),
                               "shop", now=NOW)
        assert records[0].status == MAPPED
        assert records[0].warnings == ("created_at: a zero date, read as NULL",)

    def test_zero_dates_in_columns_the_mapping_does_not_read_are_not_warned_about(
            self, mapping: Mapping) -> None:
        image = {**row(8), "shipped_at": None}
        records = preview_rows(mapping, SourceRows(("id",), [image], [("shipped_at",)]), "shop", now=NOW)
        assert records[0].warnings == ()

    def test_composite_source_keys_name_every_column(self, mapping: Mapping) -> None:
        [record] = preview_rows(mapping, SourceRows(("id", "is_test"), [row(9)], []), "shop", now=NOW)
        assert record.key == "id=9,is_test=0"


class TestConditionText:
    @pytest.mark.parametrize(("yaml_text", "expected"), [
        ("is_test: 0", "is_test: 0"),
        ("deleted: null", "deleted: null"),
        ("status: {in: [已支付, 已发货]}", "status: {in: [已支付, 已发货]}"),
        ("amount: {ge: 100}", "amount: {ge: 100}"),
        ("remark: {is_null: false}", "remark: {is_null: false}"),
        ("flag: {ne: true}", "flag: {ne: true}"),
    ])
    def test_conditions_read_back_as_yaml(self, tmp_path: Path, yaml_text: str, expected: str) -> None:
        text = MAPPING.replace("      is_test: 0\n      amount_fen: {ge: 100}\n", f"      {yaml_text}\n")
        spec = compile_text(tmp_path, text).spec
        assert condition_text(spec.conditions[0]) == expected

    def test_filter_reason_without_failing_conditions(self, mapping: Mapping) -> None:
        assert filter_reason(mapping.spec, row(1)) == "filtered out by where: the row is not in scope"


class TestJson:
    def test_values_are_json_without_losing_exactness(self) -> None:
        value = {
            "amount": Decimal("1299.50"), "tiny": Decimal("1E-30"), "n": 12345678901234567890,
            "aware": datetime(2024, 5, 1, 4, 30, 45, 123000, tzinfo=UTC),
            "naive": datetime(2024, 5, 1, 12, 30), "day": date(2024, 2, 29), "clock": time(8, 5),
            "duration": timedelta(hours=-1, seconds=30), "raw": b"\x00\xff", "flag": True,
            "none": None, "doc": {"a": [1, Decimal("2.5")]}, "tags": {"b", "a"}, "ratio": 0.5,
            "nan": float("nan"), "text": "中文😀",
        }
        assert json_value(value) == {
            "amount": "1299.50", "tiny": "1E-30", "n": 12345678901234567890,
            "aware": "2024-05-01T04:30:45.123000+00:00", "naive": "2024-05-01T12:30:00",
            "day": "2024-02-29", "clock": "08:05:00", "duration": -3570.0, "raw": "\\x00ff",
            "flag": True, "none": None, "doc": {"a": [1, "2.5"]}, "tags": ["a", "b"], "ratio": 0.5,
            "nan": "nan", "text": "中文😀",
        }

    def test_records_json_is_a_list_scripts_can_read(self, mapping: Mapping) -> None:
        records = preview(mapping, row(1), row(2, status="已退款"), row(3, is_test=1))
        data = json.loads(records_json_text(records))
        assert [r["status"] for r in data] == ["mapped", "dead_letter", "filtered"]
        assert set(data[0]) == {"key", "source", "target", "status", "reason", "warnings"}
        assert data[0]["source"]["buyer"] == " 张三丰 "
        assert data[0]["target"]["amount"] == "1299.50"
        assert data[0]["target"]["created_at"] == "2024-05-01T12:30:45+08:00"
        assert data[1]["target"] is None and "已退款" in data[1]["reason"]
        assert data[2]["reason"].startswith("filtered out by where:")
        assert "\\u5f20" not in records_json_text(records)  # CJK stays readable


class TestHumanOutput:
    def test_display_width_counts_wide_characters_twice(self) -> None:
        assert display_width("abc") == 3
        assert display_width("张三") == 4
        assert display_width("ＡＢ") == 4            # full-width letters
        assert display_width("e\u0301") == 1          # e + combining acute accent
        assert display_width("😀") == 2
        assert pad("张三", 6) == "张三  "
        assert display_width(pad("已支付x", 10)) == 10

    def test_cut_keeps_within_the_width_and_marks_the_cut(self) -> None:
        assert cut("short", 10) == "short"
        assert cut("张三丰张三丰", 7) == "张三丰…"
        assert display_width(cut("张三丰张三丰", 7)) <= 7
        assert cut("abcdefgh", 5) == "abcd…"

    @pytest.mark.parametrize(("value", "shown"), [
        (None, "NULL"), ("", "''"), (" 1 ", "' 1 '"), (1, "1"), (Decimal("1.50"), "1.50"),
        ("a\nb\tc", "'a\\nb\\tc'"), (b"\x01\xab", "0x01ab"), (True, "true"),
        (datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "2024-05-01 12:00:00+00:00"),
        ({"城市": "上海"}, '{"城市": "上海"}'), ("已支付", "'已支付'"),
        ("A\x81\x9f\x7fé", "'A\\x81\\x9f\\x7fé'"),  # C1 controls (latin1 0x80-0x9F) stay visible
        (-timedelta(hours=838, minutes=59, seconds=59), "-838:59:59"),  # a TIME as MySQL prints it
        (-timedelta(milliseconds=1), "-00:00:00.001"),
        (timedelta(hours=1, microseconds=500000), "01:00:00.5"),
    ])
    def test_values_are_shown_so_that_null_text_and_numbers_differ(self, value: object,
                                                                   shown: str) -> None:
        assert show_value(value) == shown

    def test_each_record_shows_source_then_target_or_reason_aligned(self, mapping: Mapping) -> None:
        records = preview(mapping, row(1), row(2, status="已退款"), row(3, is_test=1))
        lines = render_records(mapping, "shop", records)
        text = "\n".join(lines)
        assert lines[0] == "mapping shop_orders: shop.orders -> public.orders"
        assert "[1] id=1: mapped" in text
        assert "[2] id=2: dead letter" in text
        assert "  dead letter: column status: value '已退款' is not in the map" in text
        assert "[3] id=3: filtered out" in text
        assert "  filtered out by where: is_test: 0 (is_test is 1)" in text
        assert "  " not in lines  # a mapped row has no reason line
        assert lines[-1].startswith("3 source rows: 1 mapped, 1 dead letter, 1 filtered out. "
                                    "Nothing was written.")
        assert "synced_at shows the current time" in lines[-1]
        target_start = lines.index("  target public.orders")
        block = lines[target_start + 1:target_start + 9]
        # values line up although the column 买家 is two wide characters
        value_columns = {display_width(line[:re.match(r"    \S+ +", line).end()]) for line in block}
        assert len(value_columns) == 1, block
        assert any(line.startswith("    买家") and line.endswith("'张**'") for line in block)

    def test_values_never_break_the_layout(self, mapping: Mapping) -> None:
        records = preview(mapping, row(1, buyer="x" * 500 + "\n" + "y"))
        lines = render_records(mapping, "shop", records)
        source_line = next(line for line in lines if line.lstrip().startswith("buyer"))
        assert "\n" not in source_line and source_line.endswith("…")
        assert display_width(source_line) < 130


class TestSelect:
    def test_the_operators_condition_is_parenthesised_and_rows_come_in_key_order(self) -> None:
        assert select_statement("orders", ("id",), "status = '退款中' OR id = 1", 20) == (
            "SELECT * FROM `orders` WHERE (status = '退款中' OR id = 1) ORDER BY `id` LIMIT 20")

    def test_percent_signs_stay_as_typed_and_names_are_quoted(self) -> None:
        """The statement is a PyMySQL format string: formatted, every `%` is as typed."""
        statement = select_statement("we`ird%", ("a", "50%s"), "name LIKE '张%'", 5)
        assert statement % () == (
            "SELECT * FROM `we``ird%` WHERE (name LIKE '张%') ORDER BY `a`, `50%s` LIMIT 5")

    def test_no_where_no_key(self) -> None:
        assert select_statement("t", (), None, 1) == "SELECT * FROM `t` LIMIT 1"
        assert select_statement("t", (), "   ", 1) == "SELECT * FROM `t` LIMIT 1"

    def test_every_column_is_named_so_invisible_ones_are_read_too(self) -> None:
        assert select_statement("t", ("id",), None, 3, ("id", "hidden`")) == (
            "SELECT `id`, `hidden``` FROM `t` ORDER BY `id` LIMIT 3")
