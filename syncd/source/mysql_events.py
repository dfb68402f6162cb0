"""MySQL binlog formats the binlog library cannot read: compressed transactions and tagged GTIDs.

The library (1.0.17) maps TRANSACTION_PAYLOAD_EVENT (MySQL 8.0.20+, ``binlog_transaction_compression
= ON``) and GTID_TAGGED_LOG_EVENT (8.3+) to NotImplementedEvent, and its PREVIOUS_GTIDS parser
reads a set holding tags as garbage. This module reads all three from their documented layouts,
so that the reader (syncd/source/fastpath.py, on every decoder path) can hand the library only
what it reads:

* TRANSACTION_PAYLOAD_EVENT (mysql-server libs/mysql/binlog/event/codecs/binary.cpp,
  ``Transaction_payload::decode``): a header of fields, each its type, the length of its value
  and the value, all as ``net_field_length`` integers -- compression type (2: 0 zstd, 255 none),
  uncompressed size (3), payload size (1) -- ended by the type 0; then the payload: the
  transaction's events (BEGIN, TABLE_MAP, rows, XID) back to back, compressed as one zstd frame.
  The events inside have no checksum and a log_pos of 0 (they were serialized before they had a
  place in the file; go-mysql and mysqlbinlog read them with checksums off). `inner_packets`
  turns each into the packet the server would have sent for it uncompressed: its log_pos that of
  the payload event (the position after it, where the transaction ends: a checkpoint taken at the
  XID inside is exactly the one an uncompressed transaction gives), and a CRC32 when the stream
  has checksums, so every decoder reads them as it reads any event. Decompression streams: memory
  holds the compressed event and one inner event, never the whole transaction (a large one then
  goes on in parts like any other, syncd/source/binlog.py).
* GTID_TAGGED_LOG_EVENT (control_events.h ``Gtid_event::define_fields``): a message of MySQL's
  serialization framework (libs/mysql/serialization/readme.md): the format version, the message
  size and the id of the last non-ignorable field, then (field id, value) pairs in id order --
  0 flags, 1 the uuid (16 integers), 2 the transaction number, 3 the tag (length, bytes),
  4 last_committed, 5 sequence_number, then timestamps and lengths syncd does not need. Integers
  are variable-length: the count of trailing one bits of the first byte, plus one, is the number
  of bytes; the value is those bytes, little-endian, shifted right by that count (9 bytes: the 8
  after the first). Signed values are mapped to unsigned as 2x (x >= 0) or -2x - 1 (x < 0).
* A tagged GTID set (sql/rpl_gtid_set.cc, ``Gtid_set::encode``), in PREVIOUS_GTIDS: its first 8
  bytes are 1 << 56 | count << 8 | 1 (the tagged format) instead of the count alone, and each
  uuid is followed by its tag (length, bytes) before its intervals.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

TRANSACTION_PAYLOAD_EVENT = 40
GTID_TAGGED_LOG_EVENT = 42

_HEADER = 19  # the common event header
_READ = 1 << 16  # decompressed bytes read at a time
_ZSTD, _NONE = 0, 255
_PAYLOAD_SIZE, _COMPRESSION, _UNCOMPRESSED_SIZE = 1, 2, 3
_TAGGED_FORMAT = 1


class MalformedEvent(ValueError):
    """An event of these formats that cannot be read (the reader reports it with its position)."""


# -- TRANSACTION_PAYLOAD_EVENT ----------------------------------------------------------------


@dataclass(frozen=True)
class PayloadHeader:
    compression: int
    uncompressed_size: int | None
    payload_size: int
    payload_start: int
    """Where the payload starts in the event body."""


def _net_length(data: Any, pos: int) -> tuple[int, int]:
    """A ``net_field_length``: one byte below 251, else 0xFC/0xFD/0xFE and 2, 3 or 8 bytes."""
    first = data[pos]
    if first < 251:
        return first, pos + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if size is None:
        raise MalformedEvent(f"bad length byte {first:#x} in a transaction payload header")
    return int.from_bytes(data[pos + 1:pos + 1 + size], "little"), pos + 1 + size


def payload_header(body: Any) -> PayloadHeader:
    """The header fields of a TRANSACTION_PAYLOAD_EVENT body (after the common header)."""
    fields: dict[int, int] = {}
    pos = 0
    while True:
        kind, pos = _net_length(body, pos)
        if kind == 0:
            break
        length, pos = _net_length(body, pos)
        value, end = _net_length(body, pos)
        if end - pos != length:
            raise MalformedEvent(f"transaction payload header field {kind} is {length} bytes, "
                                 f"read {end - pos}")
        fields[kind] = value
        pos = end
    if _PAYLOAD_SIZE not in fields:
        raise MalformedEvent("transaction payload without a payload size")
    return PayloadHeader(fields.get(_COMPRESSION, _NONE), fields.get(_UNCOMPRESSED_SIZE),
                         fields[_PAYLOAD_SIZE], pos)


def inner_packets(data: bytes, checksum: bool) -> Iterator[bytes]:
    """The events of a TRANSACTION_PAYLOAD_EVENT packet (``data``: the OK byte, then the event),
    each as the packet the server sends for an event of its own (see the module docstring)."""
    (log_pos,) = struct.unpack_from("<I", data, 1 + 13)
    end = len(data) - (4 if checksum else 0)
    body = memoryview(data)[1 + _HEADER:end]
    header = payload_header(body)
    payload = body[header.payload_start:header.payload_start + header.payload_size]
    if len(payload) != header.payload_size:
        raise MalformedEvent(f"transaction payload of {len(payload)} bytes, its header says "
                             f"{header.payload_size}")
    total = 0
    for event in _events(_reader(header.compression, payload)):
        total += len(event)
        yield _as_packet(event, log_pos, checksum)
    if header.uncompressed_size is not None and total != header.uncompressed_size:
        raise MalformedEvent(f"transaction payload holds {total} bytes of events, its header says "
                             f"{header.uncompressed_size}")


class _Plain:
    """A payload stored without compression, read like a decompressing reader."""

    def __init__(self, payload: memoryview) -> None:
        self._payload, self._at = payload, 0

    def read(self, size: int) -> bytes:
        chunk = bytes(self._payload[self._at:self._at + size])
        self._at += len(chunk)
        return chunk


def _reader(compression: int, payload: memoryview) -> BinaryIO | _Plain:
    if compression == _NONE:
        return _Plain(payload)
    if compression != _ZSTD:
        raise MalformedEvent(f"transaction payload compressed with unknown algorithm {compression}")
    return zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=True)


def _events(reader: BinaryIO | _Plain) -> Iterator[bytes]:
    """The events in a stream of decompressed bytes, one at a time."""
    buffer = bytearray()
    while True:
        if not _fill(reader, buffer, _HEADER):
            if buffer:
                raise MalformedEvent(f"transaction payload ends inside an event header ({len(buffer)} bytes)")
            return
        (size,) = struct.unpack_from("<I", buffer, 9)
        if size < _HEADER:
            raise MalformedEvent(f"an event of {size} bytes inside a transaction payload")
        if not _fill(reader, buffer, size):
            raise MalformedEvent(f"transaction payload ends inside an event of {size} bytes")
        yield bytes(buffer[:size])
        del buffer[:size]


def _fill(reader: BinaryIO | _Plain, buffer: bytearray, wanted: int) -> bool:
    """Read until ``buffer`` holds ``wanted`` bytes; False at the end of the stream before that."""
    while len(buffer) < wanted:
        chunk = reader.read(max(_READ, wanted - len(buffer)))
        if not chunk:
            return False
        buffer += chunk
    return True


def _as_packet(event: bytes, log_pos: int, checksum: bool) -> bytes:
    packet = bytearray(1 + len(event))
    packet[1:] = event
    struct.pack_into("<II", packet, 1 + 9, len(event) + (4 if checksum else 0), log_pos)
    if checksum:
        packet += struct.pack("<I", zlib.crc32(memoryview(packet)[1:]))
    return bytes(packet)


# -- the serialization framework and GTID_TAGGED_LOG_EVENT --------------------------------------


def _varlen(data: Any, pos: int) -> tuple[int, int]:
    """An unsigned variable-length integer (see the module docstring); (value, next position)."""
    first = data[pos]
    size = 1
    while size < 9 and first >> (size - 1) & 1:
        size += 1
    if pos + size > len(data):
        raise MalformedEvent("a tagged GTID event ends inside an integer")
    raw = int.from_bytes(data[pos:pos + size], "little")
    return (raw >> 8 if size == 9 else raw >> size), pos + size


def _signed(value: int) -> int:
    return -(value >> 1) - 1 if value & 1 else value >> 1


@dataclass(frozen=True)
class TaggedGtid:
    """What syncd reads of a GTID_TAGGED_LOG_EVENT."""

    uuid: str
    tag: str
    gno: int
    flags: int = 0
    last_committed: int = 0
    sequence_number: int = 0

    @property
    def gtid(self) -> str:
        return f"{self.uuid}:{self.tag}:{self.gno}" if self.tag else f"{self.uuid}:{self.gno}"


def _uuid_text(raw: bytes) -> str:
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def tagged_gtid(body: bytes) -> TaggedGtid:
    """A GTID_TAGGED_LOG_EVENT body (after the common header, without checksum)."""
    version, pos = _varlen(body, 0)
    if version != 0:
        raise MalformedEvent(f"tagged GTID event in serialization format {version}")
    _size, pos = _varlen(body, pos)
    _last_non_ignorable, pos = _varlen(body, pos)
    found: dict[str, Any] = {}
    while pos < len(body) and len(found) < 6:
        field, pos = _varlen(body, pos)
        if field == 1:
            raw = bytearray()
            for _ in range(16):
                byte, pos = _varlen(body, pos)
                raw.append(byte)
            found["uuid"] = _uuid_text(bytes(raw))
        elif field == 3:
            length, pos = _varlen(body, pos)
            found["tag"] = bytes(body[pos:pos + length]).decode("ascii").lower()
            pos += length
        elif field in _INTEGER_FIELDS:
            value, pos = _varlen(body, pos)
            name, signed = _INTEGER_FIELDS[field]
            found[name] = _signed(value) if signed else value
        else:
            break  # timestamps and lengths follow: nothing syncd needs
    if "uuid" not in found or "gno" not in found:
        raise MalformedEvent("tagged GTID event without a uuid or a transaction number")
    return TaggedGtid(**{"tag": "", **found})


_INTEGER_FIELDS = {0: ("flags", False), 2: ("gno", True), 4: ("last_committed", True),
                   5: ("sequence_number", True)}


def gtid_set(body: bytes) -> str:
    """A PREVIOUS_GTIDS event body (without checksum) as a GTID set's text, tagged or not:
    ``uuid:1-5:7,uuid2:tag:1-3`` (syncd/source/gtid.py reads it; the end of each interval is
    exclusive in the event)."""
    (count,) = struct.unpack_from("<Q", body)
    tagged = count >> 56 == _TAGGED_FORMAT
    sids = (count >> 8) & 0xFFFFFFFFFFFF if tagged else count
    pos, parts = 8, []
    for _ in range(sids):
        uuid, pos = _uuid_text(body[pos:pos + 16]), pos + 16
        tag = ""
        if tagged:
            length, pos = _varlen(body, pos)
            tag, pos = bytes(body[pos:pos + length]).decode("ascii").lower(), pos + length
        (intervals,) = struct.unpack_from("<Q", body, pos)
        pos += 8
        ranges = []
        for _ in range(intervals):
            start, stop = struct.unpack_from("<qq", body, pos)
            pos += 16
            ranges.append(f"{start}" if stop - 1 == start else f"{start}-{stop - 1}")
        parts.append(":".join([uuid, *([tag] if tag else []), *ranges]))
    return ",".join(parts)
