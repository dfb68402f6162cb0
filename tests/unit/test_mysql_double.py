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
)
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from syncd.source import binlog  # noqa: F401 (its reading of binary JSON is what is expected)
from syncd.source.values import json_document
from tests.mysql_double import Col, Delete, Insert, MySQLDouble, Table, Update

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
        message = f"Access denied for user '{user}'@'127.0.0.1' (using password: {using})"
        assert caught.value.args == (1045, message)


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
        assert events[0][5] == "Server ver: 8.4.3, Binlog ver: 4"
        infos = [e[5] for e in _query(conn, "SHOW BINLOG EVENTS FROM 158")]
        assert infos[1:] == ["BEGIN", "table_id: 100 (shop.orders)", "", "COMMIT /* xid=1 */"]
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
        shown = _query(conn, "SHOW VARIABLES LIKE 'BINLOG_ROW_METADATA';")  # as the library sends it
        assert shown == [("binlog_row_metadata", "MINIMAL")]
        assert _query(conn, "SHOW GLOBAL VARIABLES LIKE 'gtid\\_mode'") == [("gtid_mode", "ON")]
        assert _query(conn, "SELECT @@time_zone, @@system_time_zone, @@transaction_isolation") == [
            ("SYSTEM", "UTC", "REPEATABLE-READ")]
        removed = _error(conn, "SELECT @@expire_logs_days")
        assert removed == (1193, "Unknown system variable 'expire_logs_days'")
        assert _error(conn, "SELECT @@master_info_repository")[0] == 1193
        wrong_scope = _error(conn, "SELECT @@session.server_id")
        assert wrong_scope == (1238, "Variable 'server_id' is a GLOBAL variable")


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
        _query(conn, "USE `other`")
        assert _query(conn, "SELECT DATABASE()") == [("other",)]


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


# -- the binlog, read by pymysqlreplication ----------------------------------------------------

EVERY_TYPE = Table("shop", "every_type", (
    Col("id", "int", primary=True, nullable=False),
    Col("t", "tinyint"), Col("tu", "tinyint", unsigned=True), Col("s", "smallint"),
    Col("m", "mediumint"), Col("mu", "mediumint", unsigned=True), Col("b", "bigint"),
    Col("bu", "bigint", unsigned=True), Col("dec", "decimal", precision=30, scale=10),
    Col("money", "decimal", precision=10, scale=2), Col("f", "float"), Col("d", "double"),
    Col("day", "date"), Col("dt", "datetime", fsp=6), Col("dt0", "datetime"), Col("ts", "timestamp", fsp=3),
    Col("tm", "time", fsp=2), Col("tm0", "time"), Col("y", "year"),
    Col("c", "char", length=10), Col("cbig", "char", length=100), Col("vc", "varchar", length=40),
    Col("vbig", "varchar", length=500), Col("latin", "varchar", length=20, charset="latin1"),
    Col("zh", "varchar", length=20, charset="gbk"), Col("old", "varchar", length=20, charset="utf8mb3"),
    Col("tt", "tinytext"), Col("tx", "text"), Col("mt", "mediumtext"), Col("lt", "longtext"),
    Col("tb", "tinyblob"), Col("bl", "blob"), Col("mb", "mediumblob"), Col("lb", "longblob"),
    Col("bin", "binary", length=8), Col("vb", "varbinary", length=16),
    Col("e", "enum", values=("small", "medium", "large")), Col("st", "set", values=("a", "b", "c", "d")),
    Col("bit1", "bit", length=1), Col("bit12", "bit", length=12), Col("bit64", "bit", length=64),
    Col("j", "json"), Col("pt", "point"),
))

