"""Dates read as NULL in row-key columns (sql_mode '' or ALLOW_INVALID_DATES): the initial copy,
`syncd snapshot` and `syncd reconcile` account for every such row, and lose none of its neighbours.

A zero date ('0000-00-00'), a partial one ('2024-00-15') or an invalid one ('2024-02-30') reads
as NULL (docs/types.md), so the row's target key holds NULL: PostgreSQL refuses it and the row is
dead-lettered, and reconcile reports it missing. The rows are placed so that one of them closes a
chunk (500 rows): keyset pagination after it must go on from the value the server holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

CHUNK = 500
"""Rows per chunk: the scenario's batch.max_rows (the initial copy) and --chunk-rows below."""


@dataclass(frozen=True)
class Case:
    source_sql: str
    target_sql: str
    key: str
    columns: str
    sql_mode: str
    rows: tuple[str, ...]
    """The source rows, in key order."""
    bad: tuple[int, ...]
    """Indexes in `rows` of the rows whose key reads as NULL."""


def _events(partitioned: bool) -> Case:
    """The report's table: DATETIME(3) the second key column; a zero date closes the first chunk."""
    start = datetime(2024, 1, 1)
    rows = [f"(1, '{start + timedelta(seconds=n)}', {n}.50, 'n{n}')" for n in range(CHUNK - 1)]
    rows.append("(9, '0000-00-00 00:00:00', 1.00, 'zero')")
    rows += [f"({d}, '{start + timedelta(hours=n)}', {n}.25, 'café')" for d in (9, 10) for n in range(20)]
    partitions = (" PARTITION BY RANGE (YEAR(ev_time)) (PARTITION p0 VALUES LESS THAN (2000),"
                  " PARTITION p1 VALUES LESS THAN MAXVALUE)") if partitioned else ""
    return Case(
        "CREATE TABLE events (dev_id INT NOT NULL, ev_time DATETIME(3) NOT NULL, val DECIMAL(10,2), "
        "note VARCHAR(20) CHARACTER SET latin1, PRIMARY KEY (dev_id, ev_time))" + partitions,
        "CREATE TABLE events (src text, dev_id integer, ev_time timestamptz, val numeric(10,2), note text, "
        "PRIMARY KEY (src, dev_id, ev_time))",
        "[src, dev_id, ev_time]", "{src: {value: x}, dev_id: dev_id, ev_time: ev_time, val: val, note: note}",
        "", tuple(rows), (CHUNK - 1,))


def _days(sql_mode: str, odd: tuple[str, ...]) -> Case:
    """A DATE first key column; `odd` dates (read as NULL) sort among the others, the first of
    them closing the first chunk, the rest in the next."""
    first = date(2022, 1, 1)
    rows = [f"('{first + timedelta(days=n)}', 1, {n})" for n in range(CHUNK - 1)]
    rows += [f"('{day}', {dev}, 0)" for dev, day in enumerate(odd, start=1)]
    rows += [f"('2024-03-{n:02d}', 1, {n})" for n in range(1, 21)]
    return Case(
        "CREATE TABLE events (ev_day DATE NOT NULL, dev_id INT NOT NULL, n INT, "
        "PRIMARY KEY (ev_day, dev_id))",
        "CREATE TABLE events (src text, ev_day date, dev_id integer, n integer, "
        "PRIMARY KEY (src, ev_day, dev_id))",
        "[src, ev_day, dev_id]", "{src: {value: x}, ev_day: ev_day, dev_id: dev_id, n: n}",
        sql_mode, tuple(rows), tuple(range(CHUNK - 1, CHUNK - 1 + len(odd))))


def _year_and_timestamp() -> Case:
    """YEAR 0000 and a zero TIMESTAMP in key columns; the YEAR closes the first chunk."""
    start = datetime(2024, 1, 1)
    rows = [f"(1, 2000, '{start + timedelta(seconds=n)}', {n})" for n in range(CHUNK - 1)]
    rows += ["(9, 0, '2024-01-01 00:00:00', 0)", "(9, 2000, '0000-00-00 00:00:00', 0)"]
    rows += [f"({d}, 2000, '{start + timedelta(hours=n)}', {n})" for d in (9, 10) for n in range(1, 21)]
    return Case(
        "CREATE TABLE events (dev_id INT NOT NULL, y YEAR NOT NULL, "
        "ts TIMESTAMP NOT NULL DEFAULT '2000-01-01', n INT, PRIMARY KEY (dev_id, y, ts))",
        "CREATE TABLE events (src text, dev_id integer, y smallint, ts timestamptz, n integer, "
        "PRIMARY KEY (src, dev_id, y, ts))",
        "[src, dev_id, y, ts]", "{src: {value: x}, dev_id: dev_id, y: y, ts: ts, n: n}",
        "", tuple(rows), (CHUNK - 1, CHUNK))


