"""Binlog events in MySQL's format v4, as MySQL 8.4 writes them.

An event is a 19-byte common header (timestamp, type, server id, total size, position of the
next event, flags), a post-header and body, and with ``binlog_checksum=CRC32`` a CRC32 of
everything before it (libs/mysql/binlog/event/binlog_event.h). The builders here return an
``Event`` (type and body); ``Event.serialize`` places it at a file position.

Sources: ``binlog_event.h`` (event type codes, post-header lengths),
``control_events.cpp`` (``Format_description_event``: the post-header length of every
event type -- note that MySQL puts the *type code* 40 in the slot of
TRANSACTION_PAYLOAD_EVENT, and the double copies that), ``control_events.h`` (Gtid_event,
the tagged GTID event's fields, Transaction_payload_event, Heartbeat_event_v2),
``codecs/binary.cpp`` (the TLV headers of TRANSACTION_PAYLOAD and HEARTBEAT_V2),
``statement_events.h`` (Query_event and its status variables), ``rows_event.h``.
"""

from __future__ import annotations

import struct
import uuid as uuidlib
import zlib
from dataclasses import dataclass

from tests.mysql_double import serialization
from tests.mysql_double.gtid import GtidSet
from tests.mysql_double.wire import lenenc_int

QUERY_EVENT, ROTATE_EVENT, FORMAT_DESCRIPTION_EVENT, XID_EVENT = 2, 4, 15, 16
TABLE_MAP_EVENT, HEARTBEAT_LOG_EVENT = 19, 27
WRITE_ROWS_EVENT, UPDATE_ROWS_EVENT, DELETE_ROWS_EVENT = 30, 31, 32
GTID_LOG_EVENT, ANONYMOUS_GTID_LOG_EVENT, PREVIOUS_GTIDS_LOG_EVENT = 33, 34, 35
TRANSACTION_PAYLOAD_EVENT, HEARTBEAT_LOG_EVENT_V2, GTID_TAGGED_LOG_EVENT = 40, 41, 42

EVENT_NAMES = {
    QUERY_EVENT: "Query", ROTATE_EVENT: "Rotate", FORMAT_DESCRIPTION_EVENT: "Format_desc",
    XID_EVENT: "Xid", TABLE_MAP_EVENT: "Table_map", WRITE_ROWS_EVENT: "Write_rows",
    UPDATE_ROWS_EVENT: "Update_rows", DELETE_ROWS_EVENT: "Delete_rows", GTID_LOG_EVENT: "Gtid",
    ANONYMOUS_GTID_LOG_EVENT: "Anonymous_Gtid", PREVIOUS_GTIDS_LOG_EVENT: "Previous_gtids",
    TRANSACTION_PAYLOAD_EVENT: "Transaction_payload", GTID_TAGGED_LOG_EVENT: "Gtid_tagged_log_event",
}

HEADER_LEN = 19
CHECKSUM_LEN = 4
BINLOG_MAGIC = b"\xfebin"
LOG_EVENT_BINLOG_IN_USE_F = 0x1
LOG_EVENT_ARTIFICIAL_F = 0x20
CHECKSUM_OFF, CHECKSUM_CRC32 = 0, 1

# Format_description_event's post-header lengths for event types 1..42 (control_events.cpp).
POST_HEADER_LENGTHS = bytes([
    0, 13, 0, 8, 0, 0, 0, 0, 4, 0, 4, 0, 0, 0, 99, 0, 4, 26, 8, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    10, 10, 10, 42, 42, 0, 18, 52, 0, 10, 40, 0, 0,
])

# Query_event status variable codes (statement_events.h).
Q_FLAGS2_CODE, Q_SQL_MODE_CODE, Q_CHARSET_CODE, Q_CATALOG_NZ_CODE = 0, 1, 4, 6
Q_UPDATED_DB_NAMES, Q_MICROSECONDS, Q_DDL_LOGGED_WITH_XID = 12, 13, 17
Q_DEFAULT_COLLATION_FOR_UTF8MB4, Q_SQL_REQUIRE_PRIMARY_KEY, Q_DEFAULT_TABLE_ENCRYPTION = 18, 19, 20

SQL_MODE_84_DEFAULT = 1168113696  # 0x45A00020: 8.4's default sql_mode as bits


