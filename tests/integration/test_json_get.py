"""`json_get` of an object or an array on real servers: stored as jsonb (and as JSON text in a
text column) by the initial copy, the stream (single rows and COPY groups) and repairs, and
reconcile finds the target in sync. psycopg cannot adapt a dict, and makes a list an array: every
such row used to be dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

SOURCE_SQL = "CREATE TABLE docs (id INT PRIMARY KEY, j JSON) CHARACTER SET utf8mb4"

TARGET_SQL = """
CREATE TABLE docs (id integer PRIMARY KEY, j_arr jsonb, j_obj jsonb, j_json json, j_text text, j_leaf text);
"""

MAPPINGS = """
mappings:
  - name: docs
    source: shop
    table: docs
    target: docs
    key: [id]
    columns:
      id: id
      j_arr: {from: j, transform: {json_get: "$.a.b"}}
      j_obj: {from: j, transform: {json_get: "$.a"}}
      j_json: {from: j, transform: {json_get: "$.a.b"}}
      j_text: {from: j, transform: {json_get: "$.a"}}
      j_leaf: {from: j, transform: {json_get: "$.a.b[2].c"}}
"""

COPIED = 300
"""Rows of the initial copy: COPY text chunks, not single rows."""


def doc(i: int) -> str:
    return json.dumps({"a": {"b": [i, 2.50, {"c": f"x\t{i}"}], "名": "值"}}, ensure_ascii=False)


def values(ids: range) -> str:
    return ", ".join(f"({i}, '{doc(i)}')".replace("\\", "\\\\") for i in ids)


def expected(i: int) -> tuple:
    obj = {"b": [i, 2.50, {"c": f"x\t{i}"}], "名": "值"}
    return (i, obj["b"], obj, json.dumps(obj["b"], ensure_ascii=False), json.dumps(obj, ensure_ascii=False),
            f"x\t{i}")


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
             source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SOURCE_SQL, "INSERT INTO docs VALUES " + values(range(1, COPIED + 1)))
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(MAPPINGS)
    yield s
    s.close()


def stored(scenario: Scenario) -> dict[int, tuple]:
    rows = scenario.target("SELECT id, j_arr, j_obj, j_json::text, j_text, j_leaf FROM docs ORDER BY id")
    return {row[0]: tuple(row) for row in rows}


def letters(scenario: Scenario) -> list[tuple]:
    return scenario.target("SELECT row_key, reason FROM syncd.dead_letters")


def reconcile(scenario: Scenario, *args: str) -> dict:
    result = scenario.cli("reconcile", "--json", *args)
    assert result.stdout.strip(), result.stderr
    [found] = json.loads(result.stdout)["mappings"]
    return found


def test_objects_and_arrays_are_stored_as_json_by_copy_stream_and_repair(scenario: Scenario) -> None:
    shop = scenario.sources["shop"]
    process = scenario.start()
    eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 90)
    assert letters(scenario) == []
    assert stored(scenario) == {i: expected(i) for i in range(1, COPIED + 1)}

    shop.execute(f"INSERT INTO docs VALUES {values(range(1001, 1002))}")               # a single row
    shop.execute(f"INSERT INTO docs VALUES {values(range(2001, 2201))}")               # a COPY group
    eventually(lambda: len(stored(scenario)) == COPIED + 201, 30)
    assert scenario.stop(process) == 0
    assert letters(scenario) == []
    everything = [*range(1, COPIED + 1), 1001, *range(2001, 2201)]
    assert stored(scenario) == {i: expected(i) for i in everything}
    report = reconcile(scenario)
    assert [report[n]["count"] for n in ("missing", "extra", "differ")] == [0, 0, 0], report

    scenario.target("""UPDATE docs SET j_arr = '[0]', j_obj = '{}', j_json = '[]', j_text = '{"b": 1}'
                       WHERE id IN (7, 2007)""")
    scenario.target("DELETE FROM docs WHERE id = 1001")
    report = reconcile(scenario, "--repair")
    assert report["repaired"] == 3, report
    assert letters(scenario) == []
    assert stored(scenario) == {i: expected(i) for i in everything}
    report = reconcile(scenario)
    assert [report[n]["count"] for n in ("missing", "extra", "differ")] == [0, 0, 0], report
