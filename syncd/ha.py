"""Which process works on a source: a PostgreSQL advisory lock per source, on its own connection.

The target is the coordinator: whoever holds `lock(source)` streams that source (or repairs it
offline); a second `syncd run` waits until the holder dies or loses its connection, at which
point PostgreSQL releases the lock by itself.
"""

from __future__ import annotations

import os
import socket

import psycopg
from psycopg import sql

from syncd.config import TargetConfig
from syncd.sink.postgres import connect

_LOCK_CLASS = 0x5359  # "SY": keeps syncd's locks apart from other advisory lock users


class SourceLock:
    """An advisory lock on (state_schema, source), held for as long as its connection lives."""

    def __init__(self, target: TargetConfig, source: str) -> None:
        self.target = target
        self.source = source
        self._conn: psycopg.Connection | None = None

    def try_acquire(self) -> bool:
        """Take the lock if free; on success record this host/pid as the source's owner."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.target, f"syncd:lock:{self.source}")
        key = f"{self.target.state_schema}:{self.source}"
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                 (_LOCK_CLASS, key)).fetchone()
        if not (row and row[0]):
            return False
        self._record_owner()
        return True

    def _record_owner(self) -> None:
        assert self._conn is not None
        statement = sql.SQL(
            "INSERT INTO {}.source_owners (source, host, pid) VALUES (%s, %s, %s) "
            "ON CONFLICT (source) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, "
            "since = now(), heartbeat_at = now()").format(sql.Identifier(self.target.state_schema))
        self._conn.execute(statement, (self.source, socket.gethostname(), os.getpid()))

    def held(self) -> bool:
        """True while the lock's connection is alive (a lost connection means a lost lock)."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
