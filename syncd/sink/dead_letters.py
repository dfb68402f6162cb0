"""The dead letters table (`state_schema.dead_letters`) read back and resolved: what `syncd dlq`
lists, which letters a selector picks, letters marked retried or discarded. Letters are written
with the batch that dead-letters them (syncd/sink/state.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from syncd.sink.connection import translated

STATUSES = ("pending", "retried", "discarded")


@dataclass(frozen=True)
class StoredDeadLetter:
    """One row of `state_schema.dead_letters`."""

    id: int
    created_at: datetime
    source: str
    source_table: str
    mapping: str
    row_key: str
    position: str
    reason: str
    status: str
    resolved_at: datetime | None
    row_image: dict[str, Any]
    row_image_kept: bool = True
    """False for a letter written before letters kept only what their mapping reads: its image
    may hold columns in clear that must not be shown (`trim_stored` trims it)."""


# --------------------------------------------------------------------------- selecting


@dataclass(frozen=True)
class Selector:
    """Which dead letters a command acts on: exactly one of an id, a mapping, or all."""

    id: int | None = None
    mapping: str | None = None
    all: bool = False

    def describe(self) -> str:
        if self.id is not None:
            return f"dead letter {self.id}"
        if self.mapping is not None:
            return f"pending dead letters of mapping {self.mapping!r}"
        return "pending dead letters"


def where_clause(selector: Selector, status: str | None = "pending") -> tuple[str, list[Any]]:
    """SQL condition (without WHERE) and its parameters for a selector and a status (None: any)."""
    parts: list[str] = []
    params: list[Any] = []
    if status is not None:
        parts.append("status = %s")
        params.append(status)
    if selector.id is not None:
        parts.append("id = %s")
        params.append(selector.id)
    if selector.mapping is not None:
        parts.append("mapping = %s")
        params.append(selector.mapping)
    return (" AND ".join(parts) or "true"), params


_COLUMNS = ("id, created_at, source, source_table, mapping, row_key, binlog_position, reason, status, "
            "resolved_at, row_image, row_image_kept")


def exists(conn: Any, schema: str) -> bool:
    """Whether the state schema holds the dead letters table (the first `syncd run` or `syncd
    snapshot` creates it)."""
    found = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, "dead_letters").as_string(conn),))
    return found.fetchone()[0] is not None


def fetch(conn: Any, schema: str, selector: Selector,
          status: str | None = "pending") -> list[StoredDeadLetter]:
    condition, params = where_clause(selector, status)
    query = sql.SQL("SELECT " + _COLUMNS + " FROM {}.dead_letters WHERE " + condition + " ORDER BY id"
                    ).format(sql.Identifier(schema))
    return [StoredDeadLetter(*row) for row in conn.execute(query, params).fetchall()]


def status_of(conn: Any, schema: str, letter_id: int) -> str | None:
    query = sql.SQL("SELECT status FROM {}.dead_letters WHERE id = %s").format(sql.Identifier(schema))
    row = conn.execute(query, (letter_id,)).fetchone()
    return row[0] if row else None


def resolve(conn: Any, schema: str, ids: Iterable[int], status: str) -> int:
    """Mark pending dead letters retried or discarded; returns how many changed."""
    id_list = sorted(set(ids))
    if not id_list:
        return 0
    statement = sql.SQL("UPDATE {}.dead_letters SET status = %s, resolved_at = now() "
                        "WHERE id = ANY(%s) AND status = 'pending'").format(sql.Identifier(schema))
    return conn.execute(statement, (status, id_list)).rowcount


def retire_rows(cur: Any, schema: str, mapping: str, row_keys: Iterable[str]) -> int:
    """Mark the pending dead letters of these rows of a mapping retried: a repair (or a retry)
    has just written their current source rows, as `syncd dlq retry` does; returns how many."""
    keys = sorted(set(row_keys))
    return _retire(cur, schema, "mapping = %s AND row_key = ANY(%s)", (mapping, keys)) if keys else 0


def letters_clock(conn: Any) -> datetime:
    """The target's clock, which dates dead letters (`retire_superseded`)."""
    with translated("reading the target's clock"):
        return conn.execute("SELECT statement_timestamp()").fetchone()[0]


def retire_superseded(cur: Any, schema: str, mappings: Iterable[str], since: datetime) -> int:
    """Mark retried the pending dead letters of these mappings older than a whole-table copy that
    began at `since` (`letters_clock`): it wrote every row from its current source row, or
    dead-lettered it again, which dates the row's letter anew; returns how many."""
    names = sorted(set(mappings))
    return _retire(cur, schema, "mapping = ANY(%s) AND created_at < %s", (names, since)) if names else 0


def retire_in_sync(conn: Any, schema: str, source: str, mapping: str, *, before: datetime,
                   keep: Iterable[str]) -> int:
    """Mark retried a mapping's pending dead letters older than `before` except those of the rows
    `keep`: a whole reconcile pass that began then found every other row in sync (the stream, or
    a fix at the source, applied them since); returns how many."""
    with translated("retiring dead letters"):
        return _retire(conn, schema, "source = %s AND mapping = %s AND created_at < %s "
                       "AND NOT (row_key = ANY(%s))", (source, mapping, before, sorted(set(keep))))


def _retire(cur: Any, schema: str, condition: str, params: tuple[Any, ...]) -> int:
    """Mark the pending dead letters `condition` (SQL, constant) picks retried; how many."""
    statement = sql.SQL("UPDATE {}.dead_letters SET status = 'retried', resolved_at = now() "
                        "WHERE status = 'pending' AND ").format(sql.Identifier(schema)) + sql.SQL(condition)
    return cur.execute(statement, params).rowcount


def pending_row_keys(conn: psycopg.Connection, schema: str, source: str, mapping: str) -> set[str]:
    """The row keys (`id=42`) of a mapping's pending dead letters."""
    query = sql.SQL("SELECT DISTINCT row_key FROM {}.dead_letters WHERE status = 'pending' "
                    "AND source = %s AND mapping = %s").format(sql.Identifier(schema))
    with translated("reading dead letters"):
        return {row[0] for row in conn.execute(query, (source, mapping)).fetchall()}
