"""The fast decoding path: the library's binlog events and values, decoded several times faster.

`pymysqlreplication` spends most of an OLTP stream's time on work that repeats itself. Every
transaction re-sends the TABLE_MAP events of the tables it touches, and the library parses each
one into new Table and Column objects (40-80% of the time of single-row transactions). Every
value goes through a chain of type tests and several small reads. Every packet goes through a
wrapper object built with seventeen arguments. This module keeps the library's stream
(connection, positions, rotation, all other event types) and replaces three steps:

1. A TABLE_MAP event is parsed by the library once per distinct event body (the bytes after
   the common header, table id included) and served from a cache afterwards. The key is the
   bytes, not the table id: after DDL, FLUSH TABLES or a restart an id can be reused for
   another definition, while equal bytes always mean the same definition.
2. Row images are decoded by a function generated once per table definition (and null
   pattern): runs of fixed-width numbers in one `struct` call, each other value by an
   expression chosen when the function is built, with no per-column type dispatch. Tables
   whose columns are all integers, floats, text of any size, ENUM, SET, BIT, DECIMAL, YEAR,
   DATE, DATETIME, TIMESTAMP or TIME are decoded in C instead (`_rowimage.c`, built by
   setup.py when a compiler is there); an event the C decoder finds anything unusual in (a
   value out of range, text that does not decode) is decoded by the generated function, so
   errors and quirks stay the Python path's. Text is
   decoded as the source server converts it (syncd/source/charsets.py); a value the server
   cannot convert either is read as an `Undecodable` marker, its column recorded in the image's
   none_sources with the reason `UNDECODABLE`, by a careful variant of the generated function
   that an image is decoded again with (so the common case pays nothing for it).
3. Row, XID and MariaDB GTID events are built without the packet wrapper, and rows are
   decoded lazily, so rows of tables nobody reads cost nothing.

Exactness is the contract. A table definition is always parsed by the library itself, and each
value follows the library's decoding rule for rule, quirks included (YEAR 0 reads 1900, an
empty BINARY value reads ``''``; TIME calls the library's own reader, which syncd corrects),
so events and row dicts equal the library's: tests/integration/test_fastpath.py decodes one binlog both ways.
What this module does not handle goes to the library unchanged: tables whose columns have no
names, MySQL binary JSON and old-style temporal columns, partial JSON updates, row images that
are not FULL, v2 events with extra data, checksum verification. A table map written without
full row metadata gets its names (and signedness, charsets, labels) from the binlog reader's
table hook, which completes it from the schema history (syncd/source/table_maps.py) before
its decoder is built; the reader drops the cached table maps where the history's entry in
force changes (`forget_tables`), since their bytes no longer say which columns they name.

The stream level also reads what the library cannot (syncd/source/mysql_events.py), on every
decoder path alike: a compressed transaction (TRANSACTION_PAYLOAD_EVENT) is taken apart into the
packets its events would have come in uncompressed, decompressed as they are read, and a tagged
GTID event (MySQL 8.3+) becomes a `TaggedGtidEvent`, a GtidEvent whose ``gtid`` is
``uuid:tag:number``.

Use: ``install(BinLogStreamReader(...))`` before the first read. ``SYNCD_DECODER=library`` in
the environment keeps the library's own decoding of every event it can read
(`LibraryBinLogStreamReader`: for comparisons, or to rule this out); ``SYNCD_DECODER=python``
uses the fast path without the C decoder.

The module is long because the three steps share one contract, equality with the library event
for event and value for value, and the generated decoders of step 2 read best beside the rules
they copy; the C decoder (`_rowimage.c`) and the value corrections (values.py) live apart.
"""

from __future__ import annotations

import datetime
import os
import struct
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pymysql
from pymysql.protocol import MysqlPacket
from pymysqlreplication import binlogstream
from pymysqlreplication.binlogstream import BinLogStreamReader
from pymysqlreplication.constants import BINLOG, FIELD_TYPE, NONE_SOURCE
from pymysqlreplication.event import GtidEvent, MariadbGtidEvent, XidEvent
from pymysqlreplication.logger import logger
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from pymysqlreplication.table import Table

from syncd.errors import UndecodableText
from syncd.model import Undecodable
from syncd.source import charsets, mysql_events
from syncd.source.values import read_time2_exact

try:
    from syncd.source import _rowimage
except ImportError:  # not built (no C compiler when installed): the generated Python decodes
    _rowimage = None

DECODER_ENV = "SYNCD_DECODER"
"""Environment variable: ``fast`` (default), ``python`` (no C decoder) or ``library``."""

TABLE_CACHE_SIZE = 4096
"""Distinct TABLE_MAP bodies kept per stream; the cache starts over when it is full."""

UNDECODABLE = "undecodable text"
"""The none_sources reason of a column read as an `Undecodable` marker (its value is not None)."""

PATTERN_LIMIT = 64
"""Null patterns that get their own generated function per table; further ones share one."""

_HEADER = struct.Struct("<IBIIIH")  # after the OK byte: timestamp, type, server id, size, next pos, flags
_BODY = 20  # OK byte + 19-byte common header
_CHECKSUM = 4
_SKIP = object()  # fetchone goes on to the next packet
_PER_EVENT = frozenset(("packet", "table_map", "timestamp", "event_size", "_ctl_connection"))

_WRITE = (BINLOG.WRITE_ROWS_EVENT_V1, BINLOG.WRITE_ROWS_EVENT_V2)
_UPDATE = (BINLOG.UPDATE_ROWS_EVENT_V1, BINLOG.UPDATE_ROWS_EVENT_V2)
_DELETE = (BINLOG.DELETE_ROWS_EVENT_V1, BINLOG.DELETE_ROWS_EVENT_V2)
_V2 = frozenset((BINLOG.WRITE_ROWS_EVENT_V2, BINLOG.UPDATE_ROWS_EVENT_V2, BINLOG.DELETE_ROWS_EVENT_V2))


def _decoder_setting() -> str:
    return os.environ.get(DECODER_ENV, "fast").strip().lower()


def enabled() -> bool:
    """Whether readers should use the fast path (``SYNCD_DECODER`` is not ``library``)."""
    return _decoder_setting() != "library"


def native_enabled() -> bool:
    """Whether the C row decoder is built and wanted (``SYNCD_DECODER`` is ``fast``)."""
    return _rowimage is not None and _decoder_setting() not in ("library", "python")


def install(stream: BinLogStreamReader) -> BinLogStreamReader:
    """Switches a reader that has not read yet to the fast path (``SYNCD_DECODER=library``: to
    `LibraryBinLogStreamReader`); returns it.

    Leaves it as it is when it verifies checksums, or when it ignores decode errors (text is
    never decoded loosely here).
    """
    if stream._BinLogStreamReader__verify_checksum or stream._BinLogStreamReader__ignore_decode_errors:
        return stream
    stream.__class__ = FastBinLogStreamReader if enabled() else LibraryBinLogStreamReader
    assert isinstance(stream, FastBinLogStreamReader)
    stream.fast_setup()
    return stream


# ---------------------------------------------------------------- events


