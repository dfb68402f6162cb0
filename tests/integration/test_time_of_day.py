"""A MySQL TIME into a PostgreSQL `time`/`timetz` column on real servers: a value within the day
arrives exactly (fraction kept); one outside it (negative, 24 h and over) is a dead letter
naming the column and the value on every path (the copy, the stream, a repair), never wrapped
modulo 24 hours as PostgreSQL's interval->time cast would. And `reconcile --repair` counts as
repaired only rows that are equal once written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, time, timedelta
from pathlib import Path

import pytest

from devtools.sandbox import PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

SOURCE_SQL = "CREATE TABLE shifts (id INT PRIMARY KEY, tm TIME(3), note VARCHAR(20))"
TARGET_SQL = """
CREATE TABLE shifts (id integer PRIMARY KEY, tm_time time(3), tm_tz timetz(3), tm_iv interval, note text);
"""
MAPPINGS = """\
mappings:
  - name: shifts
    source: shop
    table: shifts
    target: shifts
    key: [id]
    columns: {id: id, tm_time: tm, tm_tz: tm, tm_iv: tm, note: note}
"""
GOOD = {1: "12:30:45.125", 2: "00:00:00", 3: "23:59:59.999"}
BAD = {4: ("838:59:59.999", "838:59:59.999"), 5: ("-12:00:00.5", "-12:00:00.5"), 6: ("24:00:00", "24:00:00"),
       7: ("-00:00:00.001", "-00:00:00.001")}
EXPECTED_GOOD = [
    (1, time(12, 30, 45, 125000), time(12, 30, 45, 125000, tzinfo=UTC),
     timedelta(hours=12, minutes=30, seconds=45, microseconds=125000)),
    (2, time(0), time(0, tzinfo=UTC), timedelta(0)),
    (3, time(23, 59, 59, 999000), time(23, 59, 59, 999000, tzinfo=UTC),
     timedelta(hours=23, minutes=59, seconds=59, microseconds=999000)),
]


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    shop.execute(SOURCE_SQL)
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(MAPPINGS)
    yield s
    s.close()


def insert(shop: Source, values: dict[int, str]) -> None:
    shop.execute(*(f"INSERT INTO shifts VALUES ({i}, '{v}', 'n{i}')" for i, v in values.items()))


def target_rows(scenario: Scenario) -> list[tuple]:
    return scenario.target("SELECT id, tm_time, tm_tz, tm_iv FROM shifts ORDER BY id")


def letters(scenario: Scenario) -> dict[str, str]:
    return dict(scenario.target("SELECT row_key, reason FROM syncd.dead_letters WHERE mapping = 'shifts'"))


def assert_refused(found: dict[str, str]) -> None:
    assert set(found) == {f"id={i}" for i in BAD}
    for i, (_, shown) in BAD.items():
        assert found[f"id={i}"].startswith(f"column tm_time: TIME {shown} is outside 00:00:00 to "
                                           "23:59:59.999999, which a PostgreSQL time column holds"), found


def reconcile_json(scenario: Scenario, *args: str) -> tuple[int, dict]:
    result = scenario.cli("reconcile", "--json", *args)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)["mappings"][0]


def test_the_copy_keeps_times_of_the_day_and_dead_letters_others(scenario: Scenario, shop: Source) -> None:
    insert(shop, {**GOOD, **{i: v for i, (v, _) in BAD.items()}})
    copied = scenario.cli("snapshot")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert target_rows(scenario) == EXPECTED_GOOD
    assert_refused(letters(scenario))
    _, report = reconcile_json(scenario)
    assert report["differ"]["count"] == 0 and report["missing"]["count"] == 0, report
    assert report["unmappable"]["count"] == len(BAD)
    assert report["explained_by_dead_letters"] == len(BAD)
    retried = scenario.cli("dlq", "retry", "--all")  # the repair path: read again, refused again
    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert f"{len(BAD)} still failing" in retried.stdout
    assert target_rows(scenario) == EXPECTED_GOOD
    assert_refused(letters(scenario))


def test_the_stream_dead_letters_them_too(scenario: Scenario, shop: Source) -> None:
    process = scenario.start()
    eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 90)
    insert(shop, {i: v for i, (v, _) in BAD.items()})
    insert(shop, GOOD)
    eventually(lambda: len(target_rows(scenario)) == len(GOOD), 60)
    assert target_rows(scenario) == EXPECTED_GOOD
    assert_refused(letters(scenario))
    assert scenario.stop(process) == 0


def test_repair_never_counts_a_wrapped_row_as_repaired(scenario: Scenario, shop: Source) -> None:
    """The target holds what the old cast made of row 4 (22:59:59.999): a repair dead-letters the
    row; it is not counted repaired, and the status is not `repaired`."""
    insert(shop, {1: GOOD[1], 4: BAD[4][0]})
    scenario.target("INSERT INTO shifts VALUES (1, '01:00', '01:00+00', '01:00:00', 'n1'), "
                    "(4, '22:59:59.999', '22:59:59.999+00', '838:59:59.999', 'n4')")
    code, report = reconcile_json(scenario, "--repair")
    assert code == 1, report
    assert report["repaired"] == 1 and report["status"] == "drift"
    assert report["unmappable"]["count"] == 1
    assert [row["row_key"] for row in report["unmappable"]["rows"]] == ["id=4"]
    assert target_rows(scenario)[0] == EXPECTED_GOOD[0]


def test_a_repair_that_does_not_make_the_row_equal_is_not_counted(scenario: Scenario, shop: Source) -> None:
    """A target trigger rewrites what any write puts in `note`: the repair is applied, the row
    still differs, and reconcile says so instead of counting it repaired on every pass."""
    insert(shop, GOOD)
    assert scenario.cli("snapshot").returncode == 0
    scenario.target("CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN NEW.note := upper(NEW.note); RETURN NEW; END $$; "
                    "CREATE TRIGGER shout BEFORE INSERT OR UPDATE ON shifts "
                    "FOR EACH ROW EXECUTE FUNCTION shout()")
    scenario.target("UPDATE shifts SET tm_iv = '00:00:00' WHERE id = 2")  # note becomes 'N2'
    for _ in range(2):
        code, report = reconcile_json(scenario, "--repair")
        assert code == 1, report
        assert report["status"] == "drift"
        assert report["differ"] == {"count": 1, "rows": [{"key": [2], "columns": ["note"]}]}
        assert report["repaired"] == 0
        assert report["unrepaired"] == {"count": 1, "keys": [[2]]}
    text = scenario.cli("reconcile", "--repair").stdout
    assert "shifts: still differ after repair (id): 2" in text


def test_preview_shows_time_as_mysql_prints_it_and_the_dead_letter(scenario: Scenario, shop: Source) -> None:
    insert(shop, {1: GOOD[1], 4: BAD[4][0], 7: BAD[7][0]})
    shop.execute("INSERT INTO shifts VALUES (8, '-838:59:59', 'n8')")
    result = scenario.cli("preview", "--mapping", "shifts")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "    tm    12:30:45.125\n" in out and "    tm    838:59:59.999\n" in out
    assert "    tm    -00:00:00.001\n" in out and "    tm    -838:59:59\n" in out
    assert "days" not in out
    assert "    tm_time  12:30:45.125000\n" in out or "    tm_time  12:30:45.125\n" in out
    assert "[2] id=4: dead letter" in out
    assert "  dead letter: column tm_time: TIME 838:59:59.999 is outside" in out
    assert "4 source rows: 1 mapped, 3 dead letters, 0 filtered out." in out