FIRST_ROW = {
    "id": 1, "t": -128, "tu": 255, "s": -32768, "m": -8388608, "mu": 16777215, "b": -(2 ** 63),
    "bu": 2 ** 64 - 1, "dec": decimal.Decimal("-12345678901234567890.0123456789"),
    "money": decimal.Decimal("99999999.99"), "f": 0.5, "d": -1.25e300,
    "day": datetime.date(1000, 1, 1), "dt": datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    "dt0": datetime.datetime(2024, 2, 29, 12, 0, 1),
    "ts": datetime.datetime(2038, 1, 19, 3, 14, 7, 123000, tzinfo=datetime.UTC),
    "tm": datetime.timedelta(hours=838, minutes=59, seconds=58, microseconds=990000),
    "tm0": datetime.timedelta(hours=-12, minutes=-30), "y": 2155, "c": "abc", "cbig": "长" * 100,
    "vc": "订单 ✓ 😀", "vbig": "x" * 500, "latin": "café crème", "zh": "待支付", "old": "ascii+é",
    "tt": "tiny", "tx": "文本" * 1000, "mt": "m" * 70000, "lt": "l" * 100, "tb": b"\x00\xff",
    "bl": bytes(range(256)), "mb": b"\x01" * 70000, "lb": b"", "bin": b"\x01\x02\x00\x03",
    "vb": b"\x00\x00", "e": "large", "st": "a,d", "bit1": 1, "bit12": 0xABC, "bit64": 2 ** 64 - 1,
    "j": {"k": [1, -2, 70000, 2 ** 40, 1.5, "s", True, False, None, {"nested": []}], "": "empty key"},
    "pt": b"\x00\x00\x00\x00" + struct.pack("<BIdd", 1, 1, 1.5, -2.5),
}
SECOND_ROW = {"id": 2, "e": "", "st": "", "j": [1, "two", {"three": 3}], "tm": datetime.timedelta(0),
              "dec": decimal.Decimal("0"), "money": decimal.Decimal("-0.01"), "y": 0}


_LIBRARY_QUIRKS = {
    "set": lambda v: set(v.split(",")) if v else None,  # an empty SET reads as None ("empty set")
    "timestamp": lambda v: v.replace(tzinfo=None),  # naive UTC
    "binary": lambda v: v.rstrip(b"\x00"),  # BINARY(n) comes back without its padding
    "year": lambda v: 1900 if v == 0 else v,  # YEAR 0000 reads as 1900
    "float": lambda v: struct.unpack("<f", struct.pack("<f", v))[0],
}


def _expected_library_value(col: Col, value: object) -> object:
    """What pymysqlreplication 1.0.17 returns for a stored value (its documented quirks), with
    syncd's reader imported: MySQL's binary JSON as JSON text (syncd/source/binlog.py)."""
    if value is None:
        return None
    if value == b"" or (col.kind == "binary" and not value.rstrip(b"\x00")):  # type: ignore[union-attr]
        return ""  # an empty binary value reads as ''
    if col.kind == "bit":
        return format(value, f"0{col.length}b")  # a string of the bits
    if col.kind == "json":
        return json_document(_bytes_json(value))
    quirk = _LIBRARY_QUIRKS.get(col.kind)
    return quirk(value) if quirk else value


