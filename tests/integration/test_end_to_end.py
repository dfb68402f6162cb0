"""Issue 2's slice on real servers: two sources -> mappings -> PostgreSQL, transactional, resumable."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import (
    APP_ORDERS_MAPPING,
    APP_ORDERS_SQL,
    SHOP_ORDERS_MAPPING,
    Scenario,
    Source,
)

RESTORED = "binlog_file, binlog_pos, gtid, applied_gtid, applied_digest"
"""The checkpoint columns a test puts back to replay from an older checkpoint."""

STATUSES = ["待支付", "已支付", "已发货", "已完成", "已取消"]


@pytest.fixture
def app(mariadb2: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("app", mariadb2, source_db(mariadb2))
    source.execute(APP_ORDERS_SQL)
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source,
             app: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop, "app": app})
    s.write_config(SHOP_ORDERS_MAPPING + APP_ORDERS_MAPPING)
    yield s
    s.close()


def insert_shop_order(order_id: int, status: str = "待支付", amount: str = "100元", *,
                      phone: str | None = "13812345678", note: str | None = None) -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, phone, status, amount_text, note, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, '2024-05-01 12:30:45.123')",
            (order_id, f"S{order_id:06d}", phone, status, amount, note))


def target_orders(scenario: Scenario, channel: str) -> dict[int, tuple]:
    rows = scenario.target("SELECT source_order_id, status, amount, buyer_phone, deleted_at IS NOT NULL "
                           "FROM orders WHERE channel = %s", (channel,))
    return {r[0]: r[1:] for r in rows}


def expected_shop(shop: Source) -> dict[int, tuple]:
    rows = shop.rows("SELECT id, status, amount_text, phone FROM orders")
    status_code = {s: i for i, s in enumerate(STATUSES)}
    return {r[0]: (status_code[r[1]], Decimal(r[2].replace("元", "").replace(",", "")),
                   f"{r[3][:3]}****{r[3][-4:]}", False) for r in rows}


def live_shop(scenario: Scenario) -> dict[int, tuple]:
    return {k: v for k, v in target_orders(scenario, "shop").items() if not v[3]}


class TestStreaming:
    def test_insert_update_delete_on_both_sources_land_mapped(self, scenario: Scenario, shop: Source,
                                                              app: Source) -> None:
        """Rows written on both sources appear mapped; updates and deletes follow."""
        shop.execute(insert_shop_order(1, "待支付", "1,299.50元"))
        app.execute("INSERT INTO app_orders VALUES (7, 20, 129950, '备注🎉', '2024-05-01 08:00:00.5')")
        process = scenario.start()
        eventually(lambda: target_orders(scenario, "shop") and target_orders(scenario, "app"), 60)
        assert target_orders(scenario, "shop") == {1: (0, Decimal("1299.50"), "138****5678", False)}
        assert target_orders(scenario, "app") == {7: (1, Decimal("1299.50"), None, False)}

        shop.execute(insert_shop_order(2, "已支付", "¥88.8"),
                     "UPDATE orders SET status = '已发货' WHERE id = 1")
        app.execute("UPDATE app_orders SET status_code = 40 WHERE id = 7",
                    "INSERT INTO app_orders VALUES (8, 10, 5, NULL, NULL)")
        eventually(lambda: target_orders(scenario, "shop") == {
            1: (2, Decimal("1299.50"), "138****5678", False),
            2: (1, Decimal("88.80"), "138****5678", False)}, 30)
        eventually(lambda: target_orders(scenario, "app") == {
            7: (3, Decimal("1299.50"), None, False), 8: (0, Decimal("0.05"), None, False)}, 30)

        shop.execute("DELETE FROM orders WHERE id = 2")
        app.execute("DELETE FROM app_orders WHERE id = 8")
        eventually(lambda: target_orders(scenario, "shop")[2][3] is True, 30)  # soft delete
        eventually(lambda: 8 not in target_orders(scenario, "app"), 30)        # hard delete
        assert scenario.stop(process) == 0

    def test_values_survive_exactly(self, scenario: Scenario, shop: Source, app: Source) -> None:
        """CJK text and emoji, NULLs, exact decimals and fractional DATETIMEs arrive unchanged."""
        process = scenario.start()
        eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == 2, 60)
        shop.execute(insert_shop_order(1, "已完成", " 88.8 元 "),
                     insert_shop_order(2, "已完成", "9,999,999,999.99元", phone=None))
        app.execute("INSERT INTO app_orders VALUES (1, 40, 1, '中文备注😀 ✓', '2024-05-01 08:00:00.000001')",
                    "INSERT INTO app_orders VALUES (2, 40, 0, NULL, NULL)")
        query = ("SELECT channel, source_order_id, note, amount, buyer_phone, "
                 "created_at AT TIME ZONE 'UTC' FROM orders ORDER BY 1, 2")
        rows = eventually(lambda: rows if len(rows := scenario.target(query)) == 4 else None, 30)
        assert rows[0][1:] == (1, "中文备注😀 ✓", Decimal("0.01"), None, datetime(2024, 5, 1, 0, 0, 0, 1))
        assert rows[1][1:] == (2, None, Decimal("0.00"), None, None)
        # DATETIME is read in the source's time zone (+08:00) and keeps its milliseconds.
        assert rows[2][1:] == (1, None, Decimal("88.80"), "138****5678",
                               datetime(2024, 5, 1, 4, 30, 45, 123000))
        assert rows[3][3:5] == (Decimal("9999999999.99"), None)
        scenario.stop(process)

    def test_multi_statement_transactions_land_atomically(self, scenario: Scenario,
                                                          shop: Source) -> None:
        """The target never shows part of a source transaction."""
        process = scenario.start()
        eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == 2, 60)
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                seen.append(len(target_orders(scenario, "shop")))

        watcher = threading.Thread(target=watch)
        watcher.start()
        for batch in range(5):
            shop.execute(*(insert_shop_order(batch * 100 + i + 1) for i in range(50)))
        eventually(lambda: len(target_orders(scenario, "shop")) == 250, 30)
        done.set()
        watcher.join()
        assert set(seen) <= {0, 50, 100, 150, 200, 250}
        scenario.stop(process)

    def test_unmapped_status_goes_to_dead_letters_and_stream_continues(self, scenario: Scenario,
                                                                       shop: Source) -> None:
        """A value the map does not list is dead-lettered with its reason; later rows still land."""
        process = scenario.start()
        eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == 2, 60)
        shop.execute(insert_shop_order(1, "已退款"))
        shop.execute(insert_shop_order(2, "已支付"))
        eventually(lambda: 2 in target_orders(scenario, "shop"), 30)
        assert 1 not in target_orders(scenario, "shop")
        letters = scenario.target("SELECT source, source_table, mapping, row_key, binlog_position, "
                                  "reason, row_image->>'status' FROM syncd.dead_letters")
        assert len(letters) == 1
        source, table, mapping, row_key, position, reason, status = letters[0]
        assert (source, table, mapping, row_key, status) == ("shop", "orders", "shop_orders", "id=1",
                                                             "已退款")
        assert "'已退款' is not in the map" in reason and "status" in reason
        assert position.startswith("mysql-bin.")
        status_out = scenario.cli("status")
        assert status_out.returncode == 0
        assert "shop" in status_out.stdout
        scenario.stop(process)


class TestResume:
    def test_snapshot_then_stream_handover_under_concurrent_writes(self, scenario: Scenario,
                                                                   shop: Source) -> None:
        """Rows written before, during and after the initial copy all arrive, in their last state."""
        shop.execute(*(insert_shop_order(i) for i in range(1, 2001)))
        stop = threading.Event()

        def write() -> None:
            rng = random.Random(7)
            next_id = 3000
            while not stop.is_set():
                order_id = rng.randint(1, 2000)
                shop.execute(f"UPDATE orders SET status = '{rng.choice(STATUSES)}' WHERE id = {order_id}",
                             insert_shop_order(next_id))
                next_id += 1

        writer = threading.Thread(target=write)
        writer.start()
        process = scenario.start()
        try:
            eventually(lambda: len(target_orders(scenario, "shop")) > 2000, 60)
        finally:
            stop.set()
            writer.join()
        eventually(lambda: target_orders(scenario, "shop") == expected_shop(shop), 60)
        scenario.stop(process)

    def test_kill_9_during_workload_then_restart_converges(self, scenario: Scenario,
                                                           shop: Source) -> None:
        """SIGKILL at random moments loses and duplicates nothing."""
        rng = random.Random(11)
        stop = threading.Event()

        def write() -> None:
            next_id = 1
            while not stop.is_set():
                shop.execute(insert_shop_order(next_id),
                             f"UPDATE orders SET status = '{rng.choice(STATUSES)}' "
                             f"WHERE id = {rng.randint(1, next_id)}")
                if next_id % 7 == 0:
                    shop.execute(f"DELETE FROM orders WHERE id = {rng.randint(1, next_id)}")
                next_id += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(4):
                process = scenario.start()
                threading.Event().wait(rng.uniform(1.5, 4.0))
                scenario.kill(process)
        finally:
            stop.set()
            writer.join()
        process = scenario.start()
        eventually(lambda: live_shop(scenario) == expected_shop(shop), 60)
        assert scenario.stop(process) == 0

    def test_replay_from_older_checkpoint_changes_nothing(self, scenario: Scenario,
                                                          shop: Source) -> None:
        """Re-applying an already applied range leaves the target exactly as it was."""
        process = scenario.start()
        eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == 2, 60)
        # The whole row, as a restore of the state schema brings it back (its binlog history too).
        old = scenario.target(f"SELECT {RESTORED} FROM syncd.checkpoints WHERE source='shop'")
        for i in range(1, 40):
            shop.execute(insert_shop_order(i), f"UPDATE orders SET status='已支付' WHERE id={i}")
        shop.execute("DELETE FROM orders WHERE id < 10")
        eventually(lambda: live_shop(scenario) == expected_shop(shop), 30)
        scenario.stop(process)
        before = scenario.target("SELECT * FROM orders ORDER BY channel, source_order_id")
        scenario.target(f"UPDATE syncd.checkpoints SET ({RESTORED}) = ROW(%s, %s, %s, %s, %s) "
                        "WHERE source='shop'", old[0])
        process = scenario.start()
        eventually(lambda: scenario.target("SELECT binlog_pos FROM syncd.checkpoints "
                                           "WHERE source='shop'")[0][0] > old[0][1], 30)
        assert scenario.stop(process) == 0
        assert scenario.target("SELECT * FROM orders ORDER BY channel, source_order_id") == before


class TestStartupChecks:
    def test_wrong_server_setting_is_named_with_its_fix(self, scenario: Scenario,
                                                        mariadb: MariaDBServer) -> None:
        """binlog_row_image=MINIMAL stops syncd with the variable's name and the fix."""
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL binlog_row_image = 'MINIMAL'")
        try:
            result = scenario.cli("validate", "--live")
        finally:
            with mariadb.connect() as conn, conn.cursor() as cur:
                cur.execute("SET GLOBAL binlog_row_image = 'FULL'")
        assert result.returncode == 1
        assert "binlog_row_image is MINIMAL, syncd needs FULL" in result.stdout
        assert "SET GLOBAL binlog_row_image = 'FULL'" in result.stdout

    def test_missing_target_column_names_the_mapping_file_and_line(self, scenario: Scenario) -> None:
        """A mapped column the target table lacks is reported at its file:line:col."""
        scenario.target("ALTER TABLE orders RENAME COLUMN note TO remark_text")
        result = scenario.cli("run")
        assert result.returncode == 78
        assert "mappings.yaml:" in result.stderr
        assert "has no column 'note'" in result.stderr
