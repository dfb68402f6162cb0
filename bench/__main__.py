"""`python -m bench` (what `make bench` runs): syncd's throughput, lag, copies and reconcile on
two workloads of different shapes, each figure against a baseline from the same run.

Workload ``oltp``, syncd's own tables (bench/workload.py): two MariaDB servers (sources "east"
and "west") and one PostgreSQL server in a temporary directory;

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
4. snapshot of a 1,000,000-row table (plain copy, types that syncd copies as COPY text) by
   `syncd snapshot`, the initial load of `syncd run` on a fresh target, and pg_chameleon's
   copy of the same table;
5. `syncd reconcile` of that table in sync and with 0.1% drift: rows compared/s; reladiff
   comparing the same tables.

Workload ``shop``, a shop's wide tables with a realistic and a plain-copy mapping
(bench/shop.py, phases in bench/shopbench.py): copies, drain, reconcile, each per mapping
style, next to pg_chameleon (copy, drain) and reladiff (compare) from the same run.

Everywhere: peak RSS (VmHWM) of syncd's whole process tree and its CPU seconds in each phase,
with the CPU seconds of the database servers and the rest of the machine over the same span
(the benchmark shares the machine; "rest_of_machine" shows how much), and the machine's noise
over the run (load, CPU steal, a calibration task timed at both ends: bench/measure.py). The
peers are installed into throwaway virtualenvs (bench/peers.py); one that cannot be installed
or run is skipped with a line that says why. Targets are printed PASS/FAIL with their ratio
and baseline (bench/report.py).

Prints a table per workload and writes bench/results/<date>.json (``--quick``: small sizes,
for a smoke run of every phase in a few minutes, written to <date>-quick.json). Servers and
files are removed at the end (``--keep`` keeps them). ``--profile DIR`` records the oltp
drains with py-spy (GIL-holding stacks per thread) and the CPU seconds of each syncd thread.

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

from bench import measure, peers, report, runner, shop, shopbench, workload
from bench.measure import Position
from bench.runner import MARIADB_SETTINGS, PG_SETTINGS, REPO, STATE, SYNCD_USER
from bench.workload import DATABASE, SOURCES, Server
from devtools.sandbox import MariaDBServer, PostgresServer

RESULTS = REPO / "bench" / "results"
WORKLOADS = ("oltp", "shop")


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
                 profile: Path | None, *, installed: dict[str, peers.Installed]) -> None:
        self.sizes = sizes
        self.installed = installed
        self.tmp = tmp
        self.stack = stack
        self.skip = skip
        self.profile = profile
        self.password = secrets.token_urlsafe(18)
        self.results: dict[str, Any] = {}
        self.servers: dict[str, MariaDBServer] = {}
        self.pg: PostgresServer
        self.start_failures: list[str] = []
        self.snapshot_config: Path | None = None
        self._server_ids = 4100

    def _next_server_id(self) -> int:
        """A replica server_id no other config of this run uses."""
        self._server_ids += 1
        return self._server_ids

    # -- servers, schemas, configs --------------------------------------------------------------

    def start(self) -> None:
        for number, name in enumerate(SOURCES, start=1):
            self.servers[name] = runner.start_server(
                lambda d, n=number: MariaDBServer(d, server_id=n, settings=MARIADB_SETTINGS), self.tmp / name,
                self.stack, self.start_failures)
        self.pg = runner.start_server(lambda d: PostgresServer(d, settings=PG_SETTINGS),
                                      self.tmp / "postgres", self.stack, self.start_failures)
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
        settings = {source: {"host": self.servers[source].host, "port": self.servers[source].port,
                             "database": DATABASE, "server_id": self._next_server_id(), "timezone": "UTC"}
                    for source in sources}
        return runner.write_config(self.tmp / f"config-{name}", self.pg.dsn(database, SYNCD_USER), settings,
                                   mappings)

    def syncd(self, command: str, config: Path, log: str, decoder: str = "fast",
              extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], measure.ProcessWatch]:
        env = runner.syncd_env(self.password, **{measure.DECODER_ENV: decoder})
        return runner.launch(runner.syncd_argv(command, config, extra), self.tmp / log, env, self.stack,
                             self.server_pids(), cwd=REPO)

    def server_pids(self) -> dict[str, int]:
        """The database servers' main processes, for CPU accounting."""
        pids = {f"mariadb_{name}": server._process.pid for name, server in self.servers.items()
                if server._process is not None}
        if self.pg._process is not None:
            pids["postgresql"] = self.pg._process.pid
        return pids

    def stop(self, process: subprocess.Popen[bytes], watch: measure.ProcessWatch) -> dict[str, Any]:
        return runner.stop(process, watch)

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
            try:
                runs = [measure.decode(self.server(name), DATABASE, start[name], end[name], fast=fast)
                        for name in SOURCES]
            except ImportError as exc:  # only the fast path imports syncd (see bench/measure.py)
                out[label] = {"skipped": f"syncd's fast path cannot be imported: {exc}"}
                continue
            rows, seconds = sum(r.rows for r in runs), sum(r.seconds for r in runs)
            out[label] = {"rows": rows, "events": sum(r.events for r in runs), "seconds": round(seconds, 2),
                          "rows_per_s": round(rows / seconds)}
        if "rows_per_s" in out["fast_path"]:
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
        profilers = [runner.profiler(self.profile, p.pid, f"drain-{label}-{i}")
                     for i, (p, _) in enumerate(running)]
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
            if profiler is not None:
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
            log = self.tmp / f"snapshot-{attempt}.log"
            failures.append({"exit_code": code, "log_tail": runner.tail(log)})
            time.sleep(5)
        copied = runner.count(snap_dsn, "ledger")
        out["syncd_snapshot"] = {"exit_code": code, "rows_copied": copied, "seconds": round(seconds, 2),
                                 "rows_per_s": round(copied / seconds), **resources,
                                 **({"failed_attempts": failures} if failures else {})}
        if code != 0:
            out["syncd_snapshot"]["log_tail"] = runner.tail(self.tmp / f"snapshot-{attempt}.log")
        # 4b: the initial load of `syncd run` on a fresh target
        load_dsn = self.target("bench_initial")
        config_run = self.config("initial", "bench_initial", ("east",), mappings)
        began = time.monotonic()
        process, watch = self.syncd("run", config_run, "initial-load.log")
        measure.wait_for_snapshot(load_dsn, STATE, ["east"], timeout=3600, process=process)
        seconds = time.monotonic() - began
        resources = self.stop(process, watch)
        copied = runner.count(load_dsn, "ledger")
        out["syncd_run_initial_load"] = {"rows_copied": copied, "seconds": round(seconds, 2),
                                         "rows_per_s": round(copied / seconds), **resources}
        self.snapshot_config = config
        out[peers.CHAMELEON] = self.chameleon_copy()
        return out

    def chameleon_copy(self) -> dict[str, Any]:
        """pg_chameleon's `init_replica` of the same ledger table (4c)."""
        installed = self.installed.get(peers.CHAMELEON)
        if installed is None or installed.bin_dir is None:
            return peers.skip_line(peers.CHAMELEON, "copy", peers.why_not(installed))
        place = peers.Place(self.tmp, self.stack, self.server_pids())
        chameleon = peers.Chameleon(installed, "ledger", mysql=self.server("east"), schema=DATABASE,
                                    tables=("ledger",), pg=self.pg, place=place)
        try:
            chameleon.prepare()
            return chameleon.copy({"ledger": self.sizes.ledger_rows})
        except Exception as exc:  # a peer that does not work here is skipped, not fatal
            return peers.skip_line(peers.CHAMELEON, "copy", f"{type(exc).__name__}: {exc}")

    def reconcile(self) -> dict[str, Any]:
        out: dict[str, Any] = {"drift_share": self.sizes.drift_share,
                               "reladiff_in_sync": self.reladiff("in-sync"),
                               "in_sync": self._reconcile_once("reconcile-in-sync.log")}
        rows = runner.count(self.superuser_dsn("bench_snapshot"), "ledger")
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
        out["reladiff_with_drift"] = self.reladiff("drift")
        return out

    def _reconcile_once(self, log: str) -> dict[str, Any]:
        assert self.snapshot_config is not None
        began = time.monotonic()
        process, watch = self.syncd("reconcile", self.snapshot_config, log,
                                    extra=("--mapping", "east_ledger", "--json"))
        code = process.wait()
        seconds = time.monotonic() - began
        return runner.reconcile_figures(self.tmp / log, code, seconds, watch.stop())

    def reladiff(self, label: str) -> dict[str, Any]:
        """reladiff comparing the source ledger with the target's, through a view that gives the
        target's columns the source's names (reladiff cannot rename: source_id is id). The view
        is in `public`: the state schema is named like the syncd role, so it comes first in the
        role's search_path."""
        installed = self.installed.get(peers.RELADIFF)
        what = f"compare, {label}"
        if installed is None or installed.bin_dir is None:
            return peers.skip_line(peers.RELADIFF, what, peers.why_not(installed))
        dsn = self.pg.dsn("bench_snapshot", SYNCD_USER, self.password)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE OR REPLACE VIEW public.ledger_as_source AS SELECT source_id AS id, account,"
                         " memo, amount, entry_type, booked_at FROM public.ledger")
        east = self.servers["east"]
        compared = peers.Compared(
            mysql_uri=f"mysql://{SYNCD_USER}:{self.password}@{east.host}:{east.port}/{DATABASE}",
            mysql_table="ledger", pg_uri=dsn, pg_table="ledger_as_source", key="id",
            columns=("account", "memo", "amount", "entry_type", "booked_at"), left_out={})
        try:
            return peers.reladiff(installed, f"ledger-{label}", compared,
                                  peers.Place(self.tmp, self.stack, self.server_pids()))
        except Exception as exc:  # a peer that does not work here is skipped, not fatal
            return peers.skip_line(peers.RELADIFF, what, f"{type(exc).__name__}: {exc}")


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


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every phase")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated workloads to run: oltp (syncd's own tables), shop (a shop's"
                             " wide tables, realistic and plain mappings); default both")
    parser.add_argument("--skip", default="", help="comma-separated phases to leave out: library-drain,"
                        " per-source, lag, snapshot, reconcile (oltp); peers (every peer baseline)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the drains' syncd with py-spy (collapsed stacks) into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the servers' directory and logs")
    parser.add_argument("--backlog", type=int, metavar="CHANGES",
                        help="oltp: backlog size instead of the mode's (for quicker experiments)")
    parser.add_argument("--ledger", type=int, metavar="ROWS",
                        help="oltp: snapshot/reconcile table size instead of the mode's")
    parser.add_argument("--shop-copy", type=int, metavar="ROWS",
                        help="shop: rows of the three tables copied, instead of the mode's")
    parser.add_argument("--shop-reconcile", type=int, metavar="ROWS",
                        help="shop: rows of orders when reconciled, instead of the mode's")
    parser.add_argument("--shop-backlog", type=int, metavar="CHANGES",
                        help="shop: row changes of the drained backlog, instead of the mode's")
    parser.add_argument("--output", type=Path,
                        help="where to write the JSON (default bench/results/<date>.json)")
    return parser.parse_args()


