"""Peer baselines measured in the same run: pg_chameleon (copy and drain), reladiff (compare).

Each peer is installed with pip into a throwaway virtualenv in the run's temporary directory
(never into syncd's .venv), pinned to the version this benchmark was written against, pointed
at the same servers and tables as syncd, and timed the same way: wall time of its process
from launch to done, a ProcessWatch on its whole process tree. When an install or a run
fails, one line says which baseline is skipped and why, and the benchmark goes on.

How each is configured follows its own documentation:

* pg_chameleon 2.0.21 (the4thdoctor/pg_chameleon): the commands and the MySQL grants of
  docs/usage.rst (``set_configuration_files``, ``create_replica_schema``, ``add_source``,
  ``init_replica``, ``start_replica``; ``GRANT ALL`` on the schema, ``RELOAD``,
  ``REPLICATION CLIENT``, ``REPLICATION SLAVE``), the keys of docs/configuration_file.rst at
  the values of configuration/config-example.yml, except: ``log_dest: stdout`` (so the
  commands run in the foreground, where they can be timed), ``charset: utf8mb4`` for MySQL
  (the workloads hold emoji, which ``utf8`` cannot carry) and therefore ``copy_mode: direct``
  (``file`` opens its CSV with a Python codec named after the charset, and there is no
  ``utf8mb4`` codec), no ``limit_tables``/``skip_tables`` examples unless a workload copies a
  subset, and ``type_override`` empty. pg_chameleon refuses to run as root (global_lib.py):
  as root it runs as ``nobody`` with a home directory of its own, on Debian's /usr/bin/python3
  (the benchmark's own interpreter may live under /root).
* reladiff 0.6.0 (erezsh/reladiff): the cross-database form of docs/how-to-use.md,
  ``reladiff DB1 TABLE1 DB2 TABLE2 -k KEY -c COLUMN ... -s --json``, with its defaults
  (hashdiff, bisection factor 32, threshold 16384, one thread per database). It cannot map,
  so it compares a source table with its plain-copy target, over the columns it compares
  faithfully (its MySQL connection is ``utf8``, 3-byte, so emoji come back as ``?``; it
  compares JSON as text): the columns left out are recorded with the figure.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bench import measure, runner
from bench.workload import Server, connect
from devtools.sandbox import PostgresServer

CHAMELEON = "pg_chameleon"
RELADIFF = "reladiff"
REQUIREMENTS = {CHAMELEON: "pg_chameleon==2.0.21", RELADIFF: "reladiff[mysql,postgresql]==0.6.0"}
PACKAGES = {CHAMELEON: ("pg_chameleon", "mysql-replication", "PyMySQL", "psycopg2-binary"),
            RELADIFF: ("reladiff", "sqeleton", "mysql-connector-python", "psycopg2-binary")}
PEER_USER = "nobody"  # pg_chameleon's user when the benchmark runs as root


@dataclass(frozen=True)
class Place:
    """Where a peer runs: the run's directory, its clean-up stack, and the processes whose CPU
    is reported beside its own (label -> pid)."""

    work: Path
    stack: ExitStack
    others: dict[str, int]


def skip_line(name: str, what: str, reason: str) -> dict[str, Any]:
    """Prints the one line that says a baseline is skipped and why; the figure's record."""
    print(f"   baseline {name} ({what}) skipped: {reason}", flush=True)
    return {"skipped": reason}


@dataclass
class Installed:
    """A peer in its own virtualenv, or why it is not available."""

    name: str
    bin_dir: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)
    reason: str | None = None

    def record(self) -> dict[str, Any]:
        return {"requirement": REQUIREMENTS[self.name], "versions": self.versions,
                **({"skipped": self.reason} if self.reason else {})}


def why_not(installed: Installed | None) -> str:
    """Why a peer cannot give its baseline: its install failed, or peers were left out."""
    if installed is None:
        return "left out (--skip peers)"
    return installed.reason or "not installed"


def _interpreter() -> str | None:
    """The Python for the peers' virtualenvs: one that `nobody` can run when we are root."""
    if os.geteuid() != 0:
        return sys.executable
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else None


