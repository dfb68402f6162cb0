"""Reconcile of a pushed-down mapping with columns no SQL form computes (JSON, json_get, hash):
digests for the others, those compared in Python, the ranges in sync remembered (deferred.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.config import load_config
from syncd.reconcile import reconcile as reconcile_api
from syncd.service.startup import build_plans
from syncd.sink.slices import TargetReader
from syncd.source.chunks import SourceReader
from tests.integration.scenario import Scenario, Source

SOURCE_SQL = """
CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    order_no VARCHAR(20) NOT NULL,
    phone VARCHAR(20),
    status VARCHAR(12) NOT NULL,
    extra JSON,
    qty INT
) CHARACTER SET utf8mb4
"""

TARGET_SQL = """
CREATE TABLE orders (channel text NOT NULL, source_id bigint NOT NULL, order_no text, phone_id text,
                     status text, extra jsonb, coupon text, qty integer,
                     PRIMARY KEY (channel, source_id));
"""

MAPPINGS = """
mappings:
  - name: orders
    source: shop
    table: orders
    target: orders
    key: [channel, source_id]
    where: {status: {ne: cancelled}}
    columns:
      channel: {value: shop}
      source_id: id
      order_no: order_no
      phone_id: {from: phone, transform: {hash: {salt_env: ORDER_SALT, length: 24}}}
      status: status
      extra: extra
      coupon: {from: extra, transform: {json_get: "$.coupon"}}
      qty: qty
"""

ROWS = 3000
CANCELLED = {i for i in range(1, ROWS + 1) if i % 101 == 0}
IN_SCOPE = ROWS - len(CANCELLED)
RANGES = 4
"""Ranges of 1,000 rows (--chunk-rows 250), the last open."""


def row(i: int) -> str:
    extra = "NULL" if i % 9 == 0 else f"""'{{"coupon": "C{i % 50}", "tags": ["团购", {i % 7}], "gift": {
        "true" if i % 2 else "false"}}}'"""
    phone = "NULL" if i % 13 == 0 else f"'138{i:08d}'"
    return f"({i}, 'SO{i:06d}', {phone}, '{'cancelled' if i in CANCELLED else 'paid'}', {extra}, {i % 17})"


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
             source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SOURCE_SQL, "INSERT INTO orders VALUES " + ", ".join(row(i) for i in range(1, ROWS + 1)))
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=TARGET_SQL)
    s.extra_env["ORDER_SALT"] = "pepper"
    s.write_config(MAPPINGS)
    result = s.cli("snapshot", "--chunk-rows", "1000")
    assert result.returncode == 0, result.stderr
    yield s
    s.close()


def reconcile(scenario: Scenario, *args: str) -> tuple[int, dict]:
    result = scenario.cli("reconcile", "--json", "--chunk-rows", "250", *args)
    assert result.stdout.strip(), result.stderr
    [found] = json.loads(result.stdout)["mappings"]
    return result.returncode, found


def counts(report: dict) -> list[int]:
    return [report[n]["count"] for n in ("missing", "extra", "differ")]


def differing(report: dict) -> dict[int, list[str]]:
    return {r["key"][1]: sorted(r["columns"]) for r in report["differ"]["rows"]}


def forget(scenario: Scenario) -> None:
    """Forget the remembered chunks: the next pass is a first pass again."""
    scenario.target("DELETE FROM syncd.reconcile_chunks")


