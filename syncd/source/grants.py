"""What the source user may do, found by trying each thing syncd needs.

SHOW GRANTS is not read: roles, wildcards in database names, partial revokes and the
MySQL/MariaDB differences make reading it guesswork. Each privilege is proven by the smallest
use of it instead (https://dev.mysql.com/doc/refman/8.4/en/privileges-provided.html names what
needs which):

- REPLICATION SLAVE: a binlog dump (COM_BINLOG_DUMP) opened at the server's current position
  and closed after its first packet. It asks with server_id 0, as `mysqlbinlog` does, and
  without blocking: a dump with server_id 0 never replaces another replica's (or syncd's own
  running) dump, which a dump with the source's server_id would.
- REPLICATION CLIENT (MariaDB >= 10.5: BINLOG MONITOR): the binlog status statement
  (`checks.binlog_status`).
- SELECT: `SELECT 1 FROM <table> LIMIT 0` on each mapped table. Without SELECT a table is not
  even listed in information_schema, so "no such table" must never be concluded from there
  alone (errors 1142/1143, "command denied", name the missing grant).

Each refusal becomes a `GrantProblem` naming the privilege, the object, the user@host the
server knows syncd as, and the GRANT statement that fixes it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pymysql
from pymysql.constants import COMMAND, ER

from syncd.sqlnames import my_name

REFUSED = frozenset({ER.SPECIFIC_ACCESS_DENIED_ERROR, ER.TABLEACCESS_DENIED_ERROR,
                     ER.COLUMNACCESS_DENIED_ERROR, ER.DBACCESS_DENIED_ERROR})
"""Server errors that mean "you lack a privilege" (1227, 1142, 1143, 1044)."""

_DUMP_NON_BLOCK = 1
"""BINLOG_DUMP_NON_BLOCK: the server ends the dump at the end of the binlog instead of waiting."""
_PROBE_SERVER_ID = 0
"""A dump with server_id 0 replaces no other dump (the server's check for a replica's old
connection skips it), so the probe is safe while syncd itself streams."""


@dataclass(frozen=True)
class GrantProblem:
    """A privilege the source user lacks, proven by the server refusing what needs it."""

    grant: str
    on: str
    user: str
    why: str
    refusal: str

    def __str__(self) -> str:
        return (f"the user {self.user} lacks {self.grant} on {self.on}: {self.why} (the server "
                f"refused: {self.refusal}). Fix: GRANT {self.grant} ON {self.on} TO {self.user}")


def refused(exc: pymysql.err.MySQLError) -> bool:
    """Whether a server error is a missing privilege."""
    return bool(exc.args) and exc.args[0] in REFUSED


def refusal_text(exc: pymysql.err.MySQLError) -> str:
    code = exc.args[0] if exc.args else 0
    message = exc.args[1] if len(exc.args) > 1 else str(exc)
    return f"{code} {message}"


def current_user(conn: pymysql.connections.Connection, login: str) -> str:
    """The account the server matched syncd's login to, quoted as GRANT wants it: 'user'@'host'
    (a server that will not say: `login`@'%')."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            account = str(cur.fetchone()[0])
    except pymysql.err.MySQLError:
        account = f"{login}@%"
    name, _, host = account.rpartition("@")
    return f"'{name}'@'{host}'"


def replication_slave(conn: pymysql.connections.Connection, user: str,
                      at: tuple[str, int] | None) -> GrantProblem | None:
    """Open a binlog dump at `at` (the binlog's start when unknown) and close it after its first
    packet; the problem when the server refuses it for want of REPLICATION SLAVE. `conn` is
    spent (closed) by the dump."""
    file, pos = at or ("", 4)
    try:
        with conn.cursor() as cur:
            # A dump refuses a replica that does not say it reads checksums (not a grant matter).
            cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
        conn._execute_command(COMMAND.COM_BINLOG_DUMP,
                              struct.pack("<IHI", pos, _DUMP_NON_BLOCK, _PROBE_SERVER_ID) + file.encode())
        conn._read_packet()
    except pymysql.err.OperationalError as exc:
        if not refused(exc):
            return None  # past the privilege check (the server checks it first)
        return GrantProblem("REPLICATION SLAVE", "*.*", user, "without it the server refuses the "
                            "binlog stream syncd reads", refusal_text(exc))
    finally:
        conn.close()
    return None


def binlog_monitor(user: str, grant: str, exc: pymysql.err.MySQLError) -> GrantProblem:
    """The binlog status statement was refused: `grant` is the privilege's name on this server."""
    return GrantProblem(grant, "*.*", user, "without it syncd cannot read the binlog status and "
                        "files it checks before resuming", refusal_text(exc))


def select(conn: pymysql.connections.Connection, user: str, database: str,
           table: str) -> GrantProblem | None:
    """The problem when the user may not SELECT from the table (None also when the table does
    not exist: the table check says so)."""
    try:
        with conn.cursor() as cur:  # with (no) parameters: my_name's `%%` is read as `%`
            cur.execute(f"SELECT 1 FROM {my_name(database)}.{my_name(table)} LIMIT 0", ())
    except pymysql.err.MySQLError as exc:
        if refused(exc):
            return GrantProblem("SELECT", f"{_shown(database)}.{_shown(table)}", user,
                                "the initial copy, reconcile and repairs read it (without SELECT the server "
                                "does not even say whether it exists)", refusal_text(exc))
        if exc.args and exc.args[0] == ER.NO_SUCH_TABLE:
            return None
        raise
    return None


def _shown(name: str) -> str:
    """A MySQL identifier quoted as a statement to type in shows it."""
    return "`" + name.replace("`", "``") + "`"
