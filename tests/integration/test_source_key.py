"""Tables without a primary key, on real servers: a mapping names a unique key (`source_key`) and
syncd copies, streams, reconciles, repairs and retries by it; without one it refuses clearly."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.reconcile import snapshot
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source
from tests.integration.test_snapshot import api

# No PRIMARY KEY. `seq` repeats (so it cannot name a row), `note` is unique but nullable.
LEGACY_LOG_SQL = """
CREATE TABLE legacy_log (
    seq BIGINT NOT NULL,
    log_uuid CHAR(36) NOT NULL,
    level VARCHAR(10) NOT NULL,
    message VARCHAR(200),
    note VARCHAR(20),
    UNIQUE KEY uk_log_uuid (log_uuid),
    UNIQUE KEY uk_note (note),
    KEY k_seq (seq)
) CHARACTER SET utf8mb4
"""

# No PRIMARY KEY either; rows are named by a composite unique key of integers.
SHARD_EVENTS_SQL = """
CREATE TABLE shard_events (
    shard INT NOT NULL,
    seq BIGINT NOT NULL,
    payload VARCHAR(50),
    UNIQUE KEY uk_shard_seq (shard, seq)
) CHARACTER SET utf8mb4
"""

TARGET_SQL = """
CREATE TABLE legacy_log (log_uuid text PRIMARY KEY, seq bigint, level smallint, message text);
CREATE TABLE shard_events (shard integer, seq bigint, payload text, PRIMARY KEY (shard, seq));
"""

LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}

MAPPINGS = """
mappings:
  - name: legacy_log
    source: shop
    table: legacy_log
    target: legacy_log
    key: log_uuid
{source_key}    columns:
      log_uuid: log_uuid
      seq: seq
      level: {{from: level, map: {{{levels}}}}}
      message: message
  - name: shard_events
    source: shop
    table: shard_events
    target: shard_events
    key: [shard, seq]
    source_key: [shard, seq]
    columns: {{shard: shard, seq: seq, payload: payload}}
