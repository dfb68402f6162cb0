"""Unit tests for syncd.mapping.spec: parsing mapping YAML and every static error, with positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.errors import ConfigError, Problem
from syncd.mapping.spec import (
    NO_VALUE,
    ColumnSpec,
    Condition,
    MappingSpec,
    TransformStep,
    load_mappings,
    mapping_files,
)
from syncd.yamlfile import Checker, Where

ISSUE_MAPPING = """\
mappings:
  - name: shop_orders
    source: shop
    table: orders                  # table in the source's database
    target: orders                 # table in target.schema
    key: [channel, source_order_id]
    delete: soft                   # hard (default) | soft
    soft_delete_column: deleted_at
    columns:
      channel: {value: shop}
      source_order_id: id
      order_no: order_no
      buyer_phone: {from: phone, transform: mask_phone}      # 13812345678 -> 138****5678
      status:
        from: status
        map: {待支付: 0, 已支付: 1, 已发货: 2, 已完成: 3, 已取消: 4}
      amount: {from: amount_text, transform: parse_amount}   # "1,299.50元" -> 1299.50
      created_at: created_at
"""

HEAD = """\
mappings:
  - name: m
    source: shop
    table: orders
    target: orders
    key: id
"""
"""Lines 1-6 of most documents below; line 7 onwards varies."""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, source_names: set[str] | None = None) -> list[MappingSpec]:
    return load_mappings([write(tmp_path, "m.yaml", text)], source_names)


def problems_of(tmp_path: Path, text: str, source_names: set[str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, source_names)
    return caught.value.problems


def at(text: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the nth occurrence of needle in text: where a problem must point."""
    index = -1
    for _ in range(nth):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def one_problem(tmp_path: Path, text: str) -> tuple[int, int, str]:
    """The only problem of a document, as (line, column, message); checks its file too."""
    (problem,) = problems_of(tmp_path, text)
    assert problem.file == str(tmp_path / "m.yaml")
    return problem.line, problem.column, problem.message