class _Packet:
    """The header fields of a fast event's packet, named as on the library's packet wrapper."""

    __slots__ = ("event_size", "event_type", "flags", "log_pos", "read_bytes", "server_id", "timestamp")

    def __init__(self, header: tuple[int, int, int, int, int, int]) -> None:
        self.timestamp, self.event_type, self.server_id, self.event_size, self.log_pos, self.flags = header
        self.read_bytes = 0


class _FastRows:
    """Lazily decoded rows of a fast rows event (mixed into the library's rows event classes)."""

    full_row_image = True
    """Every row image holds every column: the column bitmaps were checked before decoding
    (events with other images go to the library), so no value is None for 'cols bitmap'."""

    _fast_decoder: RowDecoder
    _fast_data: bytes
    _fast_start: int
    _fast_end: int
    _fast_rows: list[dict[str, Any]] | None

    def _decode(self) -> list[dict[str, Any]]:
        """Each rows event class decodes its own images (write, delete, update)."""
        raise TypeError(f"{type(self).__name__} must define _decode")

    @property
    def rows(self) -> list[dict[str, Any]]:
        rows = self._fast_rows
        if rows is None:
            rows = self._fast_rows = self._decode()
            self._fast_data = b""
        return rows


class FastWriteRowsEvent(_FastRows, WriteRowsEvent):
    """A WRITE_ROWS event decoded by the fast path; ``rows`` as the library gives them."""

    def _decode(self) -> list[dict[str, Any]]:
        return self._fast_decoder.single_rows(self._fast_data, self._fast_start, self._fast_end)


class FastDeleteRowsEvent(_FastRows, DeleteRowsEvent):
    """A DELETE_ROWS event decoded by the fast path; ``rows`` as the library gives them."""

    def _decode(self) -> list[dict[str, Any]]:
        return self._fast_decoder.single_rows(self._fast_data, self._fast_start, self._fast_end)


class FastUpdateRowsEvent(_FastRows, UpdateRowsEvent):
    """An UPDATE_ROWS event decoded by the fast path; ``rows`` as the library gives them."""

    def _decode(self) -> list[dict[str, Any]]:
        return self._fast_decoder.update_rows(self._fast_data, self._fast_start, self._fast_end)


class FastTableMapEvent(TableMapEvent):
    """A TABLE_MAP event served from the cache: the attributes of the library's first parse."""


class TaggedGtidEvent(GtidEvent):
    """A GTID_TAGGED_LOG_EVENT (MySQL 8.3+), which the library cannot read; read by
    syncd/source/mysql_events.py. ``gtid`` is ``uuid:tag:number`` (``uuid:number`` untagged)."""

    tagged: mysql_events.TaggedGtid

    @property
    def gtid(self) -> str:
        return self.tagged.gtid


_ROWS_CLASSES: dict[int, tuple[type[_FastRows], type[RowsEvent], int]] = {}
for _type in _WRITE:
    _ROWS_CLASSES[_type] = (FastWriteRowsEvent, WriteRowsEvent, 1)
for _type in _UPDATE:
    _ROWS_CLASSES[_type] = (FastUpdateRowsEvent, UpdateRowsEvent, 2)
for _type in _DELETE:
    _ROWS_CLASSES[_type] = (FastDeleteRowsEvent, DeleteRowsEvent, 1)


# ---------------------------------------------------------------- the stream


