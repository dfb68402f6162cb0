"""Start-up checks of a source server: the settings syncd needs to read its binlog exactly."""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from syncd.config import SourceConfig
from syncd.errors import Problem, SourceSettingsError
from syncd.mapping.plan import identity_sources
from syncd.mapping.spec import MappingSpec
from syncd.source import dialect, grants
from syncd.source.charsets import converts_over_select
from syncd.source.connection import connect, translated


@dataclass(frozen=True)
class Requirement:
    variable: str
    wanted: str
    why: str


_COMMON = [
    Requirement("log_bin", "ON", "the binary log must be on"),
    Requirement("binlog_format", "ROW", "only row events say exactly what changed"),
    Requirement("binlog_row_image", "FULL", "every change must carry whole rows"),
]
ROW_METADATA = "binlog_row_metadata"
"""Not a requirement: without FULL, the schema history names the columns (docs/sources.md)."""
_MARIADB = [
    Requirement("log_bin_compress", "OFF", "compressed events cannot be read and would be lost"),
    Requirement("binlog_alter_two_phase", "OFF", "two-phase ALTER events cannot be read"),
]
_MYSQL = [
    Requirement("binlog_row_value_options", "", "partial JSON updates cannot be replayed"),
]


@dataclass(frozen=True)
class ServerInfo:
    version: str
    is_mariadb: bool
    variables: dict[str, str]

    @property
    def row_metadata(self) -> str:
        """`binlog_row_metadata` in upper case ('' where the server has no such variable)."""
        return self.variables.get(ROW_METADATA, "").upper()

    @property
    def schema_history(self) -> str | None:
        """Why the source's row events are read with the schema history, or None (FULL)."""
        if self.row_metadata == "FULL":
            return None
        level = f"binlog_row_metadata={self.row_metadata}" if self.row_metadata else \
            f"no binlog_row_metadata ({self.version})"
        return (f"{level}: row events carry no column names, so syncd names them from its schema "
                "history (information_schema pinned to binlog positions; docs/sources.md)")


def server_info(conn: pymysql.connections.Connection) -> ServerInfo:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = str(cur.fetchone()[0])
        names = [r.variable for r in _COMMON + _MARIADB + _MYSQL] + [ROW_METADATA]
        cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})".format(
            ", ".join(["%s"] * len(names))), names)
        variables = {str(name).lower(): str(value) for name, value in cur.fetchall()}
    return ServerInfo(version, dialect.Dialect.parse(version).mariadb, variables)


