"""Measurements: the machine and its noise, a process tree's peak memory and CPU, checkpoints,
decoding, lag.

syncd is driven only through its command line (``python -m syncd``), so that the benchmark
does not depend on the package's internal layout; the one exception, the fast path's raw
decode figure, imports it lazily and is skipped when it cannot be imported.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import RowsEvent, TableMapEvent

from bench.workload import Server, connect

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
DECODER_ENV = "SYNCD_DECODER"
"""syncd's documented switch of binlog decoders (docs/operations.md)."""


@dataclass(frozen=True, order=True)
class Position:
    """A binlog position (file names are zero-padded, so they order as text)."""

    file: str
    pos: int

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else "?"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = next(int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:"))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True,
                           check=False).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "ram_gb": round(total_kb / 1024 / 1024, 1),
        "cpu_model": model,
        "kernel": platform.release(),
        "load_average_at_start": list(os.getloadavg()),
        "versions": {
            "python": sys.version.split()[0],
            "mariadb": _first_line(["mariadbd", "--version"]),
            "postgresql": _first_line(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
            "mysql-replication": importlib.metadata.version("mysql-replication"),
            "PyMySQL": importlib.metadata.version("PyMySQL"),
            "psycopg": importlib.metadata.version("psycopg"),
            "syncd_commit": commit + ("+uncommitted changes" if dirty else ""),
        },
    }


def _cpu_fields() -> list[int]:
    """The machine's CPU time so far, from /proc/stat: user nice system idle iowait irq softirq
    steal ..."""
    return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far."""
    fields = _cpu_fields()
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def calibration_seconds(rounds: int = 3) -> float:
    """The best of `rounds` timings of a fixed single-threaded CPU task (SHA-256 of 512 MiB):
    taken at the start and the end of a run, its drift says how much the machine's speed moved
    (a shared VM's neighbours and CPU steal change it)."""
    block = bytes(range(256)) * 4096
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        digest = hashlib.sha256()
        for _ in range(512):
            digest.update(block)
        best = min(best, time.perf_counter() - began)
    return round(best, 4)


@dataclass
class Noise:
    """What the rest of the machine did during a run: load averages, the calibration task's
    time at both ends, and the share of CPU time the hypervisor took away (steal)."""

    started: list[int] = field(default_factory=_cpu_fields)
    load_at_start: list[float] = field(default_factory=lambda: list(os.getloadavg()))
    calibration_at_start: float = field(default_factory=calibration_seconds)

    def finish(self) -> dict[str, Any]:
        ended = _cpu_fields()
        delta = [b - a for a, b in zip(self.started, ended, strict=False)]
        steal = delta[7] if len(delta) > 7 else 0
        idle = delta[3] + delta[4]
        total = max(1, sum(delta))
        calibration = calibration_seconds()
        return {"load_average_at_start": self.load_at_start, "load_average_at_end": list(os.getloadavg()),
                "calibration_s_at_start": self.calibration_at_start, "calibration_s_at_end": calibration,
                "calibration_drift": round(calibration / self.calibration_at_start, 2),
                "machine_busy_share_over_run": round((total - idle) / total, 2),
                "cpu_steal_share_over_run": round(steal / total, 3)}


def _stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _tree(root: int) -> tuple[set[int], dict[int, int]]:
    """The pids of a process and its descendants, and every process's CPU ticks (with exited
    children's, via cutime/cstime)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(entry)
        if fields is None:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        ticks[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    members = {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                changed = True
    return members, ticks


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and all its descendants, exited ones included."""
    members, ticks = _tree(root)
    return sum(ticks.get(pid, 0) for pid in members) / TICKS


def _peak_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


@dataclass
class ProcessWatch:
    """Samples one process (by pid) every `interval` s: peak RSS (VmHWM of the process plus the
    peaks of its child processes, also reported apart) and CPU time (children included, and the
    process's own apart).

    ``others`` (label -> pid) are process trees whose CPU time over the same span is reported
    too (the database servers), so a figure says where the machine's CPU went; ``label`` names
    the watched process there.
    """

    pid: int
    others: dict[str, int] = field(default_factory=dict)
    label: str = "syncd"
    interval: float = 0.1
    peak_rss_kb: int = 0
    children_peak_kb: dict[int, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    main_cpu_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)
    _machine_start: tuple[int, int] = field(default_factory=_busy_jiffies)
    _others_start: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._others_start = {label: tree_cpu_seconds(pid) for label, pid in self.others.items()}
        self._thread = threading.Thread(target=self._loop, name=f"watch-{self.pid}", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        members, ticks = _tree(self.pid)
        if self.pid not in ticks:
            return  # exited
        self.peak_rss_kb = max(self.peak_rss_kb, _peak_rss_kb(self.pid))
        for child in members - {self.pid}:
            self.children_peak_kb[child] = max(self.children_peak_kb.get(child, 0), _peak_rss_kb(child))
        self.cpu_seconds = sum(ticks.get(pid, 0) for pid in members) / TICKS
        own = _stat(str(self.pid))
        if own is not None:  # utime + stime: without the decoder processes
            self.main_cpu_seconds = (int(own[11]) + int(own[12])) / TICKS

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        """Stops sampling; peak RSS (MB), CPU seconds of syncd and of the others, machine share."""
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        busy0, total0 = self._machine_start
        busy1, total1 = _busy_jiffies()
        wall = time.monotonic() - self.started
        machine_busy = (busy1 - busy0) / TICKS
        others = {label: round(tree_cpu_seconds(pid) - self._others_start[label], 2)
                  for label, pid in self.others.items()}
        children_kb = sum(self.children_peak_kb.values())
        children = {"peak_rss_mb_child_processes": round(children_kb / 1024, 1)} if children_kb else {}
        return {
            # The whole tree: syncd's own peak plus each child's (its decoder processes).
            "peak_rss_mb": round((self.peak_rss_kb + children_kb) / 1024, 1),
            "peak_rss_mb_main_process": round(self.peak_rss_kb / 1024, 1), **children,
            "cpu_seconds": round(self.cpu_seconds, 2),
            "cpu_seconds_main_process": round(self.main_cpu_seconds, 2),
            "cpu_share_of_one_core": round(self.cpu_seconds / wall, 2) if wall else None,
            "machine_busy_share": round((busy1 - busy0) / max(1, total1 - total0), 2),
            "cpu_seconds_by_process": {self.label: round(self.cpu_seconds, 2), **others,
                                       "rest_of_machine": round(machine_busy - self.cpu_seconds
                                                                - sum(others.values()), 2)},
        }


def master_status(server: Server) -> Position:
    conn = connect(server, None)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
    finally:
        conn.close()
    return Position(str(row[0]), int(row[1]))


_POLLERS: dict[str, psycopg.Connection[Any]] = {}


def checkpoints(dsn: str, state_schema: str) -> dict[str, tuple[Position, bool]]:
    """source -> (checkpoint position, snapshot done); one kept connection per DSN (polling
    with a new connection each time would fork a PostgreSQL backend 20 times a second)."""
    conn = _POLLERS.get(dsn)
    if conn is None or conn.closed:
        conn = _POLLERS[dsn] = psycopg.connect(dsn, autocommit=True)
    try:
        rows = conn.execute(f"SELECT source, binlog_file, binlog_pos, snapshot_done"
                            f" FROM {state_schema}.checkpoints").fetchall()
    except psycopg.errors.UndefinedTable:
        return {}
    return {source: (Position(file, int(pos)), bool(done)) for source, file, pos, done in rows}


def close_pollers() -> None:
    for conn in _POLLERS.values():
        conn.close()
    _POLLERS.clear()


def wait_for_checkpoints(dsn: str, state_schema: str, targets: dict[str, Position], *, timeout: float,
                         process: subprocess.Popen[bytes] | None = None, poll: float = 0.05) -> float:
    """Seconds until every source's checkpoint is at or past its target; raises on timeout."""
    started = time.monotonic()
    while True:
        seen = checkpoints(dsn, state_schema)
        if all(source in seen and seen[source][0] >= target for source, target in targets.items()):
            return time.monotonic() - started
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"syncd exited with {process.returncode} before reaching {targets}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"checkpoints {seen} did not reach {targets} within {timeout:.0f} s")
        time.sleep(poll)


def wait_for_snapshot(dsn: str, state_schema: str, sources: list[str], *, timeout: float,
                      process: subprocess.Popen[bytes] | None = None, poll: float = 0.1) -> float:
    """Seconds until every source has a checkpoint with its initial load done."""
    started = time.monotonic()
    while True:
        seen = checkpoints(dsn, state_schema)
        if all(source in seen and seen[source][1] for source in sources):
            return time.monotonic() - started
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"syncd exited with {process.returncode} during the initial load")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"initial load not done within {timeout:.0f} s: {seen}")
        time.sleep(poll)


