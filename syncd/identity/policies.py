"""The unified row of a person, computed from the contributions of its source records.

Every policy looks only at the contributions that carry the column (the mapping maps it) with a
non-NULL value, like SQL aggregates; none -> NULL. Ties are broken by mapping name and record,
so the result never depends on the order the contributions are listed in.

| policy | value |
|---|---|
| `latest` | of the contribution with the latest source commit time |
| `first_non_null` | of the contribution seen first (its first commit time) |
| `prefer: [a, b]` | of the first listed mapping or source that has one; among equals, latest |
| `max` / `min` | the largest / smallest |
| `any_true` | true if any contribution is true (an opt-out anywhere is an opt-out everywhere) |
| `all_true` | true only if every contribution is true |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

POLICIES = ("latest", "first_non_null", "prefer", "max", "min", "any_true", "all_true")


@dataclass(frozen=True)
class Contribution:
    """What one live source record says about its person."""

    mapping: str
    source: str
    record: str
    values: dict[str, Any]
    commit_time: datetime
    first_seen: datetime


Candidates = list[tuple[Contribution, Any]]


def _latest(items: Candidates, _args: tuple[str, ...]) -> Any:
    return max(items, key=lambda i: (i[0].commit_time, i[0].mapping, i[0].record))[1]


def _first(items: Candidates, _args: tuple[str, ...]) -> Any:
    return min(items, key=lambda i: (i[0].first_seen, i[0].mapping, i[0].record))[1]


def _prefer(items: Candidates, args: tuple[str, ...]) -> Any:
    def rank(contribution: Contribution) -> int:
        for index, name in enumerate(args):
            if name in {contribution.mapping, contribution.source}:
                return index
        return len(args)

    best = min(rank(c) for c, _ in items)
    return _latest([i for i in items if rank(i[0]) == best], ())


def _extreme(pick: Callable[..., Any]) -> Callable[[Candidates, tuple[str, ...]], Any]:
    def choose(items: Candidates, _args: tuple[str, ...]) -> Any:
        values = [v for _, v in items]
        try:
            return pick(values)
        except TypeError:  # values of different kinds: compare their texts, deterministically
            return pick(values, key=lambda v: (type(v).__name__, str(v)))

    return choose


def _any_true(items: Candidates, _args: tuple[str, ...]) -> bool:
    return any(bool(v) for _, v in items)


def _all_true(items: Candidates, _args: tuple[str, ...]) -> bool:
    return all(bool(v) for _, v in items)


_PICK: dict[str, Callable[[Candidates, tuple[str, ...]], Any]] = {
    "latest": _latest,
    "first_non_null": _first,
    "prefer": _prefer,
    "max": _extreme(max),
    "min": _extreme(min),
    "any_true": _any_true,
    "all_true": _all_true,
}


def unify(contributions: Iterable[Contribution],
          policies: Iterable[tuple[str, str, tuple[str, ...]]]) -> dict[str, Any] | None:
    """The unified row (without its key column); None when no contribution is left."""
    contributions = list(contributions)
    if not contributions:
        return None
    row: dict[str, Any] = {}
    for column, policy, args in policies:
        items = [(c, c.values[column]) for c in contributions if c.values.get(column) is not None]
        row[column] = _PICK[policy](items, args) if items else None
    return row