@dataclass(frozen=True)
class Event:
    """An event before it has a place in a file."""

    type: int
    body: bytes
    timestamp: int
    server_id: int
    flags: int = 0

    def size(self, checksum: bool) -> int:
        return HEADER_LEN + len(self.body) + (CHECKSUM_LEN if checksum else 0)

    def serialize(self, log_pos: int, checksum: bool) -> bytes:
        """The event's bytes; ``log_pos`` is the position of the *next* event (0 inside a
        compressed payload, where events have no place in the file and no checksum)."""
        header = struct.pack("<IBIIIH", self.timestamp, self.type, self.server_id,
                             self.size(checksum), log_pos, self.flags)
        data = header + self.body
        return data + struct.pack("<I", zlib.crc32(data)) if checksum else data


def format_description(server_version: str, created: int, checksum: bool) -> bytes:
    """FORMAT_DESCRIPTION_EVENT body: binlog version 4, the server version (50 bytes), creation
    time, header length, the post-header lengths, and the checksum algorithm."""
    return (struct.pack("<H", 4) + server_version.encode()[:49].ljust(50, b"\0")
            + struct.pack("<I", created) + bytes((HEADER_LEN,)) + POST_HEADER_LENGTHS
            + bytes((CHECKSUM_CRC32 if checksum else CHECKSUM_OFF,)))


def previous_gtids(gtids: GtidSet) -> bytes:
    return gtids.encode()


def rotate(next_file: str, position: int) -> bytes:
    return struct.pack("<Q", position) + next_file.encode()


def _commit_timestamps(immediate_us: int, original_us: int) -> bytes:
    if immediate_us == original_us:
        return immediate_us.to_bytes(7, "little")
    return (immediate_us | 1 << 55).to_bytes(7, "little") + original_us.to_bytes(7, "little")


@dataclass(frozen=True)
class GtidInfo:
    """What a GTID event carries besides the GTID itself."""

    last_committed: int
    sequence_number: int
    immediate_commit_us: int
    original_commit_us: int
    server_version: int
    flags: int = 0
    """GTID flags; bit 0 (FLAG_MAY_HAVE_SBR) is clear for transactions of row events only."""


def gtid_untagged(sid: str | None, gno: int, info: GtidInfo, transaction_length: int) -> bytes:
    """GTID_LOG_EVENT (or ANONYMOUS_GTID_LOG_EVENT when ``sid`` is None) body."""
    sid_bytes = uuidlib.UUID(sid).bytes if sid else b"\0" * 16
    return (bytes((info.flags,)) + sid_bytes + struct.pack("<q", gno if sid else 0)
            + b"\x02" + struct.pack("<qq", info.last_committed, info.sequence_number)
            + _commit_timestamps(info.immediate_commit_us, info.original_commit_us)
            + lenenc_int(transaction_length) + struct.pack("<I", info.server_version))


def gtid_untagged_length(info: GtidInfo, rest: int, checksum: bool) -> int:
    """The transaction length an untagged GTID event records: the events after it plus the
    GTID event itself, whose size depends on how the length is packed."""
    fixed = HEADER_LEN + (CHECKSUM_LEN if checksum else 0) + 42 + len(
        _commit_timestamps(info.immediate_commit_us, info.original_commit_us)) + 4
    length = rest + fixed + 1
    while len(lenenc_int(length)) != length - rest - fixed:
        length = rest + fixed + len(lenenc_int(length))
    return length


def gtid_tagged(sid: str, tag: str, gno: int, info: GtidInfo, transaction_length: int) -> bytes:
    """GTID_TAGGED_LOG_EVENT body: a serialization-framework message (control_events.h,
    ``Gtid_event::define_fields``): flags, uuid (16 variable-length bytes), gno, tag,
    last_committed, sequence_number, immediate commit timestamp, original commit timestamp
    (only if different), transaction length, immediate server version, original server
    version (only if different); commit_group_ticket is left out (unset)."""
    fields = [
        (0, serialization.varlen_unsigned(info.flags)),
        (1, serialization.array_value(uuidlib.UUID(sid).bytes)),
        (2, serialization.varlen_signed(gno)),
        (3, serialization.string_value(tag.encode())),
        (4, serialization.varlen_signed(info.last_committed)),
        (5, serialization.varlen_signed(info.sequence_number)),
        (6, serialization.varlen_unsigned(info.immediate_commit_us)),
    ]
    if info.original_commit_us != info.immediate_commit_us:
        fields.append((7, serialization.varlen_unsigned(info.original_commit_us)))
    fields += [(8, serialization.varlen_unsigned(transaction_length)),
               (9, serialization.varlen_unsigned(info.server_version))]
    return serialization.message(fields)


