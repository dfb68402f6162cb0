"""Throwaway MariaDB and PostgreSQL servers for tests, the demo and benchmarks.

Each server lives entirely inside its own ``base_dir`` (configuration, data, sockets, logs and
the generated admin password), listens on a free port of 127.0.0.1 and never touches the
machine's packaged services or their configuration files::

    with MariaDBServer(Path("/tmp/x/src")) as source, PostgresServer(Path("/tmp/x/pg")) as pg:
        source.create_user("syncd", "secret")
        pg.create_database("target")

Servers run in their own session (process group), so a Ctrl-C in the terminal does not reach
them; servers still running when the Python process exits are stopped by an ``atexit`` hook.
Either server serves TLS when given ``tls`` (a CA, a server certificate and its key; see
devtools/certs.py for a throwaway CA).

When run as root, mariadbd runs as root (``--user=root``) and PostgreSQL, which refuses root,
runs as the ``postgres`` OS user: every parent directory of a PostgreSQL ``base_dir`` must then
be traversable by that user (a ``tempfile.mkdtemp`` directory is 0700: chmod it 0755).
"""

from __future__ import annotations

import abc
import atexit
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import quote

import psycopg
import pymysql
from psycopg import sql

from devtools.certs import TlsFiles

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
PORT_ATTEMPTS = 3
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; PostgreSQL appends "/.s.PGSQL.<port>"

_running: set[_Server] = set()


class SandboxError(RuntimeError):
    """A sandbox server could not be set up, started or stopped; the message says why."""