def _sizes(args: argparse.Namespace) -> tuple[Sizes, shop.ShopSizes]:
    sizes = QUICK if args.quick else FULL
    if args.backlog:
        sizes = dataclasses.replace(sizes, backlog_changes=args.backlog)
    if args.ledger:
        sizes = dataclasses.replace(sizes, ledger_rows=args.ledger)
    shop_sizes = shop.SHOP_QUICK if args.quick else shop.SHOP_FULL
    if args.shop_copy:
        shop_sizes = shop_sizes.with_copy_rows(args.shop_copy)
    if args.shop_reconcile:
        shop_sizes = dataclasses.replace(shop_sizes, reconcile_orders=args.shop_reconcile)
    if args.shop_backlog:
        shop_sizes = dataclasses.replace(shop_sizes, backlog_changes=args.shop_backlog)
    return sizes, shop_sizes


def main() -> int:
    args = _arguments()
    sizes, shop_sizes = _sizes(args)
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if unknown := set(chosen) - set(WORKLOADS):
        sys.exit(f"unknown workload(s) {sorted(unknown)}: choose from {', '.join(WORKLOADS)}")
    skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    today = datetime.now(UTC).date().isoformat()
    output = args.output or RESULTS / (f"{today}-quick.json" if args.quick else f"{today}.json")
    tmp = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    tmp.chmod(0o755)
    noise = measure.Noise()
    results: dict[str, Any] = {
        "date": today, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full", "machine": measure.machine(),
        "sizes": {"oltp": asdict(sizes), "shop": asdict(shop_sizes)},
        "server_settings": {"postgresql": PG_SETTINGS, "mariadb": MARIADB_SETTINGS},
        "targets": report.TARGETS, "workloads": {}}
    print(f"syncd bench ({results['mode']}; {', '.join(chosen)}) in {tmp}", flush=True)
    try:
        installed = {} if "peers" in skip else _phase(results, "peer baselines: install",
                                                        lambda: peers.install_all(tmp)) or {}
        results["peers"] = {name: peer.record() for name, peer in installed.items()}
        password = secrets.token_urlsafe(18)
        if "oltp" in chosen:
            with ExitStack() as stack:
                stack.callback(measure.close_pollers)
                bench = Bench(sizes, tmp, stack, skip, args.profile, installed=installed)
                results["workloads"]["oltp"] = figures = {}
                run_all(bench, results, figures)
        if "shop" in chosen:
            with ExitStack() as stack:
                stack.callback(measure.close_pollers)
                shop_bench = shopbench.ShopBench(shop_sizes, tmp, stack, installed, password,
                                                 profile=args.profile)
                results["workloads"]["shop"] = shopbench.run(
                    shop_bench, lambda name, action: _phase(results, name, action))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["noise"] = noise.finish()
    verdicts = report.verdicts(results["workloads"])
    results["verdicts"] = [v.record() for v in verdicts]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    _print(results, verdicts, output)
    return 1 if results.get("errors") else 0