class FastBinLogStreamReader(BinLogStreamReader):
    """BinLogStreamReader with the fast path; made by `install`, or constructed directly.

    ``fetchone`` does what the library's does (same positions, rotation, filters and event
    order), handing every packet it does not decode itself to the library's packet wrapper.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_setup()

    def fast_setup(self) -> None:
        self._fast_tables: dict[bytes, tuple[dict[str, Any], Table] | None] = {}
        self.table_hook: Callable[[TableMapEvent], None] | None = None
        """Called with each TABLE_MAP event the library parses (not those served from the cache),
        before its table is used: the binlog reader completes or refuses tables without full row
        metadata there (syncd/source/table_maps.py)."""
        self._inner: Iterator[bytes] | None = None
        """The packets of the compressed transaction being read (mysql_events.inner_packets)."""
        self._fast_header_lengths: Any = None
        self._common: dict[str, Any] | None = None
        self.fast_stats = {"table_map_hits": 0, "table_map_parsed": 0, "fast_rows": 0, "library_rows": 0}
        # The library's settings that never change after __init__, under short names.
        private = self._private
        self._allowed = private("allowed_events")
        self._allowed_in_packet = private("allowed_events_in_packet")
        self._filters = (private("only_tables"), private("ignored_tables"), private("only_schemas"),
                         private("ignored_schemas"))
        self._decode_errors = private("ignore_decode_errors")

    def forget_tables(self) -> None:
        """Parse table maps again from the next one on: what the table hook decides of the same
        bytes has changed (a DDL, or a schema history entry that starts here)."""
        self._fast_tables.clear()

    def _BinLogStreamReader__check_optional_meta_data(self) -> None:
        """Use each table map's own metadata, whatever the server's current `binlog_row_metadata`
        (the library asks the server, and ignores the names in events written with FULL when
        the server says MINIMAL now); a table map without names goes to the table hook."""
        self._BinLogStreamReader__optional_meta_data = True

    def _private(self, name: str) -> Any:
        """One of the library's private attributes (``self.__name`` in BinLogStreamReader)."""
        return getattr(self, "_BinLogStreamReader__" + name)

    def fetchone(self) -> Any:
        while True:
            if self.end_log_pos and self.is_past_end_log_pos:
                return None
            if not self._BinLogStreamReader__connected_stream:
                self._inner = None
                self._BinLogStreamReader__connect_to_stream()
            if not self._BinLogStreamReader__connected_ctl:
                self._BinLogStreamReader__connect_to_ctl()
            try:
                pkt = self._next_packet()
            except pymysql.OperationalError as error:
                code, _message = error.args
                if code in binlogstream.MYSQL_EXPECTED_ERROR_CODES:
                    self._stream_connection.close()
                    self._BinLogStreamReader__connected_stream = False
                    logger.warning("A pymysql.OperationalError error occurred, Re-request the connection.")
                    continue
                raise
            data = pkt._data  # PyMySQL's is_eof_packet / is_ok_packet, without two calls per event
            if data[0] == 0xFE and len(data) < 9:
                self.close()
                return None
            if data[0] != 0 or len(data) < 7:
                continue
            if data[5] == mysql_events.GTID_TAGGED_LOG_EVENT:
                event = self._tagged_gtid_event(data)
            else:
                event = self._dispatch(pkt)
            if event is not _SKIP:
                return event

    def _next_packet(self) -> Any:
        """The stream's next packet; a compressed transaction's events come one by one, as the
        packets they would have been sent in uncompressed (their log_pos the payload event's)."""
        while self._inner is not None:
            data = next(self._inner, None)
            if data is not None:
                return MysqlPacket(data, self._stream_connection.encoding)
            self._inner = None
        pkt = self._stream_connection._read_packet()
        data = pkt._data
        if len(data) > _BODY and data[0] == 0 and data[5] == mysql_events.TRANSACTION_PAYLOAD_EVENT:
            self._inner = mysql_events.inner_packets(data, self._BinLogStreamReader__use_checksum)
            return self._next_packet()
        return pkt

    def _tagged_gtid_event(self, data: bytes) -> Any:
        header = _HEADER.unpack_from(data, 1)
        event = None
        if GtidEvent in self._allowed_in_packet:
            end = len(data) - (_CHECKSUM if self._BinLogStreamReader__use_checksum else 0)
            tagged = mysql_events.tagged_gtid(data[_BODY:end])
            event = TaggedGtidEvent.__new__(TaggedGtidEvent)
            self._base(event, header)
            event.__dict__.update(tagged=tagged, commit_flag=bool(tagged.flags & 1),
                                  sid=bytes.fromhex(tagged.uuid.replace("-", "")), gno=tagged.gno,
                                  lt_type=2, last_committed=tagged.last_committed,
                                  sequence_number=tagged.sequence_number)
        return self._after_fast(header, event, GtidEvent)

    def _dispatch(self, pkt: Any) -> Any:
        data = pkt._data
        event_type = data[5]
        if event_type in _ROWS_CLASSES:
            return self._rows_event(pkt, data, event_type)
        if event_type == BINLOG.TABLE_MAP_EVENT:
            return self._table_map_event(pkt, data)
        if event_type in (BINLOG.XID_EVENT, BINLOG.MARIADB_GTID_EVENT):
            return self._small_event(pkt, data, event_type)
        return self._through_library(pkt)

    # -- the library's way, for everything else ------------------------------------------------

    def _wrap(self, pkt: Any) -> BinLogPacketWrapper:
        private = self._private
        return BinLogPacketWrapper(
            pkt, self.table_map, self._ctl_connection, self.mysql_version, private("use_checksum"),
            private("allowed_events_in_packet"), private("only_tables"), private("ignored_tables"),
            private("only_schemas"), private("ignored_schemas"), private("freeze_schema"),
            private("ignore_decode_errors"), private("verify_checksum"), private("optional_meta_data"),
            private("enable_logging"), private("use_column_name_cache"), private("post_header_lengths"),
        )

    def _through_library(self, pkt: Any) -> Any:
        return self._after_library(self._wrap(pkt))

    def _after_library(self, wrapper: BinLogPacketWrapper) -> Any:
        """The library's fetchone after it has wrapped a packet (binlogstream.py, 1.0.17)."""
        event = wrapper.event
        if wrapper.event_type == BINLOG.ROTATE_EVENT:
            self.log_pos = event.position
            self.log_file = event.next_binlog
            if wrapper.timestamp != 0:  # a real rotation may follow a restart: table ids start over
                self.table_map = {}
        elif wrapper.log_pos:
            self.log_pos = wrapper.log_pos
        if self.end_log_pos and self.log_pos >= self.end_log_pos:
            self.is_past_end_log_pos = True
        if wrapper.event_type == BINLOG.FORMAT_DESCRIPTION_EVENT and event is not None:
            self.mysql_version = event.mysql_version
            self._BinLogStreamReader__post_header_lengths = event.post_header_len
        if self.skip_to_timestamp and wrapper.timestamp < self.skip_to_timestamp:
            return _SKIP
        if wrapper.event_type == BINLOG.TABLE_MAP_EVENT and event is not None:
            if self.table_hook is not None:
                self.table_hook(event)
            self.table_map[event.table_id] = event.get_table()
        if event is None or event.__class__ not in self._allowed:
            return _SKIP
        return event

    def _after_fast(self, header: tuple[int, int, int, int, int, int], event: Any, as_class: type) -> Any:
        """`_after_library` for the event types decoded here (never rotation or format events)."""
        if header[4]:
            self.log_pos = header[4]
        if self.end_log_pos and self.log_pos >= self.end_log_pos:
            self.is_past_end_log_pos = True
        if self.skip_to_timestamp and header[0] < self.skip_to_timestamp:
            return _SKIP
        if event is None or as_class not in self._allowed:
            return _SKIP
        return event

    # -- common event attributes ---------------------------------------------------------------

    def _base(self, event: Any, header: tuple[int, int, int, int, int, int]) -> None:
        """What BinLogEvent.__init__ sets, without the packet wrapper."""
        common = self._common
        if (common is None or common["table_map"] is not self.table_map
                or common["_post_header_lengths"] is not self._BinLogStreamReader__post_header_lengths
                or common["mysql_version"] is not self.mysql_version
                or common["_ctl_connection"] is not self._ctl_connection):
            common = self._common = self._common_attributes()
        attributes = event.__dict__
        attributes.update(common)
        attributes["packet"] = _Packet(header)
        attributes["event_type"] = header[1]
        attributes["timestamp"] = header[0]
        attributes["event_size"] = header[3] - (23 if self._BinLogStreamReader__use_checksum else 19)

    def _common_attributes(self) -> dict[str, Any]:
        """The attributes every event of this stream shares, until rotation or a reconnection."""
        return {"table_map": self.table_map,
                "_post_header_lengths": self._BinLogStreamReader__post_header_lengths,
                "_ctl_connection": self._ctl_connection, "mysql_version": self.mysql_version,
                "_ignore_decode_errors": self._decode_errors, "_verify_checksum": False,
                "_is_event_valid": None, "_processed": True, "complete": True,
                "dbms": self._ctl_connection._get_dbms()}

    def _small_event(self, pkt: Any, data: bytes, event_type: int) -> Any:
        header = _HEADER.unpack_from(data, 1)
        cls: type = XidEvent if event_type == BINLOG.XID_EVENT else MariadbGtidEvent
        event = None
        if cls in self._allowed_in_packet:
            event = cls.__new__(cls)
            self._base(event, header)
            if cls is XidEvent:
                event.xid = int.from_bytes(data[_BODY:_BODY + 8], "little")
            else:
                event.server_id = header[2]
                event.gtid_seq_no = int.from_bytes(data[_BODY:_BODY + 8], "little")
                event.domain_id = int.from_bytes(data[_BODY + 8:_BODY + 12], "little")
                event.flags = data[_BODY + 12]
                event.gtid = f"{event.domain_id}-{event.server_id}-{event.gtid_seq_no}"
        return self._after_fast(header, event, cls)

    # -- TABLE_MAP -----------------------------------------------------------------------------

    def _table_map_event(self, pkt: Any, data: bytes) -> Any:
        if self._BinLogStreamReader__freeze_schema:
            return self._through_library(pkt)
        lengths = self._BinLogStreamReader__post_header_lengths
        if lengths is not self._fast_header_lengths:
            if lengths != self._fast_header_lengths:  # another format description: parse again
                self._fast_tables.clear()
            self._fast_header_lengths = lengths
        header = _HEADER.unpack_from(data, 1)
        end = len(data) - (_CHECKSUM if self._BinLogStreamReader__use_checksum else 0)
        key = data[_BODY:end]
        cached = self._fast_tables.get(key, _SKIP)
        if cached is _SKIP:
            return self._parse_table_map(pkt, key)
        self.fast_stats["table_map_hits"] += 1
        event = None
        if cached is not None:
            attributes, table = cached
            self.table_map[table.table_id] = table
            if TableMapEvent in self._allowed:  # a reader that ignores them gets no object
                event = FastTableMapEvent.__new__(FastTableMapEvent)
                self._base(event, header)
                event.__dict__.update(attributes)
        return self._after_fast(header, event, TableMapEvent)

    def _parse_table_map(self, pkt: Any, key: bytes) -> Any:
        """A table map not seen before: the library parses it; the result is kept by its bytes."""
        wrapper = self._wrap(pkt)
        result = self._after_library(wrapper)  # the table hook has seen it
        event = wrapper.event
        self.fast_stats["table_map_parsed"] += 1
        if len(self._fast_tables) >= TABLE_CACHE_SIZE:
            self._fast_tables.clear()
        if event is None:
            self._fast_tables[key] = None  # filtered out by schema or table: decided by the bytes
        else:
            # Shared from now on: safe because the library changes a Table only to fill in
            # column names it lacks (never, as syncd reads). Rows of a table without a decoder
            # (columns without names: no full metadata, no schema history) go to the library.
            table = event.get_table()
            named = all(column.name for column in event.columns)
            table._syncd_decoder = build_decoder(table) if named else None
            table._syncd_wanted = self._wanted(table)
            attributes = {k: v for k, v in event.__dict__.items() if k not in _PER_EVENT}
            self._fast_tables[key] = (attributes, table)
        return result

    # -- rows ----------------------------------------------------------------------------------

    def _rows_event(self, pkt: Any, data: bytes, event_type: int) -> Any:
        fast_class, library_class, bitmaps = _ROWS_CLASSES[event_type]
        table = self.table_map.get(int.from_bytes(data[_BODY:_BODY + 6], "little"))
        decoder = getattr(table, "_syncd_decoder", None)
        if decoder is None or library_class not in self._allowed_in_packet:
            self.fast_stats["library_rows"] += 1
            return self._through_library(pkt)
        start = self._rows_payload(data, event_type, decoder, bitmaps)
        if start is None:
            self.fast_stats["library_rows"] += 1
            return self._through_library(pkt)
        header = _HEADER.unpack_from(data, 1)
        event = None
        if table._syncd_wanted:  # set with the decoder
            self.fast_stats["fast_rows"] += 1
            event = fast_class.__new__(fast_class)
            self._base(event, header)
            width = decoder.bitmap_bytes
            attributes = dict(
                table_id=table.table_id, primary_key=table.primary_key, schema=table.schema,
                table=table.table, flags=int.from_bytes(data[_BODY + 6:_BODY + 8], "little"),
                number_of_columns=decoder.count, columns=table.columns,
                columns_present_bitmap=data[start - bitmaps * width:start - (bitmaps - 1) * width],
                _fast_decoder=decoder, _fast_data=data, _fast_start=start,
                _fast_end=_BODY + event.event_size, _fast_rows=None,
            )
            if event_type in _V2:
                attributes["extra_data_length"] = int.from_bytes(data[_BODY + 8:_BODY + 10], "little")
            if bitmaps == 2:
                attributes["columns_present_bitmap2"] = data[start - width:start]
            event.__dict__.update(attributes)
        return self._after_fast(header, event, library_class)

    def _wanted(self, table: Table) -> bool:
        """The library's table and schema filters for rows events, in its order."""
        only_tables, ignored_tables, only_schemas, ignored_schemas = self._filters
        if only_tables is not None and table.table not in only_tables:
            return False
        if ignored_tables is not None and table.table in ignored_tables:
            return False
        if only_schemas is not None and table.schema not in only_schemas:
            return False
        return not (ignored_schemas is not None and table.schema in ignored_schemas)

    def _rows_payload(self, data: bytes, event_type: int, decoder: RowDecoder, bitmaps: int) -> int | None:
        """Where the rows start, or None when the library should decode the event.

        The library goes on with anything unusual: a post-header longer or shorter than known,
        v2 extra data, a column count other than the table map's, a column bitmap that is not
        complete (binlog_row_image other than FULL).
        """
        known = 10 if event_type in _V2 else 8
        lengths = self._BinLogStreamReader__post_header_lengths
        if lengths and 0 <= event_type - 1 < len(lengths) and lengths[event_type - 1] != known:
            return None
        pos = _BODY + known
        if event_type in _V2 and int.from_bytes(data[_BODY + 8:_BODY + 10], "little") > 2:
            return None
        count = data[pos]
        if count >= 251 or count != decoder.count:  # >= 251: a longer length-coded count
            return None
        pos += 1
        width = decoder.bitmap_bytes
        full = decoder.full_bitmap
        for _ in range(bitmaps):
            if int.from_bytes(data[pos:pos + width], "little") & full != full:
                return None
            pos += width
        return pos


