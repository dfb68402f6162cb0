"""The MySQL client/server wire format: packet framing, integers, OK/ERR/EOF, result sets.

Everything here follows MySQL's "Client/Server Protocol" pages of the source documentation
(mysql-server ``sql/protocol_classic.cc`` and the ``page_protocol_*`` doxygen pages): a packet
is a 3-byte little-endian length, a 1-byte sequence id and the payload; a payload of
0xFFFFFF bytes or more is split into several packets. Result sets use the text protocol.
CLIENT_DEPRECATE_EOF is honoured per connection: without it EOF packets close the column
definitions and the rows, with it the rows end in an OK packet whose header is 0xFE.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_PAYLOAD = 0xFFFFFF

# Capability flags (include/mysql_com.h).
CLIENT_LONG_PASSWORD = 1
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_SSL = 1 << 11
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_DEPRECATE_EOF = 1 << 24

SERVER_CAPABILITIES = (
    CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB
    | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_DEPRECATE_EOF
)

# Server status flags.
SERVER_STATUS_IN_TRANS = 1
SERVER_STATUS_AUTOCOMMIT = 2
SERVER_MORE_RESULTS_EXISTS = 8

# Column types (include/field_types.h) used in result sets the double builds itself.
TYPE_LONGLONG = 8
TYPE_VAR_STRING = 253

UTF8MB4_0900_AI_CI = 255
BINARY_COLLATION = 63


class ConnectionClosed(Exception):
    """The peer closed the connection (or it was cut)."""


def lenenc_int(value: int) -> bytes:
    """A length-encoded integer (protocol_basic_dt_integers)."""
    if value < 251:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + struct.pack("<H", value)
    if value < 1 << 24:
        return b"\xfd" + struct.pack("<I", value)[:3]
    return b"\xfe" + struct.pack("<Q", value)


def lenenc_str(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


def read_lenenc_int(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the length-encoded integer at ``pos``."""
    first = data[pos]
    if first < 251:
        return first, pos + 1
    if first == 0xFC:
        return struct.unpack_from("<H", data, pos + 1)[0], pos + 3
    if first == 0xFD:
        return int.from_bytes(data[pos + 1:pos + 4], "little"), pos + 4
    return struct.unpack_from("<Q", data, pos + 1)[0], pos + 9


def read_nul_str(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


class PacketIO:
    """One connection's packets: framing, sequence ids, and the switch to TLS.

    ``write`` and ``flush`` are separate so that a result set or a run of binlog events goes
    out in a few large socket writes instead of one per packet.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | ssl.SSLSocket = sock
        self.seq = 0
        self._out = bytearray()
        self._in = bytearray()
        self.secure = False

    def start_tls(self, context: ssl.SSLContext) -> None:
        self.flush()
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.secure = True

    def _recv_exact(self, count: int) -> bytes:
        # Never more than asked: bytes past the SSL request belong to the TLS handshake.
        while len(self._in) < count:
            try:
                chunk = self.sock.recv(count - len(self._in))
            except (OSError, ssl.SSLError) as exc:
                raise ConnectionClosed(str(exc)) from exc
            if not chunk:
                raise ConnectionClosed("peer closed the connection")
            self._in += chunk
        data = bytes(self._in[:count])
        del self._in[:count]
        return data

    def read(self) -> bytes:
        """The next payload (joined if it came in several packets); sets the sequence id."""
        payload = b""
        while True:
            header = self._recv_exact(4)
            length = int.from_bytes(header[:3], "little")
            self.seq = (header[3] + 1) & 0xFF
            payload += self._recv_exact(length)
            if length < MAX_PAYLOAD:
                return payload

    def write(self, payload: bytes) -> None:
        """Queue ``payload`` as one or more packets (call ``flush`` to send)."""
        view = memoryview(payload)
        while True:
            part = view[:MAX_PAYLOAD]
            self._out += len(part).to_bytes(3, "little") + bytes((self.seq,))
            self._out += part
            self.seq = (self.seq + 1) & 0xFF
            view = view[MAX_PAYLOAD:]
            if len(part) < MAX_PAYLOAD:
                return

    @property
    def pending(self) -> int:
        return len(self._out)

    def flush(self) -> None:
        if not self._out:
            return
        out, self._out = self._out, bytearray()  # a new buffer: a failed TLS send may still view the old
        try:
            self.sock.sendall(out)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionClosed(str(exc)) from exc

    def send(self, payload: bytes) -> None:
        self.write(payload)
        self.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def ok_packet(status: int, affected_rows: int = 0, insert_id: int = 0, warnings: int = 0,
              info: bytes = b"", header: int = 0x00) -> bytes:
    return (bytes((header,)) + lenenc_int(affected_rows) + lenenc_int(insert_id)
            + struct.pack("<HH", status, warnings) + info)


def err_packet(code: int, state: str, message: str) -> bytes:
    return b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + message.encode()


def eof_packet(status: int, warnings: int = 0) -> bytes:
    return b"\xfe" + struct.pack("<HH", warnings, status)


@dataclass(frozen=True)
class ColumnDef:
    """A column of a result set the double builds itself."""

    name: str
    type: int = TYPE_VAR_STRING
    length: int = 1024
    charset: int = UTF8MB4_0900_AI_CI
    flags: int = 0
    decimals: int = 0
    table: str = ""
    schema: str = ""


def column_definition(column: ColumnDef) -> bytes:
    """Protocol::ColumnDefinition41."""
    name = column.name.encode()
    return (lenenc_str(b"def") + lenenc_str(column.schema.encode()) + lenenc_str(column.table.encode())
            + lenenc_str(column.table.encode()) + lenenc_str(name) + lenenc_str(name)
            + b"\x0c" + struct.pack("<HIBHB", column.charset, column.length, column.type,
                                    column.flags, column.decimals) + b"\0\0")


def text_row(values: Sequence[object]) -> bytes:
    """A ProtocolText::ResultsetRow: NULL is 0xFB, everything else its text."""
    out = bytearray()
    for value in values:
        if value is None:
            out += b"\xfb"
        else:
            out += lenenc_str(value if isinstance(value, bytes) else str(value).encode())
    return bytes(out)


def result_set(columns: Sequence[ColumnDef], rows: Iterable[Sequence[object]], status: int,
               deprecate_eof: bool) -> list[bytes]:
    """The payloads of a whole text result set, as this connection expects them."""
    payloads = [lenenc_int(len(columns))]
    payloads += [column_definition(c) for c in columns]
    if not deprecate_eof:
        payloads.append(eof_packet(status))
    payloads += [text_row(row) for row in rows]
    payloads.append(ok_packet(status, header=0xFE) if deprecate_eof else eof_packet(status))
    return payloads
