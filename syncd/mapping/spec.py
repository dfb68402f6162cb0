"""Mapping YAML -> MappingSpec, with every problem reported at once as file:line:col.

The module is long because it is the grammar of a mapping file: every key a DBA may write, its
checks and its error message sit in one place, in the order docs/mappings.md describes them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.errors import ConfigError, Problem
from syncd.mapping import transforms
from syncd.yamlfile import Checker, Where, YamlList, YamlMap, closest, load_file

_MAPPING_KEYS = {"name", "source", "table", "target", "target_schema", "key", "delete",
                 "soft_delete_column", "commit_time_column", "where", "columns", "identity",
                 "source_key"}
_COLUMN_KEYS = {"from", "value", "transform", "map", "on_unmapped", "default"}
_UNMAPPED_POLICIES = {"dead_letter", "null", "keep"}
FILTER_OPS = {"eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "is_null"}
_TOP_KEYS = {"mappings", "identities"}
_IDENTITY_DEF_KEYS = {"name", "salt_env", "salt_file", "unified"}
_UNIFIED_KEYS = {"table", "target_schema", "key", "columns"}
_IDENTITY_KEYS = {"name", "column", "match"}
_LOOKUP_KEYS = {"identity", "key", "by"}
POLICY_NAMES = ("latest", "first_non_null", "prefer", "max", "min", "any_true", "all_true")
_KIND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

NO_VALUE: Any = object()
"""Marks a column spec without a constant `value`."""


@dataclass(frozen=True)
class TransformStep:
    name: str
    args: dict[str, Any]
    where: Where


@dataclass(frozen=True)
class ColumnSpec:
    target: str
    where: Where
    sources: tuple[str, ...] = ()
    constant: Any = NO_VALUE
    transforms: tuple[TransformStep, ...] = ()
    value_map: dict[Any, Any] | None = None
    value_map_where: Where | None = None
    on_unmapped: str = "dead_letter"
    default: Any = NO_VALUE

    @property
    def is_constant(self) -> bool:
        return self.constant is not NO_VALUE


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: Any
    where: Where


@dataclass(frozen=True)
class PolicySpec:
    """How one column of a unified table is chosen among the contributions (`unified.columns`)."""

    column: str
    name: str
    where: Where
    prefer: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnifiedSpec:
    table: str
    target_schema: str | None
    key: str
    policies: tuple[PolicySpec, ...]
    where: Where


@dataclass(frozen=True)
class IdentityDef:
    """An identity space, declared under the top-level `identities:` of a mapping file."""

    name: str
    where: Where
    salt_env: str | None = None
    salt_file: str | None = None
    unified: UnifiedSpec | None = None
    references: tuple[tuple[str | None, str, str], ...] = ()
    """(target_schema, table, column) holding this space's person ids; set across files."""


@dataclass(frozen=True)
class IdentitySpec:
    """A mapping's `identity:` block: the records of this mapping are persons' records."""

    name: str
    column: str | None
    match: tuple[tuple[str, ColumnSpec], ...]
    """(kind, how to compute the key from the source row)."""
    where: Where
    space: IdentityDef | None = None


@dataclass(frozen=True)
class LookupSpec:
    """A `{lookup: {identity, key, by}}` column: the person id the source's key resolves to."""

    target: str
    identity: str
    kind: str
    by: ColumnSpec
    where: Where
    space: IdentityDef | None = None


@dataclass(frozen=True)
class MappingSpec:
    name: str
    where: Where
    source: str
    table: str
    target: str
    target_schema: str | None
    key: tuple[str, ...]
    delete: str
    soft_delete_column: str | None
    commit_time_column: str | None
    conditions: tuple[Condition, ...]
    columns: tuple[ColumnSpec, ...]
    identity: IdentitySpec | None = None
    lookups: tuple[LookupSpec, ...] = ()
    source_key: tuple[str, ...] = ()
    """Source columns naming a row (a UNIQUE key of NOT NULL columns); (): the primary key."""
    source_key_where: Where | None = None

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.target == name), None)

    def slice_values(self) -> dict[str, Any]:
        """Constant key columns: the slice of the target table this mapping owns."""
        return {c.target: c.constant for c in self.columns if c.target in self.key and c.is_constant}


