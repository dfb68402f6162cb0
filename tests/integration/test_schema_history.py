"""Sources without `binlog_row_metadata=FULL`: a real `syncd run` on the schema history.

The server (the session's `mariadb_minimal`) writes row events without column names: MINIMAL, or
NO_LOG for a test's duration. Legacy tables with unsigned integers, ENUM/SET labels and latin1
and gbk text holding dirty bytes are copied, streamed and snapshotted; every decodable row lands
as the server converts it, on the copy and the binlog path alike, every undecodable one is a dead
letter with its reason, and the stream never stops. Columns added in the middle, renamed,
modified and dropped while syncd streams, while it is stopped and across kill -9 are read with
the columns of their time; where syncd cannot pin them it pauses only that mapping, and a
snapshot of the mapping resumes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

LEGACY_SQL = (
    "CREATE TABLE legacy (id INT UNSIGNED PRIMARY KEY, big BIGINT UNSIGNED, tiny TINYINT UNSIGNED, "
    "l1 VARCHAR(40) CHARACTER SET latin1, gb VARCHAR(40) CHARACTER SET gbk, "
    "en ENUM('新', '旧', 'é'), el ENUM('é', 'ü', 'a') CHARACTER SET latin1, st SET('a', 'b', 'c d'), n INT) "
    "CHARACTER SET utf8mb4",
    "CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(20))",
)
LEGACY_TARGET = """
CREATE TABLE legacy (id bigint PRIMARY KEY, big numeric(20,0), tiny smallint, l1 text, gb text, en text,
                     el text, st text, n integer);
CREATE TABLE legacy_counts (id bigint PRIMARY KEY, n integer);
CREATE TABLE other (id integer PRIMARY KEY, v text);
"""
LEGACY_MAPPINGS = """
mappings:
  - name: legacy
    source: shop
    table: legacy
    target: legacy
    key: [id]
    columns: {id: id, big: big, tiny: tiny, l1: l1, gb: gb, en: en, el: el, st: st, n: n}
  - name: legacy_counts
    source: shop
    table: legacy
    target: legacy_counts
    key: [id]
    columns: {id: id, n: n}
  - name: other
    source: shop
    table: other
    target: other
    key: [id]
    columns: {id: id, v: v}
"""
LATIN1 = bytes(range(0x20, 0x100)).replace(b"\x7f", b"")  # every printable byte, 0x81 0x8D 0x8F 0x90 0x9D too
GBK_GOOD = ("c4e3bac3", "d6d0cec4")  # 你好 中文
GBK_BAD = ("a2e3", "fe50")  # well-formed, stored, but no character to the server either
LEGACY_COLUMNS = "id, big, tiny, l1, gb, en, el, st, n"


def legacy_rows(first: int) -> list[str]:
    """Inserts of rows `first`..: unsigned extremes, every latin1 byte, ENUM/SET labels, gbk text
    (clean, then two rows with bytes the server cannot convert)."""
    rows = []
    for i in range(8):
        l1 = LATIN1[i * 28:i * 28 + 28].hex()
        gb = f"41{GBK_BAD[i - 6]}42" if i >= 6 else GBK_GOOD[i % 2]
        rows.append(f"INSERT INTO legacy VALUES ({first + i}, {18446744073709551615 - i}, {255 - i}, X'{l1}', "
                    f"X'{gb}', {1 + i % 3}, {1 + (i + 1) % 3}, {i % 8}, {i})")
    return rows


@pytest.fixture
def level(request: pytest.FixtureRequest, mariadb_minimal: MariaDBServer) -> Iterator[str]:
    """The server's binlog_row_metadata for the test (`MINIMAL` unless parametrized), restored after."""
    wanted = getattr(request, "param", "MINIMAL")
    with mariadb_minimal.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SET GLOBAL binlog_row_metadata = '{wanted}'")
    yield wanted
    with mariadb_minimal.connect() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL binlog_row_metadata = 'MINIMAL'")


