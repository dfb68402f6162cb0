"""Row keys of every kind through the running daemon: a snapshot and a repair handed to it as
requests find each row again, BINARY, DECIMAL and DATETIME keys included (a key that did not
read back as itself once made the daemon take every row for gone and delete it)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.reconcile import snapshot
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source
from tests.integration.test_snapshot import api

SOURCE_SQL = (
    "CREATE TABLE tokens (tok VARBINARY(16) NOT NULL, region CHAR(4) NOT NULL, val VARCHAR(20), "
    "PRIMARY KEY (tok, region))",
    "CREATE TABLE slots (at DATETIME(6) NOT NULL, amount DECIMAL(10,2) NOT NULL, gap TIME(3) NOT NULL, "
    "val VARCHAR(20), PRIMARY KEY (at, amount, gap))",
)

TARGET_SQL = """
CREATE TABLE tokens (tok bytea, region text, val text, PRIMARY KEY (tok, region));
CREATE TABLE slots (at timestamp, amount numeric(10,2), gap interval, val text,
                    PRIMARY KEY (at, amount, gap));
"""

MAPPING = """
mappings:
  - name: shop_tokens
    source: shop
    table: tokens
    target: tokens
    key: [tok, region]
    columns: {tok: tok, region: region, val: val}
  - name: shop_slots
    source: shop
    table: slots
    target: slots
    key: [at, amount, gap]
    columns: {at: at, amount: amount, gap: gap, val: val}
"""

TOKENS = ("0x0000", "0x41", "0xFF", "0x6869", "0xE4B8AD", "0x5C78")


@pytest.fixture
def shop(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("shop", mariadb, source_db(mariadb))
    source.execute(*SOURCE_SQL)
    source.execute("INSERT INTO tokens VALUES "
                   + ", ".join(f"({t}, 'cn', 'v{i}')" for i, t in enumerate(TOKENS)))
    source.execute("INSERT INTO slots VALUES ('2024-05-01 12:30:45.000001', 10.50, '-01:00:00.5', 'a'), "
                   "('2024-05-01 12:30:45.000001', 10.00, '838:59:59', 'b'), "
                   "('1999-12-31 23:59:59', 0, 0, 'c')")
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(MAPPING)
    yield s
    s.close()


def counts(scenario: Scenario) -> tuple[int, int]:
    return tuple(scenario.target(f"SELECT count(*) FROM {table}")[0][0] for table in ("tokens", "slots"))


def test_snapshot_and_repair_through_the_daemon_find_every_key(scenario: Scenario) -> None:
    process = scenario.start()
    eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == 1, 90)
    assert counts(scenario) == (len(TOKENS), 3)
    for mapping in ("shop_tokens", "shop_slots"):
        result = scenario.cli("snapshot", "--mapping", mapping)
        assert result.returncode == 0, result.stdout + result.stderr
    assert counts(scenario) == (len(TOKENS), 3)

    scenario.target("DELETE FROM tokens WHERE tok = '\\xff'::bytea")
    scenario.target("UPDATE slots SET val = 'drift' WHERE amount = 10.00")
    scenario.target("DELETE FROM slots WHERE amount = 0")
    for mapping in ("shop_tokens", "shop_slots"):
        assert scenario.cli("reconcile", "--mapping", mapping).returncode == 1
        repaired = scenario.cli("reconcile", "--mapping", mapping, "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert scenario.cli("reconcile", "--mapping", mapping).returncode == 0
    assert counts(scenario) == (len(TOKENS), 3)
    assert scenario.target("SELECT val FROM slots WHERE amount = 10.00") == [("b",)]
    assert scenario.stop(process) == 0


def test_an_interrupted_copy_resumes_after_its_last_binary_key(scenario: Scenario,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The progress row keeps the last key as the bytes it was: the next run copies the rest."""
    config, plans = api(scenario, monkeypatch)
    stop = threading.Event()

    def progress(source: str, table: str, copied: int, total: int) -> None:
        if table == "tokens" and copied >= 2:
            stop.set()

    [first] = snapshot(config, plans, source="shop", mapping="shop_tokens", chunk_rows=2, stop=stop,
                       progress=progress)
    assert not first.finished and first.copied == {"tokens": 2}
    [(last_key,)] = scenario.target("SELECT last_key FROM syncd.snapshot_progress "
                                    "WHERE source_table = 'tokens#shop_tokens'")
    assert last_key == [{"bytes": sorted(bytes.fromhex(t[2:]) for t in TOKENS)[1].hex()}, "cn"]
    result = scenario.cli("snapshot", "--mapping", "shop_tokens", "--chunk-rows", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "copied tokens 4" in result.stdout
    assert counts(scenario)[0] == len(TOKENS)
