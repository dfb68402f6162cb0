"""COM_BINLOG_DUMP and COM_BINLOG_DUMP_GTID, served the way MySQL 8.4's dump thread serves them.

Followed: mysql-server ``sql/rpl_source.cc`` (``com_binlog_dump``, ``com_binlog_dump_gtid``:
the request layouts) and ``sql/rpl_binlog_sender.cc`` (``Binlog_sender``):

* the user variables the dump thread reads, through ``get_user_var_from_alternatives``:
  ``@source_binlog_checksum``, else ``@master_binlog_checksum`` (the replica declares it can
  take checksums; a replica that declares nothing is refused a CRC32 binlog), and
  ``@source_heartbeat_period``, else ``@master_heartbeat_period`` (nanoseconds between
  heartbeats while idle; 0 or unset: none). The same lookup gives ``@replica_uuid`` /
  ``@slave_uuid``. Other user variables (``@mariadb_slave_capability``...) are stored and
  ignored, as MySQL ignores them;
* a fake ROTATE (timestamp 0, log_pos 0, LOG_EVENT_ARTIFICIAL_F) before each file, then the
  file's FORMAT_DESCRIPTION with LOG_EVENT_BINLOG_IN_USE_F cleared (and, when the dump starts
  past its beginning, log_pos and the created time zeroed), then the events;
* a dump by position that does not start at an event boundary reads whatever is there, as
  the server's reader does: errors "bogus data in log event" (length below 19), "log event
  entry exceeded max_allowed_packet..." or "binlog truncated in the middle of event...";
* by GTID set: the file is the last one whose PREVIOUS_GTIDS the replica has; transactions
  whose GTID the replica has are skipped and a heartbeat carries the position past them;
  a replica lacking purged GTIDs is refused;
* blocking: at the end of the active file wait for new events, sending a heartbeat each
  period (HEARTBEAT_LOG_EVENT_V2 when the request has USE_HEARTBEAT_EVENT_V2, 1 << 1, set);
  non-blocking (flag 1, or server_id 0): an EOF packet ends the stream;
* every refusal is error 1236 (HY000) with MySQL's text, followed for errors met after the
  file was opened by "; the first event 'f' at p, the last event read from './f' at q, the
  last byte read from './f' at r.".
"""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

from tests.mysql_double import binlog_events as ev
from tests.mysql_double.binlog import Binlog, BinlogFile
from tests.mysql_double.gtid import GtidSet
from tests.mysql_double.wire import PacketIO, eof_packet, err_packet

BINLOG_DUMP_NON_BLOCK = 1
USE_HEARTBEAT_EVENT_V2 = 1 << 1
MAX_EVENT_SIZE = 1 << 30
"""The dump thread reads with max_allowed_packet at its maximum, 1 GiB."""
FLUSH_AT = 256 * 1024
TRUNCATED = "binlog truncated in the middle of event; consider out of disk space on source"
TOO_LARGE = "log event entry exceeded max_allowed_packet; Increase max_allowed_packet on source"


class DumpError(Exception):
    """A fatal error of the dump thread, sent to the replica as error 1236."""


class DumpCut(Exception):
    """The test cut this dump connection."""


@dataclass
class DumpRequest:
    file: str
    position: int
    flags: int
    server_id: int
    gtids: GtidSet | None

    @classmethod
    def by_position(cls, payload: bytes) -> DumpRequest:
        position, flags, server_id = struct.unpack_from("<IHI", payload, 1)
        return cls(payload[11:].decode(), position, flags, server_id, None)

    @classmethod
    def by_gtid(cls, payload: bytes) -> DumpRequest:
        flags, server_id, name_size = struct.unpack_from("<HII", payload, 1)
        name = payload[11:11 + name_size].split(b"\0", 1)[0].decode()
        pos = 11 + name_size
        (position,) = struct.unpack_from("<Q", payload, pos)
        (data_size,) = struct.unpack_from("<I", payload, pos + 8)
        gtids = GtidSet.decode(payload[pos + 12:pos + 12 + data_size])
        return cls(name, position, flags, server_id, gtids)


@dataclass
class DumpContext:
    """What the dump needs from its connection and server."""

    io: PacketIO
    binlog: Binlog
    user_vars: dict[str, object]
    gtid_mode_on: bool
    server_id: int
    cut: object  # threading.Event: set by MySQLDouble.cut_dump_connections


def _user_var(user_vars: dict[str, object], first: str, second: str) -> object | None:
    return user_vars.get(first, user_vars.get(second))


