"""Reading a range of a test server's binlog with syncd's reader, by any decoder, in this process."""

from __future__ import annotations

import os
from datetime import UTC

import pytest

from devtools.sandbox import MariaDBServer
from syncd.config import Secret, SourceConfig
from syncd.model import Position, RowChange, SourceTransaction
from syncd.source import fastpath
from syncd.source.binlog import BinlogReader
from syncd.source.schema_history import SchemaHistory

DECODERS = ("fast", "python", "library")
"""SYNCD_DECODER values: the C decoder, the generated Python, the library's own decoding."""

PASSWORD_ENV = "SYNCD_TEST_ROOT_PASSWORD"


def root_source(server: MariaDBServer, database: str, monkeypatch: pytest.MonkeyPatch) -> SourceConfig:
    """A source config that reads `database` on `server` as root."""
    monkeypatch.setenv(PASSWORD_ENV, server.root_password)
    return SourceConfig("s", server.host, server.port, "root", Secret(env=PASSWORD_ENV), database,
                        6000 + os.getpid() % 1000, UTC)


def position(server: MariaDBServer) -> Position:
    """Where the server's binlog ends now."""
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    return Position(str(file), int(pos))


def decoded_changes(server: MariaDBServer, database: str, tables: set[str], start: Position, end: Position,
                    decoder: str, monkeypatch: pytest.MonkeyPatch,
                    use: dict[str, tuple[bool, int]] | None = None,
                    history: SchemaHistory | None = None) -> list[RowChange]:
    """The row changes of `tables` committed between `start` and `end`, read with `decoder` (and
    `history`, for row events without full metadata); `use` is filled with `decoder_use` of the
    reader. A transaction with rows the reader could not name fails the caller."""
    monkeypatch.setenv(fastpath.DECODER_ENV, decoder)
    reader = BinlogReader(root_source(server, database, monkeypatch), start, tables, history=history)
    changes: list[RowChange] = []
    try:
        for event in reader.events():
            if isinstance(event, SourceTransaction):
                assert not event.doubts, event.doubts
                changes.extend(event.changes)
            if reader.position() >= end:
                break
        if use is not None:
            use.update(decoder_use(reader))
    finally:
        reader.close()
    return changes


def decoder_use(reader: BinlogReader) -> dict[str, tuple[bool, int]]:
    """Per table the reader decoded rows of: whether the C decoder reads its images, and how many
    events it handed back to the generated Python."""
    used = {}
    for table in getattr(reader._stream, "table_map", {}).values():
        decoder = getattr(table, "_syncd_decoder", None)
        if decoder is not None:
            used[table.table] = (decoder.native is not None, decoder.handed_back)
    return used
