"""Type fidelity: every MySQL/MariaDB type lands exactly as the server holds it, on every path.

`TestTypeCorpus` streams the type corpus (tests/integration/typecorpus.py: every type and
modifier, boundary and random values, the server's own text as the oracle) through the initial
copy, binlog inserts, updates and deletes, each binlog decoder, `syncd snapshot` and repairs, and
reconciles it. The other tests check what happens to values PostgreSQL cannot hold.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.model import Position, RowChange
from syncd.source.chunks import SourceReader
from tests.helpers import eventually
from tests.integration import typecorpus as corpus
from tests.integration.binlog_reads import DECODERS, decoded_changes, position, root_source
from tests.integration.scenario import Scenario, Source
from tests.integration.test_normal_form import create_in_old_format

SOURCE_SQL = """
CREATE TABLE matrix (
    id INT PRIMARY KEY,
    ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT,
    miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
    dec65 DECIMAL(65,30), dec2 DECIMAL(12,2), f FLOAT, d DOUBLE,
    b1 BIT(1), b64 BIT(64), flag BOOL,
    dt DATE, dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6), ts0 TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL,
    tm TIME(6), tm2 TIME(2), yr YEAR,
    zd DATE, zdt DATETIME, pzd DATE,
    c CHAR(10), vc VARCHAR(100), tx TEXT, l1 VARCHAR(20) CHARACTER SET latin1,
    gb VARCHAR(20) CHARACTER SET gbk,
    bn BINARY(6), vb VARBINARY(10), bl BLOB,
    en ENUM('小', '中', '大'), st SET('a', 'b', 'c'), js JSON, geo GEOMETRY NULL
) CHARACTER SET utf8mb4
"""

TARGET_SQL = """
CREATE TABLE matrix (
    id integer PRIMARY KEY,
    ti smallint, tiu smallint, si smallint, siu integer, mi integer, miu integer, i integer,
    iu bigint, bi bigint, biu numeric(20,0),
    dec65 numeric(65,30), dec2 numeric(12,2), f double precision, d double precision,
    b1 smallint, b64 numeric(20,0), flag boolean,
    dt date, dt0 timestamptz, dt3 timestamptz, dt6 timestamp, ts0 timestamptz, ts6 timestamptz,
    tm interval, tm2 interval, yr smallint,
    zd date, zdt timestamptz, pzd date,
    c text, vc text, tx text, l1 text, gb text,
    bn bytea, vb bytea, bl bytea,
    en text, st text, js jsonb, geo bytea
);
CREATE TABLE strict_dates (id integer PRIMARY KEY, zd date NOT NULL);
CREATE TABLE texts (id integer PRIMARY KEY, tx text);
"""

MAPPING = """
mappings:
  - name: matrix
    source: shop
    table: matrix
    target: matrix
    key: [id]
    columns:
{columns}
      flag: {{from: flag, transform: to_bool}}
  - name: strict_dates
    source: shop
    table: matrix
    target: strict_dates
    key: [id]
    columns:
      id: id
      zd: zd
  - name: texts
    source: shop
    table: texts
    target: texts
    key: [id]
    columns:
      id: id
      tx: tx
