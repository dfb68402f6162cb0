"""Consistent snapshots of a source with the binlog position they match: where a copy starts
(syncd/reconcile/snapshot.py), and the rows a repair window reads by key; and row keys.

MariaDB (and Percona Server) report the binlog position of a consistent snapshot itself
(`binlog_snapshot_file/position`), so the snapshot and the position agree exactly. On MySQL the
position is read just *before* the snapshot opens; streaming from there replays the few
transactions the copy already holds, and because every row event carries the full row and is
applied as an idempotent upsert/delete, the target converges to the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import pymysql

from syncd.config import SourceConfig
from syncd.errors import NoPrimaryKey, PreviewError, SourceUnavailable, UnusableSourceKey
from syncd.mapping.preview import SourceRows
from syncd.model import Position, Row
from syncd.source import charsets, dialect
from syncd.source.checks import (
    connect,
    primary_key,
    raw_text_columns,
    source_key_problem,
    table_columns,
    unique_indexes,
)
from syncd.source.values import apply_converters, select_converter
from syncd.sqlnames import my_name


@dataclass(frozen=True)
class SnapshotPoint:
    position: Position
    exact: bool
    """True when the server reported the snapshot's own binlog position."""


def row_key(conn: pymysql.connections.Connection, source: SourceConfig, table: str,
            source_key: tuple[str, ...] = (), mapping: str | None = None) -> tuple[str, ...]:
    """The columns naming one row of `table`: the mapping's `source_key`, else the primary key.

    Copies, reconciliations and repairs read rows by these columns, so a key that might match
    two rows (no such unique index, a nullable column) is refused rather than used.
    """
    who = f" (mapping {mapping!r})" if mapping else ""
    if source_key:
        problem = source_key_problem(source_key, table_columns(conn, source.database, table) or {},
                                     unique_indexes(conn, source.database, table))
        if problem is not None:
            raise UnusableSourceKey(source.name, f"table {source.database}.{table}{who}: source_key "
                                    f"[{', '.join(source_key)}] cannot name its rows: {problem}")
        return source_key
    key = primary_key(conn, source.database, table)
    if not key:
        raise NoPrimaryKey(source.name, f"table {source.database}.{table}{who} has no primary key: "
                           "syncd copies and compares rows by key, so add one (ALTER TABLE ... ADD "
                           "PRIMARY KEY) or name a unique key with `source_key:` in the mapping")
    return key


class SourceSnapshot:
    """One REPEATABLE READ snapshot of a source database: its binlog position, and rows by key."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self._conn: pymysql.connections.Connection | None = None
        self.zero_dates: dict[tuple, tuple[str, ...]] = {}
        """For the rows of the last `rows_by_key`, by key: columns whose zero date became None
        (rows without any left out)."""

    def open(self) -> SnapshotPoint:
        conn = connect(self.source, self.source.database)
        self._conn = conn
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
        before = dialect.binlog_status(conn)
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {str(k).lower(): str(v) for k, v in cur.fetchall()}
        if status.get("binlog_snapshot_file"):
            position = Position(status["binlog_snapshot_file"], int(status["binlog_snapshot_position"]))
            return SnapshotPoint(position, exact=True)
        if before is None:
            raise SourceUnavailable(self.source.name, "the server reports no binlog position (log_bin off?)")
        return SnapshotPoint(Position(str(before[0]), int(before[1])), exact=False)

    def read_point(self) -> Position:
        """A position no earlier than what this snapshot has seen (for the repair window)."""
        assert self._conn is not None
        with self._conn.cursor() as cur:
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {str(k).lower(): str(v) for k, v in cur.fetchall()}
            if status.get("binlog_snapshot_file"):
                return Position(status["binlog_snapshot_file"], int(status["binlog_snapshot_position"]))
        row = dialect.binlog_status(self._conn)
        if row is None:
            raise SourceUnavailable(self.source.name, "the server reports no binlog position (log_bin off?)")
        return Position(str(row[0]), int(row[1]))

    def row_key(self, table: str, source_key: tuple[str, ...] = (),
                mapping: str | None = None) -> tuple[str, ...]:
        """See `row_key`: the mapping's source_key, else the table's primary key."""
        assert self._conn is not None
        return row_key(self._conn, self.source, table, source_key, mapping)

    def rows_by_key(self, table: str, key: tuple[str, ...], keys: list[tuple]) -> dict[tuple, Row]:
        """The rows with these key values (see `row_key`) that exist in the snapshot, by key."""
        found: dict[tuple, Row] = {}
        self.zero_dates = {}
        select, raw = self._select_list(table)
        for start in range(0, len(keys), 1000):
            where, params = keys_condition(key, keys[start:start + 1000])
            query = f"SELECT {select} FROM {my_name(table)} WHERE {where}"
            for row, zeros in self._fetch(query, tuple(params), raw):
                row_key = tuple(row[k] for k in key)
                found[row_key] = row
                if zeros:
                    self.zero_dates[row_key] = zeros
        return found

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            finally:
                self._conn.close()
                self._conn = None

    def _select_list(self, table: str) -> tuple[str, dict[str, charsets.Charset]]:
        """Every column by name (`*` would leave out INVISIBLE ones), text read as bytes and
        decoded as the binlog reader decodes it (a few rows by key: a utf8mb4 column holding a
        surrogate, which PyMySQL cannot decode, reads too), and the text columns' charsets."""
        assert self._conn is not None
        raw = {name: charsets.lookup(charset) for name, charset in
               raw_text_columns(self._conn, self.source.database, table, every=True).items()}
        names = table_columns(self._conn, self.source.database, table) or {}
        if not names:
            return "*", raw  # the table is gone: the SELECT says so
        return ", ".join(charsets.select_raw(n) if n in raw else my_name(n) for n in names), raw

    def _fetch(self, query: str, params: tuple,
               raw: dict[str, charsets.Charset]) -> list[tuple[Row, tuple[str, ...]]]:
        """The rows, each with the columns whose zero date it read as None."""
        assert self._conn is not None
        try:
            with self._conn.cursor() as cur:
                cur.execute(query, params)
                names = [d[0] for d in cur.description]
                converters = [(d[0], f) for d in cur.description
                              if (f := select_converter(d[1])) is not None]
                converters += [(name, partial(charsets.text_or_marker, charset, name))
                               for name, charset in raw.items()]
                rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
        except pymysql.err.OperationalError as exc:
            raise SourceUnavailable(self.source.name, f"snapshot read failed: {exc.args[-1]}") from exc
        return [(row, apply_converters(row, converters)) for row in rows]


