"""The MySQL 8.4 test double (tests/mysql_double), checked with independent clients.

Connections, authentication and statements are checked with PyMySQL, the driver syncd uses;
the binlog with pymysqlreplication's BinLogStreamReader reading the double's stream, and for
what the library cannot read (TRANSACTION_PAYLOAD_EVENT, GTID_TAGGED_LOG_EVENT, heartbeat v2)
with parsers written here from MySQL's documented formats, independently of the double's
encoders: mysql-server libs/mysql/binlog/event/codecs/binary.cpp (payload and heartbeat v2
TLV fields), libs/mysql/serialization/readme.md (the tagged GTID event's message format),
control_events.h (its fields), sql/rpl_gtid_set.cc (the tagged GTID set encoding).
"""

from __future__ import annotations

import datetime
import decimal
import struct
import threading
import time
import uuid as uuidlib
import zlib
from collections.abc import Iterator

import pymysql
import pytest
import zstandard
from pymysql.constants import CLIENT
from pymysqlreplication import BinLogStreamReader, binlogstream
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from tests.mysql_double import Col, Delete, Insert, MySQLDouble, Table, Update
from tests.mysql_double.binlog import Binlog, Settings

UUID_A = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID_B = "a7f1c1e2-0000-4000-8000-000000000002"

ORDERS = Table("shop", "orders", (
    Col("id", "int", primary=True, nullable=False),
    Col("note", "varchar", length=40),
    Col("amount", "decimal", precision=12, scale=2),
))


@pytest.fixture
def double() -> Iterator[MySQLDouble]:
    with MySQLDouble(server_uuid=UUID_A) as server:
        yield server


