"""Binlog safety: is the binlog file the checkpoint needs still on the server, and for how long?

The source server deletes old binlog files on its own: by age (MySQL ``binlog_expire_logs_seconds``,
MariaDB/MySQL ``expire_logs_days``) and, on MariaDB 11.4+, by total size
(``max_binlog_total_size``). Once the file a checkpoint points into is gone, that checkpoint
can never be resumed and only a new snapshot helps. *Headroom* is how long until that happens.

The computation is pure (`expiry_from_variables`, `retention_headroom`, `format_duration`);
`inspect` does the I/O. How old is a binlog file? The server deletes a file by its last write,
which is when the server moved on to the next file, so the age of file N is the age of file N+1,
whose creation time is the header timestamp of its FORMAT_DESCRIPTION event. `file_head`
reads it (with the server_id in that header and the GTID list the file starts with, which the
continuity check of every resume needs: syncd/source/history.py) with a short non-blocking
binlog dump as server_id 0, exactly like ``mysqlbinlog --read-from-remote-server``: a dump
with server_id 0 never disconnects a real replica (which a borrowed server_id would) and the
server ends it at the end of the file instead of waiting. A file's creation time never changes,
so callers cache it (`StartTimes`); a name can stand for another file after `RESET MASTER`, so
the runner forgets the cache when continuity finds that.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pymysql

from syncd.config import SourceConfig
from syncd.errors import SourceUnavailable
from syncd.model import BinlogFileId, Headroom
from syncd.source import dialect, mysql_events
from syncd.source.connection import SourceConnection, connect_error

EXPIRY_VARIABLES = (
    "binlog_expire_logs_seconds",
    "expire_logs_days",
    "binlog_expire_logs_auto_purge",
    "max_binlog_total_size",
    "binlog_space_limit",
)

# -- pure computation ---------------------------------------------------------------------


@dataclass(frozen=True)
class BinlogFile:
    """One row of SHOW BINARY LOGS."""

    name: str
    size: int


@dataclass(frozen=True)
class Expiry:
    """When the server deletes binlog files by itself."""

    seconds: float | None
    """Age after which a file is deleted; None: never by age."""
    max_total_bytes: int | None = None
    """Total size above which the oldest files are deleted; None: no size limit."""

    @property
    def unlimited(self) -> bool:
        return self.seconds is None and self.max_total_bytes is None


def _number(variables: Mapping[str, str], name: str) -> float:
    try:
        value = float(variables.get(name, "") or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def expiry_from_variables(variables: Mapping[str, str]) -> Expiry:
    """The server's purge rules from its global variables (names lower case).

    ``binlog_expire_logs_seconds`` wins over ``expire_logs_days`` when both are set (MySQL 8.0
    and MariaDB 10.6+ keep them in step anyway); 0 means "never". MySQL 8.0.29+ can switch
    automatic purging off altogether (``binlog_expire_logs_auto_purge=OFF``).
    """
    if variables.get("binlog_expire_logs_auto_purge", "ON").upper() in {"OFF", "0"}:
        return Expiry(None, None)
    seconds = _number(variables, "binlog_expire_logs_seconds")
    if not seconds:
        seconds = _number(variables, "expire_logs_days") * 86400
    size = _number(variables, "max_binlog_total_size") or _number(variables, "binlog_space_limit")
    return Expiry(seconds or None, int(size) or None)


def binlog_number(name: str) -> int | None:
    """The sequence number of ``mysql-bin.000123`` (123), or None if it has none."""
    _, _, suffix = name.rpartition(".")
    return int(suffix) if suffix.isdigit() else None


def missing_file_message(files: Sequence[BinlogFile], needed: str) -> str:
    """Why ``needed`` is not among ``files``, for the error a sysadmin reads."""
    if not files:
        return f"the server lists no binlog files at all (SHOW BINARY LOGS is empty), so {needed} is gone"
    oldest, newest = files[0].name, files[-1].name
    wanted, last = binlog_number(needed), binlog_number(newest)
    if wanted is not None and last is not None and wanted > last:
        return (f"binlog file {needed} is newer than the newest file on the server ({newest}): "
                "the server's binlogs were reset (RESET MASTER / RESET BINARY LOGS AND GTIDS) or "
                "this is a different server than the one the checkpoint came from")
    return (f"binlog file {needed} is no longer on the server (oldest kept: {oldest}); "
            "it was purged before syncd had read past it")


def retention_headroom(
    files: Sequence[BinlogFile],
    needed: str,
    expiry: Expiry,
    started: Mapping[str, datetime],
    now: datetime,
) -> Headroom:
    """Time left before the server may delete ``needed``.

    files: SHOW BINARY LOGS, oldest first. started: creation times of some files (the one
    after ``needed`` matters for the age rule; with a size limit, the creation time of
    ``needed`` or any later file gives the write rate).
    """
    names = [f.name for f in files]
    if needed not in names:
        return Headroom(needed, "purged", 0.0, detail=missing_file_message(files, needed))
    if expiry.unlimited:
        return Headroom(needed, "unlimited",
                        detail="the server never deletes binlogs by itself (expiry 0, no size limit)")
    index = names.index(needed)
    later = files[index + 1:]
    candidates: list[tuple[float, str, bool]] = []
    unknown: list[str] = []
    if expiry.seconds is not None:
        by_age = _age_headroom(needed, later, expiry.seconds, started, now)
        if by_age is None:
            unknown.append(f"creation time of {later[0].name} unknown")
        else:
            candidates.append((by_age, "age", not later))
    if expiry.max_total_bytes is not None:
        by_size = _size_headroom(files[index:], expiry.max_total_bytes, started, now)
        if by_size is not None:
            candidates.append((by_size, "size", not later and by_size > 0))
        elif expiry.seconds is None:
            unknown.append("binlog write rate unknown")
    if not candidates:
        return Headroom(needed, "unknown", detail="; ".join(unknown) or "nothing to go by")
    seconds, rule, at_least = min(candidates)
    if math.isinf(seconds):
        return Headroom(needed, "unlimited",
                        detail="no binlog is being written: the size limit is never reached")
    return Headroom(needed, "limited", seconds, rule, at_least,
                    _detail(needed, seconds, rule, at_least, expiry))


def _age_headroom(needed: str, later: Sequence[BinlogFile], expiry_seconds: float,
                  started: Mapping[str, datetime], now: datetime) -> float | None:
    if not later:
        # Still the file being written: its age only starts counting once it is closed.
        return expiry_seconds
    closed_at = started.get(later[0].name)
    if closed_at is None:
        return None
    return (closed_at + timedelta(seconds=expiry_seconds) - now).total_seconds()


def _size_headroom(kept: Sequence[BinlogFile], limit: int, started: Mapping[str, datetime],
                   now: datetime) -> float | None:
    """Files are deleted oldest first once the total exceeds ``limit``: ``needed`` (kept[0])
    goes when what is written from it on exceeds the limit. Time = bytes left / write rate."""
    left = limit - sum(f.size for f in kept)
    if left <= 0:
        return 0.0
    for position, file in enumerate(kept):
        since = started.get(file.name)
        if since is None:
            continue
        elapsed = (now - since).total_seconds()
        written = sum(f.size for f in kept[position:])
        if elapsed <= 0:
            return None
        rate = written / elapsed
        return math.inf if rate <= 0 else left / rate
    return None


def _detail(needed: str, seconds: float, rule: str, at_least: bool, expiry: Expiry) -> str:
    if rule == "age":
        rule_text = f"files expire {format_duration(expiry.seconds)} after they are closed"
    else:
        rule_text = f"the server keeps at most {expiry.max_total_bytes} bytes of binlogs"
    if seconds <= 0:
        return f"{needed} is overdue for deletion ({rule_text}): the next purge removes it"
    if at_least:
        return (f"{needed} is still being written and cannot be deleted within "
                f"{format_duration(seconds)} ({rule_text})")
    return f"{needed} may be deleted in {format_duration(seconds)} ({rule_text})"


def format_duration(seconds: float | None) -> str:
    """``93784`` -> ``1d 2h``, ``3700`` -> ``1h 1m``, ``42`` -> ``42s``; None -> ``unlimited``."""
    if seconds is None or math.isinf(seconds):
        return "unlimited"
    if math.isnan(seconds):
        return "unknown"
    sign = "-" if seconds < 0 else ""
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d {hours}h" if hours else f"{days}d"
    elif hours:
        text = f"{hours}h {minutes}m" if minutes else f"{hours}h"
    elif minutes:
        text = f"{minutes}m {secs}s" if secs else f"{minutes}m"
    else:
        text = f"{secs}s"
    return sign + text


def file_to_probe(files: Sequence[BinlogFile], needed: str, expiry: Expiry) -> str | None:
    """Whose creation time `retention_headroom` needs: the file after ``needed`` (its close
    time), or ``needed`` itself when it is the newest and a size limit needs a write rate."""
    names = [f.name for f in files]
    if needed not in names or expiry.unlimited:
        return None
    index = names.index(needed)
    if index + 1 < len(names):
        return names[index + 1]
    return needed if expiry.max_total_bytes is not None else None


# -- I/O ----------------------------------------------------------------------------------

_COM_BINLOG_DUMP = 0x12
_BINLOG_DUMP_NON_BLOCK = 0x01
_FORMAT_DESCRIPTION_EVENT = 15
_BEFORE_GTID_LIST = {4, _FORMAT_DESCRIPTION_EVENT}  # ROTATE (the dump's fake one), FORMAT_DESCRIPTION
_EVENT_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, size, next pos, flags
_IO_TIMEOUT = 30


def _connect(source: SourceConfig) -> pymysql.connections.Connection:
    kwargs = source.connection_kwargs()
    kwargs.update(autocommit=True, read_timeout=_IO_TIMEOUT, write_timeout=_IO_TIMEOUT)
    try:
        return SourceConnection(**kwargs)
    except pymysql.err.OperationalError as exc:
        raise connect_error(source, exc) from exc


def list_binlogs(conn: pymysql.connections.Connection) -> list[BinlogFile]:
    """SHOW BINARY LOGS, oldest first (needs REPLICATION CLIENT, MariaDB: BINLOG MONITOR)."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [BinlogFile(str(row[0]), int(row[1])) for row in cur.fetchall()]