def _bytes_json(value: object) -> object:
    """The library returns JSON strings and keys as bytes; binary JSON holds an object's keys
    sorted by length, then by their bytes (mysql-server sql-common/json_binary.cc)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return {k.encode(): _bytes_json(value[k]) for k in keys}
    if isinstance(value, list):
        return [_bytes_json(v) for v in value]
    return value


def _net_length(data: bytes, pos: int) -> tuple[int, int]:
    """net_field_length: 1, 3, 4 or 9 bytes (mysql-server mysys/pack.cc)."""
    first = data[pos]
    if first < 251:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(data[pos + 1:pos + 1 + size], "little"), pos + 1 + size


def _dump_request(double: MySQLDouble, command: int, payload: bytes, setup: tuple[str, ...]) -> list[bytes]:
    """Send a binlog dump request by hand; the events received (without the OK byte) until EOF."""
    with double.connect() as conn:
        for statement in setup:
            _query(conn, statement)
        conn._execute_command(command, payload)
        events = []
        while not (packet := conn._read_packet()).is_eof_packet():
            events.append(packet._data[1:])
        return events


def _raw_dump(double: MySQLDouble, name: str, position: int, flags: int = 1, server_id: int = 77,
              setup: tuple[str, ...] = ("SET @source_binlog_checksum = 'CRC32'",)) -> list[bytes]:
    return _dump_request(double, 0x12, struct.pack("<IHI", position, flags, server_id) + name.encode(), setup)


def _reader(double: MySQLDouble, **options: object) -> BinLogStreamReader:
    settings = {"server_id": 99, "blocking": False, "resume_stream": True, "log_file": "binlog.000001",
                "log_pos": 4, "filter_non_implemented_events": False, **options}
    return BinLogStreamReader(connection_settings=double.connection_kwargs(), **settings)


def _events(double: MySQLDouble, **options: object) -> list:
    stream = _reader(double, **options)
    try:
        return list(stream)
    finally:
        stream.close()


def test_rows_of_every_common_type_come_back_from_the_library(double: MySQLDouble) -> None:
    second = {c.name: SECOND_ROW.get(c.name) for c in EVERY_TYPE.columns}
    double.transaction([Insert(EVERY_TYPE, [FIRST_ROW, second])])
    double.transaction([Update(EVERY_TYPE, [(FIRST_ROW, {**FIRST_ROW, "vc": "changed"})])])
    double.transaction([Delete(EVERY_TYPE, [second])])
    rows = [e for e in _events(double) if isinstance(e, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent)]
    stored = [r["values"] for e in rows[:-2] for r in e.rows]
    assert [r["id"] for r in stored] == [1, 2]
    for row, expected in zip(stored, (FIRST_ROW, second), strict=True):
        for col in EVERY_TYPE.columns:
            assert row[col.name] == _expected_library_value(col, expected.get(col.name)), col.name
    update = rows[-2].rows[0]
    assert update["before_values"]["vc"] == FIRST_ROW["vc"] and update["after_values"]["vc"] == "changed"
    assert rows[-1].rows[0]["values"]["id"] == 2 and rows[-1].rows[0]["values"]["e"] == ""


def test_full_metadata_carries_names_keys_labels_charsets_and_visibility(double: MySQLDouble) -> None:
    table = Table("shop", "people", (
        Col("tenant", "int", primary=True, nullable=False, unsigned=True),
        Col("name", "varchar", length=50, primary=True, prefix=10, charset="latin1"),
        Col("kind", "enum", values=("a", "b")), Col("tags", "set", values=("x", "y")),
        Col("area", "polygon"), Col("hidden", "int", visible=False), Col("note", "text"),
    ))
    double.transaction([Insert(table, [{"tenant": 1, "name": "n"}])])
    table_map = next(e for e in _events(double) if isinstance(e, TableMapEvent))
    meta = table_map.optional_metadata
    assert meta.column_name_list == ["tenant", "name", "kind", "tags", "area", "hidden", "note"]
    assert meta.unsigned_column_list == [True, False, False, False, False, False, False]
    assert meta.primary_keys_with_prefix == {0: 0, 1: 10}
    # syncd.source.binlog (imported by other tests of this process) has the library keep labels
    # as bytes until the column's charset is known: compare them as text either way.
    assert _texts(meta.set_enum_str_value_list) == [["a", "b"]]
    assert _texts(meta.set_str_value_list) == [["x", "y"]]
    assert meta.geometry_type_list == [3]
    assert meta.visibility_list == [True, True, True, True, True, False, True]
    assert meta.charset_collation_list == [8, 255]  # name latin1, note utf8mb4_0900_ai_ci
    assert not any(c.is_primary for c in table_map.columns)  # the library reads SIMPLE_PRIMARY_KEY only
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    orders_map = [e for e in _events(double) if isinstance(e, TableMapEvent)][-1]
    assert orders_map.optional_metadata.simple_primary_key_list == [0]
    assert [c.name for c in orders_map.columns if c.is_primary] == ["id"]


def test_minimal_metadata_has_no_names_and_the_library_says_so(double: MySQLDouble) -> None:
    double.set_global("binlog_row_metadata", "MINIMAL")
    double.transaction([Insert(ORDERS, [{"id": 7, "note": "n", "amount": decimal.Decimal("1.50")}])])
    events = _events(double)
    table_map = next(e for e in events if isinstance(e, TableMapEvent))
    assert table_map.optional_metadata.column_name_list == []
    assert table_map.optional_metadata.unsigned_column_list == [False, False, False]
    write = next(e for e in events if isinstance(e, WriteRowsEvent))
    assert write.rows[0]["values"] == {"UNKNOWN_COL0": 7, "UNKNOWN_COL1": "n",
                                       "UNKNOWN_COL2": decimal.Decimal("1.50")}


def test_transaction_shape_gtids_and_ddl(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    double.transaction([Insert(ORDERS, [{"id": 2}])], gtid=f"{UUID_B}:40")
    double.ddl("ALTER TABLE orders ADD c INT", schema="shop")
    kinds = [type(e).__name__ for e in _events(double)]
    assert kinds == ["RotateEvent", "FormatDescriptionEvent", "PreviousGtidsEvent",
                     "GtidEvent", "QueryEvent", "TableMapEvent", "WriteRowsEvent", "XidEvent",
                     "GtidEvent", "QueryEvent", "TableMapEvent", "WriteRowsEvent", "XidEvent",
                     "GtidEvent", "QueryEvent"]
    events = _events(double)
    gtids = [e.gtid for e in events if isinstance(e, GtidEvent)]
    assert gtids == [f"{UUID_A}:1", f"{UUID_B}:40", f"{UUID_A}:2"]
    ddl = events[-1]
    assert isinstance(ddl, QueryEvent) and ddl.schema == b"shop"
    assert ddl.query == "ALTER TABLE orders ADD c INT"
    assert double.global_value("gtid_executed") == f"{UUID_A}:1-2,\n{UUID_B}:40"
    first_gtid = next(e for e in events if isinstance(e, GtidEvent))
    assert (first_gtid.last_committed, first_gtid.sequence_number) == (0, 1)
    raw = _raw_dump(double, "binlog.000001", 4)
    gtid_body = raw[3][19:-4]
    timestamps = 14 if gtid_body[42 + 6] & 0x80 else 7
    length, _ = _net_length(gtid_body, 42 + timestamps)
    assert length == sum(len(e) for e in raw[3:8])  # GTID, BEGIN, TABLE_MAP, WRITE_ROWS, XID


def test_gtid_mode_off_writes_anonymous_gtids(double: MySQLDouble) -> None:
    double.set_global("gtid_mode", "OFF")
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    events = _events(double)
    assert [e.event_type for e in events if isinstance(e, NotImplementedEvent)] == [34]
    assert double.global_value("gtid_executed") == ""


def test_auto_position_skips_what_the_replica_has(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    double.transaction([Insert(ORDERS, [{"id": 2}])], gtid=f"{UUID_B}:1")
    double.binlog.rotate()
    double.transaction([Insert(ORDERS, [{"id": 3}])])
    events = _events(double, auto_position=f"{UUID_A}:1,{UUID_B}:1", log_file=None, log_pos=None)
    assert [r["values"]["id"] for e in events if isinstance(e, WriteRowsEvent) for r in e.rows] == [3]
    assert next(e for e in events if isinstance(e, RotateEvent)).next_binlog == "binlog.000002"
    events = _events(double, auto_position=f"{UUID_A}:1", log_file=None, log_pos=None)
    assert [r["values"]["id"] for e in events if isinstance(e, WriteRowsEvent) for r in e.rows] == [2, 3]
    assert any(isinstance(e, HeartbeatLogEvent) for e in events)  # the position past the skipped one


def test_rotation_restart_and_checksum_none(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    double.restart()  # STOP event, then binlog.000002
    events = _events(double)
    assert [e.next_binlog for e in events if isinstance(e, RotateEvent)] == ["binlog.000001", "binlog.000002"]
    assert [type(e).__name__ for e in events].count("StopEvent") == 1
    double.set_global("binlog_checksum", "NONE")  # rotates to binlog.000003, written without CRC32
    double.transaction([Insert(ORDERS, [{"id": 2, "note": "no checksum"}])])
    assert [f.name for f in double.binlog.files] == ["binlog.000001", "binlog.000002", "binlog.000003"]
    events = _events(double, log_file="binlog.000003")
    assert [r["values"] for e in events if isinstance(e, WriteRowsEvent) for r in e.rows] == [
        {"id": 2, "note": "no checksum", "amount": None}]
    # The library asks SHOW GLOBAL VARIABLES whether to declare checksum support, so after the
    # switch it no longer does, and the older CRC32 files are refused, as MySQL refuses them.
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _events(double)
    assert caught.value.args == (1236, "Replica can not handle replication events with the checksum that "
                                       "source is configured to log; the first event 'binlog.000001' at 4, "
                                       "the last event read from './binlog.000001' at 127, the last byte "
                                       "read from './binlog.000001' at 127.")


def test_blocking_dump_waits_and_sends_heartbeats(double: MySQLDouble) -> None:
    stream = _reader(double, blocking=True, slave_heartbeat=0.2)
    try:
        seen = [stream.fetchone() for _ in range(3)]  # rotate, format description, previous gtids
        beat = stream.fetchone()
        assert isinstance(beat, HeartbeatLogEvent) and beat.ident == "binlog.000001"
        assert beat.packet.log_pos == double.binlog.current.size
        threading.Timer(0.3, lambda: double.transaction([Insert(ORDERS, [{"id": 5}])])).start()
        while not isinstance(event := stream.fetchone(), WriteRowsEvent):
            assert isinstance(event, HeartbeatLogEvent | GtidEvent | QueryEvent | TableMapEvent)
        assert event.rows[0]["values"]["id"] == 5 and len(seen) == 3
    finally:
        stream.close()


def test_a_cut_dump_connection_is_seen_by_the_reader(double: MySQLDouble,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binlogstream, "MYSQL_EXPECTED_ERROR_CODES", [])
    stream = _reader(double, blocking=True)
    try:
        for _ in range(3):
            stream.fetchone()
        threading.Timer(0.2, double.cut_dump_connections).start()
        with pytest.raises(pymysql.err.OperationalError) as caught:
            stream.fetchone()
        assert caught.value.args[0] == 2013
    finally:
        stream.close()


# -- what the library cannot read: parsed here ---------------------------------------------------


def _split(data: bytes, checksum: bool) -> list[bytes]:
    """Events back to back (each one's size is in its header)."""
    events, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos + 9:pos + 13], "little")
        events.append(data[pos:pos + size])
        pos += size
    assert pos == len(data)
    return events


