"""Pinning a table's columns to a binlog position: the only way entries enter the schema history.

`information_schema` describes a table as it is now; the schema history needs it as of a binlog
position P (a DDL's end, a snapshot's position, a stream's start). `pin` reads the columns while
holding the table's metadata lock, so that no DDL on the table can complete meanwhile, reads the
server's binlog position P2 under the same lock, and lists the binlog's statements between P
and P2 (`SHOW BINLOG EVENTS`, statements only, no row data). If none of them is a DDL on the
table, the columns read are the columns from P on: the entry is pinned. Otherwise the table's
columns between P and that DDL are not known, and the entry says so; the mappings of the table
then pause there rather than guess (the stream pins the later DDL when it gets to it).

The metadata lock: a `SELECT ... LIMIT 0` of the table inside a transaction takes a shared
metadata lock held until the transaction ends; an ALTER, RENAME or DROP of the table needs an
exclusive one to complete and is written to the binlog before it releases it (MySQL and MariaDB
alike), so every DDL on the table is either in the binlog before P2 or not yet done. The lock is
held for the few queries of the read: a DDL waiting for it waits that long.

`DdlScan` remembers what it listed, so a stream catching up on a long backlog with many DDLs
lists each stretch of binlog once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pymysql

from syncd.config import SourceConfig
from syncd.errors import SourceUnavailable
from syncd.model import ColumnSchema, Position, TableSchema
from syncd.source import dialect
from syncd.source.connection import connect
from syncd.source.ddl import table_effects
from syncd.source.table_maps import read_columns
from syncd.sqlnames import my_name

SCAN_PAGE = 10_000
"""Events listed per `SHOW BINLOG EVENTS` round trip."""
_USE = re.compile(r"^use `((?:[^`]|``)*)`; (.*)$", re.DOTALL)
_NO_TABLE = 1146


@dataclass(frozen=True)
class Ddl:
    """A DDL statement of the binlog that touches tables of the source database."""

    end: Position
    statement: str
    tables: frozenset[str]


def statement_of(info: str) -> tuple[str, str]:
    """(default schema, statement) of a Query event as `SHOW BINLOG EVENTS` shows it."""
    match = _USE.match(info)
    if match is None:
        return "", info
    return match.group(1).replace("``", "`"), match.group(2)


def touched(statement: str, schema: str, database: str) -> frozenset[str]:
    """The tables of `database` a statement changes or names as a new name."""
    names: set[str] = set()
    for effect in table_effects(statement, schema, database):
        names.add(effect.table)
        if effect.new_name:
            names.add(effect.new_name)
    return frozenset(names)


@dataclass
class DdlScan:
    """The DDLs of one database between binlog positions, listed once (see the module docstring)."""

    database: str
    start: Position | None = None
    end: Position | None = None
    found: list[Ddl] = field(default_factory=list)

    def between(self, conn: pymysql.connections.Connection, since: Position, until: Position) -> list[Ddl]:
        """The DDLs ending after `since`, up to `until`."""
        if self.start is None or self.end is None or since < self.start or since > self.end:
            self.start, self.end, self.found = since, since, []
        if until > self.end:
            self.found += _list_ddl(conn, self.end, until, self.database)
            self.end = until
        return [ddl for ddl in self.found if since < ddl.end <= until]


def _list_ddl(conn: pymysql.connections.Connection, since: Position, until: Position,
              database: str) -> list[Ddl]:
    found: list[Ddl] = []
    file, pos = since.file, since.pos
    files: list[str] | None = None
    with conn.cursor() as cur:
        while (file, pos) < (until.file, until.pos):
            cur.execute("SHOW BINLOG EVENTS IN %s FROM %s LIMIT %s", (file, pos, SCAN_PAGE))
            rows = cur.fetchall()
            for _, _, kind, _, end, info in rows:
                pos = max(pos, int(end))
                if str(kind) == "Query":
                    schema, statement = statement_of(str(info))
                    tables = touched(statement, schema, database)
                    if tables and Position(file, int(end)) <= until:
                        found.append(Ddl(Position(file, int(end)), statement, tables))
            if len(rows) < SCAN_PAGE:
                if file >= until.file:
                    break
                files = files if files is not None else _binlog_files(cur)
                file, pos = _next_file(files, file), 4
    return found


def _binlog_files(cur: pymysql.cursors.Cursor) -> list[str]:
    cur.execute("SHOW BINARY LOGS")
    return [str(row[0]) for row in cur.fetchall()]


def _next_file(files: list[str], file: str) -> str:
    later = [name for name in files if name > file]
    if not later:
        raise pymysql.err.OperationalError(1220, f"binlog file after {file} not found in SHOW BINARY LOGS")
    return min(later)


def pin(conn: pymysql.connections.Connection, database: str, tables: Iterable[str], since: Position, *,
        scan: DdlScan, metadata: str | None) -> list[TableSchema]:
    """An entry per table as of `since` (see the module docstring): its columns, `()` for a table
    that does not exist, or None with the reason when they cannot be pinned."""
    tables = sorted(set(tables))
    read, now = _read_locked(conn, database, tables)
    ddls = scan.between(conn, since, now)
    entries = []
    for table in tables:
        later = next((ddl for ddl in ddls if table in ddl.tables), None)
        columns, key = read[table]
        if later is None:
            note = f"pinned at {since}: information_schema read at {now}, no DDL on the table in between"
            entries.append(TableSchema(table, since, columns, key, note, metadata))
        else:
            note = (f"not known from {since}: information_schema describes the table after a later "
                    f"DDL on it at {later.end} ({later.statement[:200]!r}), so the columns of the rows "
                    f"written between those positions cannot be pinned")
            entries.append(TableSchema(table, since, None, (), note, metadata))
    return entries


Columns = tuple[tuple[ColumnSchema, ...], tuple[str, ...]]
"""A table's columns and primary key."""


def _read_locked(conn: pymysql.connections.Connection, database: str,
                 tables: list[str]) -> tuple[dict[str, Columns], Position]:
    """Each table's columns and key, and the binlog position, read under the tables' metadata locks."""
    read = {}
    with conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        try:
            exists = {table: _lock(cur, database, table) for table in tables}
            for table in tables:
                read[table] = read_columns(cur, database, table) if exists[table] else ((), ())
            status = dialect.binlog_status(conn)
        finally:
            cur.execute("COMMIT")
    if status is None:
        raise pymysql.err.OperationalError(1220, "the server's binary log is off")
    return read, Position(str(status[0]), int(status[1]))


def _lock(cur: pymysql.cursors.Cursor, database: str, table: str) -> bool:
    """Take the table's shared metadata lock for the transaction; False when there is no table."""
    try:
        cur.execute(f"SELECT 1 FROM {my_name(database)}.{my_name(table)} LIMIT 0", ())
    except pymysql.err.ProgrammingError as exc:
        if exc.args[0] == _NO_TABLE:
            return False
        raise
    return True


class Pinner:
    """The connection and binlog listing of the pins a reader makes at DDLs (syncd/source/pinning.py)."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self._conn: pymysql.connections.Connection | None = None
        self._scan = DdlScan(source.database)

    def pin(self, tables: list[str], at: Position, metadata: str | None) -> list[TableSchema]:
        if self._conn is None:
            self._conn = connect(self.source)
        try:
            return pin(self._conn, self.source.database, tables, at, scan=self._scan, metadata=metadata)
        except pymysql.err.Error as exc:
            self.close()
            raise SourceUnavailable(self.source.name, f"reading the columns of {', '.join(tables)} "
                                    f"after the DDL at {at} failed: {exc.args[-1]}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
