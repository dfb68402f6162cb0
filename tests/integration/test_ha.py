"""High availability on real servers: two `syncd run` with the same config, one active per source,
take-over after kill -9 or a lost lock connection, resuming from the checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
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
from tests.integration.test_service import (
    Writer,
    checkpoint_of,
    events_named,
    shop_ids_in_source,
    shop_ids_in_target,
    source_status,
    wait_streaming,
)

TAKEOVER_LIMIT_S = 15.0


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


def at(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def sources_of(scenario: Scenario, event: str, log_name: str) -> set[str]:
    return {e["source"] for e in events_named(scenario, event, log_name)}


def assert_dead_letters_once(scenario: Scenario, bad: set[int]) -> None:
    rows = scenario.target("SELECT row_key, count(*) FROM syncd.dead_letters WHERE source = 'shop' "
                           "GROUP BY row_key")
    assert all(count == 1 for _, count in rows), rows
    assert {key for key, _ in rows} == {f"id={i}" for i in bad}


def test_one_active_per_source_and_takeover_after_kill_9(scenario: Scenario, shop: Source) -> None:
    with Writer(shop, bad_every=7) as writer:
        a = scenario.start("a.log")
        wait_streaming(scenario, "shop", "app")
        b = scenario.start("b.log")
        eventually(lambda: sources_of(scenario, "source_standby", "b.log") == {"shop", "app"}, 60)
        time.sleep(3)
        assert not events_named(scenario, "streaming_started", "b.log")
        assert not events_named(scenario, "source_active", "b.log")
        owner = source_status(scenario, "shop")["owner"]
        assert owner["pid"] == a.pid and owner["alive"]
        standby = events_named(scenario, "source_standby", "b.log", source="shop")[0]
        assert str(a.pid) in standby["holder"]

        scenario.kill(a)
        killed = time.time()
        last_checkpoint = checkpoint_of(scenario, "shop")  # A's last commit; B resumes from it
        eventually(lambda: sources_of(scenario, "streaming_started", "b.log") == {"shop", "app"}, 30)
        time.sleep(2)
    streaming = {e["source"]: e for e in events_named(scenario, "streaming_started", "b.log")}
    takeover = max(at(e) for e in streaming.values()) - killed
    assert takeover < TAKEOVER_LIMIT_S, f"take-over took {takeover:.1f}s"
    assert last_checkpoint is not None
    assert streaming["shop"]["position"] == f"{last_checkpoint[0]}:{last_checkpoint[1]}"

    eventually(lambda: shop_ids_in_target(scenario) == shop_ids_in_source(shop) - writer.bad, 60)
    assert_dead_letters_once(scenario, writer.bad)
    owner = source_status(scenario, "shop")["owner"]
    assert owner["pid"] == b.pid and owner["alive"]
    assert scenario.stop(b) == 0


def test_lost_lock_connection_hands_the_source_over(scenario: Scenario, shop: Source) -> None:
    """Terminating the active process's lock session (as a network cut would) makes it stop
    writing that source at once; the standby takes it over; the other source stays put."""
    a = scenario.start("a.log")
    wait_streaming(scenario, "shop", "app")
    b = scenario.start("b.log")
    eventually(lambda: sources_of(scenario, "source_standby", "b.log") == {"shop", "app"}, 60)
    with Writer(shop, bad_every=5) as writer:
        time.sleep(1)
        cut = time.time()
        # the session holding the lock: A's (B's standby session only polls)
        scenario.target("SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                        "AND l.granted AND a.application_name = 'syncd:lock:shop'")
        lost = eventually(lambda: events_named(scenario, "source_lock_lost", "a.log", source="shop"), 15)[0]
        assert at(lost) - cut < 5
        assert lost["action"] == "stopped writing; reconnecting"  # its connection went, not to another
        eventually(lambda: events_named(scenario, "streaming_started", "b.log", source="shop"), 30)
        active = events_named(scenario, "source_active", "b.log", source="shop")[0]
        assert at(active) - cut < TAKEOVER_LIMIT_S
        # A goes back to waiting for shop and keeps app.
        eventually(lambda: events_named(scenario, "source_standby", "a.log", source="shop"), 15)
        time.sleep(2)
    assert not events_named(scenario, "source_lock_lost", "a.log", source="app")
    assert not events_named(scenario, "source_active", "b.log", source="app")
    eventually(lambda: shop_ids_in_target(scenario) == shop_ids_in_source(shop) - writer.bad, 60)
    assert_dead_letters_once(scenario, writer.bad)
    assert source_status(scenario, "shop")["owner"]["pid"] == b.pid
    assert source_status(scenario, "app")["owner"]["pid"] == a.pid
    assert scenario.stop(a) == 0
    # B then takes app over too, from A's clean stop.
    eventually(lambda: events_named(scenario, "streaming_started", "b.log", source="app"), 30)
    assert scenario.stop(b) == 0