CASES = {
    "datetime_second": _events(partitioned=False),
    "datetime_partitioned": _events(partitioned=True),
    "date_partial_zero": _days("", ("2024-00-15", "2024-01-00")),
    "date_invalid": _days("ALLOW_INVALID_DATES", ("2024-02-30", "2024-02-31", "2024-04-31")),
    "year_and_timestamp": _year_and_timestamp(),
}


def _mapping(case: Case, map_every_row: bool) -> str:
    # `where:` leaves every row in but sends each through the mapping in Python (no COPY text)
    where = "\n    where: {dev_id: {gt: 0}}" if map_every_row else ""
    return f"""
mappings:
  - name: events
    source: shop
    table: events
    target: events
    key: {case.key}
    columns: {case.columns}{where}
"""


@pytest.fixture(params=list(CASES), name="case")
def _case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.mark.parametrize("map_every_row", [False, True], ids=["copy_text", "mapped"])
def test_rows_whose_key_reads_as_null_are_dead_lettered_and_reported(
        tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
        source_db: Callable[[MariaDBServer], str], case: Case, map_every_row: bool) -> None:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(f"SET SESSION sql_mode = '{case.sql_mode}'", case.source_sql,
                 f"INSERT INTO events VALUES {', '.join(case.rows)}")
    assert shop.rows("SELECT COUNT(*) FROM events")[0][0] == len(case.rows)
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=case.target_sql)
    good = len(case.rows) - len(case.bad)
    try:
        scenario.write_config(_mapping(case, map_every_row))
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        scenario.stop(process)
        assert scenario.target("SELECT count(*) FROM events")[0][0] == good
        assert _letters(scenario) == len(case.bad)
        assert scenario.log_text().count('"zero_date_read_as_null"') == len(case.bad)

        scenario.target("DELETE FROM events")
        copied = scenario.cli("snapshot", "--mapping", "events", "--chunk-rows", str(CHUNK))
        assert copied.returncode == 0, copied.stderr
        assert f"copied events {len(case.rows)};" in copied.stdout, copied.stdout
        assert f"dead letters {len(case.bad)}" in copied.stdout, copied.stdout
        assert scenario.target("SELECT count(*) FROM events")[0][0] == good
        assert _letters(scenario) == len(case.bad)

        for full in ((), ("--full",)):
            checked = scenario.cli("reconcile", "--json", "--chunk-rows", str(CHUNK), *full)
            report = json.loads(checked.stdout)["mappings"][0]
            assert checked.returncode == 1, checked.stdout + checked.stderr
            assert (report["status"], report["rows_compared"], report["missing"]["count"]) == (
                "drift", len(case.rows), len(case.bad))
            assert report["explained_by_dead_letters"] == len(case.bad)
        repaired = scenario.cli("reconcile", "--json", "--repair", "--chunk-rows", str(CHUNK))
        report = json.loads(repaired.stdout)["mappings"][0]
        assert repaired.returncode == 1, repaired.stdout + repaired.stderr
        assert report["missing"]["count"] == report["dead_lettered"]["count"] == len(case.bad)
        assert scenario.target("SELECT count(*) FROM events")[0][0] == good
        assert _letters(scenario) == len(case.bad)
    finally:
        scenario.close()


def _letters(scenario: Scenario) -> int:
    found = scenario.target("SELECT reason FROM syncd.dead_letters WHERE status = 'pending'")
    assert all("null value in column" in reason for reason, in found), found
    return len(found)


def test_a_snapshot_through_the_daemons_stream_repairs_past_a_zero_date_in_the_key(
        tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
        source_db: Callable[[MariaDBServer], str]) -> None:
    """While a daemon streams, `syncd snapshot` repairs the table chunk by chunk through it."""
    case = CASES["datetime_second"]
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute("SET SESSION sql_mode = ''", case.source_sql,
                 f"INSERT INTO events VALUES {', '.join(case.rows)}")
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=case.target_sql)
    good = len(case.rows) - len(case.bad)
    try:
        scenario.write_config(_mapping(case, map_every_row=False))
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        scenario.target("DELETE FROM events WHERE dev_id <> 1")
        copied = scenario.cli("snapshot", "--mapping", "events", "--chunk-rows", str(CHUNK))
        assert copied.returncode == 0, copied.stderr
        assert "stream" in copied.stdout and f"dead letters {len(case.bad)}" in copied.stdout, copied.stdout
        eventually(lambda: scenario.target("SELECT count(*) FROM events")[0][0] == good, 30)
        assert _letters(scenario) == len(case.bad)
        scenario.stop(process)
    finally:
        scenario.close()
