"""Reconcile of plain-copy mappings through checksums computed inside both servers (pushdown.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.integration.scenario import Scenario, Source

SOURCE_SQL = """
CREATE TABLE ledger (
    id BIGINT PRIMARY KEY,
    account VARCHAR(40) NOT NULL,
    memo TEXT,
    amount DECIMAL(14,2),
    qty INT UNSIGNED,
    booked_on DATE,
    booked_at DATETIME(6),
    kind ENUM('入账', '出账')
) CHARACTER SET utf8mb4
"""

TARGET_SQL = """
CREATE TABLE ledger (source_id bigint PRIMARY KEY, account text NOT NULL, memo text, amount numeric(14,2),
                     qty bigint, booked_on date, booked_at timestamptz, kind text, synced_at timestamptz);
CREATE TABLE ledger_wall (source_id bigint PRIMARY KEY, memo text, booked_at timestamp);
"""

MAPPINGS = """
mappings:
  - name: ledger
    source: shop
    table: ledger
    target: ledger
    key: source_id
    commit_time_column: synced_at
    columns:
      source_id: id
      account: account
      memo: memo
      amount: amount
      qty: qty
      booked_on: booked_on
      booked_at: booked_at
      kind: kind
  - name: ledger_wall
    source: shop
    table: ledger
    target: ledger_wall
    key: source_id
    columns:
      source_id: id
      memo: {from: memo, transform: strip}
      booked_at: booked_at
