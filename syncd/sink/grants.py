"""What the target role may do, asked of PostgreSQL's own privilege functions.

`has_table_privilege`, `has_schema_privilege`, `has_database_privilege` and `pg_has_role` count
ownership, grants to PUBLIC and to the roles the role inherits from, exactly as the server does
when syncd writes (https://www.postgresql.org/docs/15/functions-info.html, table 9.69). What
syncd needs:

- the state schema (`target.state_schema`): USAGE and CREATE on it, and ownership of the tables
  in it, since every start adds what a newer syncd keeps (CREATE TABLE IF NOT EXISTS, ALTER
  TABLE ... ADD COLUMN IF NOT EXISTS, which only the owner may run). A state schema that does
  not exist yet is created at start, which takes CREATE on the database; created beforehand
  (`CREATE SCHEMA syncd AUTHORIZATION syncd`), it takes nothing on the database.
- TEMPORARY on the database: bulk writes go through temporary staging tables (PUBLIC has it by
  default).
- each mapped and unified target table: USAGE on its schema; SELECT, INSERT, UPDATE, DELETE on
  it (upserts read the conflicting row; soft deletes, and a source TRUNCATE propagated, are
  UPDATEs or DELETEs of rows, never TRUNCATE; reconcile reads).

Each problem names the privilege, the object and the statement that grants it.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from syncd.config import TargetConfig
from syncd.errors import Problem
from syncd.model import TargetTable
from syncd.sink.connection import translating
from syncd.sqlnames import pg_ident
from syncd.yamlfile import Where

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


@translating("checking the target role's privileges")
def privilege_problems(conn: psycopg.Connection, target: TargetConfig, where: Where,
                       tables: Mapping[TargetTable, tuple[Where, str]]) -> list[Problem]:
    """Every privilege the role lacks: the state schema's at `target.where` (else `where`), each
    table's at the place of (and named after) the first mapping that writes it."""
    role, database = conn.execute("SELECT current_user, current_database()").fetchone()
    at = target.where or where
    problems = [at.problem(f"target: {message}")
                for message in _state_problems(conn, target.state_schema, role, database)]
    problems += [at.problem(f"target: {message}") for message in _temporary(conn, role, database)]
    for table, (place, writer) in tables.items():
        problems += [place.problem(f"{writer}: {message}") for message in _table_problems(conn, table, role)]
    return problems


def _state_problems(conn: psycopg.Connection, schema: str, role: str, database: str) -> list[str]:
    found = conn.execute("SELECT has_schema_privilege(oid, 'USAGE'), has_schema_privilege(oid, 'CREATE') "
                         "FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if found is None:
        return _missing_schema(conn, schema, role, database)
    lacking = [name for name, held in zip(("USAGE", "CREATE"), found, strict=True) if not held]
    problems = []
    if lacking:
        problems.append(f"role {role} lacks {' and '.join(lacking)} on the state schema {schema} (syncd "
                        f"keeps its tables there and adds missing ones at start). Fix: GRANT USAGE, "
                        f"CREATE ON SCHEMA {pg_ident(schema)} TO {pg_ident(role)}")
    return problems + _foreign_tables(conn, schema, role)


def _missing_schema(conn: psycopg.Connection, schema: str, role: str, database: str) -> list[str]:
    may = conn.execute("SELECT has_database_privilege(current_database(), 'CREATE')").fetchone()[0]
    if may:
        return []
    return [f"the state schema {schema} does not exist and role {role} may not create it (that takes "
            f"CREATE on database {database}). Fix, as a superuser or the database's owner: CREATE "
            f"SCHEMA {pg_ident(schema)} AUTHORIZATION {pg_ident(role)}"]


def _foreign_tables(conn: psycopg.Connection, schema: str, role: str) -> list[str]:
    """State tables the role does not own: the ALTER TABLE at start would be refused."""
    names = [row[0] for row in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT pg_has_role(c.relowner, 'USAGE') "
        "ORDER BY c.relname", (schema,))]
    if not names:
        return []
    fixes = "; ".join(f"ALTER TABLE {pg_ident(schema, n)} OWNER TO {pg_ident(role)}" for n in names)
    return [f"role {role} does not own the state tables {', '.join(names)} in {schema} (each start "
            f"brings their definition up to date, which only the owner may). Fix: {fixes}"]


def _temporary(conn: psycopg.Connection, role: str, database: str) -> list[str]:
    if conn.execute("SELECT has_database_privilege(current_database(), 'TEMPORARY')").fetchone()[0]:
        return []
    return [f"role {role} lacks TEMPORARY on database {database} (bulk writes stage rows in temporary "
            f"tables). Fix: GRANT TEMPORARY ON DATABASE {pg_ident(database)} TO {pg_ident(role)}"]


def _table_problems(conn: psycopg.Connection, table: TargetTable, role: str) -> list[str]:
    """None for a table that does not exist (the table check reports it)."""
    checks = ", ".join(f"has_table_privilege(c.oid, '{p}')" for p in TABLE_PRIVILEGES)
    found = conn.execute(
        f"SELECT has_schema_privilege(n.oid, 'USAGE'), {checks} FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (table.schema, table.name)).fetchone()
    if found is None:
        return []
    name, problems = pg_ident(table.schema, table.name), []
    if not found[0]:
        problems.append(f"role {role} lacks USAGE on schema {table.schema}, so it cannot reach target "
                        f"table {table}. Fix: GRANT USAGE ON SCHEMA {pg_ident(table.schema)} TO "
                        f"{pg_ident(role)}")
    lacking = [p for p, held in zip(TABLE_PRIVILEGES, found[1:], strict=True) if not held]
    if lacking:
        problems.append(f"role {role} lacks {', '.join(lacking)} on target table {table} (syncd upserts, "
                        "updates and deletes its rows; reconcile reads them). Fix: GRANT "
                        f"{', '.join(lacking)} ON {name} TO {pg_ident(role)}")
    return problems
