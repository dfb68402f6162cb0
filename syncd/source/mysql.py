"""`MySQLSource`: the `ChangeSource` of a MySQL or MariaDB server (syncd/source/base.py).

It only chooses and wires the parts that talk to the server: the binlog reader (on another
core, syncd/source/decoder_process.py, unless ``SYNCD_DECODER_PROCESS=0``; else in this
process, syncd/source/binlog.py) behind a bounded read-ahead thread (readahead.py), the live
column check, consistent reads by key (snapshot.py), and the schema history's pins
(pinning.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import pymysql

from syncd.config import SourceConfig
from syncd.errors import SourceUnavailable
from syncd.model import Position, TableSchema
from syncd.source import checks, decoder_process
from syncd.source.binlog import BinlogReader
from syncd.source.checks import connect, table_columns
from syncd.source.continuity import ResumeGuard
from syncd.source.decoder_process import DecoderProcess
from syncd.source.gtid import GtidState
from syncd.source.pinning import DdlScan, pin
from syncd.source.readahead import ReadAhead
from syncd.source.schema_history import SchemaHistory
from syncd.source.snapshot import SourceSnapshot


class BinlogStream:
    """A reader's events through a read-ahead thread; closing ends both."""

    def __init__(self, reader: BinlogReader | DecoderProcess, name: str) -> None:
        self.reader = reader
        self.ahead = ReadAhead(reader.runs(), name)
        self.get = self.ahead.get

    @property
    def handed_bytes(self) -> int:
        return self.ahead.handed_bytes

    def close(self) -> None:
        self.ahead.close()
        self.reader.close()


class MySQLSource:
    """One configured source server (see the module docstring)."""

    def __init__(self, config: SourceConfig, row_metadata: str | None = None) -> None:
        self.config = config
        self._row_metadata = row_metadata
        """The server's binlog_row_metadata when the caller read it already (start-up checks)."""

    def stream(self, start: Position, tables: set[str], gtid: GtidState,
               guard: ResumeGuard | None, history: SchemaHistory | None = None) -> BinlogStream:
        reader_class = DecoderProcess if decoder_process.enabled() else BinlogReader
        reader = reader_class(self.config, start, tables, gtid, guard=guard, history=history)
        return BinlogStream(reader, f"binlog-{self.config.name}")

    def row_metadata(self) -> str:
        if self._row_metadata is not None:
            return self._row_metadata
        conn = connect(self.config)
        try:
            return checks.row_metadata(conn)
        finally:
            conn.close()

    def pin_schemas(self, tables: Iterable[str], at: Position) -> list[TableSchema]:
        conn = connect(self.config)
        try:
            return pin(conn, self.config.database, tables, at, scan=DdlScan(self.config.database),
                       metadata=checks.row_metadata(conn))
        except pymysql.err.Error as exc:
            raise SourceUnavailable(self.config.name, f"recording the columns of {', '.join(tables)} "
                                    f"at {at} failed: {exc.args[-1]}") from exc
        finally:
            conn.close()

    def live_columns(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        conn = connect(self.config, self.config.database)  # one connection for all: a start is quicker
        try:
            return {table: columns for table in tables
                    if (columns := table_columns(conn, self.config.database, table)) is not None}
        finally:
            conn.close()

    def key_reader(self) -> SourceSnapshot:
        snapshot = SourceSnapshot(self.config)
        try:
            snapshot.open()
        except BaseException:
            snapshot.close()
            raise
        return snapshot