"""

ROWS = 3000


def row(i: int) -> str:
    memo = "NULL" if i % 7 == 0 else ("''" if i % 11 == 0 else f"'备注 {i}: a|b~c'")
    return (f"({i}, '账户{i % 97}', {memo}, {i}.25, {i * 3}, '2024-02-{1 + i % 28:02d}', "
            f"'2024-03-01 08:{i % 60:02d}:00.{0 if i % 5 == 0 else i * 10:06d}', "  # .000120, .000000
            f"'{'入账' if i % 2 else '出账'}')")


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
             source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SOURCE_SQL, "INSERT INTO ledger VALUES " + ", ".join(row(i) for i in range(1, ROWS + 1)))
    s = copied(Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL),
               MAPPINGS, 1000)
    yield s
    s.close()


def copied(scenario: Scenario, mappings: str, chunk_rows: int) -> Scenario:
    """The scenario with these mappings, its tables copied into the target by `syncd snapshot`."""
    scenario.write_config(mappings)
    result = scenario.cli("snapshot", "--chunk-rows", str(chunk_rows))
    assert result.returncode == 0, result.stderr
    return scenario


def reconcile(scenario: Scenario, *args: str) -> tuple[int, dict[str, dict]]:
    result = scenario.cli("reconcile", "--json", "--chunk-rows", "250", *args)
    assert result.stdout.strip(), result.stderr
    return result.returncode, {m["mapping"]: m for m in json.loads(result.stdout)["mappings"]}


class TestPushdown:
    def test_in_sync_ranges_are_confirmed_inside_the_servers(self, scenario: Scenario) -> None:
        code, found = reconcile(scenario)
        assert code == 0
        ledger = found["ledger"]
        assert ledger["rows_compared"] == ROWS
        assert ledger["chunks_pushed_down"] == ledger["chunks"] == 4  # 1,000-row ranges, the last open
        # a transform (strip) is computed by the source server too
        assert found["ledger_wall"]["chunks_pushed_down"] == 4
        assert found["ledger_wall"]["rows_compared"] == ROWS

    def test_subtle_drift_is_found_exactly_and_repaired(self, scenario: Scenario) -> None:
        scenario.target("UPDATE ledger SET memo = '' WHERE source_id = 7")            # NULL -> ''
        scenario.target("UPDATE ledger SET memo = NULL WHERE source_id = 11")         # '' -> NULL
        scenario.target("UPDATE ledger SET booked_at = booked_at + interval '1 microsecond' "
                        "WHERE source_id = 1500")
        scenario.target("UPDATE ledger SET account = '账户1 ' WHERE source_id = 98")  # trailing space
        scenario.target("UPDATE ledger SET amount = 2000.26 WHERE source_id = 2000")
        scenario.target("DELETE FROM ledger WHERE source_id = 2999")
        scenario.target("INSERT INTO ledger (source_id, account) VALUES (5000, 'extra')")
        code, found = reconcile(scenario)
        ledger = found["ledger"]
        assert code == 1
        assert [ledger[n]["count"] for n in ("missing", "extra", "differ")] == [1, 1, 5]
        assert ledger["missing"]["keys"] == [[2999]] and ledger["extra"]["keys"] == [[5000]]
        assert sorted(r["key"][0] for r in ledger["differ"]["rows"]) == [7, 11, 98, 1500, 2000]
        assert ledger["chunks_pushed_down"] == 0  # every range holds a difference
        code, found = reconcile(scenario, "--repair")
        assert code == 0 and found["ledger"]["repaired"] == 7
        code, found = reconcile(scenario)
        assert code == 0 and found["ledger"]["chunks_pushed_down"] == 4

    def test_scattered_drift_in_every_range_is_found_row_for_row(self, scenario: Scenario) -> None:
        """After the first differing range, the next ones are compared by their buckets' digests
        straight away, taken two ranges at a time on the source: every drifted row is found."""
        scenario.target("UPDATE ledger SET qty = qty + 1 WHERE source_id % 97 = 3")
        scenario.target("DELETE FROM ledger WHERE source_id % 389 = 5")
        code, found = reconcile(scenario)
        ledger = found["ledger"]
        differ = sorted(i for i in range(1, ROWS + 1) if i % 97 == 3 and i % 389 != 5)
        missing = [[i] for i in range(1, ROWS + 1) if i % 389 == 5]
        assert code == 1 and ledger["rows_compared"] == ROWS
        assert ledger["differ"]["count"] == len(differ) and ledger["missing"]["keys"] == missing
        assert sorted(r["key"][0] for r in ledger["differ"]["rows"]) == differ
        assert ledger["extra"]["count"] == 0

    def test_ranges_in_sync_after_a_differing_one_count_as_pushed_down(self, scenario: Scenario) -> None:
        scenario.target("UPDATE ledger SET account = 'x' WHERE source_id = 5")
        code, found = reconcile(scenario)
        ledger = found["ledger"]
        assert code == 1 and ledger["rows_compared"] == ROWS
        assert [r["key"] for r in ledger["differ"]["rows"]] == [[5]]
        assert ledger["chunks_pushed_down"] == 3  # the three ranges after the first, by their buckets

    def test_the_target_type_is_what_both_servers_print(self, scenario: Scenario) -> None:
        """A numeric column of another scale: both servers print the stored value at its scale."""
        scenario.target("ALTER TABLE ledger ALTER COLUMN amount TYPE numeric(16,4)")
        code, found = reconcile(scenario)
        assert code == 0
        assert found["ledger"]["chunks_pushed_down"] == 4 and found["ledger"]["rows_compared"] == ROWS

    def test_a_false_alarm_falls_back_to_the_row_by_row_comparison(self, scenario: Scenario) -> None:
        """An unconstrained numeric keeps the scale it was written with: written with another one
        it prints otherwise, a difference to the digests; the row-by-row path finds it equal."""
        scenario.target("ALTER TABLE ledger ALTER COLUMN amount TYPE numeric USING amount * 1.0")
        code, found = reconcile(scenario)
        # only the open range after the last key, empty on both sides, is in sync by its digests
        assert found["ledger"]["chunks_pushed_down"] == 1 and found["ledger"]["rows_compared"] == ROWS
        assert code == 0, found["ledger"]

    def test_full_maps_every_row(self, scenario: Scenario) -> None:
        code, found = reconcile(scenario, "--full")
        assert code == 0 and found["ledger"]["chunks_pushed_down"] == 0

    def test_rows_the_sql_cannot_vouch_for_are_compared_alone(self, scenario: Scenario) -> None:
        """A memo ending in an ideographic space: `strip` in SQL cannot vouch for it, so the
        digests leave the row out and Python compares it alone; its range stays in sync by its
        digests, and a difference in such a row is still found."""
        scenario.sources["shop"].execute(
            "UPDATE ledger SET memo = '\u3000备注\u3000' WHERE id IN (10, 1500, 1501)")
        scenario.target("UPDATE ledger_wall SET memo = '备注' WHERE source_id IN (10, 1501)")
        code, found = reconcile(scenario)
        wall = found["ledger_wall"]
        assert code == 1 and [r["key"] for r in wall["differ"]["rows"]] == [[1500]]
        assert wall["rows_compared"] == ROWS and wall["chunks_pushed_down"] == 4
        assert wall["chunks"] == 4 + 2  # row 10 alone, rows 1500 and 1501 in one read
        code, found = reconcile(scenario, "--repair", "--mapping", "ledger_wall")
        assert code == 0 and found["ledger_wall"]["repaired"] == 1


LINES_SOURCE_SQL = """
CREATE TABLE order_lines (
    order_id BIGINT NOT NULL,
    line_no INT NOT NULL,
    title VARCHAR(40) NOT NULL,
    qty INT NOT NULL,
    PRIMARY KEY (order_id, line_no)
) CHARACTER SET utf8mb4
"""

LINES_TARGET_SQL = """
CREATE TABLE order_lines (channel text NOT NULL, order_id bigint NOT NULL, line_no integer NOT NULL,
                          title text, qty integer, PRIMARY KEY (channel, order_id, line_no));