def _print(results: dict[str, Any], verdicts: list[report.Verdict], output: Path) -> None:
    workloads = results["workloads"]
    if "oltp" in workloads:
        print("\nworkload oltp: syncd's own tables, two sources")
        print(report.oltp_table(workloads["oltp"]))
    if "shop" in workloads:
        print("\nworkload shop: a shop's wide tables, one source; each figure per mapping style")
        print(report.shop_table(workloads["shop"]))
    print("\ntargets (baselines from this run):")
    for verdict in verdicts:
        print("  " + verdict.line())
    box, noise = results["machine"], results["noise"]
    print(f"\nmachine: {box['cores']} cores, {box['ram_gb']} GB RAM, {box['cpu_model']}; load average"
          f" {noise['load_average_at_start']} at start, {noise['load_average_at_end']} at end; busy"
          f" {noise['machine_busy_share_over_run']:.0%} of the time, CPU steal"
          f" {noise['cpu_steal_share_over_run']:.1%};"
          f" calibration task {noise['calibration_s_at_start']} s at start, {noise['calibration_s_at_end']} s"
          " at end")
    print(f"written to {output}")


def run_all(bench: Bench, results: dict[str, Any], figures: dict[str, Any]) -> None:
    started = _phase(results, "servers, sources and seed rows", bench.start)
    if bench.start_failures:
        figures["server_start_failures"] = bench.start_failures
    if started is None and results.get("errors"):
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
    figures["backlog"] = {"start": {k: str(v) for k, v in start.items()},
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
