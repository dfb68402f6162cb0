"""Continuity on every resume, on real servers: syncd never resumes from a binlog that is not the
one its checkpoint came from (syncd/source/continuity.py, syncd/source/history.py).

The dangerous case is crafted on purpose: after `RESET MASTER`, or on a second server, the same
statements are written again so that the checkpoint's file name *and* offset exist again and
the offset is an event boundary of the new file (each test asserts it with SHOW BINLOG EVENTS).
Without the continuity check syncd would resume there and silently skip what came before.

Every test runs on MariaDB servers of its own: it resets binlogs, restarts and stops servers.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer
from tests.helpers import eventually
from tests.integration.scenario import SHOP_ORDERS_MAPPING, SHOP_ORDERS_SQL, Scenario, Source
from tests.integration.test_service import (
    checkpoint_of,
    events_named,
    insert_order,
    master_position,
    purge_all_but_current,
    shop_ids_in_target,
    source_status,
    status_json,
    wait_streaming,
)

DATABASE = "shopdb"
"""One database name on every server: the statements written again must be the same bytes."""
REMEDY = "syncd snapshot --source shop"

_numbers = itertools.count(1)


@pytest.fixture
def make_server(sandbox_root: Path) -> Iterator[Callable[..., MariaDBServer]]:
    """``make(server_id, **settings)``: a fresh MariaDB server of this test, started."""
    made: list[MariaDBServer] = []

    def make(server_id: int, **settings: str) -> MariaDBServer:
        server = MariaDBServer(sandbox_root / f"continuity-{next(_numbers)}", server_id=server_id,
                               settings=settings)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.cleanup()


@pytest.fixture
def make_scenario(tmp_path: Path, postgres: PostgresServer,
                  target_db: str) -> Iterator[Callable[..., Scenario]]:
    made: list[Scenario] = []

    def make(shop: Source, extra: str = "") -> Scenario:
        scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop})
        scenario.write_config(SHOP_ORDERS_MAPPING, extra)
        made.append(scenario)
        return scenario

    yield make
    for scenario in made:
        scenario.close()


def run_sql(server: MariaDBServer, *statements: str) -> list[tuple]:
    """Run statements as root on one connection; the rows of the last one."""
    with server.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        return list(cur.fetchall())


def fresh_shop(server: MariaDBServer) -> Source:
    """The shop database on `server`, then a clean binlog: RESET MASTER starts mysql-bin.000001
    afresh and GTIDs at 0-<server_id>-1, so the same statements write the same bytes again."""
    run_sql(server, f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
    source = Source("shop", server, DATABASE)
    source.execute(SHOP_ORDERS_SQL)
    run_sql(server, "RESET MASTER")
    return source


FIRST_ORDERS = [1, 2, 3]


def write_orders(shop: Source, ids: list[int]) -> None:
    for order_id in ids:
        shop.execute(insert_order(order_id, "已支付"))


def event_ends(server: MariaDBServer, file: str) -> set[int]:
    """The end offsets of every event of a binlog file (its event boundaries, past the first)."""
    return {int(row[4]) for row in run_sql(server, f"SHOW BINLOG EVENTS IN '{file}'")}


def streamed_then_stopped(scenario: Scenario, shop: Source) -> tuple[str, int]:
    """syncd copies the shop, streams FIRST_ORDERS, stops; returns its checkpoint."""
    process = scenario.start()
    wait_streaming(scenario, "shop")
    write_orders(shop, FIRST_ORDERS)
    eventually(lambda: shop_ids_in_target(scenario) == set(FIRST_ORDERS), 30)
    eventually(lambda: checkpoint_of(scenario, "shop") == master_position(shop.server), 30)
    assert scenario.stop(process) == 0
    checkpoint = checkpoint_of(scenario, "shop")
    assert checkpoint is not None
    return checkpoint


def written_again_to(shop: Source, checkpoint: tuple[str, int]) -> None:
    """The same transactions again in a new binlog: the checkpoint's file name and offset exist
    again, at an event boundary; then one more order (99) after it, in the new history only."""
    write_orders(shop, FIRST_ORDERS)
    assert master_position(shop.server) == checkpoint, "the new binlog did not reach the same offset"
    assert checkpoint[1] in event_ends(shop.server, checkpoint[0])
    shop.execute(insert_order(99, "已支付"))


def failed_event(scenario: Scenario) -> dict:
    return eventually(lambda: events_named(scenario, "source_failed", source="shop"), 60)[0]


def snapshot_resumes(scenario: Scenario, shop: Source, expected: set[int]) -> None:
    """`syncd snapshot --source shop` while the source is failed: it resumes by itself."""
    done = scenario.cli("snapshot", "--source", "shop")
    assert done.returncode == 0, done.stdout + done.stderr
    eventually(lambda: events_named(scenario, "source_resuming", source="shop"), 60)
    eventually(lambda: shop_ids_in_target(scenario) == expected, 30)
    shop.execute(insert_order(100, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == expected | {100}, 30)


# -- (1) RESET MASTER, then the same bytes again ---------------------------------------------------


def test_reset_master_with_the_offset_on_an_event_boundary_fails_with_the_remedy(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    shop = fresh_shop(make_server(1))
    scenario = make_scenario(shop)
    checkpoint = streamed_then_stopped(scenario, shop)
    time.sleep(1.1)  # the new binlog file is created in another second
    # The rows go without a trace in the binlog (as with a restore), then the binlog is reset.
    run_sql(shop.server, "SET SESSION sql_log_bin = 0", f"DELETE FROM {DATABASE}.orders", "RESET MASTER")
    written_again_to(shop, checkpoint)

    process = scenario.start()
    failed = failed_event(scenario)
    assert failed["error_type"] == "ContinuityLost"
    error = failed["error"]
    assert f"binlog continuity lost at checkpoint {checkpoint[0]}:{checkpoint[1]}" in error
    assert f"binlog file {checkpoint[0]} on the server was created" in error
    assert "RESET MASTER" in error
    # GTIDs start over after RESET MASTER: the same number is there, but not the same transaction.
    assert "it holds a transaction with GTID 0-1-3, but not the one applied" in error
    assert REMEDY in error
    time.sleep(2)
    assert shop_ids_in_target(scenario) == set(FIRST_ORDERS)  # nothing from the new history
    status = source_status(scenario, "shop")
    assert status["state"] == "failed" and REMEDY in status["error"]
    assert status["history"]["continuity_lost"] is True
    assert status["history"]["server"] == "MariaDB server_id 1, gtid_domain_id 0"
    text = scenario.cli("status").stdout
    assert "shop: error: source shop: binlog continuity lost" in text
    assert f"shop: binlog history: {checkpoint[0]} (created " in text

    snapshot_resumes(scenario, shop, set(FIRST_ORDERS) | {99})
    history = source_status(scenario, "shop")["history"]
    assert history["continuity"].startswith("the same binlog file") and not history["continuity_lost"]
    assert scenario.stop(process) == 0


# -- (2) a config pointed at a second server --------------------------------------------------------


def test_a_second_server_with_the_same_file_and_offset_is_refused(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    """Same server_id, same statements, same GTIDs, same file name and offset: another history."""
    first = fresh_shop(make_server(1))
    scenario = make_scenario(first)
    checkpoint = streamed_then_stopped(scenario, first)
    second_server = make_server(1)
    second = fresh_shop(second_server)
    written_again_to(second, checkpoint)
    moved = Source("shop", second_server, DATABASE, first.user, first.password, first.server_id)
    second_server.create_user(moved.user, moved.password)
    scenario.sources["shop"] = moved
    scenario.write_config(SHOP_ORDERS_MAPPING)

    process = scenario.start()
    failed = failed_event(scenario)
    assert failed["error_type"] == "ContinuityLost"
    assert f"binlog file {checkpoint[0]} on the server was created" in failed["error"]
    assert REMEDY in failed["error"]
    time.sleep(2)
    assert shop_ids_in_target(scenario) == set(FIRST_ORDERS)
    snapshot_resumes(scenario, moved, set(FIRST_ORDERS) | {99})
    assert scenario.stop(process) == 0


# -- (3) a purge: PositionLost, as ever ---------------------------------------------------------


def test_a_purged_binlog_is_refused_as_position_lost(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    shop = fresh_shop(make_server(1))
    scenario = make_scenario(shop)
    checkpoint = streamed_then_stopped(scenario, shop)
    shop.execute(insert_order(4, "已支付"))  # written while syncd is down, then purged
    purge_all_but_current(shop.server)

    process = scenario.start()
    failed = failed_event(scenario)
    assert failed["error_type"] == "PositionLost"
    assert f"binlog file {checkpoint[0]} is no longer on the server" in failed["error"]
    assert REMEDY in failed["error"]
    assert not events_named(scenario, "continuity_lost")
    assert scenario.stop(process) == 0


# -- (4) a GTID domain added later --------------------------------------------------------------


def test_a_gtid_domain_added_later_resumes_and_is_tracked(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    shop = fresh_shop(make_server(1))
    scenario = make_scenario(shop)
    streamed_then_stopped(scenario, shop)
    with shop.connect() as conn, conn.cursor() as cur:  # as root: gtid_domain_id needs SUPER
        cur.execute("SET SESSION gtid_domain_id = 2")
        cur.execute(*insert_order(4, "已支付"))
    shop.execute(insert_order(5, "已支付"))

    process = scenario.start()
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2, 3, 4, 5}, 60)
    eventually(lambda: source_status(scenario, "shop")["gtid"] == "0-1-4,2-1-1", 30)
    assert scenario.stop(process) == 0
    process = scenario.start()  # a resume with two domains: both are checked
    wait_streaming(scenario, "shop")
    with shop.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION gtid_domain_id = 2")
        cur.execute(*insert_order(6, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2, 3, 4, 5, 6}, 30)
    eventually(lambda: source_status(scenario, "shop")["gtid"] == "0-1-4,2-1-2", 30)
    assert not events_named(scenario, "source_failed")
    proven = events_named(scenario, "continuity_proven", source="shop")
    assert len(proven) == 2 and "the same binlog file mysql-bin.000001" in proven[-1]["detail"]
    assert scenario.stop(process) == 0


# -- (5) a reconnect after a normal restart of the source --------------------------------------


def test_a_reconnect_after_the_source_restarts_resumes_silently(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    shop = fresh_shop(make_server(1))
    scenario = make_scenario(shop)
    process = scenario.start()
    wait_streaming(scenario, "shop")
    write_orders(shop, [1, 2])
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2}, 30)
    shop.server.restart()
    shop.execute(insert_order(3, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2, 3}, 60)
    assert events_named(scenario, "source_retry", source="shop")  # it did reconnect
    assert events_named(scenario, "continuity_proven", source="shop")
    assert not events_named(scenario, "source_failed")
    assert not events_named(scenario, "continuity_recorded")
    history = source_status(scenario, "shop")["history"]
    assert history["continuity"].startswith("the same binlog file mysql-bin.000001")
    assert history["last_applied_gtid"] == "0-1-3" and not history["continuity_lost"]
    assert scenario.stop(process) == 0


# -- (6) failover to a replica: the same history in other files ---------------------------------


def replica_of(primary: MariaDBServer, replica: MariaDBServer) -> None:
    """`replica` replicates `primary` by GTID (its own binlog with log_slave_updates), from two
    binlog files further on, so its file names and offsets differ from the primary's."""
    primary.create_user("repl", "repl-secret")
    run_sql(replica, "FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
    run_sql(replica, f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
            "MASTER_USER='repl', MASTER_PASSWORD='repl-secret', MASTER_USE_GTID=slave_pos",
            "START SLAVE")


def caught_up(primary: MariaDBServer, replica: MariaDBServer) -> bool:
    wanted = run_sql(primary, "SELECT @@gtid_binlog_pos")[0][0]
    return run_sql(replica, "SELECT @@gtid_slave_pos")[0][0] == wanted


def end_of_transaction(server: MariaDBServer, gtid: str) -> tuple[str, int]:
    """Where the transaction `gtid` ends in `server`'s binlog (its commit event's end)."""
    for (name, _size) in run_sql(server, "SHOW BINARY LOGS"):
        inside = False
        for row in run_sql(server, f"SHOW BINLOG EVENTS IN '{name}'"):
            if row[2] == "Gtid":
                inside = row[5].endswith(f"GTID {gtid}")
            elif inside and row[2] == "Xid":
                return str(name), int(row[4])
    raise AssertionError(f"{gtid} is not in the binlog")


def test_failover_to_a_replica_resumes_after_the_last_applied_transaction(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    primary = make_server(1)
    replica = make_server(2, log_slave_updates="ON")
    replica_of(primary, replica)
    run_sql(primary, f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")  # GTID 0-1-1
    shop = Source("shop", primary, DATABASE)
    shop.execute(SHOP_ORDERS_SQL)  # 0-1-2
    scenario = make_scenario(shop)
    streamed_then_stopped(scenario, shop)  # orders 1-3: 0-1-3 .. 0-1-5
    write_orders(shop, [4, 5, 6])  # not applied yet
    eventually(lambda: caught_up(primary, replica), 30)
    primary.stop()  # the primary is gone
    run_sql(replica, "STOP SLAVE", "RESET SLAVE ALL")
    moved = Source("shop", replica, DATABASE, shop.user, shop.password, shop.server_id)
    replica.create_user(moved.user, moved.password)
    scenario.sources["shop"] = moved
    scenario.write_config(SHOP_ORDERS_MAPPING)

    process = scenario.start()
    relocated = eventually(lambda: events_named(scenario, "continuity_relocated", source="shop"), 60)[0]
    after = end_of_transaction(replica, "0-1-5")
    assert relocated["position"] == f"{after[0]}:{after[1]}"  # right after what was applied
    assert after[0] == "mysql-bin.000003"
    assert "the last applied transaction (GTID 0-1-5) was found on MariaDB server_id 2" in relocated["detail"]
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2, 3, 4, 5, 6}, 60)
    moved.execute(insert_order(7, "已支付"))  # the replica is the primary now
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2, 3, 4, 5, 6, 7}, 30)
    assert not events_named(scenario, "source_failed")
    status = status_json(scenario)["sources"][0]
    assert status["history"]["server"] == "MariaDB server_id 2, gtid_domain_id 0"
    assert status["history"]["binlog_file_server_id"] == 2
    assert scenario.stop(process) == 0


