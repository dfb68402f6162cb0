"""The value normal form on every read path: each binlog decoder and the SELECT reads give the value
the server itself prints (`CAST(col AS CHAR)`, `HEX(col)`), for values our type matrix once missed."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devtools.sandbox import MariaDBServer
from syncd.errors import StreamError
from syncd.model import RowChange, SourceTransaction
from syncd.source import fastpath
from syncd.source.binlog import BinlogReader, SourceEvent
from syncd.source.chunks import SourceReader
from tests.integration.binlog_reads import DECODERS, decoded_changes, position, root_source


@pytest.fixture
def database(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> str:
    return source_db(mariadb)


def execute(server: MariaDBServer, database: str, *statements: str) -> list[tuple]:
    with server.connect(database) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        return list(cur.fetchall())


def selected(server: MariaDBServer, database: str, table: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The rows as the initial copy, snapshots and reconcile read them, by id."""
    reader = SourceReader(root_source(server, database, monkeypatch))
    try:
        columns = list(reader.columns(table))
        rows, _ = reader.chunk(table, ("id",), columns, None, 1000)
        return {row["id"]: row for row in rows}
    finally:
        reader.close()


@pytest.mark.parametrize("decoder", DECODERS)
def test_binary_of_zero_bytes_is_padded_on_every_binlog_path(
        mariadb: MariaDBServer, database: str, decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The binlog stores BINARY(n) without its trailing zero bytes: all zeros arrive as nothing."""
    execute(mariadb, database, "CREATE TABLE bz (id INT PRIMARY KEY, b BINARY(4), v VARBINARY(4))")
    start = position(mariadb)
    execute(mariadb, database, "INSERT INTO bz VALUES (1, x'00000000', ''), (2, x'01', x'01')",
            "UPDATE bz SET b = x'00000000', v = '' WHERE id = 2")
    changes = decoded_changes(mariadb, database, {"bz"}, start, position(mariadb), decoder, monkeypatch)
    oracle = dict(execute(mariadb, database, "SELECT id, HEX(b) FROM bz"))
    assert oracle == {1: "00000000", 2: "00000000"}
    images = [(c.op.value, c.after) for c in changes]
    zeros = {"b": b"\x00" * 4, "v": b""}
    assert images == [("insert", {"id": 1, **zeros}), ("insert", {"id": 2, "b": b"\x01\0\0\0", "v": b"\x01"}),
                      ("update", {"id": 2, **zeros})]
    assert selected(mariadb, database, "bz", monkeypatch) == {1: {"id": 1, **zeros}, 2: {"id": 2, **zeros}}


FLOATS = """
CREATE TABLE fl (
    id INT PRIMARY KEY, f35_5 FLOAT(35,5), price FLOAT(10,2), zf FLOAT(10,2) UNSIGNED ZEROFILL,
    f7_0 FLOAT(7,0), f35_30 FLOAT(35,30), plain FLOAT, f20 FLOAT(20), d10_2 DOUBLE(10,2), d DOUBLE
)
"""
FLOAT_ROWS = ("(1, 30.12346, 12345.67, 12.5, 1234567, 1.1, 1.2345678, 0.1, 12345.67, 0.1)",
              "(2, -1e25, 0.01, 99999999.99, -3, -0.1, 3.4e38, 16777217, -0.05, 1e-300)",
              "(3, 0.00001, -99999.99, 0, 9999999, 0.000001, -1.17549e-38, -1234565, 1.5, -0.0)")


@pytest.mark.parametrize("decoder", DECODERS)
def test_float_with_decimals_arrives_as_the_server_prints_it_on_every_path(
        mariadb: MariaDBServer, database: str, decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """FLOAT(M,D) prints with D decimals (30.12346), a FLOAT without them with 6 significant digits;
    the binlog carries the single-precision number and not D (TABLE_MAP gives its size only)."""
    execute(mariadb, database, FLOATS)
    start = position(mariadb)
    execute(mariadb, database, f"INSERT INTO fl VALUES {', '.join(FLOAT_ROWS)}",
            "UPDATE fl SET id = id + 10 WHERE id = 3")
    changes = decoded_changes(mariadb, database, {"fl"}, start, position(mariadb), decoder, monkeypatch)
    columns = ["f35_5", "price", "zf", "f7_0", "f35_30", "plain", "f20", "d10_2", "d"]
    casts = ", ".join(f"CAST({c} AS CHAR)" for c in columns)
    printed = {row[0]: dict(zip(columns, row[1:], strict=True))
               for row in execute(mariadb, database, f"SELECT id, {casts} FROM fl")}
    assert printed[1]["f35_5"] == "30.12346" and printed[1]["price"] == "12345.67"
    oracle = {i: {"id": i, **{c: float(text) for c, text in row.items()}} for i, row in printed.items()}
    inserted = {**oracle, 3: {**oracle.pop(13), "id": 3}}
    updated = {**inserted[3], "id": 13}
    assert [(c.op.value, c.before, c.after) for c in changes] == [
        *(("insert", None, inserted[i]) for i in (1, 2, 3)), ("update", inserted[3], updated)]
    assert selected(mariadb, database, "fl", monkeypatch) == {**oracle, 13: {**inserted[3], "id": 13}}


def test_a_float_whose_decimals_change_arrives_with_the_new_ones(
        mariadb: MariaDBServer, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ALTER TABLE changes D but not the TABLE_MAP: a reader that read rows before it reads the
    rows after it with the new D."""
    execute(mariadb, database, "CREATE TABLE fa (id INT PRIMARY KEY, f FLOAT(10,1))")
    monkeypatch.setenv(fastpath.DECODER_ENV, "fast")
    reader = BinlogReader(root_source(mariadb, database, monkeypatch), position(mariadb), {"fa"})
    try:
        events = reader.events()
        execute(mariadb, database, "INSERT INTO fa VALUES (1, 1234567.8)")
        first = next_change(events)
        execute(mariadb, database, "ALTER TABLE fa MODIFY f FLOAT(10,6)",
                "INSERT INTO fa VALUES (2, 2.123456)")
        second = next_change(events)
    finally:
        reader.close()
    assert [first.after, second.after] == [{"id": 1, "f": 1234567.8}, {"id": 2, "f": 2.123456}]


def next_change(events: Iterator[SourceEvent]) -> RowChange:
    for event in events:
        if isinstance(event, SourceTransaction) and event.changes:
            return event.changes[0]
    raise AssertionError("the stream ended")


def test_inet6_uuid_and_inet4_arrive_as_the_server_prints_them(
        mariadb: MariaDBServer, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Addresses with zero words anywhere (MariaDB writes `::` for the longest run, even of one
    word, and dots IPv4-compatible and -mapped addresses) and UUIDs of every version: the binlog
    carries their bytes, a SELECT the server's text; both paths carry the text."""
    rng = random.Random(7)
    words = [[rng.choice([0, 0, 0, 1, 0xFFFF, rng.randrange(65536)]) for _ in range(8)] for _ in range(300)]
    words += [[0] * 5 + [0xFFFF, w, 1] for w in (0, 1)] + [[0] * 6 + [w, 5] for w in (0, 1)]
    values = [(i, b"".join(w.to_bytes(2, "big") for w in address), rng.randbytes(16), rng.randbytes(4))
              for i, address in enumerate(words, 1)]
    execute(mariadb, database, "CREATE TABLE addr (id INT PRIMARY KEY, ip6 INET6, uu UUID, ip4 INET4)")
    start = position(mariadb)
    rows = ", ".join(f"({i}, CAST(X'{a.hex()}' AS INET6), X'{u.hex()}', CAST(X'{b.hex()}' AS INET4))"
                     for i, a, u, b in values)
    with mariadb.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # a UUID of no version the server knows: NULL
        cur.execute(f"INSERT INTO addr VALUES {rows}")
    changes = decoded_changes(mariadb, database, {"addr"}, start, position(mariadb), "fast", monkeypatch)
    printed = {row[0]: {"id": row[0], "ip6": row[1], "uu": row[2], "ip4": row[3]}
               for row in execute(mariadb, database, "SELECT id, CAST(ip6 AS CHAR), CAST(uu AS CHAR), "
                                                     "CAST(ip4 AS CHAR) FROM addr")}
    assert {c.after["id"]: c.after for c in changes} == printed
    assert selected(mariadb, database, "addr", monkeypatch) == printed


def create_in_old_format(server: MariaDBServer, database: str, statement: str) -> None:
    """A table in MariaDB's temporal format from before 10.1 (what tables created by MySQL 5.5 or
    MariaDB 5.3-10.0 still hold): the server writes new tables so while the setting is off."""
    with server.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL mysql56_temporal_format = OFF")
        try:
            cur.execute(statement)
        finally:
            cur.execute("SET GLOBAL mysql56_temporal_format = ON")


@pytest.mark.parametrize("decoder", DECODERS)
def test_old_format_temporal_columns_arrive_as_the_server_prints_them(
        mariadb: MariaDBServer, database: str, decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An old-format TIME is a signed ±HHMMSS (the library read -838:59:59 as 839:12:57)."""
    create_in_old_format(mariadb, database, "CREATE TABLE old (id INT PRIMARY KEY, tm TIME, dt DATETIME, "
                                            "ts TIMESTAMP NULL)")
    start = position(mariadb)
    times = ["-838:59:59", "838:59:59", "-00:00:01", "00:00:00", "-12:34:56", "100:00:00"]
    execute(mariadb, database, "SET SESSION time_zone = '+00:00'", "INSERT INTO old VALUES " + ", ".join(
        f"({i}, '{t}', '2024-02-29 12:34:56', '2038-01-19 03:14:07')" for i, t in enumerate(times)))
    changes = decoded_changes(mariadb, database, {"old"}, start, position(mariadb), decoder, monkeypatch)
    printed = dict(execute(mariadb, database, "SELECT id, CAST(tm AS CHAR) FROM old"))
    assert [printed[i] for i in range(len(times))] == times
    read = {c.after["id"]: c.after for c in changes}
    for i, text in enumerate(times):
        sign = -1 if text.startswith("-") else 1
        hours, minutes, seconds = (int(part) for part in text.lstrip("-").split(":"))
        assert read[i]["tm"] == sign * timedelta(hours=hours, minutes=minutes, seconds=seconds)
        assert read[i]["ts"] == datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)
    assert {i: row["tm"] for i, row in selected(mariadb, database, "old", monkeypatch).items()} == {
        i: row["tm"] for i, row in read.items()}


def test_old_format_fractional_seconds_stop_the_source_with_the_fix(
        mariadb: MariaDBServer, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Their binlog values carry no length: refused, naming the column and how to rebuild it."""
    create_in_old_format(mariadb, database, "CREATE TABLE oldf (id INT PRIMARY KEY, at DATETIME(6))")
    start = position(mariadb)
    execute(mariadb, database, "INSERT INTO oldf VALUES (1, '2024-02-29 12:34:56.123456')")
    with pytest.raises(StreamError, match=r"oldf, column at: DATETIME\(6\) is stored in MariaDB's format "
                                          r"from before 10.1.*ALTER TABLE \.\.\. FORCE"):
        decoded_changes(mariadb, database, {"oldf"}, start, position(mariadb), "fast", monkeypatch)
    execute(mariadb, database, "ALTER TABLE oldf FORCE")  # the fix the message gives
    start = position(mariadb)
    execute(mariadb, database, "INSERT INTO oldf VALUES (2, '2024-02-29 12:34:56.654321')")
    changes = decoded_changes(mariadb, database, {"oldf"}, start, position(mariadb), "fast", monkeypatch)
    assert changes[0].after == {"id": 2, "at": datetime(2024, 2, 29, 12, 34, 56, 654321)}
