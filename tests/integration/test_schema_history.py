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
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.source.mysql import MySQLSource
from syncd.source.schema_history import SchemaHistory
from tests.helpers import eventually
from tests.integration import typecorpus as corpus
from tests.integration.binlog_reads import DECODERS, decoded_changes, position, root_source
from tests.integration.scenario import Scenario, Source
from tests.integration.test_normal_form import create_in_old_format
from tests.integration.test_types import COPY, DELETED, INSERTED, UPDATED, Corpus, decoder_problems

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
        rows.append(f"INSERT INTO legacy VALUES ({first + i}, {18446744073709551615 - i}, {255 - i}, "
                    f"X'{l1}', X'{gb}', {1 + i % 3}, {1 + (i + 1) % 3}, {i % 8}, {i})")
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


@pytest.mark.parametrize("level", ["MINIMAL", "NO_LOG"], indirect=True)
def test_the_type_corpus_reads_as_the_server_holds_it(
        mariadb_minimal: MariaDBServer, source_db: Callable[[MariaDBServer], str],
        monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    """Every type and modifier of the type corpus, inserted, updated and deleted, read by each
    decoder with the schema history: each value as the server holds it, and the C decoder reads
    the tables it reads with full metadata."""
    shop = Source("shop", mariadb_minimal, source_db(mariadb_minimal))
    grouped = corpus.tables()
    shop.execute(*(corpus.source_ddl(t, k) for t, k in grouped.items() if t not in corpus.OLD_FORMAT))
    for table in corpus.OLD_FORMAT:
        create_in_old_format(mariadb_minimal, shop.database, corpus.source_ddl(table, grouped[table]))
    start = position(mariadb_minimal)
    source = MySQLSource(root_source(mariadb_minimal, shop.database, monkeypatch))
    entries = source.pin_schemas(grouped, start)
    assert all(entry.known for entry in entries)
    run = Corpus(None, shop, corpus.SEED)  # type: ignore[arg-type]  # no target: the reads alone
    for block in (INSERTED, UPDATED, DELETED):
        run.load(block)
    before = run.oracle()
    run.update()
    run.delete()
    end = position(mariadb_minimal)
    after = run.oracle()
    problems = []
    for decoder in DECODERS:
        use: dict[str, tuple[bool, int]] = {}
        changes = decoded_changes(mariadb_minimal, shop.database, set(grouped), start, end, decoder,
                                  monkeypatch, use, SchemaHistory(entries, recording=True))
        problems += decoder_problems(decoder, changes, before, after)
        if decoder == "fast":
            problems += [f"the C decoder did not decode {t}: {use.get(t)}" for t in corpus.NATIVE
                         if use.get(t) != (True, 0)]
    assert not problems, run.failure(problems)


def test_the_type_corpus_lands_as_with_full_metadata_through_syncd_run(
        tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb_minimal: MariaDBServer,
        source_db: Callable[[MariaDBServer], str], level: str) -> None:
    """The initial copy and the binlog (inserts, updates, deletes, through the decoder process,
    mappings and sink) land every corpus value as the server holds it, on a MINIMAL source."""
    shop = Source("shop", mariadb_minimal, source_db(mariadb_minimal))
    grouped = {t: k for t, k in corpus.tables().items() if t not in corpus.OLD_FORMAT}
    shop.execute(*(corpus.source_ddl(t, k) for t, k in grouped.items()))
    target_sql = ";\n".join(corpus.target_ddl(t, k) for t, k in grouped.items())
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=target_sql)
    run = Corpus(scenario, shop, corpus.SEED)
    run.kinds, run.rows = grouped, {t: run.rows[t] for t in grouped}
    try:
        scenario.write_config("mappings:\n" + "".join(corpus.mapping(t, k) for t, k in grouped.items()))
        run.load(COPY)
        process = scenario.start()
        eventually(lambda: streaming(scenario), 90)
        for block in (INSERTED, UPDATED, DELETED):
            run.load(block)
        run.update()
        run.delete()
        run.fill_expected(run.oracle())
        eventually(lambda: not run.mismatches(), 90)
        assert not scenario.target("SELECT reason FROM syncd.dead_letters")
        assert scenario.stop(process) == 0
    finally:
        scenario.close()


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


PEOPLE_SQL = (
    "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET gbk, age INT UNSIGNED, "
    "tag ENUM('x', 'y', 'z')) CHARACTER SET utf8mb4",
    "CREATE TABLE other (id INT PRIMARY KEY, v VARCHAR(20))",
)
PEOPLE_TARGET = """
CREATE TABLE people (id integer PRIMARY KEY, name text, age numeric(20,0), tag text);
CREATE TABLE other (id integer PRIMARY KEY, v text);
"""
PEOPLE_MAPPINGS = """
mappings:
  - {name: people, source: shop, table: people, target: people, key: [id],
     columns: {id: id, name: name, age: age, tag: tag}}
  - {name: other, source: shop, table: other, target: other, key: [id], columns: {id: id, v: v}}
"""


