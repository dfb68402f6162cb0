"""Compressed transactions and tagged GTIDs (syncd/source/mysql_events.py) on every decoder path.

The binlogs are written by the MySQL 8.4 test double's builder (tests/mysql_double/binlog.py),
whose encoders follow mysql-server's (codecs/binary.cpp, control_events.h, rpl_gtid_set.cc);
the readers here get its bytes as the packets a dump sends, without a server. A compressed
transaction must read exactly as the same transaction uncompressed: same events, same values,
on the fast path (with and without the C decoder) and on the library path, and its events must
carry the position after the payload event, where the transaction ends in the file.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard
from pymysql.protocol import MysqlPacket
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import GtidEvent, PreviousGtidsEvent, XidEvent
from pymysqlreplication.row_event import RowsEvent, TableMapEvent, UpdateRowsEvent

from syncd.source import fastpath, mysql_events
from tests.mysql_double import Col, Delete, Insert, Table, Update
from tests.mysql_double import binlog_events as ev
from tests.mysql_double.binlog import Binlog, Settings
from tests.mysql_double.gtid import GtidSet

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
UUID2 = "a7f1c1e2-0000-4000-8000-000000000002"

ORDERS = Table("shop", "orders", (
    Col("id", "bigint", primary=True, nullable=False),
    Col("status", "varchar", length=16),
    Col("amount", "decimal", precision=12, scale=2),
    Col("created", "datetime", fsp=3),
    Col("note", "text"),
))
DOCS = Table("shop", "docs", (Col("id", "int", primary=True, nullable=False), Col("doc", "json"),
                              Col("at", "timestamp", fsp=6)))


def _orders(count: int, start: int = 1) -> list[dict[str, Any]]:
    return [{"id": i, "status": "已支付" if i % 2 else "待支付", "amount": decimal.Decimal(i) / 4,
             "created": datetime.datetime(2024, 5, 1, 8, 30, i % 60, 123000), "note": "备注" * (i % 7)}
            for i in range(start, start + count)]


def _write(binlog: Binlog, compressed: bool) -> None:
    settings = Settings(gtid_mode=True, full_metadata=True, compressed=compressed)
    rows = _orders(30)
    binlog.transaction([Insert(ORDERS, rows)], settings, timestamp=1_700_000_000)
    binlog.transaction([Update(ORDERS, [(rows[0], {**rows[0], "status": "已发货"})]),
                        Delete(ORDERS, [rows[1]]),
                        Insert(DOCS, [{"id": 1, "doc": {"k": [1, "二"]},
                                       "at": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)}])],
                       settings, timestamp=1_700_000_001)
    binlog.transaction([Insert(ORDERS, _orders(2000, 100))], settings, timestamp=1_700_000_002)


def _packets(binlog: Binlog) -> list[bytes]:
    """The file's events as a dump sends them: a fake rotate, then each event after an OK byte."""
    data = bytes(binlog.current.data)
    rotate = ev.Event(ev.ROTATE_EVENT, ev.rotate(binlog.current.name, 4), 0, 1, ev.LOG_EVENT_ARTIFICIAL_F)
    packets = [b"\x00" + rotate.serialize(0, checksum=True)]
    for offset in binlog.current.offsets:
        size = int.from_bytes(data[offset + 9:offset + 13], "little")
        packets.append(b"\x00" + data[offset:offset + size])
    return packets


class FakeStream:
    encoding = "utf8"

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = iter(packets)

    def _read_packet(self) -> MysqlPacket:
        return MysqlPacket(next(self.packets, b"\xfe\x00\x00\x02\x00"), "utf8")

    def close(self) -> None:
        pass


class FakeControl:
    charset = "utf8"

    def _get_dbms(self) -> str:
        return "mysql"

    def close(self) -> None:
        pass


def _reader(cls: type[BinLogStreamReader], packets: list[bytes]) -> BinLogStreamReader:
    reader = cls(connection_settings={}, server_id=99, enable_logging=False,
                 filter_non_implemented_events=False, ignored_events=[PreviousGtidsEvent])
    reader._BinLogStreamReader__connected_stream = True
    reader._BinLogStreamReader__connected_ctl = True
    reader._BinLogStreamReader__optional_meta_data = True
    reader._BinLogStreamReader__use_checksum = True
    reader._stream_connection = FakeStream(packets)
    reader._ctl_connection = FakeControl()
    if isinstance(reader, fastpath.FastBinLogStreamReader):
        reader.fast_setup()
    return reader


