"""The binlog reader: the only user of pymysqlreplication.

Turns the library's events into syncd's own: one `SourceTransaction` per committed source
transaction (with the file/offset just after its commit), `SchemaChange` for DDL, and
`Heartbeat` while the server is idle. It refuses, loudly, whatever it cannot read exactly.
Every position names the binlog file it is in by the file's creation time and server_id (from
the file's FORMAT_DESCRIPTION event), and a stream that resumes a checkpoint checks as it starts
that it reads the history the checkpoint came from (syncd/source/continuity.py).

Row events written without full row metadata are named by the source's schema history
(syncd/source/schema_history.py): each table map of a mapped table is checked against the entry
in force and completed from it, or its rows are left out of the transaction with the reason
(`SourceTransaction.doubts`: the pipeline pauses those mappings). At each DDL on a mapped table
the reader pins the table's new columns (syncd/source/pinning.py) and hands them on with the
`SchemaChange`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pymysql
from pymysql.constants import ER
from pymysqlreplication import BinLogStreamReader, binlogstream
from pymysqlreplication.event import (
    FormatDescriptionEvent,
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    NotImplementedEvent,
    PreviousGtidsEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.json_binary import parse_json
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    RowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from syncd.config import SourceConfig
from syncd.errors import (
    MissingGrant,
    PositionLost,
    ServerIdInUse,
    SourceError,
    SourceUnavailable,
    StreamError,
    UndecodableText,
)
from syncd.model import (
    BinlogFileId,
    Heartbeat,
    Op,
    Position,
    Row,
    RowChange,
    SchemaChange,
    SourceEvent,
    SourceTransaction,
    TableSchema,
    TransactionPart,
    Undecodable,
)
from syncd.source import charsets, fastpath, table_maps
from syncd.source.connection import SourceConnection, TlsFailure, auth_error, connect, tls_error
from syncd.source.continuity import ResumeGuard
from syncd.source.definitions import ColumnDefinition, Definitions, LiveDefinitions
from syncd.source.gtid import GtidState
from syncd.source.mysql_events import MalformedEvent
from syncd.source.pinning import Pinner, touched
from syncd.source.schema_history import SchemaHistory
from syncd.source.values import (
    Convert,
    apply_converters,
    binlog_converter,
    json_document,
    needs_definition,
    read_time2_exact,
    time_from_binary,
    unreadable,
)

# Make the library raise on lost connections instead of silently reconnecting from a
# position that may be mid-transaction; syncd reconnects from its durable checkpoint.
binlogstream.MYSQL_EXPECTED_ERROR_CODES.clear()


RowsEvent._RowsEvent__read_time2 = read_time2_exact  # type: ignore[attr-defined]


def _read_time_exact(event: RowsEvent) -> Any:
    """The library reads an old-format TIME (tables from before MySQL 5.6.4 / MariaDB 10.1) as an
    unsigned number; it is a signed 3-byte ±HHMMSS (-838:59:59 read as 839:12:57)."""
    return time_from_binary(event.packet.read(3))


RowsEvent._RowsEvent__read_time = _read_time_exact  # type: ignore[attr-defined]


def _read_string_exact(event: RowsEvent, size: int, column: Any) -> Any:
    """The library decodes text with Python's codecs (which differ from the server's) and fails
    on bytes the server cannot convert; read the server's text, or an `Undecodable` marker."""
    data = event.packet.read_length_coded_pascal_string(size)
    charset = fastpath.column_charset(column)
    if charset.binary:
        return data or ""  # the library's value of an empty binary string
    return charsets.text_or_marker(charset, column.name, data)


RowsEvent._RowsEvent__read_string = _read_string_exact  # type: ignore[attr-defined]


def _read_binary_json_text(packet: BinLogPacketWrapper, size: int, is_partial: bool) -> Any:
    """MySQL's binary JSON as JSON text (values.json_document). The library parses it into Python
    values, reading a document that is the JSON literal null as None, the value of SQL NULL;
    and it carries top-level strings as bytes. Partial updates are refused before they are read."""
    if is_partial:
        return _library_read_binary_json(packet, size, is_partial)
    length = packet.read_uint_by_size(size)
    if length == 0:
        return None  # no document at all, as the library reads it
    data = packet.read(length)
    return json_document(parse_json(data[0], data[1:]))


