"""Loading and checking everything before syncd touches data: mappings, sources, target.

Used by `syncd run` and `syncd validate --live`. Every problem found is reported, not the
first one only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import psycopg
import pymysql
from sqlalchemy import types

from syncd.config import Config, SourceConfig
from syncd.errors import ConfigError, Problem
from syncd.identity.space import IdentityArgsError
from syncd.mapping.plan import Mapping, compile_mapping, identity_sources
from syncd.mapping.spec import MappingSpec, UnifiedSpec, load_mappings
from syncd.mapping.transforms import TransformArgsError, TransformContext
from syncd.model import TargetTable
from syncd.sink.postgres import connect
from syncd.sink.target import TargetTableInfo, check_mapping, describe_tables
from syncd.source import checks
from syncd.yamlfile import Where


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
        except IdentityArgsError as exc:
            problem = exc.where.problem(f"mapping {spec.name!r}: {exc}")
            if problem not in problems:
                problems.append(problem)
            continue
        except TransformArgsError as exc:
            problems.append(_transform_problem(spec, exc))
            continue
        plans[spec.source].mappings.append(mapping)
    if problems:
        raise ConfigError(problems)
    return plans


def _transform_problem(spec: MappingSpec, exc: TransformArgsError) -> Problem:
    for column in [*spec.columns, *identity_sources(spec)]:
        for step in column.transforms:
            if f"'{step.name}'" in str(exc):
                return step.where.problem(f"mapping {spec.name!r}: column {column.target!r}: {exc}")
    return spec.where.problem(f"mapping {spec.name!r}: {exc}")


def check_target(conn: psycopg.Connection, config: Config,
                 specs: list[MappingSpec]) -> tuple[dict[TargetTable, TargetTableInfo | None], list[Problem]]:
    tables = {target_table(s, config) for s in specs} | set(_unified_tables(config, specs))
    infos = describe_tables(conn, tables)
    problems = []
    for spec in specs:
        table = target_table(spec, config)
        problems += check_mapping(spec, table, infos[table])
        problems += _identity_columns(spec, table, infos[table])
    for where, name, table, unified in _unified_tables(config, specs).values():
        problems += _unified_problems(where, name, table, unified, infos.get(table))
    return infos, problems


def _unified_tables(config: Config, specs: list[MappingSpec]) -> dict[TargetTable, tuple]:
    found: dict[TargetTable, tuple] = {}
    for spec in specs:
        space = spec.identity.space if spec.identity is not None else None
        if space is not None and space.unified is not None:
            table = TargetTable(space.unified.target_schema or config.target.schema, space.unified.table)
            found.setdefault(table, (space.unified.where, space.name, table, space.unified))
    return found


def _identity_columns(spec: MappingSpec, table: TargetTable, info: TargetTableInfo | None) -> list[Problem]:
    """The identity column and lookup columns exist in the target table and hold integers."""
    if info is None:
        return []
    wanted = [(lk.target, lk.where) for lk in spec.lookups]
    if spec.identity is not None and spec.identity.column:
        wanted.append((spec.identity.column, spec.identity.where))
    problems = []
    for column, where in wanted:
        found = info.columns.get(column)
        if found is None:
            problems.append(where.problem(f"mapping {spec.name!r}: target table {table} has no column "
                                          f"{column!r} for person ids"))
        elif not _holds_ids(found.type):
            problems.append(where.problem(f"mapping {spec.name!r}: column {column!r} of {table} is "
                                          f"{found.type}; person ids need an integer column (bigint)"))
    return problems


def _holds_ids(column_type: object) -> bool:
    return isinstance(column_type, types.Integer) and not isinstance(column_type, types.SmallInteger)


def _unified_problems(where: Where, name: str, table: TargetTable, unified: UnifiedSpec,
                      info: TargetTableInfo | None) -> list[Problem]:
    what = f"identity {name!r}: unified table {table}"
    if info is None:
        return [where.problem(f"{what} does not exist")]
    problems = []
    for column in [unified.key, *(p.column for p in unified.policies)]:
        if column not in info.columns:
            problems.append(where.problem(f"{what} has no column {column!r}"))
    if unified.key in info.columns and not _holds_ids(info.columns[unified.key].type):
        problems.append(where.problem(f"{what}: key column {unified.key!r} is "
                                      f"{info.columns[unified.key].type}; person ids need bigint"))
    if frozenset([unified.key]) not in info.unique_keys:
        problems.append(where.problem(f"{what}: {unified.key!r} must be its primary key or unique"))
    return problems


def check_source_tables(source: SourceConfig, specs: list[MappingSpec]) -> list[Problem]:
    """Every mapped table and source column exists on the live source."""
    problems: list[Problem] = []
    conn = checks.connect(source)
    try:
        for spec in (s for s in specs if s.source == source.name):
            columns = checks.table_columns(conn, source.database, spec.table)
            if columns is None:
                problems.append(spec.where.problem(
                    f"mapping {spec.name!r}: table {source.database}.{spec.table} does not exist on "
                    f"source {source.name}"))
                continue
            problems += _missing_columns(spec, source, columns)
            problems += _row_key_problems(spec, source, columns, conn)
    finally:
        conn.close()
    return problems


def _row_key_problems(spec: MappingSpec, source: SourceConfig, columns: dict[str, str],
                      conn: pymysql.connections.Connection) -> list[Problem]:
    """Copies, reconciles and repairs name rows by `source_key`, else by the primary key."""
    table = f"{source.database}.{spec.table}"
    if spec.source_key:
        problem = checks.source_key_problem(spec.source_key, columns,
                                            checks.unique_indexes(conn, source.database, spec.table))
        if problem is None:
            return []
        where = spec.source_key_where or spec.where
        return [where.problem(f"mapping {spec.name!r}: source_key [{', '.join(spec.source_key)}] "
                              f"cannot name the rows of {table} on source {source.name}: {problem}")]
    if checks.primary_key(conn, source.database, spec.table):
        return []
    return [spec.where.problem(f"mapping {spec.name!r}: table {table} on source {source.name} has no "
                               "primary key; name a unique key of NOT NULL columns with `source_key:` "
                               "in the mapping, or add a primary key")]


def _missing_columns(spec: MappingSpec, source: SourceConfig, columns: dict[str, str]) -> list[Problem]:
    problems = []
    for column in spec.columns:
        for name in column.sources:
            if name not in columns:
                problems.append(column.where.problem(
                    f"mapping {spec.name!r}: column {column.target!r} reads {name!r}, which "
                    f"{source.database}.{spec.table} on source {source.name} does not have"))
    for expression in identity_sources(spec):
        for name in expression.sources:
            if name not in columns:
                problems.append(expression.where.problem(
                    f"mapping {spec.name!r}: {expression.target} reads {name!r}, which "
                    f"{source.database}.{spec.table} on source {source.name} does not have"))
    for condition in spec.conditions:
        if condition.column not in columns:
            problems.append(condition.where.problem(
                f"mapping {spec.name!r}: where.{condition.column}: no such column in "
                f"{source.database}.{spec.table}"))
    return problems


def build_plans(config: Config) -> dict[str, SourcePlan]:
    """Load, check against the live target, and compile every mapping; ConfigError lists all problems."""
    specs = load_specs(config)
    conn = connect(config.target, "syncd:check")
    try:
        infos, problems = check_target(conn, config, specs)
    finally:
        conn.close()
    if problems:
        raise ConfigError(problems)
    return compile_all(config, specs, infos)
