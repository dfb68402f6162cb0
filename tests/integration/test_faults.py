"""Faults survived with zero drift: kill -9, server restarts, network cuts, rejected rows, huge transactions.

These tests run on servers of their own (restarting the session's servers would disturb other
tests). Each records what it did in tests/integration/fault_figures.json (see docs/reliability.md).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.proxy import Proxy
from tests.integration.scenario import (
    APP_ORDERS_MAPPING,
    APP_ORDERS_SQL,
    SHOP_ORDERS_MAPPING,
    SHOP_ORDERS_SQL,
    Scenario,
    Source,
)

STATUSES = ["待支付", "已支付", "已发货", "已完成", "已取消"]
CODES = [10, 20, 30, 40, 90]
FIGURES = Path(__file__).with_name("fault_figures.json")


@pytest.fixture(scope="module")
def servers(sandbox_root: Path) -> Iterator[tuple[MariaDBServer, MariaDBServer, PostgresServer]]:
    root = sandbox_root / "faults"
    shop = MariaDBServer(root / "shop", server_id=11)
    app = MariaDBServer(root / "app", server_id=12)
    pg = PostgresServer(root / "pg", settings={"synchronous_commit": "on"})
    for server in (shop, app, pg):
        server.start()
    yield shop, app, pg
    for server in (shop, app, pg):
        server.stop()


@pytest.fixture
def scenario(tmp_path: Path,
             servers: tuple[MariaDBServer, MariaDBServer, PostgresServer]) -> Iterator[Scenario]:
    shop_server, app_server, pg = servers
    name = f"f{random.randrange(10**8)}"
    for server in (shop_server, app_server):
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    pg.create_database(name)
    shop, app = Source("shop", shop_server, name), Source("app", app_server, name)
    shop.execute(SHOP_ORDERS_SQL)
    app.execute(APP_ORDERS_SQL)
    s = Scenario.create(tmp_path, pg, name, {"shop": shop, "app": app})
    s.write_config(SHOP_ORDERS_MAPPING + APP_ORDERS_MAPPING)
    yield s
    s.close()


class Workload:
    """Mixed inserts, updates and deletes (some multi-statement) on both sources, on a thread."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.shop, self.app = scenario.sources["shop"], scenario.sources["app"]
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.transactions = 0
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.next_id = 1

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._one()
                self.transactions += 1
            except Exception:  # a server restart in the middle: try again
                self.errors += 1
                time.sleep(0.2)

    def _one(self) -> None:
        rng, i = self.rng, self.next_id
        self.next_id += 1
        self.shop.execute(
            ("INSERT INTO orders (id, order_no, phone, status, amount_text) VALUES (%s, %s, %s, %s, %s)",
             (i, f"S{i}", "13812345678", rng.choice(STATUSES), f"{rng.randint(1, 99999)}.50元")),
            ("UPDATE orders SET status = %s WHERE id = %s", (rng.choice(STATUSES), rng.randint(1, i))))
        self.app.execute(
            ("INSERT INTO app_orders (id, status_code, total_fen, remark) VALUES (%s, %s, %s, %s)",
             (i, rng.choice(CODES), rng.randint(0, 10**7), "备注")),
            ("UPDATE app_orders SET status_code = %s WHERE id = %s", (rng.choice(CODES), rng.randint(1, i))))
        if i % 5 == 0:
            self.shop.execute(("DELETE FROM orders WHERE id = %s", (rng.randint(1, i),)))
            self.app.execute(("DELETE FROM app_orders WHERE id = %s", (rng.randint(1, i),)))


def expected(scenario: Scenario) -> dict[tuple[str, int], tuple]:
    shop = scenario.sources["shop"].rows("SELECT id, status, amount_text FROM orders")
    app = scenario.sources["app"].rows("SELECT id, status_code, total_fen FROM app_orders")
    rows = {("shop", r[0]): (STATUSES.index(r[1]), Decimal(r[2].removesuffix("元"))) for r in shop}
    rows.update({("app", r[0]): (CODES.index(r[1]), Decimal(r[2]) / 100) for r in app})
    return rows


def actual(scenario: Scenario) -> dict[tuple[str, int], tuple]:
    rows = scenario.target("SELECT channel, source_order_id, status, amount FROM orders "
                           "WHERE deleted_at IS NULL")
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def assert_converges(scenario: Scenario, timeout: float = 120) -> int:
    """The target equals the source through the mapping, and nothing is dead-lettered twice."""
    want = expected(scenario)
    eventually(lambda: actual(scenario) == want, timeout)
    result = scenario.cli("reconcile", "--json")
    assert result.returncode == 0, result.stdout + result.stderr   # 0 = in sync, zero drift
    duplicates = scenario.target("SELECT count(*) - count(DISTINCT (source, mapping, row_key, "
                                 "binlog_position, event_pos, row_index)) FROM syncd.dead_letters")
    assert duplicates == [(0,)]
    return len(want)


