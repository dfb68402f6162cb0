"""What a DDL statement from the binlog does to which tables (pure; no SQL is guessed beyond this).

syncd does not replicate DDL: the target schema belongs to the DBAs. It only needs to know
which source tables a statement touches and how, to decide per mapping: absorb, pause, or (for
TRUNCATE) propagate. Column-level effects are checked against the live source afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*|#[^\n]*", re.DOTALL)
_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_QUALIFIED = rf"({_NAME}(?:\s*\.\s*{_NAME})?)"
_ALTER = re.compile(rf"^ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+(?:IF\s+EXISTS\s+)?{_QUALIFIED}(.*)$",
                    re.IGNORECASE | re.DOTALL)
_ALTER_RENAME = re.compile(rf"\bRENAME\s+(?:TO\s+|AS\s+)?{_QUALIFIED}\s*$", re.IGNORECASE)
_RENAME = re.compile(r"^RENAME\s+TABLES?\s+(.*)$", re.IGNORECASE | re.DOTALL)
_RENAME_PAIR = re.compile(rf"{_QUALIFIED}\s+TO\s+{_QUALIFIED}", re.IGNORECASE)
_TRUNCATE = re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?{_QUALIFIED}", re.IGNORECASE)
_DROP = re.compile(r"^DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?(.*)$",
                   re.IGNORECASE | re.DOTALL)
_CREATE = re.compile(rf"^CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_QUALIFIED}",
                     re.IGNORECASE)


@dataclass(frozen=True)
class TableEffect:
    """One table touched by a statement: kind is alter | rename | truncate | drop | create."""

    kind: str
    table: str
    new_name: str | None = None


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def _split(qualified: str, default_schema: str) -> tuple[str, str]:
    parts = re.findall(_NAME, qualified)
    if len(parts) == 2:
        return _unquote(parts[0]), _unquote(parts[1])
    return default_schema, _unquote(parts[0])


def table_effects(statement: str, statement_schema: str, database: str) -> list[TableEffect]:
    """Effects on tables of `database`; statements on other databases give nothing."""
    text = _COMMENTS.sub(" ", statement).strip().rstrip(";")
    effects: list[TableEffect] = []
    for kind, qualified, new in _raw_effects(text):
        schema, table = _split(qualified, statement_schema)
        if schema != database:
            continue
        new_name = _split(new, statement_schema)[1] if new else None
        effects.append(TableEffect(kind, table, new_name))
    return effects


def _alter(text: str) -> list[tuple[str, str, str | None]]:
    match = _ALTER.match(text)
    if not match:
        return []
    renamed = _ALTER_RENAME.search(match.group(2))
    return [("rename", match.group(1), renamed.group(1))] if renamed else [("alter", match.group(1), None)]


def _rename(text: str) -> list[tuple[str, str, str | None]]:
    match = _RENAME.match(text)
    return [("rename", a, b) for a, b in _RENAME_PAIR.findall(match.group(1))] if match else []


def _drop(text: str) -> list[tuple[str, str, str | None]]:
    match = _DROP.match(text)
    if not match:
        return []
    names = re.sub(r"\b(RESTRICT|CASCADE)\b", "", match.group(1), flags=re.IGNORECASE)
    return [("drop", name, None) for name in re.findall(_QUALIFIED, names)]


def _single(kind: str, pattern: re.Pattern[str]) -> Callable[[str], list[tuple[str, str, str | None]]]:
    def parse(text: str) -> list[tuple[str, str, str | None]]:
        match = pattern.match(text)
        return [(kind, match.group(1), None)] if match else []

    return parse


_PARSERS = (_alter, _rename, _single("truncate", _TRUNCATE), _drop, _single("create", _CREATE))


def _raw_effects(text: str) -> list[tuple[str, str, str | None]]:
    for parse in _PARSERS:
        found = parse(text)
        if found:
            return found
    return []
