"""`syncd dlq`'s pure parts: selectors, source keys from row images, retry bookkeeping, tables."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.cli.dlq import letter_cells, letter_json, outcome_lines, selector_from_options
from syncd.cli.render import display_width, table_lines
from syncd.model import KeyOutcome, Outcome
from syncd.reconcile.dead_letters import (
    DeadLetterError,
    GroupOutcome,
    group_by_mapping,
    key_from_image,
    key_value,
    keys_of,
    retry_keys,
    retry_mapping,
)
from syncd.reconcile.repair import RepairResult
from syncd.sink.dead_letters import Selector, StoredDeadLetter, where_clause
from syncd.sink.state import row_image_json

CREATED = datetime(2024, 5, 1, 4, 0, 1, tzinfo=UTC)


def letter(letter_id: int, image: dict[str, Any], mapping: str = "shop_orders",
           reason: str = "column status: value '已退款' is not in the map") -> StoredDeadLetter:
    return StoredDeadLetter(letter_id, CREATED, "shop", "orders", mapping, f"id={image.get('id')!r}",
                            "mysql-bin.000003:1234", reason, "pending", None, image)


def stored_image(row: dict[str, Any]) -> dict[str, Any]:
    """A row image as the dead-letter table gives it back (jsonb through row_image_json)."""
    return json.loads(row_image_json(row))


class TestSelector:
    @pytest.mark.parametrize(("letter_id", "mapping", "every"), [
        (None, None, False), (1, "m", False), (1, None, True), (None, "m", True), (1, "m", True),
    ])
    def test_exactly_one_selector_is_required(self, letter_id: int | None, mapping: str | None,
                                              every: bool) -> None:
        with pytest.raises(click.UsageError, match="exactly one of --id N, --mapping NAME or --all"):
            selector_from_options(letter_id, mapping, every)

    def test_id_zero_counts_as_given(self) -> None:
        assert selector_from_options(0, None, False).id == 0

    def test_where_clauses(self) -> None:
        assert where_clause(Selector(id=7)) == ("status = %s AND id = %s", ["pending", 7])
        assert where_clause(Selector(mapping="m"), None) == ("mapping = %s", ["m"])
        assert where_clause(Selector(all=True)) == ("status = %s", ["pending"])
        assert where_clause(Selector(all=True), None) == ("true", [])

    def test_descriptions(self) -> None:
        assert Selector(id=3).describe() == "dead letter 3"
        assert Selector(mapping="m").describe() == "pending dead letters of mapping 'm'"
        assert Selector(all=True).describe() == "pending dead letters"


class TestSourceKeys:
    def test_integer_and_text_keys_come_back_as_they_are(self) -> None:
        image = stored_image({"id": 42, "code": "单号-1", "status": "已退款"})
        assert key_from_image(image, ("id",), {"id": "bigint"}) == (42,)
        assert key_from_image(image, ("code", "id"), {"code": "varchar", "id": "int"}) == ("单号-1", 42)

    @pytest.mark.parametrize(("value", "data_type"), [
        (Decimal("12.50"), "decimal"),
        (datetime(2024, 5, 1, 12, 30, 45, 123000), "datetime"),
        (datetime(2024, 5, 1, 4, 30, 45, tzinfo=UTC), "timestamp"),
        (date(2024, 2, 29), "date"),
        (b"\x00\x01\xfe", "varbinary"),
        (b"\x00" * 16, "binary"),
        (timedelta(hours=-838), "time"),
        (timedelta(hours=1, microseconds=5), "time"),
        (18446744073709551615, "bigint"),
        ("abc", "char"),
    ])
    def test_exact_types_survive_the_row_image(self, value: Any, data_type: str) -> None:
        image = stored_image({"k": value, "other": "x"})
        assert key_from_image(image, ("k",), {"k": data_type.upper()}) == (value,)

    @given(st.decimals(allow_nan=False, allow_infinity=False, places=4),
           st.datetimes(min_value=datetime(1000, 1, 1)), st.integers())
    def test_round_trip_through_the_dead_letter_table(self, amount: Decimal, when: datetime,
                                                      number: int) -> None:
        image = stored_image({"a": amount, "w": when, "n": number})
        types = {"a": "decimal", "w": "datetime", "n": "bigint"}
        assert key_from_image(image, ("n", "a", "w"), types) == (number, amount, when)

    def test_a_key_column_missing_from_the_image_is_named(self) -> None:
        with pytest.raises(DeadLetterError, match="no value for primary key column 'order_no'"):
            key_from_image({"id": 1}, ("id", "order_no"), {})

    def test_a_table_without_primary_key(self) -> None:
        with pytest.raises(DeadLetterError, match="no primary key"):
            key_from_image({"id": 1}, (), {})

    def test_null_in_the_key(self) -> None:
        with pytest.raises(DeadLetterError, match="NULL"):
            key_from_image({"id": None}, ("id",), {"id": "int"})

    def test_unreadable_values_are_errors_not_crashes(self) -> None:
        with pytest.raises(DeadLetterError, match="cannot read datetime key value"):
            key_value("yesterday", "datetime")
        with pytest.raises(DeadLetterError, match="cannot read decimal key value"):
            key_value("1,5", "decimal")

    def test_letters_with_the_same_key_are_retried_together(self) -> None:
        letters = [letter(1, {"id": 7}), letter(2, {"id": 8}), letter(3, {"id": 7}), letter(4, {})]
        outcome = GroupOutcome("shop_orders")
        keys = keys_of(letters, ("id",), {"id": "int"}, outcome)
        assert {k: [x.id for x in v] for k, v in keys.items()} == {(7,): [1, 3], (8,): [2]}
        assert outcome.failing == {4: "the row image has no value for primary key column 'id'"}


class FakeRepair:
    """Repairs keys; keys in `failing` are dead-lettered again with their reason, keys in
    `newer` were changed by the stream meanwhile, keys in `gone` have no source row any more."""

    def __init__(self, failing: dict[tuple[Any, ...], str] | None = None,
                 newer: tuple[tuple[Any, ...], ...] = (), gone: tuple[tuple[Any, ...], ...] = ()) -> None:
        self.failing = failing or {}
        self.newer, self.gone = newer, gone
        self.calls: list[list[tuple[Any, ...]]] = []

    def __call__(self, keys: list[tuple[Any, ...]]) -> RepairResult:
        self.calls.append(list(keys))
        return RepairResult(None, tuple(self._outcome(k) for k in keys), "direct")

    def _outcome(self, key: tuple[Any, ...]) -> KeyOutcome:
        text = f"id={key[0]!r}"
        if key in self.failing:
            return KeyOutcome(key, text, Outcome.DEAD_LETTERED, self.failing[key])
        if key in self.newer:
            return KeyOutcome(key, text, Outcome.NEWER_IN_STREAM)
        return KeyOutcome(key, text, Outcome.SOURCE_GONE if key in self.gone else Outcome.APPLIED)


class TestRetryKeys:
    def test_all_keys_repaired_in_one_call(self) -> None:
        keys = {(7,): [letter(1, {"id": 7}), letter(3, {"id": 7})], (8,): [letter(2, {"id": 8})]}
        repair = FakeRepair(newer=((8,),))
        outcome = GroupOutcome("shop_orders")
        retry_keys(keys, repair, outcome)
        assert repair.calls == [[(7,), (8,)]]
        assert sorted(outcome.retried) == [1, 2, 3] and outcome.failing == {}
        assert outcome.counts == {Outcome.APPLIED: 1, Outcome.NEWER_IN_STREAM: 1}

    def test_each_key_is_decided_by_its_own_outcome_in_one_call(self) -> None:
        keys = {(7,): [letter(1, {"id": 7})], (8,): [letter(2, {"id": 8}), letter(4, {"id": 8})],
                (9,): [letter(3, {"id": 9})]}
        repair = FakeRepair({(8,): "column status: value '拒收' is not in the map"}, gone=((9,),))
        outcome = GroupOutcome("shop_orders")
        retry_keys(keys, repair, outcome)
        assert repair.calls == [[(7,), (8,), (9,)]]
        assert sorted(outcome.retried) == [1, 3]
        assert outcome.failing == {2: "column status: value '拒收' is not in the map",
                                   4: "column status: value '拒收' is not in the map"}
        assert outcome.counts[Outcome.DEAD_LETTERED] == 1 and outcome.counts[Outcome.SOURCE_GONE] == 1

    def test_keys_from_json_match_outcomes_by_their_text(self) -> None:
        """A key read back from a row image (JSON) matches the repair's key of the same text."""
        keys = {(Decimal("1.50"),): [letter(1, {"id": "1.50"})]}
        outcome = GroupOutcome("shop_orders")
        retry_keys(keys, lambda ks: RepairResult(None, (KeyOutcome(("1.50",), "id='1.50'",
                                                                   Outcome.DEAD_LETTERED, "refused"),),
                                                 "stream"), outcome)
        assert outcome.failing == {1: "refused"}

    def test_a_key_the_repair_does_not_report_stays_pending(self) -> None:
        keys = {(7,): [letter(1, {"id": 7})]}
        outcome = GroupOutcome("shop_orders")
        retry_keys(keys, lambda ks: RepairResult(None, (), "stream"), outcome)
        assert outcome.retried == [] and outcome.failing == {1: "the repair reported nothing for this row"}

    def test_a_mapping_that_is_gone_keeps_its_letters_pending(self) -> None:
        letters = [letter(1, {"id": 7}, mapping="old_mapping")]
        outcome = retry_mapping(config=None, plans={}, name="old_mapping", letters=letters)  # type: ignore[arg-type]
        assert outcome.retried == []
        assert "not in the mapping files any more" in outcome.failing[1]

    def test_grouping_by_mapping_keeps_order(self) -> None:
        letters = [letter(1, {"id": 1}, "b"), letter(2, {"id": 2}, "a"), letter(3, {"id": 3}, "b")]
        assert {k: [x.id for x in v] for k, v in group_by_mapping(letters).items()} == {"b": [1, 3], "a": [2]}


