"""`syncd snapshot` on real servers: resumable chunked copies, with and without a running daemon."""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.config import load_config
from syncd.reconcile import snapshot
from syncd.reconcile.snapshot import TABLE_WORKERS
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

COPY = sys.modules["syncd.reconcile.snapshot"]
"""The module (the package exports its `snapshot` function under the same name)."""


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


ITEMS_SQL = "CREATE TABLE items (id BIGINT PRIMARY KEY, qty INT NOT NULL)"
ITEMS_TARGET_SQL = "CREATE TABLE shop_items (item_id bigint PRIMARY KEY, qty smallint NOT NULL)"
ITEMS_MAPPING = """
  - name: shop_items
    source: shop
    table: items
    target: shop_items
    key: [item_id]
    columns:
      item_id: id
      qty: qty
"""


@pytest.fixture
def two_tables(scenario: Scenario, shop: Source) -> Scenario:
    """The shop source maps two tables (orders, items), copied side by side."""
    shop.execute(ITEMS_SQL)
    scenario.target(ITEMS_TARGET_SQL)
    scenario.write_config(SHOP_MAPPING + APP_ORDERS_MAPPING + ITEMS_MAPPING)
    return scenario


def insert_items(shop: Source, first: int, last: int, bad: int | None = None) -> None:
    """Items first..last; item `bad` has a qty too large for the target's smallint."""
    for start in range(first, last + 1, 500):
        values = ", ".join(f"({i}, {70000 if i == bad else i % 100})"
                           for i in range(start, min(last, start + 499) + 1))
        shop.execute(f"INSERT INTO items (id, qty) VALUES {values}")


class TestTablesSideBySide:
    def test_both_tables_stopped_midway_resume_without_loss_or_duplicate(
            self, two_tables: Scenario, shop: Source, monkeypatch: pytest.MonkeyPatch) -> None:
        """Both tables are copied at once, each with its own progress row; stopped while both are
        midway, the next run continues each after its own last chunk. A row PostgreSQL refuses
        in one table is one dead letter, while the other table copies on."""
        assert TABLE_WORKERS >= 2
        insert_rows(shop, 1, 1500)
        insert_items(shop, 1, 1500, bad=1250)
        create_state(two_tables)
        config, plans = api(two_tables, monkeypatch)
        stop = threading.Event()
        seen: dict[str, int] = {}

        def progress(source: str, table: str, copied: int, total: int) -> None:
            seen[table] = copied
            if len(seen) == 2 and min(seen.values()) >= 300:
                stop.set()

        [first] = snapshot(config, plans, source="shop", chunk_rows=100, stop=stop, progress=progress)
        assert not first.finished
        rows = two_tables.target("SELECT source_table, rows_copied, done FROM syncd.snapshot_progress "
                                 "WHERE source = 'shop' ORDER BY source_table")
        assert [(table, done) for table, _, done in rows] == [("items", False), ("orders", False)]
        assert all(300 <= copied < 1500 for _, copied, _ in rows)

        result = two_tables.cli("snapshot", "--source", "shop", "--chunk-rows", "100")
        assert result.returncode == 0, result.stderr
        assert sorted(live_target(two_tables)) == list(range(1, 1501))
        items = two_tables.target("SELECT item_id, qty FROM shop_items ORDER BY item_id")
        assert items == [(i, i % 100) for i in range(1, 1501) if i != 1250]
        letters = two_tables.target("SELECT mapping, row_key FROM syncd.dead_letters")
        assert letters == [("shop_items", "id=1250")]
        assert two_tables.target("SELECT count(*) FROM syncd.snapshot_progress") == [(0,)]
        done = two_tables.target("SELECT snapshot_done FROM syncd.checkpoints WHERE source = 'shop'")
        assert done == [(True,)]

    def test_a_table_that_fails_stops_the_other_and_its_error_is_raised(
            self, two_tables: Scenario, shop: Source, monkeypatch: pytest.MonkeyPatch) -> None:
        insert_rows(shop, 1, 1000)
        insert_items(shop, 1, 1000)
        config, plans = api(two_tables, monkeypatch)
        read = COPY._read_chunk

        def failing(reader: object, job: Any, after: object, limit: int) -> object:
            if job.table == "items" and after is not None:
                raise RuntimeError("items unreadable")
            return read(reader, job, after, limit)

        monkeypatch.setattr(COPY, "_read_chunk", failing)
        with pytest.raises(RuntimeError, match="items unreadable"):
            snapshot(config, plans, source="shop", chunk_rows=100)
        monkeypatch.setattr(COPY, "_read_chunk", read)
        [result] = snapshot(config, plans, source="shop", chunk_rows=100)
        assert result.finished and result.resumed
        assert sorted(live_target(two_tables)) == list(range(1, 1001))
        assert two_tables.target("SELECT count(*) FROM shop_items") == [(1000,)]


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

    def test_rows_no_source_row_makes_are_removed_by_their_keys_alone(self, scenario: Scenario,
                                                                      shop: Source) -> None:
        """A snapshot over a filled target removes the slice's rows no source row in the
        `where:` scope makes: the pass that finds them reads only the key's and the filter's
        columns (a row the filter leaves out counts as absent)."""
        filtered = "    where: {note: {ne: skip}}\n    columns:\n"
        scenario.write_config(SHOP_MAPPING.replace("    columns:\n", filtered, 1))
        insert_rows(shop, 1, 30)
        shop.execute("UPDATE orders SET note = 'skip' WHERE id IN (4, 5)")
        assert scenario.cli("snapshot", "--mapping", "shop_orders").returncode == 0
        assert sorted(live_target(scenario)) == [i for i in range(1, 31) if i not in (4, 5)]
        shop.execute("UPDATE orders SET note = 'skip' WHERE id = 7", "DELETE FROM orders WHERE id = 9")
        scenario.target("INSERT INTO orders (channel, source_order_id, status) VALUES ('shop', 5000, 1)")
        result = scenario.cli("snapshot", "--mapping", "shop_orders")
        assert result.returncode == 0, result.stderr
        assert "removed 3" in result.stdout, result.stdout
        assert sorted(live_target(scenario)) == [i for i in range(1, 31) if i not in (4, 5, 7, 9)]

    def test_a_copy_retires_the_dead_letters_it_supersedes(self, scenario: Scenario, shop: Source) -> None:
        """A whole-table copy writes every row from its current source row, or dead-letters it
        again (which dates its letter anew): the older pending letters of its mappings are retried."""
        insert_rows(shop, 1, 20)
        shop.execute("UPDATE orders SET status = '已退款' WHERE id IN (5, 6)")
        assert scenario.cli("snapshot", "--mapping", "shop_orders").returncode == 0
        pending = "SELECT row_key FROM syncd.dead_letters WHERE status = 'pending' ORDER BY row_key"
        assert scenario.target(pending) == [("id=5",), ("id=6",)]
        shop.execute("UPDATE orders SET status = '已支付' WHERE id = 5")
        result = scenario.cli("snapshot", "--mapping", "shop_orders")
        assert result.returncode == 0 and "older ones retired: 1" in result.stdout, result.stdout
        assert scenario.target(pending) == [("id=6",)]  # dated anew by the second copy
        assert 5 in live_target(scenario) and 6 not in live_target(scenario)
        assert scenario.cli("reconcile", "--mapping", "shop_orders").returncode == 0