class TestIssueMapping:
    def test_parses_exactly(self, tmp_path: Path) -> None:
        """The issue's shop_orders mapping parses into exactly these specs and positions."""
        (spec,) = load(tmp_path, ISSUE_MAPPING, {"shop", "app"})
        f = str(tmp_path / "m.yaml")
        assert (spec.name, spec.source) == ("shop_orders", "shop")
        assert (spec.table, spec.target) == ("orders", "orders")
        assert spec.where == Where(f, 2, 5)
        assert spec.target_schema is None
        assert spec.key == ("channel", "source_order_id")
        assert (spec.delete, spec.soft_delete_column, spec.commit_time_column) == ("soft", "deleted_at", None)
        assert spec.conditions == ()
        assert at(ISSUE_MAPPING, "parse_amount}") == (17, 46)

        def w(needle: str, nth: int = 1) -> Where:
            return Where(f, *at(ISSUE_MAPPING, needle, nth))

        assert spec.columns == (
            ColumnSpec("channel", w("{value: shop}"), constant="shop"),
            ColumnSpec("source_order_id", w("id\n"), sources=("id",)),
            ColumnSpec("order_no", w("order_no", 2), sources=("order_no",)),
            ColumnSpec("buyer_phone", w("{from: phone"), sources=("phone",),
                       transforms=(TransformStep("mask_phone", {}, w("mask_phone}")),)),
            ColumnSpec("status", w("from: status"), sources=("status",),
                       value_map={"待支付": 0, "已支付": 1, "已发货": 2, "已完成": 3, "已取消": 4},
                       value_map_where=w("{待支付")),
            ColumnSpec("amount", w("{from: amount_text"), sources=("amount_text",),
                       transforms=(TransformStep("parse_amount", {}, w("parse_amount}")),)),
            ColumnSpec("created_at", w("created_at\n"), sources=("created_at",)),
        )

    def test_helpers(self, tmp_path: Path) -> None:
        """column(), is_constant and slice_values describe the parsed mapping."""
        (spec,) = load(tmp_path, ISSUE_MAPPING)
        channel = spec.column("channel")
        assert channel is not None and channel.is_constant
        assert spec.column("status") is not None and not spec.column("status").is_constant  # type: ignore[union-attr]
        assert spec.column("nope") is None
        assert spec.slice_values() == {"channel": "shop"}
        assert spec.columns[1].constant is NO_VALUE and spec.columns[1].default is NO_VALUE

    def test_full_feature_mapping(self, tmp_path: Path) -> None:
        """Optional keys, filters, transform arguments and policies parse into their fields."""
        text = HEAD + """\
    target_schema: sales
    commit_time_column: synced_at
    where:
      is_test: 0
      deleted: null
      status: {in: [已支付, 已发货]}
      amount_fen: {ge: 100}
    columns:
      id: id
      name: {from: name, transform: [strip, {mask: {keep_first: 1}}]}
      day: {from: day_text, transform: {parse_date: "%Y-%m-%d"}}
      display: {from: [first, last], transform: {concat: {sep: " "}}}
      st: {from: st, map: {10: 0, 20: 1}, default: 9}
      kept: {from: k, map: {a: 1}, on_unmapped: keep}
      nulled: {from: n, map: {a: 1}, on_unmapped: null}
"""
        (spec,) = load(tmp_path, text)
        f = str(tmp_path / "m.yaml")
        assert (spec.target_schema, spec.commit_time_column, spec.delete) == ("sales", "synced_at", "hard")
        assert spec.conditions == (
            Condition("is_test", "eq", 0, Where(f, *at(text, "0\n"))),
            Condition("deleted", "eq", None, Where(f, *at(text, "null\n"))),
            Condition("status", "in", ["已支付", "已发货"], Where(f, *at(text, "{in:"))),
            Condition("amount_fen", "ge", 100, Where(f, *at(text, "{ge:"))),
        )
        cols = {c.target: c for c in spec.columns}
        assert [(s.name, s.args) for s in cols["name"].transforms] == [
            ("strip", {}), ("mask", {"keep_first": 1})]
        assert cols["name"].transforms[1].where == Where(f, *at(text, "{mask:"))
        assert [(s.name, s.args) for s in cols["day"].transforms] == [("parse_date", {"format": "%Y-%m-%d"})]
        assert cols["display"].sources == ("first", "last")
        assert [(s.name, s.args) for s in cols["display"].transforms] == [("concat", {"sep": " "})]
        assert cols["st"].value_map == {10: 0, 20: 1}
        assert (cols["st"].on_unmapped, cols["st"].default) == ("default", 9)
        assert cols["kept"].on_unmapped == "keep"
        assert cols["nulled"].on_unmapped == "null"


class TestRequiredAndUnknownKeys:
    def test_missing_required_keys_are_each_reported_at_the_mapping(self, tmp_path: Path) -> None:
        """A mapping with only a name lacks source, table, target, key and columns."""
        problems = problems_of(tmp_path, "mappings:\n  - name: lonely\n")
        assert [(p.line, p.column) for p in problems] == [(2, 5)] * 5
        assert [p.message for p in problems] == [
            f"mapping 'lonely' is missing required key {k!r}"
            for k in ("source", "table", "target", "key", "columns")
        ]

    def test_unknown_mapping_key_with_suggestion(self, tmp_path: Path) -> None:
        """A misspelt mapping key is reported at the key with a did-you-mean."""
        text = HEAD + "    soft_delete_colum: gone\n    columns: {id: id}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "soft_delete_colum"),
            "unknown key 'soft_delete_colum' in mapping 'm' (did you mean 'soft_delete_column'?)")

    def test_unknown_column_key_trasform(self, tmp_path: Path) -> None:
        """`trasform` in a column is reported at the key with 'did you mean transform'."""
        text = HEAD + "    columns:\n      id: id\n      phone: {from: phone, trasform: mask_phone}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "trasform"),
            "unknown key 'trasform' in mapping 'm': column 'phone' (did you mean 'transform'?)")

    def test_unknown_top_level_key(self, tmp_path: Path) -> None:
        """Only `mappings:` may stand at the top of a mapping file."""
        text = "mapings: []\n"
        problems = problems_of(tmp_path, text)
        assert [(p.line, p.column, p.message) for p in problems] == [
            (1, 1, "unknown key 'mapings' in a mapping file (did you mean 'mappings'?)"),
            (1, 1, "a mapping file needs a top-level 'mappings:' list"),
        ]

    def test_mappings_must_be_a_list(self, tmp_path: Path) -> None:
        """`mappings:` holding a mapping is reported at its value."""
        assert one_problem(tmp_path, "mappings:\n  name: m\n") == (
            2, 3, "a mapping file needs a top-level 'mappings:' list")

    def test_name_must_be_text(self, tmp_path: Path) -> None:
        """A numeric name is reported instead of silently becoming '?'."""
        text = HEAD.replace("name: m", "name: 2024") + "    columns: {id: id}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "2024")
        assert "name must be text, got int 2024" in message

    def test_unknown_source(self, tmp_path: Path) -> None:
        """A source config.yaml does not define is reported with a suggestion."""
        text = HEAD.replace("source: shop", "source: shpo") + "    columns: {id: id}\n"
        (problem,) = problems_of(tmp_path, text, {"shop", "app"})
        assert (problem.line, problem.column) == at(text, "shpo")
        assert problem.message == ("mapping 'm': unknown source 'shpo' (did you mean 'shop'?); "
                                   "config.yaml defines ['app', 'shop']")

    def test_every_problem_of_a_file_at_once(self, tmp_path: Path) -> None:
        """Problems in several mappings of one file all come out of one load."""
        text = HEAD + "    columns: {id: id, x: {from: a, value: 1}}\n" + """\
  - name: n
    source: shop
    table: t
    target: t2
    key: id
    delete: sometimes
    columns: {id: {from: id, transform: nope}}
"""
        problems = problems_of(tmp_path, text)
        assert [(p.line, p.column) for p in problems] == [
            at(text, "{from: a"), at(text, "nope"), at(text, "sometimes")]


