"""Schema changes while streaming: absorbed, paused per mapping and resumed, TRUNCATE propagated."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import (
    SHOP_ORDERS_MAPPING,
    SHOP_ORDERS_SQL,
    TARGET_ORDERS_SQL,
    Scenario,
    Source,
)

NOTES_MAPPING = """
  - name: shop_notes
    source: shop
    table: notes
    target: notes
    key: [id]
    columns:
      id: id
      body: body
"""


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
             source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SHOP_ORDERS_SQL, "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)",
                 "CREATE TABLE unmapped (id INT PRIMARY KEY, x INT)")
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop},
                        target_sql=TARGET_ORDERS_SQL + "; CREATE TABLE notes (id int PRIMARY KEY, body text)")
    s.write_config(SHOP_ORDERS_MAPPING + NOTES_MAPPING)
    yield s
    s.close()


def order(order_id: int) -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, phone, status, amount_text) "
            "VALUES (%s, %s, %s, '已支付', '1元')", (order_id, f"S{order_id}", "13812345678"))


def order_without_phone(order_id: int) -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, status, amount_text) VALUES (%s, %s, '已支付', '2元')",
            (order_id, f"S{order_id}"))


def orders(scenario: Scenario) -> set[int]:
    return {r[0] for r in scenario.target("SELECT source_order_id FROM orders WHERE deleted_at IS NULL")}


def notes(scenario: Scenario) -> set[int]:
    return {r[0] for r in scenario.target("SELECT id FROM notes")}


def events(scenario: Scenario, name: str) -> int:
    return scenario.log_text().count(f'"event": "{name}"')


def streaming(scenario: Scenario) -> bool:
    return '"streaming"' in scenario.cli("status", "--json").stdout


class TestSchemaChanges:
    def test_unmapped_column_changes_are_absorbed(self, scenario: Scenario) -> None:
        """Adding and dropping a column no mapping reads changes nothing but a log event."""
        shop = scenario.sources["shop"]
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        shop.execute("ALTER TABLE orders ADD COLUMN extra INT")
        shop.execute(order(1))
        shop.execute("ALTER TABLE orders DROP COLUMN extra", "ALTER TABLE unmapped ADD COLUMN y INT")
        shop.execute(order(2))
        eventually(lambda: orders(scenario) == {1, 2}, 30)
        assert events(scenario, "schema_change_absorbed") == 2
        assert events(scenario, "mapping_paused") == 0
        scenario.stop(process)

    def test_a_dropped_primary_key_does_not_stop_the_source(self, scenario: Scenario) -> None:
        """Changes to a table that lost its primary key still stream (by the mapping's key), and
        so does everything after them; the key added back changes nothing."""
        shop = scenario.sources["shop"]
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        shop.execute("ALTER TABLE notes DROP PRIMARY KEY")
        shop.execute("INSERT INTO notes VALUES (1, 'a'), (2, 'b')",
                     "UPDATE notes SET body = 'c' WHERE id = 2", "DELETE FROM notes WHERE id = 1")
        shop.execute(order(7))
        eventually(lambda: orders(scenario) == {7}, 30)
        assert scenario.target("SELECT id, body FROM notes") == [(2, "c")]
        shop.execute("ALTER TABLE notes ADD PRIMARY KEY (id)", "INSERT INTO notes VALUES (3, 'd')")
        eventually(lambda: notes(scenario) == {2, 3}, 30)
        assert streaming(scenario) and events(scenario, "source_crashed") == 0
        assert scenario.stop(process) == 0

    def test_breaking_change_pauses_only_that_mapping_until_fixed_and_reloaded(
            self, scenario: Scenario) -> None:
        """Dropping a mapped column pauses that mapping at the DDL; the fix + reload replays it."""
        shop = scenario.sources["shop"]
        shop.execute(order(1))
        process = scenario.start()
        eventually(lambda: orders(scenario) == {1} and streaming(scenario), 60)
        shop.execute("ALTER TABLE orders DROP COLUMN phone")
        shop.execute(order_without_phone(2))
        shop.execute("INSERT INTO notes VALUES (1, 'still flowing')")
        eventually(lambda: notes(scenario) == {1}, 30)          # the other mapping goes on
        assert orders(scenario) == {1}                           # the paused one waits
        log = scenario.log_text()
        assert '"event": "mapping_paused"' in log
        assert "DROP COLUMN phone" in log and "no longer has column(s) phone" in log
        assert "mappings.yaml:" in log                          # points at the mapping to fix
        paused = scenario.target("SELECT mapping, statement FROM syncd.paused_mappings")
        assert paused == [("shop_orders", "ALTER TABLE orders DROP COLUMN phone")]

        fixed = SHOP_ORDERS_MAPPING.replace(
            "      buyer_phone: {from: phone, transform: mask_phone}      # 13812345678 -> 138****5678\n", "")
        scenario.write_config(fixed + NOTES_MAPPING)
        process.send_signal(signal.SIGHUP)
        eventually(lambda: orders(scenario) == {1, 2}, 60)      # replayed from the pause
        shop.execute(order_without_phone(3))
        eventually(lambda: orders(scenario) == {1, 2, 3}, 30)
        assert scenario.target("SELECT count(*) FROM syncd.paused_mappings") == [(0,)]
        assert scenario.stop(process) == 0

    def test_a_table_swapped_in_by_an_online_schema_change_waits_for_a_copy(self, scenario: Scenario) -> None:
        """gh-ost / pt-osc swap the table under the mapped name: the rows written into the new
        table never went through the stream, so a reload alone does not resume the mapping; a
        snapshot of the mapping, then a reload, brings every row."""
        shop = scenario.sources["shop"]
        shop.execute(order(1), order(2))
        process = scenario.start()
        eventually(lambda: orders(scenario) == {1, 2} and streaming(scenario), 60)
        shop.execute("CREATE TABLE orders_new LIKE orders", "INSERT INTO orders_new SELECT * FROM orders")
        shop.execute(order(3))  # written to the old table while the copy catches up
        shop.execute("INSERT INTO orders_new SELECT * FROM orders WHERE id = 3",
                     "UPDATE orders_new SET order_no = 'S1-new' WHERE id = 1")
        shop.execute(("INSERT INTO orders_new (id, order_no, phone, status, amount_text) "
                      "VALUES (4, 'S4', '13812345678', '已支付', '1元')", ()))
        shop.execute("RENAME TABLE orders TO orders_old, orders_new TO orders")
        shop.execute(order(5))
        [(reason,)] = eventually(lambda: scenario.target("SELECT reason FROM syncd.paused_mappings"), 30)
        assert "source table orders was replaced by table orders_new" in reason
        assert "syncd snapshot --mapping shop_orders" in reason

        process.send_signal(signal.SIGHUP)  # the mapping names the right table: nothing to edit
        eventually(lambda: events(scenario, "mapping_still_paused") >= 1, 30)
        assert orders(scenario) == {1, 2, 3}

        copied = scenario.cli("snapshot", "--mapping", "shop_orders")
        assert copied.returncode == 0, copied.stderr
        process.send_signal(signal.SIGHUP)
        shop.execute(order(6))
        eventually(lambda: orders(scenario) == {1, 2, 3, 4, 5, 6}, 60)
        assert scenario.target("SELECT order_no FROM orders WHERE source_order_id = 1") == [("S1-new",)]
        eventually(lambda: scenario.target("SELECT count(*) FROM syncd.paused_mappings") == [(0,)], 30)
        assert scenario.stop(process) == 0

    def test_truncate_removes_the_mapping_slice(self, scenario: Scenario) -> None:
        """TRUNCATE at the source soft-deletes the mapping's rows (delete: soft), by default."""
        shop = scenario.sources["shop"]
        shop.execute(order(1), order(2))
        shop.execute("INSERT INTO notes VALUES (1, 'n')")
        process = scenario.start()
        eventually(lambda: orders(scenario) == {1, 2} and notes(scenario) == {1} and streaming(scenario), 60)
        shop.execute("TRUNCATE TABLE orders")
        shop.execute("TRUNCATE TABLE notes")
        eventually(lambda: not orders(scenario) and not notes(scenario), 30)
        assert scenario.target("SELECT count(*) FROM orders WHERE deleted_at IS NOT NULL") == [(2,)]
        shop.execute(order(5))
        eventually(lambda: orders(scenario) == {5}, 30)
        scenario.stop(process)

    @pytest.mark.parametrize(("statement", "reason"), [
        ("ALTER TABLE orders RENAME COLUMN phone TO mobile", "no longer has column(s) phone"),
        ("ALTER TABLE orders MODIFY COLUMN status INT NOT NULL DEFAULT 0", "status varchar -> int"),
        ("RENAME TABLE orders TO orders_old", "renamed to orders_old"),
        ("DROP TABLE orders", "was dropped"),
    ])
    def test_each_breaking_kind_pauses_the_mapping(self, scenario: Scenario, statement: str,
                                                   reason: str) -> None:
        """Renamed or dropped columns and tables, and a changed column type, pause the mapping."""
        shop = scenario.sources["shop"]
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        shop.execute(statement)
        shop.execute("INSERT INTO notes VALUES (1, 'after')")
        eventually(lambda: notes(scenario) == {1}, 30)
        paused = eventually(lambda: scenario.target("SELECT mapping, reason FROM syncd.paused_mappings"), 30)
        assert paused[0][0] == "shop_orders" and reason in paused[0][1]
        assert scenario.stop(process) == 0

    def test_widening_a_mapped_column_is_absorbed(self, scenario: Scenario) -> None:
        """A type change within one family (VARCHAR(20) -> VARCHAR(40)) keeps the mapping running."""
        shop = scenario.sources["shop"]
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        shop.execute("ALTER TABLE orders MODIFY COLUMN phone VARCHAR(40)")
        shop.execute(order(1))
        eventually(lambda: orders(scenario) == {1}, 30)
        assert scenario.target("SELECT count(*) FROM syncd.paused_mappings") == [(0,)]
        scenario.stop(process)

    def test_truncate_can_pause_instead(self, scenario: Scenario) -> None:
        """With ddl.truncate: pause, a TRUNCATE pauses the mapping and leaves the target rows."""
        scenario.write_config(SHOP_ORDERS_MAPPING + NOTES_MAPPING, extra="ddl: {truncate: pause}\n")
        shop = scenario.sources["shop"]
        shop.execute(order(1))
        process = scenario.start()
        eventually(lambda: orders(scenario) == {1} and streaming(scenario), 60)
        shop.execute("TRUNCATE TABLE orders")
        paused = eventually(lambda: scenario.target("SELECT reason FROM syncd.paused_mappings"), 30)
        assert "truncated" in paused[0][0]
        assert orders(scenario) == {1}
        scenario.stop(process)
