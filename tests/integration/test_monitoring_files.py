"""A real `syncd run` exposes every metric the shipped alert rules and Grafana dashboard use
(monitoring/), in a form `promtool check metrics` accepts, and reports a mapping paused by a
source schema change until it is fixed.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.sandbox import PostgresServer, free_port
from tests.helpers import eventually
from tests.integration.scenario import SHOP_ORDERS_MAPPING, Scenario, Source
from tests.monitoring import PROMETHEUS_OWN, exposed_names, promtool, sample_value, used_names

PHONE_COLUMN = "      buyer_phone: {from: phone, transform: mask_phone}      # 13812345678 -> 138****5678\n"


@dataclass
class Running:
    scenario: Scenario
    port: int

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def value(self, name: str, **labels: str) -> float | None:
        return sample_value(self.scrape(), name, **labels)

    def streaming(self) -> bool:
        """The shop source is read; False while syncd does not answer yet."""
        try:
            return self.value("syncd_source_up", source="shop") == 1
        except OSError:
            return False


@pytest.fixture
def running(tmp_path: Path, postgres: PostgresServer, target_db: str, shop: Source) -> Iterator[Running]:
    """`syncd run` on the shop source, streaming, with /metrics on a free port."""
    port = free_port()
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop})
    scenario.write_config(SHOP_ORDERS_MAPPING, f"metrics: {{listen: '127.0.0.1:{port}'}}\n")
    process = scenario.start()
    run = Running(scenario, port)
    try:
        eventually(run.streaming, 60, 0.5)
        yield run
        assert scenario.stop(process) == 0
    finally:
        scenario.close()


def insert_order(order_id: int) -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, status, amount_text) VALUES (%s, %s, '已支付', '1元')",
            (order_id, f"S{order_id}"))


def test_every_metric_the_rules_and_dashboard_use_is_exposed(running: Running) -> None:
    used = used_names()
    assert len(used) >= 10 and PROMETHEUS_OWN.isdisjoint(used)
    page = running.scrape()
    exposed = exposed_names(page)
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert not missing, f"used by monitoring/ but not on /metrics: {missing}"
    lint = promtool("check", "metrics", stdin=page)  # what Prometheus expects of an exposition
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_paused_mapping_is_reported_until_fixed_and_reloaded(running: Running, shop: Source) -> None:
    shop.execute(insert_order(1))
    eventually(lambda: running.value("syncd_changes_applied_total", source="shop", table="orders") == 1, 30)
    paused = {"source": "shop", "mapping": "shop_orders"}
    assert running.value("syncd_mapping_paused", **paused) is None   # never paused: no series

    before = time.time()
    shop.execute("ALTER TABLE orders DROP COLUMN phone")
    eventually(lambda: running.value("syncd_mapping_paused", **paused) == 1, 30, 0.5)
    since = running.value("syncd_mapping_paused_since_seconds", **paused)
    assert since is not None and before - 5 <= since <= time.time()

    scenario = running.scenario
    scenario.write_config(SHOP_ORDERS_MAPPING.replace(PHONE_COLUMN, ""),
                          f"metrics: {{listen: '127.0.0.1:{running.port}'}}\n")
    scenario.processes[-1].send_signal(signal.SIGHUP)
    eventually(lambda: running.value("syncd_mapping_paused", **paused) == 0, 60, 0.5)
    assert running.value("syncd_mapping_paused_since_seconds", **paused) is None