def _describe(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"class": type(event).__name__.removeprefix("Fast"), "type": event.event_type,
                           "timestamp": event.timestamp}
    if isinstance(event, RowsEvent):
        out.update(table=event.table, key=event.primary_key, rows=repr(event.rows))
    elif isinstance(event, TableMapEvent):
        out.update(table=event.table, columns=[c.name for c in event.columns])
    elif isinstance(event, XidEvent):
        out["xid"] = event.xid
    elif isinstance(event, GtidEvent):
        out.update(gtid=event.gtid, last=event.last_committed, seq=event.sequence_number)
    return out


def _read(cls: type[BinLogStreamReader], packets: list[bytes]) -> list[tuple[dict[str, Any], int]]:
    return [(_describe(e), e.packet.log_pos) for e in _reader(cls, packets)]


def _binlogs() -> tuple[Binlog, Binlog]:
    plain, compressed = Binlog(1, UUID, "8.4.3"), Binlog(1, UUID, "8.4.3")
    _write(plain, compressed=False)
    _write(compressed, compressed=True)
    return plain, compressed


@pytest.mark.parametrize(("decoder", "cls"), [
    ("fast", fastpath.FastBinLogStreamReader), ("python", fastpath.FastBinLogStreamReader),
    ("library", fastpath.LibraryBinLogStreamReader)])
def test_a_compressed_transaction_reads_as_the_uncompressed_one(
        decoder: str, cls: type[BinLogStreamReader], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fastpath.DECODER_ENV, decoder)
    plain, compressed = _binlogs()
    expected = _read(BinLogStreamReader, _packets(plain))  # the library alone, uncompressed
    found = _read(cls, _packets(compressed))
    assert [d for d, _ in found] == [d for d, _ in expected]
    assert sum(1 for d, _ in found if d["class"].endswith("RowsEvent")) > 10
    # Events inside a payload carry the position after it: where the transaction ends.
    ends = [offset + int.from_bytes(compressed.current.data[offset + 9:offset + 13], "little")
            for offset in compressed.current.offsets if compressed.current.data[offset + 4] == 40]
    xids = [pos for d, pos in found if d["class"] == "XidEvent"]
    assert xids == ends and len(ends) == 3
    # Before the first payload (rotate, format description, GTID) both files are alike.
    assert [pos for _, pos in found[:3]] == [pos for _, pos in expected[:3]]


def test_every_path_reads_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    _, compressed = _binlogs()
    seen = []
    paths = (("fast", fastpath.FastBinLogStreamReader), ("library", fastpath.LibraryBinLogStreamReader))
    for decoder, cls in paths:
        monkeypatch.setenv(fastpath.DECODER_ENV, decoder)
        seen.append([d for d, _ in _read(cls, _packets(compressed))])
    assert seen[0] == seen[1]
    update = next(d for d in seen[0] if d["class"] == "UpdateRowsEvent")
    assert "已发货" in update["rows"]


def test_tagged_gtid_events_and_tagged_previous_gtids() -> None:
    binlog = Binlog(1, UUID, "8.4.3")
    settings = Settings(gtid_mode=True, full_metadata=True, compressed=False)
    binlog.transaction([Insert(ORDERS, _orders(1))], settings)
    binlog.transaction([Insert(ORDERS, _orders(1, 2))], settings, gtid=f"{UUID}:Batch_7:300")
    binlog.transaction([Insert(ORDERS, _orders(1, 3))], settings, gtid=f"{UUID2}:9")
    binlog.rotate()  # the new file's PREVIOUS_GTIDS holds a tagged set
    compressing = Settings(gtid_mode=True, full_metadata=True, compressed=True)
    binlog.transaction([Insert(ORDERS, _orders(1, 4))], compressing, gtid=f"{UUID}:batch_7:301")
    first = Binlog(1, UUID, "8.4.3")
    first.files = [binlog.files[0]]
    reader = _reader(fastpath.FastBinLogStreamReader, _packets(first))
    events = [e for e in reader if isinstance(e, GtidEvent)]
    assert [e.gtid for e in events] == [f"{UUID}:1", f"{UUID}:batch_7:300", f"{UUID2}:9"]
    assert isinstance(events[1], fastpath.TaggedGtidEvent)
    assert (events[1].last_committed, events[1].sequence_number) == (1, 2)
    second = _packets(binlog)
    gtids = [e.gtid for e in _reader(fastpath.LibraryBinLogStreamReader, second) if isinstance(e, GtidEvent)]
    assert gtids == [f"{UUID}:batch_7:301"]
    previous = binlog.current.data[binlog.current.offsets[1] + 19:binlog.current.offsets[2] - 4]
    assert mysql_events.gtid_set(bytes(previous)) == f"{UUID}:1,{UUID}:batch_7:300,{UUID2}:9"