# -- checkpoints written before the continuity records existed -----------------------------------


NEW_COLUMNS = ("binlog_file_created", "binlog_file_server_id", "source_server", "applied_gtid",
               "applied_digest", "continuity", "continuity_at")


def test_a_checkpoint_without_records_is_recorded_at_the_first_resume(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    shop = fresh_shop(make_server(1))
    scenario = make_scenario(shop)
    streamed_then_stopped(scenario, shop)
    drops = ", ".join(f"DROP COLUMN {column}" for column in NEW_COLUMNS)
    scenario.target(f"ALTER TABLE syncd.checkpoints {drops}")  # the state schema of an older syncd,
    scenario.target("COMMENT ON SCHEMA syncd IS NULL")  # which did not mark it

    process = scenario.start()
    recorded = eventually(lambda: events_named(scenario, "continuity_recorded", source="shop"), 60)[0]
    assert "the continuity check starts here" in recorded["detail"]
    shop.execute(insert_order(4, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2, 3, 4}, 30)
    row = scenario.target("SELECT binlog_file_created IS NOT NULL, binlog_file_server_id, source_server, "
                          "applied_gtid FROM syncd.checkpoints WHERE source = 'shop'")[0]
    assert row == (True, 1, "MariaDB server_id 1, gtid_domain_id 0", "0-1-4")
    assert scenario.stop(process) == 0
    process = scenario.start()
    eventually(lambda: events_named(scenario, "continuity_proven", source="shop"), 60)
    assert scenario.stop(process) == 0


# -- a reset while syncd streams ---------------------------------------------------------------


def test_a_reset_while_streaming_is_found_by_the_periodic_check(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    """After RESET MASTER the server's stream waits, silently, until the new file grows past the
    old offset (heartbeats and all). The periodic binlog check sees the file was replaced."""
    shop = fresh_shop(make_server(1))
    scenario = make_scenario(shop, "alerts: {check_interval: 2s}\n")
    process = scenario.start()
    wait_streaming(scenario, "shop")
    write_orders(shop, FIRST_ORDERS)
    eventually(lambda: shop_ids_in_target(scenario) == set(FIRST_ORDERS), 30)
    time.sleep(1.1)
    run_sql(shop.server, "RESET MASTER")
    shop.execute(insert_order(99, "已支付"))
    failed = failed_event(scenario)
    assert failed["error_type"] == "ContinuityLost"
    replaced = events_named(scenario, "binlog_file_replaced", source="shop")
    assert replaced and replaced[0]["was"] != replaced[0]["now"]
    assert "binlog file mysql-bin.000001 on the server was created" in failed["error"]
    assert "its binlog does not hold the last applied transaction (GTID 0-1-3)" in failed["error"]
    assert REMEDY in failed["error"]
    assert 99 not in shop_ids_in_target(scenario)
    assert scenario.stop(process) == 0


def test_a_reset_that_ends_the_stream_is_named_for_what_it_is(
        make_server: Callable[..., MariaDBServer], make_scenario: Callable[..., Scenario]) -> None:
    """With more than one binlog file the server ends the stream at once ("could not find next
    log", which alone reads like a purge): checked again, the error names the reset."""
    shop = fresh_shop(make_server(1))
    run_sql(shop.server, "FLUSH BINARY LOGS")
    scenario = make_scenario(shop)
    process = scenario.start()
    wait_streaming(scenario, "shop")
    write_orders(shop, FIRST_ORDERS)
    eventually(lambda: shop_ids_in_target(scenario) == set(FIRST_ORDERS), 30)
    assert checkpoint_of(scenario, "shop")[0] == "mysql-bin.000002"
    run_sql(shop.server, "RESET MASTER")
    shop.execute(insert_order(99, "已支付"))
    failed = failed_event(scenario)
    assert failed["error_type"] == "ContinuityLost"
    assert "has no binlog file mysql-bin.000002 (its binlogs are mysql-bin.000001)" in failed["error"]
    assert REMEDY in failed["error"]
    assert not events_named(scenario, "binlog_purged")
    assert 99 not in shop_ids_in_target(scenario)
    assert scenario.stop(process) == 0