class TestOutput:
    def test_outcome_lines(self) -> None:
        outcome = GroupOutcome("shop_orders", letters=3, keys=2, retried=[3, 1],
                               counts=Counter({Outcome.APPLIED: 1, Outcome.DEAD_LETTERED: 1}),
                               failing={2: "column status: value '拒收' is not in the map\nmore"})
        assert outcome_lines(outcome) == [
            "shop_orders: 3 dead letters (2 source rows: 1 applied, 0 removed (source row gone), "
            "0 already changed by the stream, 1 dead-lettered again)",
            "  retried: #1, #3",
            "  still failing #2: column status: value '拒收' is not in the map\\nmore",
        ]
        errored = GroupOutcome("app_orders", letters=1, error="source app: cannot connect")
        assert outcome_lines(errored) == [
            "app_orders: 1 dead letter",
            "  error: source app: cannot connect (these dead letters stay pending)"]

    def test_many_retried_and_failing_letters_are_summed_up(self) -> None:
        retried = [*range(1, 1561), 1600, *range(1700, 1800, 2)]
        failing = {2000 + n: "refused" for n in range(45)}
        lines = outcome_lines(GroupOutcome("shop_orders", letters=1656, retried=retried, failing=failing))
        assert lines[1] == ("  retried: #1-#1560, #1600, " + ", ".join(f"#{n}" for n in range(1700, 1736, 2))
                            + " and 32 more")
        assert len(lines) == 2 + 20 + 1 and lines[-1].startswith("  ... and 25 more still failing")

    def test_table_columns_line_up_with_cjk_text(self) -> None:
        rows = [letter_cells(letter(1, {"id": 1}), False),
                letter_cells(letter(22, {"id": 22}, reason="column 状态: bad"), True)[:7]]
        lines = table_lines(("id", "created_at", "source", "mapping", "row_key", "position", "reason"),
                            rows)
        assert lines[0].startswith("id  created_at")
        starts = {display_width(line[:line.index("mysql-bin")]) for line in lines[1:]}
        assert len(starts) == 1

    def test_letter_cells_and_json(self) -> None:
        item = letter(5, stored_image({"id": 5, "amount": Decimal("1.50")}))
        cells = letter_cells(item, with_status=True)
        assert cells[0] == "5" and cells[-1] == "pending" and cells[4] == "id=5"
        data = letter_json(item)
        assert data["created_at"] == "2024-05-01T04:00:01+00:00"
        assert data["row_image"] == {"id": 5, "amount": "1.50"}
        assert data["position"] == "mysql-bin.000003:1234" and data["resolved_at"] is None


class TestCommandLine:
    @pytest.mark.parametrize("args", [["retry"], ["discard"], ["retry", "--id", "1", "--all"],
                                      ["discard", "--mapping", "m", "--id", "2"]])
    def test_selectors_are_checked_before_anything_is_read(self, args: list[str], tmp_path: Any) -> None:
        from click.testing import CliRunner

        from syncd.cli import main

        result = CliRunner().invoke(main, ["dlq", *args, "--config", str(tmp_path / "missing.yaml")])
        assert result.exit_code == 2
        assert "give exactly one of --id N, --mapping NAME or --all" in result.output

    def test_commands_are_registered(self) -> None:
        from click.testing import CliRunner

        from syncd.cli import main

        result = CliRunner().invoke(main, ["dlq", "--help"])
        assert result.exit_code == 0
        assert {"list", "retry", "discard"} <= set(result.output.split())
        assert "preview" in CliRunner().invoke(main, ["--help"]).output
