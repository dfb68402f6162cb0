"""A MySQL 8.4 / 9.x protocol test double: a small server inside the test process.

No MySQL server can run on the test machines (only MariaDB), so syncd's MySQL paths are
tested against this double. It speaks the client/server protocol and the replication
protocol the way MySQL 8.4 does, answers what is server-, version- or replication-specific
itself, and forwards plain data SQL to a backing MariaDB database.

Starting it::

    with MySQLDouble(version="8.4.3", backend=mariadb_kwargs) as double:   # or "9.1.0"
        conn = double.connect()                          # PyMySQL, user syncd / secret
        conn = double.connect(tls=True)                  # verified TLS, CA at double.ca_path

``backend`` is a dict of PyMySQL connect() arguments (host, port, user, password) of a
MariaDB server; each client session gets its own backend connection, opened with the
session's database. Without it, data statements fail with error 1235 naming them.
``double.host``/``double.port``/``double.connection_kwargs()`` are what a syncd source
config points at. ``double.restart(new_binlog_file=True)`` restarts on the same port,
``double.cut_connections()`` / ``cut_dump_connections()`` drop connections abruptly,
``double.queries`` lists every statement received.

Configuring it: ``double.set_global("binlog_row_metadata", "MINIMAL")`` (any variable in
variables.py; ``binlog_checksum`` rotates the binlog as MySQL does),
``double.add_account(user, password, plugin=..., require_tls=...)``,
``double.clear_auth_cache()``.

Writing the binlog: ``double.transaction([Insert(t, rows), Update(t, pairs), Delete(t, rows)],
compressed=None, full_metadata=None, gtid=None, timestamp=None)`` appends one transaction
(GTID -- auto, ``"uuid:n"`` or tagged ``"uuid:tag:n"`` --, BEGIN, TABLE_MAP, rows, XID, or
all of it in one zstd TRANSACTION_PAYLOAD), ``double.ddl(sql, schema=...)`` a DDL,
``double.binlog.rotate()`` a new file; tables are ``Table(schema, name, (Col(...), ...))``.

Modules: wire (packets), auth (handshake, caching_sha2_password), tls, variables,
statements (what is answered, forwarded or refused), backend (forwarding), gtid,
serialization (MySQL's serialization framework), binlog_values (columns, row images, JSON),
binlog_events (event encoders), binlog (files and the builder), dump (the binlog sender),
server (connections and ``MySQLDouble``).
"""

from tests.mysql_double.auth import CACHING_SHA2, NATIVE
from tests.mysql_double.binlog import Appended, Delete, Insert, Update
from tests.mysql_double.binlog_values import Col, Table
from tests.mysql_double.gtid import Gtid, GtidSet
from tests.mysql_double.server import MySQLDouble

__all__ = ["CACHING_SHA2", "NATIVE", "Appended", "Col", "Delete", "Gtid", "GtidSet", "Insert",
           "MySQLDouble", "Table", "Update"]