def expiry_variables(conn: pymysql.connections.Connection) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})".format(
            ", ".join(["%s"] * len(EXPIRY_VARIABLES))), EXPIRY_VARIABLES)
        return {str(name).lower(): str(value) for name, value in cur.fetchall()}


@dataclass(frozen=True)
class FileHead:
    """What the first events of a binlog file say about it."""

    file_id: BinlogFileId
    """Its creation time and the server_id that created it (FORMAT_DESCRIPTION header)."""
    gtids: str | None
    """The GTID state the file starts with (MariaDB GTID_LIST, MySQL PREVIOUS_GTIDS), as text."""

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.file_id.created, UTC)


def file_head(source: SourceConfig, name: str) -> FileHead | None:
    """The head of binlog file ``name`` (None if the server no longer has it).

    A non-blocking dump from offset 4 as server_id 0 (see the module docstring) sends a
    fake ROTATE event, then the file's FORMAT_DESCRIPTION event, whose header carries the
    time the file was created and the server's id, then its GTID list. Needs REPLICATION SLAVE.
    """
    conn = _connect(source)
    try:
        with conn.cursor() as cur:
            for statement in dialect.of(conn).dump_setup:
                cur.execute(statement)
        payload = struct.pack("<IHI", 4, _BINLOG_DUMP_NON_BLOCK, 0) + name.encode()
        conn._execute_command(_COM_BINLOG_DUMP, payload)
        return _read_head(conn)
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] == 1236:  # the file is gone (or never existed)
            return None
        raise SourceUnavailable(source.name, f"reading the start of {name}: {exc.args[-1]}") from exc
    finally:
        conn.close()


