"""Forwarding data statements to the backing MariaDB database, result packets relayed as they come.

The double answers what is about the server itself (identity, variables, binlog,
replication); reading table data and information_schema is plain SQL that MariaDB answers
the same way, so the double passes such a statement to a MariaDB connection of the same
client session and copies the reply packets back without rewriting them. The backend
connection never uses CLIENT_DEPRECATE_EOF, so for a client that asked for it the EOF
packets are translated: the one after the column definitions is dropped and the last one
becomes an OK packet with a 0xFE header (protocol "Text Resultset").
"""

from __future__ import annotations

import struct
from typing import Any

import pymysql

from tests.mysql_double import wire

COM_QUERY, COM_INIT_DB = 0x03, 0x02


class Backend:
    """One client session's connection to the backing database."""

    def __init__(self, settings: dict[str, Any], database: str | None) -> None:
        options = {**settings, "database": database, "autocommit": True}
        self.conn = pymysql.connect(**options)
        self.io = wire.PacketIO(self.conn._sock)  # the connection phase is over: raw packets from here

    def close(self) -> None:
        self.io.close()

    def relay(self, command: int, argument: bytes, client: wire.PacketIO, deprecate_eof: bool) -> int:
        """Send one command and copy its reply to ``client``; returns the final server status."""
        self.io.seq = 0
        self.io.send(bytes((command,)) + argument)
        while True:
            first = self.io.read()
            if first[0] in (0x00, 0xFF):
                client.write(first)
                status = _ok_status(first) if first[0] == 0 else 0
            elif first[0] == 0xFB:
                client.write(wire.err_packet(1235, "42000", "This version of MySQL doesn't yet support "
                                             "'LOAD DATA LOCAL through the syncd test double'"))
                return 0
            else:
                status = self._relay_result_set(first, client, deprecate_eof)
            if not status & wire.SERVER_MORE_RESULTS_EXISTS:
                client.flush()
                return status

    def _relay_result_set(self, first: bytes, client: wire.PacketIO, deprecate_eof: bool) -> int:
        columns, _ = wire.read_lenenc_int(first, 0)
        client.write(first)
        for _ in range(columns):
            client.write(self.io.read())
        eof = self.io.read()
        if not deprecate_eof:
            client.write(eof)
        while True:
            row = self.io.read()
            if row[0] == 0xFF:
                client.write(row)
                return 0
            if row[0] == 0xFE and len(row) < 9:
                warnings, status = struct.unpack_from("<HH", row, 1)
                client.write(wire.ok_packet(status, warnings=warnings, header=0xFE) if deprecate_eof else row)
                return status
            client.write(row)


def _ok_status(packet: bytes) -> int:
    _, pos = wire.read_lenenc_int(packet, 1)
    _, pos = wire.read_lenenc_int(packet, pos)
    return struct.unpack_from("<H", packet, pos)[0]