class People:
    """The people table on a MINIMAL source, changed by DDL around a `syncd run`."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.shop = scenario.sources["shop"]
        self.next_id = 1
        self.marks = 0

    def add(self, count: int = 3, **extra: str) -> None:
        """Rows with CJK names (gbk), unsigned ages past 2^31, labels; `extra` columns too."""
        rows = []
        for _ in range(count):
            i = self.next_id
            self.next_id += 1
            names = ", ".join(["id", "name", "age", "tag", *extra])
            values = ", ".join([str(i), f"'人{i}号'", str(4294967295 - i), f"'{'xyz'[i % 3]}'",
                                *(v.format(i=i) for v in extra.values())])
            rows.append(f"INSERT INTO people ({names}) VALUES ({values})")
        self.shop.execute(*rows, f"UPDATE people SET tag = 'z', age = age - 1 WHERE id = {self.next_id - 1}")

    def caught_up(self, timeout: float = 60) -> None:
        """Wait until a marker row written now has arrived through `other`."""
        self.marks += 1
        self.shop.execute(f"INSERT INTO other VALUES ({self.marks}, 'mark')")
        eventually(lambda: self.scenario.target(f"SELECT 1 FROM other WHERE id = {self.marks}"), timeout)

    def source_rows(self) -> dict[int, tuple]:
        rows = self.shop.rows("SELECT id, CONVERT(name USING utf8mb4), age, CONVERT(tag USING utf8mb4) "
                              "FROM people")
        return {int(r[0]): (r[1], int(r[2]), r[3]) for r in rows}

    def target_rows(self) -> dict[int, tuple]:
        rows = self.scenario.target("SELECT id, name, age, tag FROM people")
        return {r[0]: (r[1], int(r[2]), r[3]) for r in rows}

    def in_sync(self) -> None:
        assert self.target_rows() == self.source_rows()

    def restart(self, process: object, kill: bool = True) -> object:
        if kill:
            self.scenario.kill(process)  # type: ignore[arg-type]
        else:
            assert self.scenario.stop(process) == 0  # type: ignore[arg-type]
        return self.scenario.start()


def pauses(scenario: Scenario) -> dict[str, str]:
    return dict(scenario.target("SELECT mapping, reason FROM syncd.paused_mappings"))


def columns_changed_streamed_and_across_kill_9(people: People, process: Any) -> Any:
    """ADD in the middle (streamed), RENAME (while killed), MODIFY (killed while it streams),
    DROP (killed just after): every row lands exactly, nothing pauses."""
    people.add()
    people.shop.execute("ALTER TABLE people ADD COLUMN mid INT AFTER id")
    people.add(mid="{i}")
    people.caught_up()
    people.in_sync()
    process = people.restart(process)
    people.shop.execute("ALTER TABLE people RENAME COLUMN mid TO mid2")
    people.add(mid2="-{i}")
    people.caught_up()
    people.in_sync()
    people.shop.execute("ALTER TABLE people MODIFY COLUMN age BIGINT UNSIGNED")
    people.add()
    people.shop.execute("UPDATE people SET age = 18446744073709551615 - id")
    process = people.restart(process)
    people.shop.execute("ALTER TABLE people DROP COLUMN mid2", "INSERT INTO other VALUES (1000, 'x')")
    process = people.restart(process)
    people.add()
    people.caught_up()
    people.in_sync()
    assert not pauses(people.scenario)
    return process


def two_ddls_while_stopped(people: People, process: Any) -> Any:
    """Two DDLs on the table while syncd is stopped: the first cannot be pinned, the mapping
    pauses with the remedy (the other one streams on), a snapshot of it resumes it."""
    scenario = people.scenario
    assert scenario.stop(process) == 0
    people.shop.execute("ALTER TABLE people ADD COLUMN x VARCHAR(5) AFTER name")
    people.add(x="'x{i}'")
    people.shop.execute("ALTER TABLE people DROP COLUMN x")
    people.add()
    process = scenario.start()
    people.caught_up()
    [reason] = eventually(lambda: list(pauses(scenario).values()), 30)
    assert "cannot be pinned" in reason and "syncd snapshot --mapping people" in reason
    assert scenario.stop(process) == 0
    copied = scenario.cli("snapshot", "--mapping", "people")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    process = scenario.start()
    eventually(lambda: not pauses(scenario), 30)
    people.add()
    people.caught_up()
    people.in_sync()
    return process


def ddl_the_binlog_never_saw(people: People, process: Any) -> None:
    """A column added with sql_log_bin=0: the table map no longer fits, the mapping pauses; a
    snapshot through the running syncd and a reload resume it."""
    scenario = people.scenario
    with people.shop.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("ALTER TABLE people ADD COLUMN hidden INT DEFAULT 5 AFTER id")
    people.add()
    people.caught_up()
    [reason] = eventually(lambda: list(pauses(scenario).values()), 30)
    assert "does not fit the schema history" in reason and "5 columns, the schema history 4" in reason
    copied = scenario.cli("snapshot", "--mapping", "people")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "snapshot_moved_pauses" in copied.stdout + copied.stderr
    process.send_signal(signal.SIGHUP)
    eventually(lambda: not pauses(scenario), 30)
    people.add()
    people.caught_up()
    people.in_sync()


def test_columns_changed_while_streaming_while_stopped_and_across_kill_9_are_read_as_written(
        tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb_minimal: MariaDBServer,
        source_db: Callable[[MariaDBServer], str], level: str) -> None:
    """Every DDL case on a MINIMAL source, one after the other on one table (see each step)."""
    scenario = new_scenario(tmp_path, postgres, target_db, mariadb_minimal, source_db, PEOPLE_SQL,
                            PEOPLE_TARGET, PEOPLE_MAPPINGS)
    people = People(scenario)
    try:
        people.add()
        process = scenario.start()
        eventually(lambda: streaming(scenario), 90)
        process = columns_changed_streamed_and_across_kill_9(people, process)
        process = two_ddls_while_stopped(people, process)
        ddl_the_binlog_never_saw(people, process)
        reconciled = scenario.cli("reconcile")
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
        assert "Traceback" not in scenario.log_text()
        assert scenario.stop(process) == 0
    finally:
        scenario.close()
