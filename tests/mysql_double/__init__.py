"""A MySQL 8.4 / 9.x protocol test double: a small server inside the test process.

No MySQL server can run on the test machines (only MariaDB), so syncd's MySQL-only paths are
tested against this double. It speaks the client/server protocol and the replication
protocol the way MySQL 8.4 does, answers what is server-, version- or replication-specific
itself, and forwards plain data SQL to a backing MariaDB database.

Start it (a listening thread on 127.0.0.1 and a free port, a thread per connection)::

    with MySQLDouble(version="8.4.3", backend=backend) as double:   # or version="9.1.0"
        conn = double.connect()                 # PyMySQL as user syncd / secret
        conn = double.connect(tls=True)         # verified TLS against double.ca_path
        conn = double.connect(tls=False)        # plain TCP (full auth then uses RSA)

``backend`` (optional) holds PyMySQL connect() arguments (host, port, user, password) of a
MariaDB server, e.g. the ``mariadb`` fixture's root; each client session gets its own
backend connection, opened with the session's database. Without one, data statements fail
with error 1235 naming them. statements.py lists what is answered, forwarded and refused.

Point syncd at it: a source config with ``host: double.host``, ``port: double.port``,
``user``/``password`` (``double.user``, ``double.password``), ``database`` a database of the
backend, and ``ssl_ca: double.ca_path`` for verified TLS; ``double.connection_kwargs()``
gives the same as PyMySQL arguments.

Control it: ``start()``, ``stop()``, ``restart(new_binlog_file=True)`` (same port, binlog
kept, a new file opened as MySQL does at startup, connections cut, the authentication cache
emptied), ``cut_connections()`` / ``cut_dump_connections()``, ``clear_auth_cache()``,
``add_account(user, password, plugin=CACHING_SHA2 | NATIVE, require_tls=False)``,
``set_global(name, value)`` for any variable of variables.py (``binlog_checksum`` rotates
the binlog, ``require_secure_transport`` refuses plain connections); ``queries`` lists
every statement received as (connection id, text).

Write its binlog: ``double.transaction(changes, compressed=None, full_metadata=None,
gtid=None, timestamp=None, schema="", partition=None)`` appends one transaction -- GTID
(auto-assigned, ``"uuid:n"`` or tagged ``"uuid:tag:n"``; anonymous with gtid_mode=OFF),
BEGIN, TABLE_MAP and rows events per change, XID -- compressed into one zstd
TRANSACTION_PAYLOAD_EVENT when asked or when binlog_transaction_compression=ON; changes are
``Insert(table, rows)``, ``Update(table, [(before, after)])``, ``Delete(table, rows)`` with
rows as dicts or tuples; tables are ``Table(schema, name, (Col(name, kind, ...), ...))``.
``double.ddl(sql, schema=...)`` appends a DDL, ``double.binlog.rotate()`` starts a new file;
each call returns ``Appended(file, start, end, gtid)``. Dumps (COM_BINLOG_DUMP and
COM_BINLOG_DUMP_GTID, blocking or not, heartbeats v1 and v2) are served as dump.py says.

Modules: wire (packets), auth (handshake, caching_sha2_password), tls, variables,
statements, backend (forwarding), gtid, serialization (MySQL's serialization framework),
binlog_values (columns, row images, JSON), binlog_events (event encoders), binlog (files
and the builder), dump (the binlog sender), server (connections and ``MySQLDouble``).
"""

from tests.mysql_double.auth import CACHING_SHA2, NATIVE
from tests.mysql_double.binlog import Appended, Delete, Insert, Update
from tests.mysql_double.binlog_values import Col, Table
from tests.mysql_double.gtid import Gtid, GtidSet
from tests.mysql_double.server import MySQLDouble

__all__ = ["CACHING_SHA2", "NATIVE", "Appended", "Col", "Delete", "Gtid", "GtidSet", "Insert",
           "MySQLDouble", "Table", "Update"]
