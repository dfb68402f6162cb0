"""Unit tests for syncd.yamlfile: positions, duplicate keys, syntax errors and the Checker."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.errors import ConfigError, Problem
from syncd.yamlfile import Checker, Where, YamlList, YamlMap, closest, load_file, load_text

NESTED = """\
top:
  name: shop
  items:
    - first
    - {inner: 1, other: two}
  flow: {a: 1, b: [x, y]}
"""


def problems_of(text: str, file_name: str = "f.yaml") -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        load_text(text, file_name)
    return caught.value.problems


class TestPositions:
    def test_document_is_a_yaml_map_at_line_one(self) -> None:
        """The top-level mapping is a YamlMap placed at 1:1 of the named file."""
        data = load_text(NESTED, "cfg.yaml")
        assert isinstance(data, YamlMap)
        assert data.where == Where("cfg.yaml", 1, 1)

    def test_key_and_value_positions_in_a_nested_map(self) -> None:
        """Keys and values of a nested block mapping carry their 1-based line and column."""
        top = load_text(NESTED, "cfg.yaml")["top"]
        assert top.at_key("name") == Where("cfg.yaml", 2, 3)
        assert top.at_value("name") == Where("cfg.yaml", 2, 9)
        assert top.at_key("items") == Where("cfg.yaml", 3, 3)
        assert top.where == Where("cfg.yaml", 2, 3)

    def test_list_items_have_positions(self) -> None:
        """Each item of a block sequence knows where it starts."""
        items = load_text(NESTED, "cfg.yaml")["top"]["items"]
        assert isinstance(items, YamlList)
        assert items == ["first", {"inner": 1, "other": "two"}]
        assert items.at(0) == Where("cfg.yaml", 4, 7)
        assert items.at(1) == Where("cfg.yaml", 5, 7)

    def test_flow_map_inside_a_list(self) -> None:
        """A flow mapping inside a list knows the positions of its keys and values."""
        inner = load_text(NESTED, "cfg.yaml")["top"]["items"][1]
        assert inner.where == Where("cfg.yaml", 5, 7)
        assert inner.at_key("inner") == Where("cfg.yaml", 5, 8)
        assert inner.at_value("inner") == Where("cfg.yaml", 5, 15)
        assert inner.at_key("other") == Where("cfg.yaml", 5, 18)
        assert inner.at_value("other") == Where("cfg.yaml", 5, 25)

    def test_flow_list_inside_a_flow_map(self) -> None:
        """Items of a flow list nested in a flow map have their own columns."""
        flow = load_text(NESTED, "cfg.yaml")["top"]["flow"]
        assert flow.at_value("b") == Where("cfg.yaml", 6, 19)
        assert flow["b"].at(0) == Where("cfg.yaml", 6, 20)
        assert flow["b"].at(1) == Where("cfg.yaml", 6, 23)

    def test_cjk_keys_count_characters_not_bytes(self) -> None:
        """Columns count characters, so a value after a Chinese key is placed right."""
        data = load_text("map: {待支付: 0, 已支付: 1}\n", "m.yaml")["map"]
        assert data.at_key("已支付") == Where("m.yaml", 1, 15)
        assert data.at_value("已支付") == Where("m.yaml", 1, 20)

    def test_unknown_key_and_out_of_range_index_fall_back_to_the_container(self) -> None:
        """Asking for a position that does not exist gives the container's own position."""
        top = load_text(NESTED, "cfg.yaml")["top"]
        assert top.at_key("missing") == top.where
        assert top.at_value("missing") == top.where
        assert top["items"].at(7) == top["items"].where

    def test_scalars_and_empty_documents(self) -> None:
        """A scalar document is returned as is, and an empty one is None."""
        assert load_text("42\n", "f") == 42
        assert load_text("", "f") is None

    def test_load_file_names_the_path(self, tmp_path: Path) -> None:
        """load_file uses the file's path as the file name of positions."""
        path = tmp_path / "x.yaml"
        path.write_text("a:\n  b: 1\n", encoding="utf-8")
        data = load_file(path)
        assert data["a"].at_key("b") == Where(str(path), 2, 3)

    def test_unreadable_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A missing file is reported at its line 1, column 1."""
        path = tmp_path / "missing.yaml"
        with pytest.raises(ConfigError) as caught:
            load_file(path)
        (problem,) = caught.value.problems
        assert (problem.file, problem.line, problem.column) == (str(path), 1, 1)
        assert "cannot read" in problem.message


class TestDuplicateKeys:
    def test_duplicate_key_is_reported_at_the_second_occurrence(self) -> None:
        """A repeated key is an error naming the key, at the place of the repetition."""
        (problem,) = problems_of("a: 1\nb: 2\na: 3\n")
        assert problem == Problem("f.yaml", 3, 1, "duplicate key 'a'")

    def test_every_duplicate_is_reported_at_once(self) -> None:
        """Duplicates in different nested maps are all reported in one error."""
        problems = problems_of("a: 1\na: 2\nb:\n  - {c: 1, c: 2}\n")
        assert [(p.line, p.column, p.message) for p in problems] == [
            (2, 1, "duplicate key 'a'"),
            (4, 12, "duplicate key 'c'"),
        ]

    def test_error_text_is_file_line_col(self) -> None:
        """The ConfigError's text lists problems as file:line:col: message."""
        with pytest.raises(ConfigError) as caught:
            load_text("k: 1\nk: 1\n", "m/shop.yaml")
        assert str(caught.value) == "m/shop.yaml:2:1: duplicate key 'k'"