def _query(conn: pymysql.connections.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def _error(conn: pymysql.connections.Connection, sql: str) -> tuple[int, str]:
    with pytest.raises(pymysql.err.MySQLError) as caught:
        _query(conn, sql)
    return caught.value.args[0], caught.value.args[1]


# -- connection phase -------------------------------------------------------------------------


def test_the_greeting_is_mysql_84s(double: MySQLDouble) -> None:
    with double.connect() as conn:
        assert conn.get_server_info() == "8.4.3"
        assert conn._auth_plugin_name == "caching_sha2_password"
        for flag in (CLIENT.PROTOCOL_41, CLIENT.SECURE_CONNECTION, CLIENT.PLUGIN_AUTH, CLIENT.SSL,
                     CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT.CONNECT_WITH_DB, CLIENT.DEPRECATE_EOF):
            assert conn.server_capabilities & flag


def test_the_version_is_configurable() -> None:
    with MySQLDouble(version="9.1.0") as server, server.connect() as conn:
        assert _query(conn, "SELECT VERSION(), @@version, @@version_comment") == [
            ("9.1.0", "9.1.0", "MySQL Community Server - GPL")]


def test_full_authentication_by_rsa_then_fast_authentication(double: MySQLDouble) -> None:
    with double.connect(tls=False) as first:  # nothing cached: full authentication over plain TCP
        assert first.server_public_key is not None and b"BEGIN PUBLIC KEY" in first.server_public_key
        assert not first._secure
    assert "syncd" in double.auth.cache
    with double.connect(tls=False) as second:  # cached: the scramble alone, no key asked for
        assert second.server_public_key is None
        assert _query(second, "SELECT CONNECTION_ID()")[0][0] != first.server_thread_id[0]


def test_full_authentication_over_tls_sends_the_password_in_clear(double: MySQLDouble) -> None:
    with double.connect(tls=True) as conn:
        assert conn._secure and conn.server_public_key is None
    with double.connect(tls=False) as fast:
        assert fast.server_public_key is None


def test_without_tls_and_without_cryptography_full_authentication_fails(
        double: MySQLDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pymysql._auth, "_have_cryptography", False)
    with pytest.raises(RuntimeError, match="'cryptography' package is required"):
        double.connect(tls=False)
    with double.connect(tls=True):  # over TLS no RSA is needed, and the account gets cached
        pass
    with double.connect(tls=False) as conn:  # so the fast path works without cryptography
        assert _query(conn, "SELECT @@server_id") == [(1,)]


def test_pymysql_prefers_tls_when_the_server_offers_it(double: MySQLDouble) -> None:
    with double.connect() as conn:  # what syncd's connections do without ssl_ca
        assert conn._secure


def test_restart_and_flush_privileges_empty_the_cache(double: MySQLDouble) -> None:
    with double.connect() as conn:
        _query(conn, "FLUSH PRIVILEGES")
    assert double.auth.cache == {}
    double.connect().close()
    double.restart()
    assert double.auth.cache == {}
    with double.connect(tls=False) as conn:
        assert conn.server_public_key is not None


def test_wrong_password_and_unknown_user_get_1045(double: MySQLDouble) -> None:
    for user, password in (("syncd", "wrong"), ("nobody", "secret"), ("nobody", "")):
        with pytest.raises(pymysql.err.OperationalError) as caught:
            double.connect(user=user, password=password)
        using = "YES" if password else "NO"
        assert caught.value.args == (1045, f"Access denied for user '{user}'@'127.0.0.1' (using password: {using})")


def test_a_mysql_native_password_account_is_refused_as_84_refuses_it(double: MySQLDouble) -> None:
    double.add_account("legacy", "pw", plugin="mysql_native_password")
    with pytest.raises(pymysql.err.OperationalError) as caught:
        double.connect(user="legacy", password="pw")
    assert caught.value.args == (1524, "Plugin 'mysql_native_password' is not loaded")


def test_require_ssl_accounts_and_require_secure_transport(double: MySQLDouble) -> None:
    double.add_account("tlsonly", "pw", require_tls=True)
    with pytest.raises(pymysql.err.OperationalError) as caught:
        double.connect(user="tlsonly", password="pw", tls=False)
    assert caught.value.args[0] == 1045
    double.connect(user="tlsonly", password="pw", tls=True).close()
    double.set_global("require_secure_transport", "ON")
    with pytest.raises(pymysql.err.OperationalError) as caught:
        double.connect(tls=False)
    assert caught.value.args == (3159, "Connections using insecure transport are prohibited while "
                                       "--require_secure_transport=ON.")
    double.connect(tls=True).close()


def test_several_clients_at_once(double: MySQLDouble) -> None:
    conns = [double.connect() for _ in range(4)]
    try:
        ids = {_query(c, "SELECT CONNECTION_ID()")[0][0] for c in conns}
        assert len(ids) == 4
    finally:
        for conn in conns:
            conn.close()


# -- statements ------------------------------------------------------------------------------


@pytest.mark.parametrize(("statement", "near"), [
    ("SHOW MASTER STATUS", "MASTER STATUS"),
    ("show master logs", "master logs"),
    ("SHOW SLAVE STATUS", "SLAVE STATUS"),
    ("SHOW SLAVE HOSTS", "SLAVE HOSTS"),
    ("START SLAVE", "SLAVE"),
    ("STOP SLAVE", "SLAVE"),
    ("RESET SLAVE", "SLAVE"),
    ("CHANGE MASTER TO MASTER_HOST='x'", "MASTER TO MASTER_HOST='x'"),
    ("RESET MASTER", "MASTER"),
    ("PURGE MASTER LOGS TO 'binlog.000001'", "MASTER LOGS TO 'binlog.000001'"),
])
def test_statements_removed_in_84_fail_with_1064(double: MySQLDouble, statement: str, near: str) -> None:
    with double.connect() as conn, pytest.raises(pymysql.err.ProgrammingError) as caught:
        _query(conn, statement)
    assert caught.value.args == (1064, "You have an error in your SQL syntax; check the manual that "
                                       "corresponds to your MySQL server version for the right syntax "
                                       f"to use near '{near}' at line 1")


def test_the_replacements_work(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    with double.connect() as conn:
        status = _query(conn, "SHOW BINARY LOG STATUS")
        assert status == [("binlog.000001", double.binlog.current.size, "", "", f"{UUID_A}:1")]
        assert _query(conn, "SHOW BINARY LOGS") == [("binlog.000001", double.binlog.current.size, "No")]
        events = _query(conn, "SHOW BINLOG EVENTS IN 'binlog.000001' FROM 4 LIMIT 3")
        assert [(e[1], e[2], e[4]) for e in events] == [(4, "Format_desc", 127), (127, "Previous_gtids", 158),
                                                        (158, "Gtid", events[2][4])]
        assert events[2][5] == f"SET @@SESSION.GTID_NEXT= '{UUID_A}:1'"
        _query(conn, "FLUSH BINARY LOGS")
        assert [r[0] for r in _query(conn, "SHOW BINARY LOGS")] == ["binlog.000001", "binlog.000002"]
        _query(conn, "PURGE BINARY LOGS TO 'binlog.000002'")
        assert _query(conn, "SELECT @@gtid_purged, @@gtid_executed") == [(f"{UUID_A}:1", f"{UUID_A}:1")]
        _query(conn, "RESET BINARY LOGS AND GTIDS")
        assert _query(conn, "SHOW BINARY LOG STATUS") == [("binlog.000001", 158, "", "", "")]
        assert _query(conn, "SHOW REPLICAS") == []


def test_system_variables_as_84_shows_them(double: MySQLDouble) -> None:
    double.set_global("binlog_row_metadata", "minimal")
    with double.connect() as conn:
        assert _query(conn, "SELECT @@server_id, @@log_bin, @@binlog_format, @@binlog_row_metadata, "
                            "@@session.binlog_row_image, @@global.binlog_checksum AS c") == [
            (1, 1, "ROW", "MINIMAL", "FULL", "CRC32")]
        names = ("log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "log_bin_compress",
                 "binlog_alter_two_phase", "binlog_row_value_options", "binlog_transaction_compression",
                 "expire_logs_days")
        with conn.cursor() as cur:  # syncd's start-up check, as it sends it
            cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})".format(
                ", ".join(["%s"] * len(names))), names)
            assert dict(cur.fetchall()) == {
                "log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
                "binlog_row_metadata": "MINIMAL", "binlog_row_value_options": "",
                "binlog_transaction_compression": "OFF"}
        assert _query(conn, "SHOW VARIABLES LIKE 'BINLOG_ROW_METADATA';") == [("binlog_row_metadata", "MINIMAL")]
        assert _query(conn, "SHOW GLOBAL VARIABLES LIKE 'gtid\\_mode'") == [("gtid_mode", "ON")]
        assert _query(conn, "SELECT @@time_zone, @@system_time_zone, @@transaction_isolation") == [
            ("SYSTEM", "UTC", "REPEATABLE-READ")]
        assert _error(conn, "SELECT @@expire_logs_days") == (1193, "Unknown system variable 'expire_logs_days'")
        assert _error(conn, "SELECT @@master_info_repository")[0] == 1193
        assert _error(conn, "SELECT @@session.server_id") == (1238, "Variable 'server_id' is a GLOBAL variable")