"""

ROW = (
    "127, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
    "-9223372036854775808, 18446744073709551615, "
    "'-12345678901234567890123456789012345.123456789012345678901234567890', '-0.50', "
    "1.2345678, 0.1, b'1', b'1111111111111111111111111111111111111111111111111111111111111111', TRUE, "
    "'2024-02-29', '2024-05-01 12:30:45', '2024-05-01 12:30:45.123', '2024-05-01 12:30:45.123456', "
    "'2024-01-01 12:00:00', '2024-01-01 12:00:00.000001', "
    "'-838:59:58.999999', '-00:00:00.01', 0, "
    "'0000-00-00', '0000-00-00 00:00:00', '2024-00-15', "
    "'中文', '混合 text ✓', '表情😀🎉 and ünïcödé', 'café', '简体中文', "
    "0x010200, 0x0a0b00, 0xff00fe, '中', 'c,a', '{\"k\": [1, 2.5, \"值\"], \"a\": null}', "
    "ST_GeomFromText('POINT(1 2)', 4326)"
)

EXPECTED = {
    "ti": 127, "tiu": 255, "si": -32768, "siu": 65535, "mi": -8388608, "miu": 16777215,
    "i": -2147483648, "iu": 4294967295, "bi": -9223372036854775808,
    "biu": Decimal("18446744073709551615"),
    "dec65": Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
    "dec2": Decimal("-0.50"), "f": 1.23457, "d": 0.1, "b1": 1, "b64": Decimal(2**64 - 1), "flag": True,
    "dt": date(2024, 2, 29),
    "dt0": datetime(2024, 5, 1, 4, 30, 45, tzinfo=UTC),          # DATETIME read in +08:00
    "dt3": datetime(2024, 5, 1, 4, 30, 45, 123000, tzinfo=UTC),
    "dt6": datetime(2024, 5, 1, 12, 30, 45, 123456),             # naive target keeps wall time
    "ts0": datetime(2024, 1, 1, 7, 0, tzinfo=UTC),               # written in session zone +05:00
    "ts6": datetime(2024, 1, 1, 7, 0, 0, 1, tzinfo=UTC),
    "tm": -timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
    "tm2": -timedelta(milliseconds=10), "yr": None,
    "zd": None, "zdt": None, "pzd": None,
    "c": "中文", "vc": "混合 text ✓", "tx": "表情😀🎉 and ünïcödé", "l1": "café", "gb": "简体中文",
    "bn": b"\x01\x02\x00\x00\x00\x00", "vb": b"\x0a\x0b\x00", "bl": b"\xff\x00\xfe",
    "en": "中", "st": "a,c", "js": {"k": [1, 2.5, "值"], "a": None},
    "geo": bytes.fromhex("0101000000000000000000f03f0000000000000040"),
}


COLUMNS = ["id", *EXPECTED]


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
             source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SOURCE_SQL, "CREATE TABLE texts (id INT PRIMARY KEY, tx TEXT) CHARACTER SET utf8mb4")
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    columns = "\n".join(f"      {c}: {c}" for c in COLUMNS if c != "flag")
    s.write_config(MAPPING.format(columns=columns))
    yield s
    s.close()


def insert_matrix(source: Source, row_id: int) -> None:
    source.execute("SET SESSION sql_mode = ''", "SET SESSION time_zone = '+05:00'",
                   f"INSERT INTO matrix VALUES ({row_id}, {ROW})")


def target_row(scenario: Scenario, row_id: int) -> dict:
    names = ", ".join(COLUMNS)
    rows = scenario.target(f"SELECT {names} FROM matrix WHERE id = %s", (row_id,))
    return dict(zip(COLUMNS, rows[0], strict=True)) if rows else {}


class TestTypeMatrix:
    def test_zero_date_into_not_null_column_is_dead_lettered(self, scenario: Scenario) -> None:
        """A zero date cannot become NULL in a NOT NULL column: the row goes to the dead letters."""
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        insert_matrix(scenario.sources["shop"], 3)
        eventually(lambda: target_row(scenario, 3), 30)
        letters = eventually(lambda: scenario.target(
            "SELECT mapping, reason FROM syncd.dead_letters WHERE mapping = 'strict_dates'"), 30)
        assert "not-null" in letters[0][1] and "zd" in letters[0][1]
        scenario.stop(process)

    def test_text_with_nul_is_dead_lettered_and_the_stream_goes_on(self, scenario: Scenario) -> None:
        """PostgreSQL text cannot hold NUL: that row is dead-lettered, the next one lands."""
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        shop = scenario.sources["shop"]
        shop.execute("INSERT INTO texts VALUES (1, 'a\\0b')")
        shop.execute("INSERT INTO texts VALUES (2, 'fine')")
        eventually(lambda: scenario.target("SELECT tx FROM texts WHERE id = 2"), 30)
        letters = scenario.target("SELECT row_key, reason FROM syncd.dead_letters WHERE mapping = 'texts'")
        assert letters[0][0] == "id=1" and "NUL" in letters[0][1]
        scenario.stop(process)


class TestBulkGroups:
    """Groups of many rows go through the sink's staging tables (COPY, then one statement)."""

    def test_staged_inserts_updates_and_deletes_land_the_same_exact_values(self, scenario: Scenario) -> None:
        without_strict = MAPPING.split("  - name: strict_dates", maxsplit=1)[0]
        columns = "\n".join(f"      {c}: {c}" for c in COLUMNS if c != "flag")
        scenario.write_config(without_strict.format(columns=columns))
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        shop = scenario.sources["shop"]
        ids = range(100, 200)
        shop.execute("SET SESSION sql_mode = ''", "SET SESSION time_zone = '+05:00'", "BEGIN",
                     *(f"INSERT INTO matrix VALUES ({i}, {ROW})" for i in ids), "COMMIT")
        eventually(lambda: len(scenario.target("SELECT id FROM matrix WHERE id >= 100")) == len(ids), 60)
        staged = scenario.target("SELECT count(*) FROM pg_class WHERE relname LIKE 'syncd_stage_%%'")
        assert staged[0][0] >= 1, "the group was not staged"
        for i in ids:
            assert {k: v for k, v in target_row(scenario, i).items() if k != "id"} == EXPECTED
        shop.execute("UPDATE matrix SET vc = CONCAT('更新 ', id) WHERE id >= 100")
        eventually(lambda: scenario.target(
            "SELECT count(*) FROM matrix WHERE vc = '更新 ' || id::text")[0][0] == len(ids), 30)
        assert target_row(scenario, 150)["dec65"] == EXPECTED["dec65"]
        shop.execute("DELETE FROM matrix WHERE id >= 100")
        eventually(lambda: not scenario.target("SELECT id FROM matrix WHERE id >= 100"), 30)
        assert not scenario.target("SELECT * FROM syncd.dead_letters")
        scenario.stop(process)


