"""The shop workload's phases (bench/shop.py), each measured per mapping style, each next to
a peer's baseline from the same run.

Its own MariaDB (source "mall", zone Asia/Shanghai) and PostgreSQL servers, started for this
workload and stopped after it. In order:

1. copy of the generated tables (users, orders, order_items): ``syncd snapshot`` and the
   initial load of ``syncd run`` (until its checkpoint says the copy is done), each into a
   fresh target per style; pg_chameleon's ``init_replica`` of the same tables (and of the
   one-row marker table the drain needs);
2. a backlog of single-row OLTP changes written with every copier stopped; the library's raw
   decode of that binlog (the baseline of the drain), and syncd's fast path over it;
3. drain: ``syncd run`` on each style's initial-load target, from launch (start-up included)
   until its checkpoint reaches the backlog's end; pg_chameleon's ``start_replica`` from its
   own copy until the backlog's last change (a marker table's, bench/shop.py) is in its target;
4. reconcile: ``orders`` grows to the reconcile size and ``syncd snapshot --mapping`` brings
   each style's snapshot target up to date; then ``syncd reconcile`` of that mapping in sync
   (the first pass) and again after 0.1% scattered drift in the target (the second pass),
   with reladiff comparing the source table with the plain-copy target before and after.

Rates of copies and compares count source rows read (the realistic mapping's ``where:``
filter drops about 1% of them from its targets), from the launch of the process to its end.
"""

from __future__ import annotations

import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psycopg

from bench import measure, peers, runner, shop
from bench.runner import MARIADB_SETTINGS, PG_SETTINGS, STATE, SYNCD_USER
from bench.workload import Server
from devtools.sandbox import MariaDBServer, PostgresServer

SERVER_ID = 3
TIMEZONE = "Asia/Shanghai"
BACKLOG_DONE = peers.Marker(shop.MARKER, "backlog_done", 1)
RELADIFF_LEFT_OUT = {
    "remark": "utf8mb4 text with emoji: reladiff reads MySQL through a utf8 (3-byte) connection, so"
              " 4-byte characters come back as '?' and every such row would differ",
    "extra": "JSON: reladiff compares it as text, and MariaDB's JSON text and PostgreSQL's jsonb"
             " print differently",
}