class LibraryBinLogStreamReader(FastBinLogStreamReader):
    """``SYNCD_DECODER=library``: the library decodes every event it can read, as its own reader
    does (`_after_library` follows its fetchone); compressed transactions and tagged GTID events,
    which it cannot read, are handled at the stream level as on the fast path."""

    def _dispatch(self, pkt: Any) -> Any:
        return self._through_library(pkt)


# ---------------------------------------------------------------- row decoding

# How the library reads each type, by the column types this module decodes itself.
_STRUCT_CODES = {  # little-endian numbers: (signed code, unsigned code)
    FIELD_TYPE.TINY: ("b", "B"),
    FIELD_TYPE.SHORT: ("h", "H"),
    FIELD_TYPE.LONG: ("i", "I"),
    FIELD_TYPE.LONGLONG: ("q", "Q"),
    FIELD_TYPE.FLOAT: ("f", "f"),
    FIELD_TYPE.DOUBLE: ("d", "d"),
    FIELD_TYPE.YEAR: ("B", "B"),
}
_TEXT_TYPES = frozenset((FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB))
_SUPPORTED = frozenset((
    *_STRUCT_CODES, *_TEXT_TYPES, FIELD_TYPE.INT24, FIELD_TYPE.DATE, FIELD_TYPE.NEWDECIMAL,
    FIELD_TYPE.DATETIME2, FIELD_TYPE.TIMESTAMP2, FIELD_TYPE.TIME2, FIELD_TYPE.ENUM, FIELD_TYPE.SET,
    FIELD_TYPE.BIT, FIELD_TYPE.GEOMETRY,
))
_UINT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
_DECIMAL_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes for 0..9 leftover decimal digits
_NONE_REASONS = {  # value None without SQL NULL: what the library records in none_sources
    FIELD_TYPE.DATE: NONE_SOURCE.OUT_OF_DATE_RANGE,
    FIELD_TYPE.DATETIME2: NONE_SOURCE.OUT_OF_DATETIME2_RANGE,
    FIELD_TYPE.SET: NONE_SOURCE.EMPTY_SET,
}

ImageFunction = Callable[[bytes, int, int], tuple[dict[str, Any], dict[str, str], int]]
"""A generated ``image(data, pos, nulls) -> (values, none_sources, next_pos)``."""

NULL, VALUE, CHECK = "null", "value", "check"
"""How a generated function treats a column: always NULL, never NULL, or test the null bitmap."""