ZERO_SQL = "CREATE TABLE {name} (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL, yr YEAR)"
ZERO_ROWS = ("(1, '0000-00-00', '2024-01-01 00:00:00', '2024-01-01 00:00:00', 2024)",
             "(2, '2024-00-15', '0000-00-00 00:00:00', '0000-00-00 00:00:00', 0)",
             "(3, '2024-01-31', '2024-01-01 10:00:00', NULL, NULL)")
ZERO_TARGET = """
CREATE TABLE zcopy (id integer PRIMARY KEY, d date, dt timestamp);
CREATE TABLE zmapped (id integer PRIMARY KEY, kind text, d date, dt timestamptz, ts timestamptz, yr smallint);
"""
ZERO_MAPPING = """
mappings:
  - name: zcopy                 # plain copies of dates: written as COPY text by the source server
    source: shop
    table: zcopy
    target: zcopy
    key: [id]
    columns: {id: id, d: d, dt: dt}
  - name: zmapped
    source: shop
    table: zmapped
    target: zmapped
    key: [id]
    columns: {id: id, kind: {value: m}, d: d, dt: dt, ts: ts, yr: yr}
"""
ZEROS = {"zcopy": {"id=1": ["d"], "id=2": ["d", "dt"]},       # the columns a mapping reads
         "zmapped": {"id=1": ["d"], "id=2": ["d", "dt", "ts", "yr"]}}


def zero_date_warnings(log: str, position_prefix: str) -> dict[str, dict[str, list[str]]]:
    """table -> row key -> columns, of the `zero_date_read_as_null` warnings read at positions that
    start with `position_prefix`."""
    found: dict[str, dict[str, list[str]]] = {}
    for line in log.splitlines():
        if '"zero_date_read_as_null"' in line:
            event = json.loads(line[line.index("{"):])
            if str(event["position"]).startswith(position_prefix):
                found.setdefault(event["table"], {})[event["row_key"]] = sorted(event["columns"])
    return found


class TestZeroDates:
    def test_the_initial_copy_and_snapshots_warn_of_every_zero_date(
            self, tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
            source_db: Callable[[MariaDBServer], str]) -> None:
        """Every path that reads a zero date as NULL says so: table, columns, row key, position."""
        shop = Source("shop", mariadb, source_db(mariadb))
        shop.execute("SET SESSION sql_mode = ''", *(ZERO_SQL.format(name=n) for n in ZEROS),
                     *(f"INSERT INTO {n} VALUES {', '.join(ZERO_ROWS)}" for n in ZEROS))
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=ZERO_TARGET)
        try:
            scenario.write_config(ZERO_MAPPING)
            process = scenario.start()
            eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
            scenario.stop(process)
            assert scenario.target("SELECT id, d, dt FROM zcopy ORDER BY id")[:2] == [
                (1, None, datetime(2024, 1, 1)), (2, None, None)]
            assert zero_date_warnings(scenario.log_text(), "snapshot@") == ZEROS
            copied = scenario.cli("snapshot", "--source", "shop")
            assert copied.returncode == 0, copied.stderr
            assert zero_date_warnings(copied.stdout + copied.stderr, "snapshot@") == ZEROS
            scenario.target("DELETE FROM zmapped WHERE id = 2")
            repaired = scenario.cli("reconcile", "--repair", "--mapping", "zmapped")
            assert repaired.returncode == 0, repaired.stderr
            assert scenario.target("SELECT d, dt, ts, yr FROM zmapped WHERE id = 2") == [(None,) * 4]
            assert zero_date_warnings(repaired.stdout + repaired.stderr, "repair@") == {
                "zmapped": {"id=2": ZEROS["zmapped"]["id=2"]}}
        finally:
            scenario.close()


