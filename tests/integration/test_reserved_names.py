"""Tables whose columns carry the names syncd uses in its own SQL (aliases, CTEs, column aliases,
staging tables), SQL keywords and hostile-but-legal names, on both servers, as key columns and as
ordinary columns, through every path that writes or reads them: the initial copy and `syncd
snapshot` (COPY text and mapped), the stream (small groups and staged groups), `syncd reconcile`
(pushed down, verified checksums, slice scan) and `--repair`, `syncd dlq retry`, repairs through
a running daemon, and `syncd preview`. Every path must land exactly the mapped source rows."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.mapping.preview import json_value
from syncd.sqlnames import RESERVED_PREFIX, reserved_names
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source

# The names syncd's SQL introduces (syncd/sqlnames.py), the bare aliases it once wrote (t, staged,
# h, hashed...), names PostgreSQL gives meaning to (EXCLUDED), keywords that are legal quoted, and
# a name like a staging table's.
COLLIDING = sorted({*reserved_names(), "t", "s", "x", "src", "tgt", "key", "row", "h", "hashed", "staged",
                    "excluded", "c", "l", "p", "hash", "order", "group", "value", "select", "where",
                    f"{RESERVED_PREFIX}stage_0123456789abcdef0123"})
HOSTILE = ["a b", "it's", 'say "hi"', "名称", "MixedCase", "back`tick", "s.x", "rate%", "50%s"]

# Wide tables (key t) feed `plain` (a plain copy: COPY text, pushed-down reconcile) and `mapped`
# (a transform and soft deletes: mapped copy, verified-checksum reconcile).
WIDE_TEXT = [n for n in [*COLLIDING, *HOSTILE] if n not in ("t", "value", "hash", "order")]
HKEY = 'Key %"`'
"""A key column with mixed case, a space, a percent sign, a double quote and a backtick."""
# `t` (key key, row, s, HKEY) feeds `sliced` (slice group = 'g1', a value map: slice scan, dead letters)
PAIRS_TEXT = [n for n in [*COLLIDING, *HOSTILE] if n not in ("key", "row", "s", "group", "value", "hash",
                                                             "order")]


def my(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def pg(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def yaml_name(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


def wide_table(name: str) -> str:
    return (f"CREATE TABLE {name} (`t` BIGINT PRIMARY KEY, `value` INT, `hash` DECIMAL(12,2), "
            "`order` DATETIME(6), "
            + ", ".join(f"{my(n)} VARCHAR(60)" for n in WIDE_TEXT) + ") CHARACTER SET utf8mb4")


# Source tables named like their targets: `excluded` (plain), `staged` (mapped), `t` (sliced).
SOURCE_SQL = [
    wide_table("excluded"), wide_table("staged"),
    "CREATE TABLE t (`key` VARCHAR(20) NOT NULL, `row` INT NOT NULL, `s` VARCHAR(20) NOT NULL, "
    f"{my(HKEY)} VARCHAR(20) NOT NULL, `value` VARCHAR(4), `hash` DECIMAL(12,2), `order` DATETIME(6), "
    + ", ".join(f"{my(n)} VARCHAR(60)" for n in PAIRS_TEXT)
    + f", PRIMARY KEY (`key`, `row`, `s`, {my(HKEY)})) CHARACTER SET utf8mb4",
]
WIDE_COLUMNS = ["value", "hash", "order", *WIDE_TEXT]
PAIRS_COLUMNS = ["hash", "order", *PAIRS_TEXT]
SOFT = f"{RESERVED_PREFIX}target.t"
"""`mapped`'s soft-delete column: one name that reads like a qualified reference."""

TARGET_SQL = ";\n".join([
    # `excluded` is the name ON CONFLICT gives the proposed row; `staged` was the staging CTE's
    "CREATE TABLE excluded (t bigint PRIMARY KEY, value integer, hash numeric(12,2), \"order\" timestamp, "
    + ", ".join(f"{pg(n)} text" for n in WIDE_TEXT) + ")",
    f"CREATE TABLE staged (t bigint PRIMARY KEY, value integer, hash numeric(12,2), \"order\" timestamp, "
    f"{pg(SOFT)} timestamptz, " + ", ".join(f"{pg(n)} text" for n in WIDE_TEXT) + ")",
    f"CREATE TABLE t (\"group\" text, key text, \"row\" integer, s text, {pg(HKEY)} text, value smallint, "
    "hash numeric(12,2), \"order\" timestamp, " + ", ".join(f"{pg(n)} text" for n in PAIRS_TEXT)
    + f", PRIMARY KEY (\"group\", key, \"row\", s, {pg(HKEY)}))",
])


def copies(names: list[str]) -> str:
    return "".join(f"\n      {yaml_name(n)}: {yaml_name(n)}" for n in names)


