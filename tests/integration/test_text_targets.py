"""Values of every kind mapped into PostgreSQL text columns: the same text on every write path.

(And a TIME into an `interval` column: kept as the source's duration, not split into days.)

A DATETIME, DATE, TIME, TIMESTAMP, DECIMAL, FLOAT, BINARY, a boolean or JSON mapped into a
`text` (or `varchar`) column is stored as the text PostgreSQL prints for the value (what an
`INSERT` of the value would store), whether the row came through the initial copy, a single
streamed change, or a streamed group written through COPY; `syncd reconcile` finds them in sync.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.mapping.astext import as_text
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

SOURCE_SQL = """
CREATE TABLE vals (
    id INT PRIMARY KEY,
    dt DATETIME(3), dt0 DATETIME, d DATE, tm TIME(3), ts TIMESTAMP(6) NULL,
    dec2 DECIMAL(10,2), f DOUBLE, bn BINARY(4), flag TINYINT(1), js JSON, yr YEAR, en ENUM('a','b')
) CHARACTER SET utf8mb4
"""

COLUMNS = ("dt", "dt0", "d", "tm", "ts", "dec2", "f", "bn", "flag", "js", "yr", "en")

TARGET_SQL = ("CREATE TABLE vals (id integer PRIMARY KEY, " + ", ".join(f"{c} text" for c in COLUMNS)
              + ", tmi interval);")

MAPPING = """
mappings:
  - name: vals
    source: shop
    table: vals
    target: vals
    key: [id]
    columns:
      id: id
      dt: dt
      dt0: dt0
      d: d
      tm: tm
      ts: ts
      dec2: dec2
      f: f
      bn: bn
      flag: {from: flag, transform: to_bool}
      js: js
      yr: yr
      en: en
      tmi: tm
"""

VALUES = ("'2024-05-01 12:30:45.500', '2024-05-01 12:30:45', '2024-05-01', '-01:02:03.250', "
          "'2024-05-01 12:30:45.123000', 100.50, 0.1, X'41420000', 1, '{\"b\": [1, 2.5], \"a\": \"x\"}', "
          "2024, 'b'")


@pytest.fixture
def shop(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("shop", mariadb, source_db(mariadb))
    source.execute(SOURCE_SQL)
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(MAPPING)
    yield s
    s.close()


def insert(ids: range) -> str:
    return "INSERT INTO vals VALUES " + ", ".join(f"({i}, {VALUES})" for i in ids)


def texts(scenario: Scenario) -> dict[int, tuple]:
    query = f"SELECT id, {', '.join(COLUMNS)}, tmi::text FROM vals"
    return {r[0]: tuple(r[1:]) for r in scenario.target(query)}


def test_every_path_stores_the_same_text_and_reconcile_agrees(scenario: Scenario, shop: Source) -> None:
    shop.execute(insert(range(1, 3)))
    assert scenario.cli("snapshot").returncode == 0
    process = scenario.start()
    eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == 1, 90)
    shop.execute(insert(range(3, 4)))
    shop.execute(insert(range(100, 300)))
    eventually(lambda: len(texts(scenario)) == 203, 30)
    found = texts(scenario)
    assert found[1] == found[3] == found[100] == (
        "2024-05-01 12:30:45.5", "2024-05-01 12:30:45", "2024-05-01", "-01:02:03.25",
        "2024-05-01 12:30:45.123+00", "100.50", "0.1", "\\x41420000", "true",
        '{"b": [1, 2.5], "a": "x"}', "2024", "b", "-01:02:03.25")
    assert scenario.cli("reconcile").returncode == 0

    # A row an earlier release wrote through COPY (Python's spelling) is drift, and repaired.
    scenario.target("UPDATE vals SET dt = '2024-05-01 12:30:45.500000', flag = 't' WHERE id = 150")
    assert scenario.cli("reconcile").returncode == 1
    assert scenario.cli("reconcile", "--repair").returncode == 0
    assert texts(scenario)[150] == found[100]
    assert scenario.cli("reconcile").returncode == 0
    assert scenario.stop(process) == 0


def oracle_values() -> list[Any]:
    """Edge values and random ones of each kind whose text PostgreSQL prints itself."""
    rng = random.Random(7)
    stamps = [datetime(1, 1, 1), datetime(999, 12, 31, 23, 59, 59, 999999),
              datetime(2024, 5, 1, 12, 30, 45, 120),
              datetime(9999, 12, 31, 23, 59, 59, 10)]
    stamps += [datetime(1, 1, 1) + timedelta(microseconds=rng.randrange(315_537_897_600_000_000))
               for _ in range(100)]
    numbers = [Decimal("100.50"), Decimal("-0.001"), Decimal("12345678901234567890.123456789"), Decimal(0)]
    floats = [0.1, 2.0, -1.5e-7, 1e15, 1.2345678901234567e300, 5e-324, 123456.789]
    return [*stamps, *[s.replace(tzinfo=UTC) for s in stamps[:60]], *[s.date() for s in stamps[:20]],
            *numbers, True, False, b"AB\x00\xff", b"", 0, -42, *floats]


def test_the_text_is_what_postgresql_prints(postgres: PostgresServer, target_db: str) -> None:
    """The text of each value is PostgreSQL's own text of it (a float: the same number)."""
    with psycopg.connect(postgres.dsn(target_db), autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for value in oracle_values():
            printed = conn.execute("SELECT %s::text", (value,)).fetchone()[0]
            if isinstance(value, float):
                assert float(as_text(value)) == float(printed), value
            else:
                assert as_text(value) == printed, value


def test_a_target_database_with_other_output_styles_works_as_any_other(scenario: Scenario, shop: Source,
                                                                        target_db: str) -> None:
    """DateStyle, IntervalStyle and extra_float_digits set on the database do not reach syncd's
    sessions: the stream, status, the dead-letter list and reconcile's digests read as usual."""
    scenario.target(f"ALTER DATABASE {target_db} SET DateStyle = 'SQL, DMY'")
    scenario.target(f"ALTER DATABASE {target_db} SET IntervalStyle = 'sql_standard'")
    scenario.target(f"ALTER DATABASE {target_db} SET extra_float_digits = 0")
    shop.execute(insert(range(1, 50)))
    process = scenario.start()
    eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == 1, 90)
    shop.execute(insert(range(50, 60)))
    eventually(lambda: len(texts(scenario)) == 59, 30)
    assert texts(scenario)[55][0] == "2024-05-01 12:30:45.5"
    assert scenario.cli("dlq", "list").returncode == 0
    assert scenario.cli("reconcile").returncode == 0
    assert scenario.stop(process) == 0
