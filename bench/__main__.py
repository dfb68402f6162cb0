"""`python -m bench` (what `make bench` runs): syncd's throughput, lag, snapshot and reconcile.

Starts two MariaDB servers (sources "east" and "west") and one PostgreSQL server in a
temporary directory, and measures, each figure against its baseline in the same run:

1. raw decode: the library's BinLogStreamReader alone over the backlog's binlog (rows/s;
   non-blocking, from the backlog's start, every rows event's `.rows` read), and the fast
   path over the same binlog;
2. drain: `syncd run` applying the backlog (>= 300,000 row changes on two sources, mapping
   included) from its start until both checkpoints reach the end position; the same backlog
   again with the library's decoder (SYNCD_DECODER=library), and with one syncd process per
   source, each into an identical target of its own;
3. lag at a fixed offered rate (1,000 and 5,000 changes/s for 60 s): p50/p99/max of
   source change -> visible in the target. The source time is the row's ``written_at``, set
   by the writing statement to NOW(6) (UTC; the statement starts at most a fraction of a
   millisecond before its commit, so this errs towards more lag). Visibility is the commit
   timestamp (track_commit_timestamp) of the target transaction that wrote the row: a
   trigger logs every inserted or updated target row's ``source_written_at`` into
   ``bench_lag``, and that log row's ``pg_xact_commit_timestamp(xmin)`` is the commit time.
   Deletes are applied but not sampled (their row image keeps an older ``written_at``);
4. snapshot of a 1,000,000-row table by `syncd snapshot`, and the initial load of `syncd run`
   on a fresh target;
5. `syncd reconcile` of that table in sync and with 0.1% drift: rows compared/s;
6. peak RSS (VmHWM) and CPU seconds of the syncd process during each, with the CPU seconds of
   PostgreSQL, both MariaDB servers and the rest of the machine over the same span (the
   benchmark shares the machine; "rest_of_machine" shows how much).

Prints a table and writes bench/results/<date>.json (``--quick``: small sizes, for a smoke
run of every phase in about a minute, written to <date>-quick.json). Servers and files are
removed at the end (``--keep`` keeps them). ``--profile DIR`` records the drains with py-spy
(GIL-holding stacks per thread) and the CPU seconds of each syncd thread.

For experiments, ``BENCH_SYNCD=/path/to/script.py`` runs that script instead of
``python -m syncd`` (e.g. one that patches a module, then calls ``syncd.cli.main()``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bench import measure, workload
from bench.workload import DATABASE, SOURCES, Server
from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.model import Position
from syncd.source import fastpath

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SYNCD_USER = "syncd"
STATE = "syncd"
TARGETS = {"drain_changes_per_s": 15_000, "drain_ratio_to_raw_decode": 4.0, "p99_lag_ms_at_1000": 250,
           "snapshot_rows_per_s": 80_000, "reconcile_rows_per_s_in_sync": 200_000, "peak_rss_mb": 300}
PG_SETTINGS = {"track_commit_timestamp": "on", "synchronous_commit": "on", "shared_buffers": "256MB",
               "max_wal_size": "4GB", "checkpoint_timeout": "15min"}
MARIADB_SETTINGS = {"innodb_buffer_pool_size": "512M", "max_binlog_size": "1G"}


@dataclass(frozen=True)
class Sizes:
    seed_customers: int
    seed_orders: int
    backlog_changes: int  # over both sources
    big_share: float  # of the backlog, in large multi-row transactions
    big_count: int  # large transactions per source
    lag_rates: tuple[int, ...]
    lag_seconds: float
    ledger_rows: int
    drift_share: float


FULL = Sizes(2000, 5000, 330_000, 0.2, 4, (1000, 5000), 60.0, 1_000_000, 0.001)
QUICK = Sizes(300, 600, 12_000, 0.2, 4, (1000,), 5.0, 30_000, 0.01)


class Bench:
    def __init__(self, sizes: Sizes, tmp: Path, stack: ExitStack, skip: set[str],
                 profile: Path | None) -> None:
        self.sizes = sizes
        self.tmp = tmp
        self.stack = stack
        self.skip = skip
        self.profile = profile
        self.password = secrets.token_urlsafe(18)
        self.results: dict[str, Any] = {}
        self.servers: dict[str, MariaDBServer] = {}
        self.pg = PostgresServer(tmp / "postgres", settings=PG_SETTINGS)
        self.snapshot_config: Path | None = None
        self._server_ids = 4100

    def _next_server_id(self) -> int:
        """A replica server_id no other config of this run uses."""
        self._server_ids += 1
        return self._server_ids

    # -- servers, schemas, configs --------------------------------------------------------------

    def start(self) -> None:
        for number, name in enumerate(SOURCES, start=1):
            server = MariaDBServer(self.tmp / name, server_id=number, settings=MARIADB_SETTINGS)
            self.stack.callback(server.stop)
            server.start()
            self.servers[name] = server
        self.stack.callback(self.pg.stop)
        self.pg.start()
        self.pg.create_user(SYNCD_USER, self.password)
        for name, server in self.servers.items():
            server.create_user(SYNCD_USER, self.password)
            conn = workload.connect(self.server(name), None)
            workload.create_source(conn)
            workload.seed(conn, self.sizes.seed_customers, self.sizes.seed_orders, seed_value=len(name))
            conn.close()

    def server(self, name: str) -> Server:
        s = self.servers[name]
        return Server(s.host, s.port, s.root_password)

    def target(self, database: str) -> str:
        """Creates target database `database` (owned by syncd) with the bench tables; its DSN."""
        self.pg.create_database(database, owner=SYNCD_USER)
        dsn = self.pg.dsn(database, SYNCD_USER, self.password)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in workload.TARGET_SQL:
                conn.execute(statement)
        return dsn

    def superuser_dsn(self, database: str) -> str:
        return self.pg.dsn(database)

    def config(self, name: str, database: str, sources: tuple[str, ...], mappings: dict[str, str]) -> Path:
        directory = self.tmp / f"config-{name}"
        (directory / "mappings").mkdir(parents=True, exist_ok=True)
        for file_name, text in mappings.items():
            (directory / "mappings" / file_name).write_text(text, encoding="utf-8")
        config = {
            "target": {"dsn": self.pg.dsn(database, SYNCD_USER), "password_env": "PGPASSWORD",
                       "schema": "public", "state_schema": STATE},
            "sources": {source: {"host": self.servers[source].host, "port": self.servers[source].port,
                                 "user": SYNCD_USER, "password_env": "SOURCE_DB_PASSWORD",
                                 "database": DATABASE, "server_id": self._next_server_id(),
                                 "timezone": "UTC", "heartbeat": 1}
                        for source in sources},
            "mappings": ["mappings/"],
            "log": {"level": "info", "format": "json"},
        }
        path = directory / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    def env(self, decoder: str = "fast") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"NOTIFY_SOCKET", "SYNCD_CONFIG"}}
        env.update(PGPASSWORD=self.password, SOURCE_DB_PASSWORD=self.password, PYTHONUNBUFFERED="1")
        env[fastpath.DECODER_ENV] = decoder
        return env

    def syncd(self, command: str, config: Path, log: str, decoder: str = "fast",
              extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], measure.ProcessWatch]:
        out = (self.tmp / log).open("ab")
        self.stack.callback(out.close)
        program = [sys.executable, os.environ["BENCH_SYNCD"]] if os.environ.get("BENCH_SYNCD") else \
            [sys.executable, "-m", "syncd"]
        process = subprocess.Popen([*program, command, "--config", str(config), *extra],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=self.env(decoder), cwd=REPO, start_new_session=True)
        self.stack.callback(_kill, process)
        return process, measure.ProcessWatch(process.pid, self.server_pids())

    def server_pids(self) -> dict[str, int]:
        """The database servers' main processes, for CPU accounting."""
        pids = {f"mariadb_{name}": server._process.pid for name, server in self.servers.items()
                if server._process is not None}
        if self.pg._process is not None:
            pids["postgresql"] = self.pg._process.pid
        return pids

    def stop(self, process: subprocess.Popen[bytes], watch: measure.ProcessWatch) -> dict[str, Any]:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return watch.stop()

    def positions(self) -> dict[str, Position]:
        return {name: measure.master_status(self.server(name)) for name in SOURCES}

    # -- phases ---------------------------------------------------------------------------------

    def initial_load(self, configs: list[Path], dsn: str, label: str) -> None:
        """syncd copies the seed rows and catches up; then it is stopped (the backlog comes next).

        Several configs: one syncd process each (one per source), at the same time.
        """
        decoder = "library" if label == "library" else "fast"
        running = []
        for i, config in enumerate(configs):  # one after the other: each creates syncd's state schema
            process, watch = self.syncd("run", config, f"initial-{label}-{i}.log", decoder)
            running.append((process, watch))
            measure.wait_for_snapshot(dsn, STATE, [s for s in SOURCES if s in self._sources_of(process)],
                                      timeout=600, process=process)
        measure.wait_for_checkpoints(dsn, STATE, self.positions(), timeout=600)
        for process, watch in running:
            self.stop(process, watch)

    def _sources_of(self, process: subprocess.Popen[bytes]) -> set[str]:
        config = yaml.safe_load(Path(process.args[process.args.index("--config") + 1]).read_text())
        return set(config["sources"])

    def backlog(self) -> tuple[dict[str, Position], dict[str, Position], dict[str, Any]]:
        start = self.positions()
        per_source = self.sizes.backlog_changes // len(SOURCES)
        began = time.monotonic()
        with ProcessPoolExecutor(len(SOURCES), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {name: pool.submit(workload.write_backlog, self.server(name), changes=per_source,
                                         big_share=self.sizes.big_share, big_count=self.sizes.big_count,
                                         seed_value=100 + i, work_dir=str(self.tmp))
                       for i, name in enumerate(SOURCES)}
            counts = {name: future.result() for name, future in futures.items()}
        end = self.positions()
        return start, end, {"seconds": round(time.monotonic() - began, 1),
                            "by_source": {name: asdict(c) for name, c in counts.items()}}

    def raw_decode(self, start: dict[str, Position], end: dict[str, Position]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, fast in (("library", False), ("fast_path", True)):
            runs = [measure.decode(self.server(name), DATABASE, start[name], end[name], fast=fast)
                    for name in SOURCES]
            rows, seconds = sum(r.rows for r in runs), sum(r.seconds for r in runs)
            out[label] = {"rows": rows, "events": sum(r.events for r in runs), "seconds": round(seconds, 2),
                          "rows_per_s": round(rows / seconds)}
        out["fast_path_speedup"] = round(out["fast_path"]["rows_per_s"] / out["library"]["rows_per_s"], 2)
        return out

    def drain(self, configs: list[Path], dsn: str, label: str, *, start: dict[str, Position],
              end: dict[str, Position], changes: int) -> dict[str, Any]:
        """`syncd run` from the backlog's start until every checkpoint reaches its end.

        Several configs: one syncd process each (a process per source), started together.
        """
        decoder = "library" if label == "library" else "fast"
        seen = measure.checkpoints(dsn, STATE)
        assert all(seen[s][0] == start[s] for s in SOURCES), f"checkpoints {seen} are not at {start}"
        began = time.monotonic()
        running = [self.syncd("run", config, f"drain-{label}-{i}.log", decoder)
                   for i, config in enumerate(configs)]
        profilers = [self._profiler(p.pid, f"drain-{label}-{i}") for i, (p, _) in enumerate(running)] \
            if self.profile else []
        first_move = None
        while True:
            seen = measure.checkpoints(dsn, STATE)
            if first_move is None and any(seen[s][0] > start[s] for s in SOURCES):
                first_move = round(time.monotonic() - began, 2)
            if all(seen[s][0] >= end[s] for s in SOURCES):
                break
            if any(p.poll() is not None for p, _ in running):
                raise RuntimeError(f"syncd exited during the drain: {[p.returncode for p, _ in running]}")
            if time.monotonic() - began > 3600:
                raise TimeoutError("the drain took more than an hour")
            time.sleep(0.05)
        seconds = time.monotonic() - began
        threads = {k: v for p, _ in running for k, v in self._thread_cpu(p.pid).items()} \
            if self.profile else {}
        per_process = [self.stop(p, watch) for p, watch in running]
        for profiler in profilers:
            profiler.wait(timeout=60)
        resources = per_process[0] if len(per_process) == 1 else {
            "peak_rss_mb": max(r["peak_rss_mb"] for r in per_process),
            "peak_rss_mb_sum": round(sum(r["peak_rss_mb"] for r in per_process), 1),
            "cpu_seconds": round(sum(r["cpu_seconds"] for r in per_process), 2),
            "machine_busy_share": per_process[0]["machine_busy_share"], "per_process": per_process}
        cpu = [r.get("cpu_seconds_by_process") or {} for r in per_process]
        main_cpu = sum(r["cpu_seconds_main_process"] for r in per_process)
        per_change = {"syncd_cpu_us_per_change": round(resources["cpu_seconds"] / changes * 1e6, 1),
                      "syncd_main_process_cpu_us_per_change": round(main_cpu / changes * 1e6, 1),
                      "postgresql_cpu_us_per_change": round(max(c.get("postgresql", 0.0) for c in cpu)
                                                            / changes * 1e6, 1)}
        return {"decoder": decoder, "processes": len(configs), "changes": changes,
                "seconds": round(seconds, 2), "changes_per_s": round(changes / seconds),
                "first_checkpoint_after_s": first_move, **per_change,
                **resources, **({"cpu_seconds_by_thread": threads} if threads else {})}

    def _thread_cpu(self, pid: int) -> dict[str, float]:
        """CPU seconds of each thread of `pid` so far, named by py-spy dump (native ids)."""
        spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        names: dict[str, str] = {}
        if spy is not None:
            dump = subprocess.run([spy, "dump", "--pid", str(pid), "--json", "--nonblocking"],
                                  capture_output=True, text=True, timeout=60, check=False)
            try:
                names = {str(t.get("os_thread_id")): str(t.get("thread_name") or "?")
                         for t in json.loads(dump.stdout)}
            except (json.JSONDecodeError, AttributeError):
                names = {}
        out: dict[str, float] = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            fields = measure._stat(f"{pid}/task/{task.name}")
            if fields is not None:
                label = f"{names.get(task.name, '?')} ({task.name})"
                out[label] = round((int(fields[11]) + int(fields[12])) / measure.TICKS, 2)
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    def _profiler(self, pid: int, name: str) -> subprocess.Popen[bytes]:
        """py-spy sampling `pid` and its decoder processes while a thread holds the GIL (collapsed
        stacks per process and thread: where Python CPU goes) until it exits."""
        assert self.profile is not None
        self.profile.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        if spy is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        return subprocess.Popen([spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
                                 "--threads", "--gil", "--nonblocking", "--rate", "200",
                                 "-o", str(self.profile / f"{name}.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def probe(self, dsn: str, process: subprocess.Popen[bytes]) -> None:
        """Waits until syncd streams: one small change per source must reach the target."""
        for name in SOURCES:
            conn = workload.connect(self.server(name))
            with conn.cursor() as cur:
                cur.execute("UPDATE customers SET written_at = NOW(6) ORDER BY id LIMIT 1")
            conn.close()
        measure.wait_for_checkpoints(dsn, STATE, self.positions(), timeout=600, process=process)

    def lag(self, rate: int, dsn: str, superuser_dsn: str, config: Path) -> dict[str, Any]:
        process, watch = self.syncd("run", config, f"lag-{rate}.log")
        self.probe(dsn, process)
        with psycopg.connect(superuser_dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE bench_lag")
            for statement in workload.LAG_TRIGGERS:
                conn.execute(statement)
        try:
            with ProcessPoolExecutor(len(SOURCES), mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {name: pool.submit(workload.write_paced, self.server(name),
                                             rate=rate / len(SOURCES), seconds=self.sizes.lag_seconds,
                                             seed_value=200 + rate + i, work_dir=str(self.tmp))
                           for i, name in enumerate(SOURCES)}
                counts = {name: future.result() for name, future in futures.items()}
            catch_up = measure.wait_for_checkpoints(dsn, STATE, self.positions(), timeout=900,
                                                    process=process)
            stats = measure.lag_stats(superuser_dsn)
        finally:
            with psycopg.connect(superuser_dsn, autocommit=True) as conn:
                for statement in workload.DROP_LAG_TRIGGERS:
                    conn.execute(statement)
        resources = self.stop(process, watch)
        offered = sum(c.changes for c in counts.values())
        seconds = max(c.seconds for c in counts.values())
        return {"offered_rate": rate, "achieved_rate": round(offered / seconds), "changes": offered,
                "writer_behind_max_s": round(max(c.behind_max_s for c in counts.values()), 3),
                "writer_cpu_s": round(sum(c.writer_cpu_s for c in counts.values()), 2),
                "client_errors": sum(c.client_errors for c in counts.values()),
                "catch_up_after_writers_s": round(catch_up, 2), **stats, **resources}

    def snapshot(self) -> dict[str, Any]:
        east = self.server("east")
        began = time.monotonic()
        conn = workload.connect(east)
        workload.make_ledger(conn, self.sizes.ledger_rows)
        conn.close()
        out: dict[str, Any] = {"rows": self.sizes.ledger_rows,
                               "source_generation_s": round(time.monotonic() - began, 1)}
        mappings = {"ledger.yaml": workload.LEDGER_MAPPING}
        # 4a: `syncd snapshot` into a fresh target, no daemon running
        snap_dsn = self.target("bench_snapshot")
        config = self.config("snapshot", "bench_snapshot", ("east",), mappings)
        failures = []
        for attempt in range(2):  # a second try only if the first stops at once (kept in the results)
            began = time.monotonic()
            process, watch = self.syncd("snapshot", config, f"snapshot-{attempt}.log")
            code = process.wait()
            seconds = time.monotonic() - began
            resources = watch.stop()
            if code == 0 or seconds > 30:
                break
            failures.append({"exit_code": code, "log_tail": _tail(self.tmp / f"snapshot-{attempt}.log")})
            time.sleep(5)
        copied = _count(snap_dsn, "ledger")
        out["syncd_snapshot"] = {"exit_code": code, "rows_copied": copied, "seconds": round(seconds, 2),
                                 "rows_per_s": round(copied / seconds), **resources,
                                 **({"failed_attempts": failures} if failures else {})}
        if code != 0:
            out["syncd_snapshot"]["log_tail"] = _tail(self.tmp / f"snapshot-{attempt}.log")
        # 4b: the initial load of `syncd run` on a fresh target
        load_dsn = self.target("bench_initial")
        config_run = self.config("initial", "bench_initial", ("east",), mappings)
        began = time.monotonic()
        process, watch = self.syncd("run", config_run, "initial-load.log")
        measure.wait_for_snapshot(load_dsn, STATE, ["east"], timeout=3600, process=process)
        seconds = time.monotonic() - began
        resources = self.stop(process, watch)
        copied = _count(load_dsn, "ledger")
        out["syncd_run_initial_load"] = {"rows_copied": copied, "seconds": round(seconds, 2),
                                         "rows_per_s": round(copied / seconds), **resources}
        self.snapshot_config = config
        return out

    def reconcile(self) -> dict[str, Any]:
        out: dict[str, Any] = {"in_sync": self._reconcile_once("reconcile-in-sync.log")}
        rows = _count(self.superuser_dsn("bench_snapshot"), "ledger")
        if rows < 1000:
            raise RuntimeError(f"the snapshot target holds {rows} ledger rows: nothing to reconcile")
        changed = max(4, int(rows * self.sizes.drift_share))
        with psycopg.connect(self.superuser_dsn("bench_snapshot"), autocommit=True) as conn:
            step = rows // (changed // 2)
            differ = conn.execute("UPDATE ledger SET amount = amount + 1 WHERE source_id %% %s = 1",
                                  (step,)).rowcount
            missing = conn.execute("DELETE FROM ledger WHERE source_id %% %s = 3", (step * 2,)).rowcount
            extra = conn.execute("INSERT INTO ledger SELECT (SELECT max(source_id) FROM ledger) + g, 'EXTRA',"
                                 " '多出来的行', 0, 0, now() FROM generate_series(1, %s) g",
                                 (changed // 4,)).rowcount
        out["drift_made"] = {"differ": differ, "missing": missing, "extra": extra}
        out["with_drift"] = self._reconcile_once("reconcile-drift.log")
        return out

    def _reconcile_once(self, log: str) -> dict[str, Any]:
        assert self.snapshot_config is not None
        began = time.monotonic()
        process, watch = self.syncd("reconcile", self.snapshot_config, log,
                                    extra=("--mapping", "east_ledger", "--json"))
        code = process.wait()
        seconds = time.monotonic() - began
        resources = watch.stop()
        report = _json_tail(self.tmp / log)
        mapping = (report or {}).get("mappings", [{}])[0]
        compared = int(mapping.get("rows_compared") or 0)
        failed = {} if code in (0, 1) else {"log_tail": _tail(self.tmp / log)}
        return {**failed, "exit_code": code, "status": (report or {}).get("status"),
                "rows_compared": compared,
                "seconds": round(seconds, 2), "rows_per_s": round(compared / seconds) if compared else None,
                "engine_rows_per_s": mapping.get("rows_per_second"),
                "found": {k: (mapping.get(k) or {}).get("count") for k in ("missing", "extra", "differ")},
                **resources}


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 12) -> list[str]:
    """The last lines of a log, for the results when a command failed."""
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:] if path.exists() else []


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _json_tail(path: Path) -> dict[str, Any] | None:
    """The indented JSON document a `--json` command printed after its JSON log lines."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line == "{"]
    if not starts:
        return None
    try:
        return json.loads("\n".join(lines[starts[-1]:]))
    except json.JSONDecodeError:
        return None


# ---------------------------------------------------------------- reporting


def _phase(results: dict[str, Any], name: str, action: Callable[[], Any]) -> Any:
    print(f"== {name} ...", flush=True)
    began = time.monotonic()
    try:
        value = action()
    except Exception as exc:  # one failed phase must not lose the others' figures
        results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        return None
    print(f"   done in {time.monotonic() - began:.1f} s", flush=True)
    return value


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def _cost(part: dict[str, Any]) -> str:
    us, main = part.get("syncd_cpu_us_per_change"), part.get("syncd_main_process_cpu_us_per_change")
    if us is None:
        return ""
    split = f", main process {main:.0f}" if main is not None and main < us else ""
    return f" ({us:.0f} us syncd CPU/change{split})"


def table(results: dict[str, Any]) -> str:
    f = results.get("figures", {})
    raw, drain = f.get("raw_decode") or {}, f.get("drain") or {}
    lines = [("figure", "value", "baseline / target", "peak RSS")]
    library = (raw.get("library") or {}).get("rows_per_s")
    lines.append(("1 raw decode, library (rows/s)", _fmt(library), "baseline", "-"))
    lines.append(("  fast path, same binlog (rows/s)", _fmt((raw.get("fast_path") or {}).get("rows_per_s")),
                  f"x{_fmt(raw.get('fast_path_speedup'))} of library", "-"))
    lines.append(("2 drain, syncd run (changes/s)", _fmt(drain.get("changes_per_s")) + _cost(drain),
                  f"x{_fmt(f.get('drain_ratio'))} of (1); target >= 15,000 and x4",
                  _fmt(drain.get("peak_rss_mb"), " MB")))
    library_drain = f.get("drain_library_decoder") or {}
    lines.append(("  drain, library decoder (changes/s)",
                  _fmt(library_drain.get("changes_per_s")) + _cost(library_drain),
                  "same backlog, SYNCD_DECODER=library", _fmt(library_drain.get("peak_rss_mb"), " MB")))
    split = f.get("drain_process_per_source") or {}
    lines.append(("  drain, a syncd process per source", _fmt(split.get("changes_per_s")) + _cost(split),
                  "same backlog, two processes", _fmt(split.get("peak_rss_mb"), " MB each, max")))
    for lag in f.get("lag") or []:
        lines.append((f"3 lag at {lag['offered_rate']:,}/s (achieved {lag['achieved_rate']:,}/s)",
                      f"p50 {_fmt(lag['p50_ms'])} / p99 {_fmt(lag['p99_ms'])} / max {_fmt(lag['max_ms'])} ms",
                      "target p99 <= 250 ms at 1,000/s" if lag["offered_rate"] == 1000 else "-",
                      _fmt(lag.get("peak_rss_mb"), " MB")))
    snapshot = f.get("snapshot") or {}
    for key, label in (("syncd_snapshot", "4 snapshot, syncd snapshot (rows/s)"),
                       ("syncd_run_initial_load", "  initial load, syncd run (rows/s)")):
        part = snapshot.get(key) or {}
        lines.append((label, _fmt(part.get("rows_per_s")), "target >= 80,000",
                      _fmt(part.get("peak_rss_mb"), " MB")))
    reconcile = f.get("reconcile") or {}
    for key, label in (("in_sync", "5 reconcile, in sync (rows/s)"),
                       ("with_drift", "  reconcile, 0.1% drift (rows/s)")):
        part = reconcile.get(key) or {}
        lines.append((label, _fmt(part.get("rows_per_s")), "target >= 200,000" if key == "in_sync" else
                       f"found {part.get('found')}", _fmt(part.get("peak_rss_mb"), " MB")))
    widths = [max(len(str(row[i])) for row in lines) for i in range(4)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in lines)


def verdicts(f: dict[str, Any]) -> dict[str, bool | None]:
    drain = f.get("drain") or {}
    lag1000 = next((x for x in f.get("lag") or [] if x["offered_rate"] == 1000), {})
    snapshot = (f.get("snapshot") or {}).get("syncd_snapshot") or {}
    in_sync = (f.get("reconcile") or {}).get("in_sync") or {}
    rss = [part.get("peak_rss_mb") for part in (drain, lag1000, snapshot, in_sync, *(f.get("lag") or []),
                                               (f.get("snapshot") or {}).get("syncd_run_initial_load") or {},
                                               (f.get("reconcile") or {}).get("with_drift") or {})]

    def at_least(value: Any, target: float) -> bool | None:
        return None if value is None else value >= target

    return {
        "drain_changes_per_s": at_least(drain.get("changes_per_s"), TARGETS["drain_changes_per_s"]),
        "drain_ratio_to_raw_decode": at_least(f.get("drain_ratio"), TARGETS["drain_ratio_to_raw_decode"]),
        "p99_lag_ms_at_1000": None if lag1000.get("p99_ms") is None else lag1000["p99_ms"] <= 250,
        "snapshot_rows_per_s": at_least(snapshot.get("rows_per_s"), TARGETS["snapshot_rows_per_s"]),
        "reconcile_rows_per_s_in_sync": at_least(in_sync.get("rows_per_s"),
                                                 TARGETS["reconcile_rows_per_s_in_sync"]),
        "peak_rss_mb": None if not any(rss) else max(r for r in rss if r) <= TARGETS["peak_rss_mb"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every phase")
    parser.add_argument("--skip", default="", help="comma-separated phases to leave out: "
                        "library-drain, per-source, lag, snapshot, reconcile")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the drains' syncd with py-spy (collapsed stacks) into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the servers' directory and logs")
    parser.add_argument("--backlog", type=int, metavar="CHANGES",
                        help="backlog size instead of the mode's (for quicker experiments)")
    parser.add_argument("--ledger", type=int, metavar="ROWS",
                        help="snapshot/reconcile table size instead of the mode's")
    parser.add_argument("--output", type=Path,
                        help="where to write the JSON (default bench/results/<date>.json)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.backlog:
        sizes = dataclasses.replace(sizes, backlog_changes=args.backlog)
    if args.ledger:
        sizes = dataclasses.replace(sizes, ledger_rows=args.ledger)
    today = datetime.now(UTC).date().isoformat()
    output = args.output or RESULTS / (f"{today}-quick.json" if args.quick else f"{today}.json")
    tmp = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    tmp.chmod(0o755)
    results: dict[str, Any] = {"date": today, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "mode": "quick" if args.quick else "full", "machine": measure.machine(),
                               "sizes": asdict(sizes), "server_settings": {"postgresql": PG_SETTINGS,
                                                                           "mariadb": MARIADB_SETTINGS},
                               "targets": TARGETS, "figures": {}}
    figures = results["figures"]
    print(f"syncd bench ({results['mode']}) in {tmp}", flush=True)
    try:
        with ExitStack() as stack:
            stack.callback(measure.close_pollers)
            skip = {p.strip() for p in args.skip.split(",") if p.strip()}
            bench = Bench(sizes, tmp, stack, skip, args.profile)
            run_all(bench, results, figures)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets_met"] = verdicts(figures)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print()
    print(table(results))
    print(f"\ntargets met: {results['targets_met']}")
    box = results["machine"]
    print(f"machine: {box['cores']} cores, {box['ram_gb']} GB RAM, {box['cpu_model']}; "
          f"load average at start {box['load_average_at_start']}")
    print(f"written to {output}")
    return 1 if results.get("errors") else 0


def run_all(bench: Bench, results: dict[str, Any], figures: dict[str, Any]) -> None:
    if _phase(results, "servers, sources and seed rows", bench.start) is None and results.get("errors"):
        return
    dsn_a, dsn_b = bench.target("bench_fast"), bench.target("bench_library")
    mappings = {f"{s}.yaml": workload.mappings_yaml(s) for s in SOURCES}
    config_a = bench.config("fast", "bench_fast", SOURCES, mappings)
    config_b = bench.config("library", "bench_library", SOURCES, mappings)
    per_source = "per-source" not in bench.skip
    if per_source:
        dsn_c = bench.target("bench_per_source")
        configs_c = [bench.config(f"per-source-{s}", "bench_per_source", (s,),
                                  {f"{s}.yaml": workload.mappings_yaml(s)}) for s in SOURCES]

    def initial() -> None:
        bench.initial_load([config_a], dsn_a, "fast")
        bench.initial_load([config_b], dsn_b, "library")
        if per_source:
            bench.initial_load(configs_c, dsn_c, "per-source")

    _phase(results, "initial load of the seed rows", initial)
    backlog = _phase(results, "backlog (syncd stopped)", bench.backlog)
    if backlog is None:
        return
    start, end, written = backlog
    results["backlog"] = {"start": {k: str(v) for k, v in start.items()},
                          "end": {k: str(v) for k, v in end.items()}, **written}
    raw = _phase(results, "1 raw decode", lambda: bench.raw_decode(start, end))
    figures["raw_decode"] = raw
    changes = raw["library"]["rows"] if raw else bench.sizes.backlog_changes
    drain = _phase(results, "2 drain (fast path)",
                   lambda: bench.drain([config_a], dsn_a, "fast", start=start, end=end, changes=changes))
    figures["drain"] = drain
    if drain and raw:
        figures["drain_ratio"] = round(drain["changes_per_s"] / raw["library"]["rows_per_s"], 2)
    if "library-drain" not in bench.skip:
        figures["drain_library_decoder"] = _phase(
            results, "2b drain (library decoder)",
            lambda: bench.drain([config_b], dsn_b, "library", start=start, end=end, changes=changes))
    if per_source:
        figures["drain_process_per_source"] = _phase(
            results, "2c drain (one syncd process per source)",
            lambda: bench.drain(configs_c, dsn_c, "per-source", start=start, end=end, changes=changes))
    superuser_a = bench.superuser_dsn("bench_fast")
    rates = () if "lag" in bench.skip else bench.sizes.lag_rates
    figures["lag"] = [lag for rate in rates
                      if (lag := _phase(results, f"3 lag at {rate}/s",
                                        lambda rate=rate: bench.lag(rate, dsn_a, superuser_a, config_a)))
                      is not None]
    if "snapshot" in bench.skip:
        return
    figures["snapshot"] = _phase(results, "4 snapshot of the ledger table", bench.snapshot)
    if figures["snapshot"] and "reconcile" not in bench.skip:
        figures["reconcile"] = _phase(results, "5 reconcile", bench.reconcile)


if __name__ == "__main__":
    sys.exit(main())
