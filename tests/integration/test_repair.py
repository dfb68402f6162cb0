"""Repairs by source key: applied directly when no daemon runs, through the stream when one does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from syncd.config import load_config
from syncd.repair import repair
from syncd.service.startup import build_plans
from tests.helpers import eventually
from tests.integration.scenario import SHOP_ORDERS_MAPPING, SHOP_ORDERS_SQL, Scenario, Source


@pytest.fixture
def scenario(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
             source_db: Callable[[MariaDBServer], str],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SHOP_ORDERS_SQL)
    s = Scenario.create(tmp_path, postgres, target_db, {"shop": shop})
    s.write_config(SHOP_ORDERS_MAPPING)
    for name, value in s.env().items():
        monkeypatch.setenv(name, value)
    yield s
    s.close()


def insert(order_id: int, status: str = "已支付") -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, phone, status, amount_text, created_at) "
            "VALUES (%s, %s, '13812345678', %s, '10元', '2024-01-01 00:00:00')",
            (order_id, f"S{order_id}", status))


def shop_rows(scenario: Scenario) -> dict[int, tuple]:
    rows = scenario.target("SELECT source_order_id, status, amount, deleted_at IS NOT NULL FROM orders "
                           "WHERE channel = 'shop'")
    return {r[0]: r[1:] for r in rows}


def break_target(scenario: Scenario) -> None:
    scenario.target("DELETE FROM orders WHERE source_order_id = 1")
    scenario.target("UPDATE orders SET status = 4, amount = 999 WHERE source_order_id = 2")
    scenario.target("INSERT INTO orders (channel, source_order_id, status) VALUES ('shop', 77, 0)")


EXPECTED = {1: (1, Decimal("10.00"), False), 2: (1, Decimal("10.00"), False), 3: (1, Decimal("10.00"), False)}


class TestRepair:
    def test_direct_when_no_daemon_runs(self, scenario: Scenario) -> None:
        """Missing, differing and extra rows are made equal to the current source rows."""
        scenario.sources["shop"].execute(*(insert(i) for i in (1, 2, 3)))
        process = scenario.start()
        eventually(lambda: len(shop_rows(scenario)) == 3, 60)
        scenario.stop(process)
        break_target(scenario)
        config = load_config(scenario.config_path)
        result = repair(config, build_plans(config), "shop_orders", [(1,), (2,), (77,)],
                        requested_by="test")
        assert result.via == "direct"
        assert result.applied == 3
        assert [o.outcome.value for o in result.outcomes] == ["applied", "applied", "source_gone"]
        assert shop_rows(scenario) == {**EXPECTED, 77: (0, None, True)}

    def test_through_the_running_stream(self, scenario: Scenario) -> None:
        """With a daemon holding the source, the daemon applies the repair in stream order."""
        scenario.sources["shop"].execute(*(insert(i) for i in (1, 2, 3)))
        process = scenario.start()
        eventually(lambda: len(shop_rows(scenario)) == 3, 60)
        break_target(scenario)
        config = load_config(scenario.config_path)
        result = repair(config, build_plans(config), "shop_orders", [(1,), (2,), (77,)],
                        requested_by="test", timeout=60)
        assert result.via == "stream"
        assert (result.applied, result.skipped) == (3, 0)
        assert shop_rows(scenario) == {**EXPECTED, 77: (0, None, True)}
        assert "repair_applied" in scenario.log_text()
        scenario.stop(process)

    def test_unmappable_current_row_is_dead_lettered_again(self, scenario: Scenario) -> None:
        """A key whose current source row still cannot be mapped reports the reason."""
        scenario.sources["shop"].execute(insert(5, "已退款"))
        config = load_config(scenario.config_path)
        process = scenario.start()
        eventually(lambda: '"streaming"' in scenario.cli("status", "--json").stdout, 60)
        eventually(lambda: scenario.target("SELECT count(*) FROM syncd.dead_letters")[0][0] == 1, 30)
        result = repair(config, build_plans(config), "shop_orders", [(5,)], requested_by="test",
                        timeout=60)
        assert result.applied == 0
        (refused,) = result.dead_lettered
        assert refused.row_key == "id=5" and "'已退款' is not in the map" in refused.reason
        scenario.stop(process)

    def test_periodic_reconcile_in_run_repairs_drift(self, scenario: Scenario) -> None:
        """With reconcile.interval and repair on, `syncd run` finds and repairs drift by itself."""
        scenario.write_config(SHOP_ORDERS_MAPPING, extra="reconcile: {interval: 2s, repair: true}\n")
        scenario.sources["shop"].execute(*(insert(i) for i in (1, 2, 3)))
        process = scenario.start()
        eventually(lambda: len(shop_rows(scenario)) == 3, 60)
        break_target(scenario)
        eventually(lambda: shop_rows(scenario) == {**EXPECTED, 77: (0, None, True)}, 60)
        eventually(lambda: '"status": "repaired"' in scenario.log_text(), 30)
        assert scenario.stop(process) == 0