class ShopBench:
    def __init__(self, sizes: shop.ShopSizes, tmp: Path, stack: ExitStack,
                 installed: dict[str, peers.Installed], password: str, *,
                 profile: Path | None = None) -> None:
        self.sizes, self.stack, self.installed, self.password = sizes, stack, installed, password
        self.profile = profile
        self.work = tmp / "shop"
        self.work.mkdir()
        self.mysql: MariaDBServer
        self.pg: PostgresServer
        self.run_targets: dict[str, tuple[str, Path]] = {}
        self.snapshot_configs: dict[str, Path] = {}
        self.chameleon: peers.Chameleon | None = None
        self.source_rows: dict[str, int] = {}
        self._server_ids = 4300

    # -- servers, targets, configs --------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        failures: list[str] = []
        self.mysql = runner.start_server(
            lambda d: MariaDBServer(d, server_id=SERVER_ID, settings=MARIADB_SETTINGS), self.work / "mariadb",
            self.stack, failures)
        self.pg = runner.start_server(lambda d: PostgresServer(d, settings=PG_SETTINGS),
                                      self.work / "postgres", self.stack, failures)
        self.pg.create_user(SYNCD_USER, self.password)
        self.mysql.create_user(SYNCD_USER, self.password)
        made = shop.create_source(self.server(), self.sizes)
        self.source_rows = made["rows"]
        return {**made, **({"server_start_failures": failures} if failures else {})}

    def server(self) -> Server:
        return Server(self.mysql.host, self.mysql.port, self.mysql.root_password)

    def others(self) -> dict[str, int]:
        """The database servers' main processes, for CPU accounting."""
        pids = {"mariadb_mall": self.mysql._process, "postgresql": self.pg._process}
        return {label: process.pid for label, process in pids.items() if process is not None}

    def target(self, style: str, database: str) -> str:
        """Creates target database `database` (owned by syncd) with the style's tables; its DSN."""
        self.pg.create_database(database, owner=SYNCD_USER)
        dsn = self.pg.dsn(database, SYNCD_USER, self.password)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in shop.TARGET_SQL[style]:
                conn.execute(statement)
        return dsn

    def config(self, name: str, database: str, style: str) -> Path:
        self._server_ids += 1
        source = {"host": self.mysql.host, "port": self.mysql.port, "database": shop.DATABASE,
                  "server_id": self._server_ids, "timezone": TIMEZONE}
        return runner.write_config(self.work / f"config-{name}", self.pg.dsn(database, SYNCD_USER),
                                   {shop.SOURCE: source}, {f"{style}.yaml": shop.MAPPINGS[style]})

    def syncd(self, command: str, config: Path, log: str,
              extra: tuple[str, ...] = ()) -> tuple[Any, measure.ProcessWatch]:
        env = runner.syncd_env(self.password, **{shop.SALT_ENV: shop.SALT})
        return runner.launch(runner.syncd_argv(command, config, extra), self.work / log, env, self.stack,
                             self.others(), cwd=runner.REPO)

    def position(self) -> measure.Position:
        return measure.master_status(self.server())

    def place(self) -> peers.Place:
        return peers.Place(self.work, self.stack, self.others())

    def _rows(self, dsn: str) -> int:
        return sum(runner.count(dsn, table) for table in shop.PLAIN_COLUMNS)

    # -- 1. copies -------------------------------------------------------------------------------

    def copies(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source_rows": self.source_rows}
        for style in shop.STYLES:
            out[style] = {"syncd_snapshot": self._phase(f"copy, syncd snapshot, {style}",
                                                        lambda s=style: self.snapshot(s)),
                          "syncd_run_initial_load": self._phase(f"copy, syncd run's initial load, {style}",
                                                                lambda s=style: self.initial_load(s))}
        out[peers.CHAMELEON] = self.chameleon_copy()
        return out

    def _phase(self, name: str, action: Any) -> dict[str, Any]:
        """One measurement of a phase; a failure is recorded and the others go on."""
        print(f"   - {name}", flush=True)
        try:
            return action()
        except Exception as exc:  # one failed measurement must not lose the others' figures
            traceback.print_exc()
            return {"error": f"{type(exc).__name__}: {exc}"}

    def snapshot(self, style: str) -> dict[str, Any]:
        database = f"mall_{style}_snapshot"
        dsn = self.target(style, database)
        config = self.config(f"snapshot-{style}", database, style)
        began = time.monotonic()
        process, watch = self.syncd("snapshot", config, f"snapshot-{style}.log")
        code = process.wait()
        seconds = time.monotonic() - began
        resources = watch.stop()
        if code != 0:
            raise RuntimeError(f"syncd snapshot ({style}) exited {code}: "
                               + " / ".join(runner.tail(self.work / f"snapshot-{style}.log", 3)))
        self.snapshot_configs[style] = config
        return self._copied(dsn, seconds, resources)

    def _copied(self, dsn: str, seconds: float, resources: dict[str, Any]) -> dict[str, Any]:
        read = sum(self.source_rows.values())
        return {"rows_read": read, "rows_written": self._rows(dsn), "dead_letters": _dead_letters(dsn),
                "seconds": round(seconds, 2), "rows_per_s": round(read / seconds), **resources}

    def initial_load(self, style: str) -> dict[str, Any]:
        """`syncd run` on a fresh target until its checkpoint says the copy is done (the figure);
        then until it has caught up with the source, and stopped: the drain starts from there."""
        database = f"mall_{style}_run"
        dsn = self.target(style, database)
        config = self.config(f"run-{style}", database, style)
        began = time.monotonic()
        process, watch = self.syncd("run", config, f"initial-load-{style}.log")
        measure.wait_for_snapshot(dsn, STATE, [shop.SOURCE], timeout=3600, process=process)
        seconds = time.monotonic() - began
        measure.wait_for_checkpoints(dsn, STATE, {shop.SOURCE: self.position()}, timeout=600, process=process)
        resources = runner.stop(process, watch)
        self.run_targets[style] = (dsn, config)
        return self._copied(dsn, seconds, resources)

    def chameleon_copy(self) -> dict[str, Any]:
        installed = self.installed.get(peers.CHAMELEON)
        if installed is None or installed.bin_dir is None:
            return peers.skip_line(peers.CHAMELEON, "copy", peers.why_not(installed))
        print("   - copy, pg_chameleon init_replica", flush=True)
        chameleon = peers.Chameleon(installed, "mall", mysql=self.server(), schema=shop.DATABASE,
                                    tables=(*shop.PLAIN_COLUMNS, shop.MARKER), pg=self.pg, place=self.place())
        try:
            chameleon.prepare()
            figures = chameleon.copy({**self.source_rows, shop.MARKER: 1})
        except Exception as exc:  # a peer that does not work here is skipped, not fatal
            return peers.skip_line(peers.CHAMELEON, "copy", f"{type(exc).__name__}: {exc}")
        self.chameleon = chameleon
        return figures

    # -- 2. backlog and raw decode ---------------------------------------------------------------

    def backlog(self) -> tuple[measure.Position, measure.Position, dict[str, Any]]:
        start = self.position()
        counts = shop.write_backlog(self.server(), changes=self.sizes.backlog_changes,
                                    seed_value=self.sizes.seed + 100, work_dir=str(self.work))
        end = self.position()
        return start, end, {"start": str(start), "end": str(end), "seconds": round(counts.seconds, 1),
                            "statements": counts.changes, "transactions": counts.transactions,
                            "client_errors": counts.client_errors, "by_kind": counts.by_kind}

    def raw_decode(self, start: measure.Position, end: measure.Position) -> dict[str, Any]:
        library = measure.decode(self.server(), shop.DATABASE, start, end, fast=False)
        out: dict[str, Any] = {"library": {"rows": library.rows, "events": library.events,
                                           "seconds": round(library.seconds, 2),
                                           "rows_per_s": round(library.rows_per_second)}}
        try:
            fast = measure.decode(self.server(), shop.DATABASE, start, end, fast=True)
        except ImportError as exc:
            out["fast_path"] = {"skipped": f"syncd's fast path cannot be imported: {exc}"}
        else:
            out["fast_path"] = {"rows": fast.rows, "seconds": round(fast.seconds, 2),
                                "rows_per_s": round(fast.rows_per_second)}
        return out

    # -- 3. drains -------------------------------------------------------------------------------

    def drain(self, style: str, start: measure.Position, end: measure.Position,
              changes: int) -> dict[str, Any]:
        """`syncd run` from launch until its checkpoint reaches the backlog's end."""
        dsn, config = self.run_targets[style]
        at_start = measure.checkpoints(dsn, STATE)[shop.SOURCE][0]
        began = time.monotonic()
        process, watch = self.syncd("run", config, f"drain-{style}.log")
        spy = runner.profiler(self.profile, process.pid, f"shop-drain-{style}")
        measure.wait_for_checkpoints(dsn, STATE, {shop.SOURCE: end}, timeout=3600, process=process, poll=0.02)
        seconds = time.monotonic() - began
        resources = runner.stop(process, watch)
        if spy is not None:
            spy.wait(timeout=60)
        return {"changes": changes, "seconds": round(seconds, 2), "changes_per_s": round(changes / seconds),
                "checkpoint_at_start": str(at_start), "checkpoint_was_backlog_start": at_start == start,
                "dead_letters": _dead_letters(dsn), **resources}

    def chameleon_drain(self, changes: int) -> dict[str, Any]:
        if self.chameleon is None:
            return peers.skip_line(peers.CHAMELEON, "drain", "its copy did not run")
        try:
            figures = self.chameleon.drain(BACKLOG_DONE, changes, timeout=3600)
            source = {**shop.source_counts(self.server()), shop.MARKER: 1}
            figures["row_counts_match_source"] = self.chameleon.target_counts() == source
        except Exception as exc:  # a peer that does not work here is skipped, not fatal
            return peers.skip_line(peers.CHAMELEON, "drain", f"{type(exc).__name__}: {exc}")
        return figures

    # -- 4. reconcile ----------------------------------------------------------------------------

    def reconcile(self) -> dict[str, Any]:
        began = time.monotonic()
        added = shop.grow_orders(self.server(), self.sizes)
        rows = shop.source_counts(self.server())["orders"]
        out: dict[str, Any] = {"orders_rows": rows, "orders_added": added,
                               "drift_share": self.sizes.drift_share,
                               "source_generation_s": round(time.monotonic() - began, 1),
                               "resnapshot": {s: self._resnapshot(s) for s in shop.STYLES}}
        out["in_sync"] = {peers.RELADIFF: self._reladiff("in-sync"),
                          **{s: self._reconcile(s, "in-sync") for s in shop.STYLES}}
        out["drift_made"] = {s: self._drift(s, rows) for s in shop.STYLES}
        out["with_drift"] = {**{s: self._reconcile(s, "drift") for s in shop.STYLES},
                             peers.RELADIFF: self._reladiff("drift")}
        return out

    def _resnapshot(self, style: str) -> dict[str, Any]:
        """`syncd snapshot --mapping` of orders: the snapshot target catches up with the grown
        table (and the backlog), so that the reconcile starts in sync."""
        print(f"   - orders at {self.sizes.reconcile_orders:,} rows: syncd snapshot --mapping, {style}",
              flush=True)
        log = f"resnapshot-{style}.log"
        began = time.monotonic()
        process, watch = self.syncd("snapshot", self.snapshot_configs[style], log,
                                    ("--mapping", shop.ORDERS_MAPPING[style]))
        code = process.wait()
        seconds = time.monotonic() - began
        resources = watch.stop()
        if code != 0:
            raise RuntimeError(f"syncd snapshot --mapping exited {code}: "
                               + " / ".join(runner.tail(self.work / log, 3)))
        rows = shop.source_counts(self.server())["orders"]
        return {"rows_read": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
                **resources}

    def _reconcile(self, style: str, label: str) -> dict[str, Any]:
        print(f"   - syncd reconcile, {label}, {style}", flush=True)
        log = f"reconcile-{label}-{style}.log"
        began = time.monotonic()
        process, watch = self.syncd("reconcile", self.snapshot_configs[style], log,
                                    ("--mapping", shop.ORDERS_MAPPING[style], "--json"))
        code = process.wait()
        seconds = time.monotonic() - began
        return runner.reconcile_figures(self.work / log, code, seconds, watch.stop())

    def _drift(self, style: str, rows: int) -> dict[str, int]:
        with self.pg.connect(f"mall_{style}_snapshot") as conn:
            return shop.make_drift(conn, style, rows, self.sizes.drift_share)

    def _reladiff(self, label: str) -> dict[str, Any]:
        installed = self.installed.get(peers.RELADIFF)
        what = f"compare, {label}"
        if installed is None or installed.bin_dir is None:
            return peers.skip_line(peers.RELADIFF, what, peers.why_not(installed))
        print(f"   - reladiff, {label}", flush=True)
        columns = tuple(c for c in shop.PLAIN_COLUMNS["orders"] if c != "id" and c not in RELADIFF_LEFT_OUT)
        compared = peers.Compared(
            mysql_uri=f"mysql://{SYNCD_USER}:{self.password}@{self.mysql.host}:{self.mysql.port}/{shop.DATABASE}",
            mysql_table="orders", pg_uri=self.pg.dsn("mall_plain_snapshot", SYNCD_USER, self.password),
            pg_table="orders", key="id", columns=columns, left_out=RELADIFF_LEFT_OUT)
        try:
            return peers.reladiff(installed, f"shop-{label}", compared, self.place())
        except Exception as exc:  # a peer that does not work here is skipped, not fatal
            return peers.skip_line(peers.RELADIFF, what, f"{type(exc).__name__}: {exc}")


def _dead_letters(dsn: str) -> int | None:
    """Dead letters in the target's state schema (docs/operations.md): a mapped drain that
    dead-letters changes did not apply them."""
    try:
        return runner.count(dsn, f"{STATE}.dead_letters")
    except psycopg.Error:
        return None


def run(bench: ShopBench, phase: Any) -> dict[str, Any]:
    """Every phase in order; `phase(name, action)` runs one and keeps the others going when it
    fails (its error goes into the results). The workload's figures."""
    figures: dict[str, Any] = {"sizes": bench.sizes.__dict__}
    figures["source"] = phase("shop: servers and generated source rows", bench.start)
    if figures["source"] is None:
        return figures
    figures["copy"] = phase("shop: 1 copies", bench.copies)
    backlog = phase("shop: 2 backlog (every copier stopped)", bench.backlog)
    if backlog is None:
        return figures
    start, end, figures["backlog"] = backlog
    raw = phase("shop: 2 raw decode of the backlog", lambda: bench.raw_decode(start, end))
    figures["raw_decode"] = raw
    changes = raw["library"]["rows"] if raw else bench.sizes.backlog_changes
    figures["drain"] = {style: phase(f"shop: 3 drain, {style}",
                                     lambda s=style: bench.drain(s, start, end, changes))
                        for style in shop.STYLES if style in bench.run_targets}
    figures["drain"][peers.CHAMELEON] = phase("shop: 3 drain, pg_chameleon",
                                              lambda: bench.chameleon_drain(changes))
    if raw:
        for part in figures["drain"].values():
            if part and part.get("changes_per_s"):
                part["ratio_to_raw_decode"] = round(part["changes_per_s"] / raw["library"]["rows_per_s"], 2)
    if len(bench.snapshot_configs) == len(shop.STYLES):
        figures["reconcile"] = phase("shop: 4 reconcile", bench.reconcile)
    return figures