def install(name: str, directory: Path) -> Installed:
    """pip-installs the peer's pinned requirement into a new virtualenv at `directory`."""
    python = _interpreter()
    if python is None:
        return _not_installed(name, "no /usr/bin/python3 that an unprivileged user could run")
    pip = str(directory / "bin" / "pip")
    steps = (("python -m venv", [python, "-m", "venv", str(directory)]),
             (f"pip install {REQUIREMENTS[name]}",
              [pip, "install", "--disable-pip-version-check", "--quiet", REQUIREMENTS[name]]),
             ("pip list", [pip, "list", "--format", "json", "--disable-pip-version-check"]))
    for what, argv in steps:
        try:
            done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=900)
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or exc.stdout or "").strip().splitlines()
            return _not_installed(name, f"{what} failed: {last[-1] if last else exc}")
        except (OSError, subprocess.SubprocessError) as exc:
            return _not_installed(name, f"{what} failed: {exc}")
    wanted = {p.lower() for p in PACKAGES[name]}
    versions = {p["name"]: p["version"] for p in json.loads(done.stdout) if p["name"].lower() in wanted}
    versions["python"] = subprocess.run([python, "--version"], capture_output=True, text=True,
                                        check=False).stdout.strip()
    return Installed(name, directory / "bin", versions)


def _not_installed(name: str, reason: str) -> Installed:
    skip_line(name, "install", reason)
    return Installed(name, reason=reason)


def install_all(work: Path) -> dict[str, Installed]:
    return {name: install(name, work / f"venv-{name}") for name in (CHAMELEON, RELADIFF)}


# ---------------------------------------------------------------- pg_chameleon


@dataclass(frozen=True)
class Marker:
    """The backlog's last change, as a peer's target shows it once replayed."""

    table: str
    column: str
    value: int