def new_scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, server: MariaDBServer,
                 source_db: Callable[[MariaDBServer], str], source_sql: tuple[str, ...], target_sql: str,
                 mappings: str) -> Scenario:
    shop = Source("shop", server, source_db(server))
    shop.execute(*source_sql)
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=target_sql)
    scenario.write_config(mappings)
    return scenario


def streaming(scenario: Scenario) -> bool:
    return '"streaming"' in scenario.cli("status", "--json").stdout


def server_view(shop: Source) -> dict[int, tuple]:
    """The legacy rows as the server converts them (NULL where it cannot convert a gbk value)."""
    rows = shop.rows("SELECT id, big, tiny, CONVERT(l1 USING utf8mb4), "
                     "IF(HEX(gb) REGEXP '^41(A2E3|FE50)42$', NULL, CONVERT(gb USING utf8mb4)), "
                     "CONVERT(en USING utf8mb4), CONVERT(el USING utf8mb4), CONVERT(st USING utf8mb4), n "
                     "FROM legacy")
    return {int(r[0]): (int(r[1]), int(r[2]), *r[3:]) for r in rows}


def target_view(scenario: Scenario) -> dict[int, tuple]:
    rows = scenario.target(f"SELECT {LEGACY_COLUMNS} FROM legacy")
    return {int(r[0]): (int(r[1]), int(r[2]), *r[3:]) for r in rows}


@pytest.mark.parametrize("level", ["MINIMAL", "NO_LOG"], indirect=True)
def test_legacy_tables_stream_exactly_without_full_row_metadata(
        tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb_minimal: MariaDBServer,
        source_db: Callable[[MariaDBServer], str], level: str) -> None:
    """Copied rows and streamed rows land alike; undecodable ones are dead letters; nothing stops."""
    scenario = new_scenario(tmp_path, postgres, target_db, mariadb_minimal, source_db, LEGACY_SQL,
                            LEGACY_TARGET, LEGACY_MAPPINGS)
    shop = scenario.sources["shop"]
    try:
        shop.execute("SET SESSION sql_mode = ''", *legacy_rows(1))
        validated = scenario.cli("validate", "--live")
        assert validated.returncode == 0, validated.stdout + validated.stderr
        assert f"binlog_row_metadata={level}" in validated.stdout and "schema history" in validated.stdout
        process = scenario.start()
        eventually(lambda: streaming(scenario), 90)
        shop.execute("SET SESSION sql_mode = ''", *legacy_rows(101),
                     "UPDATE legacy SET n = n + 1000, st = 'a,c d' WHERE id IN (3, 103, 107)")
        shop.execute("INSERT INTO other VALUES (1, 'after')")
        eventually(lambda: scenario.target("SELECT v FROM other") == [("after",)], 60)

        expected = {i: row for i, row in server_view(shop).items() if row[3] is not None}
        assert target_view(scenario) == expected
        copied = {i: row for i, row in expected.items() if i < 100}
        streamed = {i - 100: row for i, row in expected.items() if i > 100}
        assert copied == streamed and len(copied) == 6
        assert {"\x81", "\x8d", "€", "À"} <= set("".join(row[2] for row in copied.values()))
        assert {row[4] for row in copied.values()} == {"新", "旧", "é"}
        assert {row[5] for row in copied.values()} == {"é", "ü", "a"}
        assert scenario.target("SELECT count(*) FROM legacy_counts") == [(16,)]

        letters = scenario.target("SELECT mapping, row_key, reason FROM syncd.dead_letters ORDER BY row_key")
        assert {(m, k) for m, k, _ in letters} == {("legacy", f"id={i}") for i in (7, 8, 107, 108)}
        assert all(reason.startswith("column gb: gbk value X'41") for _, _, reason in letters), letters

        status = scenario.cli("status", "--json")
        [source] = json.loads(status.stdout)["sources"]
        assert source["schema_history"]["binlog_row_metadata"] == level
        snapshot = scenario.cli("snapshot", "--source", "shop")
        assert snapshot.returncode == 0, snapshot.stdout + snapshot.stderr
        assert target_view(scenario) == expected
        assert process.poll() is None and "Traceback" not in scenario.log_text()
        assert scenario.stop(process) == 0
    finally:
        scenario.close()