class TestColumns:
    def test_from_and_value_both(self, tmp_path: Path) -> None:
        """A column with both `from` and `value` is reported at the column."""
        text = HEAD + "    columns:\n      id: id\n      x: {from: a, value: 1}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "{from: a"),
            "mapping 'm': column 'x': give exactly one of 'from' (source column) or 'value' (constant)")

    def test_from_and_value_neither(self, tmp_path: Path) -> None:
        """A column with neither `from` nor `value` is reported at the column."""
        text = HEAD + "    columns:\n      id: id\n      x:\n        map: {a: 1}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "map:")
        assert "give exactly one of 'from'" in message

    def test_constant_takes_no_other_keys(self, tmp_path: Path) -> None:
        """`value` with a transform is reported at the extra key."""
        text = HEAD + "    columns:\n      id: id\n      x: {value: 1, transform: strip}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "transform"), "mapping 'm': column 'x': a constant 'value' takes no other keys")

    def test_column_must_be_name_or_mapping(self, tmp_path: Path) -> None:
        """A number as a column spec is reported at the value."""
        text = HEAD + "    columns:\n      id: id\n      x: 5\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "5\n"), "mapping 'm': column 'x' must be a mapping (key: value), got int 5")

    def test_empty_columns(self, tmp_path: Path) -> None:
        """An empty `columns:` is reported (and key columns are not then reported missing)."""
        text = HEAD + "    columns: {}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "{}"), "mapping 'm': columns must map at least one target column")

    def test_unknown_transform(self, tmp_path: Path) -> None:
        """An unknown transform name is reported at the name with a suggestion."""
        text = HEAD + "    columns:\n      id: id\n      phone: {from: phone, transform: mask_phon}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "mask_phon}"),
            "mapping 'm': column 'phone': unknown transform 'mask_phon' (did you mean 'mask_phone'?)")

    def test_unknown_transform_in_a_list_is_placed_at_its_item(self, tmp_path: Path) -> None:
        """In a transform list, the unknown one is pointed at, not the list."""
        text = HEAD + "    columns:\n      id: id\n      a:\n        from: a\n" \
                      "        transform:\n          - strip\n          - {pars_amount: {scale: 2}}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "{pars_amount")
        assert "unknown transform 'pars_amount' (did you mean 'parse_amount'?)" in message

    def test_transform_with_two_names_is_refused(self, tmp_path: Path) -> None:
        """A transform item is one name or one {name: args}."""
        text = HEAD + "    columns:\n      id: id\n      a: {from: a, transform: {strip: ~, lower: ~}}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "{strip")
        assert "a transform is a name or {name: arguments}" in message

    def test_several_sources_need_a_combining_transform(self, tmp_path: Path) -> None:
        """`from: [a, b]` with no transform is reported at `from`."""
        text = HEAD + "    columns:\n      id: id\n      ab: {from: [a, b]}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "from"),
            "mapping 'm': column 'ab': several source columns need a combining transform first "
            "(coalesce or concat)")

    def test_several_sources_with_a_plain_transform_first(self, tmp_path: Path) -> None:
        """`from: [a, b]` starting with strip is reported at the strip step."""
        text = HEAD + "    columns:\n      id: id\n      ab: {from: [a, b], transform: strip}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "strip")
        assert "need a combining transform first" in message

    def test_coalesce_not_first(self, tmp_path: Path) -> None:
        """coalesce after another step is reported at coalesce, as well as the wrong first step."""
        text = HEAD + "    columns:\n      id: id\n      ab: {from: [a, b], transform: [strip, coalesce]}\n"
        problems = problems_of(tmp_path, text)
        assert [(p.line, p.column) for p in problems] == [at(text, "strip"), at(text, "coalesce")]
        assert "need a combining transform first" in problems[0].message
        assert "coalesce combines several source columns; use it first" in problems[1].message

    def test_concat_with_one_source(self, tmp_path: Path) -> None:
        """concat over a single source column is refused."""
        text = HEAD + "    columns:\n      id: id\n      a: {from: a, transform: concat}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "concat")
        assert "concat combines several source columns" in message

    def test_bad_from(self, tmp_path: Path) -> None:
        """`from` must be a name or a non-empty list of names."""
        text = HEAD + "    columns:\n      id: id\n      a: {from: []}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "[]"), "mapping 'm': column 'a': 'from' must be a source column or a list of them")


class TestKey:
    def test_key_column_not_among_columns(self, tmp_path: Path) -> None:
        """A key column that is not mapped is reported at its list item with a suggestion."""
        text = HEAD.replace("key: id", "key: [id, chanel]") + "    columns:\n      id: id\n" \
            "      channel: {value: shop}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "chanel"), "mapping 'm': key column 'chanel' is not among the mapped columns "
            "(did you mean 'channel'?)")

    def test_single_key_not_among_columns(self, tmp_path: Path) -> None:
        """A one-name key that is not mapped is reported at the key's value."""
        text = HEAD.replace("key: id", "key: uid") + "    columns:\n      id: id\n"
        line, column, _ = one_problem(tmp_path, text)
        assert (line, column) == at(text, "uid")

    def test_key_of_a_broken_column_is_not_reported_again(self, tmp_path: Path) -> None:
        """A key column whose own spec is wrong gets only that column's problem."""
        text = HEAD + "    columns:\n      name: name\n      id: {from: id, value: 1}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "{from: id")
        assert "give exactly one of" in message

    def test_key_must_be_names(self, tmp_path: Path) -> None:
        """An empty key list is refused at the key's value."""
        text = HEAD.replace("key: id", "key: []") + "    columns:\n      id: id\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "[]"), "mapping 'm': key must be a target column or a list of them")


class TestDelete:
    def test_soft_without_column(self, tmp_path: Path) -> None:
        """delete: soft needs soft_delete_column; reported at the delete key."""
        text = HEAD + "    delete: soft\n    columns: {id: id}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "delete"), "mapping 'm': delete: soft needs soft_delete_column")

    def test_column_without_soft(self, tmp_path: Path) -> None:
        """soft_delete_column with a hard delete is reported at soft_delete_column."""
        text = HEAD + "    soft_delete_column: deleted_at\n    columns: {id: id}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "soft_delete_column"), "mapping 'm': soft_delete_column is only used with delete: soft")

    def test_unknown_delete_mode(self, tmp_path: Path) -> None:
        """delete must be hard or soft."""
        text = HEAD + "    delete: never\n    columns: {id: id}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "never"), "mapping 'm': delete must be 'hard' or 'soft', got 'never'")


class TestValueMaps:
    def test_invalid_on_unmapped_with_suggestion(self, tmp_path: Path) -> None:
        """An unknown policy is reported at its value, with a did-you-mean."""
        text = HEAD + "    columns:\n      id: id\n      s: {from: s, map: {a: 1}, on_unmapped: kep}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "kep}")
        assert message.endswith("got 'kep' (did you mean 'keep'?)")

    def test_default_and_on_unmapped_both(self, tmp_path: Path) -> None:
        """default and on_unmapped together are reported at default."""
        text = HEAD + "    columns:\n      id: id\n" \
            "      s: {from: s, map: {a: 1}, on_unmapped: null, default: 9}\n"
        assert one_problem(tmp_path, text) == (
            *at(text, "default"), "mapping 'm': column 's': give on_unmapped or default, not both")

    @pytest.mark.parametrize("extra", ["on_unmapped: keep", "default: 0"])
    def test_policy_without_map(self, tmp_path: Path, extra: str) -> None:
        """on_unmapped or default without a map is reported at that key."""
        text = HEAD + f"    columns:\n      id: id\n      s: {{from: s, {extra}}}\n"
        line, col, message = one_problem(tmp_path, text)
        assert (line, col) == at(text, extra)
        assert "only applies to a column with a 'map'" in message

    def test_empty_map(self, tmp_path: Path) -> None:
        """An empty map is reported at the map."""
        text = HEAD + "    columns:\n      id: id\n      s: {from: s, map: {}}\n"
        assert one_problem(tmp_path, text) == (*at(text, "{}"), "mapping 'm': column 's': map is empty")

    def test_map_must_be_a_mapping(self, tmp_path: Path) -> None:
        """A list as map is reported at the map."""
        text = HEAD + "    columns:\n      id: id\n      s: {from: s, map: [a, b]}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "[a, b]")
        assert "map must be a mapping" in message


