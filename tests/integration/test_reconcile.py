"""`syncd reconcile` on real servers: drift found exactly, repaired, other slices left alone."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from devtools.sandbox import MariaDBServer, PostgresServer, free_port
from syncd.config import load_config
from syncd.reconcile import last_runs, reconcile
from syncd.service.startup import build_plans
from tests.helpers import eventually
from tests.integration.scenario import (
    APP_ORDERS_MAPPING,
    APP_ORDERS_SQL,
    SHOP_ORDERS_MAPPING,
    Scenario,
    Source,
)

STATUSES = ["待支付", "已支付", "已发货", "已完成", "已取消"]

# The shop mapping of the end-to-end tests, also copying `note` (tests use it as a row version).
SHOP_MAPPING = SHOP_ORDERS_MAPPING.rstrip("\n") + "\n      note: note\n"

# A second mapping into the same target table: its slice is channel = 'app'.
def shop_order(order_id: int, status: str = "待支付", amount: str = "100元", note: str | None = None,
               phone: str | None = "13812345678") -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, phone, status, amount_text, note, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, '2024-05-01 12:30:45.123')",
            (order_id, f"S{order_id:06d}", phone, status, amount, note))


def expected_shop(shop: Source) -> dict[int, tuple]:
    """What the shop mapping makes of the source rows: id -> (status, amount, phone, note)."""
    code = {s: i for i, s in enumerate(STATUSES)}
    rows = shop.rows("SELECT id, status, amount_text, phone, note FROM orders")
    return {r[0]: (code[r[1]], Decimal(r[2].replace("元", "").replace(",", "")).quantize(Decimal("0.01")),
                   f"{r[3][:3]}****{r[3][-4:]}" if r[3] else None, r[4]) for r in rows}


def live_target(scenario: Scenario, channel: str = "shop") -> dict[int, tuple]:
    rows = scenario.target("SELECT source_order_id, status, amount, buyer_phone, note FROM orders "
                           "WHERE channel = %s AND deleted_at IS NULL", (channel,))
    return {r[0]: tuple(r[1:]) for r in rows}


def whole_slice(scenario: Scenario, channel: str) -> list[tuple]:
    return scenario.target("SELECT * FROM orders WHERE channel = %s ORDER BY source_order_id", (channel,))


def reconcile_json(scenario: Scenario, *args: str, timeout: float = 120) -> tuple[int, dict]:
    result = scenario.cli("reconcile", "--json", *args, timeout=timeout)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def only(report: dict, name: str) -> dict:
    return next(m for m in report["mappings"] if m["mapping"] == name)


def wait_streaming(scenario: Scenario, sources: int = 2) -> None:
    eventually(lambda: scenario.cli("status", "--json").stdout.count('"streaming"') == sources, 60)


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


def load_and_sync(scenario: Scenario, shop: Source, app: Source, shop_rows: int = 20) -> None:
    """Rows on both sources, copied by the daemon, which is then stopped."""
    shop.execute(*(shop_order(i, STATUSES[i % 5], f"{i}.5元", note=f"n{i}") for i in range(1, shop_rows + 1)))
    app.execute(*(("INSERT INTO app_orders VALUES (%s, 20, %s, NULL, '2024-05-01 08:00:00')", (i, i * 100))
                  for i in range(1, 6)))
    process = scenario.start()
    eventually(lambda: len(live_target(scenario, "shop")) == shop_rows
               and len(live_target(scenario, "app")) == 5, 60)
    assert scenario.stop(process) == 0


def inject_drift(scenario: Scenario) -> None:
    scenario.target("DELETE FROM orders WHERE channel = 'shop' AND source_order_id IN (3, 4)")
    scenario.target("UPDATE orders SET status = 4 WHERE channel = 'shop' AND source_order_id = 5")
    scenario.target("UPDATE orders SET amount = 1.23, note = 'x' "
                    "WHERE channel = 'shop' AND source_order_id = 6")
    scenario.target("UPDATE orders SET deleted_at = now() WHERE channel = 'shop' AND source_order_id = 7")
    scenario.target("INSERT INTO orders (channel, source_order_id, status) VALUES ('shop', 999, 1)")
    # The app slice drifts too, but reconciling shop_orders must not see or touch it.
    scenario.target("UPDATE orders SET status = 4 WHERE channel = 'app' AND source_order_id = 1")
    scenario.target("INSERT INTO orders (channel, source_order_id, status) VALUES ('app', 555, 1)")


class TestDrift:
    def test_drift_is_reported_exactly_repaired_and_other_slices_left_alone(
            self, scenario: Scenario, shop: Source, app: Source) -> None:
        """Deleted, changed, soft-deleted and extra rows are found by key and column, then fixed."""
        load_and_sync(scenario, shop, app)
        assert scenario.cli("reconcile").returncode == 0
        inject_drift(scenario)
        app_before = whole_slice(scenario, "app")

        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--chunk-rows", "7")
        assert code == 1
        shop_report = only(report, "shop_orders")
        assert [m["mapping"] for m in report["mappings"]] == ["shop_orders"]
        assert shop_report["status"] == "drift"
        assert shop_report["rows_compared"] == 20
        assert shop_report["missing"] == {"count": 3, "keys": [["shop", 3], ["shop", 4], ["shop", 7]]}
        assert shop_report["extra"] == {"count": 1, "keys": [["shop", 999]]}
        assert shop_report["differ"] == {"count": 2, "rows": [
            {"key": ["shop", 5], "columns": ["status"]},
            {"key": ["shop", 6], "columns": ["amount", "note"]}]}
        assert shop_report["unmappable"]["count"] == 0
        assert shop_report["mode"] == "aligned"

        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--repair", "--chunk-rows", "7")
        assert code == 0, report
        shop_report = only(report, "shop_orders")
        assert shop_report["status"] == "repaired"
        assert shop_report["repaired"] == 6
        assert sorted(shop_report["repaired_keys_sample"]) == [[3], [4], [5], [6], [7], [999]]
        assert live_target(scenario, "shop") == expected_shop(shop)
        assert whole_slice(scenario, "app") == app_before

        code, report = reconcile_json(scenario, "--mapping", "shop_orders")
        assert code == 0
        shop_report = only(report, "shop_orders")
        assert (shop_report["status"], shop_report["missing"]["count"], shop_report["extra"]["count"],
                shop_report["differ"]["count"]) == ("in_sync", 0, 0, 0)

        # The app slice's own drift is still there, and found when that mapping is reconciled.
        code, report = reconcile_json(scenario, "--mapping", "app_orders")
        assert code == 1
        app_report = only(report, "app_orders")
        assert app_report["extra"]["keys"] == [["app", 555]]
        assert app_report["differ"]["rows"] == [{"key": ["app", 1], "columns": ["status"]}]

        runs = scenario.target("SELECT mapping, status, repair, rows_compared, missing, extra, differ, "
                               "repaired, finished_at IS NOT NULL FROM syncd.reconcile_runs ORDER BY id")
        shop_runs = [r[1:] for r in runs if r[0] == "shop_orders"]
        assert shop_runs == [
            ("in_sync", False, 20, 0, 0, 0, 0, True),
            ("drift", False, 20, 3, 1, 2, 0, True),
            ("repaired", True, 20, 3, 1, 2, 6, True),
            ("in_sync", False, 20, 0, 0, 0, 0, True),
        ]
        config = load_config(scenario.config_path)
        with psycopg.connect(scenario.postgres.dsn(scenario.target_db), autocommit=True) as conn:
            latest = {r.mapping: r for r in last_runs(conn, config.target.state_schema)}
        assert latest["shop_orders"].status == "in_sync"
        assert latest["app_orders"].status == "drift"

    def test_unchanged_ranges_are_skipped_and_changes_still_found(self, scenario: Scenario, shop: Source,
                                                                 app: Source) -> None:
        """Ranges in sync are confirmed by digests inside both servers; any change is still seen."""
        load_and_sync(scenario, shop, app, shop_rows=40)
        args = ("--mapping", "shop_orders", "--chunk-rows", "10")
        code, report = reconcile_json(scenario, *args)
        first = only(report, "shop_orders")  # digests inside both servers: 40-row ranges
        assert (code, first["chunks"], first["chunks_pushed_down"]) == (0, 2, 2)
        code, report = reconcile_json(scenario, *args)
        second = only(report, "shop_orders")
        assert (code, second["chunks"], second["chunks_pushed_down"]) == (0, 2, 2)
        assert second["rows_compared"] == 40

        shop.execute("UPDATE orders SET amount_text = '7元' WHERE id = 15")  # no daemon: target lags
        scenario.target("UPDATE orders SET note = 'x' WHERE channel = 'shop' AND source_order_id = 35")
        code, report = reconcile_json(scenario, *args)
        third = only(report, "shop_orders")
        assert code == 1
        assert third["chunks_pushed_down"] == 1
        assert third["differ"]["rows"] == [{"key": ["shop", 15], "columns": ["amount"]},
                                           {"key": ["shop", 35], "columns": ["note"]}]
        code, report = reconcile_json(scenario, *args, "--full")
        assert only(report, "shop_orders")["chunks_pushed_down"] == 0
        assert only(report, "shop_orders")["differ"]["count"] == 2

    def test_human_report_names_keys_and_columns(self, scenario: Scenario, shop: Source, app: Source) -> None:
        load_and_sync(scenario, shop, app, shop_rows=8)
        inject_drift(scenario)
        result = scenario.cli("reconcile", "--source", "shop")
        assert result.returncode == 1
        out = result.stdout
        assert re.search(r"shop_orders\s+shop\s+drift\s+8\s+3\s+1\s+2\s+0\s+0\s+0", out), out
        where = "in public.orders (channel, source_order_id)"
        assert f"shop_orders: missing {where}: shop,3  shop,4  shop,7" in out
        assert f"shop_orders: extra {where}: shop,999" in out
        assert "shop,5 (status)" in out and "shop,6 (amount, note)" in out
        assert "app_orders" not in out

    def test_unmappable_rows_are_explained_by_dead_letters(self, scenario: Scenario, shop: Source,
                                                           app: Source) -> None:
        """A row the mapping cannot map is not drift when a pending dead letter records it."""
        shop.execute(shop_order(1), shop_order(2, "已退款"))
        process = scenario.start()
        wait_streaming(scenario)
        eventually(lambda: scenario.target("SELECT count(*) FROM syncd.dead_letters")[0][0] == 1, 60)
        eventually(lambda: 1 in live_target(scenario), 30)
        scenario.stop(process)
        code, report = reconcile_json(scenario, "--mapping", "shop_orders")
        shop_report = only(report, "shop_orders")
        assert code == 0, report
        assert shop_report["unmappable"]["count"] == 1
        assert shop_report["unmappable"]["unexplained"] == 0
        assert shop_report["unmappable"]["rows"][0]["row_key"] == "id=2"
        assert "not in the map" in shop_report["unmappable"]["rows"][0]["reason"]
        assert shop_report["explained_by_dead_letters"] == 1

        scenario.target("UPDATE syncd.dead_letters SET status = 'discarded'")
        code, report = reconcile_json(scenario, "--mapping", "shop_orders")
        assert code == 1
        assert only(report, "shop_orders")["unmappable"]["unexplained"] == 1
        assert only(report, "shop_orders")["unmappable"]["unexplained_rows"][0]["row_key"] == "id=2"
        human = scenario.cli("reconcile", "--mapping", "shop_orders")
        assert "shop_orders: cannot map, no dead letter id=2: " in human.stdout, human.stdout

        # a repair records the row as a dead letter again, so that the next pass is in sync
        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--repair")
        assert code == 1 and only(report, "shop_orders")["dead_lettered"]["count"] == 1, report
        assert scenario.target("SELECT count(*) FROM syncd.dead_letters WHERE status = 'pending'") == [(1,)]
        code, report = reconcile_json(scenario, "--mapping", "shop_orders")
        assert code == 0 and only(report, "shop_orders")["explained_by_dead_letters"] == 1, report

        # once the row maps, the repair that writes it retires its dead letters
        shop.execute("UPDATE orders SET status = '已支付' WHERE id = 2")
        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--repair")
        assert code == 0 and only(report, "shop_orders")["repaired"] == 1, report
        assert scenario.target("SELECT count(*) FROM syncd.dead_letters WHERE status = 'pending'") == [(0,)]

    def test_the_stream_takes_over_the_letter_of_a_repair_while_it_was_stopped(
            self, scenario: Scenario, shop: Source, app: Source) -> None:
        """A row dead-lettered by `--repair` while no daemon ran fails again when the daemon
        replays its change: the stream's letter replaces the repair's, one letter per row."""
        load_and_sync(scenario, shop, app, shop_rows=5)
        shop.execute("UPDATE orders SET status = '已退款' WHERE id = 3")
        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--repair")
        assert code == 1 and only(report, "shop_orders")["dead_lettered"]["count"] == 1, report
        letters = ("SELECT row_key, binlog_position LIKE 'repair@%' FROM syncd.dead_letters "
                   "WHERE status = 'pending'")
        assert scenario.target(letters) == [("id=3", True)]
        process = scenario.start()
        wait_streaming(scenario)
        eventually(lambda: scenario.target(letters) == [("id=3", False)], 30)
        assert scenario.stop(process) == 0

    def test_a_repair_pass_retires_the_letters_of_rows_now_in_sync(
            self, scenario: Scenario, shop: Source, app: Source) -> None:
        """Rows the stream dead-lettered, then applied once fixed at the source: a whole `--repair`
        pass finds them in sync and retires their letters; a row still unmappable keeps its."""
        load_and_sync(scenario, shop, app, shop_rows=5)
        process = scenario.start()
        wait_streaming(scenario)
        shop.execute("UPDATE orders SET status = '已退款' WHERE id IN (2, 4)")
        pending = "SELECT row_key FROM syncd.dead_letters WHERE status = 'pending' ORDER BY row_key"
        eventually(lambda: scenario.target(pending) == [("id=2",), ("id=4",)], 30)
        shop.execute("UPDATE orders SET status = '已支付' WHERE id = 2")
        eventually(lambda: live_target(scenario)[2][0] == 1, 30)
        assert scenario.stop(process) == 0
        code, report = reconcile_json(scenario, "--mapping", "shop_orders")
        assert code == 0 and only(report, "shop_orders")["dead_letters_retired"] == 0, report
        assert scenario.target(pending) == [("id=2",), ("id=4",)]  # only a --repair pass retires
        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--repair")
        assert code == 0 and only(report, "shop_orders")["dead_letters_retired"] == 1, report
        assert scenario.target(pending) == [("id=4",)]

    def test_rows_outside_the_filter_are_expected_absent(self, scenario: Scenario, shop: Source,
                                                        app: Source) -> None:
        """With `where:`, a target row for a filtered-out source row is extra and gets removed."""
        mapping = SHOP_MAPPING.replace("    delete: soft", "    where: {status: {ne: 已取消}}\n"
                                              "    delete: soft")
        scenario.write_config(mapping + APP_ORDERS_MAPPING)
        shop.execute(shop_order(1, "已支付"), shop_order(2, "已取消"))
        app.execute("INSERT INTO app_orders VALUES (1, 20, 100, NULL, NULL)")
        process = scenario.start()
        eventually(lambda: 1 in live_target(scenario), 60)
        scenario.stop(process)
        assert 2 not in live_target(scenario)
        scenario.target("INSERT INTO orders (channel, source_order_id, status) VALUES ('shop', 2, 4)")
        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--repair")
        assert code == 0
        assert only(report, "shop_orders")["extra"]["keys"] == [["shop", 2]]
        assert 2 not in live_target(scenario)


class TestLive:
    def test_repair_under_workload_converges_and_never_regresses(self, scenario: Scenario, shop: Source,
                                                                 app: Source) -> None:
        """Reconcile --repair during writes: target = source at the end, no row ever went back."""
        shop.execute(*(shop_order(i, note="0") for i in range(1, 201)))
        process = scenario.start()
        wait_streaming(scenario)
        eventually(lambda: len(live_target(scenario)) == 200, 60)
        stop = threading.Event()
        regressions: list[str] = []
        versions = {i: 0 for i in range(1, 201)}
        lock = threading.Lock()

        def write() -> None:
            rng = random.Random(5)
            while not stop.is_set():
                order_id = rng.randint(1, 200)
                with lock:
                    versions[order_id] += 1
                    version = versions[order_id]
                shop.execute((f"UPDATE orders SET note = %s, status = %s WHERE id = {order_id}",
                              (str(version), rng.choice(STATUSES))))

        def watch() -> None:
            seen: dict[int, int] = {}
            while not stop.is_set():
                for key, row in live_target(scenario).items():
                    version = int(row[3]) if row[3] and row[3].isdigit() else -1
                    if version >= 0 and version < seen.get(key, -1):
                        regressions.append(f"{key}: {seen[key]} -> {version}")
                    seen[key] = max(version, seen.get(key, -1))

        writer = threading.Thread(target=write)
        watcher = threading.Thread(target=watch)
        writer.start()
        watcher.start()
        try:
            time.sleep(1)
            scenario.target("DELETE FROM orders WHERE channel = 'shop' AND source_order_id <= 10")
            scenario.target("UPDATE orders SET amount = 0 WHERE channel = 'shop' AND source_order_id > 190")
            scenario.target("INSERT INTO orders (channel, source_order_id) VALUES ('shop', 5000)")
            result = scenario.cli("reconcile", "--mapping", "shop_orders", "--repair", "--chunk-rows", "50",
                                  timeout=240)
            assert result.returncode in (0, 1), result.stderr
            time.sleep(1)
        finally:
            stop.set()
            writer.join()
            watcher.join()
        eventually(lambda: live_target(scenario) == expected_shop(shop), 60)
        assert regressions == []
        code, report = reconcile_json(scenario, "--mapping", "shop_orders")
        assert code == 0, report
        assert scenario.stop(process) == 0

    def test_reconcile_with_daemon_running_reports_no_false_drift(self, scenario: Scenario, shop: Source,
                                                                  app: Source) -> None:
        """Rows changing while a pass runs are re-checked after the stream applied them."""
        shop.execute(*(shop_order(i) for i in range(1, 301)))
        process = scenario.start()
        wait_streaming(scenario)
        eventually(lambda: len(live_target(scenario)) == 300, 60)
        stop = threading.Event()

        def write() -> None:
            rng = random.Random(9)
            while not stop.is_set():
                shop.execute(f"UPDATE orders SET status = '{rng.choice(STATUSES)}' "
                             f"WHERE id = {rng.randint(1, 300)}")
                time.sleep(0.01)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--chunk-rows", "20")
        finally:
            stop.set()
            writer.join()
        shop_report = only(report, "shop_orders")
        assert shop_report["rows_compared"] == 300
        assert (shop_report["missing"]["count"], shop_report["extra"]["count"]) == (0, 0)
        assert shop_report["differ"]["count"] == 0, shop_report["differ"]
        assert code == 0
        scenario.stop(process)


class TestExitCodesAndApi:
    def test_exit_codes_and_errors(self, scenario: Scenario, shop: Source, app: Source) -> None:
        load_and_sync(scenario, shop, app, shop_rows=3)
        assert scenario.cli("reconcile").returncode == 0
        unknown = scenario.cli("reconcile", "--mapping", "nope")
        assert unknown.returncode == 2
        assert "no mapping named 'nope'" in unknown.stderr
        assert scenario.cli("reconcile", "--source", "nope").returncode == 2
        assert scenario.cli("reconcile", "--chunk-rows", "0").returncode == 2

        config = scenario.config_path.read_text()
        scenario.config_path.write_text(config.replace(f"port: {shop.server.port}", f"port: {free_port()}"))
        code, report = reconcile_json(scenario, "--mapping", "shop_orders")
        assert code == 2
        shop_report = only(report, "shop_orders")
        assert shop_report["status"] == "error"
        assert "shop" in shop_report["error"]
        status = scenario.target("SELECT status, error IS NOT NULL FROM syncd.reconcile_runs "
                                 "ORDER BY id DESC LIMIT 1")
        assert status == [("error", True)]

    def test_a_signal_stops_the_pass_as_an_error(self, scenario: Scenario, shop: Source, app: Source) -> None:
        """SIGTERM (as SIGINT) ends the pass after the range in hand: the run is recorded as an
        error, never left running, and the exit status is 2, not the drift's 1."""
        load_and_sync(scenario, shop, app, shop_rows=40)
        process = subprocess.Popen(
            [*scenario.program, "reconcile", "--config", str(scenario.config_path),
             "--mapping", "shop_orders", "--full", "--chunk-rows", "2", "--pause-ms", "500"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=scenario.env(), cwd=scenario.cwd)
        eventually(lambda: scenario.target("SELECT count(*) FROM syncd.reconcile_runs "
                                           "WHERE status = 'running'") == [(1,)], 60)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 2, (out, err)
        assert "stopped by a signal" in err and "Traceback" not in err
        assert scenario.target("SELECT status, error FROM syncd.reconcile_runs ORDER BY id DESC LIMIT 1") == [
            ("error", "stopped before the end of the table")]

    def test_json_shape(self, scenario: Scenario, shop: Source, app: Source) -> None:
        load_and_sync(scenario, shop, app, shop_rows=2)
        code, report = reconcile_json(scenario)
        assert code == 0
        assert set(report) == {"status", "exit_code", "mappings"}
        assert report["status"] == "in_sync" and report["exit_code"] == 0
        assert [m["mapping"] for m in report["mappings"]] == ["shop_orders", "app_orders"]
        entry = report["mappings"][0]
        assert set(entry) >= {"mapping", "source", "target_table", "key_columns", "mode", "status",
                              "repair", "rows_compared", "chunks", "chunks_differing", "missing",
                              "extra", "differ", "unmappable", "explained_by_dead_letters", "repaired",
                              "repaired_keys_sample", "repair_errors", "error", "seconds",
                              "rows_per_second", "run_id"}
        assert entry["target_table"] == "public.orders"
        assert entry["key_columns"] == ["channel", "source_order_id"]
        assert entry["missing"] == {"count": 0, "keys": []}

    def test_python_api_with_stop_event(self, scenario: Scenario, shop: Source, app: Source,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        load_and_sync(scenario, shop, app, shop_rows=30)
        for name, value in scenario.env().items():
            monkeypatch.setenv(name, value)
        config = load_config(scenario.config_path)
        plans = build_plans(config)
        reports = reconcile(config, plans, mapping="shop_orders", chunk_rows=4)
        assert [(r.mapping, r.status, r.rows_compared, r.chunks) for r in reports] == [
            ("shop_orders", "in_sync", 30, 2)]
        stop = threading.Event()
        stop.set()
        assert reconcile(config, plans, stop=stop) == []


ROWS_1M = 1_000_000


@pytest.mark.slow
class TestScale:
    def test_a_million_rows_reconcile_within_budget(self, scenario: Scenario, shop: Source) -> None:
        """1,000,000 rows through the shop mapping, with 4 drifted rows to find among them."""
        shop.execute(
            "INSERT INTO orders SELECT seq, CONCAT('S', LPAD(seq, 7, '0')), "
            "CONCAT('138', LPAD(seq MOD 100000000, 8, '0')), "
            "ELT(1 + seq MOD 5, '待支付', '已支付', '已发货', '已完成', '已取消'), "
            "CONCAT(seq MOD 10000, '.50元'), IF(seq MOD 5 = 0, NULL, CONCAT('note ', seq)), "
            f"'2024-05-01 12:30:45.123' + INTERVAL seq SECOND FROM seq_1_to_{ROWS_1M}")
        scenario.target(
            "INSERT INTO orders SELECT 'shop', g, 'S' || lpad(g::text, 7, '0'), "
            "'138****' || right(lpad((g % 100000000)::text, 8, '0'), 4), g % 5, (g % 10000) + 0.5, "
            "CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END, "
            "'2024-05-01 12:30:45.123+08'::timestamptz + g * interval '1 second', NULL "
            f"FROM generate_series(1, {ROWS_1M}) g")
        scenario.target("VACUUM ANALYZE orders")
        scenario.target("DELETE FROM orders WHERE channel = 'shop' AND source_order_id IN (10, 500000)")
        scenario.target("UPDATE orders SET amount = 1 WHERE channel = 'shop' AND source_order_id = 777777")
        scenario.target("INSERT INTO orders (channel, source_order_id) VALUES ('shop', 2000000)")

        began = time.monotonic()
        code, report = reconcile_json(scenario, "--mapping", "shop_orders", timeout=600)
        seconds = time.monotonic() - began
        shop_report = only(report, "shop_orders")
        print(f"\nreconcile of {ROWS_1M} rows: {seconds:.1f} s including start-up, "
              f"{shop_report['rows_per_second']} rows/s compared (pass: {shop_report['seconds']} s)")
        assert code == 1
        assert shop_report["rows_compared"] == ROWS_1M
        assert shop_report["missing"]["keys"] == [["shop", 10], ["shop", 500000]]
        assert shop_report["differ"]["rows"] == [{"key": ["shop", 777777], "columns": ["amount"]}]
        assert shop_report["extra"]["keys"] == [["shop", 2000000]]
        assert seconds < 150

        code, report = reconcile_json(scenario, "--mapping", "shop_orders", "--repair", timeout=600)
        assert code == 0
        assert only(report, "shop_orders")["repaired"] == 4


JSON_VALUES = ['"abc"', "null", '""', '"null"', "0", "-0", "1.0", "1e2", "12345678901234567890.123456789",
               "1E400", "true", "false", "[]", "{}", '{"b": [1, "x", null], "a": {"c": false}}',
               '{"k": 1, "k": 2}', '"\\u4e2d\\u6587 😀"', '[1.50, "1.50"]']


class TestJsonValues:
    def test_every_json_scalar_and_nesting_reconciles_in_sync(
            self, tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
            source_db: Callable[[MariaDBServer], str]) -> None:
        """The target holds exactly the source's JSON (a string, null, numbers in any spelling):
        no row of it is drift, with or without the remembered chunks."""
        shop = Source("shop", mariadb, source_db(mariadb))
        shop.execute("CREATE TABLE docs (id INT PRIMARY KEY, j JSON, k JSON)")
        rows = [(i, value, value) for i, value in enumerate(JSON_VALUES, 1)]
        shop.execute(*(("INSERT INTO docs VALUES (%s, %s, %s)", row) for row in rows))
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop},
                                   target_sql="CREATE TABLE docs (id integer PRIMARY KEY, j jsonb, k json)")
        try:
            scenario.write_config("""
                mappings:
                  - {name: docs, source: shop, table: docs, target: docs, key: [id],
                     columns: {id: id, j: j, k: k}}
                """)
            process = scenario.start()
            eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
            shop.execute(*(("INSERT INTO docs VALUES (%s, %s, %s)", (i + 100, j, k)) for i, j, k in rows))
            eventually(lambda: len(scenario.target("SELECT id FROM docs")) == 2 * len(rows), 30)
            scenario.stop(process)
            assert scenario.target("SELECT j::text, k::text FROM docs WHERE id IN (1, 2) ORDER BY id") == [
                ('"abc"', '"abc"'), ("null", "null")]
            for args in (("--full",), (), ()):  # the second pass remembers chunks, the third uses them
                code, report = reconcile_json(scenario, *args)
                found = only(report, "docs")
                assert (code, found["differ"]["count"], found["error"]) == (0, 0, None), found["differ"]
            assert only(report, "docs")["chunks_unchanged"] == 1
        finally:
            scenario.close()

    def test_target_types_without_a_hash_reconcile_and_their_drift_is_found(
            self, tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
            source_db: Callable[[MariaDBServer], str]) -> None:
        """varbit, bit, xml and point have no extended hash: the range checksum reads them as
        text instead of refusing the mapping."""
        shop = Source("shop", mariadb, source_db(mariadb))
        shop.execute("CREATE TABLE odd (id INT PRIMARY KEY, vb VARCHAR(8), b3 CHAR(3), x TEXT, "
                     "p VARCHAR(20))")
        shop.execute(*(("INSERT INTO odd VALUES (%s, %s, '101', %s, %s)",
                        (i, bin(i)[2:], f"<r n='{i}'/>", f"({i},{i + 1})")) for i in range(1, 41)))
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=(
            "CREATE TABLE odd (id integer PRIMARY KEY, vb varbit, b3 bit(3), x xml, p point)"))
        try:
            scenario.write_config("""
                mappings:
                  - {name: odd, source: shop, table: odd, target: odd, key: [id],
                     columns: {id: id, vb: vb, b3: b3, x: x, p: p}}
                """)
            process = scenario.start()
            eventually(lambda: len(scenario.target("SELECT id FROM odd")) == 40, 60)
            scenario.stop(process)
            for args in (("--full",), (), ()):  # the second pass remembers chunks, the third uses them
                code, report = reconcile_json(scenario, *args)
                found = only(report, "odd")
                assert (code, found["differ"]["count"], found["error"]) == (0, 0, None)
            scenario.target("UPDATE odd SET vb = B'0', x = '<r/>' WHERE id = 7")
            code, report = reconcile_json(scenario)
            assert code == 1 and only(report, "odd")["differ"]["count"] == 1, report
        finally:
            scenario.close()