class TestSyntaxErrors:
    def test_unclosed_flow_list(self) -> None:
        """An unclosed bracket is a ConfigError with the position where YAML gave up."""
        (problem,) = problems_of("a: [1, 2\nb: 3\n")
        assert (problem.file, problem.line) == ("f.yaml", 2)
        assert problem.message.startswith("YAML: ")

    def test_bad_indentation(self) -> None:
        """A mapping value where none is allowed is reported at its line and column."""
        (problem,) = problems_of("a: 1\n  b: 2\n")
        assert (problem.line, problem.column) == (2, 4)
        assert "mapping values are not allowed" in problem.message

    def test_several_documents_are_refused(self) -> None:
        """A file holding two YAML documents is refused at the second one."""
        (problem,) = problems_of("a: 1\n---\nb: 2\n")
        assert (problem.line, problem.column) == (2, 1)

    def test_control_character_is_a_config_error(self) -> None:
        """A character YAML forbids is a ConfigError at its line and column, not a crash."""
        (problem,) = problems_of("a: 1\nb: x\x01y\n")
        assert (problem.line, problem.column) == (2, 5)
        assert "#x0001" in problem.message

    def test_list_as_a_key_is_a_config_error(self) -> None:
        """A complex (unhashable) key is a ConfigError pointing at the key, not a TypeError."""
        (problem,) = problems_of("ok: 1\n? [a, b]\n: 1\n")
        assert (problem.line, problem.column) == (2, 3)
        assert "key" in problem.message


class TestCloseness:
    def test_suggests_a_close_name(self) -> None:
        """A misspelling gets a did-you-mean suffix."""
        assert closest("trasform", {"transform", "from", "map"}) == " (did you mean 'transform'?)"

    def test_nothing_for_a_distant_name(self) -> None:
        """A word unlike every choice gets no suffix."""
        assert closest("zzz", {"transform", "from"}) == ""


