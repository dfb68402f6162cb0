"""A source database, a target database, a config, and a `syncd` process to drive them."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from devtools.sandbox import MariaDBServer, PostgresServer

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def fixture(name: str) -> str:
    """A shared fixture file's text (tests/fixtures/): each source table and mapping written once."""
    return (FIXTURES / name).read_text(encoding="utf-8")


SHOP_ORDERS_SQL = fixture("shop.sql")
TARGET_ORDERS_SQL = fixture("target.sql")
SHOP_ORDERS_MAPPING = fixture("shop_orders.yaml")
APP_ORDERS_SQL = fixture("app.sql")
APP_ORDERS_MAPPING = fixture("app_orders.yaml")


@dataclass
class Source:
    name: str
    server: MariaDBServer
    database: str
    user: str = field(default_factory=lambda: f"syncd_{secrets.token_hex(3)}")
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    server_id: int = field(default_factory=lambda: 4000 + secrets.randbelow(100000))
    via_port: int | None = None
    """Connect syncd through this port (a test proxy) instead of the server's own."""

    def connect(self) -> pymysql.connections.Connection:
        return self.server.connect(self.database)

    def execute(self, *statements: str | tuple[str, tuple]) -> None:
        """Run statements in one transaction."""
        with self.connect() as conn, conn.cursor() as cur:
            conn.begin()
            for statement in statements:
                query, params = statement if isinstance(statement, tuple) else (statement, None)
                cur.execute(query, params)
            conn.commit()

    def rows(self, query: str) -> list[tuple]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())


@dataclass
class Scenario:
    """Everything one test needs; `start()` launches `syncd run` on it."""

    tmp: Path
    postgres: PostgresServer
    target_db: str
    sources: dict[str, Source]
    processes: list[subprocess.Popen] = field(default_factory=list)
    target_port: int | None = None
    """Connect syncd to PostgreSQL through this port (a test proxy) instead of the server's own."""
    program: tuple[str, ...] = (sys.executable, "-m", "syncd")
    """How to start syncd: this checkout by default, or an installed copy's `syncd`."""
    cwd: Path = REPO
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for syncd (e.g. a `hash` transform's salt)."""

    @classmethod
    def create(cls, tmp: Path, postgres: PostgresServer, target_db: str,
               sources: dict[str, Source], target_sql: str = TARGET_ORDERS_SQL) -> Scenario:
        for source in sources.values():
            source.server.create_user(source.user, source.password)
        with psycopg.connect(postgres.dsn(target_db), autocommit=True) as conn:
            conn.execute(target_sql)
        return cls(tmp, postgres, target_db, sources)

    def write_config(self, mappings: str, extra: str = "") -> Path:
        (self.tmp / "mappings").mkdir(exist_ok=True)
        (self.tmp / "mappings" / "mappings.yaml").write_text(textwrap.dedent(mappings))
        source_blocks = "".join(
            f"""
  {name}:
    host: 127.0.0.1
    port: {s.via_port or s.server.port}
    user: {s.user}
    password_env: {name.upper()}_DB_PASSWORD
    database: {s.database}
    server_id: {s.server_id}
    timezone: "+08:00"
    heartbeat: 1
"""
            for name, s in self.sources.items()
        )
        target_port = self.target_port or self.postgres.port
        config = f"""target:
  dsn: postgresql://{self.postgres.superuser}@127.0.0.1:{target_port}/{self.target_db}
  schema: public
  state_schema: syncd
sources:{source_blocks}
mappings: [mappings/]
batch: {{max_rows: 500, max_delay_ms: 100}}
log: {{level: debug, format: json}}
shutdown_timeout: 20
retry_max_seconds: 2
{textwrap.dedent(extra)}"""
        path = self.tmp / "config.yaml"
        path.write_text(config)
        return path

    @property
    def config_path(self) -> Path:
        return self.tmp / "config.yaml"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PGPASSWORD"] = self.postgres.superuser_password
        for name, source in self.sources.items():
            env[f"{name.upper()}_DB_PASSWORD"] = source.password
        return {**env, **self.extra_env}

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.program, *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, env=self.env(), timeout=timeout, check=False,
                              cwd=self.cwd)

    def start(self, log_name: str = "syncd.log", env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.tmp / log_name).open("ab")
        process = subprocess.Popen(
            [*self.program, "run", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env={**self.env(), **(env or {})}, cwd=self.cwd,
        )
        self.processes.append(process)
        return process

    def log_text(self, log_name: str = "syncd.log") -> str:
        path = self.tmp / log_name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, process: subprocess.Popen, timeout: float = 30) -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def kill(self, process: subprocess.Popen) -> None:
        process.kill()
        process.wait(10)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)

    def target(self, query: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.postgres.dsn(self.target_db), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []
