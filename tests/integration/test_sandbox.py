"""The throwaway servers are what the rest of the suite assumes they are."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

from devtools import sandbox
from devtools.sandbox import MariaDBServer, PostgresServer, SandboxError


def _variables(server: MariaDBServer, *names: str) -> dict[str, str]:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN %s", (names,))
        return dict(cur.fetchall())


def test_mariadb_logs_full_row_images_with_full_metadata(mariadb: MariaDBServer) -> None:
    assert _variables(mariadb, "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata") == {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
    }
    assert _variables(mariadb, "server_id", "character_set_server") == {
        "server_id": "1",
        "character_set_server": "utf8mb4",
    }


def test_mariadb_settings_override_defaults(tmp_path: Path) -> None:
    server = MariaDBServer(tmp_path, server_id=7, settings={"binlog-row-metadata": "MINIMAL"})
    assert server.config()["binlog_row_metadata"] == "MINIMAL"
    assert server.config()["server_id"] == "7"


def test_replication_user_can_read_binlog_positions(
    mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]
) -> None:
    database = source_db(mariadb)
    with mariadb.connect(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1)")
    mariadb.create_user("reader", "reader-pw")

    reader = mariadb.connect(database, user="reader", password="reader-pw")
    with reader, reader.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        assert cur.fetchall()
        cur.execute("SHOW MASTER STATUS")
        assert cur.fetchone()[0].startswith("mysql-bin.")
        cur.execute("SELECT id FROM t")
        assert cur.fetchall() == ((1,),)


def test_two_mariadb_servers_coexist(
    mariadb: MariaDBServer, mariadb2: MariaDBServer, source_db: Callable[[MariaDBServer], str]
) -> None:
    assert mariadb.port != mariadb2.port
    assert _variables(mariadb2, "server_id") == {"server_id": "2"}
    only_on_second = source_db(mariadb2)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (only_on_second,))
        assert cur.fetchall() == ()


def _own_dir(sandbox_root: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix="own-", dir=sandbox_root))


@pytest.fixture
def own_mariadb(sandbox_root: Path) -> Iterator[MariaDBServer]:
    """A server of the test's own, free to be restarted and killed."""
    server = MariaDBServer(_own_dir(sandbox_root), server_id=9)
    yield server
    server.cleanup()


def test_mariadb_restart_and_crash_keep_port_and_data(own_mariadb: MariaDBServer) -> None:
    own_mariadb.start()
    port = own_mariadb.port
    with own_mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE kept")
        cur.execute("CREATE TABLE kept.t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO kept.t VALUES (1)")

    own_mariadb.restart()
    assert own_mariadb.port == port
    with own_mariadb.connect("kept") as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (2)")

    own_mariadb.kill()
    assert not own_mariadb.running
    own_mariadb.start()
    assert own_mariadb.port == port
    with own_mariadb.connect("kept") as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM t ORDER BY id")
        assert cur.fetchall() == ((1,), (2,))


def test_mariadb_moves_to_another_port_when_its_port_is_taken(
    own_mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, sandbox.free_port()])
        monkeypatch.setattr(sandbox, "free_port", lambda: next(ports))
        own_mariadb.start()
    assert own_mariadb.port != taken
    with own_mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")


def test_mariadb_start_failure_shows_the_error_log(own_mariadb: MariaDBServer) -> None:
    own_mariadb.start()
    own_mariadb.stop()
    own_mariadb.settings["no_such_option"] = "1"
    with pytest.raises(SandboxError, match="unknown variable 'no_such_option=1'"):
        own_mariadb.start()
    assert not own_mariadb.running


def test_mariadb_root_login_needs_the_password(mariadb: MariaDBServer) -> None:
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mariadb.connect(password="wrong")
    assert refused.value.args[0] == 1045


def test_postgres_password_auth_over_tcp(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        assert conn.info.host == "127.0.0.1"
    wrong = postgres.dsn(user=postgres.superuser, password="wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def test_postgres_user_owns_its_database(postgres: PostgresServer, target_db: str) -> None:
    postgres.create_user("app_owner", "first")
    postgres.create_user("app_owner", "second")  # again: resets the password
    name = target_db + "_owned"
    postgres.create_database(name, owner="app_owner")
    with psycopg.connect(postgres.dsn(name, "app_owner", "second"), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
    with postgres.connect(target_db) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (target_db,)
    with postgres.connect() as conn:
        conn.execute(f'DROP DATABASE "{name}"')


@pytest.fixture
def own_postgres(sandbox_root: Path) -> Iterator[PostgresServer]:
    """A server of the test's own; commits are durable, so a kill loses none of them."""
    server = PostgresServer(_own_dir(sandbox_root), settings={"synchronous_commit": "on"})
    yield server
    server.cleanup()


def test_postgres_restart_and_crash_keep_port_and_data(own_postgres: PostgresServer) -> None:
    own_postgres.start()
    port = own_postgres.port
    with own_postgres.connect() as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")
        conn.execute("INSERT INTO kept VALUES (1)")

    own_postgres.restart()
    assert own_postgres.port == port
    with own_postgres.connect() as conn:
        conn.execute("INSERT INTO kept VALUES (2)")

    own_postgres.kill()
    own_postgres.start()
    assert own_postgres.port == port
    with own_postgres.connect() as conn:
        assert conn.execute("SELECT id FROM kept ORDER BY id").fetchall() == [(1,), (2,)]
