"""The value normal form on every read path: each binlog decoder and the SELECT reads give the value
the server itself prints (`CAST(col AS CHAR)`, `HEX(col)`), for values our type matrix once missed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.sandbox import MariaDBServer
from syncd.reconcile.source import SourceReader
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
        return {row["id"]: row for row in reader.chunk(table, ("id",), columns, None, 1000)}
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