MAP = {"a": 1, "b": 2}
FIXED_MAP = {**MAP, "z": 26}
"""`sliced` maps `value` through MAP; a row holding 'z' is a dead letter until the map is fixed."""


def mappings(value_map: dict[str, int] = MAP) -> str:
    return f"""
mappings:
  - name: plain
    source: shop
    table: excluded
    target: excluded
    key: [t]
    columns:
      t: t{copies(WIDE_COLUMNS)}
  - name: mapped
    source: shop
    table: staged
    target: staged
    key: [t]
    delete: soft
    soft_delete_column: {yaml_name(SOFT)}
    columns:
      t: t
      s: {{from: s, transform: upper}}{copies([n for n in WIDE_COLUMNS if n != "s"])}
  - name: sliced
    source: shop
    table: t
    target: t
    key: [group, key, row, s, {yaml_name(HKEY)}]
    columns:
      group: {{value: g1}}
      key: key
      row: row
      s: s{copies([HKEY])}
      value: {{from: value, map: {json.dumps(value_map)}}}{copies(PAIRS_COLUMNS)}
"""


STAMP = datetime(2024, 2, 29, 23, 59, 59, 123456)


def text_value(name: str, i: int, version: int) -> str | None:
    if (i + len(name)) % 9 == 0:
        return None
    return f"{name[:20]} {i}.{version} '\"%\t\\中"[:60]


def wide_row(i: int, version: int = 0) -> tuple:
    return (i, i * 7 % 1000, Decimal(i * 13 + version) / 4, STAMP + timedelta(hours=i, microseconds=version),
            *(text_value(n, i, version) for n in WIDE_TEXT))


def pairs_row(i: int, version: int = 0, value: str = "a") -> tuple:
    return (f"k{i % 7}", i, f"s{i % 3}", f"K{i % 2} %\\", value, Decimal(i + version) / 8,
            STAMP - timedelta(days=i), *(text_value(n, i, version) for n in PAIRS_TEXT))


def insert(table: str, columns: list[str], rows: list[tuple], verb: str = "INSERT") -> tuple[str, list]:
    marks = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    names = ", ".join(my(c).replace("%", "%%") for c in columns)  # a query with parameters
    return (f"{verb} INTO {table} ({names}) VALUES {marks}",
            [v for r in rows for v in r])


WIDE_ALL = ["t", *WIDE_COLUMNS]
PAIRS_ALL = ["key", "row", "s", HKEY, "value", *PAIRS_COLUMNS]


def write_wide(source: Source, keys: range, version: int = 0) -> None:
    """Rows (new or changed in every column but the key) of both wide tables, in one transaction."""
    rows = [wide_row(i, version) for i in keys]
    source.execute(*(insert(table, WIDE_ALL, rows, "REPLACE") for table in ("excluded", "staged")))


def add_pairs(source: Source, keys: range, version: int = 0, value: str = "a") -> None:
    source.execute(insert("t", PAIRS_ALL, [pairs_row(i, version, value) for i in keys]))


def delete(source: Source, wide: str, pairs: str) -> None:
    source.execute(f"DELETE FROM excluded WHERE {wide}", f"DELETE FROM staged WHERE {wide}",
                   f"DELETE FROM t WHERE {pairs}")


# --------------------------------------------------------------------------- expected and actual


def source_rows(source: Source, table: str, columns: list[str]) -> list[tuple]:
    return source.rows(f"SELECT {', '.join(my(c) for c in columns)} FROM {table}")


def expected(source: Source, codes: dict[str, int]) -> dict[str, dict[tuple, tuple]]:
    """What each mapping makes of the source rows now (`codes`: sliced's value map): mapping ->
    target key -> other columns."""
    upper = WIDE_ALL.index("s")
    return {
        "plain": {(r[0],): tuple(r[1:]) for r in source_rows(source, "excluded", WIDE_ALL)},
        "mapped": {(r[0],): tuple(v.upper() if i == upper and v is not None else v for i, v in enumerate(r)
                                  )[1:] for r in source_rows(source, "staged", WIDE_ALL)},
        "sliced": {("g1", *r[:4]): (codes.get(r[4]), *r[5:]) for r in source_rows(source, "t", PAIRS_ALL)
                   if r[4] in codes},
    }


TARGETS = {
    "plain": ("excluded", ["t"], WIDE_COLUMNS, None),
    "mapped": ("staged", ["t"], WIDE_COLUMNS, SOFT),
    "sliced": ("t", ["group", "key", "row", "s", HKEY], ["value", *PAIRS_COLUMNS], None),
}


