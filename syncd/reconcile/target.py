"""Reading a mapping's slice of a target table: by key range, by keys, or all its keys."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg import sql

from syncd.errors import SinkUnavailable
from syncd.model import TargetTable
from syncd.reconcile.compare import Canon, ColumnType, Key, Values, canonicalize_rows, stored_canon
from syncd.reconcile.layout import Layout
from syncd.reconcile.pushdown import sums_text, target_sums_sql


def table_sql(table: TargetTable) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(table.schema), sql.Identifier(table.name))


def column_types(conn: psycopg.Connection, table: TargetTable) -> dict[str, ColumnType]:
    rows = conn.execute(
        "SELECT column_name, data_type, numeric_scale, character_maximum_length "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (table.schema, table.name)).fetchall()
    return {r[0]: ColumnType(r[0], r[1], r[2], r[3]) for r in rows}


def slice_has_rows(conn: psycopg.Connection, table: TargetTable, slice_values: dict[str, Any]) -> bool:
    """Whether the target table holds any row of this slice (soft-deleted ones included)."""
    where = sql.SQL(" AND ").join([sql.SQL("{} = %s").format(sql.Identifier(k)) for k in slice_values]
                                  or [sql.SQL("true")])
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(table_sql(table), where)
    row = conn.execute(query, list(slice_values.values())).fetchone()
    return bool(row and row[0])


def session_zone(conn: psycopg.Connection) -> tzinfo:
    """The zone PostgreSQL reads naive timestamps in on this connection (the sink's too)."""
    row = conn.execute("SHOW TimeZone").fetchone()
    name = str(row[0]) if row else "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


_READ_AS_TEXT = frozenset({"json", "jsonb"})
"""Types read as their text: psycopg would parse JSON, and a JSON string read back would be
Python text and JSON null None (as SQL NULL); `json` has no hash for the checksum either."""


def _selected(name: str, kind: ColumnType | None) -> sql.Composable:
    column = sql.Identifier(name)
    if kind is not None and kind.data_type in _READ_AS_TEXT:
        return sql.SQL("{}::text").format(column)
    return column


class TargetReader:
    """Reads one mapping's slice; rows come back canonical, soft-deleted rows left out."""

    def __init__(self, conn: psycopg.Connection, layout: Layout, types: dict[str, ColumnType]) -> None:
        self.conn = conn
        self.layout = layout
        spec = layout.mapping.spec
        self.table = layout.mapping.table
        names = [*layout.target_key, *layout.compared]
        self.width = len(names)
        self.canons: list[Canon | None] = [
            stored_canon(types[n]) if n in types else None for n in names]
        soft = layout.soft_delete_column
        self._select = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(_selected(n, types.get(n)) for n in names), table_sql(self.table))
        # The slice, live rows only: a soft-deleted row counts as absent.
        self._slice = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k in layout.slice]
        if soft:
            self._slice.append(sql.SQL("{} IS NULL").format(sql.Identifier(soft)))
        self._slice_params = list(layout.slice.values())
        self._keys = len(layout.target_key)
        self.spec = spec

    def _where(self, extra: Sequence[sql.Composable]) -> sql.Composable:
        parts = [*self._slice, *extra]
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")

    def _rows(self, query: sql.Composable, params: Sequence[Any]) -> dict[Key, Values]:
        try:
            fetched = self.conn.execute(query, params).fetchall()
        except psycopg.OperationalError as exc:
            raise SinkUnavailable(f"target read failed: {exc}") from exc
        rows = canonicalize_rows(fetched, self.canons)
        keys = self._keys
        return {r[:keys]: r[keys:] for r in rows}

    def _range(self, lower: Sequence[Any] | None,
               upper: Sequence[Any] | None) -> tuple[sql.Composable, list[Any]]:
        columns = self.layout.range_columns
        assert columns is not None
        row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        marks = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
        extra: list[sql.Composable] = []
        params = list(self._slice_params)
        if lower is not None:
            extra.append(sql.SQL("{} > {}").format(row, marks))
            params.extend(lower)
        if upper is not None:
            extra.append(sql.SQL("{} <= {}").format(row, marks))
            params.extend(upper)
        return self._where(extra), params

    def range(self, lower: Sequence[Any] | None, upper: Sequence[Any] | None) -> dict[Key, Values]:
        """The slice's rows whose copied source key is in (lower, upper]; None: unbounded."""
        where, params = self._range(lower, upper)
        return self._rows(self._select + where, params)

    def checksum(self, lower: Sequence[Any] | None, upper: Sequence[Any] | None) -> str:
        """`count:sum of hash_record_extended` over the same rows `range` returns."""
        where, params = self._range(lower, upper)
        query = (sql.SQL("SELECT count(*), coalesce(sum(hash_record_extended(t, 0)), 0) FROM (")
                 + self._select + where + sql.SQL(") t"))
        try:
            row = self.conn.execute(query, params).fetchone()
        except psycopg.OperationalError as exc:
            raise SinkUnavailable(f"target read failed: {exc}") from exc
        assert row is not None
        return f"{row[0]}:{row[1]}"

    def pushed_sums(self, row_hash: sql.Composable, lower: Sequence[Any] | None,
                    upper: Sequence[Any] | None) -> str:
        """`count:sum:sum` of the pushed-down row hashes of the slice's rows in (lower, upper]."""
        where, params = self._range(lower, upper)
        query = target_sums_sql(row_hash, sql.SQL("FROM ") + table_sql(self.table) + where)
        try:
            row = self.conn.execute(query, params).fetchone()
        except psycopg.OperationalError as exc:
            raise SinkUnavailable(f"target read failed: {exc}") from exc
        return sums_text(row)

    def key_bounds(self) -> tuple[Any, Any]:
        """The slice's lowest and highest copied key (one key column)."""
        columns = self.layout.range_columns
        assert columns is not None and len(columns) == 1
        name = sql.Identifier(columns[0])
        query = sql.SQL("SELECT min({}), max({}) FROM {}").format(name, name, table_sql(self.table))
        row = self.conn.execute(query + self._where([]), self._slice_params).fetchone()
        assert row is not None
        return row[0], row[1]

    def range_with_checksum(self, lower: Sequence[Any] | None,
                            upper: Sequence[Any] | None) -> tuple[dict[Key, Values], str]:
        """`range` and `checksum` of one REPEATABLE READ snapshot."""
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return self.range(lower, upper), self.checksum(lower, upper)

    def by_keys(self, keys: Sequence[Key]) -> dict[Key, Values]:
        """The slice's rows with these target keys."""
        found: dict[Key, Values] = {}
        names = self.layout.target_key
        row = sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in names))
        one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(names)))
        for start in range(0, len(keys), 1000):
            part = keys[start:start + 1000]
            condition = sql.SQL("{} IN ({})").format(row, sql.SQL(", ").join([one] * len(part)))
            params = [*self._slice_params, *(v for k in part for v in k)]
            found.update(self._rows(self._select + self._where([condition]), params))
        return found

    def slice_keys(self, batch: int = 50000) -> Iterator[tuple[Key, dict[str, Any]]]:
        """Every live key of the slice, with the extra columns that name its source key."""
        extra = self.layout.extra_columns
        names = [*self.layout.target_key, *extra]
        selected = [sql.Identifier(n) for n in names]
        query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(selected),
                                                    table_sql(self.table)) + self._where([])
        key_canons = self.canons[:self._keys]
        with self.conn.transaction(), self.conn.cursor(name="syncd_reconcile_slice") as cur:
            cur.execute(query, self._slice_params)
            while rows := cur.fetchmany(batch):
                keys = canonicalize_rows([r[:self._keys] for r in rows], key_canons)
                for key, row in zip(keys, rows, strict=True):
                    yield key, dict(zip(extra, row[self._keys:], strict=True))