class TestWhere:
    @pytest.mark.parametrize(("condition", "fragment"), [
        ("{like: 'a%'}", "unknown operator 'like'"),
        ("{nin: [1]}", "unknown operator 'nin' (did you mean 'in'?)"),
        ("{in: 1}", "where.s.in needs a list"),
        ("{not_in: a}", "where.s.not_in needs a list"),
        ("{is_null: 1}", "where.s.is_null needs true or false"),
        ("{is_null: 'yes'}", "where.s.is_null needs true or false"),
        ("{gt: 1, lt: 5}", "where.s takes one operator"),
        ("[a, b]", "where.s: a list of values needs an operator, e.g. {in: [a, b]}"),
        ("{eq: [a, b]}", "where.s.eq needs a single value"),
    ])
    def test_bad_conditions(self, tmp_path: Path, condition: str, fragment: str) -> None:
        """Each wrong condition is reported at its value, naming the column and operator."""
        text = HEAD + f"    where:\n      s: {condition}\n    columns: {{id: id}}\n"
        line, col, message = one_problem(tmp_path, text)
        assert (line, col) == (8, 10) == at(text, condition)
        assert fragment in message

    def test_where_must_be_a_mapping(self, tmp_path: Path) -> None:
        """A list as where is reported at its value."""
        text = HEAD + "    where: [a]\n    columns: {id: id}\n"
        line, column, message = one_problem(tmp_path, text)
        assert (line, column) == at(text, "[a]")
        assert "where must be a mapping" in message

    def test_every_operator_is_accepted(self, tmp_path: Path) -> None:
        """All documented operators parse into conditions."""
        text = HEAD + """\
    where:
      a: {eq: 1}
      b: {ne: 1}
      c: {in: [1]}
      d: {not_in: [1]}
      e: {lt: 1}
      f: {le: 1}
      g: {gt: 1}
      h: {ge: 1}
      i: {is_null: true}
    columns: {id: id}
"""
        (spec,) = load(tmp_path, text)
        assert [(c.column, c.op) for c in spec.conditions] == [
            ("a", "eq"), ("b", "ne"), ("c", "in"), ("d", "not_in"), ("e", "lt"), ("f", "le"),
            ("g", "gt"), ("h", "ge"), ("i", "is_null")]


