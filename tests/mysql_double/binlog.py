"""The double's binary log: in-memory files of MySQL 8.4 events, and the API tests append with.

``Binlog`` holds the files (``binlog.000001``, ...), each the bytes a real file would hold:
the magic number, FORMAT_DESCRIPTION, PREVIOUS_GTIDS, then the events tests append, and a
ROTATE (or STOP, at a restart) when it is closed. Dump threads read the same bytes, so a
position the double reports is a real byte offset. A test writes transactions::

    orders = Table("shop", "orders", (Col("id", "int", primary=True, nullable=False),
                                      Col("note", "varchar", length=40)))
    binlog.transaction([Insert(orders, [{"id": 1, "note": "x"}])])          # GTID auto-assigned
    binlog.transaction([Update(orders, [(before, after)])], compressed=True)  # TRANSACTION_PAYLOAD
    binlog.transaction([Delete(orders, [row])], gtid="uuid:tag:7")            # GTID_TAGGED
    binlog.ddl("ALTER TABLE orders ADD c INT", schema="shop")
    binlog.rotate()

A transaction follows the server's variables at the time it is appended (gtid_mode,
binlog_row_metadata, binlog_transaction_compression, binlog_checksum of the current file)
unless the call overrides them. Rows events are split at 8 KiB like MySQL's
``binlog_row_event_max_size``. Inside a compressed payload events have no checksum and a
log_pos of 0: they are serialized before they have a place in the file (decoders such as
go-mysql's parse the payload with checksums off).
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard

from tests.mysql_double import binlog_events as ev
from tests.mysql_double import binlog_values as bv
from tests.mysql_double.binlog_values import Col, Table
from tests.mysql_double.gtid import Gtid, GtidSet

ROWS_EVENT_MAX_SIZE = 8192
"""binlog_row_event_max_size's default: rows events are cut where they pass it."""
STOP_EVENT = 3


@dataclass(frozen=True)
class Insert:
    table: Table
    rows: Sequence[Any]


@dataclass(frozen=True)
class Update:
    table: Table
    rows: Sequence[tuple[Any, Any]]
    """(before, after) pairs."""


@dataclass(frozen=True)
class Delete:
    table: Table
    rows: Sequence[Any]


Change = Insert | Update | Delete


@dataclass
class BinlogFile:
    name: str
    checksum: bool
    created: int
    data: bytearray = field(default_factory=bytearray)
    offsets: list[int] = field(default_factory=list)
    """Start offset of every event."""
    transactions: dict[int, Gtid | None] = field(default_factory=dict)
    """Offset of every transaction's GTID event -> its GTID (None: anonymous)."""
    previous_gtids: GtidSet = field(default_factory=GtidSet)
    closed: bool = False
    sequence: int = 0
    """The last sequence_number given to a transaction of this file (the logical clock)."""

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Appended:
    """Where an appended transaction or statement landed."""

    file: str
    start: int
    end: int
    gtid: str | None


@dataclass(frozen=True)
class Settings:
    """The server settings a transaction is written with."""

    gtid_mode: bool
    full_metadata: bool
    compressed: bool
    compression_level: int = 3