def row_metadata(conn: pymysql.connections.Connection) -> str:
    """The server's `binlog_row_metadata` in upper case ('' on a server without the variable:
    MySQL before 8.0.14, MariaDB before 10.5)."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES LIKE 'binlog_row_metadata'")
        found = cur.fetchone()
    return str(found[1]).upper() if found else ""


def _normalise(value: str) -> str:
    upper = value.upper()
    return {"1": "ON", "0": "OFF"}.get(upper, upper)


def _shown(value: str) -> str:
    return value if value else "''"


def settings_problems(info: ServerInfo) -> list[str]:
    """One message per wrong setting, naming the variable and the fix."""
    requirements = _COMMON + (_MARIADB if info.is_mariadb else _MYSQL)
    problems = []
    for req in requirements:
        actual = info.variables.get(req.variable)
        if actual is None:
            if req in _COMMON:
                problems.append(f"{req.variable} is not available on {info.version}; syncd needs "
                                f"MySQL >= 8.0.14 or MariaDB >= 10.5 ({req.why})")
            continue
        if _normalise(actual) != _normalise(req.wanted) and req.variable == "log_bin":
            problems.append(f"log_bin is {actual}, syncd needs ON ({req.why}). Fix: put "
                            "log_bin = mysql-bin under [mysqld] in my.cnf and restart the server "
                            "(log_bin cannot be changed at runtime)")
        elif _normalise(actual) != _normalise(req.wanted):
            problems.append(
                f"{req.variable} is {_shown(actual)}, syncd needs {_shown(req.wanted)} "
                f"({req.why}). Fix: SET GLOBAL {req.variable} = '{req.wanted}' and put "
                f"{req.variable} = {_shown(req.wanted)} under [mysqld] in my.cnf"
            )
    return problems


def check_source(source: SourceConfig) -> ServerInfo:
    """Raise SourceSettingsError naming every wrong variable and missing grant, or return what
    the server is."""
    info, problems = source_problems(source)
    if problems:
        raise SourceSettingsError(source.name, "; ".join(problems))
    return info


def source_problems(source: SourceConfig) -> tuple[ServerInfo, list[str]]:
    """What the server is, and one message per wrong setting or missing grant."""
    conn = connect(source)
    try:
        with translated(source.name, "checking the server"):
            info = server_info(conn)
            problems = settings_problems(info) + _grant_problems(source, conn, info)
    finally:
        conn.close()
    return info, problems


def binlog_status(conn: pymysql.connections.Connection) -> tuple[str, int] | None:
    """The binlog file and offset the server writes at (needs REPLICATION CLIENT, on MariaDB
    BINLOG MONITOR); None when the binary log is off."""
    row = dialect.binlog_status(conn)
    return (str(row[0]), int(row[1])) if row else None


def _grant_problems(source: SourceConfig, conn: pymysql.connections.Connection,
                    info: ServerInfo) -> list[str]:
    """Every server-wide privilege syncd needs, each tried (syncd/source/grants.py)."""
    user = grants.current_user(conn, source.user)
    problems, at = [], None
    try:
        at = binlog_status(conn)
        if at is None:
            problems.append("the binlog status is empty: is log_bin on?")
    except pymysql.err.MySQLError as exc:
        if not grants.refused(exc):
            raise
        problems.append(str(grants.binlog_monitor(user, _monitor_grant(info), exc)))
    dump = grants.replication_slave(connect(source), user, at)
    return problems + ([str(dump)] if dump else [])


def _monitor_grant(info: ServerInfo) -> str:
    """The privilege the binlog status needs, by its name on this server."""
    return "BINLOG MONITOR" if info.is_mariadb else "REPLICATION CLIENT"


def table_columns(conn: pymysql.connections.Connection, database: str,
                  table: str) -> dict[str, str] | None:
    """Column name -> data type of a source table, or None when the table does not exist."""
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                    (database, table))
        rows = cur.fetchall()
    return {str(name): str(kind) for name, kind in rows} or None


def raw_text_columns(conn: pymysql.connections.Connection, database: str, table: str,
                     every: bool = False) -> dict[str, str]:
    """Column name -> charset of the text columns a SELECT must read as bytes: the server
    converts the others to utf8mb4 exactly (syncd/source/charsets.py: `converts_over_select`);
    with `every`, all of them (a utf8mb4 column holding a surrogate the server stored)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CHARACTER_SET_NAME IS NOT NULL "
                    "AND DATA_TYPE NOT IN ('enum', 'set')", (database, table))
        rows = cur.fetchall()
    return {str(name): str(charset) for name, charset in rows
            if every or not converts_over_select(str(charset))}


def primary_key(conn: pymysql.connections.Connection, database: str, table: str) -> tuple[str, ...]:
    with conn.cursor() as cur:
        cur.execute("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' "
                    "ORDER BY ORDINAL_POSITION", (database, table))
        return tuple(str(r[0]) for r in cur.fetchall())


@dataclass(frozen=True)
class UniqueIndex:
    """A PRIMARY or UNIQUE index of a source table."""

    name: str
    columns: tuple[str, ...]
    nullable: tuple[str, ...]
    """Its columns that allow NULL: rows holding NULL there need not be unique."""