_library_read_binary_json = BinLogPacketWrapper.read_binary_json
BinLogPacketWrapper.read_binary_json = _read_binary_json_text  # type: ignore[method-assign]


def _read_labels(event: TableMapEvent, length: int) -> list[list[bytes]]:
    """ENUM and SET labels as their bytes: the library decodes them as UTF-8 (a latin1 `é` label
    became ''); they are decoded in their column's charset once the columns are known."""
    labels = []
    packet = event.packet
    end = packet.read_bytes + length
    while packet.read_bytes < end:
        count = packet.read_length_coded_binary()
        labels.append([packet.read_variable_length_string() for _ in range(count)])
    return labels


def _sync_column_info(event: TableMapEvent) -> None:
    _library_sync_column_info(event)
    for column in event.columns:
        for attribute in ("enum_values", "set_values"):
            labels = getattr(column, attribute, None)
            if labels:
                charset = fastpath.column_charset(column)
                setattr(column, attribute, [_label(charset, column.name, label) for label in labels])


def _label(charset: charsets.Charset, column: str, label: Any) -> Any:
    if not isinstance(label, bytes):
        return label
    try:
        return charset.decode(label)
    except UndecodableText as exc:
        return charsets.marker(column, charset.name, label, exc)


_library_sync_column_info = TableMapEvent._sync_column_info
TableMapEvent._read_type_values = _read_labels  # type: ignore[method-assign]
TableMapEvent._sync_column_info = _sync_column_info  # type: ignore[method-assign]

_ZERO_DATE_SOURCES = {"out of date range", "out of datetime range", "out of datetime2 range"}
_ANONYMOUS_GTID = 0x22  # MySQL with gtid_mode=OFF: carries no data, safe to pass over
_DML = re.compile(r"^\s*(insert|update|delete|replace)\b", re.IGNORECASE)
_XA = re.compile(r"^\s*XA\s+(COMMIT|ROLLBACK)\s+(.*?)\s*(ONE PHASE)?\s*$", re.IGNORECASE)
_CONNECTION_ERRORS = (2003, 2006, 2013, 2055)
_MARIADB_PREPARED_XA = 0x40  # MariaDB GTID flag: the transaction is an XA PREPARE
PART_ROWS = 1000
"""A larger transaction is handed on in parts of this many changes, so memory stays bounded."""


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class _OpenTransaction:
    def __init__(self, gtid: str | None, xa: bool = False, opened: int = 0) -> None:
        self.gtid = gtid
        self.opened = opened
        """The timestamp of the transaction's first event (its GTID event, BEGIN or first rows):
        the time of a transaction handed on in parts, whose commit is read only after them. On
        MariaDB, and on MySQL with GTIDs, the GTID event is written at commit and carries its time."""
        self.changes: list[RowChange] = []
        self.xa = xa
        """XA transactions are never handed on in parts: they may still be rolled back."""
        self.parted = False
        self.doubts: dict[str, str] = {}
        """Tables whose rows could not be read by name, and why (SourceTransaction.doubts)."""


