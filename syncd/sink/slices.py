"""Reading a mapping's slice of a target table (`SliceShape`): by key range, by keys, or all its
keys, and checksums of key ranges. Rows come back as the server gives them, passed through the
caller's `canonicalize` (reconcile's canonical forms), keyed by the slice's key."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg import sql

from syncd.errors import SinkError
from syncd.model import ColumnType, SliceShape, TargetTable
from syncd.sink.connection import translated
from syncd.sink.statements import pg_name
from syncd.sqlnames import ROW


def table_sql(table: TargetTable) -> sql.Composable:
    return pg_name(table.schema, table.name)


def column_types(conn: psycopg.Connection, table: TargetTable) -> dict[str, ColumnType]:
    with translated(f"reading the columns of {table}"):
        rows = conn.execute(
            "SELECT column_name, data_type, numeric_scale, character_maximum_length "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (table.schema, table.name)).fetchall()
    return {r[0]: ColumnType(r[0], r[1], r[2], r[3]) for r in rows}


def slice_has_rows(conn: psycopg.Connection, table: TargetTable, slice_values: dict[str, Any]) -> bool:
    """Whether the target table holds any row of this slice (soft-deleted ones included); a table
    that does not exist counts as holding rows (whoever writes into it reports it missing)."""
    where = sql.SQL(" AND ").join([sql.SQL("{} = %s").format(pg_name(k)) for k in slice_values]
                                  or [sql.SQL("true")])
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {})").format(table_sql(table), where)
    try:
        with translated(f"reading {table}"):
            row = conn.execute(query, list(slice_values.values())).fetchone()
    except SinkError as exc:
        if isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
            return True
        raise
    return bool(row and row[0])


def server_encoding(conn: psycopg.Connection) -> str:
    """The target database's encoding (`UTF8`, ...)."""
    with translated("reading the target's encoding"):
        found = conn.execute("SHOW server_encoding").fetchone()
    return str(found[0]) if found else ""


def server_version(conn: psycopg.Connection) -> str:
    return str(conn.info.server_version)


def session_zone(conn: psycopg.Connection) -> tzinfo:
    """The zone PostgreSQL reads naive timestamps in on this connection (the sink's too)."""
    with translated("reading the target's time zone"):
        row = conn.execute("SHOW TimeZone").fetchone()
    name = str(row[0]) if row else "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


Key = tuple[Any, ...]
Values = tuple[Any, ...]
Canonicalize = Callable[[list[tuple[Any, ...]]], list[tuple[Any, ...]]]
"""Rows as read -> rows as compared (key columns first, then the compared ones)."""


_READ_AS_TEXT = frozenset({"json", "jsonb", "bit", "bit varying", "money", "xml", "tsvector", "tsquery",
                           "point", "line", "lseg", "box", "path", "polygon", "circle"})
"""Types read as their text: psycopg would parse JSON, and a JSON string read back would be
Python text and JSON null None (as SQL NULL). The others have no extended hash, so the range
checksum (`hash_record_extended`) refused the whole mapping; psycopg reads them as that same
text anyway."""


def _selected(name: str, kind: ColumnType | None) -> sql.Composable:
    if kind is not None and kind.data_type in _READ_AS_TEXT:
        return sql.SQL("{}::text").format(pg_name(name))
    return pg_name(name)


Digests = dict[int, tuple[int, str | None]]
"""Bucket -> (rows, MD5 of their texts)."""