class Binlog:
    """The files and their lock; ``changed`` wakes dump threads when something is appended."""

    def __init__(self, server_id: int, server_uuid: str, server_version: str,
                 basename: str = "binlog", checksum: bool = True) -> None:
        self.server_id = server_id
        self.server_uuid = server_uuid
        self.server_version = server_version
        self.basename = basename
        self.changed = threading.Condition()
        self.files: list[BinlogFile] = []
        self.executed = GtidSet()
        self.purged = GtidSet()
        self._next_index = 1
        self._table_ids: dict[tuple, int] = {}
        self._xid = 0
        self._open_file(checksum)

    # -- reading (dump threads, SHOW statements) ----------------------------------------------

    @property
    def current(self) -> BinlogFile:
        return self.files[-1]

    def find(self, name: str) -> BinlogFile | None:
        return next((f for f in self.files if f.name == name), None)

    def after(self, binlog_file: BinlogFile) -> BinlogFile | None:
        index = self.files.index(binlog_file) if binlog_file in self.files else -1
        return self.files[index + 1] if 0 <= index < len(self.files) - 1 else None

    def position(self) -> tuple[str, int]:
        with self.changed:
            return self.current.name, self.current.size

    # -- files ---------------------------------------------------------------------------------

    def _open_file(self, checksum: bool) -> None:
        binlog_file = BinlogFile(f"{self.basename}.{self._next_index:06d}", checksum, int(time.time()),
                                 previous_gtids=self.executed.copy())
        self._next_index += 1
        binlog_file.data += ev.BINLOG_MAGIC
        self.files.append(binlog_file)
        fde = ev.Event(ev.FORMAT_DESCRIPTION_EVENT,
                       ev.format_description(self.server_version, binlog_file.created, checksum),
                       binlog_file.created, self.server_id, ev.LOG_EVENT_BINLOG_IN_USE_F)
        self._place(binlog_file, [fde, self._event(ev.PREVIOUS_GTIDS_LOG_EVENT,
                                                   ev.previous_gtids(binlog_file.previous_gtids))])

    def _close_current(self, last: ev.Event) -> None:
        binlog_file = self.current
        self._place(binlog_file, [last])
        binlog_file.closed = True
        flags_at = 4 + 17  # FORMAT_DESCRIPTION's flags: clear LOG_EVENT_BINLOG_IN_USE_F
        binlog_file.data[flags_at] &= ~ev.LOG_EVENT_BINLOG_IN_USE_F & 0xFF
        if binlog_file.checksum:
            _fix_checksum(binlog_file.data, 4)

    def rotate(self, checksum: bool | None = None) -> str:
        """Close the current file with a ROTATE event and open the next one (FLUSH BINARY LOGS,
        or ``SET GLOBAL binlog_checksum``, which rotates). Returns the new file's name."""
        with self.changed:
            next_name = f"{self.basename}.{self._next_index:06d}"
            self._close_current(self._event(ev.ROTATE_EVENT, ev.rotate(next_name, 4)))
            self._open_file(self.current.checksum if checksum is None else checksum)
            self.changed.notify_all()
            return next_name

    def restart(self, new_file: bool = True) -> None:
        """A server restart: a clean shutdown ends the file with a STOP event, startup opens a
        new one. ``new_file=False`` keeps writing to the same file (not what MySQL does)."""
        with self.changed:
            if new_file:
                checksum = self.current.checksum
                self._close_current(self._event(STOP_EVENT, b""))
                self._open_file(checksum)
            self.changed.notify_all()

    def reset(self, checksum: bool | None = None) -> None:
        """RESET BINARY LOGS AND GTIDS: every file and GTID forgotten, binlog.000001 anew."""
        with self.changed:
            checksum = self.current.checksum if checksum is None else checksum
            self.files.clear()
            self.executed, self.purged = GtidSet(), GtidSet()
            self._next_index = 1
            self._open_file(checksum)
            self.changed.notify_all()

    def purge_to(self, name: str) -> None:
        """PURGE BINARY LOGS TO 'name': drop the files before it; gtid_purged follows."""
        with self.changed:
            target = self.find(name)
            if target is None:
                raise KeyError(name)
            while self.files[0] is not target:
                self.files.pop(0)
            self.purged = target.previous_gtids.copy()

    def purge_before(self, moment: datetime.datetime) -> None:
        """PURGE BINARY LOGS BEFORE: drop closed files last written before ``moment`` (a file's
        last write is when the next one was created)."""
        limit = moment.timestamp()
        with self.changed:
            keep = next((f for f, after in zip(self.files, self.files[1:], strict=False)
                         if after.created >= limit), self.current)
        self.purge_to(keep.name)

    # -- appending -------------------------------------------------------------------------------

    def _event(self, kind: int, body: bytes, timestamp: int | None = None, flags: int = 0) -> ev.Event:
        return ev.Event(kind, body, int(time.time()) if timestamp is None else timestamp,
                        self.server_id, flags)

    def _place(self, binlog_file: BinlogFile, events: Iterable[ev.Event]) -> tuple[int, int]:
        start = binlog_file.size
        for event in events:
            offset = binlog_file.size
            binlog_file.offsets.append(offset)
            binlog_file.data += event.serialize(offset + event.size(binlog_file.checksum),
                                                binlog_file.checksum)
        return start, binlog_file.size

    def append_raw(self, events: Sequence[ev.Event]) -> Appended:
        """Append ready-made events as they are (for tests of odd streams)."""
        with self.changed:
            start, end = self._place(self.current, events)
            self.changed.notify_all()
            return Appended(self.current.name, start, end, None)

    def table_id(self, table: Table) -> int:
        """The table's id: its own, or one per distinct definition (a DDL gets a new id, as in MySQL)."""
        if table.table_id:
            return table.table_id
        key = (table.schema, table.name, table.columns)
        return self._table_ids.setdefault(key, 100 + len(self._table_ids))

    def next_gtid(self, tag: str = "") -> Gtid:
        return Gtid(self.server_uuid, self.executed.last_gno((self.server_uuid, tag)) + 1, tag)

    def transaction(self, changes: Sequence[Change], settings: Settings, *, gtid: str | Gtid | None = None,
                    timestamp: int | None = None, schema: str = "",
                    partition: Sequence[int] | None = None) -> Appended:
        """Append one row-based transaction: GTID, BEGIN, TABLE_MAP + rows per change, XID."""
        ts = int(time.time()) if timestamp is None else timestamp
        with self.changed:
            self._xid += 1
            body = [self._event(ev.QUERY_EVENT, ev.query(1, 0, schema, "BEGIN"), ts, 0)]
            body += self._rows_events(changes, settings, ts, partition)
            body.append(self._event(ev.XID_EVENT, ev.xid(self._xid), ts))
            return self._commit(body, settings, gtid, ts, sbr=False)

    def ddl(self, sql: str, settings: Settings, *, schema: str = "", gtid: str | Gtid | None = None,
            timestamp: int | None = None) -> Appended:
        """Append a DDL statement (its own transaction: GTID, then the QUERY event)."""
        ts = int(time.time()) if timestamp is None else timestamp
        with self.changed:
            self._xid += 1
            query = self._event(ev.QUERY_EVENT, ev.query(1, 0, schema, sql, ddl_xid=self._xid,
                                                         microseconds=0), ts)
            return self._commit([query], dataclasses.replace(settings, compressed=False), gtid, ts, sbr=True)

    def _rows_events(self, changes: Sequence[Change], settings: Settings, ts: int,
                     partition: Sequence[int] | None) -> list[ev.Event]:
        events: list[ev.Event] = []
        mapped: set[int] = set()
        for change in changes:
            table_id = self.table_id(change.table)
            if table_id not in mapped:
                table = Table(change.table.schema, change.table.name, change.table.columns, table_id)
                events.append(self._event(ev.TABLE_MAP_EVENT,
                                          bv.table_map_body(table, settings.full_metadata), ts))
                mapped.add(table_id)
            events += self._change_events(change, table_id, ts, partition)
        return events

    def _change_events(self, change: Change, table_id: int, ts: int,
                       partition: Sequence[int] | None) -> list[ev.Event]:
        table, kind = change.table, _ROWS_TYPES[type(change)]
        images = [_images(table, row, type(change)) for row in change.rows]
        count = len(table.columns)
        images_per_row = 2 if kind == ev.UPDATE_ROWS_EVENT else 1
        bitmaps = bv.lenenc_int(count) + bv.null_bitmap([True] * count) * images_per_row
        chunks = _chunks(images, ROWS_EVENT_MAX_SIZE)
        parts = tuple(partition) * images_per_row if partition else None
        events = []
        for i, chunk in enumerate(chunks):
            flags = ev.ROWS_FLAG_STMT_END if i == len(chunks) - 1 else 0
            body = ev.rows_header(table_id, flags, parts) + bitmaps + b"".join(chunk)
            events.append(self._event(kind, body, ts))
        return events

    def _commit(self, body: list[ev.Event], settings: Settings, gtid: str | Gtid | None, ts: int,
                sbr: bool) -> Appended:
        """Put the GTID event in front (its transaction length needs the rest), compress if
        asked, and append the whole transaction to the current file."""
        binlog_file = self.current
        checksum = binlog_file.checksum
        if settings.compressed:
            body = [self._payload_event(body, settings.compression_level, ts)]
        rest = sum(e.size(checksum) for e in body)
        binlog_file.sequence += 1
        info = ev.GtidInfo(binlog_file.sequence - 1, binlog_file.sequence, ts * 1_000_000,
                           ts * 1_000_000, _version_number(self.server_version), flags=1 if sbr else 0)
        chosen = self._choose_gtid(gtid, settings)
        head = self._gtid_event(chosen, info, rest, checksum, ts)
        start = binlog_file.size
        binlog_file.transactions[start] = chosen
        _, end = self._place(binlog_file, [head, *body])
        if chosen is not None:
            self.executed.add(chosen)
        self.changed.notify_all()
        return Appended(binlog_file.name, start, end, str(chosen) if chosen else None)

    def _choose_gtid(self, gtid: str | Gtid | None, settings: Settings) -> Gtid | None:
        if isinstance(gtid, str):
            gtid = Gtid.parse(gtid)
        if gtid is None and settings.gtid_mode:
            gtid = self.next_gtid()
        if gtid is not None and self.executed.contains(gtid):
            raise ValueError(f"GTID {gtid} was already used")
        return gtid

    def _gtid_event(self, gtid: Gtid | None, info: ev.GtidInfo, rest: int, checksum: bool,
                    ts: int) -> ev.Event:
        if gtid is None:
            length = ev.gtid_untagged_length(info, rest, checksum)
            return self._event(ev.ANONYMOUS_GTID_LOG_EVENT, ev.gtid_untagged(None, 0, info, length), ts)
        if gtid.tag:
            length = ev.gtid_tagged_length(gtid.uuid, gtid.tag, gtid.gno, info, rest, checksum)
            return self._event(ev.GTID_TAGGED_LOG_EVENT,
                               ev.gtid_tagged(gtid.uuid, gtid.tag, gtid.gno, info, length), ts)
        length = ev.gtid_untagged_length(info, rest, checksum)
        return self._event(ev.GTID_LOG_EVENT, ev.gtid_untagged(gtid.uuid, gtid.gno, info, length), ts)

    def _payload_event(self, body: list[ev.Event], level: int, ts: int) -> ev.Event:
        inner = uncompressed_payload(body)
        compressor = zstandard.ZstdCompressor(level=level).compressobj()
        compressed = compressor.compress(inner) + compressor.flush()
        return self._event(ev.TRANSACTION_PAYLOAD_EVENT,
                           ev.transaction_payload(compressed, ev.ZSTD, len(inner)), ts)


