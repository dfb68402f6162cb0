"""The `schema_history` table of the state schema: a source's columns pinned to binlog positions.

Sources without `binlog_row_metadata=FULL` are read with the schema history (its rules:
syncd/source/schema_history.py). Its entries are stored here, one row per source, table and
binlog position (the table is created with the others, by syncd/sink/state.py's statements),
written in the transaction of the batch that moves the checkpoint past them (or by a snapshot,
before it copies), and read whole when a stream starts. A snapshot of a mapping paused because
its rows could not be named moves the pause to the snapshot's position (`move_pauses`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import psycopg
from psycopg import sql

from syncd.model import COPIED_AGAIN, COPY_NEEDED, HISTORY_PAUSE, ColumnSchema, Position, TableSchema
from syncd.sink.connection import translating


@translating("reading the schema history")
def read_schema_history(conn: psycopg.Connection, schema: str, source: str) -> list[TableSchema]:
    """A source's schema history entries (syncd/source/schema_history.py), in binlog order."""
    query = sql.SQL("SELECT source_table, binlog_file, binlog_pos, columns, primary_key, note, row_metadata "
                    "FROM {}.schema_history WHERE source = %s ORDER BY binlog_file, binlog_pos, source_table"
                    ).format(sql.Identifier(schema))
    return [TableSchema(table, Position(file, pos), _columns(columns), tuple(key), note, metadata)
            for table, file, pos, columns, key, note, metadata in conn.execute(query, (source,))]


def _columns(stored: list[dict[str, Any]] | None) -> tuple[ColumnSchema, ...] | None:
    if stored is None:
        return None
    return tuple(ColumnSchema(**{**column, "labels": tuple(column.get("labels", ()))}) for column in stored)


def write_schemas(cur: psycopg.Cursor, schema: str, entries: list[tuple[str, TableSchema]]) -> None:
    """Record entries (in the caller's transaction). An entry already at its table and position
    stays, unless it did not know the columns and this one does."""
    if not entries:
        return
    statement = sql.SQL(
        "INSERT INTO {0}.schema_history AS h (source, source_table, binlog_file, binlog_pos, columns, "
        "primary_key, note, row_metadata) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (source, source_table, binlog_file, binlog_pos) DO UPDATE SET "
        "columns = EXCLUDED.columns, primary_key = EXCLUDED.primary_key, note = EXCLUDED.note, "
        "row_metadata = EXCLUDED.row_metadata, recorded_at = now() "
        "WHERE h.columns IS NULL AND EXCLUDED.columns IS NOT NULL"
    ).format(sql.Identifier(schema))
    cur.executemany(statement, [
        (source, e.table, e.position.file, e.position.pos,
         None if e.columns is None else json.dumps([dataclasses.asdict(c) for c in e.columns],
                                                   ensure_ascii=False),
         list(e.primary_key), e.note, e.metadata)
        for source, e in entries])


@translating("reading the schema history")
def schema_history_sources(conn: psycopg.Connection, schema: str) -> dict[str, tuple[int, str | None]]:
    """Per source with a schema history: its entries, and the server's binlog_row_metadata at
    the latest one."""
    query = sql.SQL("SELECT DISTINCT ON (source) source, count(*) OVER (PARTITION BY source), row_metadata "
                    "FROM {}.schema_history ORDER BY source, recorded_at DESC").format(sql.Identifier(schema))
    return {source: (count, metadata) for source, count, metadata in conn.execute(query)}


def move_pauses(cur: psycopg.Cursor, schema: str, source: str, mappings: list[str],
                to: Position) -> list[str]:
    """Mappings paused because their rows could not be named (`HISTORY_PAUSE`) or their table was
    replaced (`COPY_NEEDED`) and copied again by a snapshot resume from the snapshot's position,
    no earlier: their rows up to it come from the copy. Returns those moved."""
    statement = sql.SQL(
        "UPDATE {}.paused_mappings SET binlog_file = %s, binlog_pos = %s, reason = reason || %s "
        "WHERE source = %s AND mapping = ANY(%s) AND (binlog_file, binlog_pos) < (%s, %s) "
        "AND (strpos(reason, %s) > 0 OR strpos(reason, %s) > 0) RETURNING mapping"
    ).format(sql.Identifier(schema))
    note = f" [copied again at {to} {COPIED_AGAIN}]"
    cur.execute(statement, (to.file, to.pos, note, source, mappings, to.file, to.pos, HISTORY_PAUSE,
                            COPY_NEEDED))
    return [row[0] for row in cur.fetchall()]
