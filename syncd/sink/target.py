"""What the target tables look like (read with SQLAlchemy's inspector), and whether mappings fit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import sqlalchemy
from sqlalchemy import types
from sqlalchemy.engine import Inspector, ObjectKind

from syncd.config import Config
from syncd.errors import Problem
from syncd.mapping.load import TargetKinds, target_table
from syncd.mapping.spec import NO_VALUE, ColumnSpec, MappingSpec, UnifiedSpec
from syncd.model import TargetTable
from syncd.sink.grants import privilege_problems
from syncd.yamlfile import Where


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type: types.TypeEngine
    nullable: bool

    @property
    def is_timestamptz(self) -> bool:
        return isinstance(self.type, types.DateTime) and bool(self.type.timezone)

    @property
    def clock(self) -> bool | None:
        """`time`: False, `timetz`: True; None for any other type."""
        return bool(self.type.timezone) if isinstance(self.type, types.Time) else None

    @property
    def is_text(self) -> bool:
        """text, varchar, char (and the types SQLAlchemy reads as them)."""
        return isinstance(self.type, types.String)


@dataclass(frozen=True)
class TargetTableInfo:
    table: TargetTable
    columns: dict[str, TargetColumn]
    unique_keys: list[frozenset[str]]
    """Primary key and unique constraints/indexes, as column sets."""


def target_kinds(infos: Mapping[TargetTable, TargetTableInfo | None]) -> dict[TargetTable, TargetKinds]:
    """Each existing table's `timestamptz`, text and time columns: they decide how a mapping
    writes datetimes, which values it writes as text, and how it writes a TIME."""
    return {table: TargetKinds(frozenset(n for n, c in info.columns.items() if c.is_timestamptz),
                               frozenset(n for n, c in info.columns.items() if c.is_text),
                               {n: c.clock for n, c in info.columns.items() if c.clock is not None})
            for table, info in infos.items() if info is not None}


def describe_tables(conn: psycopg.Connection,
                    tables: Iterable[TargetTable]) -> dict[TargetTable, TargetTableInfo | None]:
    """Reflect the target tables over an existing connection; None for a missing table. Each
    schema's tables are read in one query per kind of fact (SQLAlchemy's multi-table
    reflection): a query per table and fact took a tenth of a second per table at start-up."""
    engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=lambda: conn,
                                      poolclass=sqlalchemy.pool.StaticPool)
    inspector = sqlalchemy.inspect(engine)
    wanted = list(dict.fromkeys(tables))
    found: dict[TargetTable, TargetTableInfo | None] = {}
    for schema in dict.fromkeys(t.schema for t in wanted):
        names = [t.name for t in wanted if t.schema == schema]
        found.update(_describe_schema(inspector, schema, names))
    return {table: found.get(table) for table in wanted}


def _describe_schema(inspector: Inspector, schema: str,
                     names: list[str]) -> dict[TargetTable, TargetTableInfo]:
    """The tables of `names` that exist in `schema` (tables, partitioned tables, views, ...)."""
    facts = {"schema": schema, "filter_names": names, "kind": ObjectKind.ANY}
    columns = inspector.get_multi_columns(**facts)
    primary = inspector.get_multi_pk_constraint(**facts)
    unique = inspector.get_multi_unique_constraints(**facts)
    indexes = inspector.get_multi_indexes(**facts)
    described = {}
    for key, reflected in columns.items():
        keys = [frozenset(primary.get(key, {}).get("constrained_columns") or ())]
        keys += [frozenset(u["column_names"]) for u in unique.get(key, [])]
        keys += [frozenset(i["column_names"]) for i in indexes.get(key, [])
                 if i["unique"] and not i.get("dialect_options", {}).get("postgresql_where")]
        table = TargetTable(schema, key[1])
        described[table] = TargetTableInfo(
            table, {c["name"]: TargetColumn(c["name"], c["type"], bool(c["nullable"])) for c in reflected},
            [k for k in keys if k])
    return described


def check_mapping(spec: MappingSpec, table: TargetTable,
                  info: TargetTableInfo | None) -> list[Problem]:
    """Problems between one mapping and its (live) target table."""
    where = spec.where
    if info is None:
        return [where.problem(f"mapping {spec.name!r}: target table {table} does not exist")]
    problems = []
    wanted = [c.target for c in spec.columns]
    wanted += [c for c in (spec.soft_delete_column, spec.commit_time_column) if c]
    for name in wanted:
        if name not in info.columns:
            column = spec.column(name)
            place = column.where if column else where
            problems.append(place.problem(f"mapping {spec.name!r}: target table {table} has no "
                                          f"column {name!r}"))
    if frozenset(spec.key) not in info.unique_keys:
        problems.append(where.problem(
            f"mapping {spec.name!r}: key {list(spec.key)} is neither the primary key nor a unique "
            f"index of {table}; keys there: {[sorted(k) for k in info.unique_keys] or 'none'}"))
    problems += _map_type_problems(spec, info)
    return problems


def _map_type_problems(spec: MappingSpec, info: TargetTableInfo) -> list[Problem]:
    """Constants a mapping writes (value:, map values, default:) must fit their target column."""
    problems = []
    for column in spec.columns:
        target = info.columns.get(column.target)
        if target is None:
            continue
        for what, value in _constants(column):
            if not value_fits(value, target.type):
                problems.append((column.value_map_where if what == "the map" and column.value_map_where
                                 else column.where).problem(
                    f"mapping {spec.name!r}: column {column.target!r} is {target.type} but {what} "
                    f"gives {value!r}"))
                break
    return problems


def _constants(column: ColumnSpec) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    if column.is_constant:
        found.append(("value", column.constant))
    if column.value_map is not None:
        found += [("the map", v) for v in column.value_map.values()]
    if column.default is not NO_VALUE:
        found.append(("default", column.default))
    return found


def value_fits(value: object, column_type: types.TypeEngine) -> bool:
    """Whether a constant from a mapping file can be stored in a column of this type."""
    if value is None:
        return True
    if isinstance(column_type, types.Boolean):
        return isinstance(value, bool)
    if isinstance(column_type, types.Integer):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(column_type, types.Numeric):
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    return True


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
    problems += privilege_problems(conn, config.target, Where(str(config.path), 1, 1),
                                   _table_places(config, specs))
    return infos, problems


def _table_places(config: Config, specs: list[MappingSpec]) -> dict[TargetTable, tuple[Where, str]]:
    """Each target table syncd writes, at (and named after) the first mapping or identity space
    that writes it."""
    places: dict[TargetTable, tuple[Where, str]] = {}
    for spec in specs:
        places.setdefault(target_table(spec, config), (spec.where, f"mapping {spec.name!r}"))
    for where, name, table, _unified in _unified_tables(config, specs).values():
        places.setdefault(table, (where, f"identity {name!r}: unified table"))
    return places


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