class BinlogReader:
    """Reads one source's binlog from a checkpoint. Iterate `events()`; call `close()` to stop."""

    def __init__(self, source: SourceConfig, start: Position, tables: set[str],
                 gtid_state: GtidState | None = None, *, guard: ResumeGuard | None = None,
                 blocking: bool = True, definitions: Definitions | None = None,
                 history: SchemaHistory | None = None) -> None:
        self.source = source
        self.definitions = definitions or LiveDefinitions(source.name, lambda: connect(source))
        """What the binlog does not say about columns (see syncd/source/definitions.py)."""
        self.history = history or SchemaHistory()
        """Columns of row events written without full metadata (syncd/source/schema_history.py)."""
        self._pins = Pinner(source)
        self._next_start = self.history.next_start(_just_after(start))
        """Where an entry of the history starts next: table maps are parsed again there."""
        self.start = start
        self.tables = tables
        self.gtids = gtid_state or GtidState()
        self.blocking = blocking
        """False: end at the end of the binlog (a scan) instead of waiting for more."""
        self._guard = guard
        """Checks the first file and GTID of a stream resuming a checkpoint (then None)."""
        self._file_id: BinlogFileId | None = None
        """Which file the stream is in: set by its FORMAT_DESCRIPTION event, unset by a rotation."""
        self._stream: BinLogStreamReader | None = None
        self._open: _OpenTransaction | None = None
        self._prepared: dict[str, _OpenTransaction] = {}
        self._converters: dict[int, tuple[list, list[tuple[str, Convert]]]] = {}
        self._numbered = (0, 0)
        """(end position, next row index) of the last rows event read: rows events sharing an end
        position (those of one compressed transaction) number their rows on, so that every change
        keeps a place of its own (RowChange.event_pos, row_index)."""

    def _connect(self) -> BinLogStreamReader:
        settings = self.source.connection_kwargs()
        settings["read_timeout"] = max(30, self.source.heartbeat_s * 4)
        # The fast decoding path (same events and values; SYNCD_DECODER=library: off).
        stream = fastpath.install(BinLogStreamReader(
            connection_settings=settings,
            server_id=self.source.server_id,
            blocking=self.blocking,
            resume_stream=True,
            log_file=self.start.file,
            log_pos=self.start.pos,
            slave_heartbeat=self.source.heartbeat_s,
            only_schemas=[self.source.database],
            filter_non_implemented_events=False,
            # Table maps are read for the rows events, not one of ours; the library reads a
            # PREVIOUS_GTIDS event holding tagged GTIDs (MySQL 8.3+) as garbage, and syncd needs none.
            ignored_events=[TableMapEvent, PreviousGtidsEvent],
            freeze_schema=False,
            ignore_decode_errors=False,
            enable_logging=False,
            pymysql_wrapper=SourceConnection,
        ))
        stream.table_hook = self._table_map
        return stream

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self.definitions.close()
        self._pins.close()

    def position(self) -> Position:
        assert self._stream is not None
        return Position(self._stream.log_file, self._stream.log_pos, str(self.gtids) or None,
                        self._file_id)

    def events(self) -> Iterator[SourceEvent]:
        self._stream = self._connect()
        try:
            for event in self._stream:
                yield from self._handle(event)
        except TlsFailure as exc:  # the stream's or the control connection's
            raise tls_error(self.source, exc) from exc
        except pymysql.err.OperationalError as exc:
            raise (auth_error(self.source, exc) or _translate(self.source.name, exc)) from exc
        except MalformedEvent as exc:
            raise StreamError(self.source.name, f"an event cannot be read: {exc}",
                              str(self.position())) from exc
        except (ConnectionError, OSError) as exc:
            raise SourceUnavailable(self.source.name, f"connection lost: {exc}") from exc
        if self.blocking:
            raise SourceUnavailable(self.source.name, "the server ended the binlog stream")

    def runs(self) -> Iterator[list[SourceEvent]]:
        """The events one by one, in the shape a decoder process hands them over (see readahead)."""
        return ([event] for event in self.events())

    def _handle(self, event: Any) -> Iterator[SourceEvent]:
        if isinstance(event, RowsEvent):
            yield from self._rows(event)
        elif isinstance(event, XidEvent):
            yield self._commit(event.timestamp)
        elif isinstance(event, MariadbGtidEvent | GtidEvent):
            flags = getattr(event, "flags", 0) if isinstance(event, MariadbGtidEvent) else 0
            if self._guard is not None:
                self._guard, guard = None, self._guard
                guard.first_gtid(event.gtid, self.gtids)
            self._open = _OpenTransaction(event.gtid, xa=bool(flags & _MARIADB_PREPARED_XA),
                                          opened=event.timestamp)
            if self._next_start is not None:
                self._passed_start()
        elif isinstance(event, QueryEvent):
            yield from self._query(event)
        elif isinstance(event, XAPrepareEvent):
            self._prepare(event)
        elif isinstance(event, HeartbeatLogEvent | FormatDescriptionEvent):
            if isinstance(event, FormatDescriptionEvent):
                self._file_started(event)
            yield Heartbeat(self.source.name, self._idle_position())
        elif isinstance(event, RotateEvent):
            self._file_id = None  # the next file's FORMAT_DESCRIPTION event says which it is
            yield Heartbeat(self.source.name)
        elif isinstance(event, NotImplementedEvent) and event.event_type != _ANONYMOUS_GTID:
            raise StreamError(self.source.name, f"binlog event type {event.event_type} cannot be "
                              "read (a compressed MariaDB binlog? check log_bin_compress)",
                              str(self.position()))

    def _idle_position(self) -> Position | None:
        """Where the stream is, when that is a safe checkpoint: no transaction open, and the
        file known. Following it at once (after a rotation, while idle) means an old binlog
        file is never needed for nothing."""
        return self.position() if self._open is None and self._file_id is not None else None

    def _file_started(self, event: FormatDescriptionEvent) -> None:
        self._file_id = BinlogFileId(event.timestamp, event.packet.server_id)
        if self._guard is not None:
            assert self._stream is not None
            self._guard.file_started(self._stream.log_file, self._file_id)

    def _commit(self, timestamp: int) -> SourceTransaction:
        tx, self._open = self._open or _OpenTransaction(None), None
        if tx.gtid:
            self.gtids.add(tx.gtid)
        # A transaction handed on in parts keeps the time its parts were written with.
        return SourceTransaction(self.source.name, tx.changes, self.position(),
                                 _utc(tx.opened if tx.parted else timestamp), tx.parted, tx.gtid,
                                 tuple(tx.doubts.items()))

    def _query(self, event: QueryEvent) -> Iterator[SourceEvent]:
        query = event.query.strip()
        upper = query.upper()
        if upper == "BEGIN":
            if self._open is None:
                self._open = _OpenTransaction(None, opened=event.timestamp)
                if self._next_start is not None:
                    self._passed_start()
        elif upper == "COMMIT":
            yield self._commit(event.timestamp)
        elif xa := _XA.match(query):
            yield self._xa_end(xa.group(1).upper(), xa.group(2), event.timestamp)
        elif upper.startswith("XA "):
            if upper.startswith("XA START") and self._open is not None:
                self._open.xa = True
        elif _DML.match(query) and _schema(event) == self.source.database:
            raise StreamError(self.source.name, "a DML statement was logged in STATEMENT format; "
                              "set binlog_format=ROW (globally and for every session)",
                              str(self.position()))
        else:
            yield self._schema_change(event)

    def _schema_change(self, event: QueryEvent) -> SchemaChange:
        tx, self._open = self._open, None
        gtid = tx.gtid if tx is not None else None
        if gtid:
            self.gtids.add(gtid)
        # A DDL may change what a TABLE_MAP does not show (FLOAT(10,1) -> FLOAT(10,6)).
        self.definitions.forget()
        self._converters.clear()
        schemas = self._pinned(_schema(event), event.query) if self.history.recording else ()
        return SchemaChange(self.source.name, _schema(event), event.query, self.position(),
                            _utc(event.timestamp), gtid, schemas)

    def _pinned(self, schema: str, statement: str) -> tuple[TableSchema, ...]:
        """The schema history's entries at this DDL's end for the mapped tables it touches, pinned
        now unless the history has them already (a stream replaying a stretch it read before)."""
        at = self.position()
        tables = sorted(touched(statement, schema, self.source.database) & self.tables)
        missing = [table for table in tables if self.history.starting(table, at) is None]
        if missing:
            for entry in self._pins.pin(missing, at, self.history.metadata):
                self.history.add(entry)
        if tables and self._stream is not None:
            self._stream.forget_tables()
        return tuple(entry for table in tables if (entry := self.history.starting(table, at)) is not None)

    def _passed_start(self) -> None:
        """At a transaction's start: past an entry's start, table maps are parsed again."""
        assert self._next_start is not None
        here = self.position()
        if here > self._next_start:
            if self._stream is not None:
                self._stream.forget_tables()
            self._next_start = self.history.next_start(here)

    def _table_map(self, event: TableMapEvent) -> None:
        """The stream's table hook: a mapped table's map without column names is completed from
        the schema history entry in force, if that entry fits it; otherwise its rows are not read
        by name (`_syncd_doubt` on its table says why)."""
        if event.table not in self.tables or all(column.name for column in event.columns):
            return
        assert self._stream is not None
        at = Position(self._stream.log_file, self._stream.log_pos)
        entry = self.history.at(event.table, at)
        doubt = table_maps.doubt(event, entry, at)
        if doubt is None:
            assert entry is not None
            table_maps.complete(event, entry)
        event.get_table()._syncd_doubt = doubt

    def _prepare(self, event: XAPrepareEvent) -> None:
        """Rows of a prepared XA transaction wait for its COMMIT (or vanish on ROLLBACK)."""
        tx, self._open = self._open or _OpenTransaction(None), None
        self._prepared[_xid_text(event.xid_gtrid, event.xid_bqual, event.xid_format_id)] = tx
        if tx.gtid:
            self.gtids.add(tx.gtid)

    def _xa_end(self, verb: str, xid: str, timestamp: int) -> SourceTransaction:
        prepared = self._prepared.pop(_normalize_xid(xid), None) or _OpenTransaction(None)
        tx, self._open = self._open or _OpenTransaction(None), None
        if tx.gtid:
            self.gtids.add(tx.gtid)
        committed = verb == "COMMIT"
        kept = prepared.changes + tx.changes if committed else []
        doubts = tuple({**prepared.doubts, **tx.doubts}.items()) if committed else ()
        return SourceTransaction(self.source.name, kept, self.position(), _utc(timestamp), gtid=tx.gtid,
                                 doubts=doubts)

    def _rows(self, event: RowsEvent) -> Iterator[TransactionPart]:
        if isinstance(event, PartialUpdateRowsEvent):
            raise StreamError(self.source.name, "partial JSON updates cannot be replayed exactly; "
                              "set binlog_row_value_options='' on the source", str(self.position()))
        if event.table not in self.tables:
            return
        tx = self._open = self._open or _OpenTransaction(None, opened=event.timestamp)
        assert self._stream is not None
        doubt = getattr(self._stream.table_map.get(event.table_id), "_syncd_doubt", None)
        if doubt is not None:
            tx.doubts.setdefault(event.table, doubt)
            return
        converters = self._converters_for(event)
        key = _key_columns(event)
        # The fast path reads FULL images only (others go to the library): nothing to check.
        checked = getattr(event, "full_row_image", False)
        end, first = event.packet.log_pos, 0
        if self._numbered[0] == end:  # a compressed transaction's rows events all end where it does
            first = self._numbered[1]
        rows = event.rows
        for index, row in enumerate(rows, first):
            if not checked:
                self._check_full_image(event, row)
                _mark_undecodable(row)
            tx.changes.append(_change(event, row, index, key, converters))
        self._numbered = (end, first + len(rows))
        if len(tx.changes) >= PART_ROWS and not tx.xa:
            yield TransactionPart(self.source.name, tx.changes, _utc(tx.opened))
            tx.changes, tx.parted = [], True

    def _converters_for(self, event: RowsEvent) -> list[tuple[str, Convert]]:
        """Per table map (the library keeps one columns list per map), built once (again after DDL)."""
        columns = event.columns
        cached = self._converters.get(id(columns))
        if cached is not None and cached[0] is columns:
            return cached[1]
        if len(self._converters) > 4096:
            self._converters.clear()
        definitions = self._definitions_for(event)
        converters = [(c.name, f) for c in columns
                      if (f := binlog_converter(c, definitions.get(c.name))) is not None]
        self._converters[id(columns)] = (columns, converters)
        return converters

    def _definitions_for(self, event: RowsEvent) -> dict[str, ColumnDefinition]:
        """The definitions of the event's columns the binlog does not carry (none for most tables);
        a column whose values cannot be read stops the source, naming it."""
        if not any(needs_definition(c) for c in event.columns):
            return {}
        definitions = (self.history.definitions(event.table, self.position())
                       or self.definitions.table(event.schema, event.table, self.position()))
        for column in event.columns:
            if problem := unreadable(column, definitions.get(column.name)):
                raise StreamError(self.source.name, f"table {event.schema}.{event.table}, column "
                                  f"{column.name}: {problem}", str(self.position()))
        return definitions

    def _check_full_image(self, event: RowsEvent, row: dict) -> None:
        for sources_key in ("none_sources", "before_none_sources", "after_none_sources"):
            if "cols bitmap" in (row.get(sources_key) or {}).values():
                raise StreamError(self.source.name, f"table {event.table}: a row was logged with "
                                  "binlog_row_image other than FULL; set binlog_row_image=FULL "
                                  "globally and for every session", str(self.position()))