def _payload(body: bytes) -> tuple[dict[int, int], bytes]:
    """TRANSACTION_PAYLOAD_EVENT data: TLV fields (type, length, value as net_field_length)
    until the end mark 0, then the payload."""
    fields, pos = {}, 0
    while True:
        kind, pos = _net_length(body, pos)
        if kind == 0:
            return fields, body[pos:]
        length, pos = _net_length(body, pos)
        value, end = _net_length(body, pos)
        assert end - pos == length
        fields[kind], pos = value, end


def _inner_form(event: bytes) -> bytes:
    """A file event as a compressed payload holds it: no checksum, log_pos 0."""
    data = bytearray(event[:-4])
    data[9:13] = len(data).to_bytes(4, "little")
    data[13:17] = b"\0\0\0\0"
    return bytes(data)


def test_a_compressed_transaction_holds_the_same_events_as_an_uncompressed_one(double: MySQLDouble) -> None:
    rows = [{"id": i, "note": f"note {i}", "amount": decimal.Decimal(i) / 4} for i in range(50)]
    twin = MySQLDouble(server_uuid=UUID_A)
    try:
        twin.transaction([Insert(ORDERS, rows), Update(ORDERS, [(rows[0], {**rows[0], "note": "x"})])],
                         compressed=False, timestamp=1_700_000_000)
        plain = _split(bytes(twin.binlog.current.data[158:]), checksum=True)
    finally:
        twin.close()
    double.transaction([Insert(ORDERS, rows), Update(ORDERS, [(rows[0], {**rows[0], "note": "x"})])],
                       compressed=True, timestamp=1_700_000_000)
    double.transaction([Delete(ORDERS, [rows[1]])])  # and the stream goes on after it
    events = _raw_dump(double, "binlog.000001", 4)
    gtid, payload_event = events[3], events[4]
    assert payload_event[4] == 40 and int.from_bytes(payload_event[13:17], "little") == 158 + len(gtid) + len(
        payload_event)
    assert zlib.crc32(payload_event[:-4]) == int.from_bytes(payload_event[-4:], "little")
    fields, compressed = _payload(payload_event[19:-4])
    assert fields[2] == 0 and fields[1] == len(compressed)  # ZSTD, payload size
    inner = zstandard.ZstdDecompressor().decompressobj().decompress(compressed)
    assert fields[3] == len(inner)  # uncompressed size
    assert _split(inner, checksum=False) == [_inner_form(e) for e in plain[1:]]
    trx_length_at = 42 + (14 if gtid[19 + 48] & 0x80 else 7)
    assert _net_length(gtid[19:-4], trx_length_at)[0] == len(gtid) + len(payload_event)
    library = _events(double)
    assert [e.event_type for e in library if isinstance(e, NotImplementedEvent)] == [40]
    assert [r["values"]["id"] for e in library if isinstance(e, DeleteRowsEvent) for r in e.rows] == [1]


