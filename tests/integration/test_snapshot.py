"""`syncd snapshot` on real servers: resumable chunked copies, with and without a running daemon."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.config import load_config
from syncd.reconcile import snapshot
from syncd.service.startup import build_plans
from tests.helpers import eventually
from tests.integration.scenario import Scenario, Source
from tests.integration.test_reconcile import (
    APP_ORDERS_MAPPING,
    APP_ORDERS_SQL,
    SHOP_MAPPING,
    STATUSES,
    expected_shop,
    live_target,
    shop_order,
    wait_streaming,
    whole_slice,
)


@pytest.fixture
def app(mariadb2: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("app", mariadb2, source_db(mariadb2))
    source.execute(APP_ORDERS_SQL)
    return source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source,
             app: Source) -> Iterator[Scenario]:
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop, "app": app})
    s.write_config(SHOP_MAPPING + APP_ORDERS_MAPPING)
    yield s
    s.close()


def insert_rows(shop: Source, first: int, last: int) -> None:
    for start in range(first, last + 1, 500):
        shop.execute(*(shop_order(i, STATUSES[i % 5], f"{i}元", note="0")
                       for i in range(start, min(last, start + 499) + 1)))


def api(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> tuple:
    for name, value in scenario.env().items():
        monkeypatch.setenv(name, value)
    config = load_config(scenario.config_path)
    return config, build_plans(config)


def create_state(scenario: Scenario) -> None:
    """The state tables, as a first `syncd run` or `syncd reconcile` leaves them."""
    assert scenario.cli("reconcile", "--mapping", "app_orders").returncode in (0, 1)


class TestDirect:
    def test_interrupted_copy_resumes_from_its_last_chunk(self, scenario: Scenario, shop: Source, app: Source,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """Stopped after 3 chunks, the next run copies only the rest; stale rows go; then streaming."""
        insert_rows(shop, 1, 1000)
        create_state(scenario)
        scenario.target("INSERT INTO orders (channel, source_order_id, status) VALUES "
                        "('shop', 5000, 1), ('app', 77, 1)")
        app_before = whole_slice(scenario, "app")
        config, plans = api(scenario, monkeypatch)
        stop = threading.Event()
        seen: list[int] = []

        def progress(source: str, table: str, copied: int, total: int) -> None:
            seen.append(copied)
            if copied >= 300:
                stop.set()

        [first] = snapshot(config, plans, source="shop", chunk_rows=100, stop=stop, progress=progress)
        assert (first.finished, first.mode, first.copied) == (False, "direct", {"orders": 300})
        assert seen == [100, 200, 300]
        rows = scenario.target("SELECT source_table, position, last_key, rows_copied, done "
                               "FROM syncd.snapshot_progress WHERE source = 'shop'")
        assert rows == [("orders", first.position, [300], 300, False)]
        assert sorted(live_target(scenario)) == [*range(1, 301), 5000]
        assert scenario.target("SELECT count(*) FROM syncd.checkpoints") == [(0,)]

        # Meanwhile the source moves on: a copied row and a not yet copied row change, rows arrive.
        shop.execute("UPDATE orders SET status = '已完成', note = '1' WHERE id IN (50, 900)")
        insert_rows(shop, 1001, 1100)

        result = scenario.cli("snapshot", "--source", "shop", "--chunk-rows", "100")
        assert result.returncode == 0, result.stderr
        assert "shop: done; direct; copied orders 800" in result.stdout
        assert f"checkpoint {first.position}" in result.stdout
        events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
        progress_events = [e for e in events if e.get("event") == "snapshot_progress"]
        assert [e["rows"] for e in progress_events] == list(range(400, 1101, 100))
        assert scenario.target("SELECT count(*) FROM syncd.snapshot_progress") == [(0,)]
        checkpoint = scenario.target("SELECT binlog_file || ':' || binlog_pos, snapshot_done "
                                     "FROM syncd.checkpoints WHERE source = 'shop'")
        assert checkpoint == [(first.position, True)]
        assert 5000 not in live_target(scenario)
        assert whole_slice(scenario, "app") == app_before

        # Streaming from the first copy's position replays what changed since and converges.
        process = scenario.start()
        eventually(lambda: live_target(scenario) == expected_shop(shop), 60)
        assert scenario.stop(process) == 0

    def test_copy_during_writes_then_stream_converges(self, scenario: Scenario, shop: Source,
                                                      app: Source) -> None:
        """Re-initialisation with no daemon while the source takes writes: nothing is lost."""
        insert_rows(shop, 1, 2000)
        stop = threading.Event()

        def write() -> None:
            rng = random.Random(3)
            next_id = 3000
            while not stop.is_set():
                shop.execute(f"UPDATE orders SET status = '{rng.choice(STATUSES)}' "
                             f"WHERE id = {rng.randint(1, 2000)}", shop_order(next_id))
                if next_id % 5 == 0:
                    shop.execute(f"DELETE FROM orders WHERE id = {rng.randint(1, 2000)}")
                next_id += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            result = scenario.cli("snapshot", "--chunk-rows", "200", timeout=240)
        finally:
            stop.set()
            writer.join()
        assert result.returncode == 0, result.stderr
        process = scenario.start()
        eventually(lambda: live_target(scenario) == expected_shop(shop), 90)
        code = scenario.cli("reconcile").returncode
        assert code == 0
        assert scenario.stop(process) == 0

    def test_ddl_on_the_source_does_not_wait_for_the_copy(
            self, scenario: Scenario, shop: Source, app: Source, monkeypatch: pytest.MonkeyPatch) -> None:
        """No transaction stays open across chunks: an ALTER between two chunks takes its metadata
        lock at once (it would time out behind a copy-long snapshot), and streaming absorbs it."""
        insert_rows(shop, 1, 600)
        config, plans = api(scenario, monkeypatch)
        altered: list[int] = []

        def alter_once(source: str, table: str, copied: int, total: int) -> None:
            if source == "shop" and not altered:
                shop.execute("SET SESSION lock_wait_timeout = 3", "ALTER TABLE orders ADD COLUMN extra INT",
                             "UPDATE orders SET status = '已完成', extra = 1 WHERE id = 50")
                altered.append(copied)

        [result] = snapshot(config, plans, source="shop", chunk_rows=100, progress=alter_once)
        assert (result.finished, result.copied, altered) == (True, {"orders": 600}, [100])
        process = scenario.start()
        wait_streaming(scenario)
        eventually(lambda: live_target(scenario) == expected_shop(shop), 60)
        assert scenario.stop(process) == 0

    def test_a_bad_row_written_during_the_copy_has_one_dead_letter(
            self, scenario: Scenario, shop: Source, app: Source, monkeypatch: pytest.MonkeyPatch) -> None:
        """Inserted after the copy's position but read by the copy, a row that cannot be mapped
        fails in the copy and again when the stream replays its insert: the stream's letter takes
        over the copy's one."""
        insert_rows(shop, 1, 300)
        shop.execute("UPDATE orders SET status = '已退款' WHERE id = 50")
        config, plans = api(scenario, monkeypatch)

        def insert_bad_once(source: str, table: str, copied: int, total: int) -> None:
            if source == "shop" and copied == 100:
                shop.execute(shop_order(301, "已退款"))

        [result] = snapshot(config, plans, source="shop", chunk_rows=100, progress=insert_bad_once)
        assert (result.finished, result.dead_letters) == (True, 2)
        letters = "SELECT row_key, binlog_position LIKE 'snapshot@%' FROM syncd.dead_letters ORDER BY row_key"
        assert scenario.target(letters) == [("id=301", True), ("id=50", True)]
        process = scenario.start()
        wait_streaming(scenario)
        # 50 was bad before the copy's position: no change of it is streamed, its letter stays
        eventually(lambda: scenario.target(letters) == [("id=301", False), ("id=50", True)], 30)
        assert scenario.stop(process) == 0