class TestFirstPass:
    def test_in_sync_ranges_are_confirmed_by_digests_and_deferred_columns(self, scenario: Scenario) -> None:
        code, report = reconcile(scenario)
        assert code == 0, report
        assert report["chunks_pushed_down"] == report["chunks"] == RANGES
        assert report["rows_compared"] == IN_SCOPE and report["chunks_unchanged"] == 0
        assert scenario.target("SELECT count(*), bool_and(verified) FROM syncd.reconcile_chunks") == [
            (RANGES, True)]

    def test_drift_in_deferred_and_exact_columns_missing_and_extra_rows_is_found_and_repaired(
            self, scenario: Scenario) -> None:
        scenario.target("UPDATE orders SET coupon = 'X' WHERE source_id = 7")                # json_get
        scenario.target("""UPDATE orders SET extra = '{"coupon": "C0"}' WHERE source_id = 1500""")  # JSON
        scenario.target("UPDATE orders SET phone_id = 'forged' WHERE source_id = 2500")      # hash
        scenario.target("UPDATE orders SET coupon = NULL WHERE source_id = 2501")            # text -> NULL
        scenario.target("UPDATE orders SET qty = qty + 1 WHERE source_id = 98")              # exact
        scenario.target("DELETE FROM orders WHERE source_id = 2999")
        scenario.target("INSERT INTO orders (channel, source_id, order_no) VALUES ('shop', 5000, 'x')")
        # a row the `where:` filter leaves out
        scenario.target("INSERT INTO orders (channel, source_id, order_no) VALUES ('shop', 1010, 'x')")
        code, report = reconcile(scenario)
        assert code == 1
        assert counts(report) == [1, 2, 5]
        assert report["missing"]["keys"] == [["shop", 2999]]
        assert sorted(k[1] for k in report["extra"]["keys"]) == [1010, 5000]
        assert differing(report) == {7: ["coupon"], 98: ["qty"], 1500: ["extra"],
                                     2500: ["phone_id"], 2501: ["coupon"]}
        assert report["chunks_pushed_down"] == 0  # every range holds a difference
        assert scenario.target("SELECT bool_or(verified) FROM syncd.reconcile_chunks") == [(False,)]
        forget(scenario)
        code, report = reconcile(scenario, "--repair")
        assert code == 0 and report["repaired"] == 8, report
        forget(scenario)
        code, report = reconcile(scenario)
        assert code == 0 and report["chunks_pushed_down"] == RANGES

    def test_one_deferred_difference_sends_only_its_bucket_row_by_row(self, scenario: Scenario) -> None:
        scenario.target("""UPDATE orders SET extra = '{"coupon": "C99"}' WHERE source_id = 1205""")
        code, report = reconcile(scenario)
        assert code == 1 and differing(report) == {1205: ["extra"]}
        assert report["rows_compared"] == IN_SCOPE
        assert report["chunks_pushed_down"] == RANGES - 1
        remembered = scenario.target("SELECT lo, hi, verified FROM syncd.reconcile_chunks ORDER BY seq")
        assert [v for _, _, v in remembered] == [True, False, True, True]
        assert remembered[0][0] is None and remembered[-1][1] is None

    def test_rows_the_mapping_cannot_map_are_counted(self, scenario: Scenario) -> None:
        """A status outside the value map: the digests cannot vouch for the row, which they leave
        out; Python decides, for that row alone (its range is still in sync by its digests)."""
        mappings = MAPPINGS.replace("      status: status\n",
                                    "      status: {from: status, map: {paid: paid, cancelled: cancelled}}\n")
        scenario.write_config(mappings)
        scenario.sources["shop"].execute("UPDATE orders SET status = 'odd' WHERE id IN (10, 2021)")
        code, report = reconcile(scenario)
        assert code == 1 and report["unmappable"]["count"] == 2, report
        assert report["chunks_pushed_down"] == RANGES and report["rows_compared"] == IN_SCOPE
        assert report["chunks"] == RANGES + 2  # each row set aside read alone
        assert counts(report) == [0, 0, 0]
        # recorded as dead letters by a repair, they are explained: their ranges are in sync and
        # remembered, so the next pass reads no row
        code, report = reconcile(scenario, "--repair")
        assert code == 1 and report["dead_lettered"]["count"] == 2, report
        code, report = reconcile(scenario)
        assert code == 0 and report["explained_by_dead_letters"] == 2, report
        code, report = reconcile(scenario)
        assert code == 0 and report["chunks_unchanged"] == report["chunks"] == RANGES, report

    def test_full_maps_every_row(self, scenario: Scenario) -> None:
        code, report = reconcile(scenario, "--full")
        assert code == 0 and report["chunks_pushed_down"] == 0 and report["rows_compared"] == ROWS


