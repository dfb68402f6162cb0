"""Which statements a source server understands: the one place that chooses by flavour and version.

MySQL 8.4 removed the replication statements named MASTER and SLAVE (MySQL 8.4 release notes,
"SQL statements removed": SHOW MASTER STATUS, SHOW SLAVE HOSTS, RESET MASTER, ...); a server
answers them with a syntax error (1064). Their replacements came earlier (SHOW BINARY LOG STATUS
in 8.2.0; the ``source_`` names of the user variables a binlog dump reads in 8.0.26). MariaDB
keeps the old words and has replacements of its own (SHOW BINLOG STATUS since 10.5.2). So every
statement or user variable whose spelling depends on the server is chosen here, from the version
the server announces in its handshake (PyMySQL's ``get_server_info``, no round trip), and every
module that talks to a source asks this one: checks (start-up), snapshot and chunks (positions),
retention and history (file heads), and whatever comes next.

The binlog library's own statements need no choice: it asks ``SHOW GLOBAL VARIABLES LIKE
'BINLOG_CHECKSUM'`` and ``SHOW VARIABLES LIKE 'BINLOG_ROW_METADATA'`` and sets
``@master_binlog_checksum``, ``@master_heartbeat_period`` and ``@mariadb_slave_capability``,
all valid on every server (a dump thread reads the ``source_`` variable, else the ``master_``
one: ``get_user_var_from_alternatives`` in mysql-server sql/rpl_binlog_sender.cc, 8.0.26 to
9.x). Its one removed statement, SHOW MASTER STATUS, is sent only when it must find the current
position itself, which syncd never lets it do: every stream starts at an explicit file and offset
(syncd/source/binlog.py). tests/integration/test_mysql84.py records every statement a MySQL 8.4
double receives across syncd's paths and finds none of the removed ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pymysql

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Dialect:
    """A source server's flavour and version, and the spelling of what depends on them."""

    mariadb: bool
    version: tuple[int, int, int]

    @classmethod
    def parse(cls, server_version: str) -> Dialect:
        """From the version a server announces (``8.4.3``, ``5.5.5-10.11.6-MariaDB-log``)."""
        mariadb = "mariadb" in server_version.lower()
        numbers = _VERSION.findall(server_version)
        # MariaDB before 11 announces "5.5.5-" in front of its own version.
        found = numbers[-1] if mariadb and len(numbers) > 1 else (numbers[0] if numbers else ("0", "0", "0"))
        major, minor, patch = (int(part) for part in found)
        return cls(mariadb, (major, minor, patch))

    @property
    def name(self) -> str:
        return f"{'MariaDB' if self.mariadb else 'MySQL'} {'.'.join(map(str, self.version))}"

    @property
    def binlog_status(self) -> str:
        """The statement whose first row is the binlog's current (file, position, ...)."""
        if self.mariadb:
            return "SHOW BINLOG STATUS"
        if self.version >= (8, 2, 0):
            return "SHOW BINARY LOG STATUS"
        return "SHOW MASTER STATUS"  # MySQL 8.0 and 8.1 only: the one use of a removed statement

    @property
    def dump_setup(self) -> tuple[str, ...]:
        """What a connection runs before it asks for a binlog dump: it declares that it reads
        checksummed events (a server refuses to send them to a replica that does not), and on
        MariaDB that it understands GTID events (without it MariaDB 10.6.12 sends broken ones)."""
        if self.mariadb:
            return ("SET @master_binlog_checksum = @@global.binlog_checksum",
                    "SET @mariadb_slave_capability = 4")
        if self.version >= (8, 0, 26):
            return ("SET @source_binlog_checksum = @@global.binlog_checksum",)
        return ("SET @master_binlog_checksum = @@global.binlog_checksum",)


def of(conn: pymysql.connections.Connection) -> Dialect:
    """The dialect of the server `conn` is connected to."""
    return Dialect.parse(conn.get_server_info() or "")


def binlog_status(conn: pymysql.connections.Connection) -> tuple | None:
    """The first row of the server's binlog status (file, position, ...), or None when the binary
    log is off."""
    with conn.cursor() as cur:
        cur.execute(of(conn).binlog_status)
        return cur.fetchone()