def test_a_large_compressed_transaction(double: MySQLDouble) -> None:
    table = Table("shop", "big", (Col("id", "int", primary=True, nullable=False), Col("body", "text")))
    rows = [{"id": i, "body": f"{i:08d}" * 40} for i in range(20000)]  # 320 bytes each: 6.6 MB
    double.transaction([Insert(table, rows)], compressed=True)
    payload_event = _raw_dump(double, "binlog.000001", 4)[4]
    fields, compressed = _payload(payload_event[19:-4])
    inner = b"".join(zstandard.ZstdDecompressor().read_to_iter(compressed))
    assert fields[3] == len(inner) > 6_000_000 > len(compressed)
    rows_events = [e for e in _split(inner, checksum=False) if e[4] == 30]
    assert len(rows_events) > 700 and all(len(e) <= 8192 + 19 + 400 for e in rows_events)
    assert rows_events[-1][19 + 6] == 1 and rows_events[0][19 + 6] == 0  # STMT_END_F on the last only


def _varlen(data: bytes, pos: int) -> tuple[int, int]:
    """The serialization library's variable-length unsigned integer (readme.md)."""
    size = 1
    while size < 9 and data[pos] >> (size - 1) & 1:
        size += 1
    raw = int.from_bytes(data[pos:pos + size], "little")
    return (raw >> size if size < 9 else raw >> 8), pos + size