def build_decoder(table: Table) -> RowDecoder | None:
    """A decoder for the table's row images, or None when the library must decode them."""
    columns = table.columns
    names = [column.name for column in columns]
    if not columns or not all(isinstance(name, str) and name for name in names):
        return None
    if len(set(names)) != len(names):
        return None
    for column in columns:
        if column.type not in _SUPPORTED:
            return None
        if column.type == FIELD_TYPE.ENUM and (not column.enum_values or column.size not in (1, 2)):
            return None
        if column.type == FIELD_TYPE.SET and (not column.set_values or column.size not in (1, 2, 3, 4, 8)):
            return None
    return RowDecoder(columns)


class RowDecoder:
    """Decodes the row images of one table definition, as the library's RowsEvent would.

    ``image(data, pos)`` reads one image (null bitmap, then values) and returns
    ``(values, none_sources, next_pos)``. The function for an image is generated the first
    time its null pattern is seen (`PATTERN_LIMIT` patterns; past that, one function tests the
    null bitmap per nullable column). An event holding text the source server cannot convert
    is decoded again by a careful function, which reads such a value as an `Undecodable`.
    """

    def __init__(self, columns: list[Any]) -> None:
        self.columns = columns
        self.count = len(columns)
        self.bitmap_bytes = (self.count + 7) // 8
        self.full_bitmap = (1 << self.count) - 1
        self.sources: dict[int | None, str] = {}
        """Generated source by null pattern (None: the one that tests the bitmap); for reading."""
        self._functions: dict[int, ImageFunction] = {}
        self._general: ImageFunction | None = None
        self._careful: ImageFunction | None = None
        self.native = _native_decoder(columns) if native_enabled() else None
        """The C decoder of these images; None when a column type is not one it reads."""
        self.handed_back = 0
        """Events the C decoder left to the generated Python (something unusual in them)."""

    def image(self, data: bytes, pos: int) -> tuple[dict[str, Any], dict[str, str], int]:
        width = self.bitmap_bytes
        nulls = int.from_bytes(data[pos:pos + width], "little") & self.full_bitmap
        function = self._functions.get(nulls) or self._function(nulls)
        return function(data, pos + width, nulls)

    def single_rows(self, data: bytes, pos: int, end: int) -> list[dict[str, Any]]:
        """The rows of a write or delete event: each ``{"values": ..., "none_sources": ...}``."""
        native = self._native_rows(data, pos, end, False)
        if native is not None:
            return native
        try:
            return self._single(self.image, data, pos, end)
        except (UnicodeDecodeError, UndecodableText):
            return self._single(self.careful_image, data, pos, end)

    @staticmethod
    def _single(image: Callable, data: bytes, pos: int, end: int) -> list[dict[str, Any]]:
        rows = []
        while pos < end:
            values, sources, pos = image(data, pos)
            rows.append({"values": values, "none_sources": sources})
        return rows

    def update_rows(self, data: bytes, pos: int, end: int) -> list[dict[str, Any]]:
        native = self._native_rows(data, pos, end, True)
        if native is not None:
            return native
        try:
            return self._updates(self.image, data, pos, end)
        except (UnicodeDecodeError, UndecodableText):
            return self._updates(self.careful_image, data, pos, end)

    @staticmethod
    def _updates(image: Callable, data: bytes, pos: int, end: int) -> list[dict[str, Any]]:
        rows = []
        while pos < end:
            before, before_sources, pos = image(data, pos)
            after, after_sources, pos = image(data, pos)
            rows.append({"before_values": before, "before_none_sources": before_sources,
                         "after_values": after, "after_none_sources": after_sources})
        return rows

    def _native_rows(self, data: bytes, pos: int, end: int, update: bool) -> list[dict[str, Any]] | None:
        """The C decoder's rows; None without one, or for an event it hands back to the Python."""
        if self.native is None:
            return None
        rows = self.native.rows(data, pos, end, update)
        if rows is None:
            self.handed_back += 1
        return rows

    def careful_image(self, data: bytes, pos: int) -> tuple[dict[str, Any], dict[str, str], int]:
        """`image` for an event holding text the server cannot convert: markers, no error."""
        if self._careful is None:
            self._careful = self._generate([CHECK] * self.count, -1, careful=True)
        width = self.bitmap_bytes
        nulls = int.from_bytes(data[pos:pos + width], "little") & self.full_bitmap
        return self._careful(data, pos + width, nulls)

    def _function(self, nulls: int) -> ImageFunction:
        if len(self._functions) < PATTERN_LIMIT:
            modes = [NULL if nulls >> i & 1 else VALUE for i in range(self.count)]
            function = self._functions[nulls] = self._generate(modes, nulls)
            return function
        if self._general is None:
            self._general = self._generate([CHECK] * self.count, None)
        return self._general

    def _generate(self, modes: list[str], key: int | None, careful: bool = False) -> ImageFunction:
        source, namespace = _ImageCode(self.columns, modes, careful).build()
        self.sources[key] = source
        exec(compile(source, f"<syncd fastpath {self.columns[0].name}...>", "exec"), namespace)
        return namespace["image"]