@dataclass
class Decoded:
    rows: int
    events: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def decode(server: Server, database: str, start: Position, end: Position, *, fast: bool) -> Decoded:
    """Iterates the binlog from `start` to `end` reading every rows event's rows.

    The library's reader, configured as syncd configures it (non-blocking here, so it ends at
    the end of the binlog); ``fast`` uses syncd's fast path instead (imported here, the only
    use of syncd's insides: ImportError when the package moved it).
    """
    if fast:
        from syncd.source import fastpath  # noqa: PLC0415 - optional, see the module docstring
        reader_class: Any = fastpath.FastBinLogStreamReader
    else:
        reader_class = BinLogStreamReader
    stream = reader_class(
        connection_settings={"host": server.host, "port": server.port, "user": "root",
                             "password": server.password},
        server_id=90 + int(fast), blocking=False, resume_stream=True, log_file=start.file, log_pos=start.pos,
        only_schemas=[database], filter_non_implemented_events=False, ignored_events=[TableMapEvent],
        freeze_schema=False,
        ignore_decode_errors=False, enable_logging=False,
    )
    rows = events = 0
    began = time.perf_counter()
    try:
        for event in stream:
            events += 1
            if isinstance(event, RowsEvent):
                rows += len(event.rows)
            if Position(stream.log_file, stream.log_pos) >= end:
                break
    finally:
        seconds = time.perf_counter() - began
        stream.close()
    return Decoded(rows, events, seconds)


LAG_QUERY = """
SELECT count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
       max(lag)
FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - source_written_at) AS lag
      FROM bench_lag) changes
"""


def lag_stats(dsn: str) -> dict[str, Any]:
    """p50/p99/max of (target commit time - source change time) over the logged changes, in ms."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        count, p50, p99, worst = conn.execute(LAG_QUERY).fetchone()
    scale = 1000.0
    return {"samples": int(count),
            "p50_ms": None if p50 is None else round(p50 * scale, 1),
            "p99_ms": None if p99 is None else round(p99 * scale, 1),
            "max_ms": None if worst is None else round(float(worst) * scale, 1)}