"""

LINES_MAPPINGS = """
mappings:
  - name: lines
    source: shop
    table: order_lines
    target: order_lines
    key: [channel, order_id, line_no]
    columns:
      channel: {value: shop}
      order_id: order_id
      line_no: line_no
      title: {from: title, transform: strip}
      qty: qty
"""

ORDERS = 700
"""Orders of 1 to 5 lines each: a composite key whose ranges end in the middle of an order."""


def lines() -> list[tuple[int, int]]:
    return [(order, line) for order in range(1, ORDERS + 1) for line in range(1, 2 + order % 5)]


@pytest.fixture
def composite(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
              source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    values = ", ".join(f"({o}, {n}, '商品 {o}-{n} ', {o * n})" for o, n in lines())
    shop.execute(LINES_SOURCE_SQL, f"INSERT INTO order_lines VALUES {values}")
    s = copied(Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=LINES_TARGET_SQL),
               LINES_MAPPINGS, 100)
    yield s
    s.close()


class TestCompositeKey:
    def test_in_sync_composite_ranges_are_confirmed_inside_the_servers(self, composite: Scenario) -> None:
        assert composite.target("SELECT count(*) FROM order_lines") == [(len(lines()),)]
        code, found = reconcile(composite)
        assert code == 0 and found["lines"]["rows_compared"] == len(lines())
        assert found["lines"]["chunks_pushed_down"] == found["lines"]["chunks"] > 1

    def test_scattered_drift_under_a_composite_key_is_found_row_for_row_and_repaired(
            self, composite: Scenario) -> None:
        composite.target("UPDATE order_lines SET qty = qty + 1 WHERE (order_id * 7 + line_no) % 61 = 0")
        composite.target("DELETE FROM order_lines WHERE (order_id * 5 + line_no) % 173 = 0")
        composite.target("INSERT INTO order_lines VALUES ('shop', 350, 9, 'extra', 1), "
                         "('shop', 9000, 1, 'x', 1)")
        deleted = {k for k in lines() if (k[0] * 5 + k[1]) % 173 == 0}
        differ = sorted(k for k in lines() if (k[0] * 7 + k[1]) % 61 == 0 and k not in deleted)
        code, found = reconcile(composite)
        report = found["lines"]
        assert code == 1 and report["rows_compared"] == len(lines())
        assert sorted(tuple(r["key"][1:]) for r in report["differ"]["rows"]) == differ
        assert sorted(tuple(k[1:]) for k in report["missing"]["keys"]) == sorted(deleted)
        assert sorted(tuple(k[1:]) for k in report["extra"]["keys"]) == [(350, 9), (9000, 1)]
        code, found = reconcile(composite, "--repair")
        assert code == 0, found["lines"]
        code, found = reconcile(composite)
        assert code == 0 and found["lines"]["chunks_pushed_down"] == found["lines"]["chunks"]

    def test_rows_set_aside_under_a_composite_key_are_compared_alone(self, composite: Scenario) -> None:
        aside = "(order_id, line_no) IN ((101, 1), (101, 2), (403, 3))"
        composite.sources["shop"].execute(f"UPDATE order_lines SET title = '商品\u3000' WHERE {aside}")
        composite.target(f"UPDATE order_lines SET title = '商品' WHERE {aside} AND line_no <> 2")
        code, found = reconcile(composite)
        report = found["lines"]
        assert code == 1 and report["rows_compared"] == len(lines())
        assert [r["key"] for r in report["differ"]["rows"]] == [["shop", 101, 2]]
        assert report["chunks_pushed_down"] == report["chunks"] - 2  # two ranges hold rows set aside