# --------------------------------------------------------------------------- the type corpus

COPY, INSERTED, UPDATED, DELETED = 0, 1000, 3000, 4000
"""Row ids by path: the initial copy, binlog inserts, binlog updates, binlog deletes."""
STAGED_ROWS = 70
"""Binlog inserts per table, in one transaction: past the sink's staging threshold (64)."""
SESSION = ("SET SESSION sql_mode = ''", "SET SESSION time_zone = '+05:00'")


class Corpus:
    """The corpus tables on one source and target, and what the server says they hold."""

    def __init__(self, scenario: Scenario, shop: Source, seed: int) -> None:
        self.scenario = scenario
        self.shop = shop
        self.seed = seed
        self.kinds = corpus.tables()
        rng = random.Random(seed)
        self.rows = {table: corpus.Rows.draw(kinds, rng) for table, kinds in self.kinds.items()}

    def ids(self, table: str, block: int) -> list[tuple[int, int]]:
        """(row id, value row) of one block of a table."""
        count = self.rows[table].count
        size = max(count, STAGED_ROWS) if block == INSERTED else count
        return [(block + 1 + r, r % count) for r in range(size)]

    def load(self, block: int) -> None:
        rotate = 1 if block == UPDATED else 0
        self.shop.execute(*SESSION, *(rows.insert(table, ((i, (r + rotate) % rows.count)
                                                          for i, r in self.ids(table, block)))
                                      for table, rows in self.rows.items()))

    def update(self) -> None:
        for table, rows in self.rows.items():
            self.shop.execute(*SESSION, *(rows.update(table, i, r) for i, r in self.ids(table, UPDATED)))

    def delete(self) -> None:
        self.shop.execute(*(f"DELETE FROM `{t}` WHERE id > {DELETED}" for t in self.rows))

    def oracle(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Per table, row id -> column -> what the server says it holds."""
        found = {}
        with self.shop.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            for table, kinds in self.kinds.items():
                cur.execute(corpus.oracle_query(table, kinds))
                found[table] = corpus.oracle_rows(cur.fetchall(), kinds)
        return found

    def fill_expected(self, oracle: dict[str, dict[int, dict[str, Any]]]) -> None:
        """Schema `expected`: the target tables holding what they should, written by psycopg."""
        statements = ["CREATE SCHEMA expected"]
        statements += [f"SET search_path = expected; {corpus.target_ddl(table, kinds)}"
                       for table, kinds in self.kinds.items()]
        with psycopg.connect(self.scenario.postgres.dsn(self.scenario.target_db), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
            for table, kinds in self.kinds.items():
                names = ", ".join(f'"{k.name}"' for k in kinds)
                marks = ", ".join(["%s"] * (len(kinds) + 1))
                rows = [(i, *(k.expect(corpus.normal(row[k.name])) for k in kinds))
                        for i, row in oracle[table].items()]
                with conn.cursor() as cur:
                    cur.executemany(f'INSERT INTO expected."{table}" (id, {names}) VALUES ({marks})', rows)

    def mismatches(self) -> list[str]:
        """Target values that differ from the expected ones, compared as PostgreSQL's text."""
        found = []
        for table, kinds in self.kinds.items():
            differs = " OR ".join(f't."{k.name}"::text IS DISTINCT FROM e."{k.name}"::text' for k in kinds)
            pairs = ", ".join(f't."{k.name}"::text, e."{k.name}"::text' for k in kinds)
            rows = self.scenario.target(
                f'SELECT coalesce(t.id, e.id), t.id IS NULL, e.id IS NULL, {pairs} FROM public."{table}" t '
                f'FULL JOIN expected."{table}" e ON t.id = e.id '
                f"WHERE t.id IS NULL OR e.id IS NULL OR {differs} ORDER BY 1")
            for row in rows:
                if row[1] or row[2]:
                    found.append(f"{table} id={row[0]}: {'missing' if row[1] else 'extra'}")
                    continue
                found += [f"{table} id={row[0]} {k.name}: target {row[3 + 2 * n]!r} != {row[4 + 2 * n]!r}"
                          for n, k in enumerate(kinds) if row[3 + 2 * n] != row[4 + 2 * n]]
        return found

    def failure(self, problems: list[str]) -> str:
        """The problems grouped by path and column: how many rows, and the first one."""
        groups: dict[str, list[str]] = {}
        for problem in problems:
            groups.setdefault(re.sub(r" id=\d+", "", problem.split(":")[0]), []).append(problem)
        lines = [f"{len(found)} x {found[0]}" for found in groups.values()]
        return f"SYNCD_CORPUS_SEED={self.seed}: {len(problems)} problems\n" + "\n".join(lines[:80])


def warnings_of(log: str) -> Counter:
    """(path, table, row id, columns) of each `zero_date_read_as_null` warning."""
    found: Counter = Counter()
    for line in log.splitlines():
        if '"zero_date_read_as_null"' in line:
            event = json.loads(line[line.index("{"):])
            path = "copy" if str(event["position"]).startswith("snapshot@") else "binlog"
            columns = tuple(sorted(event["columns"]))
            found[(path, event["table"], corpus.row_id(event["row_key"]), columns)] += 1
    return found


def expected_warnings(before: dict, after: dict) -> Counter:
    """The warnings streaming and the initial copy owe: `before` is the oracle after the binlog
    inserts, `after` at the end (copied rows are never changed)."""
    owed: Counter = Counter()
    for table, rows in before.items():
        for row_id, row in rows.items():
            images = [("copy", row)] if row_id <= INSERTED else [("binlog", row)]  # copied or inserted
            if row_id > DELETED:
                images.append(("binlog", row))                     # the delete's image
            elif row_id > UPDATED:
                images.append(("binlog", after[table][row_id]))    # the update's new image
            owed.update((path, table, row_id, columns) for path, image in images
                        if (columns := corpus.zero_columns(image)))
    return owed


def copied_warnings(oracle: dict) -> Counter:
    """The warnings a snapshot of every row owes."""
    return Counter(("copy", table, row_id, columns) for table, rows in oracle.items()
                   for row_id, row in rows.items() if (columns := corpus.zero_columns(row)))


def normal_form_problems(corpus_run: Corpus, before: dict, after: dict, start: Position, end: Position,
                         monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each binlog decoder and the SELECT reads against the oracle, value by value."""
    shop = corpus_run.shop
    problems: list[str] = []
    reader = SourceReader(root_source(shop.server, shop.database, monkeypatch))
    try:
        for table, kinds in corpus_run.kinds.items():
            names = [k.name for k in kinds]
            rows, _ = reader.chunk(table, ("id",), ["id", *names], None, 100_000)
            for row in rows:
                problems += corpus.differences(row, after[table][row["id"]], f"SELECT {table} id={row['id']}")
    finally:
        reader.close()
    for decoder in DECODERS:
        use: dict[str, tuple[bool, int]] = {}
        changes = decoded_changes(shop.server, shop.database, set(corpus_run.kinds), start, end, decoder,
                                  monkeypatch, use)
        problems += decoder_problems(decoder, changes, before, after)
        if decoder == "fast":
            problems += [f"the C decoder did not decode {t}: {use.get(t)}" for t in corpus.NATIVE
                         if use.get(t) != (True, 0)]
    return problems


def decoder_problems(decoder: str, changes: list[RowChange], before: dict, after: dict) -> list[str]:
    """An insert's image and a delete's are the rows after the inserts (`before`); an update's old
    image too, its new one the row at the end (`after`)."""
    problems = []
    for change in changes:
        op = change.op.value
        new = after if op == "update" else before
        images = [(change.before, before, "before"), (change.after, new, "after")]
        for image, oracle, what in images:
            if image is None:
                continue
            expected = oracle[change.table][image["id"]]
            where = f"{decoder} {op} {what} {change.table} id={image['id']}"
            problems += corpus.differences(image, expected, where)
            zeros = tuple(sorted(change.zero_dates))
            if (what == "after" or op == "delete") and zeros != corpus.zero_columns(expected):
                problems.append(f"{where}: zero dates {zeros} != {corpus.zero_columns(expected)}")
    written = sum(1 for rows in before.values() for i in rows if i > INSERTED)
    if len(changes) != written + sum(1 for rows in before.values() for i in rows if i > UPDATED):
        problems.append(f"{decoder}: {len(changes)} changes for {written} rows written")
    return problems


class TestTypeCorpus:
    def test_every_type_and_value_lands_as_the_server_holds_it_on_every_path(
            self, tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
            source_db: Callable[[MariaDBServer], str], monkeypatch: pytest.MonkeyPatch) -> None:
        """The initial copy (COPY text and mapped), binlog inserts, updates and deletes (each
        decoder), snapshots and repairs all land each value as the server prints it; reconcile,
        with and without checksums, finds everything in sync; every zero date is warned of."""
        shop = Source("shop", mariadb, source_db(mariadb))
        grouped = corpus.tables()
        shop.execute(*(corpus.source_ddl(t, k) for t, k in grouped.items() if t not in corpus.OLD_FORMAT))
        for table in corpus.OLD_FORMAT:
            create_in_old_format(mariadb, shop.database, corpus.source_ddl(table, grouped[table]))
        target_sql = ";\n".join(corpus.target_ddl(t, k) for t, k in grouped.items())
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=target_sql)
        run = Corpus(scenario, shop, corpus.SEED)
        try:
            scenario.write_config("mappings:\n" + "".join(corpus.mapping(t, k) for t, k in grouped.items()))
            run.load(COPY)
            process = scenario.start()
            eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 90)
            start = position(mariadb)
            for block in (INSERTED, UPDATED, DELETED):
                run.load(block)
            before = run.oracle()
            run.update()
            run.delete()
            end = position(mariadb)
            after = run.oracle()
            run.fill_expected(after)

            json_types = {row[0] for row in shop.rows("SELECT DISTINCT JSON_TYPE(js) FROM etc")}
            assert json_types >= {"OBJECT", "ARRAY", "STRING", "INTEGER", "DOUBLE", "BOOLEAN", "NULL"}
            problems = normal_form_problems(run, before, after, start, end, monkeypatch)
            assert not problems, run.failure(problems)
            eventually(lambda: not run.mismatches(), 90)  # the stream has caught up
            scenario.stop(process)
            log = scenario.log_text()
            assert warnings_of(log) == expected_warnings(before, after), f"SYNCD_CORPUS_SEED={run.seed}"
            copied = [json.loads(line[line.index("{"):]) for line in log.splitlines()
                      if '"snapshot_table"' in line]
            assert {e["table"] for e in copied if e["copy_text"]} == set(grouped)

            passes = [reconcile_report(scenario, *args) for args in ((), (), ("--full",))]
            pushed = {m["mapping"] for m in passes[0] if m["chunks_pushed_down"]}
            assert pushed >= {corpus.NUM, corpus.CHR}
            remembered = {m["mapping"] for m in passes[1] if m["chunks_unchanged"]}
            assert remembered >= set(grouped) - pushed - {corpus.TIM}

            snapshot = scenario.cli("snapshot", "--source", "shop", "--map-every-row")
            assert snapshot.returncode == 0, snapshot.stderr
            assert not run.mismatches(), run.failure(run.mismatches())
            assert warnings_of(snapshot.stdout + snapshot.stderr) == copied_warnings(after)

            for table, kinds in grouped.items():
                scenario.target(f'DELETE FROM "{table}" WHERE id IN (2, {INSERTED + 2})')
                nulls = ", ".join(f'"{k.name}" = NULL' for k in kinds)
                scenario.target(f'UPDATE "{table}" SET {nulls} WHERE id IN (3, {UPDATED + 3})')
            repaired = scenario.cli("reconcile", "--repair")
            assert repaired.returncode == 0, repaired.stdout + repaired.stderr
            assert not run.mismatches(), run.failure(run.mismatches())
        finally:
            scenario.close()


def reconcile_report(scenario: Scenario, *args: str) -> list[dict]:
    """The mappings of one `syncd reconcile --json` pass, which must find all in sync (exit 0)."""
    result = scenario.cli("reconcile", "--json", *args)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    bad = [{k: m[k] for k in ("mapping", "status", "missing", "extra", "differ", "unmappable", "error")}
           for m in report.get("mappings", []) if m["status"] != "in_sync"]
    assert result.returncode == 0 and not bad, json.dumps(bad, default=str)[:6000] or result.stderr
    return report["mappings"]
