"""Which process works on a source: a PostgreSQL advisory lock per source, on its own connection.

The target is the coordinator: whoever holds `lock(source)` streams that source (or repairs it
offline); a second `syncd run` waits until the holder dies or loses its connection, at which
point PostgreSQL releases the lock by itself.

Three details make the hand-over safe and quick:

* **Dead holders are noticed fast.** The lock's connection uses TCP keepalives on both ends
  (client: libpq ``keepalives*``/``tcp_user_timeout``; server: ``SET tcp_keepalives_*``), so
  PostgreSQL drops the session of a crashed host, and with it the lock, within about ten
  seconds instead of the kernel's default two hours. A killed process is noticed at once.
* **The holder proves it still holds the lock**: `heartbeat` looks the lock up in ``pg_locks``
  on the lock's own connection and refreshes ``source_owners.heartbeat_at``; the daemon calls
  it every 2 s and stops the source's pipeline as soon as it fails.
* **Fencing.** A new holder first terminates every backend still writing for the source
  (``application_name = 'syncd:<source>'``, the pipeline's sink connection) and waits until they
  are gone. A former holder that lost its lock but has not noticed yet cannot commit anything
  afterwards: whatever it committed before is in the checkpoint the new holder reads next.

The lock's holder also keeps ``source_health`` (one row per source, created by
`create_health_table`): its state as the holder sees it (streaming, retrying, failed,
stopped), the last error, and the last binlog retention headroom. `syncd status` reads it,
whether a daemon runs or not. Only the holder writes it, on the lock's own connection.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from syncd.config import TargetConfig
from syncd.errors import SinkUnavailable
from syncd.model import Headroom
from syncd.observability import scrub
from syncd.sink.connection import connect, first_line

_LOCK_CLASS = 0x5359  # "SY": keeps syncd's locks apart from other advisory lock users
_SESSION_SETTINGS = (
    # The server drops a silent client's session (and so the lock) after ~4 + 2*3 s.
    "SET tcp_keepalives_idle = 4",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 10000",
    # A heartbeat must never wait long behind someone else's lock on source_owners.
    "SET statement_timeout = 10000",
    "SET lock_timeout = 5000",
)
_FENCE_WAIT_S = 10.0

_HEALTH_DDL = """
CREATE TABLE IF NOT EXISTS {}.source_health (
    source           text PRIMARY KEY,
    state            text NOT NULL,
    error            text,
    headroom_kind    text,
    headroom_seconds double precision,
    headroom_detail  text,
    headroom_at      timestamptz,
    host             text NOT NULL,
    pid              integer NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
)
"""


def create_health_table(conn: psycopg.Connection, schema: str) -> None:
    """Create ``<schema>.source_health`` if missing (run after create_state_schema)."""
    conn.execute(sql.SQL(_HEALTH_DDL).format(sql.Identifier(schema)))


@dataclass(frozen=True)
class SourceHealth:
    """A row of ``source_health``: the source as its lock holder last saw it."""

    source: str
    state: str
    error: str | None
    headroom_kind: str | None
    headroom_seconds: float | None
    headroom_detail: str | None
    headroom_at: datetime | None
    host: str
    pid: int
    updated_at: datetime


def read_health(conn: psycopg.Connection, schema: str) -> dict[str, SourceHealth]:
    """Every source_health row by source; empty if the table does not exist (yet)."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.source_health",)).fetchone()
    if not exists or exists[0] is None:
        return {}
    query = sql.SQL("SELECT source, state, error, headroom_kind, headroom_seconds, headroom_detail, "
                    "headroom_at, host, pid, updated_at FROM {}.source_health").format(
                        sql.Identifier(schema))
    return {row[0]: SourceHealth(*row) for row in conn.execute(query).fetchall()}


def read_owners(conn: psycopg.Connection, schema: str) -> dict[str, Owner]:
    query = sql.SQL("SELECT source, host, pid, since, heartbeat_at FROM {}.source_owners").format(
        sql.Identifier(schema))
    return {row[0]: Owner(*row) for row in conn.execute(query).fetchall()}


def writer_application_name(source: str) -> str:
    """The application_name of the connection that applies a source's changes (the sink)."""
    return f"syncd:{source}"


@dataclass(frozen=True)
class Owner:
    """A row of ``source_owners``: who holds (or last held) a source."""

    source: str
    host: str
    pid: int
    since: datetime
    heartbeat_at: datetime

    def describe(self) -> str:
        return f"{self.host} pid {self.pid}"


def lock_key(schema: str, source: str) -> str:
    """The text a source's advisory lock is keyed by (hashed by `hashtext`), with `_LOCK_CLASS`."""
    return f"{schema}:{source}"