class BinlogSender:
    def __init__(self, context: DumpContext, request: DumpRequest) -> None:
        self.ctx, self.request = context, request
        self.io = context.io
        checksum = _user_var(context.user_vars, "source_binlog_checksum", "master_binlog_checksum")
        self.replica_checksum: str | None = None if checksum is None else str(checksum).upper()
        period = _user_var(context.user_vars, "source_heartbeat_period", "master_heartbeat_period")
        self.heartbeat_ns = int(period or 0)  # type: ignore[call-overload]
        self.event_checksum = self.replica_checksum == "CRC32"
        self.blocking = not (request.flags & BINLOG_DUMP_NON_BLOCK or request.server_id == 0)
        self.last_file, self.last_pos = "", 0
        self.last_sent = time.monotonic()
        self.duplicate = False
        """Set when a newer dump of the same replica arrives (MySQLDouble._kill_zombie_dumps)."""

    def run(self) -> None:
        """Serve the dump; ends with EOF (non-blocking) or an error packet, as MySQL does."""
        try:
            self._run()
        except DumpError as exc:
            self.io.write(err_packet(1236, "HY000", str(exc)))
            self.io.flush()

    def _run(self) -> None:
        binlog_file, position = self._start()
        while True:
            self._send_file(binlog_file, position)
            following = self._next_file(binlog_file)
            if following is None:
                self.io.write(eof_packet(0))
                self.io.flush()
                return
            binlog_file, position = following, 4

    # -- where to start --------------------------------------------------------------------------

    def _start(self) -> tuple[BinlogFile, int]:
        request, binlog = self.request, self.ctx.binlog
        if request.gtids is not None and not self.ctx.gtid_mode_on:
            raise DumpError("The replication sender thread cannot start in AUTO_POSITION mode: "
                            "this server has GTID_MODE = OFF instead of ON.")
        with binlog.changed:
            if request.file:
                binlog_file = binlog.find(request.file)
            elif request.gtids is not None:
                binlog_file = self._first_file_for(request.gtids)
            else:
                binlog_file = binlog.files[0]
            if binlog_file is None:
                raise DumpError("Could not find first log file name in binary log index file")
            position = request.position if request.gtids is None else 4
            if position < 4:
                raise DumpError("Client requested source to start replication from position < 4")
            if position > binlog_file.size:
                raise DumpError("Client requested source to start replication from position > file size")
        return binlog_file, position

    def _first_file_for(self, gtids: GtidSet) -> BinlogFile:
        binlog = self.ctx.binlog
        missing = binlog.purged - gtids
        if missing:
            raise DumpError(
                "Cannot replicate because the source purged required binary logs. Replicate the "
                "missing transactions from elsewhere, or provision a new replica from backup. "
                "Consider increasing the source's binary log expiration period. The GTID set "
                f"sent by the replica is '{gtids.text()}', and the missing transactions are "
                f"'{missing.text()}'")
        for binlog_file in reversed(binlog.files):
            if binlog_file.previous_gtids.is_subset(gtids):
                return binlog_file
        raise DumpError("Cannot replicate because the source purged required binary logs.")

    def _next_file(self, binlog_file: BinlogFile) -> BinlogFile | None:
        with self.ctx.binlog.changed:
            return self.ctx.binlog.after(binlog_file) if binlog_file.closed else None

    # -- one file ----------------------------------------------------------------------------------

    def _send_file(self, binlog_file: BinlogFile, position: int) -> None:
        self._send_event(self._fake_rotate(binlog_file.name, position))
        self._send_format_description(binlog_file, position)
        offset = max(position, binlog_file.offsets[1] if len(binlog_file.offsets) > 1 else 4)
        skipping = False
        pending_heartbeat = 0
        while True:
            end = self._wait_for_data(binlog_file, offset)
            if end is None:
                if skipping or pending_heartbeat:
                    self._heartbeat(binlog_file, offset)
                return
            offset, skipping, pending_heartbeat = self._send_range(binlog_file, offset, end, skipping,
                                                                   pending_heartbeat)
            self.io.flush()

    def _send_range(self, binlog_file: BinlogFile, offset: int, end: int, skipping: bool,
                    pending: int) -> tuple[int, bool, int]:
        data = binlog_file.data
        while offset < end:
            size = self._event_size(binlog_file, offset, end)
            event = bytes(data[offset:offset + size])
            self.last_file, self.last_pos = binlog_file.name, offset + size
            kind = event[4]
            if self.request.gtids is not None:
                skipping = self._skips(event, kind, skipping, binlog_file, offset)
            offset += size
            if skipping:
                pending = offset
                continue
            if pending:
                self._heartbeat(binlog_file, pending)
                pending = 0
            self._send_event(event)
            if self.io.pending >= FLUSH_AT:
                self.io.flush()
        self._check_stop()
        return offset, skipping, pending

    def _event_size(self, binlog_file: BinlogFile, offset: int, end: int) -> int:
        """The size in the event's header, checked as the server's reader checks it."""
        if offset + 19 > binlog_file.size:
            raise self._fatal(TRUNCATED)
        size = int.from_bytes(binlog_file.data[offset + 9:offset + 13], "little")
        if size < 19:
            raise self._fatal("bogus data in log event")
        if size > MAX_EVENT_SIZE:
            raise self._fatal(TOO_LARGE)
        if offset + size > max(end, binlog_file.size):
            raise self._fatal(TRUNCATED)
        return size

    def _skips(self, event: bytes, kind: int, skipping: bool, binlog_file: BinlogFile, offset: int) -> bool:
        if kind == ev.ANONYMOUS_GTID_LOG_EVENT:
            raise self._fatal(f"Cannot replicate anonymous transaction when AUTO_POSITION = 1, at file "
                              f"'./{binlog_file.name}', position {offset}.")
        if kind in (ev.GTID_LOG_EVENT, ev.GTID_TAGGED_LOG_EVENT):
            gtid = binlog_file.transactions.get(offset)
            return gtid is not None and self.request.gtids.contains(gtid)  # type: ignore[union-attr]
        if kind == ev.ROTATE_EVENT:
            return False
        return skipping

    def _check_stop(self) -> None:
        if self.ctx.cut.is_set():  # type: ignore[attr-defined]
            raise DumpCut
        if self.duplicate:
            raise self._fatal("A replica with the same server_uuid/server_id as this replica has "
                              "connected to the source")

    def _fatal(self, message: str) -> DumpError:
        return DumpError(f"{message}; the first event '{self.request.file}' at {self.request.position}, "
                         f"the last event read from './{self.last_file}' at {self.last_pos}, "
                         f"the last byte read from './{self.last_file}' at {self.last_pos}.")

    def _wait_for_data(self, binlog_file: BinlogFile, offset: int) -> int | None:
        """The end of the data to send from ``offset``; None at the end of a closed file, or
        of the active one when not blocking. Waits (with heartbeats) otherwise."""
        changed = self.ctx.binlog.changed
        with changed:
            while True:
                self._check_stop()
                if binlog_file.size > offset:
                    return binlog_file.size
                if binlog_file.closed or not self.blocking or binlog_file not in self.ctx.binlog.files:
                    return None
                period = self.heartbeat_ns / 1e9 if self.heartbeat_ns else 0.2
                changed.wait(period)
                if binlog_file.size == offset and self.heartbeat_ns and \
                        time.monotonic() - self.last_sent >= self.heartbeat_ns / 1e9:
                    self._heartbeat(binlog_file, offset)
                    self.io.flush()

    # -- events MySQL makes up while sending --------------------------------------------------------

    def _finish(self, header_and_body: bytes) -> bytes:
        if not self.event_checksum:
            return header_and_body
        size = len(header_and_body) + 4
        data = header_and_body[:9] + size.to_bytes(4, "little") + header_and_body[13:]
        return data + struct.pack("<I", zlib.crc32(data))

    def _fake_rotate(self, name: str, position: int) -> bytes:
        body = ev.rotate(name, position)
        header = struct.pack("<IBIIIH", 0, ev.ROTATE_EVENT, self.ctx.server_id, 19 + len(body), 0,
                             ev.LOG_EVENT_ARTIFICIAL_F)
        return self._finish(header + body)

    def _heartbeat(self, binlog_file: BinlogFile, position: int) -> None:
        if self.request.flags & USE_HEARTBEAT_EVENT_V2:
            body = ev.heartbeat_v2(binlog_file.name, position)
            header = struct.pack("<IBIIIH", 0, ev.HEARTBEAT_LOG_EVENT_V2, self.ctx.server_id,
                                 19 + len(body), 0, 0)
        else:
            body = binlog_file.name.encode()
            header = struct.pack("<IBIIIH", 0, ev.HEARTBEAT_LOG_EVENT, self.ctx.server_id,
                                 19 + len(body), position & 0xFFFFFFFF, 0)
        self._send_event(self._finish(header + body))

    def _send_format_description(self, binlog_file: BinlogFile, position: int) -> None:
        size = int.from_bytes(binlog_file.data[4 + 9:4 + 13], "little")
        event = bytearray(binlog_file.data[4:4 + size])
        self.last_file, self.last_pos = binlog_file.name, 4 + size
        self.event_checksum = binlog_file.checksum
        if self.replica_checksum is None and binlog_file.checksum:
            raise self._fatal("Replica can not handle replication events with the checksum that "
                              "source is configured to log")
        event[17] &= ~ev.LOG_EVENT_BINLOG_IN_USE_F & 0xFF
        if self.request.gtids is None and position > 4:
            event[13:17] = b"\0\0\0\0"
            event[19 + 52:19 + 56] = b"\0\0\0\0"
        if binlog_file.checksum:
            event[-4:] = struct.pack("<I", zlib.crc32(bytes(event[:-4])))
        self._send_event(bytes(event))

    def _send_event(self, event: bytes) -> None:
        self.io.write(b"\0" + event)
        self.last_sent = time.monotonic()

