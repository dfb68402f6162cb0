"""The double's server: a listening thread, a thread per connection, commands dispatched.

Commands served: COM_QUIT, COM_INIT_DB, COM_QUERY (statements.py), COM_PING,
COM_BINLOG_DUMP and COM_BINLOG_DUMP_GTID (dump.py), COM_REGISTER_SLAVE (recorded for SHOW
REPLICAS). Any other command gets MySQL's error 1047 (08S01) "Unknown command".
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import socket
import struct
import tempfile
import threading
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from tests.mysql_double import auth, statements, wire
from tests.mysql_double import variables as sysvars
from tests.mysql_double.backend import COM_INIT_DB, COM_QUERY, Backend
from tests.mysql_double.binlog import Appended, Binlog, Change, Settings
from tests.mysql_double.dump import BinlogSender, DumpContext, DumpCut, DumpError, DumpRequest
from tests.mysql_double.tls import make_tls_files

COM_QUIT, COM_PING = 0x01, 0x0E
COM_BINLOG_DUMP, COM_REGISTER_SLAVE, COM_BINLOG_DUMP_GTID = 0x12, 0x15, 0x1E


@dataclass(frozen=True)
class Replica:
    """A COM_REGISTER_SLAVE, as SHOW REPLICAS lists it."""

    connection_id: int
    server_id: int
    host: str
    port: int
    uuid: str


class Session:
    """One client connection: its authentication, session variables and commands."""

    def __init__(self, double: MySQLDouble, sock: socket.socket, connection_id: int) -> None:
        self.double = double
        self.io = wire.PacketIO(sock)
        self.connection_id = connection_id
        self.peer_host = sock.getpeername()[0]
        self.capabilities = 0
        self.database: str | None = None
        self.user_vars: dict[str, object] = {}
        self.session_vars: dict[str, str] = {}
        self.in_transaction = False
        self.backend: Backend | None = None
        self.cut = threading.Event()
        self.dumping = False

    # -- life ------------------------------------------------------------------------------------

    def serve(self) -> None:
        try:
            if self._connect():
                self._command_loop()
        except (wire.ConnectionClosed, DumpCut, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.cut.set()
        with contextlib.suppress(OSError):
            self.io.sock.shutdown(socket.SHUT_RDWR)
        self.io.close()
        if self.backend is not None:
            self.backend.close()
        self.double._forget(self)

    def _connect(self) -> bool:
        nonce = auth.new_nonce()
        self.io.send(auth.greeting(self.double.version, self.connection_id, nonce, self.status))
        payload = self.io.read()
        if auth.is_ssl_request(payload):
            self.io.start_tls(self.double.tls_context)
            payload = self.io.read()
        response = auth.parse_handshake_response(payload)
        self.capabilities = response.capabilities
        try:
            auth.Authenticator(self.double.auth, self.io, nonce, self.peer_host).run(response)
            self._open_backend(response.database)
        except auth.AuthError as exc:
            self.io.send(exc.packet())
            return False
        self.io.send(wire.ok_packet(self.status))
        return True

    def _open_backend(self, database: str | None) -> None:
        self.database = database
        if self.double.backend_settings is None:
            return
        try:
            self.backend = Backend(self.double.backend_settings, database)
        except pymysql.err.OperationalError as exc:
            code, message = exc.args[0], exc.args[-1]
            raise auth.AuthError(code, "42000" if code == 1049 else "HY000", message) from exc

    def _command_loop(self) -> None:
        while not self.cut.is_set():
            payload = self.io.read()
            command = payload[0]
            if command == COM_QUIT:
                return
            handler = _COMMANDS.get(command)
            if handler is None:
                self.error(1047, "08S01", "Unknown command")
                continue
            if handler(self, payload) is False:
                return

    # -- replies ---------------------------------------------------------------------------------

    @property
    def status(self) -> int:
        autocommit = self.session_vars.get("autocommit", "ON") == "ON"
        return (wire.SERVER_STATUS_AUTOCOMMIT if autocommit else 0) | (
            wire.SERVER_STATUS_IN_TRANS if self.in_transaction else 0)

    @property
    def deprecate_eof(self) -> bool:
        return bool(self.capabilities & wire.CLIENT_DEPRECATE_EOF)

    def ok(self, affected_rows: int = 0) -> None:
        self.io.send(wire.ok_packet(self.status, affected_rows))

    def error(self, code: int, state: str, message: str) -> None:
        self.io.send(wire.err_packet(code, state, message))

    def rows(self, columns: Sequence[wire.ColumnDef], rows: Iterable[Sequence[object]]) -> None:
        for payload in wire.result_set(columns, rows, self.status, self.deprecate_eof):
            self.io.write(payload)
        self.io.flush()

    def forward(self, statement: str, command: int = COM_QUERY) -> bool:
        """Relay a statement to the backing database; False when there is none."""
        if self.backend is None:
            return False
        status = self.backend.relay(command, statement.encode(), self.io, self.deprecate_eof)
        self.in_transaction = bool(status & wire.SERVER_STATUS_IN_TRANS)
        return True

    # -- variables -------------------------------------------------------------------------------

    def select_variable(self, reference: str) -> int | str | None:
        """``SELECT @@reference`` (reference: name, global.name, session.name or local.name)."""
        scope, _, name = reference.rpartition(".")
        scope = scope.lower()
        spec = sysvars.spec(name)
        if scope in ("session", "local") and spec.scope == sysvars.GLOBAL:
            raise sysvars.VariableError(1238, "HY000", f"Variable '{name.lower()}' is a GLOBAL variable")
        if scope == "global" and spec.scope == sysvars.SESSION:
            raise sysvars.VariableError(1238, "HY000", f"Variable '{name.lower()}' is a SESSION variable")
        shown = self.double.global_value(name) if scope == "global" else self.variable(name)
        return sysvars.select_value(name, shown)

    def variable(self, name: str) -> str:
        key = name.lower()
        return self.session_vars.get(key, self.double.global_value(key))

    def all_variables(self, global_scope: bool) -> list[tuple[str, str]]:
        names = sorted(sysvars.SPECS)
        return [(n, self.double.global_value(n) if global_scope else self.variable(n)) for n in names
                if not (global_scope and sysvars.SPECS[n].scope == sysvars.SESSION)]

    def set_session_variable(self, name: str, value: object) -> None:
        spec = sysvars.spec(name)
        if spec.scope == sysvars.GLOBAL:
            raise sysvars.VariableError(1229, "HY000", f"Variable '{name.lower()}' is a GLOBAL variable "
                                        "and should be set with SET GLOBAL")
        self.session_vars[name.lower()] = sysvars.normalise(name, "" if value is None else str(value))

    def set_names(self, charset: str, collation: str | None) -> None:
        for name in ("character_set_client", "character_set_connection", "character_set_results"):
            self.session_vars[name] = charset.lower()
        if collation:
            self.session_vars["collation_connection"] = collation.lower()


# -- commands -----------------------------------------------------------------------------------


def _query(session: Session, payload: bytes) -> None:
    sql = payload[1:].decode("utf-8", "replace")
    session.double._log(session.connection_id, sql)
    statements.execute(session, sql)


def _ping(session: Session, _payload: bytes) -> None:
    session.ok()


def _init_db(session: Session, payload: bytes) -> None:
    name = payload[1:].decode()
    if session.backend is not None:
        session.backend.relay(COM_INIT_DB, payload[1:], session.io, session.deprecate_eof)
    else:
        session.ok()
    session.database = name


def _register_slave(session: Session, payload: bytes) -> None:
    (server_id,) = struct.unpack_from("<I", payload, 1)
    pos = 5
    fields = []
    for _ in range(3):
        length = payload[pos]
        fields.append(payload[pos + 1:pos + 1 + length].decode("utf-8", "replace"))
        pos += 1 + length
    (port,) = struct.unpack_from("<H", payload, pos)
    replica_uuid = str(session.user_vars.get("replica_uuid", session.user_vars.get("slave_uuid", "")))
    session.double._register(Replica(session.connection_id, server_id, fields[0], port, replica_uuid))
    session.ok()


def _dump(session: Session, payload: bytes) -> bool:
    try:
        request = (DumpRequest.by_gtid(payload) if payload[0] == COM_BINLOG_DUMP_GTID
                   else DumpRequest.by_position(payload))
    except (struct.error, IndexError, ValueError):
        session.error(1835, "HY000", "Malformed communication packet.")
        return False
    session.dumping = True
    session.double._kill_zombie_dumps(session, request.server_id)
    context = DumpContext(session.io, session.double.binlog, session.user_vars,
                          session.double.global_value("gtid_mode") == "ON", session.double.server_id,
                          session.cut)
    sender = BinlogSender(context, request)
    session.sender = sender  # type: ignore[attr-defined]
    sender.run()
    return False


_COMMANDS = {
    COM_QUERY: _query, COM_PING: _ping, COM_INIT_DB: _init_db, COM_REGISTER_SLAVE: _register_slave,
    COM_BINLOG_DUMP: _dump, COM_BINLOG_DUMP_GTID: _dump,
}


class MySQLDouble:
    """A MySQL 8.4 (or 9.x) server in the test process: see the package docstring."""

    def __init__(self, *, version: str = "8.4.3", server_id: int = 1, server_uuid: str | None = None,
                 user: str = "syncd", password: str = "secret",
                 backend: dict[str, Any] | None = None, workdir: Path | None = None) -> None:
        self.version = version
        self.server_id = server_id
        self.server_uuid = server_uuid or str(uuidlib.uuid4())
        self.backend_settings = backend
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="mysql-double-")) if workdir is None else workdir
        self.tls = make_tls_files(self.workdir)
        self.tls_context = self.tls.server_context()
        self.auth = auth.AuthState(accounts={user: auth.Account(user, password)})
        self.user, self.password = user, password
        self.port = _free_port()
        self.variables = sysvars.defaults(version, server_id, self.server_uuid, self.port)
        self.binlog = Binlog(server_id, self.server_uuid, version)
        self.queries: list[tuple[int, str]] = []
        """Every COM_QUERY statement received, as (connection id, text)."""
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()
        self._replicas: dict[int, Replica] = {}
        self._ids = itertools.count(8)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None

    host = "127.0.0.1"

    @property
    def ca_path(self) -> Path:
        return self.tls.ca_path

    # -- life ------------------------------------------------------------------------------------

    def start(self) -> MySQLDouble:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept, args=(listener,),
                                               name=f"mysql-double-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        self.cut_connections()

    def restart(self, new_binlog_file: bool = True) -> None:
        """Stop, then start on the same port: connections are cut, the authentication cache is
        emptied, the binlog is kept, and (as MySQL does at startup) a new binlog file is opened."""
        self.stop()
        self.binlog.restart(new_binlog_file)
        self.clear_auth_cache()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MySQLDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self, sock, next(self._ids))
            with self._lock:
                self._sessions.add(session)
            threading.Thread(target=session.serve, name=f"mysql-double-conn-{session.connection_id}",
                             daemon=True).start()

    # -- test controls ---------------------------------------------------------------------------

    def cut_connections(self, dumps_only: bool = False) -> int:
        """Close connections abruptly (all, or only binlog dumps); returns how many."""
        with self._lock:
            chosen = [s for s in self._sessions if s.dumping or not dumps_only]
        for session in chosen:
            session.cut.set()
            with contextlib.suppress(OSError):
                session.io.sock.shutdown(socket.SHUT_RDWR)
        with self.binlog.changed:
            self.binlog.changed.notify_all()
        return len(chosen)

    def cut_dump_connections(self) -> int:
        return self.cut_connections(dumps_only=True)

    def add_account(self, user: str, password: str, plugin: str = auth.CACHING_SHA2,
                    require_tls: bool = False) -> None:
        self.auth.accounts[user] = auth.Account(user, password, plugin, require_tls)

    def clear_auth_cache(self) -> None:
        """What a restart or FLUSH PRIVILEGES does: the next login needs full authentication."""
        self.auth.cache.clear()

    def set_global(self, name: str, value: str) -> None:
        """SET GLOBAL, with MySQL's side effects: a new binlog_checksum rotates the binlog."""
        key = name.lower()
        spec = sysvars.spec(key)
        if spec.scope == sysvars.SESSION:
            raise sysvars.VariableError(1228, "HY000", f"Variable '{key}' is a SESSION variable and "
                                        "can't be used with SET GLOBAL")
        if key in ("version", "server_uuid", "server_id", "log_bin", "gtid_executed", "port"):
            raise sysvars.VariableError(1238, "HY000", f"Variable '{key}' is a read only variable")
        shown = sysvars.normalise(key, value)
        previous = self.variables.get(key)
        self.variables[key] = shown
        if key == "binlog_checksum" and shown != previous:
            self.binlog.rotate(checksum=shown == "CRC32")
        if key == "require_secure_transport":
            self.auth.require_secure_transport = shown == "ON"

    def global_value(self, name: str) -> str:
        key = name.lower()
        sysvars.spec(key)
        if key == "gtid_executed":
            return self.binlog.executed.text()
        if key == "gtid_purged":
            return self.binlog.purged.text()
        return self.variables.get(key, "")

    def status_variables(self) -> dict[str, str]:
        """SHOW STATUS: MySQL has no binlog_snapshot_file/position (MariaDB and Percona do)."""
        with self._lock:
            connected = len(self._sessions)
        return {"Threads_connected": str(connected), "Uptime": "1"}

    def settings(self, compressed: bool | None = None, full_metadata: bool | None = None) -> Settings:
        """Binlog settings from the global variables, overridable per transaction."""
        variables = self.variables
        if full_metadata is None:
            full_metadata = variables["binlog_row_metadata"] == "FULL"
        if compressed is None:
            compressed = variables["binlog_transaction_compression"] == "ON"
        return Settings(variables["gtid_mode"] == "ON", full_metadata, compressed,
                        int(variables["binlog_transaction_compression_level_zstd"]))

    def transaction(self, changes: Sequence[Change], *, compressed: bool | None = None,
                    full_metadata: bool | None = None, **options: Any) -> Appended:
        """Append a row transaction written with the current variables (see Binlog.transaction)."""
        return self.binlog.transaction(changes, self.settings(compressed, full_metadata), **options)

    def ddl(self, sql: str, **options: Any) -> Appended:
        return self.binlog.ddl(sql, self.settings(), **options)

    def connection_kwargs(self, *, user: str | None = None, password: str | None = None,
                          tls: bool | None = None, **extra: Any) -> dict[str, Any]:
        """PyMySQL connect() arguments for this double. ``tls``: True verifies the server with the
        double's CA, False forces plain TCP, None leaves PyMySQL's default -- TLS whenever the
        server offers it, unverified (so a default login never takes the RSA path)."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "user": user or self.user,
                                  "password": self.password if password is None else password}
        if tls:
            kwargs["ssl"] = {"ca": str(self.ca_path)}
        elif tls is False:
            kwargs["ssl_disabled"] = True
        return {**kwargs, **extra}

    def connect(self, **extra: Any) -> pymysql.connections.Connection:
        return pymysql.connect(**self.connection_kwargs(**extra))

    # -- bookkeeping -----------------------------------------------------------------------------

    def replicas(self) -> list[Replica]:
        with self._lock:
            return list(self._replicas.values())

    def _register(self, replica: Replica) -> None:
        with self._lock:
            self._replicas[replica.connection_id] = replica

    def _forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)
            self._replicas.pop(session.connection_id, None)

    def _log(self, connection_id: int, sql: str) -> None:
        with self._lock:
            self.queries.append((connection_id, sql))

    def _kill_zombie_dumps(self, session: Session, server_id: int) -> None:
        """A new dump with the same replica UUID (or server_id) kills the older one, which then
        fails with 1236 (rpl_source.cc kill_zombie_dump_threads)."""
        uuid = session.user_vars.get("replica_uuid", session.user_vars.get("slave_uuid"))
        if not uuid and server_id == 0:
            return
        with self._lock:
            others = [s for s in self._sessions if s is not session and s.dumping]
        for other in others:
            other_uuid = other.user_vars.get("replica_uuid", other.user_vars.get("slave_uuid"))
            sender = getattr(other, "sender", None)
            same = other_uuid == uuid if uuid else (not other_uuid and sender is not None
                                                     and sender.request.server_id == server_id)
            if same and sender is not None:
                sender.duplicate = True
                with self.binlog.changed:
                    self.binlog.changed.notify_all()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


__all__ = ["DumpError", "MySQLDouble", "Replica", "Session"]