def gtid_tagged_length(sid: str, tag: str, gno: int, info: GtidInfo, rest: int, checksum: bool) -> int:
    """Fixpoint of the tagged event's own size (Gtid_event::update_tagged_transaction_length)."""
    overhead = HEADER_LEN + (CHECKSUM_LEN if checksum else 0)
    length = rest
    while True:
        total = rest + overhead + len(gtid_tagged(sid, tag, gno, info, length))
        if total == length:
            return length
        length = total


def query(thread_id: int, exec_time: int, schema: str, sql: str, error_code: int = 0,
          ddl_xid: int | None = None, microseconds: int | None = None) -> bytes:
    """QUERY_EVENT: post-header, status variables, schema NUL, statement (no NUL)."""
    status = _query_status(schema, ddl_xid, microseconds)
    db = schema.encode()
    return (struct.pack("<IIBHH", thread_id, exec_time, len(db), error_code, len(status))
            + status + db + b"\0" + sql.encode())


def _query_status(schema: str, ddl_xid: int | None, microseconds: int | None) -> bytes:
    """The status variables, in Query_log_event::write's order: flags2, sql_mode, catalog,
    charset (client utf8mb4, connection and server utf8mb4_0900_ai_ci), then for DDL the
    updated databases, microseconds, the DDL's xid, the utf8mb4 default collation and
    sql_require_primary_key."""
    out = (bytes((Q_FLAGS2_CODE,)) + struct.pack("<I", 0)
           + bytes((Q_SQL_MODE_CODE,)) + struct.pack("<Q", SQL_MODE_84_DEFAULT)
           + bytes((Q_CATALOG_NZ_CODE, 3)) + b"std"
           + bytes((Q_CHARSET_CODE,)) + struct.pack("<HHH", 255, 255, 255))
    if ddl_xid is None:
        return out
    if schema:
        out += bytes((Q_UPDATED_DB_NAMES, 1)) + schema.encode() + b"\0"
    if microseconds is not None:
        out += bytes((Q_MICROSECONDS,)) + microseconds.to_bytes(3, "little")
    return (out + bytes((Q_DDL_LOGGED_WITH_XID,)) + struct.pack("<Q", ddl_xid)
            + bytes((Q_DEFAULT_COLLATION_FOR_UTF8MB4,)) + struct.pack("<H", 255)
            + bytes((Q_SQL_REQUIRE_PRIMARY_KEY, 0)))


def xid(value: int) -> bytes:
    return struct.pack("<Q", value)


ROWS_FLAG_STMT_END = 1
RW_V_TAG_PARTITION_INFO = 1


def rows_header(table_id: int, flags: int, partition: tuple[int, ...] | None) -> bytes:
    """v2 rows post-header: table id, flags, then the extra-row-info block (its length counts
    its own 2 bytes; with partition info: tag 1, then the partition id(s) as uint16)."""
    extra = b""
    if partition is not None:
        extra = bytes((RW_V_TAG_PARTITION_INFO,)) + b"".join(struct.pack("<H", p) for p in partition)
    return table_id.to_bytes(6, "little") + struct.pack("<HH", flags, 2 + len(extra)) + extra


def heartbeat_v2(file: str, position: int) -> bytes:
    """HEARTBEAT_LOG_EVENT_V2 body (codecs/binary.cpp ``Heartbeat::encode``)."""
    name = file.encode()
    return (lenenc_int(1) + lenenc_int(len(name)) + name
            + lenenc_int(2) + lenenc_int(len(lenenc_int(position))) + lenenc_int(position) + b"\0")


ZSTD, COMPRESSION_NONE = 0, 255


def transaction_payload(payload: bytes, compression: int, uncompressed_size: int) -> bytes:
    """TRANSACTION_PAYLOAD_EVENT body (codecs/binary.cpp ``Transaction_payload::encode``):
    TLV fields compression type (2), uncompressed size (3, only when compressed), payload
    size (1), end mark (0), each type/length/value in net_store_length form; then the payload."""
    def field(kind: int, value: int) -> bytes:
        return lenenc_int(kind) + lenenc_int(len(lenenc_int(value))) + lenenc_int(value)

    header = field(2, compression)
    if compression != COMPRESSION_NONE:
        header += field(3, uncompressed_size)
    return header + field(1, len(payload)) + b"\0" + payload