def actual(scenario: Scenario) -> dict[str, dict[tuple, tuple]]:
    """Each mapping's live target rows (soft-deleted rows left out)."""
    found = {}
    with psycopg.connect(scenario.postgres.dsn(scenario.target_db), autocommit=True) as conn:
        for mapping, (table, key, columns, soft) in TARGETS.items():
            query = sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in [*key, *columns]), sql.Identifier(table))
            if soft:
                query += sql.SQL(" WHERE {} IS NULL").format(sql.Identifier(soft))
            found[mapping] = {tuple(r[:len(key)]): tuple(r[len(key):]) for r in conn.execute(query)}
    return found


def assert_exact(scenario: Scenario, source: Source, codes: dict[str, int] = MAP) -> bool:
    """Every mapping's target rows are exactly what it makes of the source rows now."""
    want, got = expected(source, codes), actual(scenario)
    for mapping in TARGETS:
        wrong = sorted(k for k in want[mapping].keys() | got[mapping].keys()
                       if want[mapping].get(k) != got[mapping].get(k))
        assert not wrong, (f"{mapping}: {len(wrong)} keys differ, first {wrong[0]}: "
                           f"want {want[mapping].get(wrong[0])}, got {got[mapping].get(wrong[0])}")
    return True


def soft_deleted(scenario: Scenario) -> set[int]:
    return {r[0] for r in scenario.target(f"SELECT t FROM staged WHERE {pg(SOFT)} IS NOT NULL")}


def reconcile(scenario: Scenario, *args: str) -> tuple[int, dict[str, dict]]:
    result = scenario.cli("reconcile", "--json", "--chunk-rows", "40", *args)
    assert result.stdout.strip(), result.stderr
    return result.returncode, {m["mapping"]: m for m in json.loads(result.stdout)["mappings"]}


def assert_reconciled(scenario: Scenario) -> dict[str, dict]:
    code, found = reconcile(scenario)
    assert code == 0, json.dumps(found, ensure_ascii=False)[:3000]
    assert {m: r["status"] for m, r in found.items()} == dict.fromkeys(TARGETS, "in_sync")
    return found


def break_targets(scenario: Scenario, extra: int = 5000) -> None:
    """A missing, a differing and an extra row (keys from `extra` on) in each mapping's slice."""
    for table, key in (("excluded", 3), ("staged", 4)):
        scenario.target(f"DELETE FROM {table} WHERE t = %s", (key,))
        scenario.target(f"UPDATE {table} SET s = 'drift', \"名称\" = NULL, \"order\" = now() WHERE t = %s",
                        (key + 10,))
        scenario.target(f"INSERT INTO {table} (t, \"a b\") VALUES (%s, 'extra')", (key + extra,))
    scenario.target("DELETE FROM t WHERE \"row\" = 7")
    scenario.target("UPDATE t SET \"it's\" = 'drift', hash = -1 WHERE \"row\" = 8")
    scenario.target(f"INSERT INTO t (\"group\", key, \"row\", s, {pg(HKEY).replace('%', '%%')}, value) "
                    "VALUES ('g1', 'k9', %s, 's9', 'K9', 1)", (extra,))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def shop(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("shop", mariadb, source_db(mariadb))
    source.execute(*SOURCE_SQL)
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(mappings())
    yield s
    s.close()


def streaming(scenario: Scenario):
    process = scenario.start()
    eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 90)
    return process


def staging_tables(scenario: Scenario) -> set[tuple]:
    """The staging tables of every open session (pg_temp schemas are visible to all)."""
    return set(scenario.target("SELECT relnamespace, relname FROM pg_class WHERE relpersistence = 't' "
                               "AND relname LIKE 'syncd\\_stage\\_%'"))


def pending(scenario: Scenario) -> int:
    return scenario.target("SELECT count(*) FROM syncd.dead_letters WHERE status = 'pending'")[0][0]


# --------------------------------------------------------------------------- the paths