def test_gtid_sets_as_previous_gtids_holds_them() -> None:
    for text in (f"{UUID}:1-5:7", f"{UUID}:1-5:7:a:1-3:zz:9,{UUID2}:t:4-6", ""):
        encoded = GtidSet.parse(text).encode()
        assert GtidSet.parse(mysql_events.gtid_set(encoded)) == GtidSet.parse(text)


def _payload_event(events: list[bytes], log_pos: int, *, checksum: bool = True) -> bytes:
    inner = b"".join(events)
    compressed = zstandard.ZstdCompressor(level=1).compress(inner)
    body = ev.transaction_payload(compressed, ev.ZSTD, len(inner))
    header = struct.pack("<IBIIIH", 1_700_000_000, 40, 1, 19 + len(body) + 4 * checksum, log_pos, 0)
    data = header + body
    return b"\x00" + data + (struct.pack("<I", zlib.crc32(data)) if checksum else b"")


def test_a_huge_compressed_transaction_is_decompressed_as_it_is_read() -> None:
    """80 MB of events inside a payload of a few hundred KB: memory holds one event at a time."""
    body = ev.rows_header(100, 0, None) + bytes(8000)
    event = ev.Event(ev.WRITE_ROWS_EVENT, body, 1_700_000_000, 1).serialize(0, checksum=False)
    packet = _payload_event([event] * 10_000, 123_456)
    assert len(packet) < 1_000_000
    tracemalloc.start()
    try:
        count = 0
        for inner in mysql_events.inner_packets(packet, checksum=True):
            count += 1
            assert int.from_bytes(inner[14:18], "little") == 123_456
            assert zlib.crc32(inner[1:-4]) == int.from_bytes(inner[-4:], "little")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 2_000_000


def _chunks(packet: bytes) -> Iterator[bytes]:
    return mysql_events.inner_packets(packet, checksum=True)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda events: [events[0][:-3]], "ends inside an event"),
    (lambda events: [events[0][:10]], "ends inside an event header"),
])
def test_a_damaged_payload_is_refused(damage: Any, message: str) -> None:
    event = ev.Event(ev.XID_EVENT, ev.xid(1), 1, 1).serialize(0, checksum=False)
    with pytest.raises(mysql_events.MalformedEvent, match=message):
        list(_chunks(_payload_event(damage([event]), 400)))


def test_an_uncompressed_payload_and_a_wrong_size() -> None:
    event = ev.Event(ev.XID_EVENT, ev.xid(7), 1, 1).serialize(0, checksum=False)
    body = ev.transaction_payload(event, ev.COMPRESSION_NONE, len(event))
    data = struct.pack("<IBIIIH", 1, 40, 1, 19 + len(body), 500, 0) + body
    (inner,) = mysql_events.inner_packets(b"\x00" + data, checksum=False)
    assert inner[1:] == event[:13] + struct.pack("<I", 500) + event[17:]
    wrong = ev.transaction_payload(zstandard.ZstdCompressor().compress(event), ev.ZSTD, len(event) + 1)
    data = struct.pack("<IBIIIH", 1, 40, 1, 19 + len(wrong), 500, 0) + wrong
    with pytest.raises(mysql_events.MalformedEvent, match="its header says"):
        list(mysql_events.inner_packets(b"\x00" + data, checksum=False))


def test_update_rows_inside_a_payload_keep_both_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fastpath.DECODER_ENV, "fast")
    _, compressed = _binlogs()
    update = next(e for e in _reader(fastpath.FastBinLogStreamReader, _packets(compressed))
                  if isinstance(e, UpdateRowsEvent))
    (row,) = update.rows
    assert row["before_values"]["status"] == "已支付" and row["after_values"]["status"] == "已发货"
