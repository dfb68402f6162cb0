"""Fixtures: throwaway MariaDB and PostgreSQL servers, shared by the whole session.

A server that cannot start makes the tests that need it fail (never skip). Set
SYNCD_KEEP_SANDBOX=1 to keep the servers' directories (data and logs) after the session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg import sql

from devtools.sandbox import MariaDBServer, PostgresServer

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sandbox_root() -> Iterator[Path]:
    """A directory for server files that the postgres OS user can traverse too."""
    root = Path(tempfile.mkdtemp(prefix="syncd-test-"))
    root.chmod(0o755)
    yield root
    if not os.environ.get("SYNCD_KEEP_SANDBOX"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb(sandbox_root: Path) -> Iterator[MariaDBServer]:
    with MariaDBServer(sandbox_root / "mariadb1", server_id=1) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb2(sandbox_root: Path) -> Iterator[MariaDBServer]:
    """A second source server (the "app" source)."""
    with MariaDBServer(sandbox_root / "mariadb2", server_id=2) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_minimal(sandbox_root: Path) -> Iterator[MariaDBServer]:
    """A source server whose row events carry no column names (`binlog_row_metadata=MINIMAL`,
    as MySQL 8.0 and most managed services by default): read with the schema history. A test
    may switch it to NO_LOG for a while (`tests/integration/test_schema_history.py`)."""
    with MariaDBServer(sandbox_root / "mariadb-minimal", server_id=3,
                       settings={"binlog_row_metadata": "MINIMAL"}) as server:
        yield server


@pytest.fixture(scope="session")
def postgres(sandbox_root: Path) -> Iterator[PostgresServer]:
    with PostgresServer(sandbox_root / "postgres") as server:
        yield server


def _random_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@pytest.fixture
def source_db() -> Iterator[Callable[[MariaDBServer], str]]:
    """``make(server)`` creates a fresh database on ``server`` and returns its name."""
    made: list[tuple[MariaDBServer, str]] = []

    def make(server: MariaDBServer) -> str:
        name = _random_name("src")
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        made.append((server, name))
        return name

    yield make
    for server, name in made:
        if server.running:
            with server.connect() as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def target_db(postgres: PostgresServer) -> Iterator[str]:
    """A fresh PostgreSQL database on ``postgres``; dropped afterwards."""
    name = _random_name("tgt")
    postgres.create_database(name)
    yield name
    if postgres.running:
        with postgres.connect() as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            conn.execute(drop)