def _just_after(position: Position) -> Position:
    return Position(position.file, position.pos + 1)


def _mark_undecodable(row: dict) -> None:
    """The library's rows hold `Undecodable` markers unannounced: record them as the fast path
    does (in none_sources, with the reason UNDECODABLE)."""
    for values_key, sources_key in (("values", "none_sources"), ("before_values", "before_none_sources"),
                                    ("after_values", "after_none_sources")):
        for name, value in (row.get(values_key) or {}).items():
            if isinstance(value, Undecodable):
                row.setdefault(sources_key, {})[name] = fastpath.UNDECODABLE


def _change(event: RowsEvent, row: dict, index: int, key: tuple[str, ...],
            converters: list[tuple[str, Convert]]) -> RowChange:
    pos = event.packet.log_pos
    if isinstance(event, WriteRowsEvent):
        after, zeros, bad = _values(row["values"], row.get("none_sources"), converters)
        return RowChange(event.table, Op.INSERT, None, after, pos, index, key, zeros, bad)
    if isinstance(event, DeleteRowsEvent):
        before, zeros, bad = _values(row["values"], row.get("none_sources"), converters)
        return RowChange(event.table, Op.DELETE, before, None, pos, index, key, zeros, bad)
    assert isinstance(event, UpdateRowsEvent)
    before, _, bad_before = _values(row["before_values"], row.get("before_none_sources"), converters)
    after, zeros, bad = _values(row["after_values"], row.get("after_none_sources"), converters)
    bad += tuple(name for name in bad_before if name not in bad)
    return RowChange(event.table, Op.UPDATE, before, after, pos, index, key, zeros, bad)


def _values(values: dict, none_sources: dict | None,
            converters: list[tuple[str, Convert]]) -> tuple[Row, tuple[str, ...], tuple[str, ...]]:
    """Library values -> syncd values (see syncd.source.values): the row, the columns whose
    zero date became None, and the columns holding an `Undecodable` marker."""
    row = dict(values)
    zeros = apply_converters(row, converters)
    bad: tuple[str, ...] = ()
    for name, why in (none_sources or {}).items():
        if why in _ZERO_DATE_SOURCES:
            zeros += (name,)
        elif why == "empty set":
            row[name] = ""
        elif why == fastpath.UNDECODABLE:
            bad += (name,)
    return row, zeros, bad


def _key_columns(event: RowsEvent) -> tuple[str, ...]:
    """The table's primary key columns; none for a table without one (the library says "")."""
    key = getattr(event, "primary_key", None)
    if isinstance(key, str):
        return (key,) if key else ()
    return tuple(key or ())


def _schema(event: QueryEvent) -> str:
    schema = event.schema
    return schema.decode("utf-8", "replace") if isinstance(schema, bytes) else str(schema or "")


def _xid_text(gtrid: bytes, bqual: bytes, format_id: int) -> str:
    return _normalize_xid(f"X'{gtrid.hex()}',X'{bqual.hex()}',{format_id}")


