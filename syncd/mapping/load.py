"""The mapping files of a config, loaded and compiled (no server involved): one `SourcePlan`
per source with its compiled mappings. Every problem is reported at once, at its file:line:col."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

from syncd.config import Config, SourceConfig
from syncd.errors import ConfigError, IdentityArgsError, Problem, SyncdError, TransformArgsError
from syncd.mapping.identity import Space, compile_space
from syncd.mapping.plan import Mapping, compile_mapping
from syncd.mapping.spec import IdentityDef, MappingSpec, load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import TargetTable


def read_secret(kind: str, name: str) -> str:
    """Secrets for transforms (the `hash` salt): from the environment or a file."""
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise TransformArgsError(f"environment variable {name} is not set")
        return value
    try:
        return Path(name).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise TransformArgsError(f"cannot read secret file {name}: {exc.strerror}") from exc


def transform_context(source: SourceConfig | None) -> TransformContext:
    return TransformContext(secret=read_secret,
                            source_timezone=source.timezone if source else UTC)


@dataclass
class SourcePlan:
    """A source and the compiled mappings that read from it."""

    source: SourceConfig
    mappings: list[Mapping] = field(default_factory=list)

    def by_table(self) -> dict[str, list[Mapping]]:
        tables: dict[str, list[Mapping]] = {}
        for mapping in self.mappings:
            tables.setdefault(mapping.spec.table, []).append(mapping)
        return tables


def load_specs(config: Config) -> list[MappingSpec]:
    return load_mappings(config.mapping_paths, set(config.sources), config.target.schema)


def target_table(spec: MappingSpec, config: Config) -> TargetTable:
    return TargetTable(spec.target_schema or config.target.schema, spec.target)


@dataclass(frozen=True)
class TargetKinds:
    """What a target table's column types decide about the values mapped into it."""

    zoned: frozenset[str] = frozenset()
    """`timestamptz` columns: a naive datetime is read in the source's time zone."""
    textual: frozenset[str] = frozenset()
    """Text columns: a value is stored as its text (syncd/mapping/astext.py)."""
    clocks: dict[str, bool] = field(default_factory=dict)
    """`time` (False) and `timetz` (True) columns: a TIME is its time of day, or refused
    (syncd/mapping/timeofday.py)."""


def compile_all(config: Config, specs: list[MappingSpec],
                kinds: dict[TargetTable, TargetKinds] | None) -> dict[str, SourcePlan]:
    """Compile every mapping; transform argument errors are reported at their file:line.
    `kinds`: each existing target table's column kinds (None: no target was read)."""
    plans = {name: SourcePlan(source) for name, source in config.sources.items()}
    problems: list[Problem] = []
    for spec in specs:
        found = kinds.get(target_table(spec, config)) if kinds is not None else None
        try:
            mapping = compile_mapping(spec, transform_context(config.sources[spec.source]),
                                      config.target.schema, found.zoned if found else None,
                                      found.textual if found else (),
                                      clock_columns=found.clocks if found else None)
        except TransformArgsError as exc:  # identity salts too: one problem per declaration
            prefix = f"mapping {spec.name!r}: "
            problem = exc.problem(prefix) or spec.where.problem(f"{prefix}{exc}")
            if problem not in problems:
                problems.append(problem)
            continue
        plans[spec.source].mappings.append(mapping)
    if problems:
        raise ConfigError(problems)
    return plans


def load_spaces(config: Config) -> dict[str, Space]:
    """Every identity space of the mapping files, compiled (raises ConfigError on problems)."""
    specs: list[MappingSpec] = load_specs(config)
    kinds: dict[str, dict[str, None]] = {}
    definitions: dict[str, IdentityDef] = {}
    for spec in specs:
        if spec.identity is not None and spec.identity.space is not None:
            definitions[spec.identity.name] = spec.identity.space
            for kind, _ in spec.identity.match:
                kinds.setdefault(spec.identity.name, {})[kind] = None
    spaces = {}
    for name, definition in definitions.items():
        try:
            compiled, hasher = compile_space(definition, name, config.target.schema, read_secret)
        except IdentityArgsError as exc:
            raise ConfigError([exc.problem("")]) from exc
        spaces[name] = Space(definition, compiled, hasher, tuple(kinds.get(name, {})))
    return spaces


def choose(spaces: dict[str, Space], name: str | None) -> Space:
    """The space named, or the only one."""
    if name is not None:
        if name not in spaces:
            raise SyncdError(f"unknown identity {name!r}; the mapping files declare {sorted(spaces)}")
        return spaces[name]
    if len(spaces) != 1:
        raise SyncdError("the mapping files declare no identity" if not spaces else
                         f"several identities ({', '.join(sorted(spaces))}): choose one with --identity")
    return next(iter(spaces.values()))