def fan_in_file(name: str, source: str, table: str, channel: str | None) -> str:
    channel_line = f"      channel: {{value: {channel}}}\n" if channel is not None else "      channel: ch\n"
    return f"""\
mappings:
  - name: {name}
    source: {source}
    table: {table}
    target: orders
    key: [channel, source_order_id]
    columns:
{channel_line}      source_order_id: id
"""


class TestAcrossMappings:
    def test_duplicate_names_across_files(self, tmp_path: Path) -> None:
        """A name used in two files is reported at the second, naming the first's place."""
        first = write(tmp_path, "a.yaml", HEAD + "    columns: {id: id}\n")
        second = write(tmp_path, "b.yaml", "# the app's copy\n" + HEAD.replace("target: orders", "target: o2")
                       + "    columns: {id: id}\n")
        with pytest.raises(ConfigError) as caught:
            load_mappings([first, second])
        (problem,) = caught.value.problems
        assert (problem.file, problem.line, problem.column) == (str(second), 3, 5)
        assert problem.message == f"mapping name 'm' is also used at {first}:2"

    def test_fan_in_without_constant_key(self, tmp_path: Path) -> None:
        """Two source tables into one target need a constant key column each; the one without is named."""
        a = write(tmp_path, "a.yaml", fan_in_file("shop_orders", "shop", "orders", "shop"))
        b = write(tmp_path, "b.yaml", fan_in_file("app_orders", "app", "app_orders", None))
        with pytest.raises(ConfigError) as caught:
            load_mappings([a, b])
        (problem,) = caught.value.problems
        assert (problem.file, problem.line, problem.column) == (str(b), 2, 5)
        assert "mapping 'app_orders' writes target table 'orders' with other mappings" in problem.message

    def test_fan_in_with_colliding_slices(self, tmp_path: Path) -> None:
        """Two mappings claiming the same constant slice are each reported at their own place,
        naming the other and where it is."""
        a = write(tmp_path, "a.yaml", fan_in_file("shop_orders", "shop", "orders", "shop"))
        b = write(tmp_path, "b.yaml", fan_in_file("app_orders", "app", "app_orders", "shop"))
        with pytest.raises(ConfigError) as caught:
            load_mappings([a, b])
        at_b, at_a = caught.value.problems
        assert (at_b.file, at_b.line, at_b.column) == (str(b), 2, 5)
        assert at_b.message == ("mapping 'app_orders' and mapping 'shop_orders' write the same slice of "
                                "'orders': {'channel': 'shop'}; give each a distinct constant key value "
                                f"('shop_orders' is at {a}:2)")
        assert (at_a.file, at_a.line, at_a.column) == (str(a), 2, 5)
        assert at_a.message.startswith("mapping 'shop_orders' and mapping 'app_orders' write the same slice")
        assert at_a.message.endswith(f"('app_orders' is at {b}:2)")

    def test_fan_in_with_distinct_slices(self, tmp_path: Path) -> None:
        """Distinct constant key values make a valid fan-in, from one or several sources."""
        a = write(tmp_path, "a.yaml", fan_in_file("shop_orders", "shop", "orders", "shop"))
        b = write(tmp_path, "b.yaml", fan_in_file("app_orders", "app", "app_orders", "app"))
        c = write(tmp_path, "c.yaml", fan_in_file("shop_returns", "shop", "returns", "shop_return"))
        assert [s.name for s in load_mappings([a, b, c])] == ["shop_orders", "app_orders", "shop_returns"]

    def test_fan_out_from_one_table_needs_no_slice(self, tmp_path: Path) -> None:
        """Mappings of one source table into one target are not a fan-in."""
        a = write(tmp_path, "a.yaml", fan_in_file("one", "shop", "orders", None))
        b = write(tmp_path, "b.yaml", fan_in_file("two", "shop", "orders", None))
        assert len(load_mappings([a, b])) == 2

    def test_other_schema_is_another_table(self, tmp_path: Path) -> None:
        """The same target name in a different explicit schema is not a fan-in."""
        a = write(tmp_path, "a.yaml", fan_in_file("one", "shop", "orders", None))
        other = fan_in_file("two", "app", "orders", None)
        other = other.replace("    key:", "    target_schema: app\n    key:")
        b = write(tmp_path, "b.yaml", other)
        assert len(load_mappings([a, b])) == 2