READ_AS_NULL = ("({c} = 0 OR YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0"
                " OR DAYOFMONTH({c}) > DAYOFMONTH(LAST_DAY({c})))")
"""A key column's value that syncd reads as NULL: a zero or partial-zero date, year 0, a day past
its month's end ('2024-02-30', stored under ALLOW_INVALID_DATES), a zero YEAR."""


def keys_condition(key: Sequence[str], keys: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
    """WHERE text (a PyMySQL format string) and parameters for the rows with these row keys.

    Row-key columns are NOT NULL (syncd.source.snapshot.row_key), so a None in a key is a date
    read as NULL (syncd/source/values.py): it matches the rows holding such a value in that
    column, which all map to the same key. `= NULL` would find none and lose the row.
    """
    plain = [k for k in keys if None not in k]
    parts, params = [], []
    if plain:
        marks = "(" + ", ".join(["%s"] * len(key)) + ")"
        parts.append(f"({', '.join(my_name(k) for k in key)}) IN ({', '.join([marks] * len(plain))})")
        params = [v for k in plain for v in k]
    for values in (k for k in keys if None in k):
        parts.append("(" + " AND ".join(
            READ_AS_NULL.format(c=my_name(column)) if value is None else f"{my_name(column)} = %s"
            for column, value in zip(key, values, strict=True)) + ")")
        params += [v for v in values if v is not None]
    return " OR ".join(parts) or "FALSE", params


def select_statement(table: str, key_columns: tuple[str, ...], where: str | None, limit: int,
                     columns: tuple[str, ...] = (), *, raw: frozenset[str] = frozenset()) -> str:
    """The SELECT preview runs, as a PyMySQL format string (run with no parameters, it reads `%%`
    as `%`). `where` is the operator's SQL, used as written (read-only). `columns`: every column
    of the table (`*` leaves out INVISIBLE ones); none: `*`. `raw`: text columns read as bytes."""
    selected = ", ".join(charsets.select_raw(c) if c in raw else my_name(c) for c in columns) or "*"
    query = f"SELECT {selected} FROM {my_name(table)}"
    if where and where.strip():
        query += f" WHERE ({where.replace('%', '%%')})"
    if key_columns:
        query += " ORDER BY " + ", ".join(my_name(k) for k in key_columns)
    return query + f" LIMIT {int(limit)}"


def read_source_rows(source: SourceConfig, table: str, where: str | None, limit: int,
                     source_key: tuple[str, ...] = ()) -> SourceRows:
    """Up to `limit` rows in row-key order (the mapping's `source_key`, else the primary key),
    read inside a READ ONLY transaction.

    Values are normalised as the initial load normalises them (`syncd.source.values`): TIMESTAMP
    columns as UTC instants, zero dates as NULL, BIT as integers, and so on; text is read as its
    bytes and decoded by syncd/source/charsets.py, as the copy and the binlog reader decode it,
    so bytes the server cannot convert are an `Undecodable` marker (a dead letter), never `?`.
    """
    conn = connect(source, source.database)
    try:
        key = source_key or primary_key(conn, source.database, table)
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute("START TRANSACTION READ ONLY")
            columns = tuple(table_columns(conn, source.database, table) or ())
            raw = {name: charsets.lookup(charset) for name, charset in
                   raw_text_columns(conn, source.database, table, every=True).items()}
            cur.execute(select_statement(table, key, where, limit, columns, raw=frozenset(raw)), ())
            names = [d[0] for d in cur.description]
            converters = [(d[0], f) for d in cur.description
                          if d[0] not in raw and (f := select_converter(d[1])) is not None]
            converters += [(name, partial(charsets.text_or_marker, charset, name))
                           for name, charset in raw.items() if name in names]
            rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
        conn.rollback()
    except pymysql.err.MySQLError as exc:
        message = exc.args[-1] if exc.args else str(exc)
        raise PreviewError(f"source {source.name} refused the query on {source.database}.{table}: "
                           f"{message}") from exc
    finally:
        conn.close()
    return SourceRows(key, rows, [apply_converters(row, converters) for row in rows])