class Chameleon:
    """pg_chameleon replicating one MySQL schema (or some of its tables) into a PostgreSQL
    database of its own, run by the peer user with its own home directory."""

    SOURCE = "mysql"  # the source's name in pg_chameleon's configuration
    CONFIG = "bench"

    def __init__(self, installed: Installed, label: str, *, mysql: Server, schema: str,
                 tables: tuple[str, ...], pg: PostgresServer, place: Place) -> None:
        assert installed.bin_dir is not None
        self.program = str(installed.bin_dir / "chameleon")
        self.work = place.work / f"chameleon-{label}"
        self.home = self.work / "home"
        self.label, self.mysql, self.schema, self.tables = label, mysql, schema, tables
        self.pg, self.place = pg, place
        self.database = self.user = f"chameleon_{label}"
        self.password = os.urandom(12).hex()

    def prepare(self) -> None:
        """The MySQL user and grants, the PostgreSQL role and database, the configuration, the
        replica schema and the source, as docs/usage.rst sets them up."""
        conn = connect(self.mysql, None)
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"CREATE OR REPLACE USER {self.user}@'%%' IDENTIFIED BY %s", (self.password,))
            cur.execute(f"GRANT ALL ON `{self.schema}`.* TO {self.user}@'%'")
            cur.execute(f"GRANT RELOAD, REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO {self.user}@'%'")
        conn.close()
        self.pg.create_user(self.user, self.password)
        self.pg.create_database(self.database, owner=self.user)
        self.home.mkdir(parents=True)
        self._own(self.work)
        self._own(self.home)
        self._command("set_configuration_files")
        config = self.home / ".pg_chameleon" / "configuration" / f"{self.CONFIG}.yml"
        config.write_text(yaml.safe_dump(self._config(), sort_keys=False), encoding="utf-8")
        self._own(config)
        self._command("create_replica_schema")
        self._command("add_source", "--source", self.SOURCE)

    def _config(self) -> dict[str, Any]:
        """configuration/config-example.yml's values, with the changes the module docstring lists."""
        source = {
            "db_conn": {"host": self.mysql.host, "port": str(self.mysql.port), "user": self.user,
                        "password": self.password, "charset": "utf8mb4", "connect_timeout": 10},
            "schema_mappings": {self.schema: self.schema},
            "limit_tables": [f"{self.schema}.{t}" for t in self.tables] or None, "skip_tables": None,
            "grant_select_to": None, "lock_timeout": "120s", "my_server_id": 100,
            "replica_batch_size": 10000, "replay_max_rows": 10000, "batch_retention": "1 day",
            "copy_max_memory": "300M", "copy_mode": "direct", "out_dir": str(self.work), "sleep_loop": 1,
            "on_error_replay": "continue", "on_error_read": "continue", "auto_maintenance": "disabled",
            "gtid_enable": False, "type": "mysql",
            "skip_events": {"insert": None, "delete": None, "update": None},
            "keep_existing_schema": False, "net_read_timeout": 600,
        }
        return {"pid_dir": "~/.pg_chameleon/pid/", "log_dir": "~/.pg_chameleon/logs/", "log_dest": "stdout",
                "log_level": "info", "log_days_keep": 10, "rollbar_key": "", "rollbar_env": "",
                "type_override": None,
                "pg_conn": {"host": self.pg.host, "port": str(self.pg.port), "user": self.user,
                            "password": self.password, "database": self.database, "charset": "utf8"},
                "sources": {self.SOURCE: source}}

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, PEER_USER)

    def _identity(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        user = pwd.getpwnam(PEER_USER)
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                "PYTHONIOENCODING": "utf-8"}

    def _argv(self, command: str, *extra: str) -> list[str]:
        return [self.program, command, "--config", self.CONFIG, *extra]

    def _command(self, command: str, *extra: str) -> None:
        """A set-up command, run to its end; raises with the log's tail when it fails."""
        log = self.work / f"{command}.log"
        with log.open("ab") as out:
            done = subprocess.run(self._argv(command, *extra), stdout=out, stderr=subprocess.STDOUT,
                                  env=self._env(), timeout=600, check=False, **self._identity())
        if done.returncode != 0 or "Traceback" in log.read_text(errors="replace"):
            raise RuntimeError(f"chameleon {command} failed: {' / '.join(runner.tail(log, 3))}")

    def _launch(self, command: str) -> tuple[subprocess.Popen[bytes], measure.ProcessWatch]:
        return runner.launch(self._argv(command, "--source", self.SOURCE), self.work / f"{command}.log",
                             self._env(), self.place.stack, self.place.others, label=CHAMELEON,
                             **self._identity())

    def target_counts(self) -> dict[str, int]:
        with self.pg.connect(self.database) as conn:
            return {t: int(conn.execute(f'SELECT count(*) FROM "{self.schema}"."{t}"').fetchone()[0])
                    for t in self.tables}

    def copy(self, source_rows: dict[str, int]) -> dict[str, Any]:
        """`init_replica` of the tables: rows copied per second, from launch to exit."""
        began = time.monotonic()
        process, watch = self._launch("init_replica")
        code = process.wait()
        seconds = time.monotonic() - began
        resources = watch.stop()
        copied = self._counts_or_none()
        if copied != source_rows:
            raise RuntimeError(f"init_replica exited {code} with {copied} rows of {source_rows}:"
                               f" {' / '.join(runner.tail(self.work / 'init_replica.log', 3))}")
        rows = sum(copied.values())
        return {"command": "chameleon init_replica", "exit_code": code, "rows_copied": copied,
                "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds), **resources}

    def _counts_or_none(self) -> dict[str, int] | None:
        try:
            return self.target_counts()
        except psycopg.Error:
            return None

    def drain(self, marker: Marker, changes: int, timeout: float, stall: float = 300) -> dict[str, Any]:
        """`start_replica` from where `init_replica` left off until the backlog's last change,
        the marker's, is in its target (it replays in binlog order); then stopped with SIGINT,
        as its stop command does. Fails when its replay has not moved for `stall` seconds."""
        began = time.monotonic()
        process, watch = self._launch("start_replica")
        query = f'SELECT 1 FROM "{self.schema}"."{marker.table}" WHERE "{marker.column}" = %s'
        progress, moved = -1, began
        with self.pg.connect(self.database) as conn:
            while conn.execute(query, (marker.value,)).fetchone() is None:
                now, replayed = time.monotonic(), self._replayed(conn)
                if replayed != progress:
                    progress, moved = replayed, now
                if process.poll() is not None:
                    raise RuntimeError(f"start_replica exited {process.returncode}:"
                                       f" {' / '.join(runner.tail(self.work / 'start_replica.log', 3))}")
                if now - moved > stall or now - began > timeout:
                    raise TimeoutError(f"start_replica had not replayed the backlog's last change after"
                                       f" {now - began:.0f} s ({replayed} rows replayed)")
                time.sleep(0.05)
        seconds = time.monotonic() - began
        resources = runner.stop(process, watch, signal.SIGINT)
        problems = self._replay_problems()
        if problems.get("replay_errors"):
            print(f"   note: pg_chameleon logged {problems['replay_errors']} replay errors and took"
                  f" {problems['tables_removed_from_replica']} out of its replica (on_error_replay:"
                  " continue); its drain figure is still the time until the backlog's last change arrived",
                  flush=True)
        return {"command": "chameleon start_replica", "changes": changes, "seconds": round(seconds, 2),
                "changes_per_s": round(changes / seconds), **problems, **resources}

    @staticmethod
    def _replayed(conn: Any) -> int:
        """Rows pg_chameleon's replay has applied so far (its batches' counters)."""
        return int(conn.execute("SELECT coalesce(sum(i_replayed), 0) FROM sch_chameleon.t_replica_batch")
                   .fetchone()[0])

    def _replay_problems(self) -> dict[str, Any]:
        """What pg_chameleon's replay refused (sch_chameleon.t_error_log) and the tables it then
        stopped replicating (t_replica_tables.b_replica_enabled)."""
        try:
            with self.pg.connect(self.database) as conn:
                errors = conn.execute("SELECT count(*) FROM sch_chameleon.t_error_log").fetchone()[0]
                samples = conn.execute("SELECT DISTINCT left(t_error_message, 200)"
                                       " FROM sch_chameleon.t_error_log LIMIT 3").fetchall()
                removed = conn.execute("SELECT v_schema_name || '.' || v_table_name"
                                       " FROM sch_chameleon.t_replica_tables WHERE NOT b_replica_enabled"
                                       " ORDER BY 1").fetchall()
        except psycopg.Error as exc:
            return {"replay_errors": None, "replay_problems_unknown": str(exc)}
        return {"replay_errors": int(errors), "replay_error_samples": [m for (m,) in samples],
                "tables_removed_from_replica": [t for (t,) in removed]}


# ---------------------------------------------------------------- reladiff


@dataclass(frozen=True)
class Compared:
    """One table on each side, for reladiff."""

    mysql_uri: str
    mysql_table: str
    pg_uri: str
    pg_table: str
    key: str
    columns: tuple[str, ...]
    left_out: dict[str, str]  # column -> why reladiff does not compare it


def reladiff(installed: Installed, label: str, compared: Compared, place: Place) -> dict[str, Any]:
    """One `reladiff` run (stats as JSON): source rows compared per second, launch to exit."""
    assert installed.bin_dir is not None
    columns = [arg for column in compared.columns for arg in ("-c", column)]
    argv = [str(installed.bin_dir / "reladiff"), compared.mysql_uri, compared.mysql_table,
            compared.pg_uri, compared.pg_table, "-k", compared.key, *columns, "-s", "--json"]
    log = place.work / f"reladiff-{label}.log"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(place.work), "LANG": "C.UTF-8",
           "COLUMNS": "100000"}  # its output goes through rich, which wraps lines at 80 columns otherwise
    began = time.monotonic()
    process, watch = runner.launch(argv, log, env, place.stack, place.others, label=RELADIFF)
    code = process.wait()
    seconds = time.monotonic() - began
    resources = watch.stop()
    stats = _json_object(log)
    if code != 0 or stats is None:
        raise RuntimeError(f"reladiff exited {code}: {' / '.join(runner.tail(log, 3))}")
    rows = int(stats["rows_A"])
    command = f"reladiff MYSQL {compared.mysql_table} POSTGRESQL {compared.pg_table} -k {compared.key}"
    return {"command": f"{command} {' '.join(columns)} -s --json",
            "columns_left_out": compared.left_out, "rows_compared": rows, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds),
            "found": {"missing": stats.get("exclusive_A"), "extra": stats.get("exclusive_B"),
                      "differ": stats.get("updated")},
            "rows_downloaded": (stats.get("stats") or {}).get("rows_downloaded"), **resources}


def _json_object(log: Path) -> dict[str, Any] | None:
    """The stats object reladiff printed last (its warnings go to the same log)."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]
    try:
        return json.loads(" ".join(lines[starts[-1]:])) if starts else None
    except json.JSONDecodeError:
        return None