class _ImageCode:
    """The source of one image function: ``image(data, p, nulls) -> (values, none_sources, p)``.

    Generated code refers to data only through names bound in its namespace (helpers, struct
    formats, label lists) and to columns through ``repr`` of their names, so nothing read from
    a binlog becomes code.
    """

    def __init__(self, columns: list[Any], modes: list[str], careful: bool = False) -> None:
        self.columns = columns
        self.modes = modes
        self.careful = careful
        """Text the server cannot convert reads as an `Undecodable` (else it raises)."""
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {"datetime": datetime, "Decimal": Decimal}
        self.offset = 0  # bytes between `p` and the next value, known when generating
        self.group: list[tuple[int, str, str | None]] = []  # pending struct run: (index, code, post)

    def build(self) -> tuple[str, dict[str, Any]]:
        for index, column in enumerate(self.columns):
            mode = self.modes[index]
            if mode == NULL:
                continue
            code = self._struct_code(column)
            if code is not None and mode == VALUE:
                self.group.append((index, code, self._post(index, column)))
                continue
            self._flush_group()
            if mode == CHECK:
                self._sync()
                self.lines.append(f"if nulls & {1 << index}:")
                self.lines.append(f"    v{index} = None")
                self.lines.append("else:")
                self._emit(index, column, indent="    ", advance=True)
            else:
                self._emit(index, column, indent="", advance=False)
        self._flush_group()
        self._sync()
        self.lines.extend(self._result())
        body = "\n".join("    " + line for line in self.lines)
        return f"def image(data, p, nulls):\n{body}\n", self.namespace

    # -- positions -----------------------------------------------------------------------------

    def _at(self, extra: int = 0) -> str:
        total = self.offset + extra
        return f"p + {total}" if total else "p"

    def _sync(self, indent: str = "") -> None:
        if self.offset:
            self.lines.append(f"{indent}p += {self.offset}")
            self.offset = 0

    def _bind(self, name: str, value: Any) -> str:
        self.namespace[name] = value
        return name

    # -- little-endian numbers, several per struct call ----------------------------------------

    @staticmethod
    def _struct_code(column: Any) -> str | None:
        codes = _STRUCT_CODES.get(column.type)
        if codes is not None:
            return codes[1] if column.unsigned else codes[0]
        if column.type == FIELD_TYPE.ENUM:
            return _UINT_CODES[column.size]
        if column.type == FIELD_TYPE.SET and column.size in _UINT_CODES:
            return _UINT_CODES[column.size]
        return None

    def _post(self, index: int, column: Any) -> str | None:
        """An expression turning the struct value ``v{index}`` into the library's value."""
        if column.type == FIELD_TYPE.YEAR:
            return f"v{index} + 1900"
        if column.type == FIELD_TYPE.ENUM:
            return f"{self._bind(f'labels{index}', column.enum_values)}[v{index}]"
        if column.type == FIELD_TYPE.SET:
            return f"{self._bind(f'members{index}', _set_reader(column.set_values))}(v{index})"
        return None

    def _flush_group(self) -> None:
        if not self.group:
            return
        layout = struct.Struct("<" + "".join(code for _, code, _ in self.group))
        name = self._bind(f"row{self.group[0][0]}", layout)
        targets = ", ".join(f"v{index}" for index, _, _ in self.group)
        comma = "," if len(self.group) == 1 else ""
        self.lines.append(f"{targets}{comma} = {name}.unpack_from(data, {self._at()})")
        for index, _, post in self.group:
            if post is not None:
                self.lines.append(f"v{index} = {post}")
        self.offset += layout.size
        self.group = []

    # -- everything else -----------------------------------------------------------------------

    def _emit(self, index: int, column: Any, indent: str, advance: bool) -> None:
        """Lines that set ``v{index}``; with ``advance`` (inside a null test), also move ``p``."""
        target = f"{indent}v{index}"
        kind = column.type
        code = self._struct_code(column)
        if code is not None:  # a struct type, alone because it may be NULL
            layout = self._bind(f"one{index}", struct.Struct("<" + code))
            self.lines.append(f"{target}, = {layout}.unpack_from(data, p)")
            post = self._post(index, column)
            if post is not None:
                self.lines.append(f"{target} = {post}")
            self.lines.append(f"{indent}p += {struct.calcsize('<' + code)}")
            return
        width = _fixed_width(column)
        if width is not None:
            reader = self._bind(f"read{index}", _fixed_reader(column))
            self.lines.append(f"{target} = {reader}(data, {self._at() if not advance else 'p'})")
            if advance:
                self.lines.append(f"{indent}p += {width}")
            else:
                self.offset += width
            return
        self._sync(indent)
        size = 2 if kind in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING) and column.max_length > 255 else 1
        if kind in (FIELD_TYPE.BLOB, FIELD_TYPE.GEOMETRY):
            size = column.length_size
        length = "data[p]" if size == 1 else f"int.from_bytes(data[p:p + {size}], 'little')"
        self.lines.append(f"{indent}n = {length}")
        raw = f"data[p + {size}:p + {size} + n]"
        if kind == FIELD_TYPE.GEOMETRY:
            self.lines.append(f"{target} = {raw}")
        else:
            self.lines.append(f"{target} = {self._text(index, column, raw)}")
        self.lines.append(f"{indent}p += {size} + n")

    def _text(self, index: int, column: Any, raw: str) -> str:
        """The expression of a text value: the server's text of its bytes (see charsets.py)."""
        charset = column_charset(column)
        if charset.binary:  # bytes, but '' when empty, as the library
            return f"{raw} or ''"
        if self.careful:
            marked = self._bind(f"text{index}", charsets.text_or_marker)
            return f"{marked}({self._bind(f'charset{index}', charset)}, {column.name!r}, {raw})"
        if charset.codec is not None and not charset.bmp_only:  # utf8mb4 and the like: inline
            return f"{raw}.decode({charset.codec!r})"
        return f"{self._bind(f'decode{index}', charset.decode)}({raw})"

    def _result(self) -> list[str]:
        names = [column.name for column in self.columns]
        values = ", ".join(f"{name!r}: {'None' if mode == NULL else f'v{i}'}"
                           for i, (name, mode) in enumerate(zip(names, self.modes, strict=True)))
        lines = []
        dynamic = any(mode != NULL and column.type in _NONE_REASONS
                      for column, mode in zip(self.columns, self.modes, strict=True))
        dynamic = dynamic or CHECK in self.modes or self.careful
        if not dynamic:
            static = ", ".join(f"{names[i]!r}: {NONE_SOURCE.NULL!r}"
                               for i, mode in enumerate(self.modes) if mode == NULL)
            lines.append(f"return {{{values}}}, {{{static}}}, p")
            return lines
        lines.append("sources = {}")
        for i, (column, mode) in enumerate(zip(self.columns, self.modes, strict=True)):
            name = names[i]
            reason = _NONE_REASONS.get(column.type)
            if mode == NULL:
                lines.append(f"sources[{name!r}] = {NONE_SOURCE.NULL!r}")
            elif mode == CHECK:
                lines.append(f"if nulls & {1 << i}:")
                lines.append(f"    sources[{name!r}] = {NONE_SOURCE.NULL!r}")
                if reason is not None:
                    lines.append(f"elif v{i} is None:")
                    lines.append(f"    sources[{name!r}] = {reason!r}")
            elif reason is not None:
                lines.append(f"if v{i} is None:")
                lines.append(f"    sources[{name!r}] = {reason!r}")
            if self.careful and mode != NULL and column.type in _TEXT_TYPES:
                self.namespace["Undecodable"] = Undecodable
                lines.append(f"if v{i}.__class__ is Undecodable:")
                lines.append(f"    sources[{name!r}] = {UNDECODABLE!r}")
        lines.append(f"return {{{values}}}, sources, p")
        return lines


# Column kinds of the C decoder (the `enum kind` of _rowimage.c).
(_K_INT, _K_INT24, _K_YEAR, _K_FLOAT, _K_DOUBLE, _K_ENUM, _K_STR, _K_DECIMAL, _K_DATETIME2, _K_DATE,
 _K_TIMESTAMP2, _K_TIME2, _K_BIT, _K_SET) = range(1, 15)

NativeColumn = tuple[int, int, int, Any, str | None]
"""(kind, a, b, object, reason) of one column, as _rowimage.c's `column_from` reads them; the
reason is the none_sources entry of a value read as None without being NULL."""


def _signed(column: Any) -> int:
    return int(not column.unsigned)


def _native_time2(column: Any) -> NativeColumn | None:
    """TIME in C only while syncd's exact reader is the library's (see `time2_reader`)."""
    if RowsEvent._RowsEvent__read_time2 is not read_time2_exact:
        return None
    return (_K_TIME2, column.fsp, 0, None, None)


