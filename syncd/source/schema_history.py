"""A source's schema history: each mapped table's columns as of any binlog position (pure).

With `binlog_row_metadata=FULL` every TABLE_MAP event carries the names, signedness, charsets
and ENUM/SET labels of its columns. Without it (MySQL 5.7, MySQL 8.0 before 8.0.14 and by
default, MariaDB before 10.5 and by default, most managed services) a row event says only the
columns' storage types; the rest must come from the source's `information_schema`, which
describes the table as it is *now*. Read naively, rows written before an ALTER are named by the
table after it (research: the binlog library's own fallback mis-maps columns this way).

So syncd keeps, per source and table, the columns and the binlog position from which they hold
(`TableSchema`, stored in the state schema's `schema_history`). An entry is recorded only where
syncd can pin it to its position (syncd/source/pinning.py): at a snapshot's position, at a
stream's start, and at the end of each DDL on a mapped table. Rows are read with the entry in
force where they were written (`at`), and every table map is checked against it
(syncd/source/table_maps.py); where no entry can be pinned, the entry says the columns are not
known from there, and the mappings of that table pause instead of guessing.

Entries start at transaction boundaries, so the entry in force for an event at position X is
the last one that starts *before* X (an entry at the end of a transaction does not hold inside
it). The same lookup answers the column definitions the binlog reader asks for
(`Definitions`, syncd/source/definitions.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from syncd.model import Position, TableSchema
from syncd.source.definitions import ColumnDefinition


class SchemaHistory:
    """The entries of one source, by table; `recording`: new ones are pinned as the stream
    passes DDL (a source without full row metadata, or one that had none once)."""

    def __init__(self, entries: Iterable[TableSchema] = (), *, recording: bool = False,
                 metadata: str | None = None) -> None:
        self.recording = recording
        self.metadata = metadata
        """The server's binlog_row_metadata ('' where it has none), recorded with new entries."""
        self._tables: dict[str, list[TableSchema]] = {}
        self._starts: dict[str, list[tuple[str, int]]] = {}
        for entry in entries:
            self.add(entry)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._tables.values())

    def entries(self) -> list[TableSchema]:
        return [entry for entries in self._tables.values() for entry in entries]

    def add(self, entry: TableSchema) -> None:
        """Record an entry; one already at its table and position is kept, unless it is not
        known and this one is (a pin that succeeded later)."""
        entries = self._tables.setdefault(entry.table, [])
        starts = self._starts.setdefault(entry.table, [])
        key = _key(entry.position)
        index = bisect.bisect_left(starts, key)
        if index < len(starts) and starts[index] == key:
            if not entries[index].known and entry.known:
                entries[index] = entry
            return
        starts.insert(index, key)
        entries.insert(index, entry)

    def starting(self, table: str, position: Position) -> TableSchema | None:
        """The table's entry starting exactly at `position`, if any."""
        starts = self._starts.get(table, [])
        index = bisect.bisect_left(starts, _key(position))
        if index < len(starts) and starts[index] == _key(position):
            return self._tables[table][index]
        return None

    def at(self, table: str, position: Position) -> TableSchema | None:
        """The entry in force for an event at `position`: the last one starting before it
        (None when the table has none that early)."""
        starts = self._starts.get(table)
        if not starts:
            return None
        index = bisect.bisect_left(starts, _key(position))
        return self._tables[table][index - 1] if index else None

    def next_start(self, position: Position) -> Position | None:
        """The first entry start (of any table) at or after `position`: where the entry in
        force may change without a DDL (a snapshot's position)."""
        key = _key(position)
        found = []
        for table, starts in self._starts.items():
            index = bisect.bisect_left(starts, key)
            if index < len(starts):
                found.append(self._tables[table][index].position)
        return min(found) if found else None

    def definitions(self, table: str, position: Position) -> dict[str, ColumnDefinition]:
        """What `Definitions.table` answers: the entry in force's column definitions."""
        entry = self.at(table, position)
        if entry is None or not entry.columns:
            return {}
        return {c.name: ColumnDefinition(c.data_type, c.scale, c.fraction) for c in entry.columns}


def _key(position: Position) -> tuple[str, int]:
    return (position.file, position.pos)
