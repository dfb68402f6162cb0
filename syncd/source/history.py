"""Asks a source server about its binlog history, for the continuity check of every resume.

`resolve` is what a resume runs before it streams: it reads what the server says about the
checkpoint's place (`read_view`: the server's identity, its binlog files, the head of the
checkpoint's file, whether the offset is an event boundary and, on MariaDB, the GTID position
there), lets syncd/source/continuity.py judge, and when the checkpoint's file is not the same
file, looks for the last applied transaction elsewhere in the server's binlog (`locate`).
All of it happens once per resume, never per event or batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pymysql

from syncd.config import SourceConfig
from syncd.errors import ContinuityLost, SourceUnavailable
from syncd.model import Lineage, Position
from syncd.source import continuity, dialect, retention
from syncd.source.binlog import BinlogReader
from syncd.source.connection import connect
from syncd.source.gtid import GtidState


@dataclass(frozen=True)
class Resolution:
    """Where a proven checkpoint resumes, and what to record with it."""

    kind: str
    """continuity.PROVEN, RECORD, PURGED, or RELOCATED (the same history in another place)."""
    position: Position
    lineage: Lineage
    note: str
    """What was proven, for the log and `syncd status`."""


_WRONG_OFFSET = 1220  # SHOW BINLOG EVENTS: "Wrong offset or I/O error"


def server_identity(conn: pymysql.connections.Connection) -> str:
    """What names the server: MySQL its server_uuid; MariaDB, which has none, its server_id and
    gtid_domain_id (not unique: files and transactions prove the rest)."""
    with conn.cursor() as cur:
        if dialect.of(conn).mariadb:
            cur.execute("SELECT @@server_id, @@gtid_domain_id")
            server_id, domain = cur.fetchone()
            return f"MariaDB server_id {server_id}, gtid_domain_id {domain}"
        cur.execute("SELECT @@server_uuid, @@server_id")
        uuid, server_id = cur.fetchone()
        return f"MySQL server_uuid {uuid}, server_id {server_id}"


def read_view(source: SourceConfig, position: Position) -> continuity.ServerView:
    """What the server says now about `position` (see continuity.ServerView)."""
    conn = connect(source)
    try:
        server = server_identity(conn)
        files = retention.list_binlogs(conn)
        size = next((f.size for f in files if f.name == position.file), None)
        boundary = gtid_at = None
        if size is not None and position.pos <= size:
            boundary = _is_boundary(conn, position, size)
            gtid_at = _gtid_at(conn, position, server) if boundary else None
    except pymysql.err.OperationalError as exc:
        raise SourceUnavailable(source.name, f"reading the binlog history: {exc.args[-1]}") from exc
    finally:
        conn.close()
    head = retention.file_head(source, position.file) if size is not None else None
    return continuity.ServerView(server, tuple(f.name for f in files), size,
                                 head.file_id if head else None, boundary, gtid_at)


def _is_boundary(conn: pymysql.connections.Connection, position: Position, size: int) -> bool:
    """Whether an event starts at the offset (or the file ends there): the server reads one
    event there, and refuses an offset inside an event."""
    if position.pos == size:
        return True
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINLOG EVENTS IN %s FROM %s LIMIT 1", (position.file, position.pos))
            return cur.fetchone() is not None
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] == _WRONG_OFFSET:
            return False
        raise


def _gtid_at(conn: pymysql.connections.Connection, position: Position, server: str) -> str | None:
    """MariaDB's GTID position at the offset (the file's GTID list, then its transactions)."""
    if not server.startswith("MariaDB"):
        return None
    with conn.cursor() as cur:
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (position.file, position.pos))
        row = cur.fetchone()
    return None if row is None or row[0] is None else str(row[0])


def snapshot_record(source: SourceConfig, position: Position) -> tuple[Position, Lineage, str]:
    """What a snapshot's checkpoint records of the history its position belongs to: which file
    it is in, the GTID state there (MariaDB), the server; with no applied transaction yet."""
    view = read_view(source, position)
    found = replace(position, gtid=view.gtid_at or None, file_id=view.file_id)
    where = f"{position.file} ({view.file_id})" if view.file_id else position.file
    return found, Lineage(view.server), f"recorded by a snapshot: {where} on {view.server}"


def locate(source: SourceConfig, tables: set[str], lineage: Lineage,
           applied: GtidState) -> continuity.Relocation | str:
    """Look for the last applied transaction in the server's binlog (continuity.find_resume_point),
    starting with the newest file that starts before it. Returns why not, when it is not there."""
    assert lineage.applied_gtid is not None
    conn = connect(source)
    try:
        files = [f.name for f in retention.list_binlogs(conn)]
    finally:
        conn.close()
    start = _file_before(source, files, lineage.applied_gtid)
    if start is None:
        return (f"its binlog ({files[0] if files else 'none'} on) starts after the last applied "
                f"transaction (GTID {lineage.applied_gtid}): it was purged there, or never written")
    reader = BinlogReader(source, Position(start, 4), tables, blocking=False)
    try:
        return continuity.find_resume_point(reader.events(), lineage, applied)
    finally:
        reader.close()


def _file_before(source: SourceConfig, files: list[str], gtid: str) -> str | None:
    """The newest file whose start comes before transaction `gtid` (None: every file starts
    after it); reads file heads from the newest back, usually one or two."""
    for name in reversed(files):
        head = retention.file_head(source, name)
        if head is not None and not continuity.start_list_covers(head.gtids, gtid):
            return name
    return None


def resolve(source: SourceConfig, position: Position, lineage: Lineage, tables: set[str],
            paused: list[str]) -> Resolution:
    """Prove that `position` (with `lineage`) can be resumed on the server, or find where its
    history continues there. Raises ContinuityLost when neither can be proven. A checkpoint
    whose file was purged from the same server comes back as continuity.PURGED, for the
    retention check to report as ever (PositionLost)."""
    view = read_view(source, position)
    verdict = continuity.judge(position, lineage, view)
    current = replace(lineage, server=view.server)
    if verdict.kind == continuity.SEARCH:
        return _elsewhere(source, position, current, tables, paused=paused, changed=verdict.detail)
    if verdict.kind == continuity.PURGED:
        return Resolution(verdict.kind, position, lineage, verdict.detail)
    file_id = position.file_id or view.file_id
    return Resolution(verdict.kind, replace(position, file_id=file_id), current, verdict.detail)


def _elsewhere(source: SourceConfig, position: Position, lineage: Lineage, tables: set[str], *,
               paused: list[str], changed: str) -> Resolution:
    """The checkpoint's file is not the same file: the history may continue elsewhere."""
    result = continuity.why_not_searched(lineage, paused) or locate(
        source, tables, lineage, GtidState.parse(position.gtid))
    if isinstance(result, str):
        raise ContinuityLost(source.name, continuity.lost_message(source.name, position, changed, result))
    note = (f"{changed}; the last applied transaction (GTID {lineage.applied_gtid}) was found on "
            f"{lineage.server}, ending at {result.applied_end}: resuming at {result.position}")
    return Resolution(continuity.RELOCATED, result.position, lineage, note)
