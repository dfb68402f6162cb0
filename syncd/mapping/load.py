"""The mapping files of a config, loaded and compiled (no server involved): one `SourcePlan`
per source with its compiled mappings. Every problem is reported at once, at its file:line:col."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from syncd.config import Config, SourceConfig
from syncd.errors import ConfigError, Problem, TransformArgsError
from syncd.mapping.plan import Mapping, compile_mapping
from syncd.mapping.spec import MappingSpec, load_mappings
from syncd.mapping.transforms import TransformContext
from syncd.model import TargetTable

if TYPE_CHECKING:
    from syncd.sink.target import TargetTableInfo


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


def compile_all(config: Config, specs: list[MappingSpec],
                infos: dict[TargetTable, TargetTableInfo | None] | None) -> dict[str, SourcePlan]:
    """Compile every mapping; transform argument errors are reported at their file:line."""
    plans = {name: SourcePlan(source) for name, source in config.sources.items()}
    problems: list[Problem] = []
    for spec in specs:
        info = infos.get(target_table(spec, config)) if infos is not None else None
        aware = ({n for n, c in info.columns.items() if c.is_timestamptz} if info else None)
        try:
            mapping = compile_mapping(spec, transform_context(config.sources[spec.source]),
                                      config.target.schema, aware)
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