def uncompressed_payload(events: Sequence[ev.Event]) -> bytes:
    """The events of a transaction as a compressed payload holds them (no checksum, log_pos 0)."""
    return b"".join(e.serialize(0, checksum=False) for e in events)


def _fix_checksum(data: bytearray, offset: int) -> None:
    size = int.from_bytes(data[offset + 9:offset + 13], "little")
    end = offset + size
    data[end - 4:end] = zlib.crc32(data[offset:end - 4]).to_bytes(4, "little")


_ROWS_TYPES = {Insert: ev.WRITE_ROWS_EVENT, Update: ev.UPDATE_ROWS_EVENT, Delete: ev.DELETE_ROWS_EVENT}


def _images(table: Table, row: Any, kind: type) -> bytes:
    if kind is Update:
        before, after = row
        return bv.row_image(table, table.row_tuple(before)) + bv.row_image(table, table.row_tuple(after))
    return bv.row_image(table, table.row_tuple(row))


def _chunks(images: list[bytes], limit: int) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for image in images:
        if chunks[-1] and size + len(image) > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(image)
        size += len(image)
    return chunks


def _version_number(version: str) -> int:
    major, minor, patch = (int("".join(ch for ch in p if ch.isdigit()) or 0)
                           for p in [*version.split("."), "0", "0"][:3])
    return major * 10000 + minor * 100 + patch


__all__ = ["Appended", "Binlog", "BinlogFile", "Change", "Col", "Delete", "Insert", "Settings",
           "Table", "Update", "uncompressed_payload"]
