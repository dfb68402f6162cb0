"""The SQL of every write syncd makes to target tables, built once per statement shape.

One upsert builder serves single rows, staged groups and unified rows: `INSERT INTO table AS
syncd_target ... ON CONFLICT (key) DO UPDATE SET c = excluded.c` (the row wins over the stored
one in every column but the key). Identifiers go through `pg_name`, the names syncd introduces
are the reserved ones of syncd/sqlnames.py (its rules say why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from syncd.model import Delete, DeleteSlice, RowOp, SoftDelete, TargetTable, Upsert
from syncd.sqlnames import STAGE_PREFIX, STAGED, TARGET, pg_ident


def pg_name(*parts: str) -> sql.Composable:
    """A PostgreSQL identifier for psycopg's composition (quoted by `sqlnames.pg_ident`)."""
    return sql.SQL(pg_ident(*parts))


def stage_table(digest: str) -> sql.Composed:
    """The temporary staging table of one statement shape, schema-qualified (rule 4)."""
    return pg_name("pg_temp", STAGE_PREFIX + digest)


def names(columns: Sequence[str], qualifier: str | None = None) -> sql.Composed:
    """`"a", "b"` or, with a qualifier, `q."a", q."b"`."""
    parts = (qualifier,) if qualifier is not None else ()
    return sql.SQL(", ").join(pg_name(*parts, c) for c in columns)


def matching(columns: Sequence[str], left: str, right: str) -> sql.Composed:
    """`left."k" = right."k" AND ...`: both sides qualified (rule 2)."""
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(pg_name(left, c), pg_name(right, c)) for c in columns)


def upsert(table: sql.Composable, columns: Sequence[str], key: Sequence[str],
           rows: sql.Composable) -> sql.Composed:
    """`INSERT INTO table AS syncd_target (columns) <rows> ON CONFLICT (key) DO UPDATE SET ...`:
    the row wins over the stored one in every column but the key (rule 3)."""
    updates = [c for c in columns if c not in key]
    conflict = (sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(
        sql.SQL("{} = {}").format(pg_name(c), pg_name("excluded", c)) for c in updates))
        if updates else sql.SQL("DO NOTHING"))
    return sql.SQL("INSERT INTO {} AS {} ({}) {} ON CONFLICT ({}) {}").format(
        table, pg_name(TARGET), names(columns), rows, names(key), conflict)


class Statements:
    """SQL for each (table, shape), built once and reused."""

    def __init__(self) -> None:
        self._cache: dict[tuple, sql.Composed] = {}

    def upsert(self, op: Upsert) -> sql.Composed:
        # Once per row: one lookup, keyed by builtins (a dataclass's hash is a Python call).
        table, columns = op.table, tuple(op.values)
        cache_key = ("upsert", table.schema, table.name, columns, op.key)
        statement = self._cache.get(cache_key)
        if statement is None:
            statement = self._cache[cache_key] = _upsert_sql(table, columns, op.key)
        return statement

    def delete(self, op: Delete) -> sql.Composed:
        cache_key = ("delete", op.table, op.key)
        if cache_key not in self._cache:
            self._cache[cache_key] = sql.SQL("DELETE FROM {} WHERE {}").format(
                table_name(op.table), _key_match(op.key))
        return self._cache[cache_key]

    def soft_delete(self, op: SoftDelete) -> sql.Composed:
        cache_key = ("soft", op.table, op.key, op.column)
        if cache_key not in self._cache:
            self._cache[cache_key] = sql.SQL("UPDATE {} SET {} = %s WHERE {}").format(
                table_name(op.table), pg_name(op.column), _key_match(op.key))
        return self._cache[cache_key]

    def delete_slice(self, op: DeleteSlice) -> sql.Composed:
        columns = tuple(c for c, _ in op.slice)
        cache_key = ("slice", op.table, columns, op.soft_column)
        if cache_key not in self._cache:
            match = _key_match(columns) if columns else sql.SQL("true")
            if op.soft_column:
                statement = sql.SQL("UPDATE {} SET {} = %s WHERE {} AND {} IS NULL").format(
                    table_name(op.table), pg_name(op.soft_column), match, pg_name(op.soft_column))
            else:
                statement = sql.SQL("DELETE FROM {} WHERE {}").format(table_name(op.table), match)
            self._cache[cache_key] = statement
        return self._cache[cache_key]

    def for_op(self, op: RowOp) -> tuple[sql.Composed, tuple[Any, ...]]:
        if isinstance(op, Upsert):
            return self.upsert(op), tuple(op.values.values())
        if isinstance(op, Delete):
            return self.delete(op), op.key_values
        if isinstance(op, DeleteSlice):
            values = tuple(v for _, v in op.slice)
            return self.delete_slice(op), ((op.at, *values) if op.soft_column else values)
        return self.soft_delete(op), (op.at, *op.key_values)


def table_name(table: TargetTable) -> sql.Composable:
    return pg_name(table.schema, table.name)


def _key_match(key: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(" AND ").join(sql.SQL("{} = %s").format(pg_name(k)) for k in key)


def _upsert_sql(table: TargetTable, columns: tuple[str, ...], key: tuple[str, ...]) -> sql.Composed:
    values = sql.SQL("VALUES ({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    return upsert(table_name(table), columns, key, values)


def shape_of(op: RowOp) -> tuple[TargetTable, str, tuple[str, ...], tuple[str, ...]]:
    """What a staged group holds: the columns staged, in the order of `Statements.for_op`'s params."""
    if isinstance(op, Upsert):
        return op.table, "upsert", tuple(op.values), op.key
    if isinstance(op, SoftDelete):
        return op.table, "soft", (op.column, *op.key), op.key
    assert isinstance(op, Delete)
    return op.table, "delete", op.key, op.key


def apply_staged(stage: sql.Composed, table: TargetTable, kind: str, columns: tuple[str, ...],
                  key: tuple[str, ...]) -> sql.Composed:
    """The statement applying a staged group: the target aliased, every column qualified (sqlnames)."""
    staged, target = pg_name(STAGED), pg_name(TARGET)
    take = sql.SQL("WITH {} AS (DELETE FROM {} RETURNING {}) ").format(staged, stage, names(columns))
    if kind == "upsert":
        rows = sql.SQL("SELECT {} FROM {}").format(names(columns, STAGED), staged)
        return take + upsert(table_name(table), columns, key, rows)
    match = matching(key, TARGET, STAGED)
    if kind == "soft":
        return take + sql.SQL("UPDATE {} AS {} SET {} = {} FROM {} WHERE {}").format(
            table_name(table), target, pg_name(columns[0]), pg_name(STAGED, columns[0]),
            staged, match)
    return take + sql.SQL("DELETE FROM {} AS {} USING {} WHERE {}").format(
        table_name(table), target, staged, match)