def test_set_statements_the_binlog_library_sends(double: MySQLDouble) -> None:
    with double.connect() as conn:
        for statement in ("SET @master_binlog_checksum= @@global.binlog_checksum",
                          "SET @master_heartbeat_period = 30000000000",
                          "SET @slave_uuid = 'u-1', @replica_uuid = 'u-1'",
                          "SET @mariadb_slave_capability=4", "SET NAMES utf8mb4 COLLATE utf8mb4_general_ci",
                          "SET SESSION time_zone = '+00:00'", "SET @source_binlog_checksum = 'NONE'"):
            assert _query(conn, statement) == []
        assert _query(conn, "SELECT @master_binlog_checksum, @master_heartbeat_period, @replica_uuid, "
                            "@@time_zone, @@character_set_client") == [
            ("CRC32", 30000000000, "u-1", "+00:00", "utf8mb4")]
        _query(conn, "SET GLOBAL binlog_transaction_compression = ON")
        assert double.settings().compressed


def test_what_the_double_neither_knows_nor_forwards_fails_loudly(double: MySQLDouble) -> None:
    with double.connect() as conn:
        code, message = _error(conn, "INSERT INTO shop.orders VALUES (1)")
        assert code == 1235 and "INSERT INTO shop.orders VALUES (1)" in message
        code, message = _error(conn, "SELECT * FROM shop.orders")
        assert code == 1235 and "no backing database" in message
        assert conn.ping() is None
        conn.select_db("shop")
        assert _query(conn, "SELECT DATABASE()") == [("shop",)]


def test_deprecate_eof_is_honoured_when_the_client_asks(double: MySQLDouble) -> None:
    def packets(conn: pymysql.connections.Connection) -> list[bytes]:
        conn._execute_command(3, "SELECT @@version")
        found = [conn._read_packet()._data for _ in range(3)]
        found.append(conn._read_packet()._data)
        return found

    with double.connect(client_flag=CLIENT.DEPRECATE_EOF) as modern:
        count, _column, row, end = packets(modern)
        assert count == b"\x01" and row == b"\x058.4.3" and end[0] == 0xFE and len(end) >= 7
    with double.connect() as classic:
        count, _column, eof, row = packets(classic)
        assert eof[0] == 0xFE and len(eof) == 5 and row == b"\x058.4.3"
        assert classic._read_packet()._data[0] == 0xFE