def mapping_files(paths: Iterable[Path], check: Checker) -> list[Path]:
    """The mapping files named by config: files as given, directories' *.yaml/*.yml sorted.

    A directory that cannot be listed is a problem (in `check`), never skipped silently."""
    files: list[Path] = []
    for path in paths:
        try:
            if path.is_dir():
                files.extend(sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"}))
            elif path.exists():
                files.append(path)
        except OSError as exc:
            reason = f"cannot read the mapping directory: {exc.strerror}"
            check.problems.append(Problem(str(path), 1, 1, reason))
    return files


def load_mappings(paths: Iterable[Path], source_names: set[str] | None = None,
                  default_schema: str | None = None) -> list[MappingSpec]:
    """Parse and statically check all mapping files; raises ConfigError listing every problem.

    `default_schema` is config's target.schema: a mapping without `target_schema` writes there.
    """
    check = Checker()
    specs: list[MappingSpec] = []
    identities: list[IdentityDef] = []
    for file in mapping_files(paths, check):
        try:
            data = load_file(file)
        except ConfigError as exc:
            check.problems.extend(exc.problems)
            continue
        specs.extend(parse_document(data, Where(str(file), 1, 1), check, source_names))
        identities.extend(parse_identities(data, check))
    check_across(specs, check, default_schema)
    specs = link_identities(specs, identities, check, source_names)
    check.raise_if_any()
    return specs


def parse_document(data: Any, where: Where, check: Checker,
                   source_names: set[str] | None) -> list[MappingSpec]:
    top = check.mapping(data, where, "a mapping file")
    if top is None:
        return []
    check.only_keys(top, _TOP_KEYS, "a mapping file")
    if "mappings" not in top and "identities" in top:
        return []  # a file that only declares identity spaces
    items = top.get("mappings")
    if not isinstance(items, YamlList):
        check.add(top.at_value("mappings") if "mappings" in top else top.where,
                  "a mapping file needs a top-level 'mappings:' list")
        return []
    specs = []
    for index, item in enumerate(items):
        spec = _mapping(item, items.at(index), check, source_names)
        if spec is not None:
            specs.append(spec)
    return specs


def _mapping(data: Any, where: Where, check: Checker,
             source_names: set[str] | None) -> MappingSpec | None:
    node = check.mapping(data, where, "a mapping")
    if node is None:
        return None
    name = node.get("name") if isinstance(node.get("name"), str) else "?"
    what = f"mapping {name!r}"
    check.only_keys(node, _MAPPING_KEYS, what)
    check.require(node, ["name", "source", "table", "target", "key", "columns"], what)
    check.text(node, "name", what)
    source = check.text(node, "source", what) or ""
    if source_names is not None and source and source not in source_names:
        check.add(node.at_value("source"), f"{what}: unknown source {source!r}"
                  f"{closest(source, source_names)}; config.yaml defines {sorted(source_names)}")
    columns = _columns(node, what, check)
    # Key columns are checked against every listed column, even one whose spec has an error.
    listed = node.get("columns")
    key = _key(node, what, check, {str(c) for c in listed} if isinstance(listed, dict) else set())
    delete = check.text(node, "delete", what, "hard") or "hard"
    soft_column = check.text(node, "soft_delete_column", what)
    _check_delete(node, what, delete, soft_column, check)
    _check_filled_by_syncd(node, what, check, {c.target for c in columns})
    lookups = _lookups(node, what, check)
    identity = _identity(node, what, check) if "identity" in node else None
    _check_identity_columns(node, what, check, key=key, columns=columns, lookups=lookups,
                            identity=identity)
    return MappingSpec(
        name=name,
        where=node.where,
        source=source,
        table=check.text(node, "table", what) or "",
        target=check.text(node, "target", what) or "",
        target_schema=check.text(node, "target_schema", what),
        key=key,
        delete=delete,
        soft_delete_column=soft_column,
        commit_time_column=check.text(node, "commit_time_column", what),
        conditions=_conditions(node, what, check),
        columns=columns,
        identity=identity,
        lookups=lookups,
        source_key=_source_key(node, what, check),
        source_key_where=node.at_value("source_key") if "source_key" in node else None,
    )


def _source_key(node: YamlMap, what: str, check: Checker) -> tuple[str, ...]:
    """`source_key`: one source column or a list of them; checked live against the table's keys."""
    if "source_key" not in node:
        return ()
    raw = node["source_key"]
    columns = [raw] if isinstance(raw, str) else raw
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        check.add(node.at_value("source_key"), f"{what}: source_key must be a source column or a list "
                  "of them (the columns of a UNIQUE key), e.g. source_key: [log_uuid]")
        return ()
    for index, column in enumerate(columns):
        if column in columns[:index]:
            place = columns.at(index) if isinstance(columns, YamlList) else node.at_value("source_key")
            check.add(place, f"{what}: source_key lists {column!r} twice")
    return tuple(dict.fromkeys(columns))


def _check_delete(node: YamlMap, what: str, delete: str, soft_column: str | None,
                  check: Checker) -> None:
    if delete not in {"hard", "soft"}:
        check.add(node.at_value("delete"), f"{what}: delete must be 'hard' or 'soft', got {delete!r}")
    if delete == "soft" and not soft_column:
        check.add(node.at_key("delete"), f"{what}: delete: soft needs soft_delete_column")
    if delete != "soft" and soft_column:
        check.add(node.at_key("soft_delete_column"),
                  f"{what}: soft_delete_column is only used with delete: soft")


def _check_filled_by_syncd(node: YamlMap, what: str, check: Checker, listed: set[str]) -> None:
    """syncd fills these columns itself; listing one under `columns` would be silently overridden."""
    for key in ("soft_delete_column", "commit_time_column"):
        column = node.get(key)
        if isinstance(column, str) and column in listed:
            check.add(node.at_value(key), f"{what}: {column!r} is the {key}, which syncd fills; "
                      "remove it from columns")


def _key(node: YamlMap, what: str, check: Checker, column_names: set[str]) -> tuple[str, ...]:
    raw = node.get("key")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
        if "key" in node:
            check.add(node.at_value("key"), f"{what}: key must be a target column or a list of them")
        return ()
    for index, column in enumerate(raw):
        if column_names and column not in column_names:
            place = raw.at(index) if isinstance(raw, YamlList) else node.at_value("key")
            check.add(place, f"{what}: key column {column!r} is not among the mapped columns"
                      f"{closest(column, column_names)}")
    return tuple(raw)


def _columns(node: YamlMap, what: str, check: Checker) -> tuple[ColumnSpec, ...]:
    raw = node.get("columns")
    if raw is None:
        return ()
    columns_node = check.mapping(raw, node.at_value("columns"), f"{what}: columns")
    if columns_node is None:
        return ()
    if not columns_node:
        check.add(columns_node.where, f"{what}: columns must map at least one target column")
    specs = []
    for target, value in columns_node.items():
        if _is_lookup(value):
            continue  # parsed by _lookups
        spec = _column(str(target), value, columns_node.at_value(target), f"{what}: column {target!r}",
                       check)
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def _column(target: str, data: Any, where: Where, what: str, check: Checker) -> ColumnSpec | None:
    if isinstance(data, str):
        return ColumnSpec(target=target, where=where, sources=(data,))
    node = check.mapping(data, where, what)
    if node is None:
        return None
    check.only_keys(node, _COLUMN_KEYS, what)
    if ("value" in node) == ("from" in node):
        check.add(node.where, f"{what}: give exactly one of 'from' (source column) or 'value' (constant)")
        return None
    if "value" in node:
        extra = set(node) - {"value"}
        if extra:
            check.add(node.at_key(sorted(extra)[0]), f"{what}: a constant 'value' takes no other keys")
        return ColumnSpec(target=target, where=where, constant=node["value"])
    sources = _sources(node, what, check)
    steps = _transform_steps(node, what, check, multi=len(sources) > 1)
    value_map = _value_map(node, what, check)
    on_unmapped, default = _unmapped_policy(node, what, check, value_map is not None)
    return ColumnSpec(target=target, where=where, sources=sources, transforms=steps,
                      value_map=value_map, value_map_where=node.at_value("map") if "map" in node else None,
                      on_unmapped=on_unmapped, default=default)


def _sources(node: YamlMap, what: str, check: Checker) -> tuple[str, ...]:
    raw = node["from"]
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        return tuple(raw)
    check.add(node.at_value("from"), f"{what}: 'from' must be a source column or a list of them")
    return ()


def _transform_steps(node: YamlMap, what: str, check: Checker, multi: bool) -> tuple[TransformStep, ...]:
    if "transform" not in node:
        if multi:
            check.add(node.at_key("from"), f"{what}: several source columns need a combining "
                      "transform first (coalesce or concat)")
        return ()
    raw = node["transform"]
    items = raw if isinstance(raw, list) else [raw]
    steps = []
    for index, item in enumerate(items):
        place = raw.at(index) if isinstance(raw, YamlList) else node.at_value("transform")
        step = _transform_step(item, place, what, check)
        if step is not None:
            steps.append(step)
    _check_inputs(steps, multi, node, what, check)
    return tuple(steps)


def _transform_step(item: Any, where: Where, what: str, check: Checker) -> TransformStep | None:
    if isinstance(item, str):
        name, args = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        name, raw_args = next(iter(item.items()))
        if isinstance(raw_args, dict):
            args = dict(raw_args)
        elif raw_args is None:
            args = {}
        else:
            definition = transforms.TRANSFORMS.get(name)
            args = {definition.params[0]: raw_args} if definition and definition.params else {"": raw_args}
    else:
        check.add(where, f"{what}: a transform is a name or {{name: arguments}}, got {item!r}")
        return None
    if name not in transforms.TRANSFORMS:
        hint = closest(str(name), set(transforms.TRANSFORMS))
        check.add(where, f"{what}: unknown transform {name!r}{hint}")
        return None
    return TransformStep(name=name, args=args, where=where)


def _check_inputs(steps: list[TransformStep], multi: bool, node: YamlMap, what: str,
                  check: Checker) -> None:
    for index, step in enumerate(steps):
        takes_many = transforms.TRANSFORMS[step.name].multi_input
        if takes_many and (index > 0 or not multi):
            check.add(step.where, f"{what}: {step.name} combines several source columns; "
                      "use it first, with 'from: [col1, col2]'")
        if multi and index == 0 and not takes_many:
            check.add(step.where, f"{what}: several source columns need a combining transform first "
                      "(coalesce or concat)")


def _value_map(node: YamlMap, what: str, check: Checker) -> dict[Any, Any] | None:
    if "map" not in node:
        return None
    raw = check.mapping(node["map"], node.at_value("map"), f"{what}: map")
    if raw is None:
        return None
    if not raw:
        check.add(raw.where, f"{what}: map is empty")
    return dict(raw)


def _unmapped_policy(node: YamlMap, what: str, check: Checker, has_map: bool) -> tuple[str, Any]:
    policy = node.get("on_unmapped", "dead_letter")
    if policy is None and "on_unmapped" in node:  # `on_unmapped: null` is YAML's null, not text
        policy = "null"
    if ("on_unmapped" in node or "default" in node) and not has_map:
        key = "on_unmapped" if "on_unmapped" in node else "default"
        check.add(node.at_key(key), f"{what}: {key} only applies to a column with a 'map'")
    if "default" in node:
        if "on_unmapped" in node:
            check.add(node.at_key("default"), f"{what}: give on_unmapped or default, not both")
        return "default", node["default"]
    if policy not in _UNMAPPED_POLICIES:
        check.add(node.at_value("on_unmapped"), f"{what}: on_unmapped must be dead_letter, null or "
                  f"keep (or use 'default: X'), got {policy!r}{closest(str(policy), _UNMAPPED_POLICIES)}")
        policy = "dead_letter"
    return policy, NO_VALUE


def _conditions(node: YamlMap, what: str, check: Checker) -> tuple[Condition, ...]:
    if "where" not in node:
        return ()
    raw = check.mapping(node["where"], node.at_value("where"), f"{what}: where")
    if raw is None:
        return ()
    conditions = []
    for column, test in raw.items():
        place = raw.at_value(column)
        if isinstance(test, dict):
            if len(test) != 1:
                check.add(place, f"{what}: where.{column} takes one operator, e.g. {{in: [a, b]}}")
                continue
            op, value = next(iter(test.items()))
            if op not in FILTER_OPS:
                check.add(place, f"{what}: where.{column}: unknown operator {op!r}"
                          f"{closest(str(op), FILTER_OPS)}; use one of {sorted(FILTER_OPS)}")
                continue
            if op in {"in", "not_in"} and not isinstance(value, list):
                check.add(place, f"{what}: where.{column}.{op} needs a list")
                continue
            if op == "is_null" and not isinstance(value, bool):
                check.add(place, f"{what}: where.{column}.is_null needs true or false")
                continue
            if op not in {"in", "not_in"} and isinstance(value, list | dict):
                check.add(place, f"{what}: where.{column}.{op} needs a single value, not a list or "
                          "mapping (a list of values goes with in or not_in)")
                continue
            conditions.append(Condition(str(column), str(op), value, place))
        elif isinstance(test, list):
            check.add(place, f"{what}: where.{column}: a list of values needs an operator, "
                      f"e.g. {{in: [a, b]}}")
        else:
            conditions.append(Condition(str(column), "eq", test, place))
    return tuple(conditions)


def check_across(specs: list[MappingSpec], check: Checker, default_schema: str | None = None) -> None:
    """Rules between mappings: unique names; fan-in mappings own disjoint key slices; the
    mappings of one source table name the same row key."""
    seen: dict[str, MappingSpec] = {}
    for spec in specs:
        if spec.name in seen:
            check.add(spec.where, f"mapping name {spec.name!r} is also used at "
                      f"{seen[spec.name].where.file}:{seen[spec.name].where.line}")
        seen[spec.name] = spec
    by_target: dict[tuple[str | None, str], list[MappingSpec]] = {}
    for spec in specs:
        by_target.setdefault((spec.target_schema or default_schema, spec.target), []).append(spec)
    for group in by_target.values():
        _check_slices(group, check)
    _check_source_keys(specs, check)


def _check_source_keys(specs: list[MappingSpec], check: Checker) -> None:
    """Snapshot, reconcile and repairs read a source table by one key, whichever mapping asks."""
    first: dict[tuple[str, str], MappingSpec] = {}
    for spec in specs:
        other = first.setdefault((spec.source, spec.table), spec)
        if other.source_key != spec.source_key:
            check.add(spec.source_key_where or spec.where,
                      f"mapping {spec.name!r} reads {spec.source}.{spec.table} like mapping "
                      f"{other.name!r}, but names source_key {_key_text(spec.source_key)} where "
                      f"{other.name!r} names {_key_text(other.source_key)}; every mapping of one "
                      "source table must name the same source_key (or none)")


def _key_text(key: tuple[str, ...]) -> str:
    return f"[{', '.join(key)}]" if key else "none (the primary key)"


def _check_slices(group: list[MappingSpec], check: Checker) -> None:
    if len({(s.source, s.table) for s in group}) < 2:
        return
    for index, spec in enumerate(group):
        if not spec.slice_values():
            check.add(spec.where, f"mapping {spec.name!r} writes target table {spec.target!r} with "
                      "other mappings, so it needs a constant key column marking its slice "
                      "(e.g. channel: {value: shop})")
            continue
        for other in group[index + 1:]:
            if other.slice_values() and slices_collide(spec, other):
                _collision(check, other, spec)
                _collision(check, spec, other)


def _collision(check: Checker, spec: MappingSpec, other: MappingSpec) -> None:
    """One side of two colliding slices, at `spec`'s place, naming `other` and its place."""
    check.add(spec.where, f"mapping {spec.name!r} and mapping {other.name!r} write the same slice of "
              f"{spec.target!r}: {spec.slice_values()}; give each a distinct constant key value "
              f"({other.name!r} is at {other.where.file}:{other.where.line})")


def slices_collide(a: MappingSpec, b: MappingSpec) -> bool:
    """Two slices can collide unless some constant key column differs between them."""
    a_slice, b_slice = a.slice_values(), b.slice_values()
    shared = set(a_slice) & set(b_slice)
    # Compared as text: `{value: 1}` and `{value: "1"}` land as the same value in a text column.
    return all(str(a_slice[c]) == str(b_slice[c]) for c in shared)


# --------------------------------------------------------------------------- identity


def _is_lookup(value: Any) -> bool:
    return isinstance(value, dict) and "lookup" in value


def _key_expression(target: str, data: Any, where: Where, what: str, check: Checker) -> ColumnSpec | None:
    """A match key or a lookup's `by`: a source column, or {from, transform, map} (no constant)."""
    spec = _column(target, data, where, what, check)
    if spec is not None and spec.is_constant:
        check.add(where, f"{what}: a key must come from a source column ('from'), not a constant 'value'")
        return None
    return spec


def _lookups(node: YamlMap, what: str, check: Checker) -> tuple[LookupSpec, ...]:
    columns = node.get("columns")
    if not isinstance(columns, YamlMap):
        return ()
    lookups = []
    for target, value in columns.items():
        if not _is_lookup(value):
            continue
        place = columns.at_value(target)
        column_what = f"{what}: column {target!r}"
        if not isinstance(value, YamlMap):
            continue
        extra = sorted(set(value) - {"lookup"})
        if extra:
            check.add(value.at_key(extra[0]), f"{column_what}: a lookup column takes no other keys "
                      f"(got {extra[0]!r})")
        spec = check.mapping(value["lookup"], value.at_value("lookup"), f"{column_what}: lookup")
        if spec is None:
            continue
        check.only_keys(spec, _LOOKUP_KEYS, f"{column_what}: lookup")
        check.require(spec, ["identity", "key", "by"], f"{column_what}: lookup")
        identity = check.text(spec, "identity", f"{column_what}: lookup") or ""
        kind = check.text(spec, "key", f"{column_what}: lookup") or ""
        by = (_key_expression(str(target), spec["by"], spec.at_value("by"), f"{column_what}: lookup.by",
                              check) if "by" in spec else None)
        if identity and kind and by is not None:
            lookups.append(LookupSpec(str(target), identity, kind, by, place))
    return tuple(lookups)


def _identity(node: YamlMap, what: str, check: Checker) -> IdentitySpec | None:
    block = f"{what}: identity"
    spec = check.mapping(node["identity"], node.at_value("identity"), block)
    if spec is None:
        return None
    check.only_keys(spec, _IDENTITY_KEYS, block)
    check.require(spec, ["name", "match"], block)
    name = check.text(spec, "name", block) or ""
    column = check.text(spec, "column", block)
    match = spec.get("match")
    keys: list[tuple[str, ColumnSpec]] = []
    if "match" in spec:
        match_node = check.mapping(match, spec.at_value("match"), f"{block}.match")
        if match_node is not None and not match_node:
            check.add(match_node.where, f"{block}.match needs at least one match key, e.g. "
                      "{phone: phone}")
        for kind, data in (match_node or {}).items():
            if not isinstance(kind, str) or not _KIND.fullmatch(kind):
                check.add(match_node.at_key(kind), f"{block}.match: key kind {kind!r} must be a "
                          "name of letters, digits and _ (e.g. phone, unionid, app_user)")
                continue
            key = _key_expression(f"identity.match.{kind}", data, match_node.at_value(kind),
                                  f"{block}.match.{kind}", check)
            if key is not None:
                keys.append((kind, key))
    if not name:
        return None
    return IdentitySpec(name, column, tuple(keys), spec.where)


def _check_identity_columns(node: YamlMap, what: str, check: Checker, *, key: tuple[str, ...],
                            columns: tuple[ColumnSpec, ...], lookups: tuple[LookupSpec, ...],
                            identity: IdentitySpec | None) -> None:
    for lookup in lookups:
        if lookup.target in key:
            check.add(lookup.where, f"{what}: key column {lookup.target!r} cannot be a lookup "
                      "(person ids change when persons merge)")
    if identity is None or identity.column is None:
        return
    block = node.get("identity")
    place = block.at_value("column") if isinstance(block, YamlMap) else identity.where
    if identity.column in key:
        check.add(place, f"{what}: identity.column {identity.column!r} cannot be a key column "
                  "(person ids change when persons merge)")
    if any(c.target == identity.column for c in columns) or any(
            lk.target == identity.column for lk in lookups):
        check.add(place, f"{what}: identity.column {identity.column!r} is also listed under columns; "
                  "syncd fills it with the person id, so remove it there")


def parse_identities(data: Any, check: Checker) -> list[IdentityDef]:
    """The identity spaces a mapping file declares under `identities:` (problems into `check`)."""
    if not isinstance(data, YamlMap) or "identities" not in data:
        return []
    items = data["identities"]
    if not isinstance(items, YamlList):
        check.add(data.at_value("identities"), "'identities:' must be a list of identity spaces, "
                  "e.g. - {name: person}")
        return []
    found = []
    for index, item in enumerate(items):
        node = check.mapping(item, items.at(index), "an identity")
        if node is None:
            continue
        name = node.get("name") if isinstance(node.get("name"), str) else "?"
        what = f"identity {name!r}"
        check.only_keys(node, _IDENTITY_DEF_KEYS, what)
        check.require(node, ["name"], what)
        check.text(node, "name", what)
        salt_env = check.text(node, "salt_env", what)
        salt_file = check.text(node, "salt_file", what)
        if salt_env and salt_file:
            check.add(node.at_key("salt_file"), f"{what}: give salt_env or salt_file, not both")
        unified = _unified(node, what, check) if "unified" in node else None
        if name != "?":
            found.append(IdentityDef(name, node.where, salt_env, salt_file, unified))
    return found


def _unified(node: YamlMap, what: str, check: Checker) -> UnifiedSpec | None:
    block = f"{what}: unified"
    spec = check.mapping(node["unified"], node.at_value("unified"), block)
    if spec is None:
        return None
    check.only_keys(spec, _UNIFIED_KEYS, block)
    check.require(spec, ["table", "columns"], block)
    table = check.text(spec, "table", block) or ""
    key = check.text(spec, "key", block, "person_id") or "person_id"
    policies = []
    columns = check.mapping(spec["columns"], spec.at_value("columns"), f"{block}.columns") \
        if "columns" in spec else None
    for column, raw in (columns or {}).items():
        policy = _policy(str(column), raw, columns.at_value(column), f"{block}.columns.{column}", check)
        if policy is not None:
            policies.append(policy)
        if column == key:
            check.add(columns.at_key(column), f"{block}.columns: {column!r} is the key column; "
                      "syncd fills it with the person id")
    return UnifiedSpec(table, check.text(spec, "target_schema", block), key, tuple(policies), spec.where)


def _policy(column: str, raw: Any, where: Where, what: str, check: Checker) -> PolicySpec | None:
    accepted = f"one of {', '.join(p for p in POLICY_NAMES if p != 'prefer')} or {{prefer: [a, b]}}"
    if raw is None:
        return PolicySpec(column, "latest", where)
    if isinstance(raw, dict) and list(raw) == ["prefer"]:
        order = [raw["prefer"]] if isinstance(raw["prefer"], str) else raw["prefer"]
        if isinstance(order, list) and order and all(isinstance(n, str) for n in order):
            return PolicySpec(column, "prefer", where, tuple(order))
        problem = "prefer needs a list of mapping or source names, e.g. {prefer: [app, shop]}"
    elif raw == "prefer":
        problem = "prefer needs the order, e.g. {prefer: [app, shop]}"
    elif isinstance(raw, str) and raw in POLICY_NAMES:
        return PolicySpec(column, raw, where)
    elif isinstance(raw, str):
        problem = f"unknown policy {raw!r}{closest(raw, set(POLICY_NAMES))}; use {accepted}"
    else:
        problem = f"a policy is {accepted}, got {raw!r}"
    check.add(where, f"{what}: {problem}")
    return None


def link_identities(specs: list[MappingSpec], identities: list[IdentityDef], check: Checker,
                    source_names: set[str] | None = None) -> list[MappingSpec]:
    """Rules across files for identity spaces; returns the specs with their spaces attached."""
    spaces: dict[str, IdentityDef] = {}
    for identity in identities:
        if identity.name in spaces:
            first = spaces[identity.name].where
            check.add(identity.where, f"identity {identity.name!r} is also declared at "
                      f"{first.file}:{first.line}")
            continue
        spaces[identity.name] = identity
    members: dict[str, list[MappingSpec]] = {name: [] for name in spaces}
    for spec in specs:
        if spec.identity is not None:
            if spec.identity.name in spaces:
                members[spec.identity.name].append(spec)
            else:
                check.add(spec.identity.where, f"mapping {spec.name!r}: unknown identity "
                          f"{spec.identity.name!r}{closest(spec.identity.name, set(spaces))}"
                          f"{_declared(spaces)}")
    kinds = {name: {k for s in group for k, _ in s.identity.match}  # type: ignore[union-attr]
             for name, group in members.items()}
    for spec in specs:
        for lookup in spec.lookups:
            _check_lookup(spec, lookup, spaces, kinds, check)
    for name, identity in spaces.items():
        if not members[name]:
            check.add(identity.where, f"identity {name!r} is not used: no mapping has "
                      f"identity: {{name: {name}, ...}}")
        if identity.unified is not None:
            _check_unified(identity, members[name], specs, source_names, check)
    linked = {name: dataclasses.replace(identity, references=_references(name, specs))
              for name, identity in spaces.items()}
    return [_attach(spec, linked) for spec in specs]


def _declared(spaces: dict[str, IdentityDef]) -> str:
    if not spaces:
        return "; declare it under a top-level 'identities:' list, e.g. identities: [{name: person}]"
    return f"; declared: {sorted(spaces)}"


def _check_lookup(spec: MappingSpec, lookup: LookupSpec, spaces: dict[str, IdentityDef],
                  kinds: dict[str, set[str]], check: Checker) -> None:
    what = f"mapping {spec.name!r}: column {lookup.target!r}: lookup"
    if lookup.identity not in spaces:
        check.add(lookup.where, f"{what}: unknown identity {lookup.identity!r}"
                  f"{closest(lookup.identity, set(spaces))}{_declared(spaces)}")
    elif lookup.kind not in kinds[lookup.identity]:
        check.add(lookup.where, f"{what}: no mapping of identity {lookup.identity!r} matches on "
                  f"{lookup.kind!r}{closest(lookup.kind, kinds[lookup.identity])}; match keys: "
                  f"{sorted(kinds[lookup.identity])}")


def _check_unified(identity: IdentityDef, group: list[MappingSpec], specs: list[MappingSpec],
                   source_names: set[str] | None, check: Checker) -> None:
    assert identity.unified is not None
    mapped = {c.target for s in group for c in s.columns}
    names = {s.name for s in group} | {s.source for s in group} | set(source_names or ())
    what = f"identity {identity.name!r}: unified.columns"
    for policy in identity.unified.policies:
        if policy.column not in mapped:
            check.add(policy.where, f"{what}.{policy.column}: no mapping of identity "
                      f"{identity.name!r} maps column {policy.column!r}{closest(policy.column, mapped)}, "
                      "so it would always be NULL")
        for name in policy.prefer:
            if name not in names:
                check.add(policy.where, f"{what}.{policy.column}: prefer: {name!r} is neither a "
                          f"mapping of this identity nor a source{closest(name, names)}")
    for spec in specs:
        if spec.target == identity.unified.table and spec.target_schema == identity.unified.target_schema:
            check.add(identity.unified.where, f"identity {identity.name!r}: unified table "
                      f"{spec.target!r} is also written by mapping {spec.name!r}; syncd writes the "
                      "unified table itself")
            break


def _references(name: str, specs: list[MappingSpec]) -> tuple[tuple[str | None, str, str], ...]:
    found: dict[tuple[str | None, str, str], None] = {}
    for spec in specs:
        if spec.identity is not None and spec.identity.name == name and spec.identity.column:
            found[(spec.target_schema, spec.target, spec.identity.column)] = None
        for lookup in spec.lookups:
            if lookup.identity == name:
                found[(spec.target_schema, spec.target, lookup.target)] = None
    return tuple(found)


def _attach(spec: MappingSpec, spaces: dict[str, IdentityDef]) -> MappingSpec:
    if spec.identity is None and not spec.lookups:
        return spec
    identity = spec.identity
    if identity is not None:
        identity = dataclasses.replace(identity, space=spaces.get(identity.name))
    lookups = tuple(dataclasses.replace(lk, space=spaces.get(lk.identity)) for lk in spec.lookups)
    return dataclasses.replace(spec, identity=identity, lookups=lookups)