_NATIVE_KINDS: dict[int, Callable[[Any], NativeColumn | None]] = {
    FIELD_TYPE.TINY: lambda c: (_K_INT, 1, _signed(c), None, None),
    FIELD_TYPE.SHORT: lambda c: (_K_INT, 2, _signed(c), None, None),
    FIELD_TYPE.LONG: lambda c: (_K_INT, 4, _signed(c), None, None),
    FIELD_TYPE.LONGLONG: lambda c: (_K_INT, 8, _signed(c), None, None),
    FIELD_TYPE.INT24: lambda c: (_K_INT24, 0, _signed(c), None, None),
    FIELD_TYPE.YEAR: lambda c: (_K_YEAR, 0, 0, None, None),
    FIELD_TYPE.FLOAT: lambda c: (_K_FLOAT, 0, 0, None, None),
    FIELD_TYPE.DOUBLE: lambda c: (_K_DOUBLE, 0, 0, None, None),
    FIELD_TYPE.ENUM: lambda c: (_K_ENUM, c.size, 0, list(c.enum_values), None),
    FIELD_TYPE.SET: lambda c: (_K_SET, c.size, 0, list(c.set_values), _NONE_REASONS[FIELD_TYPE.SET]),
    FIELD_TYPE.BIT: lambda c: (_K_BIT, c.bits, 0, None, None) if c.bytes == (c.bits + 7) // 8 else None,
    FIELD_TYPE.NEWDECIMAL: lambda c: (_K_DECIMAL, c.precision, c.decimals, None, None),
    FIELD_TYPE.DATETIME2: lambda c: (_K_DATETIME2, c.fsp, 0, None, _NONE_REASONS[FIELD_TYPE.DATETIME2]),
    FIELD_TYPE.TIMESTAMP2: lambda c: (_K_TIMESTAMP2, c.fsp, 0, None, None),
    FIELD_TYPE.TIME2: _native_time2,
    FIELD_TYPE.DATE: lambda c: (_K_DATE, 0, 0, None, _NONE_REASONS[FIELD_TYPE.DATE]),
    FIELD_TYPE.VARCHAR: lambda c: _native_text(c, 2 if c.max_length > 255 else 1),
    FIELD_TYPE.STRING: lambda c: _native_text(c, 2 if c.max_length > 255 else 1),
    FIELD_TYPE.BLOB: lambda c: _native_text(c, c.length_size),
}
"""How the C decoder reads each column type it reads (the same rules as the generated code)."""


# How the C decoder decodes text (the `b` of a K_STR column): with the Python codec named by its
# object, the same refusing characters past U+FFFF, or with its object as a 256-character table.
_CODEC, _CODEC_BMP, _TABLE = 0, 1, 2


def _native_text(column: Any, length_bytes: int) -> NativeColumn | None:
    """A text column the C decoder decodes exactly as the server (None: the Python does)."""
    charset = column_charset(column)
    if charset.binary:
        return (_K_STR, length_bytes, _CODEC, None, None)
    if charset.table is not None:
        return (_K_STR, length_bytes, _TABLE, charset.table, None)
    if charset.codec is not None:
        return (_K_STR, length_bytes, _CODEC_BMP if charset.bmp_only else _CODEC, charset.codec, None)
    return None


def _native_decoder(columns: list[Any]) -> Any:
    """The C decoder of a table's images, or None when one of its columns is not a kind it reads."""
    assert _rowimage is not None
    plan = []
    for column in columns:
        spec = _NATIVE_KINDS.get(column.type)
        found = spec(column) if spec is not None else None
        if found is None:
            return None
        plan.append((column.name, *found))
    return _rowimage.Decoder(tuple(plan), NONE_SOURCE.NULL, "strict")


def column_charset(column: Any) -> charsets.Charset:
    """The charset of a library column, from its collation (TABLE_MAP metadata).

    Without one (a server without full row metadata, or a collation id the library does not
    know) the library decodes UTF-8, and so does syncd: utf8mb4.
    """
    collation = getattr(column, "collation_name", None)
    return charsets.lookup(charsets.charset_of_collation(collation) if collation else "utf8mb4")


def _fraction_bytes(fsp: int) -> int:
    return (fsp + 1) // 2


def _fixed_width(column: Any) -> int | None:
    """Bytes of a fixed-width value read by a helper (struct-coded numbers aside); None: variable."""
    entry = _FIXED.get(column.type)
    return None if entry is None else entry[0](column)


def _fixed_reader(column: Any) -> Callable[[bytes, int], Any]:
    return _FIXED[column.type][1](column)


# -- value readers: each follows the library's RowsEvent.__read_* for its type -----------------


def _int24_reader(unsigned: bool) -> Callable[[bytes, int], int]:
    signed = not unsigned
    return lambda data, at: int.from_bytes(data[at:at + 3], "little", signed=signed)


def read_date(data: bytes, at: int) -> datetime.date | None:
    """DATE: 3 bytes little-endian, day | month << 5 | year << 9; a zero part reads None."""
    packed = int.from_bytes(data[at:at + 3], "little")
    if packed == 0:
        return None
    year, month, day = packed >> 9, (packed >> 5) & 0x0F, packed & 0x1F
    if year == 0 or month == 0 or day == 0:
        return None
    return datetime.date(year, month, day)


def _fraction(fsp: int) -> Callable[[bytes, int], int]:
    """Microseconds of an fsp fraction, read big-endian *signed* as the library does."""
    size = _fraction_bytes(fsp)
    scale = 10 ** (6 - fsp)
    if size == 0:
        return lambda data, at: 0
    if fsp % 2:
        return lambda data, at: int(int.from_bytes(data[at:at + size], "big", signed=True) / 10) * scale
    return lambda data, at: int.from_bytes(data[at:at + size], "big", signed=True) * scale


def datetime2_reader(fsp: int) -> Callable[[bytes, int], datetime.datetime | None]:
    """DATETIME(fsp): 5 bytes big-endian (sign, year*13+month, day, hour, minute, second).

    A date the datetime type cannot hold (a zero date) reads None, as in the library.
    """
    fraction = _fraction(fsp)
    size = _fraction_bytes(fsp)
    scale = 10 ** (6 - fsp)
    even = fsp % 2 == 0
    new = datetime.datetime

    def read(data: bytes, at: int) -> datetime.datetime | None:
        packed = int.from_bytes(data[at:at + 5], "big")
        year_month = (packed >> 22) & 0x1FFFF
        if size == 0:
            micro = 0
        elif even:
            micro = int.from_bytes(data[at + 5:at + 5 + size], "big", signed=True) * scale
        else:
            micro = fraction(data, at + 5)
        if 0 <= micro < 1_000_000:
            try:
                return new(year_month // 13, year_month % 13, (packed >> 17) & 0x1F, (packed >> 12) & 0x1F,
                           (packed >> 6) & 0x3F, packed & 0x3F, micro)
            except ValueError:
                return None
        try:  # the library's order: the date first, then the fraction (which may not fit)
            value = new(year_month // 13, year_month % 13, (packed >> 17) & 0x1F, (packed >> 12) & 0x1F,
                        (packed >> 6) & 0x3F, packed & 0x3F)
        except ValueError:
            return None
        return value.replace(microsecond=micro) if micro > 0 else value

    return read


def timestamp2_reader(fsp: int) -> Callable[[bytes, int], datetime.datetime]:
    """TIMESTAMP(fsp): 4 bytes big-endian signed seconds since the epoch, naive UTC."""
    fraction = _fraction(fsp)
    from_seconds = datetime.datetime.utcfromtimestamp

    def read(data: bytes, at: int) -> datetime.datetime:
        value = from_seconds(int.from_bytes(data[at:at + 4], "big", signed=True))
        micro = fraction(data, at + 4)
        return value.replace(microsecond=micro) if micro > 0 else value

    return read


