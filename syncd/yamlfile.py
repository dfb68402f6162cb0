"""YAML loading that remembers where every key and value stands, for file:line:col errors."""

from __future__ import annotations

import difflib
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from syncd.errors import ConfigError, Problem


@dataclass(frozen=True)
class Where:
    """A place in a file (1-based line and column)."""

    file: str
    line: int
    column: int

    def problem(self, message: str) -> Problem:
        return Problem(self.file, self.line, self.column, message)


class YamlMap(dict):
    """A mapping node: a dict that also knows where it and each of its keys and values stand."""

    where: Where
    key_where: dict[Any, Where]
    value_where: dict[Any, Where]

    def at_key(self, key: Any) -> Where:
        return self.key_where.get(key, self.where)

    def at_value(self, key: Any) -> Where:
        return self.value_where.get(key, self.where)


class YamlList(list):
    """A sequence node that knows where it and each item stand."""

    where: Where
    item_where: list[Where]

    def at(self, index: int) -> Where:
        return self.item_where[index] if index < len(self.item_where) else self.where


def _where(file: str, mark: yaml.Mark) -> Where:
    return Where(file, mark.line + 1, mark.column + 1)


class _Loader(yaml.SafeLoader):
    """SafeLoader whose containers carry positions and which rejects duplicate keys."""

    file_name = "<string>"
    duplicate_problems: list[Problem]

    def construct_yaml_map(self, node: yaml.MappingNode):  # type: ignore[override]
        data = YamlMap()
        data.where = _where(self.file_name, node.start_mark)
        data.key_where = {}
        data.value_where = {}
        yield data
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found a key that is a list or mapping (keys must be plain values)",
                    key_node.start_mark)
            if key in data:
                self.duplicate_problems.append(
                    _where(self.file_name, key_node.start_mark).problem(f"duplicate key {key!r}")
                )
            data[key] = self.construct_object(value_node, deep=True)
            data.key_where[key] = _where(self.file_name, key_node.start_mark)
            data.value_where[key] = _where(self.file_name, value_node.start_mark)

    def construct_yaml_seq(self, node: yaml.SequenceNode):  # type: ignore[override]
        data = YamlList()
        data.where = _where(self.file_name, node.start_mark)
        data.item_where = [_where(self.file_name, item.start_mark) for item in node.value]
        yield data
        data.extend(self.construct_object(item, deep=True) for item in node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)


def load_text(text: str, file_name: str) -> Any:
    """Parse YAML text; syntax errors and duplicate keys raise ConfigError with positions."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found before parsing
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise ConfigError([Problem(file_name, line, column, f"YAML: {exc.reason} "
                                   f"(character #x{exc.character:04x})")]) from exc
    loader.file_name = file_name
    loader.duplicate_problems = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([Problem(file_name, line, column, f"YAML: {exc.problem}")]) from exc
    finally:
        loader.dispose()
    if loader.duplicate_problems:
        raise ConfigError(loader.duplicate_problems)
    return data


def load_file(path: Path) -> Any:
    """Parse a YAML file; a file that cannot be read or is not UTF-8 raises ConfigError too."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Problem(str(path), 1, 1, f"cannot read: {exc.strerror}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([_not_utf8(str(path), data, exc)]) from exc
    return load_text(text, str(path))


def _not_utf8(file: str, data: bytes, exc: UnicodeDecodeError) -> Problem:
    """Where the first byte that is not UTF-8 stands, and how to fix the file."""
    before = data[:exc.start]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
    bad = data[exc.start:exc.start + 2].hex(" ")
    return Problem(file, line, column, f"the file is not UTF-8 (bytes {bad}); save it as UTF-8 "
                   "(e.g. `iconv -f GBK -t UTF-8 old.yaml > new.yaml`)")


def closest(name: str, choices: list[str] | set[str]) -> str:
    """A ' (did you mean ...?)' suffix when a close match exists, else ''."""
    match = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Checker:
    """Collects problems while walking a YAML document, so all of them are reported at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, where: Where, message: str) -> None:
        self.problems.append(where.problem(message))

    def mapping(self, node: Any, where: Where, what: str) -> YamlMap | None:
        if isinstance(node, YamlMap):
            return node
        self.add(where, f"{what} must be a mapping (key: value), got {_kind(node)}")
        return None

    def only_keys(self, node: YamlMap, allowed: set[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                self.add(node.at_key(key), f"unknown key {key!r} in {what}{closest(str(key), allowed)}")

    def require(self, node: YamlMap, keys: list[str], what: str) -> None:
        for key in keys:
            if key not in node:
                self.add(node.where, f"{what} is missing required key {key!r}")

    def text(self, node: YamlMap, key: str, what: str, default: str | None = None) -> str | None:
        value = node.get(key, default)
        if value is None or isinstance(value, str):
            return value
        self.add(node.at_value(key), f"{what}.{key} must be text, got {_kind(value)}")
        return default

    def integer(self, node: YamlMap, key: str, what: str, default: int | None = None, *,
                low: int | None = None, high: int | None = None) -> int | None:
        """An integer, within [low, high] when given (else the problem names the range)."""
        value = node.get(key, default)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            self.add(node.at_value(key), f"{what}.{key} must be an integer, got {_kind(value)}")
            return default
        if value is not None and not _within(value, low, high):
            self.add(node.at_value(key), f"{what}.{key} must be {_range(low, high)}, got {value}")
            return default
        return value

    def number(self, node: YamlMap, key: str, what: str, default: float, *,
               low: float | None = None, high: float | None = None) -> float:
        """A number, within [low, high] when given (else the problem names the range)."""
        value = node.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.add(node.at_value(key), f"{what}.{key} must be a number, got {_kind(value)}")
            return default
        if not _within(value, low, high):
            self.add(node.at_value(key), f"{what}.{key} must be {_range(low, high)}, got {value}")
            return default
        return float(value)

    def boolean(self, node: YamlMap, key: str, what: str, default: bool) -> bool:
        value = node.get(key, default)
        if isinstance(value, bool):
            return value
        self.add(node.at_value(key), f"{what}.{key} must be true or false, got {_kind(value)}")
        return default

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