def daemon_streams(conn: psycopg.Connection, schema: str, source: str) -> bool:
    """Whether some process holds the source's lock (`SourceLock`), without taking it."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s::int4::oid AND objid = hashtext(%s)::oid AND objsubid = 2)",
        (_LOCK_CLASS, lock_key(schema, source))).fetchone()
    return bool(row and row[0])


class SourceLock:
    """An advisory lock on (state_schema, source), held for as long as its connection lives.

    Not meant to be shared between threads except `held`/`heartbeat` from one watcher thread
    while the owning thread does nothing else with it (psycopg serialises them anyway).
    """

    def __init__(self, target: TargetConfig, source: str) -> None:
        self.target = target
        self.source = source
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.fenced = 0
        """Stale writer connections terminated by the last successful `try_acquire`."""
        self._conn: psycopg.Connection | None = None
        self._key = lock_key(target.state_schema, source)
        self._schema = sql.Identifier(target.state_schema)

    # -- connection -----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        conn = connect(self.target, f"syncd:lock:{self.source}", keepalives=1, keepalives_idle=4,
                       keepalives_interval=2, keepalives_count=3, tcp_user_timeout=10000)
        for statement in _SESSION_SETTINGS:
            try:
                conn.execute(statement)
            except psycopg.errors.UndefinedObject:  # an older server without the setting
                continue
        return conn

    @property
    def connected(self) -> bool:
        """Whether the lock's connection is still open (a lock lost with it: the target is gone,
        not necessarily taken by another process)."""
        return self._conn is not None and not self._conn.closed

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- lock -----------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take the lock if free; then record this host/pid as the owner and fence off any
        writer left by the previous owner. Raises SinkUnavailable if the target is down."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                     (_LOCK_CLASS, self._key)).fetchone()
            if not (row and row[0]):
                return False
            self._record_owner()
            self.fenced = self._fence()
        except psycopg.Error as exc:
            self._close()
            raise SinkUnavailable(f"source lock for {self.source}: {first_line(exc)}") from exc
        return True

    def _record_owner(self) -> None:
        assert self._conn is not None
        statement = sql.SQL(
            "INSERT INTO {}.source_owners (source, host, pid) VALUES (%s, %s, %s) "
            "ON CONFLICT (source) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, "
            "since = now(), heartbeat_at = now()").format(self._schema)
        self._conn.execute(statement, (self.source, self.host, self.pid))

    def _fence(self) -> int:
        """Terminate the previous owner's writer connections; wait until they are gone."""
        assert self._conn is not None
        others = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                  "AND usename = current_user AND application_name = %s AND pid <> pg_backend_pid()")
        name = writer_application_name(self.source)
        pids = [r[0] for r in self._conn.execute(others, (name,)).fetchall()]
        if not pids:
            return 0
        for pid in pids:
            self._conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + _FENCE_WAIT_S
        while time.monotonic() < deadline:
            left = self._conn.execute(f"{others} AND pid = ANY(%s)", (name, pids)).fetchall()
            if not left:
                break
            time.sleep(0.1)
        return len(pids)

    def held(self) -> bool:
        """True while this session really holds the lock (a lost connection means a lost lock)."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND classid = %s::oid AND objid = hashtext(%s)::oid "
                "AND objsubid = 2 AND granted)", (_LOCK_CLASS, self._key)).fetchone()
        except psycopg.Error:
            self._close()
            return False
        return bool(row and row[0])

    def heartbeat(self) -> bool:
        """`held`, and if so refresh ``source_owners.heartbeat_at`` (re-recording the owner row
        if someone removed it). A failed refresh alone does not count as a lost lock."""
        if not self.held():
            return False
        assert self._conn is not None
        statement = sql.SQL("UPDATE {}.source_owners SET heartbeat_at = now() WHERE source = %s "
                            "AND host = %s AND pid = %s").format(self._schema)
        try:
            if self._conn.execute(statement, (self.source, self.host, self.pid)).rowcount == 0:
                self._record_owner()
        except psycopg.Error:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._close()
                return False
        return True

    def holder(self) -> Owner | None:
        """Who the owner row names (the current holder while someone holds the lock)."""
        if self._conn is None or self._conn.closed:
            return None
        query = sql.SQL("SELECT source, host, pid, since, heartbeat_at FROM {}.source_owners "
                        "WHERE source = %s").format(self._schema)
        try:
            row = self._conn.execute(query, (self.source,)).fetchone()
        except psycopg.Error:
            return None
        return Owner(*row) if row else None

    def record_health(self, state: str, error: str | None) -> None:
        """Record the source's state and last error (scrubbed); only while holding the lock.
        Failures are ignored: health reporting must never stop replication."""
        statement = sql.SQL(
            "INSERT INTO {}.source_health (source, state, error, host, pid) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (source) DO UPDATE SET state = EXCLUDED.state, error = EXCLUDED.error, "
            "host = EXCLUDED.host, pid = EXCLUDED.pid, updated_at = now()").format(self._schema)
        self._write(statement, (self.source, state, scrub(error) if error else None, self.host, self.pid))

    def record_headroom(self, headroom: Headroom) -> None:
        """Record the last computed binlog retention headroom; only while holding the lock."""
        statement = sql.SQL(
            "INSERT INTO {}.source_health (source, state, headroom_kind, headroom_seconds, "
            "headroom_detail, headroom_at, host, pid) VALUES (%s, 'starting', %s, %s, %s, now(), %s, %s) "
            "ON CONFLICT (source) DO UPDATE SET headroom_kind = EXCLUDED.headroom_kind, "
            "headroom_seconds = EXCLUDED.headroom_seconds, headroom_detail = EXCLUDED.headroom_detail, "
            "headroom_at = now(), host = EXCLUDED.host, pid = EXCLUDED.pid").format(self._schema)
        self._write(statement, (self.source, headroom.kind, headroom.seconds, scrub(headroom.detail),
                                self.host, self.pid))

    def _write(self, statement: sql.Composed, params: tuple) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            return
        try:
            conn.execute(statement, params)
        except psycopg.Error:
            return

    def release(self) -> None:
        """Give the lock up (closing its connection) and remove this process's owner row."""
        conn = self._conn
        if conn is not None and not conn.closed:
            statement = sql.SQL("DELETE FROM {}.source_owners WHERE source = %s AND host = %s "
                                "AND pid = %s").format(self._schema)
            try:
                if self.held():
                    conn.execute(statement, (self.source, self.host, self.pid))
            except psycopg.Error:
                pass
        self._close()
