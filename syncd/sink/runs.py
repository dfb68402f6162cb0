"""`state_schema.reconcile_runs`: one row per mapping per reconcile run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from syncd.model import key_json

STATUSES = ("running", "in_sync", "drift", "repaired", "error")


@dataclass(frozen=True)
class RunRecord:
    """A reconcile run of one mapping, as recorded."""

    id: int
    mapping: str
    source: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    repair: bool
    rows_compared: int
    missing: int
    extra: int
    differ: int
    repaired: int
    explained_by_dead_letters: int
    repaired_keys_sample: list[Any] | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "mapping": self.mapping, "source": self.source,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "status": self.status, "repair": self.repair, "rows_compared": self.rows_compared,
            "missing": self.missing, "extra": self.extra, "differ": self.differ,
            "repaired": self.repaired, "explained_by_dead_letters": self.explained_by_dead_letters,
            "repaired_keys_sample": self.repaired_keys_sample, "error": self.error,
        }


_COLUMNS = ("id, mapping, source, started_at, finished_at, status, repair, rows_compared, missing, "
            "extra, differ, repaired, explained_by_dead_letters, repaired_keys_sample, error")


def start_run(conn: psycopg.Connection, schema: str, mapping: str, source: str, repair: bool) -> int:
    statement = sql.SQL("INSERT INTO {}.reconcile_runs (mapping, source, repair) VALUES (%s, %s, %s) "
                        "RETURNING id").format(sql.Identifier(schema))
    row = conn.execute(statement, (mapping, source, repair)).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(conn: psycopg.Connection, schema: str, run_id: int, *, status: str, rows_compared: int,
               missing: int, extra: int, differ: int, repaired: int, explained: int,
               sample: list[list[Any]], error: str | None) -> None:
    assert status in STATUSES
    statement = sql.SQL(
        "UPDATE {}.reconcile_runs SET finished_at = now(), status = %s, rows_compared = %s, "
        "missing = %s, extra = %s, differ = %s, repaired = %s, explained_by_dead_letters = %s, "
        "repaired_keys_sample = %s, error = %s WHERE id = %s").format(sql.Identifier(schema))
    sample_json = json.dumps([[key_json(v) for v in key] for key in sample[:20]]) if sample else None
    conn.execute(statement, (status, rows_compared, missing, extra, differ, repaired, explained,
                             sample_json, error, run_id))


def last_runs(conn: psycopg.Connection, schema: str) -> list[RunRecord]:
    """The latest run of each mapping (finished or still running), by mapping name."""
    query = sql.SQL("SELECT DISTINCT ON (mapping) {} FROM {}.reconcile_runs "
                    "ORDER BY mapping, started_at DESC, id DESC").format(
        sql.SQL(_COLUMNS), sql.Identifier(schema))
    return [RunRecord(*row) for row in conn.execute(query).fetchall()]


def runs(conn: psycopg.Connection, schema: str, mapping: str | None = None,
         limit: int = 100) -> list[RunRecord]:
    """Recent runs, newest first (of one mapping when given)."""
    where = sql.SQL("WHERE mapping = %s ") if mapping else sql.SQL("")
    query = sql.SQL("SELECT {} FROM {}.reconcile_runs {}ORDER BY id DESC LIMIT %s").format(
        sql.SQL(_COLUMNS), sql.Identifier(schema), where)
    params: tuple[Any, ...] = (mapping, limit) if mapping else (limit,)
    return [RunRecord(*row) for row in conn.execute(query, params).fetchall()]