def test_through_a_running_daemon(scenario: Scenario, shop: Source) -> None:
    """Initial copy, small and staged stream groups, and the repairs a running daemon applies in
    stream order (repair windows): a dead letter retried, reconcile --repair, a live snapshot."""
    write_wide(shop, range(1, 121))
    add_pairs(shop, range(1, 121))
    process = streaming(scenario)
    eventually(lambda: assert_exact(scenario, shop), 60)
    assert pending(scenario) == 0

    # small groups (executemany): a few inserts, updates and deletes per transaction
    write_wide(shop, range(121, 124))
    add_pairs(shop, range(121, 124))
    write_wide(shop, range(1, 4), version=1)
    delete(shop, "t IN (5, 6)", "`row` IN (5, 6)")
    eventually(lambda: assert_exact(scenario, shop), 30)
    assert soft_deleted(scenario) == {5, 6}

    # staged groups (COPY into a staging table, one statement): 100 rows per transaction
    before = staging_tables(scenario)
    write_wide(shop, range(200, 300))
    add_pairs(shop, range(200, 300))
    eventually(lambda: assert_exact(scenario, shop), 30)
    write_wide(shop, range(200, 300), version=2)
    shop.execute("UPDATE t SET `hash` = `hash` + 1, `it's` = 'new', `select` = NULL WHERE `row` >= 200")
    eventually(lambda: assert_exact(scenario, shop), 30)
    delete(shop, "t >= 200", "`row` >= 200")
    eventually(lambda: assert_exact(scenario, shop), 30)
    assert soft_deleted(scenario) == {5, 6, *range(200, 300)}
    # a staging table per shape: upserts into each table, deletes, soft deletes, deletes
    assert len(staging_tables(scenario) - before) >= 6
    assert pending(scenario) == 0

    # a dead letter (a value the map lacks); the map fixed, the daemon reloaded, retried through it
    add_pairs(shop, range(400, 402), value="z")
    eventually(lambda: pending(scenario) == 2, 30)
    scenario.write_config(mappings(FIXED_MAP))
    process.send_signal(signal.SIGHUP)
    eventually(lambda: '"reloaded"' in scenario.log_text(), 30)
    result = scenario.cli("dlq", "retry", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert pending(scenario) == 0
    assert_exact(scenario, shop, FIXED_MAP)

    # drift repaired by reconcile --repair through the running stream
    break_targets(scenario)
    code, found = reconcile(scenario, "--repair")
    assert code == 0, json.dumps(found, ensure_ascii=False)[:3000]
    assert {m: r["repaired"] for m, r in found.items()} == dict.fromkeys(TARGETS, 3)
    assert_exact(scenario, shop, FIXED_MAP)

    # a live snapshot: each chunk of keys repaired through the running stream
    break_targets(scenario, extra=6000)
    result = scenario.cli("snapshot", "--chunk-rows", "40")
    assert result.returncode == 0, result.stderr
    assert "shop: done; stream;" in result.stdout, result.stdout
    assert_exact(scenario, shop, FIXED_MAP)
    assert scenario.stop(process) == 0
    assert_reconciled(scenario)


def test_snapshot_reconcile_repair_retry_preview(scenario: Scenario, shop: Source) -> None:
    """Without a daemon: snapshot as COPY text and mapped, reconcile in every mode, --repair,
    dlq retry applied directly, preview."""
    write_wide(shop, range(1, 151))
    add_pairs(shop, range(1, 151))
    add_pairs(shop, range(151, 153), value="z")  # dead letters of the copy

    result = scenario.cli("snapshot", "--chunk-rows", "40")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {e["table"]: e["copy_text"] for e in events if e.get("event") == "snapshot_table"} \
        == {"excluded": True, "staged": True, "t": True}
    assert_exact(scenario, shop)
    assert pending(scenario) == 2

    # reconcile: pushed down (plain), verified checksums (mapped), slice scan (sliced); twice, so
    # that the second pass checks the remembered chunks by their checksums
    for _ in range(2):
        found = assert_reconciled(scenario)
        assert found["plain"]["chunks_pushed_down"] == found["plain"]["chunks"] > 0
        assert found["sliced"]["mode"] == "slice-scan"
    assert found["mapped"]["chunks_unchanged"] == found["mapped"]["chunks"] > 0

    break_targets(scenario)
    code, found = reconcile(scenario)
    assert code == 1
    assert {m: (r["missing"]["count"], r["extra"]["count"], r["differ"]["count"]) for m, r in found.items()} \
        == dict.fromkeys(TARGETS, (1, 1, 1))
    code, found = reconcile(scenario, "--repair")
    assert code == 0, json.dumps(found, ensure_ascii=False)[:3000]
    assert_exact(scenario, shop)
    assert_reconciled(scenario)

    # dlq retry, applied directly (no daemon)
    scenario.write_config(mappings(FIXED_MAP))
    result = scenario.cli("dlq", "retry", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert pending(scenario) == 0
    assert_exact(scenario, shop, FIXED_MAP)

    # snapshot again into emptied tables, every mapping through the mapping in Python
    scenario.target("TRUNCATE excluded, staged, t")
    result = scenario.cli("snapshot", "--chunk-rows", "40", "--map-every-row")
    assert result.returncode == 0, result.stderr
    assert_exact(scenario, shop, FIXED_MAP)
    assert_reconciled(scenario)

    # preview: what each mapping makes of the live rows
    want = expected(shop, FIXED_MAP)
    for mapping, (_, key, columns, _) in TARGETS.items():
        result = scenario.cli("preview", "--mapping", mapping, "--json", "--limit", "1000")
        assert result.returncode == 0, result.stderr
        previewed = {tuple(r["target"][k] for k in key): tuple(r["target"][c] for c in columns)
                     for r in json.loads(result.stdout)}
        assert previewed == {tuple(json_value(list(k))): tuple(json_value(list(v)))
                             for k, v in want[mapping].items()}, mapping
