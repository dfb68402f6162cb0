"""What a sysadmin sees on a bad day, on real servers and a real `syncd run`: missing grants named
with the GRANT that fixes them (`validate --live`, and a source that fails at start instead of
retrying), a mapping paused by a source DDL shown with its position, reason and binlog headroom
in `syncd status`, /healthz and STATUS= until fixed, a mapping dropped by a reload that catches up
once brought back, and a metrics server that closes idle connections.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.sandbox import MariaDBServer, PostgresServer, free_port
from tests.helpers import eventually
from tests.integration.scenario import (
    APP_ORDERS_MAPPING,
    APP_ORDERS_SQL,
    SHOP_ORDERS_MAPPING,
    SHOP_ORDERS_SQL,
    TARGET_ORDERS_SQL,
    Scenario,
    Source,
)
from tests.integration.test_service import (
    NotifySocket,
    events_named,
    http_get,
    status_json,
    wait_ready,
)

UNCHECKED = "unknown (not checked yet)"  # status before the source's first retention check

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


def as_root(server: MariaDBServer, *statements: str) -> None:
    """Account statements, kept out of the binlog as the sandbox keeps its own."""
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        for statement in statements:
            cur.execute(statement)


def problems_of(output: str, directory: Path) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(str(directory))]


# -- grants -------------------------------------------------------------------------------------


@pytest.fixture
def short_of_grants(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
                    mariadb2: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    """shop's user lacks REPLICATION SLAVE and SELECT on shop.orders; app's user lacks SELECT on
    app.app_orders (it may read another table of that database)."""
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SHOP_ORDERS_SQL)
    app = Source("app", mariadb2, source_db(mariadb2))
    app.execute(APP_ORDERS_SQL, "CREATE TABLE unrelated (id INT PRIMARY KEY)")
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop, "app": app})
    scenario.write_config(SHOP_ORDERS_MAPPING + APP_ORDERS_MAPPING)
    as_root(mariadb, f"REVOKE REPLICATION SLAVE, SELECT ON *.* FROM '{shop.user}'@'%'")
    as_root(mariadb2, f"REVOKE SELECT ON *.* FROM '{app.user}'@'%'",
            f"GRANT SELECT ON `{app.database}`.`unrelated` TO '{app.user}'@'%'")
    yield scenario
    scenario.close()


def validate_as(scenario: Scenario, role: str, password: str) -> subprocess.CompletedProcess:
    """`syncd validate --live` with the target reached as `role` instead of the superuser."""
    config = scenario.tmp / "as-role.yaml"
    config.write_text(scenario.config_path.read_text().replace(f"{scenario.postgres.superuser}@", f"{role}@"))
    return subprocess.run([*scenario.program, "validate", "--live", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False, cwd=scenario.cwd,
                          env={**scenario.env(), "PGPASSWORD": password})


def test_validate_live_names_every_missing_grant_and_run_fails_at_once(short_of_grants: Scenario) -> None:
    scenario = short_of_grants
    shop, app = scenario.sources["shop"], scenario.sources["app"]
    role, password = f"r_{shop.user}", "pw-" + shop.password
    scenario.postgres.create_user(role, password)  # may connect; owns nothing, granted nothing

    result = validate_as(scenario, role, password)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = problems_of(result.stdout, scenario.tmp)
    config, mappings = str(scenario.tmp / "as-role.yaml"), str(scenario.tmp / "mappings" / "mappings.yaml")
    shop_user, app_user = f"'{shop.user}'@'%'", f"'{app.user}'@'%'"
    orders, app_orders = f"`{shop.database}`.`orders`", f"`{app.database}`.`app_orders`"

    def found(prefix: str, *parts: str) -> None:
        hits = [p for p in problems if p.startswith(prefix) and all(part in p for part in parts)]
        assert len(hits) == 1, f"{prefix} {parts} in:\n" + "\n".join(problems)

    found(config, f"source shop: the user {shop_user} lacks REPLICATION SLAVE on *.*",
          f"Fix: GRANT REPLICATION SLAVE ON *.* TO {shop_user}")
    # Without SELECT the table is hidden from information_schema: a missing grant, not a missing table.
    found(mappings, "mapping 'shop_orders': source shop:", f"lacks SELECT on {orders}",
          f"Fix: GRANT SELECT ON {orders} TO {shop_user}")
    found(mappings, "mapping 'app_orders': source app:", f"lacks SELECT on {app_orders}",
          f"Fix: GRANT SELECT ON {app_orders} TO {app_user}")
    # The same mapping's target side is reported too, and the target's state schema.
    privileges = "SELECT, INSERT, UPDATE, DELETE"
    found(mappings, "mapping 'shop_orders': role", f"lacks {privileges} on target table public.orders",
          f'Fix: GRANT {privileges} ON "public"."orders" TO "{role}"')
    found(config, "target: the state schema syncd does not exist",
          f'CREATE SCHEMA "syncd" AUTHORIZATION "{role}"')
    assert len(problems) == 5, "\n".join(problems)

    # `syncd run` (target as superuser): both sources fail at start with the grant named, not retried.
    process = scenario.start()
    eventually(lambda: len(events_named(scenario, "source_failed")) == 2, 60, 0.5)
    failed = {e["source"]: e["error"] for e in events_named(scenario, "source_failed")}
    assert "lacks REPLICATION SLAVE" in failed["shop"] and shop_user in failed["shop"]
    assert f"lacks SELECT on {app_orders}" in failed["app"]
    assert not events_named(scenario, "source_retry")
    assert scenario.stop(process) == 0


# -- a day of DDL and reloads -----------------------------------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    with tempfile.TemporaryDirectory(prefix="syncd-n-") as tmp:  # short: sun_path is 108 bytes
        listener = NotifySocket(os.path.join(tmp, "notify.sock")).start()
        yield listener
        listener.close()


@pytest.fixture
def notes_and_orders(tmp_path: Path, postgres: PostgresServer, target_db: str, mariadb: MariaDBServer,
                     source_db: Callable[[MariaDBServer], str]) -> Iterator[Scenario]:
    shop = Source("shop", mariadb, source_db(mariadb))
    shop.execute(SHOP_ORDERS_SQL, "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT)",
                 "INSERT INTO notes VALUES (1, 'one'), (2, 'two')")
    notes = TARGET_ORDERS_SQL + "; CREATE TABLE notes (id int PRIMARY KEY, body text)"
    scenario = Scenario.create(tmp_path, postgres, target_db, {"shop": shop}, target_sql=notes)
    yield scenario
    scenario.close()


def order(order_id: int, phone_column: str = "phone") -> tuple[str, tuple]:
    return (f"INSERT INTO orders (id, order_no, {phone_column}, status, amount_text) "
            "VALUES (%s, %s, '13812345678', '已支付', '1元')", (order_id, f"S{order_id}"))


def paused_of(scenario: Scenario) -> list[dict]:
    return next(s for s in status_json(scenario)["sources"] if s["source"] == "shop")["paused"]


def healthz(port: int) -> dict:
    code, body = http_get(port, "/healthz")
    assert code == 200, body  # a paused mapping does not make the source unhealthy
    return json.loads(body)["sources"]["shop"]


def closed_by_peer(conn: socket.socket) -> bool:
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_paused_and_a_dropped_mapping_are_shown_and_catch_up(notes_and_orders: Scenario,
                                                               notify_socket: NotifySocket) -> None:
    scenario, port = notes_and_orders, free_port()
    metrics = f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
    scenario.write_config(SHOP_ORDERS_MAPPING + NOTES_MAPPING, metrics)
    process = scenario.start(env={"NOTIFY_SOCKET": notify_socket.path})
    wait_ready(scenario, process, notify_socket)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]
    opened = time.monotonic()
    assert scenario.cli("validate", "--live").returncode == 0
    scenario.sources["shop"].execute("INSERT INTO notes VALUES (4, 'four')")
    eventually(lambda: (4,) in scenario.target("SELECT id FROM notes"), 30)
    assert not events_named(scenario, "source_retry")  # validate's binlog dump probe disturbed nothing

    pause_is_shown(scenario, port, notify_socket)
    # Idle metrics connections were closed by the server after its 10 s; /healthz answered all along.
    time.sleep(max(0.0, 11 - (time.monotonic() - opened)))
    assert all(closed_by_peer(conn) for conn in idle)

    # Fixed and reloaded: the pause goes away everywhere, and the order written meanwhile arrives.
    fixed = SHOP_ORDERS_MAPPING.replace("{from: phone,", "{from: mobile,")
    scenario.write_config(fixed + NOTES_MAPPING, metrics)
    process.send_signal(signal.SIGHUP)
    eventually(lambda: scenario.target("SELECT buyer_phone FROM orders WHERE source_order_id = 1")
               == [("138****5678",)], 30, 0.5)
    eventually(lambda: not paused_of(scenario), 30, 0.5)
    eventually(lambda: not healthz(port)["paused"], 30, 0.5)

    dropped_mapping_catches_up(scenario, process, fixed, metrics)
    assert scenario.stop(process) == 0


def pause_is_shown(scenario: Scenario, port: int, notify_socket: NotifySocket) -> None:
    """A mapped column renamed: the mapping pauses; status, /healthz and STATUS= show it."""
    shop = scenario.sources["shop"]
    shop.execute("ALTER TABLE orders RENAME COLUMN phone TO mobile")
    shop.execute(order(1, "mobile"))
    # The source's retention is checked once it streams: wait for that too (a loaded machine is slow).
    [paused] = eventually(lambda: [p for p in paused_of(scenario) if p["binlog_kept"] != UNCHECKED],
                          30, 0.5)
    position = paused["position"]
    assert paused["mapping"] == "shop_orders" and position.startswith("mysql-bin.")
    assert paused["statement"] == "ALTER TABLE orders RENAME COLUMN phone TO mobile"
    assert "no longer has column(s) phone" in paused["reason"] and paused["paused_at"]
    assert paused["binlog_kept"] == "unlimited"  # the sandbox server never purges binlogs
    text = scenario.cli("status").stdout
    assert f"shop: paused mapping shop_orders at {position} since" in text
    assert "(its binlog kept: unlimited): source table orders no longer has column(s) phone" in text
    [brief] = eventually(lambda: healthz(port)["paused"], 30, 0.5)
    assert brief["mapping"] == "shop_orders" and brief["position"] == position
    assert brief["reason"] == "source table orders no longer has column(s) phone"
    clause = (f"shop_orders paused at {position} (source table orders no longer has column(s) phone), "
              "binlog kept unlimited")
    eventually(lambda: any(clause in m for m in notify_socket.texts()), 30, 0.5)

    # A reconnect while it is paused: the source's other mapping streams on.
    kill_binlog_dumps(shop)
    eventually(lambda: events_named(scenario, "source_retry"), 30)
    shop.execute("INSERT INTO notes VALUES (5, 'five')")
    eventually(lambda: (5,) in scenario.target("SELECT id FROM notes"), 30)
    assert not events_named(scenario, "source_failed")


def kill_binlog_dumps(source: Source) -> None:
    """End the server side of syncd's binlog stream, as a network cut would."""
    with source.server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND COMMAND LIKE "
                    "'Binlog Dump%%'", (source.user,))
        for (thread,) in cur.fetchall():
            cur.execute(f"KILL {int(thread)}")