class TestFiles:
    def test_directories_give_sorted_yaml_files(self, tmp_path: Path) -> None:
        """A directory contributes its *.yaml and *.yml files, sorted; other files are ignored."""
        directory = tmp_path / "mappings"
        directory.mkdir()
        for name in ("b.yaml", "a.yml", "c.yaml", "notes.txt", "d.yaml.bak"):
            write(directory, name, "mappings: []\n")
        single = write(tmp_path, "single.yaml", "mappings: []\n")
        check = Checker()
        found = mapping_files([single, directory, tmp_path / "missing"], check)
        assert found == [single, directory / "a.yml", directory / "b.yaml", directory / "c.yaml"]
        assert check.problems == []

    def test_a_directory_that_cannot_be_read_is_a_problem(self, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """A mapping directory the service user cannot list is reported, never skipped (the
        listing is refused here by the test: the suite runs as root, who may list anything)."""
        directory = tmp_path / "mappings"
        directory.mkdir()

        def refused(_self: Path) -> list[Path]:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Path, "iterdir", refused)
        with pytest.raises(ConfigError) as caught:
            load_mappings([directory], {"shop"})
        (problem,) = caught.value.problems
        assert problem.file == str(directory)
        assert problem.message == "cannot read the mapping directory: Permission denied"

    def test_a_file_that_is_not_utf8_names_its_first_bad_byte(self, tmp_path: Path) -> None:
        """A mapping file saved in GBK is a problem at file:line:col naming the fix."""
        path = tmp_path / "m.yaml"
        path.write_bytes("mappings:\n  - name: 订单\n".encode("gbk"))
        with pytest.raises(ConfigError) as caught:
            load_mappings([path], {"shop"})
        (problem,) = caught.value.problems
        assert (problem.line, problem.column) == (2, 11)
        assert "not UTF-8 (bytes b6 a9); save it as UTF-8" in problem.message

    def test_mappings_come_out_in_file_order(self, tmp_path: Path) -> None:
        """load_mappings reads a directory's files in sorted order."""
        directory = tmp_path / "mappings"
        directory.mkdir()
        write(directory, "z.yaml", HEAD.replace("name: m", "name: last") + "    columns: {id: id}\n")
        write(directory, "a.yaml", HEAD.replace("name: m", "name: first").replace("orders", "o1")
              + "    columns: {id: id}\n")
        assert [s.name for s in load_mappings([directory])] == ["first", "last"]

    def test_problems_from_several_files_at_once(self, tmp_path: Path) -> None:
        """A YAML error in one file and a spec error in another are reported together."""
        directory = tmp_path / "mappings"
        directory.mkdir()
        bad_yaml = write(directory, "a.yaml", "mappings: [\n")
        bad_spec = write(directory, "b.yaml", HEAD + "    delete: soft\n    columns: {id: id}\n")
        with pytest.raises(ConfigError) as caught:
            load_mappings([directory])
        assert [p.file for p in caught.value.problems] == [str(bad_yaml), str(bad_spec)]
        assert caught.value.problems[0].message.startswith("YAML: ")
        assert (caught.value.problems[1].line, caught.value.problems[1].column) == (7, 5)
