"""The seam between a source server and the pipeline: what `syncd run` needs from a source.

`Pipeline` (syncd/service/pipeline.py) is handed a `ChangeSource` instead of opening MySQL
connections itself, so its invariants (whole transactions per commit, the checkpoint with the
rows, large transactions in parts, repairs in stream order) are tested on a list of events
(tests/doubles.py `ListSource`) in milliseconds, and the same tests bind the real reader
(syncd/source/mysql.py `MySQLSource`) to the same contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from syncd.model import Position, Row, SourceEvent, TableSchema
from syncd.source.continuity import ResumeGuard
from syncd.source.gtid import GtidState
from syncd.source.schema_history import SchemaHistory


class EventStream(Protocol):
    """A source's events in binlog order, read ahead of the applying thread."""

    handed_bytes: int
    """Bytes the events handed over so far came in, as far as the stream knows them (a decoder
    process's frames; an in-process reader's events count 0)."""

    def get(self, timeout: float) -> SourceEvent | BaseException:
        """The next event, or the error that ended the stream; raises queue.Empty after
        `timeout` seconds without one."""

    def close(self) -> None:
        """Stop reading; events not taken yet are dropped."""


class KeyReader(Protocol):
    """Source rows read by key in one consistent read (a repair's rows); closed by its user."""

    zero_dates: dict[tuple, tuple[str, ...]]
    """For the rows of the last `rows_by_key`, by key: columns whose zero date read as None."""

    def read_point(self) -> Position:
        """The binlog position the read sees the source at."""

    def row_key(self, table: str, source_key: tuple[str, ...] = (),
                mapping: str | None = None) -> tuple[str, ...]:
        """The columns naming a row of `table` (the mapping's `source_key`, else the primary
        key); NoPrimaryKey / UnusableSourceKey when there are none."""

    def rows_by_key(self, table: str, key: tuple[str, ...], keys: list[tuple]) -> dict[tuple, Row]:
        """The rows of these keys that exist, by key."""

    def close(self) -> None: ...


class ChangeSource(Protocol):
    """One source database: its binlog stream, its live table columns, its rows by key, and the
    columns of its tables pinned to binlog positions."""

    def stream(self, start: Position, tables: set[str], gtid: GtidState,
               guard: ResumeGuard | None, history: SchemaHistory | None = None) -> EventStream:
        """Events from `start` on, row changes only of `tables`; `guard` checks that the
        stream starts on the proven history (None: no check, e.g. a replay); `history` names
        the columns of row events written without full metadata (schema_history.py)."""

    def row_metadata(self) -> str:
        """The server's `binlog_row_metadata`: FULL, MINIMAL, NO_LOG ('' where it has none)."""

    def pin_schemas(self, tables: Iterable[str], at: Position) -> list[TableSchema]:
        """Schema history entries of `tables` as of `at` (syncd/source/pinning.py)."""

    def live_columns(self, tables: Iterable[str]) -> dict[str, dict[str, str]]:
        """Each existing table's columns now, name -> type (missing tables are left out)."""

    def key_reader(self) -> KeyReader:
        """A consistent read, open; the caller closes it."""