def _read_head(conn: pymysql.connections.Connection) -> FileHead | None:
    file_id = None
    for _ in range(8):
        data = conn._read_packet().get_all_data()
        if not data or data[0] != 0 or len(data) < 1 + _EVENT_HEADER.size:
            break  # end of file
        timestamp, event_type, server_id, *_ = _EVENT_HEADER.unpack_from(data, 1)
        body = data[1 + _EVENT_HEADER.size:]
        if event_type == _FORMAT_DESCRIPTION_EVENT and timestamp:
            file_id = BinlogFileId(timestamp, server_id)
        elif file_id is not None and event_type in _GTID_LISTS:
            return FileHead(file_id, _GTID_LISTS[event_type](body))
        elif file_id is not None and event_type not in _BEFORE_GTID_LIST:
            break
    return FileHead(file_id, None) if file_id is not None else None


def mariadb_gtid_list(body: bytes) -> str:
    """A MariaDB GTID_LIST event body as text (``0-1-5,2-1-1``): a count (low 28 bits), then
    domain, server_id (4 bytes each) and sequence number (8 bytes) per entry."""
    (count,) = struct.unpack_from("<I", body)
    entries = (struct.unpack_from("<IIQ", body, 4 + 16 * i) for i in range(count & 0x0FFFFFFF))
    return ",".join(f"{domain}-{server}-{seq}" for domain, server, seq in entries)


def file_started_at(source: SourceConfig, name: str) -> datetime | None:
    """Creation time of binlog file ``name`` (None if the server no longer has it)."""
    head = file_head(source, name)
    return head.created if head is not None else None


_GTID_LISTS: dict[int, Callable[[bytes], str]] = {163: mariadb_gtid_list, 35: mysql_events.gtid_set}
"""The events that carry the GTID state a file starts with: MariaDB GTID_LIST, MySQL PREVIOUS_GTIDS."""

StartTimes = dict[str, datetime]
"""Creation times already read, by file name (they never change): pass the same dict again."""


def inspect(source: SourceConfig, needed: str, cache: StartTimes | None = None,
            now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Headroom:
    """Ask the server how long ``needed`` will stay; raises SourceUnavailable if it cannot."""
    conn = _connect(source)
    try:
        files = list_binlogs(conn)
        expiry = expiry_from_variables(expiry_variables(conn))
    except pymysql.err.OperationalError as exc:
        raise SourceUnavailable(source.name, f"reading the binlog list: {exc.args[-1]}") from exc
    finally:
        conn.close()
    cache = {} if cache is None else cache
    probe = file_to_probe(files, needed, expiry)
    if probe is not None and probe not in cache:
        started = file_started_at(source, probe)
        if started is not None:
            cache[probe] = started
    for name in [n for n in cache if n not in {f.name for f in files}]:
        del cache[name]  # purged meanwhile: forget it
    return retention_headroom(files, needed, expiry, cache, now())