"""


def mappings(source_key: str = "[log_uuid]", levels: dict[str, int] = LEVELS) -> str:
    line = f"    source_key: {source_key}\n" if source_key else ""
    return MAPPINGS.format(source_key=line, levels=", ".join(f"{k}: {v}" for k, v in levels.items()))


def log_row(i: int, level: str = "info", message: str | None = None) -> tuple[str, tuple]:
    return ("INSERT INTO legacy_log (seq, log_uuid, level, message) VALUES (%s, %s, %s, %s)",
            (i % 4, f"u-{i:04d}", level, message or f"message {i}"))


def event_row(shard: int, seq: int) -> tuple[str, tuple]:
    return ("INSERT INTO shard_events VALUES (%s, %s, %s)", (shard, seq, f"p{shard}.{seq}"))


@pytest.fixture
def shop(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("shop", mariadb, source_db(mariadb))
    source.execute(LEGACY_LOG_SQL, SHARD_EVENTS_SQL)
    source.execute(*(log_row(i, list(LEVELS)[i % 4]) for i in range(1, 26)))
    source.execute(*(event_row(shard, seq) for shard in (1, 2) for seq in range(1, 13)))
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    write(s, mappings())
    yield s
    s.close()


def write(scenario: Scenario, text: str, max_rows: int = 7) -> None:
    """The config with small batches: the initial load copies `max_rows` rows per chunk."""
    path = scenario.write_config(text)
    path.write_text(path.read_text().replace("max_rows: 500", f"max_rows: {max_rows}"))


def expected_log(shop: Source) -> dict[str, tuple]:
    rows = shop.rows("SELECT log_uuid, seq, level, message FROM legacy_log")
    return {r[0]: (r[1], LEVELS.get(r[2]), r[3]) for r in rows if r[2] in LEVELS}


def target_log(scenario: Scenario) -> dict[str, tuple]:
    rows = scenario.target("SELECT log_uuid, seq, level, message FROM legacy_log")
    return {r[0]: tuple(r[1:]) for r in rows}


def expected_events(shop: Source) -> set[tuple]:
    return set(shop.rows("SELECT shard, seq, payload FROM shard_events"))


def target_events(scenario: Scenario) -> set[tuple]:
    return set(scenario.target("SELECT shard, seq, payload FROM shard_events"))


def in_sync(scenario: Scenario, shop: Source) -> bool:
    return target_log(scenario) == expected_log(shop) and target_events(scenario) == expected_events(shop)


def progress(text: str, table: str) -> list[int]:
    """Rows copied so far, per `snapshot_progress` log event of `table`."""
    events = (json.loads(line) for line in text.splitlines() if line.startswith("{"))
    return [e["rows"] for e in events if e.get("event") == "snapshot_progress" and e.get("table") == table]


def reconcile_json(scenario: Scenario, *args: str) -> tuple[int, dict[str, dict]]:
    result = scenario.cli("reconcile", "--json", "--chunk-rows", "7", *args)
    assert result.stdout.strip(), result.stderr
    return result.returncode, {m["mapping"]: m for m in json.loads(result.stdout)["mappings"]}


def counts(report: dict) -> tuple[str, int, int, int]:
    return report["status"], report["missing"]["count"], report["extra"]["count"], report["differ"]["count"]


def inject_drift(scenario: Scenario) -> None:
    scenario.target("DELETE FROM legacy_log WHERE log_uuid IN ('u-0003', 'u-0020')")
    scenario.target("UPDATE legacy_log SET message = 'tampered' WHERE log_uuid = 'u-0005'")
    scenario.target("INSERT INTO legacy_log VALUES ('x-extra', 1, 1, 'not in the source')")
    scenario.target("DELETE FROM shard_events WHERE shard = 2 AND seq = 1")
    scenario.target("UPDATE shard_events SET payload = 'tampered' WHERE shard = 1 AND seq = 8")
    scenario.target("INSERT INTO shard_events VALUES (3, 1, 'extra')")


class TestSourceKey:
    def test_copy_stream_reconcile_repair_and_retry_by_the_source_key(self, scenario: Scenario,
                                                                       shop: Source) -> None:
        # Initial load by `syncd run`, in chunks of 7 rows along each unique key.
        process = scenario.start()
        eventually(lambda: in_sync(scenario, shop), 60)
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        assert len(target_log(scenario)) == 25 and len(target_events(scenario)) == 24
        assert progress(scenario.log_text(), "legacy_log") == [7, 14, 21, 25]
        assert progress(scenario.log_text(), "shard_events") == [7, 14, 21, 24]

        # Streamed inserts, updates (one of them changes the key) and deletes apply by that key.
        shop.execute(log_row(26, "warn"), log_row(27, "error"),
                     "UPDATE legacy_log SET level = 'error', message = 'changed' WHERE log_uuid = 'u-0002'",
                     "UPDATE legacy_log SET log_uuid = 'u-0104' WHERE log_uuid = 'u-0004'",
                     "DELETE FROM legacy_log WHERE log_uuid IN ('u-0006', 'u-0007')",
                     "UPDATE shard_events SET payload = 'changed' WHERE shard = 2 AND seq = 5",
                     "DELETE FROM shard_events WHERE shard = 1 AND seq = 3", event_row(1, 13))
        # A row the mapping cannot map is dead-lettered, named by its source key.
        shop.execute(log_row(28, "trace"))
        eventually(lambda: in_sync(scenario, shop), 30)
        assert target_log(scenario)["u-0002"] == (2, 3, "changed")
        assert "u-0004" not in target_log(scenario) and "u-0104" in target_log(scenario)
        letters = eventually(lambda: scenario.target("SELECT row_key, reason FROM syncd.dead_letters"), 30)
        assert letters == [("log_uuid='u-0028'", "column level: value 'trace' is not in the map")]
        assert scenario.stop(process) == 0

        # Reconcile finds exactly the injected drift, by target key; the dead letter explains u-0028.
        inject_drift(scenario)
        code, reports = reconcile_json(scenario)
        assert code == 1
        log, events = reports["legacy_log"], reports["shard_events"]
        assert (log["mode"], events["mode"]) == ("slice-scan", "aligned")
        assert counts(log) == ("drift", 2, 1, 1)
        assert log["missing"]["keys"] == [["u-0003"], ["u-0020"]]
        assert log["extra"]["keys"] == [["x-extra"]]
        assert log["differ"]["rows"] == [{"key": ["u-0005"], "columns": ["message"]}]
        assert (log["unmappable"]["count"], log["unmappable"]["unexplained"]) == (1, 0)
        assert log["unmappable"]["rows"][0]["row_key"] == "log_uuid='u-0028'"
        assert counts(events) == ("drift", 1, 1, 1)
        assert events["missing"]["keys"] == [[2, 1]]
        assert events["extra"]["keys"] == [[3, 1]]
        assert events["differ"]["rows"] == [{"key": [1, 8], "columns": ["payload"]}]

        code, reports = reconcile_json(scenario, "--repair")
        assert code == 0, reports
        assert (reports["legacy_log"]["status"], reports["legacy_log"]["repaired"]) == ("repaired", 4)
        assert sorted(reports["legacy_log"]["repaired_keys_sample"]) == [
            ["u-0003"], ["u-0005"], ["u-0020"], ["x-extra"]]
        assert (reports["shard_events"]["status"], reports["shard_events"]["repaired"]) == ("repaired", 3)
        assert in_sync(scenario, shop)
        code, reports = reconcile_json(scenario)
        assert code == 0
        assert [counts(r) for r in reports.values()] == [("in_sync", 0, 0, 0)] * 2

        # The dead letter is retried by its source key once the mapping knows the value.
        write(scenario, mappings(levels={**LEVELS, "trace": 4}))
        retried = scenario.cli("dlq", "retry", "--all")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert target_log(scenario)["u-0028"] == (0, 4, "message 28")

        # `syncd snapshot` copies along the unique keys too, and removes rows the source lacks.
        inject_drift(scenario)
        copied = scenario.cli("snapshot", "--chunk-rows", "7")
        assert copied.returncode == 0, copied.stderr
        assert "shop: done; direct; copied legacy_log 26, shard_events 24" in copied.stdout
        assert progress(copied.stderr, "legacy_log") == [7, 14, 21, 26]
        assert progress(copied.stderr, "shard_events") == [7, 14, 21, 24]
        assert target_log(scenario) == {**expected_log(shop), "u-0028": (0, 4, "message 28")}
        assert target_events(scenario) == expected_events(shop)

    def test_snapshot_through_a_running_daemon_repairs_by_the_source_key(self, scenario: Scenario,
                                                                         shop: Source) -> None:
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        eventually(lambda: in_sync(scenario, shop), 30)
        scenario.target("DELETE FROM legacy_log WHERE log_uuid = 'u-0011'")
        scenario.target("INSERT INTO legacy_log VALUES ('x-extra', 1, 1, 'not in the source')")
        result = scenario.cli("snapshot", "--mapping", "legacy_log", "--chunk-rows", "10")
        assert result.returncode == 0, result.stderr
        assert "shop: done; stream; copied legacy_log 25" in result.stdout
        assert target_log(scenario) == expected_log(shop)
        requests = scenario.target("SELECT count(*), bool_and(status = 'done') FROM syncd.repair_requests")
        assert requests[0][0] >= 3 and requests[0][1] is True
        assert scenario.stop(process) == 0

    def test_a_snapshot_resumed_after_the_source_key_changed_starts_the_table_over(
            self, scenario: Scenario, shop: Source, monkeypatch: pytest.MonkeyPatch) -> None:
        shop.execute("ALTER TABLE legacy_log ADD COLUMN n BIGINT NOT NULL AUTO_INCREMENT, "
                     "ADD UNIQUE KEY uk_n (n)")
        config, plans = api(scenario, monkeypatch)
        stop = threading.Event()

        def stop_after_two_chunks(source: str, table: str, copied: int, total: int) -> None:
            if copied >= 14:
                stop.set()

        [first] = snapshot(config, plans, mapping="legacy_log", chunk_rows=7, stop=stop,
                           progress=stop_after_two_chunks)
        assert (first.finished, first.copied) == (False, {"legacy_log": 14})
        assert scenario.target("SELECT last_key, key_columns FROM syncd.snapshot_progress") == \
            [(["u-0014"], ["log_uuid"])]

        write(scenario, mappings(source_key="[n]"))
        result = scenario.cli("snapshot", "--mapping", "legacy_log", "--chunk-rows", "7")
        assert result.returncode == 0, result.stderr
        assert progress(result.stderr, "legacy_log") == [7, 14, 21, 25]
        changed = [json.loads(line) for line in result.stderr.splitlines() if "snapshot_key_changed" in line]
        assert [(e["was"], e["now"]) for e in changed] == [(["log_uuid"], ["n"])]
        assert target_log(scenario) == expected_log(shop)

    def test_preview_reads_and_names_rows_by_the_source_key(self, scenario: Scenario) -> None:
        result = scenario.cli("preview", "--mapping", "shard_events", "--limit", "3", "--json")
        assert result.returncode == 0, result.stderr
        keys = [record["key"] for record in json.loads(result.stdout)]
        assert keys == ["shard=1,seq=1", "shard=1,seq=2", "shard=1,seq=3"]


class TestRefusals:
    def test_a_table_without_primary_key_and_source_key_is_refused(self, scenario: Scenario) -> None:
        write(scenario, mappings(source_key=""))
        hint = "or name a unique key with `source_key:` in the mapping"
        copied = scenario.cli("snapshot", "--mapping", "legacy_log")
        assert copied.returncode == 2
        assert ".legacy_log (mapping 'legacy_log') has no primary key" in copied.stderr
        assert hint in copied.stderr
        reconciled = scenario.cli("reconcile", "--mapping", "legacy_log")
        assert reconciled.returncode == 2
        assert "has no primary key" in reconciled.stdout and hint in reconciled.stdout
        validated = scenario.cli("validate", "--live")
        assert validated.returncode == 1
        assert validated.stdout.splitlines() == [
            f"{scenario.tmp}/mappings/mappings.yaml:3:5: mapping 'legacy_log': table "
            f"{scenario.sources['shop'].database}.legacy_log on source shop has no primary key; name a "
            "unique key of NOT NULL columns with `source_key:` in the mapping, or add a primary key"]

    @pytest.mark.parametrize(("source_key", "problem"), [
        ("[note]", "column 'note' of unique key uk_note allows NULL, and rows with NULL there are not "
                   "unique; make it NOT NULL or name another key"),
        ("[seq]", "(seq) is not the PRIMARY KEY or a UNIQUE key of the table, so it may not name one "
                  "row; list exactly the columns of one (unique keys: uk_log_uuid (log_uuid); uk_note "
                  "(note))"),
        ("log_id", "the table has no column 'log_id'"),
    ])
    def test_validate_live_refuses_a_source_key_that_cannot_name_rows(self, scenario: Scenario,
                                                                      source_key: str, problem: str) -> None:
        write(scenario, mappings(source_key=source_key))
        database = scenario.sources["shop"].database
        name = source_key.strip("[]")
        validated = scenario.cli("validate", "--live")
        assert validated.returncode == 1
        assert validated.stdout.splitlines() == [
            f"{scenario.tmp}/mappings/mappings.yaml:8:17: mapping 'legacy_log': source_key [{name}] "
            f"cannot name the rows of {database}.legacy_log on source shop: {problem}"]
        reconciled = scenario.cli("reconcile", "--mapping", "legacy_log")
        assert reconciled.returncode == 2
        assert f"source_key [{name}] cannot name its rows: {problem}" in reconciled.stdout

    def test_validate_live_accepts_unique_not_null_keys(self, scenario: Scenario) -> None:
        validated = scenario.cli("validate", "--live")
        assert validated.returncode == 0, validated.stdout
        assert "(checked live)" in validated.stdout


class TestNoUniqueKeyAtAll:
    def test_refused_then_synced_by_an_invisible_primary_key(
            self, tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
            source_db: Callable[[MariaDBServer], str]) -> None:
        """No key at all: refused, naming both ways out; an INVISIBLE auto-increment primary key
        (docs/mappings.md) leaves the application's `SELECT *` alone and makes every path work."""
        shop = Source("shop", mariadb, source_db(mariadb))
        shop.execute("CREATE TABLE audit (who VARCHAR(20), what VARCHAR(50)) CHARACTER SET utf8mb4",
                     "INSERT INTO audit VALUES ('a', 'x'), ('a', 'x'), ('b', 'y')")
        target_sql = "CREATE TABLE audit (row_id bigint PRIMARY KEY, who text, what text)"
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=target_sql)
        try:
            scenario.write_config("""
                mappings:
                  - {name: audit, source: shop, table: audit, target: audit, key: row_id,
                     columns: {row_id: row_id, who: who, what: what}}
                """)
            refused = scenario.cli("snapshot")
            assert refused.returncode == 2
            assert "has no primary key" in refused.stderr and "`source_key:`" in refused.stderr
            shop.execute("ALTER TABLE audit ADD COLUMN row_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT "
                         "INVISIBLE PRIMARY KEY")
            assert shop.rows("SELECT * FROM audit ORDER BY who") == [("a", "x"), ("a", "x"), ("b", "y")]
            process = scenario.start()
            eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
            shop.execute("INSERT INTO audit VALUES ('c', 'z')", "UPDATE audit SET what = 'w' WHERE who = 'b'")
            expected = [(1, "a", "x"), (2, "a", "x"), (3, "b", "w"), (4, "c", "z")]
            eventually(lambda: scenario.target("SELECT * FROM audit ORDER BY row_id") == expected, 30)
            scenario.stop(process)
            scenario.target("DELETE FROM audit WHERE row_id = 2")
            scenario.target("UPDATE audit SET what = NULL WHERE row_id = 3")
            assert scenario.cli("reconcile", "--repair").returncode == 0
            assert scenario.target("SELECT * FROM audit ORDER BY row_id") == expected
            assert scenario.cli("reconcile").returncode == 0
        finally:
            scenario.close()