class TestRepeatedPass:
    def test_remembered_ranges_are_skipped_and_changes_on_either_side_found(self, scenario: Scenario) -> None:
        code, report = reconcile(scenario)
        assert code == 0 and report["chunks_pushed_down"] == RANGES
        code, report = reconcile(scenario)
        assert code == 0 and report["chunks_unchanged"] == RANGES and report["chunks_pushed_down"] == 0
        assert report["rows_compared"] == IN_SCOPE
        # no daemon runs: a source change stays out of the target, as drift would
        scenario.sources["shop"].execute("""UPDATE orders SET extra = '{"coupon": "new"}' WHERE id = 10""")
        scenario.target("UPDATE orders SET phone_id = 'forged' WHERE source_id = 2100")
        code, report = reconcile(scenario)
        assert code == 1
        assert differing(report) == {10: ["coupon", "extra"], 2100: ["phone_id"]}
        assert report["chunks_unchanged"] == RANGES - 2 and report["rows_compared"] == IN_SCOPE
        code, report = reconcile(scenario, "--repair")
        assert code == 0 and report["repaired"] == 2
        # the two ranges that differed are compared by their digests, then remembered again
        code, report = reconcile(scenario)
        assert code == 0 and counts(report) == [0, 0, 0]
        assert (report["chunks_unchanged"], report["chunks_pushed_down"]) == (RANGES - 2, 2)
        code, report = reconcile(scenario)
        assert code == 0 and report["chunks_unchanged"] == RANGES

    def test_a_drift_found_by_a_pass_that_remembers_every_range_in_sync(self, scenario: Scenario) -> None:
        """Missing, extra and differing rows in remembered ranges, exact and deferred columns."""
        reconcile(scenario)
        scenario.target("DELETE FROM orders WHERE source_id = 1999")
        scenario.target("INSERT INTO orders (channel, source_id, order_no) VALUES ('shop', 9000, 'x')")
        scenario.target("UPDATE orders SET order_no = 'changed' WHERE source_id = 1")
        scenario.target("UPDATE orders SET coupon = 'changed' WHERE source_id = 1001")
        code, report = reconcile(scenario)
        assert code == 1 and counts(report) == [1, 1, 2]
        assert differing(report) == {1: ["order_no"], 1001: ["coupon"]}
        assert report["extra"]["keys"] == [["shop", 9000]] and report["missing"]["keys"] == [["shop", 1999]]
        assert report["chunks_unchanged"] == 1 and report["rows_compared"] == IN_SCOPE


class TestSnapshots:
    """A range's digest, deferred columns and checksum are one read on each side: a row changed
    while a pass reads its range is not remembered as in sync."""

    def first_pass_changing(self, scenario: Scenario, monkeypatch: pytest.MonkeyPatch, reader: type,
                            change: Callable[[], None]) -> None:
        """The first pass, with `change` made between the first range's digest and its checksum."""
        for name, value in scenario.env().items():
            monkeypatch.setenv(name, value)
        config = load_config(scenario.config_path)
        original = reader.range if reader is TargetReader else reader.rows_in_range
        done: list[bool] = []

        def racing(self, *args):
            if not done:
                change()
                done.append(True)
            return original(self, *args)

        monkeypatch.setattr(reader, "range" if reader is TargetReader else "rows_in_range", racing)
        [report] = reconcile_api(config, build_plans(config), chunk_rows=250)
        monkeypatch.undo()
        assert done and report.status == "in_sync"  # the state before the change was in sync
        assert report.chunks_pushed_down == RANGES

    def test_a_source_change_while_a_range_is_read(self, scenario: Scenario,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        shop = scenario.sources["shop"]
        self.first_pass_changing(scenario, monkeypatch, SourceReader,
                                 lambda: shop.execute("UPDATE orders SET qty = qty + 100 WHERE id = 5"))
        code, report = reconcile(scenario)
        assert code == 1 and differing(report) == {5: ["qty"]}
        assert report["chunks_unchanged"] == RANGES - 1

    def test_a_target_change_while_a_range_is_read(self, scenario: Scenario,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        self.first_pass_changing(scenario, monkeypatch, TargetReader, lambda: scenario.target(
            "UPDATE orders SET coupon = 'late' WHERE source_id = 6"))
        code, report = reconcile(scenario)
        assert code == 1 and differing(report) == {6: ["coupon"]}
        assert report["chunks_unchanged"] == RANGES - 1