def _signed(raw: int) -> int:
    return -(raw >> 1) - 1 if raw & 1 else raw >> 1


def _tagged_gtid(body: bytes) -> dict[str, object]:
    """GTID_TAGGED_LOG_EVENT: version, message size, last non-ignorable field id, then fields
    (id, value) in Gtid_event::define_fields order."""
    version, pos = _varlen(body, 0)
    size, pos = _varlen(body, pos)
    _last, pos = _varlen(body, pos)
    assert version == 0 and size == len(body)
    names = ["flags", "uuid", "gno", "tag", "last_committed", "sequence_number", "immediate_ts",
             "original_ts", "transaction_length", "immediate_version", "original_version", "ticket"]
    found: dict[str, object] = {}
    while pos < len(body):
        field_id, pos = _varlen(body, pos)
        name = names[field_id]
        if name == "uuid":
            raw = []
            for _ in range(16):
                byte, pos = _varlen(body, pos)
                raw.append(byte)
            found[name] = str(uuidlib.UUID(bytes=bytes(raw)))
        elif name == "tag":
            length, pos = _varlen(body, pos)
            found[name], pos = body[pos:pos + length].decode(), pos + length
        else:
            value, pos = _varlen(body, pos)
            found[name] = _signed(value) if name in ("gno", "last_committed", "sequence_number") else value
    return found


