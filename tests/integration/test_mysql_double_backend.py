"""The MySQL test double forwarding data statements to a real MariaDB database.

The double answers server identity, variables and binlog statements itself and relays plain
data SQL (tables, information_schema, transactions) to the backing database unchanged; these
tests check the relay with PyMySQL and with syncd's own information_schema readers.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterator

import pymysql
import pytest
from pymysql.constants import CLIENT

from devtools.sandbox import MariaDBServer
from syncd.source.checks import primary_key, table_columns
from tests.mysql_double import MySQLDouble


@pytest.fixture
def backed(mariadb: MariaDBServer,
           source_db: Callable[[MariaDBServer], str]) -> Iterator[tuple[MySQLDouble, str]]:
    database = source_db(mariadb)
    with mariadb.connect(database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20), amount DECIMAL(10,2))")
        cur.execute("INSERT INTO orders VALUES (1, '待支付', 12.50), (2, NULL, 0)")
    backend = {"host": mariadb.host, "port": mariadb.port, "user": "root",
               "password": mariadb.root_password, "charset": "utf8mb4"}
    with MySQLDouble(backend=backend) as double:
        yield double, database


def _rows(conn: pymysql.connections.Connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_data_statements_are_forwarded_and_server_ones_answered(backed: tuple[MySQLDouble, str]) -> None:
    double, database = backed
    with double.connect(database=database, autocommit=True) as conn:
        assert _rows(conn, "SELECT id, note, amount FROM orders ORDER BY id") == [
            (1, "待支付", decimal.Decimal("12.50")), (2, None, decimal.Decimal("0.00"))]
        assert _rows(conn, "SELECT VERSION(), DATABASE()") == [("8.4.3", database)]
        columns = table_columns(conn, database, "orders")
        assert columns == {"id": "int", "note": "varchar", "amount": "decimal"}
        assert primary_key(conn, database, "orders") == ("id",)
        _rows(conn, "SET SESSION time_zone = '+00:00'")
        _rows(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _rows(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
        assert _rows(conn, "SHOW STATUS LIKE 'binlog_snapshot_%'") == []  # MySQL has no such status
        assert _rows(conn, "SELECT COUNT(*) FROM orders") == [(2,)]
        _rows(conn, "COMMIT")
        assert _rows(conn, "SELECT @@time_zone, @@session.time_zone") == [("+00:00", "+00:00")]
        with pytest.raises(pymysql.err.ProgrammingError) as caught:
            _rows(conn, "SELECT * FROM missing_table")
        assert caught.value.args[0] == 1146
        with pytest.raises(pymysql.err.OperationalError) as caught:  # MariaDB has it, MySQL does not
            _rows(conn, "SELECT CRC32C('')")
        assert caught.value.args == (1305, f"FUNCTION {database}.CRC32C does not exist")
    assert any(sql == "SELECT COUNT(*) FROM orders" for _, sql in double.queries)


def test_an_unknown_database_is_refused_at_connect(backed: tuple[MySQLDouble, str]) -> None:
    double, _ = backed
    with pytest.raises(pymysql.err.OperationalError) as caught:
        double.connect(database="no_such_db")
    assert caught.value.args[0] == 1049


def test_forwarded_results_follow_the_clients_deprecate_eof(backed: tuple[MySQLDouble, str]) -> None:
    double, database = backed
    with double.connect(database=database, client_flag=CLIENT.DEPRECATE_EOF) as conn:
        conn._execute_command(3, "SELECT id FROM orders ORDER BY id")
        packets = [conn._read_packet()._data for _ in range(5)]
        assert packets[0] == b"\x01" and packets[2] == b"\x011" and packets[3] == b"\x012"
        assert packets[4][0] == 0xFE and len(packets[4]) >= 7  # an OK packet, not an EOF
    with double.connect(database=database) as conn:
        assert _rows(conn, "SELECT id FROM orders ORDER BY id") == [(1,), (2,)]