def time2_reader(column: Any) -> Callable[[bytes, int], Any]:
    """TIME(fsp): whatever the library's TIME2 reader is in this process, on the value's bytes.

    syncd replaces the library's reader (syncd/source/binlog.py: the library reads negative
    values with fractions wrong), so this calls the current one on a library packet wrapper
    holding just the value: equal to the library's by construction, patched or not.
    """
    width = 3 + _fraction_bytes(column.fsp)

    def read(data: bytes, at: int) -> Any:
        shell = RowsEvent.__new__(RowsEvent)
        shell.packet = _value_packet(data[at:at + width])
        return RowsEvent._RowsEvent__read_time2(shell, column)

    return read


def _value_packet(value: bytes) -> BinLogPacketWrapper:
    """A library packet wrapper positioned on ``value`` (for the library's value readers)."""
    wrapper = BinLogPacketWrapper.__new__(BinLogPacketWrapper)
    wrapper.read_bytes = 0
    wrapper._BinLogPacketWrapper__data_buffer = b""
    wrapper.packet = MysqlPacket(value, "utf8")
    return wrapper


def _decimal_layout(precision: int, scale: int) -> tuple[int, list[tuple[int, str]]]:
    """Total bytes and the groups of a packed DECIMAL: (bytes, format) from left to right."""
    whole_groups, whole_rest = divmod(precision - scale, 9)
    frac_groups, frac_rest = divmod(scale, 9)
    groups: list[tuple[int, str]] = []
    if _DECIMAL_BYTES[whole_rest]:
        groups.append((_DECIMAL_BYTES[whole_rest], "d"))
    groups += [(4, "09d")] * whole_groups
    groups.append((0, "."))
    groups += [(4, "09d")] * frac_groups
    if _DECIMAL_BYTES[frac_rest]:
        groups.append((_DECIMAL_BYTES[frac_rest], f"0{frac_rest}d"))
    return sum(size for size, _ in groups), groups


def decimal_reader(precision: int, scale: int) -> Callable[[bytes, int], Decimal]:
    """DECIMAL(precision, scale): groups of 9 digits big-endian, the sign in the first bit.

    A negative value is stored with every bit inverted; the text is built group by group as
    the library does and handed to Decimal, which keeps the scale exactly. Positive values
    take a generated path (one struct call, no copy); negative ones the general path.
    """
    size, groups = _decimal_layout(precision, scale)
    plan = []
    offset = 0
    for width, spec in groups:
        plan.append((offset, offset + width, spec))
        offset += width

    def general(data: bytes, at: int) -> Decimal:
        raw = bytearray(data[at:at + size])
        negative = not raw[0] & 0x80
        raw[0] ^= 0x80
        mask = -1 if negative else 0
        parts = ["-" if negative else ""]
        for start, stop, spec in plan:
            if spec == ".":
                parts.append(".")
            else:
                parts.append(format(int.from_bytes(raw[start:stop], "big", signed=True) ^ mask, spec))
        return Decimal("".join(parts))

    return _positive_decimal(plan, size, general)


def _positive_decimal(plan: list[tuple[int, int, str]], size: int,
                      general: Callable[[bytes, int], Decimal]) -> Callable[[bytes, int], Decimal]:
    """Generated: positive values (sign bit set) read with one struct call, else `general`.

    The first group's sign bit is cleared by XOR; the others are read big-endian signed, as
    the library reads them (for valid data they are below 10**9, so signed and unsigned agree).
    """
    codes = {1: "b", 2: "h", 4: "i"}
    pieces: list[str] = []
    lines: list[str] = []
    struct_codes: list[str] = []
    struct_names: list[str] = []
    struct_end: int | None = None  # struct groups must be adjacent
    for number, (start, stop, spec) in enumerate(plan):
        if spec == ".":
            pieces.append(".")
            continue
        name = f"g{number}"
        width = stop - start
        if start == 0:  # the group holding the sign bit
            flip = 0x80 << 8 * (width - 1)
            lines.append(f"{name} = int.from_bytes(data[at:at + {width}], 'big') ^ {flip}")
        elif width in codes and (struct_end is None or start == struct_end):
            struct_codes.append(codes[width])
            struct_names.append(name)
            struct_end = stop
        else:
            lines.append(f"{name} = int.from_bytes(data[at + {start}:at + {stop}], 'big', signed=True)")
        pieces.append("{" + name + ("" if spec == "d" else ":" + spec) + "}")
    if struct_names:
        first = next(start for start, _, spec in plan if spec != "." and start > 0)
        names = ", ".join(struct_names) + ("," if len(struct_names) == 1 else "")
        lines.insert(0, f"{names} = layout.unpack_from(data, at + {first})")
    body = "\n".join("        " + line for line in lines)
    source = (f"def read(data, at):\n    if data[at] & 128:\n{body}\n"
              f"        return Decimal(f{''.join(pieces)!r})\n    return general(data, at)\n")
    namespace: dict[str, Any] = {"Decimal": Decimal, "general": general,
                                 "layout": struct.Struct(">" + "".join(struct_codes))}
    exec(compile(source, f"<syncd fastpath decimal {size} bytes>", "exec"), namespace)
    return namespace["read"]


def bit_reader(bits: int, size: int) -> Callable[[bytes, int], str]:
    """BIT(bits): big-endian; the library's value is the text of its ``bits`` low bits."""
    mask = (1 << bits) - 1
    spec = f"0{bits}b"
    return lambda data, at: format(int.from_bytes(data[at:at + size], "big") & mask, spec)


def _set_reader(members: list[str]) -> Callable[[int], set[str] | None]:
    """SET: a bit mask over the members; no member set reads None (reason 'empty set')."""
    indexed = list(enumerate(members))

    def read(mask: int) -> set[str] | None:
        chosen = {member for index, member in indexed if mask >> index & 1}
        return chosen or None

    return read


def _set_mask_reader(column: Any) -> Callable[[bytes, int], set[str] | None]:
    members, size = _set_reader(column.set_values), column.size
    return lambda data, at: members(int.from_bytes(data[at:at + size], "little"))


# Column type -> (width of a value, reader of a value) for fixed-width values read by a helper.
_FIXED: dict[int, tuple[Callable[[Any], int], Callable[[Any], Callable[[bytes, int], Any]]]] = {
    FIELD_TYPE.INT24: (lambda c: 3, lambda c: _int24_reader(c.unsigned)),
    FIELD_TYPE.DATE: (lambda c: 3, lambda c: read_date),
    FIELD_TYPE.DATETIME2: (lambda c: 5 + _fraction_bytes(c.fsp), lambda c: datetime2_reader(c.fsp)),
    FIELD_TYPE.TIMESTAMP2: (lambda c: 4 + _fraction_bytes(c.fsp), lambda c: timestamp2_reader(c.fsp)),
    FIELD_TYPE.TIME2: (lambda c: 3 + _fraction_bytes(c.fsp), time2_reader),
    FIELD_TYPE.NEWDECIMAL: (lambda c: _decimal_layout(c.precision, c.decimals)[0],
                            lambda c: decimal_reader(c.precision, c.decimals)),
    FIELD_TYPE.BIT: (lambda c: c.bytes, lambda c: bit_reader(c.bits, c.bytes)),
    FIELD_TYPE.SET: (lambda c: c.size, _set_mask_reader),  # sizes without a struct code (3)
}
