"""A real `syncd run` over legacy tables with dirty text written under a non-strict sql_mode.

Every row whose bytes the server converts arrives as the server converts it; a row holding bytes
the server cannot convert becomes a dead letter naming the column, the charset and the bytes,
for the mappings that read that column only; later changes of other rows and tables keep
streaming, and `syncd status` shows no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.sandbox import PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import SHOP_ORDERS_MAPPING, TARGET_ORDERS_SQL, Scenario, Source

LEGACY_SQL = (
    "CREATE TABLE legacy_l1 (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET latin1, n INT)",
    "CREATE TABLE legacy_gbk (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET gbk, n INT)",
)

TARGET_SQL = TARGET_ORDERS_SQL + """;
CREATE TABLE legacy_l1 (id integer PRIMARY KEY, name text, n integer);
CREATE TABLE legacy_gbk (id integer PRIMARY KEY, name text, n integer);
CREATE TABLE gbk_counts (id integer PRIMARY KEY, n integer);
CREATE TABLE legacy_keys (charset text, region text, n integer, PRIMARY KEY (charset, region, n));
"""

KEY_CHARSETS = ("gbk", "utf8mb3", "latin1", "big5", "cp1251", "ascii", "utf8mb4")
KEY_VALUES = {"gbk": "华东", "utf8mb3": "华南", "latin1": "Zürich", "big5": "臺北", "cp1251": "Москва",
              "ascii": "north", "utf8mb4": "深圳🙂"}

MAPPINGS = SHOP_ORDERS_MAPPING + """
  - name: legacy_l1
    source: shop
    table: legacy_l1
    target: legacy_l1
    key: [id]
    columns: {id: id, name: name, n: n}
  - name: legacy_gbk
    source: shop
    table: legacy_gbk
    target: legacy_gbk
    key: [id]
    columns: {id: id, name: name, n: n}
  - name: gbk_counts
    source: shop
    table: legacy_gbk
    target: gbk_counts
    key: [id]
    columns: {id: id, n: n}
""" + "".join(f"""
  - name: keys_{charset}
    source: shop
    table: keys_{charset}
    target: legacy_keys
    key: [charset, region, n]
    columns: {{charset: {{value: {charset}}}, region: region, n: n}}
""" for charset in KEY_CHARSETS)

LATIN1 = bytes(range(0x20, 0x100)).replace(b"\x7f", b"")  # every printable byte, 0x81 0x8D 0x8F 0x90 0x9D too
GBK_GOOD = bytes.fromhex("c4e3bac3")  # 你好
GBK_BAD = ("a2e3", "a6d9", "a8bf", "fe50", "fefe")  # well-formed, stored, but no character to the server


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Scenario]:
    shop.execute(*LEGACY_SQL)
    keyed_tables(shop)
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.write_config(MAPPINGS)
    yield s
    s.close()


def keyed_tables(shop: Source) -> None:
    """Tables keyed by text in each charset (with an integer), three rows per region value."""
    for charset in KEY_CHARSETS:
        shop.execute(f"CREATE TABLE keys_{charset} (region VARCHAR(16) CHARACTER SET {charset} NOT NULL, "
                     "n INT NOT NULL, PRIMARY KEY (region, n))",
                     *(f"INSERT INTO keys_{charset} VALUES ('{value}', {n})"
                       for value in (KEY_VALUES[charset], "a", "b") for n in range(3)))


def test_the_initial_copy_reads_text_keys_of_every_charset(scenario: Scenario, shop: Source) -> None:
    """Keys in legacy charsets are read and paged through as the binlog reads them (chunks of 2)."""
    copied = scenario.cli("snapshot", "--chunk-rows", "2")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    for charset in KEY_CHARSETS:
        rows = scenario.target("SELECT region, n FROM legacy_keys WHERE charset = %s ORDER BY region, n",
                               (charset,))
        expected = sorted((value, n) for value in (KEY_VALUES[charset], "a", "b") for n in range(3))
        assert sorted(rows) == expected, charset


def dirty(statements: list[str]) -> tuple[str, ...]:
    return ("SET SESSION sql_mode = ''", *statements)


def test_dirty_text_streams_and_undecodable_rows_become_dead_letters(scenario: Scenario,
                                                                      shop: Source) -> None:
    process = scenario.start()
    eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 90)
    latin1 = [f"INSERT INTO legacy_l1 VALUES ({i}, X'{LATIN1[i * 20:i * 20 + 20].hex()}', {i})"
              for i in range(12)]
    shop.execute(*dirty([*latin1, f"INSERT INTO legacy_gbk VALUES (1, X'{GBK_GOOD.hex()}', 1)",
                         *(f"INSERT INTO legacy_gbk VALUES ({10 + i}, X'41{h}42', {i})"
                           for i, h in enumerate(GBK_BAD)),
                         "UPDATE legacy_gbk SET n = n + 100 WHERE id = 10"]))
    shop.execute("INSERT INTO orders (id, order_no, status) VALUES (1, 'S1', '已支付')",
                 "UPDATE legacy_gbk SET n = 7 WHERE id = 1")
    eventually(lambda: scenario.target("SELECT count(*) FROM orders") == [(1,)], 60)

    expected = {r[0]: r[1] for r in shop.rows("SELECT id, CONVERT(name USING utf8mb4) FROM legacy_l1")}
    assert {r[0]: r[1] for r in scenario.target("SELECT id, name FROM legacy_l1")} == expected
    assert set("\x81\x8d\x8f\x90\x9d\u20ac") <= set("".join(expected.values()))
    assert scenario.target("SELECT id, name, n FROM legacy_gbk") == [(1, "你好", 7)]
    assert sorted(scenario.target("SELECT id, n FROM gbk_counts")) == [
        (1, 7), (10, 100), (11, 1), (12, 2), (13, 3), (14, 4)]

    letters = scenario.target("SELECT mapping, row_key, reason FROM syncd.dead_letters ORDER BY id")
    assert {letter[0] for letter in letters} == {"legacy_gbk"}
    assert len(letters) == 6  # five rows, one of them updated once more
    for _mapping, _key, reason in letters:
        assert reason.startswith("column name: gbk value X'41"), reason
    reasons = " ".join(letter[2] for letter in letters)
    for code in GBK_BAD:
        assert f"X'41{code.upper()}42'" in reasons

    status = scenario.cli("status")
    assert status.returncode == 0 and "Traceback" not in status.stdout + status.stderr
    assert "Traceback" not in scenario.log_text()
    assert process.poll() is None
    assert scenario.stop(process) == 0