def dropped_mapping_catches_up(scenario: Scenario, process: subprocess.Popen, mappings: str,
                               metrics: str) -> None:
    """A reload that leaves shop_notes out: a warning, a pause at the checkpoint; brought back,
    every change it missed arrives."""
    shop = scenario.sources["shop"]
    eventually(lambda: scenario.target("SELECT id FROM notes ORDER BY id") == [(1,), (2,), (4,), (5,)], 30)
    scenario.write_config(mappings, metrics)
    process.send_signal(signal.SIGHUP)
    dropped = eventually(lambda: events_named(scenario, "mapping_dropped_by_reload"), 30)
    assert dropped[0]["level"] == "warning" and dropped[0]["mapping"] == "shop_notes"
    [held] = eventually(lambda: paused_of(scenario), 30, 0.5)
    assert held["mapping"] == "shop_notes" and "left out of the mapping files by a reload" in held["reason"]
    shop.execute("INSERT INTO notes VALUES (3, 'three')", "UPDATE notes SET body = 'ONE' WHERE id = 1",
                 "DELETE FROM notes WHERE id = 2")
    shop.execute(order(2, "mobile"))
    eventually(lambda: scenario.target("SELECT count(*) FROM orders") == [(2,)], 30)
    assert scenario.target("SELECT id FROM notes ORDER BY id") == [(1,), (2,), (4,), (5,)]

    scenario.write_config(mappings + NOTES_MAPPING, metrics)
    process.send_signal(signal.SIGHUP)
    caught_up = [(1, "ONE"), (3, "three"), (4, "four"), (5, "five")]
    eventually(lambda: scenario.target("SELECT id, body FROM notes ORDER BY id") == caught_up, 30, 0.5)
    eventually(lambda: not paused_of(scenario), 30, 0.5)