def _normalize_xid(text: str) -> str:
    return text.replace(" ", "").lower()


def _translate(source: str, exc: pymysql.err.OperationalError) -> SourceError:
    code = exc.args[0] if exc.args else 0
    message = exc.args[1] if len(exc.args) > 1 else str(exc)
    if code == 4052 or (code == 1236 and "same server_uuid/server_id" in message):
        # MariaDB: 4052; MySQL: 1236 "A replica (slave) with the same server_uuid/server_id as
        # this replica has connected to the source" (rpl_source.cc kill_zombie_dump_threads).
        return ServerIdInUse(source, f"a binlog reader with syncd's server_id connected and the "
                             f"server ended syncd's stream ({message}); if this repeats, another "
                             "replica or reader uses the same server_id: give "
                             f"sources.{source}.server_id a value no replica or reader of this "
                             "server uses (SHOW REPLICAS, on MariaDB SHOW REPLICA HOSTS, lists "
                             "those it knows)")
    if code == 1236:
        return PositionLost(source, f"the server cannot resume the binlog at the checkpoint: "
                            f"{message}. The binlog was probably purged; run "
                            f"`syncd snapshot --source {source}` to copy the tables again")
    if code in _CONNECTION_ERRORS:
        return SourceUnavailable(source, f"connection lost ({code}): {message}")
    if code == ER.SPECIFIC_ACCESS_DENIED_ERROR:
        return MissingGrant(source, f"the server refuses the binlog stream ({code}: {message}): the "
                            f"user of sources.{source} needs REPLICATION SLAVE. Fix: GRANT REPLICATION "
                            "SLAVE ON *.* TO that user, then `systemctl reload syncd`")
    return SourceUnavailable(source, f"MySQL error {code}: {message}")
