"""Launching the measured programs (syncd's command line, the peers) and reading what they left.

One owner for how a measured process is started (its own session, output to a log file, a
ProcessWatch on its whole process tree), stopped and cleaned up, so that syncd and the peer
tools are timed and sampled the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
import yaml

from bench import measure
from devtools.sandbox import SandboxError

REPO = Path(__file__).resolve().parent.parent
SYNCD_USER = "syncd"
STATE = "syncd"
PG_SETTINGS = {"track_commit_timestamp": "on", "synchronous_commit": "on", "shared_buffers": "256MB",
               "max_wal_size": "4GB", "checkpoint_timeout": "15min"}
MARIADB_SETTINGS = {"innodb_buffer_pool_size": "512M", "max_binlog_size": "1G"}
"""The servers of every workload run with these settings (recorded with the results)."""


class Server(Protocol):
    """A sandbox server (devtools/sandbox.py), as far as starting it goes."""

    @property
    def log_path(self) -> Path: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


ServerT = TypeVar("ServerT", bound=Server)


def start_server(make: Callable[[Path], ServerT], base: Path, stack: ExitStack,
                 failures: list[str]) -> ServerT:
    """A sandbox server made by `make` in `base`, started (stopped when `stack` closes). A start
    that fails (on a machine shared with other test suites, a server's first start has failed
    now and then) is tried once more in a fresh directory after a pause; the failure and the
    end of its server log are appended to `failures`, for the results."""
    server = make(base)
    stack.callback(server.stop)
    try:
        server.start()
        return server
    except SandboxError as exc:
        failures.append(f"{base.name}: {exc}; server log: {' / '.join(tail(server.log_path, 20))}")
    print(f"   {base.name} did not start; trying once more in a fresh directory", flush=True)
    shutil.rmtree(base, ignore_errors=True)
    time.sleep(10)
    again = make(base.with_name(base.name + "-again"))
    stack.callback(again.stop)
    again.start()
    return again


def write_config(directory: Path, target_dsn: str, sources: dict[str, dict[str, Any]],
                 mappings: dict[str, str]) -> Path:
    """A syncd config.yaml in `directory` with its mapping files; passwords come from the
    environment (PGPASSWORD, SOURCE_DB_PASSWORD: see `syncd_env`)."""
    (directory / "mappings").mkdir(parents=True, exist_ok=True)
    for file_name, text in mappings.items():
        (directory / "mappings" / file_name).write_text(text, encoding="utf-8")
    config = {
        "target": {"dsn": target_dsn, "password_env": "PGPASSWORD", "schema": "public",
                   "state_schema": STATE},
        "sources": {name: {"user": SYNCD_USER, "password_env": "SOURCE_DB_PASSWORD", "heartbeat": 1,
                           **settings} for name, settings in sources.items()},
        "mappings": ["mappings/"],
        "log": {"level": "info", "format": "json"},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def syncd_env(password: str, **extra: str) -> dict[str, str]:
    """The environment of a syncd command: the benchmark's, without what would redirect it."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"NOTIFY_SOCKET", "SYNCD_CONFIG", measure.DECODER_ENV}}
    env.update(PGPASSWORD=password, SOURCE_DB_PASSWORD=password, PYTHONUNBUFFERED="1", **extra)
    return env


def syncd_argv(command: str, config: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """syncd's public command line; ``BENCH_SYNCD=/path/to/script.py`` runs that script instead
    of ``python -m syncd`` (for experiments)."""
    program = [sys.executable, os.environ["BENCH_SYNCD"]] if os.environ.get("BENCH_SYNCD") else \
        [sys.executable, "-m", "syncd"]
    return [*program, command, "--config", str(config), *extra]


def launch(argv: list[str], log: Path, env: dict[str, str], stack: ExitStack, others: dict[str, int], *,
           label: str = "syncd", **popen: Any) -> tuple[subprocess.Popen[bytes], measure.ProcessWatch]:
    """Starts `argv` (called `label` in CPU accounting) in a session of its own, output appended
    to `log`, with a watch on its process tree (and the CPU of `others`, label -> pid); killed
    at the latest when `stack` closes."""
    out = log.open("ab")
    stack.callback(out.close)
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True, **popen)
    stack.callback(kill, process)
    return process, measure.ProcessWatch(process.pid, others, label=label)


def stop(process: subprocess.Popen[bytes], watch: measure.ProcessWatch,
         sig: signal.Signals = signal.SIGTERM) -> dict[str, Any]:
    """Asks the process to stop with `sig` (killed after 60 s); its watch's figures."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill(process)
    return watch.stop()


def kill(process: subprocess.Popen[bytes]) -> None:
    """Kills the process and everything in its session."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def profiler(directory: Path | None, pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """py-spy sampling `pid` and its decoder processes while a thread holds the GIL (collapsed
    stacks per process and thread: where Python CPU goes) until it exits; None without `directory`."""
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if spy is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
                             "--threads", "--gil", "--nonblocking", "--rate", "200",
                             "-o", str(directory / f"{name}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def tail(path: Path, lines: int = 12) -> list[str]:
    """The last lines of a log, for the results when a command failed."""
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:] if path.exists() else []


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def json_tail(path: Path) -> dict[str, Any] | None:
    """The indented JSON document a `--json` command printed after its JSON log lines."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line == "{"]
    if not starts:
        return None
    try:
        return json.loads("\n".join(lines[starts[-1]:]))
    except json.JSONDecodeError:
        return None


def reconcile_figures(log: Path, code: int, seconds: float, resources: dict[str, Any]) -> dict[str, Any]:
    """A `syncd reconcile --mapping M --json` run: source rows compared per second (launch to
    exit), what it found, and how it compared (mode, chunks skipped or pushed down)."""
    report = json_tail(log)
    mapping = (report or {}).get("mappings", [{}])[0]
    compared = int(mapping.get("rows_compared") or 0)
    failed = {} if code in (0, 1) else {"log_tail": tail(log)}
    return {**failed, "exit_code": code, "status": (report or {}).get("status"), "rows_compared": compared,
            "seconds": round(seconds, 2), "rows_per_s": round(compared / seconds) if compared else None,
            "engine_rows_per_s": mapping.get("rows_per_second"), "mode": mapping.get("mode"),
            "chunks": {k: mapping.get(k) for k in ("chunks", "chunks_unchanged", "chunks_pushed_down",
                                                   "chunks_differing")},
            "found": {k: (mapping.get(k) or {}).get("count") for k in ("missing", "extra", "differ")},
            **resources}