class TestChecker:
    DOC = "name: 5\nport: '3306'\nratio: yes\nflag: 1\nitems: [1]\nflaot: 2\n"

    def node(self) -> YamlMap:
        data = load_text(self.DOC, "c.yaml")
        assert isinstance(data, YamlMap)
        return data

    def test_only_keys_suggests_the_allowed_name(self) -> None:
        """An unknown key is reported at the key, with a did-you-mean from the allowed set."""
        check = Checker()
        check.only_keys(self.node(), {"name", "port", "ratio", "flag", "items", "float"}, "thing")
        assert check.problems == [
            Problem("c.yaml", 6, 1, "unknown key 'flaot' in thing (did you mean 'float'?)")
        ]

    def test_require_reports_each_missing_key_at_the_map(self) -> None:
        """Every missing required key is reported, at the position of the mapping."""
        check = Checker()
        check.require(self.node(), ["name", "host", "user"], "thing")
        assert check.problems == [
            Problem("c.yaml", 1, 1, "thing is missing required key 'host'"),
            Problem("c.yaml", 1, 1, "thing is missing required key 'user'"),
        ]

    def test_text_type_error_points_at_the_value(self) -> None:
        """A number where text is wanted is reported at the value and the default returned."""
        check = Checker()
        assert check.text(self.node(), "name", "thing", "dflt") == "dflt"
        assert check.problems == [Problem("c.yaml", 1, 7, "thing.name must be text, got int 5")]

    def test_text_returns_text_and_default_for_missing(self) -> None:
        """Text is returned as is; a missing key gives the default without a problem."""
        check = Checker()
        assert check.text(self.node(), "port", "thing") == "3306"
        assert check.text(self.node(), "absent", "thing", "x") == "x"
        assert check.problems == []

    def test_integer_refuses_text_and_booleans(self) -> None:
        """Quoted digits and YAML booleans are not integers."""
        check = Checker()
        assert check.integer(self.node(), "port", "thing", 1) == 1
        assert check.integer(self.node(), "ratio", "thing", 2) == 2
        assert check.integer(self.node(), "flag", "thing") == 1
        assert [(p.line, p.column, p.message) for p in check.problems] == [
            (2, 7, "thing.port must be an integer, got str '3306'"),
            (3, 8, "thing.ratio must be an integer, got bool True"),
        ]

    def test_number_accepts_ints_and_refuses_lists(self) -> None:
        """An int is a number (returned as float); a list is reported."""
        check = Checker()
        assert check.number(self.node(), "flag", "thing", 0.5) == 1.0
        assert check.number(self.node(), "items", "thing", 0.5) == 0.5
        assert check.problems == [Problem("c.yaml", 5, 8, "thing.items must be a number, got a list")]

    def test_boolean_refuses_one(self) -> None:
        """`1` is not true or false; YAML `yes` is."""
        check = Checker()
        assert check.boolean(self.node(), "ratio", "thing", False) is True
        assert check.boolean(self.node(), "flag", "thing", False) is False
        assert check.problems == [Problem("c.yaml", 4, 7, "thing.flag must be true or false, got int 1")]

    def test_mapping_refuses_a_list(self) -> None:
        """A list where a mapping is wanted is reported at the given place."""
        check = Checker()
        node = self.node()
        assert check.mapping(node["items"], node.at_value("items"), "thing") is None
        assert check.problems == [
            Problem("c.yaml", 5, 8, "thing must be a mapping (key: value), got a list")
        ]

    def test_null_value_is_described(self) -> None:
        """A missing value reads as `nothing (null)` in the message."""
        check = Checker()
        node = load_text("a:\n", "n.yaml")
        check.boolean(node, "a", "x", True)
        assert check.problems[0].message == "x.a must be true or false, got nothing (null)"

    def test_raise_if_any_raises_only_with_problems(self) -> None:
        """raise_if_any raises a ConfigError holding every problem, and nothing when clean."""
        check = Checker()
        check.raise_if_any()
        check.add(Where("f", 1, 2), "one")
        check.add(Where("f", 3, 4), "two")
        with pytest.raises(ConfigError) as caught:
            check.raise_if_any()
        assert str(caught.value) == "f:1:2: one\nf:3:4: two"
