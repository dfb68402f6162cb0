"""Unit tests for `source_key`: a unique key naming the rows of a table without a primary key.

Parsing and its file:line:col errors, the rule across mappings of one table, the live check of
the named columns against the table's unique indexes (pure part), and the key dead letters and
streamed changes are named by.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.errors import ConfigError, Problem
from syncd.mapping.plan import (
    ChangeContext,
    Mapping,
    compile_mapping,
    dead_letter,
    map_change,
    row_key_text,
    source_key_text,
)
from syncd.mapping.spec import MappingSpec, load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import Op, RowChange
from syncd.source.checks import UniqueIndex, source_key_problem
from syncd.yamlfile import Where

HEAD = """\
mappings:
  - name: legacy_log
    source: shop
    table: legacy_log
    target: legacy_log
    key: log_uuid
"""
COLUMNS = "    columns: {log_uuid: log_uuid, message: message}\n"


def load(tmp_path: Path, text: str) -> list[MappingSpec]:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mappings([path], {"shop"})


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return caught.value.problems


def at(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the nth occurrence of needle in text."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def one_problem(tmp_path: Path, text: str) -> tuple[int, int, str]:
    (problem,) = problems_of(tmp_path, text)
    assert problem.file == str(tmp_path / "m.yaml")
    return problem.line, problem.column, problem.message


class TestParsing:
    def test_a_list_of_columns(self, tmp_path: Path) -> None:
        text = HEAD + "    source_key: [shard, seq]\n" + COLUMNS
        (spec,) = load(tmp_path, text)
        assert spec.source_key == ("shard", "seq")
        assert spec.source_key_where == Where(str(tmp_path / "m.yaml"), *at(text, "[shard"))

    def test_one_column_as_text(self, tmp_path: Path) -> None:
        (spec,) = load(tmp_path, HEAD + "    source_key: log_uuid\n" + COLUMNS)
        assert spec.source_key == ("log_uuid",)

    def test_absent_means_the_primary_key(self, tmp_path: Path) -> None:
        (spec,) = load(tmp_path, HEAD + COLUMNS)
        assert (spec.source_key, spec.source_key_where) == ((), None)

    @pytest.mark.parametrize("value", ["[]", "42", "{a: b}", "[log_uuid, 3]", '""', '[""]', "null"])
    def test_bad_shapes_are_refused_at_the_value(self, tmp_path: Path, value: str) -> None:
        text = HEAD + f"    source_key: {value}\n" + COLUMNS
        line, column = at(text, "source_key: ")
        assert one_problem(tmp_path, text) == (
            line, column + len("source_key: "),
            "mapping 'legacy_log': source_key must be a source column or a list of them "
            "(the columns of a UNIQUE key), e.g. source_key: [log_uuid]")

    def test_a_column_listed_twice(self, tmp_path: Path) -> None:
        text = HEAD + "    source_key: [a, b, a]\n" + COLUMNS
        assert one_problem(tmp_path, text) == (
            *at(text, "a]"), "mapping 'legacy_log': source_key lists 'a' twice")

    def test_a_misspelt_key_gets_a_suggestion(self, tmp_path: Path) -> None:
        text = HEAD + "    source_keys: [log_uuid]\n" + COLUMNS
        assert one_problem(tmp_path, text) == (
            *at(text, "source_keys"),
            "unknown key 'source_keys' in mapping 'legacy_log' (did you mean 'source_key'?)")


FAN_OUT = """\
mappings:
  - name: logs_a
    source: shop
    table: legacy_log
    target: log_a
    key: log_uuid
{first}    columns: {{log_uuid: log_uuid}}
  - name: logs_b
    source: shop
    table: legacy_log
    target: log_b
    key: log_uuid
{second}    columns: {{log_uuid: log_uuid}}
"""


class TestAcrossMappings:
    def test_mappings_of_one_table_share_their_source_key(self, tmp_path: Path) -> None:
        line = "    source_key: [log_uuid]\n"
        specs = load(tmp_path, FAN_OUT.format(first=line, second=line))
        assert [s.source_key for s in specs] == [("log_uuid",), ("log_uuid",)]

    def test_different_source_keys_are_refused_at_the_second(self, tmp_path: Path) -> None:
        text = FAN_OUT.format(first="    source_key: [log_uuid]\n", second="    source_key: [seq]\n")
        assert one_problem(tmp_path, text) == (
            *at(text, "[seq]"),
            "mapping 'logs_b' reads shop.legacy_log like mapping 'logs_a', but names source_key [seq] "
            "where 'logs_a' names [log_uuid]; every mapping of one source table must name the same "
            "source_key (or none)")

    def test_one_with_and_one_without_is_refused_too(self, tmp_path: Path) -> None:
        text = FAN_OUT.format(first="", second="    source_key: log_uuid\n")
        assert one_problem(tmp_path, text) == (
            *at(text, "log_uuid\n", 3),  # after both mappings' `key: log_uuid`
            "mapping 'logs_b' reads shop.legacy_log like mapping 'logs_a', but names source_key "
            "[log_uuid] where 'logs_a' names none (the primary key); every mapping of one source "
            "table must name the same source_key (or none)")

    def test_other_tables_may_differ(self, tmp_path: Path) -> None:
        text = FAN_OUT.format(first="    source_key: [log_uuid]\n", second="").replace(
            "table: legacy_log\n    target: log_b", "table: other\n    target: log_b")
        assert [s.source_key for s in load(tmp_path, text)] == [("log_uuid",), ()]


COLUMN_TYPES = {"shard": "int", "seq": "bigint", "log_uuid": "char", "note": "varchar"}
INDEXES = [
    UniqueIndex("uk_shard_seq", ("shard", "seq"), ()),
    UniqueIndex("uk_uuid", ("log_uuid",), ()),
    UniqueIndex("uk_note", ("note",), ("note",)),
]


class TestLiveCheck:
    @pytest.mark.parametrize("key", [("log_uuid",), ("shard", "seq")])
    def test_a_unique_not_null_key_is_usable(self, key: tuple[str, ...]) -> None:
        assert source_key_problem(key, COLUMN_TYPES, INDEXES) is None

    def test_the_primary_key_is_usable(self) -> None:
        assert source_key_problem(("id",), {"id": "int"}, [UniqueIndex("PRIMARY", ("id",), ())]) is None

    def test_a_missing_column(self) -> None:
        assert source_key_problem(("log_uid",), COLUMN_TYPES, INDEXES) == "the table has no column 'log_uid'"

    def test_columns_of_no_unique_index(self) -> None:
        assert source_key_problem(("seq",), COLUMN_TYPES, INDEXES) == (
            "(seq) is not the PRIMARY KEY or a UNIQUE key of the table, so it may not name one row; "
            "list exactly the columns of one (unique keys: uk_shard_seq (shard, seq); uk_uuid "
            "(log_uuid); uk_note (note))")

    def test_a_table_without_unique_indexes(self) -> None:
        problem = source_key_problem(("seq",), COLUMN_TYPES, [])
        assert problem is not None and problem.endswith("(unique keys: none)")

    def test_a_nullable_unique_key(self) -> None:
        assert source_key_problem(("note",), COLUMN_TYPES, INDEXES) == (
            "column 'note' of unique key uk_note allows NULL, and rows with NULL there are not "
            "unique; make it NOT NULL or name another key")

    def test_the_index_order_is_required(self) -> None:
        assert source_key_problem(("seq", "shard"), COLUMN_TYPES, INDEXES) == (
            "list the columns in the order of unique key uk_shard_seq: [shard, seq] (rows are read "
            "in key order, through that index)")


TCTX = TransformContext(secret=lambda kind, name: "salt", source_timezone=UTC)
CTX = ChangeContext("shop", "mysql-bin.000003:4567", datetime(2024, 5, 1, tzinfo=UTC))


def legacy(tmp_path: Path, source_key: str = "    source_key: [log_uuid]\n") -> Mapping:
    text = HEAD + source_key + "    columns: {log_uuid: log_uuid, level: {from: level, map: {info: 1}}}\n"
    (spec,) = load(tmp_path, text)
    return compile_mapping(spec, TCTX, "public")


class TestRowKeyOfChanges:
    def test_a_streamed_change_without_primary_key_is_named_by_the_source_key(self, tmp_path: Path) -> None:
        """Binlog events of a table without a primary key carry no key columns."""
        mapping = legacy(tmp_path)
        row = {"seq": 7, "log_uuid": "u-1", "level": "debug"}
        change = RowChange("legacy_log", Op.INSERT, None, row)
        (letter,) = map_change(mapping, change, CTX).dead_letters
        assert letter.row_key == "log_uuid='u-1'"

    def test_the_source_key_wins_over_the_primary_key(self, tmp_path: Path) -> None:
        mapping = legacy(tmp_path)
        change = RowChange("legacy_log", Op.DELETE, {"id": 3, "log_uuid": "u-3"}, None, key_columns=("id",))
        assert dead_letter(mapping, change, CTX, "x").row_key == "log_uuid='u-3'"
        assert source_key_text(change) == "id=3"

    def test_without_source_key_the_primary_key_names_it(self, tmp_path: Path) -> None:
        mapping = legacy(tmp_path, source_key="")
        change = RowChange("legacy_log", Op.DELETE, {"id": 3, "log_uuid": "u-3"}, None, key_columns=("id",))
        assert dead_letter(mapping, change, CTX, "x").row_key == "id=3"

    def test_the_source_key_is_a_source_column_of_the_mapping(self, tmp_path: Path) -> None:
        """A schema change dropping a key column pauses the mapping like a mapped column would."""
        text = HEAD + "    source_key: [shard, seq]\n" + COLUMNS
        (spec,) = load(tmp_path, text)
        assert {"shard", "seq"} <= compile_mapping(spec, TCTX, "public").source_columns


KEY_VALUES = st.one_of(st.integers(-2**63, 2**64 - 1), st.text(max_size=8),
                       st.decimals(allow_nan=False, allow_infinity=False, places=2), st.dates(),
                       st.datetimes(), st.binary(max_size=4))


@pytest.fixture(scope="module")
def both_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Mapping]:
    """The legacy mapping with (True) and without (False) a `source_key`."""
    return {True: legacy(tmp_path_factory.mktemp("with"), source_key="    source_key: [log_uuid, seq]\n"),
            False: legacy(tmp_path_factory.mktemp("without"), source_key="")}


class TestOneRowKeyForStreamAndReconcile:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(by_source_key=st.booleans(), key=st.tuples(KEY_VALUES, KEY_VALUES), op=st.sampled_from(list(Op)))
    def test_the_key_a_dead_letter_is_stored_under_is_the_key_reconcile_looks_up(
            self, both_keys: dict[bool, Mapping], by_source_key: bool, key: tuple[object, object],
            op: Op) -> None:
        """The stream names a dead letter by `dead_letter(...).row_key`; reconcile and repairs find
        it by `row_key_text(source key columns, values read by a SELECT)`: one text, any values."""
        mapping = both_keys[by_source_key]
        columns = ("log_uuid", "seq") if by_source_key else ("id", "shard")
        row = {"id": key[0], "shard": key[1], "log_uuid": key[0], "seq": key[1], "level": "unmapped"}
        before, after = (None, row) if op is Op.INSERT else (row, None if op is Op.DELETE else row)
        change = RowChange("legacy_log", op, before, after, key_columns=("id", "shard"))
        looked_up = row_key_text(mapping.spec.source_key or ("id", "shard"), key)
        assert dead_letter(mapping, change, CTX, "x").row_key == looked_up
        assert looked_up == ",".join(f"{c}={v!r}" for c, v in zip(columns, key, strict=True))