class TestThroughStream:
    def test_snapshot_while_streaming_loses_nothing(self, scenario: Scenario, shop: Source,
                                                    app: Source) -> None:
        """With a daemon running, each chunk is repaired in stream order; writes go on meanwhile."""
        insert_rows(shop, 1, 600)
        process = scenario.start()
        wait_streaming(scenario)
        eventually(lambda: len(live_target(scenario)) == 600, 60)
        scenario.target("DELETE FROM orders WHERE channel = 'shop' AND source_order_id BETWEEN 100 AND 120")
        scenario.target("UPDATE orders SET amount = 0 WHERE channel = 'shop' AND source_order_id > 580")
        scenario.target("INSERT INTO orders (channel, source_order_id) VALUES ('shop', 9000)")
        stop = threading.Event()

        def write() -> None:
            rng = random.Random(8)
            next_id = 1000
            while not stop.is_set():
                shop.execute(f"UPDATE orders SET status = '{rng.choice(STATUSES)}' "
                             f"WHERE id = {rng.randint(1, 600)}", shop_order(next_id))
                next_id += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            result = scenario.cli("snapshot", "--source", "shop", "--chunk-rows", "150", timeout=240)
        finally:
            stop.set()
            writer.join()
        assert result.returncode == 0, result.stderr
        assert "shop: done; stream" in result.stdout
        eventually(lambda: live_target(scenario) == expected_shop(shop), 60)
        assert scenario.target("SELECT count(*) FROM syncd.snapshot_progress") == [(0,)]
        requested = scenario.target("SELECT count(*), bool_and(status = 'done') FROM syncd.repair_requests "
                                    "WHERE requested_by = 'snapshot'")
        assert requested[0][0] >= 4 and requested[0][1] is True
        assert scenario.stop(process) == 0