def test_a_tagged_gtid_event(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    double.transaction([Insert(ORDERS, [{"id": 2}])], gtid=f"{UUID_A}:Batch_7:300", timestamp=1_700_000_000)
    events = _raw_dump(double, "binlog.000001", 4)
    tagged = events[8]
    assert tagged[4] == 42 and tagged[19:].startswith(b"\x00")
    fields = _tagged_gtid(tagged[19:-4])
    assert fields["uuid"] == UUID_A and fields["tag"] == "batch_7" and fields["gno"] == 300
    assert (fields["last_committed"], fields["sequence_number"]) == (1, 2)
    assert fields["immediate_ts"] == 1_700_000_000_000_000 and "original_ts" not in fields
    assert fields["immediate_version"] == 80403 and fields["flags"] == 0
    assert fields["transaction_length"] == sum(len(e) for e in events[8:13])
    assert double.global_value("gtid_executed") == f"{UUID_A}:1:batch_7:300"
    library = _events(double)
    assert [e.event_type for e in library if isinstance(e, NotImplementedEvent)] == [42]
    assert [r["values"]["id"] for e in library if isinstance(e, WriteRowsEvent) for r in e.rows] == [1, 2]


def _gtid_dump(double: MySQLDouble, encoded_set: bytes, flags: int = 1) -> list[bytes]:
    """COM_BINLOG_DUMP_GTID (rpl_source.cc com_binlog_dump_gtid): flags, server id, name size,
    name, position (8 bytes), data size, encoded GTID set."""
    payload = struct.pack("<HII", flags, 78, 0) + struct.pack("<QI", 4, len(encoded_set)) + encoded_set
    return _dump_request(double, 0x1E, payload, ("SET @source_binlog_checksum = 'CRC32'",))


def _tagged_set(items: list[tuple[str, str, int, int]]) -> bytes:
    """A GTID set in the tagged format (rpl_gtid_set.cc encode_nsids_format, Tsid encoding)."""
    out = struct.pack("<Q", 1 << 56 | len(items) << 8 | 1)
    for uuid, tag, start, end in items:
        out += uuidlib.UUID(uuid).bytes + bytes((len(tag) << 1,)) + tag.encode()
        out += struct.pack("<Qqq", 1, start, end + 1)
    return out


def test_auto_position_with_tagged_gtids_and_several_uuids(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    double.transaction([Insert(ORDERS, [{"id": 2}])], gtid=f"{UUID_A}:t1:1")
    double.transaction([Insert(ORDERS, [{"id": 3}])], gtid=f"{UUID_B}:1")
    double.transaction([Insert(ORDERS, [{"id": 4}])], gtid=f"{UUID_A}:t1:2")
    have = _tagged_set([(UUID_A, "", 1, 1), (UUID_A, "t1", 1, 1), (UUID_B, "", 1, 1)])
    events = _gtid_dump(double, have)
    kinds = [e[4] for e in events]
    assert kinds[:3] == [4, 15, 35] and kinds.count(27) == 1  # one heartbeat past the skipped three
    assert kinds[3:] == [27, 42, 2, 19, 30, 16]


def test_heartbeat_v2_when_the_replica_asks_for_it(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    events = _gtid_dump(double, GtidSetBytes.of(UUID_A, 1, 1), flags=1 | 2)
    beat = next(e for e in events if e[4] == 41)
    fields, pos, body = {}, 0, beat[19:-4]
    while (kind := body[pos]) != 0:
        length, pos = _net_length(body, pos + 1)
        fields[kind], pos = body[pos:pos + length], pos + length
    assert fields[1] == b"binlog.000001"
    assert _net_length(fields[2], 0)[0] == double.binlog.current.size


class GtidSetBytes:
    @staticmethod
    def of(uuid: str, start: int, end: int) -> bytes:
        """An untagged GTID set of one interval, as the binlog library encodes it."""
        return struct.pack("<Q", 1) + uuidlib.UUID(uuid).bytes + struct.pack("<Qqq", 1, start, end + 1)


# -- the dump refuses as MySQL refuses -------------------------------------------------------------


def _dump_error(call: object) -> tuple[int, str]:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        call()  # type: ignore[operator]
    return caught.value.args[0], caught.value.args[1]


def test_dump_errors(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    end = double.binlog.current.size
    assert _dump_error(lambda: _raw_dump(double, "binlog.000009", 4)) == (
        1236, "Could not find first log file name in binary log index file")
    assert _dump_error(lambda: _raw_dump(double, "binlog.000001", end + 10)) == (
        1236, "Client requested source to start replication from position > file size")
    code, message = _dump_error(lambda: _raw_dump(double, "binlog.000001", 160))
    assert code == 1236 and message.endswith(
        "; the first event 'binlog.000001' at 160, the last event read from './binlog.000001' at 127, "
        "the last byte read from './binlog.000001' at 127.")
    assert message.rsplit("; the first event", 1)[0] in (
        "bogus data in log event",
        "binlog truncated in the middle of event; consider out of disk space on source",
        "log event entry exceeded max_allowed_packet; Increase max_allowed_packet on source")
    assert _dump_error(lambda: _raw_dump(double, "binlog.000001", 4, setup=()))[1].startswith(
        "Replica can not handle replication events with the checksum that source is configured to log")


def test_purged_gtids_are_refused(double: MySQLDouble) -> None:
    double.transaction([Insert(ORDERS, [{"id": 1}])])
    double.binlog.rotate()
    double.binlog.purge_to("binlog.000002")
    assert _dump_error(lambda: _gtid_dump(double, struct.pack("<Q", 0))) == (
        1236, "Cannot replicate because the source purged required binary logs. Replicate the missing "
              "transactions from elsewhere, or provision a new replica from backup. Consider increasing "
              "the source's binary log expiration period. The GTID set sent by the replica is '', and "
              f"the missing transactions are '{UUID_A}:1'")
    assert [e[4] for e in _gtid_dump(double, GtidSetBytes.of(UUID_A, 1, 1))] == [4, 15, 35]
    double.set_global("gtid_mode", "OFF")
    assert _dump_error(lambda: _gtid_dump(double, struct.pack("<Q", 0)))[1] == (
        "The replication sender thread cannot start in AUTO_POSITION mode: this server has GTID_MODE = OFF "
        "instead of ON.")


def test_a_second_dump_of_the_same_replica_ends_the_first(double: MySQLDouble,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(binlogstream, "MYSQL_EXPECTED_ERROR_CODES", [])
    first = _reader(double, blocking=True, server_id=5)
    second = _reader(double, blocking=True, server_id=5)
    try:
        for _ in range(3):
            first.fetchone()
        for _ in range(3):
            second.fetchone()
        with pytest.raises(pymysql.err.OperationalError) as caught:
            first.fetchone()
        assert caught.value.args[0] == 1236
        assert caught.value.args[1].startswith(
            "A replica with the same server_uuid/server_id as this replica has connected to the source")
    finally:
        first.close()
        second.close()


def test_hundreds_of_thousands_of_events_in_seconds(double: MySQLDouble) -> None:
    started = time.monotonic()
    for i in range(40_000):
        double.transaction([Insert(ORDERS, [{"id": i, "note": "n"}])])
    appended = time.monotonic()
    count = len(_raw_dump(double, "binlog.000001", 4))
    served = time.monotonic()
    assert count == 3 + 5 * 40_000
    assert appended - started < 30 and served - appended < 15


def test_rows_events_with_partition_extra_row_info(double: MySQLDouble) -> None:
    """The v2 extra-row-info block with partition information (rows_event.h, extra_row_info)."""
    row = {"id": 1, "note": "p", "amount": None}
    double.transaction([Insert(ORDERS, [row]), Update(ORDERS, [(row, {**row, "note": "q"})])], partition=(3,))
    write, update = [e for e in _events(double) if isinstance(e, WriteRowsEvent | UpdateRowsEvent)]
    assert (write.extra_data_type, write.partition_id) == (1, 3)
    assert (update.partition_id, update.source_partition_id) == (3, 3)
    assert update.rows[0]["after_values"]["note"] == "q"


def _texts(labels: list[list[str | bytes]]) -> list[list[str]]:
    return [[label.decode() if isinstance(label, bytes) else label for label in group] for group in labels]