class _PortInUse(SandboxError):
    """The server exited because another process took its port first."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _find_program(name: str, *extra_dirs: Path) -> str:
    search = os.pathsep.join([os.environ.get("PATH", ""), *map(str, extra_dirs)])
    found = shutil.which(name, path=search)
    if found is None:
        raise SandboxError(f"{name} not found on PATH or in {extra_dirs}: run `make install`")
    return found


def _stored_password(path: Path) -> str:
    """The password kept in ``path``, made and written (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(18)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


def _tail(path: Path, offset: int = 0, lines: int = 30) -> str:
    """The last ``lines`` lines written to ``path`` after byte ``offset``."""
    if not path.exists():
        return f"({path} does not exist)"
    with path.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _check_socket_path(path: Path) -> None:
    if len(str(path)) > MAX_SOCKET_PATH:
        raise SandboxError(f"unix socket path too long ({len(str(path))} > 100): {path}")


def _identity(user: str | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a child as OS ``user`` with its own group only."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def _run_logged(argv: list[str], log: Path, user: str | None = None) -> None:
    """Runs a set-up command with its output in ``log``; raises with the log's tail on failure."""
    with log.open("ab") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False, **_identity(user))
    if done.returncode != 0:
        raise SandboxError(f"{Path(argv[0]).name} exited with {done.returncode}; end of {log}:\n{_tail(log)}")


def _stop_all_at_exit() -> None:
    for server in list(_running):
        server.stop()


atexit.register(_stop_all_at_exit)


class _Server(abc.ABC):
    """Process life shared by both servers: launch on a free port, wait until ready, stop."""

    host = LOOPBACK
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- what each server defines ------------------------------------------------------------

    @property
    @abc.abstractmethod
    def log_path(self) -> Path:
        """Where the server writes its log."""

    @abc.abstractmethod
    def _initialize_if_needed(self) -> None:
        """Create the data directory on first start."""

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The command line that starts the server."""

    def _os_user(self) -> str | None:
        return None

    @abc.abstractmethod
    def _accepts_connections(self) -> bool:
        """Whether the server answers on its own unix socket yet."""

    def _after_ready(self) -> None:  # noqa: B027 - a hook: nothing to do by default
        """First-start work that needs the running server (nothing by default)."""

    # -- life --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Starts the server (initializing its data on first start) and waits until it is ready.

        The first start picks a free port; later starts (``restart``, start after ``kill``)
        reuse it.
        """
        if self.running:
            return
        self._initialize_if_needed()
        keep_port = self.port != 0
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if not keep_port:
                self.port = free_port()
            try:
                self._launch_and_wait()
                break
            except _PortInUse:
                if keep_port or attempt == PORT_ATTEMPTS:
                    raise
        self._after_ready()

    def stop(self) -> None:
        """Clean shutdown; waits for the process to exit (SIGKILL after STOP_TIMEOUT)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self._forget()

    def kill(self) -> None:
        """SIGKILL to the server and every process it started, like a crash of the machine."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        self._forget()

    def restart(self) -> None:
        """Stops and starts again on the same port with the same data."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stops the server and removes its base_dir."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _forget(self) -> None:
        self._process = None
        _running.discard(self)

    def _launch_and_wait(self) -> None:
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_identity(self._os_user()),
            )
        _running.add(self)
        self._wait_ready(log_offset)

    def _wait_ready(self, log_offset: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        process = self._process
        assert process is not None
        while not self._ready_or_kill():
            if process.poll() is not None:
                self._forget()
                self._fail_start(f"exited with {process.returncode}", log_offset)
            if time.monotonic() > deadline:
                self.kill()
                self._fail_start(f"not ready after {START_TIMEOUT:.0f}s", log_offset)
            time.sleep(0.1)

    def _ready_or_kill(self) -> bool:
        """Whether the server accepts connections; kills it if it never will."""
        try:
            return self._accepts_connections()
        except SandboxError:
            self.kill()
            raise

    def _fail_start(self, what: str, log_offset: int) -> None:
        tail = _tail(self.log_path, log_offset)
        error = _PortInUse if "Address already in use" in tail else SandboxError
        raise error(
            f"{type(self).__name__} in {self.base_dir} on port {self.port} {what}; "
            f"end of {self.log_path}:\n{tail}"
        )


class MariaDBServer(_Server):
    """A mariadbd with binary logging as syncd needs it (ROW, FULL image, FULL metadata).

    ``settings`` are extra ``[mysqld]`` lines of the generated my.cnf and override the
    defaults; ``-`` and ``_`` are the same in keys, and a value of ``""`` writes a bare flag.
    Root can log in over TCP with ``root_password``. The sandbox's own account statements
    are kept out of the binlog. With ``tls`` the server offers TLS with that certificate and
    checks client certificates against its CA (`REQUIRE X509` users); ``settings`` may add
    ``require_secure_transport: "ON"`` to refuse every TCP connection without TLS.
    """

    _LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

    def __init__(self, base_dir: Path, server_id: int = 1, settings: dict[str, str] | None = None,
                 tls: TlsFiles | None = None) -> None:
        super().__init__(base_dir)
        self.server_id = server_id
        self.tls = tls
        self.settings = {_option_key(k): v for k, v in (settings or {}).items()}
        self.datadir = self.base_dir / "data"
        self.binlog_dir = self.base_dir / "binlog"
        self.socket_path = self.base_dir / "mysqld.sock"
        self.config_path = self.base_dir / "my.cnf"
        self._password_file = self.base_dir / "root_password"
        self.root_password = (
            self._password_file.read_text().strip()
            if self._password_file.exists()
            else secrets.token_urlsafe(18)
        )
        _check_socket_path(self.socket_path)

    @property
    def log_path(self) -> Path:
        return self.base_dir / "error.log"

    def connect(self, database: str | None = None, **kw: Any) -> pymysql.connections.Connection:
        """A root connection over TCP (autocommit, utf8mb4); ``kw`` go to ``pymysql.connect``."""
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": "root",
            "password": self.root_password,
            "database": database,
            "autocommit": True,
            "charset": "utf8mb4",
        }
        if self.tls is not None:  # the sandbox's own sessions: encrypted, the CA checked, not the name
            options["ssl"] = {"ca": str(self.tls.ca), "check_hostname": False}
        options.update(kw)
        return pymysql.connect(**options)

    def create_user(self, user: str, password: str) -> None:
        """(Re)creates ``user``@'%' with what a binlog reader needs.

        REPLICATION CLIENT is BINLOG MONITOR on MariaDB >= 10.5 (SHOW BINARY LOGS,
        SHOW MASTER STATUS); REPLICATION SLAVE allows the binlog dump; SELECT serves
        snapshots and column metadata.
        """
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("CREATE OR REPLACE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute("GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO %s@'%%'", (user,))

    def config(self) -> dict[str, str]:
        """The ``[mysqld]`` options this server runs with (defaults, then ``settings``)."""
        defaults = {
            "datadir": str(self.datadir),
            "socket": str(self.socket_path),
            "pid_file": str(self.base_dir / "mysqld.pid"),
            "log_error": str(self.log_path),
            "bind_address": self.host,
            "port": str(self.port),
            "server_id": str(self.server_id),
            "log_bin": str(self.binlog_dir / "mysql-bin"),
            # its own: a starting mariadbd removes every `#sql*` file of its tmpdir, which would
            # pull the on-disk temporary tables (GROUP_CONCAT results) from under other servers
            "tmpdir": str(self.base_dir / "tmp"),
            "binlog_format": "ROW",
            "binlog_row_image": "FULL",
            "binlog_row_metadata": "FULL",
            "character_set_server": "utf8mb4",
            "collation_server": "utf8mb4_general_ci",
            "innodb_flush_log_at_trx_commit": "2",
            "sync_binlog": "0",
            "innodb_buffer_pool_size": "128M",
            "skip_name_resolve": "",
            "gtid_strict_mode": "OFF",
            "performance_schema": "OFF",
        }
        if self.tls is not None:
            defaults |= {"ssl_ca": str(self.tls.ca), "ssl_cert": str(self.tls.cert),
                         "ssl_key": str(self.tls.key)}
        return defaults | self.settings

    def _initialize_if_needed(self) -> None:
        self.binlog_dir.mkdir(exist_ok=True)
        (self.base_dir / "tmp").mkdir(exist_ok=True)
        self._write_config()
        if self.datadir.exists():
            return
        argv = [
            _find_program("mariadb-install-db", Path("/usr/bin")),
            f"--defaults-file={self.config_path}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        if _is_root():
            argv.append("--user=root")
        try:
            _run_logged(argv, self.base_dir / "install-db.log")
        except SandboxError:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise

    def _write_config(self) -> None:
        lines = ["[mysqld]"]
        lines += [key if value == "" else f"{key}={value}" for key, value in self.config().items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _launch_and_wait(self) -> None:
        self._write_config()  # the port may have changed since _initialize_if_needed
        super()._launch_and_wait()

    def _command(self) -> list[str]:
        argv = [_find_program("mariadbd", Path("/usr/sbin")), f"--defaults-file={self.config_path}"]
        if _is_root():
            argv.append("--user=root")
        return argv

    def _socket_login(self, password: str) -> pymysql.connections.Connection:
        return pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password=password, connect_timeout=2
        )

    def _accepts_connections(self) -> bool:
        # Over our own socket, not TCP: while starting, the port may belong to someone else.
        password = self.root_password if self._password_file.exists() else ""
        try:
            self._socket_login(password).close()
        except pymysql.err.OperationalError as exc:
            if exc.args[0] == 1045:  # ER_ACCESS_DENIED_ERROR: waiting will not help
                raise SandboxError(f"root login refused in {self.base_dir}: {exc}") from exc
            return False
        return True

    def _after_ready(self) -> None:
        if not self._password_file.exists():
            self._secure_root()

    def _secure_root(self) -> None:
        """Gives the loopback root accounts ``root_password`` and drops the other root accounts."""
        with self._socket_login("") as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("SELECT Host FROM mysql.user WHERE User = 'root'")
            for (host,) in cur.fetchall():
                if host in self._LOOPBACK_HOSTS:
                    cur.execute("ALTER USER 'root'@%s IDENTIFIED BY %s", (host, self.root_password))
                else:
                    cur.execute("DROP USER 'root'@%s", (host,))
        self._password_file.touch(mode=0o600)
        self._password_file.write_text(self.root_password + "\n")


def _option_key(key: str) -> str:
    return key.replace("-", "_")


class PostgresServer(_Server):
    """A PostgreSQL 15 cluster with scram-sha-256 password auth over TCP.

    ``settings`` are extra ``-c name=value`` server options (e.g. ``{"wal_level": "logical"}``).
    It runs with ``synchronous_commit=off``: like a real crash with that setting, ``kill()`` may
    lose the last fraction of a second of commits (never half a transaction); pass
    ``{"synchronous_commit": "on"}`` where a test needs every commit to survive a kill.

    With ``tls`` it runs with ``ssl = on``, that certificate, and its CA for client
    certificates. ``hba`` replaces the TCP lines of pg_hba.conf (first match wins), e.g.
    ``["hostssl all all 127.0.0.1/32 scram-sha-256"]`` to refuse connections without TLS; the
    sandbox's own login over the unix socket is kept.
    """

    superuser = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: rolls back open transactions, then exits

    def __init__(self, base_dir: Path, settings: dict[str, str] | None = None,
                 tls: TlsFiles | None = None, hba: list[str] | None = None) -> None:
        super().__init__(base_dir)
        self.settings = dict(settings or {})
        self.tls = tls
        self.hba = hba
        self.datadir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self._password_file = self.base_dir / "superuser_password"
        self.superuser_password = _stored_password(self._password_file)
        _check_socket_path(self.socket_dir / ".s.PGSQL.65535")
        if _is_root():
            self.base_dir.chmod(self.base_dir.stat().st_mode | 0o011)

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    def dsn(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        """``postgresql://user:password@127.0.0.1:port/dbname``; the superuser's by default."""
        if user is None:
            user, password = self.superuser, self.superuser_password
        credentials = quote(user, safe="")
        if password is not None:
            credentials += ":" + quote(password, safe="")
        return f"postgresql://{credentials}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """A superuser connection over TCP with autocommit."""
        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def create_database(self, name: str, owner: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner is not None:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        with self.connect() as conn:
            conn.execute(statement)

    def create_user(self, user: str, password: str) -> None:
        """Creates a login role with ``password``, or resets the password if the role exists."""
        with self.connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user), sql.Literal(password)
                )
            )

    def _os_user(self) -> str | None:
        return "postgres" if _is_root() else None

    def _own(self, path: Path) -> None:
        if _is_root():
            shutil.chown(path, "postgres", "postgres")

    def _initialize_if_needed(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        self._own(self.socket_dir)
        self._write_tls_files()
        if (self.datadir / "PG_VERSION").exists():
            return
        shutil.rmtree(self.datadir, ignore_errors=True)  # left over by a failed initdb
        self.datadir.mkdir(mode=0o700)
        self._own(self.datadir)
        self._own(self._password_file)
        self._check_reachable()
        argv = [
            str(PG_BIN / "initdb"),
            f"--pgdata={self.datadir}",
            f"--username={self.superuser}",
            f"--pwfile={self._password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        if not Path(argv[0]).exists():
            raise SandboxError(f"{argv[0]} not found: run `make install`")
        _run_logged(argv, self.base_dir / "initdb.log", user=self._os_user())

    @property
    def _tls_dir(self) -> Path:
        return self.base_dir / "tls"

    def _write_tls_files(self) -> None:
        """Copies the certificate and key where the server's OS user owns them (PostgreSQL
        refuses a key that others may read), and writes the pg_hba.conf of ``hba``."""
        if self.tls is not None:
            self._tls_dir.mkdir(exist_ok=True)
            files = {"ca.crt": self.tls.ca, "server.crt": self.tls.cert, "server.key": self.tls.key}
            for name, source in files.items():
                target = self._tls_dir / name
                shutil.copyfile(source, target)
                target.chmod(0o600)
                self._own(target)
        if self.hba is not None:
            (self.base_dir / "pg_hba.conf").write_text("\n".join(["local all all trust", *self.hba]) + "\n")

    def _check_reachable(self) -> None:
        """Fails clearly when the OS user that runs PostgreSQL cannot write the data dir."""
        probe = subprocess.run(["test", "-w", str(self.datadir)], check=False, **_identity(self._os_user()))
        if probe.returncode != 0:
            raise SandboxError(
                f"OS user postgres cannot write {self.datadir}: every parent directory "
                "needs o+x (e.g. chmod 0755 a directory made by tempfile.mkdtemp)"
            )

    def _command(self) -> list[str]:
        options = {
            "port": str(self.port),
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "100",
            "synchronous_commit": "off",
            "logging_collector": "off",
        }
        if self.tls is not None:
            options |= {"ssl": "on", "ssl_ca_file": str(self._tls_dir / "ca.crt"),
                        "ssl_cert_file": str(self._tls_dir / "server.crt"),
                        "ssl_key_file": str(self._tls_dir / "server.key")}
        if self.hba is not None:
            options["hba_file"] = str(self.base_dir / "pg_hba.conf")
        options |= self.settings
        argv = [str(PG_BIN / "postgres"), "-D", str(self.datadir)]
        for name, value in options.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _accepts_connections(self) -> bool:
        # Over our own socket, not TCP: while starting, the port may belong to someone else.
        try:
            psycopg.connect(
                host=str(self.socket_dir),
                port=self.port,
                user=self.superuser,
                dbname="postgres",
                connect_timeout=2,
            ).close()
        except psycopg.OperationalError:
            return False
        return True