def record(name: str, **figures: object) -> None:
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[name] = {**figures, "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def streaming(scenario: Scenario) -> bool:
    return scenario.cli("status", "--json").stdout.count('"streaming"') == 2


class TestFaults:
    def test_kill_9_twenty_times_during_a_two_source_workload(self, scenario: Scenario) -> None:
        """SIGKILL at 20 random moments; the restarted daemon converges with no duplicate effects."""
        rng = random.Random(2024)
        kills = 0
        with Workload(scenario, seed=1) as workload:
            for _ in range(20):
                process = scenario.start()
                time.sleep(rng.uniform(0.3, 2.5))
                scenario.kill(process)
                kills += 1
        process = scenario.start()
        rows = assert_converges(scenario)
        assert scenario.stop(process) == 0
        record("kill_9", kills=kills, source_transactions=workload.transactions * 2, rows_checked=rows)

    def test_mariadb_restart_mid_stream(self, scenario: Scenario) -> None:
        """Both source servers restart under load; syncd retries and resumes from its checkpoint."""
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        with Workload(scenario, seed=2) as workload:
            time.sleep(2)
            for source in scenario.sources.values():
                source.server.restart()
            time.sleep(3)
        rows = assert_converges(scenario)
        assert '"event": "source_retry"' in scenario.log_text()
        assert scenario.stop(process) == 0
        record("mariadb_restart", restarts=2, source_transactions=workload.transactions * 2,
               rows_checked=rows)

    def test_postgres_restart_mid_stream(self, scenario: Scenario) -> None:
        """The target restarts under load; no batch is lost or applied twice."""
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        with Workload(scenario, seed=3) as workload:
            time.sleep(2)
            scenario.postgres.restart()
            time.sleep(3)
        rows = assert_converges(scenario)
        assert scenario.stop(process) == 0
        record("postgres_restart", restarts=1, source_transactions=workload.transactions * 2,
               rows_checked=rows)

    def test_network_cut_and_restored(self, scenario: Scenario) -> None:
        """Connections to every server drop and are refused for a while; syncd reconnects."""
        proxies = [Proxy("127.0.0.1", s.server.port) for s in scenario.sources.values()]
        target_proxy = Proxy("127.0.0.1", scenario.postgres.port)
        for source, proxy in zip(scenario.sources.values(), proxies, strict=True):
            source.via_port = proxy.port
        scenario.target_port = target_proxy.port
        scenario.write_config(SHOP_ORDERS_MAPPING + APP_ORDERS_MAPPING)
        process = scenario.start()
        try:
            eventually(lambda: streaming(scenario), 60)
            with Workload(scenario, seed=4) as workload:
                time.sleep(2)
                for proxy in [*proxies, target_proxy]:
                    proxy.cut()
                time.sleep(4)
                for proxy in [*proxies, target_proxy]:
                    proxy.restore()
                time.sleep(2)
            rows = assert_converges(scenario)
            assert scenario.stop(process) == 0
        finally:
            for proxy in [*proxies, target_proxy]:
                proxy.close()
        record("network_cut", cuts=3, seconds_cut=4, source_transactions=workload.transactions * 2,
               rows_checked=rows)

    def test_target_constraint_violation_is_dead_lettered_with_its_name(self, scenario: Scenario) -> None:
        """A row the target refuses goes to the dead letters naming the constraint; the rest lands."""
        scenario.target("ALTER TABLE orders ADD CONSTRAINT amount_below_limit CHECK (amount < 1000)")
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        shop = scenario.sources["shop"]
        insert = "INSERT INTO orders (id, order_no, status, amount_text) VALUES (%s, %s, '已支付', %s)"
        shop.execute((insert, (1, "S1", "5000元")), (insert, (2, "S2", "5元")))
        eventually(lambda: ("shop", 2) in actual(scenario), 30)
        assert ("shop", 1) not in actual(scenario)
        letters = scenario.target("SELECT row_key, reason FROM syncd.dead_letters")
        assert letters[0][0] == "id=1" and "amount_below_limit" in letters[0][1]
        scenario.stop(process)

    @pytest.mark.slow
    def test_million_row_transaction_applies_atomically_in_bounded_memory(self, scenario: Scenario) -> None:
        """One source transaction of 1,000,000 rows lands all at once; syncd's memory stays bounded."""
        process = scenario.start()
        eventually(lambda: streaming(scenario), 60)
        shop = scenario.sources["shop"]
        began = time.monotonic()
        shop.execute("INSERT INTO orders (id, order_no, status, amount_text) "
                     "SELECT seq, CONCAT('B', seq), '已支付', '1元' FROM seq_1_to_1000000")
        seen: set[int] = set()
        with psycopg.connect(scenario.postgres.dsn(scenario.target_db), autocommit=True) as conn:
            def count() -> int:
                value = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
                seen.add(value)
                return value

            eventually(lambda: count() == 1_000_000, 600, interval=0.5)
        seconds = time.monotonic() - began
        peak_mb = _peak_rss_mb(process.pid)
        assert seen <= {0, 1_000_000}
        assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
        assert scenario.stop(process) == 0
        record("million_row_transaction", rows=1_000_000, seconds=round(seconds, 1),
               rows_per_second=round(1_000_000 / seconds), peak_rss_mb=round(peak_mb, 1))


def _peak_rss_mb(pid: int) -> float:
    """Peak RSS of syncd and of its running child processes (the binlog decoders), summed."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(_own_peak_rss_mb(p) for p in [pid, *map(int, children)])


def _own_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")