def unique_indexes(conn: pymysql.connections.Connection, database: str, table: str) -> list[UniqueIndex]:
    """The PRIMARY and UNIQUE indexes of a source table, columns in index order."""
    with conn.cursor() as cur:
        cur.execute("SELECT INDEX_NAME, COLUMN_NAME, NULLABLE FROM information_schema.STATISTICS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0 "
                    "ORDER BY INDEX_NAME, SEQ_IN_INDEX", (database, table))
        rows = cur.fetchall()
    found: dict[str, tuple[list[str], list[str]]] = {}
    for index, column, nullable in rows:
        columns, nullables = found.setdefault(str(index), ([], []))
        columns.append(str(column))
        if str(nullable).upper() == "YES":
            nullables.append(str(column))
    return [UniqueIndex(name, tuple(columns), tuple(nullables))
            for name, (columns, nullables) in found.items()]


def source_key_problem(key: tuple[str, ...], columns: dict[str, str],
                       indexes: list[UniqueIndex]) -> str | None:
    """Why `key` cannot name the rows of a table, or None: it must be exactly the columns of
    its PRIMARY or a UNIQUE index, in index order, all NOT NULL (NULLs would let two rows
    share a key)."""
    missing = [c for c in key if c not in columns]
    if missing:
        return f"the table has no column {missing[0]!r}"
    index = next((i for i in indexes if set(i.columns) == set(key)), None)
    if index is None:
        known = "; ".join(f"{i.name} ({', '.join(i.columns)})" for i in indexes) or "none"
        return (f"({', '.join(key)}) is not the PRIMARY KEY or a UNIQUE key of the table, so it "
                f"may not name one row; list exactly the columns of one (unique keys: {known})")
    if index.columns != key:
        return (f"list the columns in the order of unique key {index.name}: [{', '.join(index.columns)}] "
                "(rows are read in key order, through that index)")
    if index.nullable:
        return (f"column {index.nullable[0]!r} of unique key {index.name} allows NULL, and rows "
                "with NULL there are not unique; make it NOT NULL or name another key")
    return None


def check_source_tables(source: SourceConfig, specs: list[MappingSpec]) -> list[Problem]:
    """Every mapped table is readable and has every source column on the live source."""
    problems: list[Problem] = []
    conn = connect(source)
    try:
        with translated(source.name, "checking the mapped tables"):
            user = grants.current_user(conn, source.user)
            for spec in (s for s in specs if s.source == source.name):
                problems += _table_problems(spec, source, conn, user)
    finally:
        conn.close()
    return problems


def _table_problems(spec: MappingSpec, source: SourceConfig, conn: pymysql.connections.Connection,
                    user: str) -> list[Problem]:
    denied = grants.select(conn, user, source.database, spec.table)
    if denied is not None:  # information_schema hides the table too: never "does not exist"
        return [spec.where.problem(f"mapping {spec.name!r}: source {source.name}: {denied}")]
    columns = table_columns(conn, source.database, spec.table)
    if columns is None:
        return [spec.where.problem(f"mapping {spec.name!r}: table {source.database}.{spec.table} does "
                                   f"not exist on source {source.name}")]
    return _missing_columns(spec, source, columns) + _row_key_problems(spec, source, columns, conn)


def _row_key_problems(spec: MappingSpec, source: SourceConfig, columns: dict[str, str],
                      conn: pymysql.connections.Connection) -> list[Problem]:
    """Copies, reconciles and repairs name rows by `source_key`, else by the primary key."""
    table = f"{source.database}.{spec.table}"
    if spec.source_key:
        problem = source_key_problem(spec.source_key, columns,
                                            unique_indexes(conn, source.database, spec.table))
        if problem is None:
            return []
        where = spec.source_key_where or spec.where
        return [where.problem(f"mapping {spec.name!r}: source_key [{', '.join(spec.source_key)}] "
                              f"cannot name the rows of {table} on source {source.name}: {problem}")]
    if primary_key(conn, source.database, spec.table):
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