class TargetReader:
    """Reads one mapping's slice; soft-deleted rows left out. `types`: the table's column types
    (JSON columns are read as their text)."""

    def __init__(self, conn: psycopg.Connection, shape: SliceShape, canonicalize: Canonicalize,
                 types: dict[str, ColumnType] | None = None) -> None:
        self.conn = conn
        self.shape = shape
        self.table = shape.table
        self.canonicalize = canonicalize
        names = [*shape.key, *shape.compared]
        types = types or {}
        self._select = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(_selected(n, types.get(n)) for n in names), table_sql(self.table))
        # The slice, live rows only: a soft-deleted row counts as absent.
        self._slice = [sql.SQL("{} = %s").format(pg_name(k)) for k, _ in shape.slice]
        if shape.soft_delete_column:
            self._slice.append(sql.SQL("{} IS NULL").format(pg_name(shape.soft_delete_column)))
        self._slice_params = [v for _, v in shape.slice]
        self._keys = len(shape.key)

    def _where(self, extra: Sequence[sql.Composable]) -> sql.Composable:
        parts = [*self._slice, *extra]
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts) if parts else sql.SQL("")

    def _rows(self, query: sql.Composable, params: Sequence[Any]) -> dict[Key, Values]:
        with translated(f"reading {self.table}"):
            fetched = self.conn.execute(query, params).fetchall()
        rows = self.canonicalize(fetched)
        keys = self._keys
        return {r[:keys]: r[keys:] for r in rows}

    def _range(self, lower: Sequence[Any] | None, upper: Sequence[Any] | None,
               without: Sequence[Sequence[int]] = ()) -> tuple[sql.Composable, list[Any]]:
        extra: list[sql.Composable] = []
        params = list(self._slice_params)
        if lower is not None:
            extra.append(self._compared(">", len(lower)))
            params.extend(lower)
        if upper is not None:
            extra.append(self._compared("<=", len(upper)))
            params.extend(upper)
        if without:
            extra.append(self._not_among(len(without[0])))
            params.extend([key[i] for key in without] for i in range(len(without[0])))
        return self._where(extra), params

    def _not_among(self, width: int) -> sql.Composable:
        """`(range columns) NOT IN (the keys)`, one numeric array per column (compared by value
        whatever the integer or numeric type of the column)."""
        columns = self.shape.range_columns
        assert columns is not None
        row = sql.SQL("({})").format(sql.SQL(", ").join(pg_name(c) for c in columns[:width]))
        arrays = sql.SQL(", ").join(sql.SQL("%s::numeric[]") for _ in range(width))
        return sql.SQL("{} NOT IN (SELECT * FROM unnest({}))").format(row, arrays)

    def _compared(self, operator: str, width: int) -> sql.Composable:
        """`(first `width` range columns) <operator> (placeholders)`: a bound may be shorter than
        the key, and bounds its first columns (as syncd.source.chunks.range_condition)."""
        columns = self.shape.range_columns
        assert columns is not None
        row = sql.SQL("({})").format(sql.SQL(", ").join(pg_name(c) for c in columns[:width]))
        marks = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * width))
        return sql.SQL("{} {} {}").format(row, sql.SQL(operator), marks)

    def range(self, lower: Sequence[Any] | None, upper: Sequence[Any] | None) -> dict[Key, Values]:
        """The slice's rows whose copied source key is in (lower, upper]; None: unbounded."""
        where, params = self._range(lower, upper)
        return self._rows(self._select + where, params)

    def checksum(self, lower: Sequence[Any] | None, upper: Sequence[Any] | None) -> str:
        """`count:sum of hash_record_extended` over the same rows `range` returns."""
        where, params = self._range(lower, upper)
        # `syncd_row.*`, not a bare `syncd_row`: a bare name would mean a column of that name.
        query = (sql.SQL("SELECT count(*), coalesce(sum(hash_record_extended({}.*, 0)), 0) FROM (").format(
                 pg_name(ROW)) + self._select + where + sql.SQL(") AS {}").format(pg_name(ROW)))
        with translated(f"reading {self.table}"):
            row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return f"{row[0]}:{row[1]}"

    def digest(self, row_text: str, lower: Sequence[Any] | None, upper: Sequence[Any] | None,
               without: Sequence[Sequence[int]] = ()) -> tuple[int, str | None]:
        """(count, MD5 of the row texts in key order) of the slice's rows in (lower, upper]
        (`row_text`: SQL text over the table's columns, reconcile/pushdown.py), leaving out the
        rows of the source keys `without` (set aside by the source's digest)."""
        where, params = self._range(lower, upper, without)
        query = (sql.SQL("SELECT count(*), md5(string_agg({}, '' ORDER BY {})) FROM ").format(
            sql.SQL(row_text), self._order()) + table_sql(self.table) + where)
        with translated(f"reading {self.table}"):
            row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return int(row[0]), row[1]

    def bucket_digests(self, row_text: str, lower: Sequence[Any] | None, upper: Sequence[Any] | None,
                       width: int, without: Sequence[Sequence[int]] = ()) -> Digests:
        """`digest` per bucket of `width` values of the first key column (integer division, as
        MySQL's DIV)."""
        columns = self.shape.range_columns
        assert columns is not None
        where, params = self._range(lower, upper, without)
        bucket = sql.SQL("{} / {}").format(pg_name(columns[0]), sql.Literal(int(width)))
        query = (sql.SQL("SELECT {}, count(*), md5(string_agg({}, '' ORDER BY {})) FROM ").format(
            bucket, sql.SQL(row_text), self._order()) + table_sql(self.table) + where
            + sql.SQL(" GROUP BY 1"))
        with translated(f"reading {self.table}"):
            rows = self.conn.execute(query, params).fetchall()
        return {int(b): (int(n), d) for b, n, d in rows}

    def in_ranges(self, ranges: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> dict[Key, Values]:
        """The slice's rows whose copied source key lies in any of the (lower, upper] ranges."""
        within = [sql.SQL("({} AND {})").format(self._compared(">", len(lower)),
                                                self._compared("<=", len(upper))) for lower, upper in ranges]
        params = [*self._slice_params, *(v for lower, upper in ranges for v in (*lower, *upper))]
        condition = sql.SQL("({})").format(sql.SQL(" OR ").join(within))
        return self._rows(self._select + self._where([condition]), params)

    def at_source_keys(self, keys: Sequence[Sequence[Any]]) -> dict[Key, Values]:
        """The slice's rows whose copied source key is one of these."""
        columns = self.shape.range_columns
        assert columns is not None
        return self._among(columns, keys)

    def _order(self) -> sql.Composable:
        columns = self.shape.range_columns
        assert columns is not None
        return sql.SQL(", ").join(pg_name(c) for c in columns)

    def range_with_checksum(self, lower: Sequence[Any] | None,
                            upper: Sequence[Any] | None) -> tuple[dict[Key, Values], str]:
        """`range` and `checksum` of one REPEATABLE READ snapshot."""
        with self.snapshot():
            return self.range(lower, upper), self.checksum(lower, upper)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """The reads inside, of any reader on this connection, see one REPEATABLE READ snapshot."""
        with translated(f"reading {self.table}"), self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def by_keys(self, keys: Sequence[Key]) -> dict[Key, Values]:
        """The slice's rows with these target keys."""
        return self._among(self.shape.key, keys)

    def _among(self, names: Sequence[str], keys: Sequence[Sequence[Any]]) -> dict[Key, Values]:
        """The slice's rows whose `names` columns hold one of these keys."""
        found: dict[Key, Values] = {}
        row = sql.SQL("({})").format(sql.SQL(", ").join(pg_name(c) for c in names))
        one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(names)))
        for start in range(0, len(keys), 1000):
            part = keys[start:start + 1000]
            condition = sql.SQL("{} IN ({})").format(row, sql.SQL(", ").join([one] * len(part)))
            params = [*self._slice_params, *(v for k in part for v in k)]
            found.update(self._rows(self._select + self._where([condition]), params))
        return found

    def slice_keys(self, batch: int = 50000) -> Iterator[tuple[Key, dict[str, Any]]]:
        """Every live key of the slice, with the extra columns that name its source key."""
        extra = self.shape.extra_columns
        names = [*self.shape.key, *extra]
        selected = [pg_name(n) for n in names]
        query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(selected),
                                                    table_sql(self.table)) + self._where([])
        width = len(self.shape.key) + len(self.shape.compared)
        with translated(f"reading {self.table}"), self.conn.transaction(), \
                self.conn.cursor(name="syncd_reconcile_slice") as cur:
            cur.execute(query, self._slice_params)
            while rows := cur.fetchmany(batch):
                # canonical keys: padded to a compared row's width, as `canonicalize` expects
                padded = [(*r[:self._keys], *([None] * (width - self._keys))) for r in rows]
                keys = [r[:self._keys] for r in self.canonicalize(padded)]
                for key, row in zip(keys, rows, strict=True):
                    yield key, dict(zip(extra, row[self._keys:], strict=True))