class TestRefusals:
    def test_table_without_primary_key_is_refused(self, scenario: Scenario, shop: Source,
                                                  app: Source) -> None:
        shop.execute("CREATE TABLE events (id BIGINT NOT NULL, kind VARCHAR(10))",
                     "INSERT INTO events VALUES (1, 'a')")
        scenario.target("CREATE TABLE events (id bigint PRIMARY KEY, kind text)")
        scenario.write_config(SHOP_MAPPING + APP_ORDERS_MAPPING + """
  - name: shop_events
    source: shop
    table: events
    target: events
    key: id
    columns: {id: id, kind: kind}
""")
        result = scenario.cli("snapshot", "--mapping", "shop_events")
        assert result.returncode == 2
        assert "events (mapping 'shop_events') has no primary key" in result.stderr
        reconciled = scenario.cli("reconcile", "--mapping", "shop_events")
        assert reconciled.returncode == 2
        assert "has no primary key" in reconciled.stdout

    def test_a_missing_source_table_is_named_as_missing(self, scenario: Scenario, app: Source) -> None:
        scenario.target("CREATE TABLE ghosts (id bigint PRIMARY KEY)")
        scenario.write_config(SHOP_MAPPING + APP_ORDERS_MAPPING + """
  - name: shop_ghosts
    source: shop
    table: no_such_table
    target: ghosts
    key: id
    columns: {id: id}
""")
        result = scenario.cli("snapshot", "--source", "shop")
        assert result.returncode == 2
        assert "table(s) no_such_table (mapping shop_ghosts) do not exist" in result.stderr
        assert "primary key" not in result.stderr
        assert scenario.target("SELECT to_regclass('syncd.schema_history')") == [(None,)]  # nothing written

    def test_a_mapped_column_the_table_lost_is_named_before_anything_is_copied(
            self, scenario: Scenario, shop: Source) -> None:
        """A copy would dead-letter every row: it is refused, naming the column and the fix."""
        insert_rows(shop, 1, 5)
        shop.execute("ALTER TABLE orders DROP COLUMN phone")
        result = scenario.cli("snapshot", "--source", "shop")
        assert result.returncode == 2
        assert "mapping 'shop_orders' reads column(s) phone that source table orders does not have: " \
               "edit the mapping at " in result.stderr
        assert scenario.target("SELECT count(*) FROM orders") == [(0,)]

    def test_unknown_names(self, scenario: Scenario) -> None:
        result = scenario.cli("snapshot", "--mapping", "nope")
        assert result.returncode == 2
        assert "no mapping named 'nope'" in result.stderr
