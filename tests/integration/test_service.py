"""`syncd run` as a service, on real servers: notify protocol, watchdog, signals and shutdown,
logs without secrets, metrics and /healthz, `syncd status`, binlog safety and retention headroom.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent

from devtools.sandbox import MariaDBServer, PostgresServer, free_port
from tests.helpers import eventually
from tests.integration.scenario import (
    APP_ORDERS_MAPPING,
    APP_ORDERS_SQL,
    SHOP_ORDERS_MAPPING,
    SHOP_ORDERS_SQL,
    Scenario,
    Source,
)

# pymysqlreplication (used here to read back what a checkpoint covers) passes a deprecated
# keyword to PyMySQL for its own metadata connection.
pytestmark = pytest.mark.filterwarnings("ignore:'db' is deprecated:DeprecationWarning")

# -- helpers shared with test_ha.py ---------------------------------------------------------------


@dataclass
class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET; records every message."""

    path: str
    messages: list[tuple[float, str]] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> NotifySocket:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()
        return self

    def _receive(self) -> None:
        assert self._sock is not None
        while not self._done.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._sock is not None:
            self._sock.close()

    def texts(self, since: float = 0.0) -> list[str]:
        return [m for t, m in list(self.messages) if t >= since]

    def times_of(self, key: str, since: float = 0.0) -> list[float]:
        return [t for t, m in list(self.messages) if t >= since and key in m.split("\n")]

    def first(self, key: str, since: float = 0.0) -> float | None:
        times = self.times_of(key, since)
        return times[0] if times else None


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    with tempfile.TemporaryDirectory(prefix="syncd-n-") as tmp:  # short: sun_path is 108 bytes
        listener = NotifySocket(os.path.join(tmp, "notify.sock")).start()
        yield listener
        listener.close()


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (None if absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        have = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if have == wanted:
            return float(match.group(3))
    return None


def log_events(scenario: Scenario, log_name: str = "syncd.log") -> list[dict]:
    """Every JSON line syncd wrote (all lines must be JSON: the format is json in the config)."""
    events = []
    for line in scenario.log_text(log_name).splitlines():
        if line.strip():
            events.append(json.loads(line))
    return events


def events_named(scenario: Scenario, name: str, log_name: str = "syncd.log", **fields: str) -> list[dict]:
    return [e for e in log_events(scenario, log_name)
            if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())]


def status_json(scenario: Scenario) -> dict:
    result = scenario.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def source_status(scenario: Scenario, name: str) -> dict:
    return next(s for s in status_json(scenario)["sources"] if s["source"] == name)


def insert_order(order_id: int, status: str = "待支付") -> tuple[str, tuple]:
    return ("INSERT INTO orders (id, order_no, phone, status, amount_text, created_at) "
            "VALUES (%s, %s, '13812345678', %s, '10元', '2024-05-01 12:00:00')",
            (order_id, f"S{order_id:06d}", status))


def shop_ids_in_target(scenario: Scenario) -> set[int]:
    return {r[0] for r in scenario.target("SELECT source_order_id FROM orders WHERE channel = 'shop'")}


def shop_ids_in_source(shop: Source) -> set[int]:
    return {r[0] for r in shop.rows("SELECT id FROM orders")}


class Writer:
    """Inserts shop orders, one transaction each, until stopped; every `bad_every`-th row has a
    status the mapping does not know (it becomes a dead letter)."""

    def __init__(self, shop: Source, bad_every: int = 0, pause: float = 0.005) -> None:
        self.shop = shop
        self.bad_every = bad_every
        self.pause = pause
        self.next_id = 1
        self.bad: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = self.shop.connect()
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    bad = self.bad_every and self.next_id % self.bad_every == 0
                    cur.execute(*insert_order(self.next_id, "已退款" if bad else "已支付"))
                    if bad:
                        self.bad.add(self.next_id)
                    self.next_id += 1
                    time.sleep(self.pause)
        finally:
            conn.close()

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def committed_ids(server: MariaDBServer, database: str, start: tuple[str, int],
                  end: tuple[str, int]) -> set[int]:
    """Ids inserted into `database`.orders by transactions committed in [start, end)."""
    stream = BinLogStreamReader(
        connection_settings={"host": server.host, "port": server.port, "user": "root",
                             "password": server.root_password},
        server_id=900_000 + os.getpid() % 1000, blocking=False, resume_stream=True,
        log_file=start[0], log_pos=start[1], only_events=[WriteRowsEvent],
        only_schemas=[database], only_tables=["orders"], is_mariadb=False,
    )
    ids: set[int] = set()
    try:
        for event in stream:
            here = (stream.log_file, event.packet.log_pos)
            if here > end:
                break
            ids.update(row["values"]["id"] for row in event.rows)
    finally:
        stream.close()
    return ids


def master_position(server: MariaDBServer) -> tuple[str, int]:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    return str(row[0]), int(row[1])


def checkpoint_of(scenario: Scenario, source: str) -> tuple[str, int] | None:
    rows = scenario.target("SELECT binlog_file, binlog_pos FROM syncd.checkpoints WHERE source = %s",
                           (source,))
    return (rows[0][0], int(rows[0][1])) if rows else None


def wait_streaming(scenario: Scenario, *names: str, timeout: float = 60) -> None:
    def streaming() -> bool:
        sources = {s["source"]: s for s in status_json(scenario)["sources"]}
        return all(sources[n]["state"] == "streaming" for n in names)
    eventually(streaming, timeout, 0.5)


def wait_ready(scenario: Scenario, process: subprocess.Popen, notify_socket: NotifySocket,
               timeout: float = 60) -> float:
    """When READY=1 arrived; fails at once, with syncd's log, if syncd exits or never gets ready."""
    def ready() -> float | None:
        if process.poll() is not None:
            raise AssertionError(f"syncd exited with {process.returncode}:\n{scenario.log_text()[-3000:]}")
        return notify_socket.first("READY=1")
    try:
        return eventually(ready, timeout)
    except AssertionError as exc:
        events = [line for line in scenario.log_text().splitlines() if '"debug"' not in line]
        raise AssertionError(f"{exc}\nsyncd log:\n" + "\n".join(events[-30:])) from exc


def exit_within(process: subprocess.Popen, seconds: float) -> tuple[int, float]:
    began = time.monotonic()
    code = process.wait(seconds)
    return code, time.monotonic() - began


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lonely(sandbox_root: Path) -> Iterator[MariaDBServer]:
    """A source server of this module's own: tests stop it, purge its binlogs, change expiry."""
    with MariaDBServer(sandbox_root / "mariadb-service", server_id=11) as server:
        yield server


@pytest.fixture
def app(mariadb2: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    source = Source("app", mariadb2, source_db(mariadb2))
    source.execute(APP_ORDERS_SQL)
    return source


@pytest.fixture
def lonely_shop(lonely: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Iterator[Source]:
    if not lonely.running:
        lonely.start()
    source = Source("shop", lonely, source_db(lonely))
    source.execute(SHOP_ORDERS_SQL)
    yield source
    with lonely.connect() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL binlog_expire_logs_seconds = 0")


@pytest.fixture
def make_scenario(tmp_path: Path, postgres: PostgresServer,
                  target_db: str) -> Iterator[Callable[..., Scenario]]:
    made: list[Scenario] = []

    def make(*sources: Source, extra: str = "") -> Scenario:
        scenario = Scenario.create(tmp_path, postgres, target_db, {s.name: s for s in sources})
        mappings = SHOP_ORDERS_MAPPING + (APP_ORDERS_MAPPING if any(s.name == "app" for s in sources) else "")
        scenario.write_config(mappings, extra)
        made.append(scenario)
        return scenario

    yield make
    for scenario in made:
        scenario.close()


# -- systemd notify and watchdog -------------------------------------------------------------------


def test_notify_ready_status_watchdog_reload_stopping(make_scenario: Callable[..., Scenario], shop: Source,
                                                      app: Source, notify_socket: NotifySocket) -> None:
    """READY=1 only once both sources stream; STATUS= with lag; WATCHDOG=1 steadily;
    RELOADING=1 + READY=1 around a SIGHUP (valid or rejected); STOPPING=1 at SIGTERM."""
    scenario = make_scenario(shop, app)
    started = time.monotonic()
    process = scenario.start(env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"})
    ready_at = wait_ready(scenario, process, notify_socket)
    # Not before: by READY both sources streamed (their checkpoints exist, streaming began).
    streaming = events_named(scenario, "streaming_started")
    assert {e["source"] for e in streaming} == {"shop", "app"}
    assert all(e.get("position") for e in streaming)
    assert checkpoint_of(scenario, "shop") and checkpoint_of(scenario, "app")
    ready_message = next(m for t, m in notify_socket.messages if t == ready_at)
    assert re.search(r"STATUS=.*shop: (lag [\d.]+s|streaming).*app: (lag [\d.]+s|streaming)", ready_message)
    # A long start-up asks systemd for more time instead of being killed by TimeoutStartSec.
    assert any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in notify_socket.texts(started))

    shop.execute(insert_order(1, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1}, 30)
    time.sleep(3)
    beats = notify_socket.times_of("WATCHDOG=1", ready_at)
    assert len(beats) >= 4, notify_socket.messages  # interval 0.5 s
    assert max(b - a for a, b in itertools.pairwise(beats)) < 1.5
    assert any(re.fullmatch(r"STATUS=shop: lag [\d.]+s; app: lag [\d.]+s", m)
               for m in notify_socket.texts(ready_at)), notify_socket.texts(ready_at)

    # SIGHUP with a valid change: RELOADING=1 (with MONOTONIC_USEC), then READY=1; it applies.
    mapping_file = scenario.tmp / "mappings" / "mappings.yaml"
    mapping_file.write_text(mapping_file.read_text().replace("已支付: 1", "已支付: 4"))
    hup = time.monotonic()
    process.send_signal(signal.SIGHUP)
    reloading = eventually(lambda: notify_socket.first("RELOADING=1", hup), 30)
    message = next(m for t, m in notify_socket.messages if t == reloading)
    assert re.search(r"^MONOTONIC_USEC=\d+$", message, re.MULTILINE)
    assert eventually(lambda: notify_socket.first("READY=1", reloading), 30) > reloading
    shop.execute(insert_order(2, "已支付"))
    eventually(lambda: scenario.target("SELECT status FROM orders WHERE source_order_id = 2 "
                                       "AND channel = 'shop'") == [(4,)], 30)

    # SIGHUP with a broken mapping: rejected, the old set keeps running, READY=1 again.
    mapping_file.write_text(mapping_file.read_text().replace("order_no: order_no", "order_no: no_such"))
    hup = time.monotonic()
    process.send_signal(signal.SIGHUP)
    again = eventually(lambda: notify_socket.first("READY=1", hup), 30)
    assert notify_socket.first("RELOADING=1", hup) < again
    eventually(lambda: events_named(scenario, "reload_rejected"), 10)
    shop.execute(insert_order(3, "已支付"))
    eventually(lambda: 3 in shop_ids_in_target(scenario), 30)

    term = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code, _ = exit_within(process, 25)
    assert code == 0
    assert notify_socket.first("STOPPING=1", term) is not None


def test_watchdog_stops_while_the_reader_hangs(make_scenario: Callable[..., Scenario], lonely_shop: Source,
                                               lonely: MariaDBServer, notify_socket: NotifySocket) -> None:
    """SIGSTOP the source server: the reader hangs, WATCHDOG=1 stops (systemd would restart
    syncd) and /healthz says 503; after SIGCONT the beats and 200 come back."""
    port = free_port()
    scenario = make_scenario(lonely_shop, extra=f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
                                                 "alerts: {stall: 4s}\n")
    process = scenario.start(env={"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "1000000"})
    wait_ready(scenario, process, notify_socket)
    eventually(lambda: http_get(port, "/healthz")[0] == 200, 30)
    assert process.poll() is None
    assert lonely._process is not None
    server_pid = lonely._process.pid
    os.kill(server_pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        # heartbeat 1 s, stall 4 s: the beats stop within ~5 s and stay away
        eventually(lambda: http_get(port, "/healthz")[0] == 503, 15)
        time.sleep(12)
        beats = notify_socket.times_of("WATCHDOG=1", stopped)
        gaps = [b - a for a, b in itertools.pairwise([stopped, *beats, time.monotonic()])]
        assert max(gaps) >= 8, beats  # far beyond WatchdogSec=1s: systemd would have restarted it
        code, body = http_get(port, "/healthz")
        assert code == 503
        assert json.loads(body)["sources"]["shop"]["progressing"] is False
    finally:
        os.kill(server_pid, signal.SIGCONT)
    resumed = time.monotonic()
    eventually(lambda: len(notify_socket.times_of("WATCHDOG=1", resumed)) >= 3, 60)
    eventually(lambda: http_get(port, "/healthz")[0] == 200, 60)
    stalled = events_named(scenario, "source_stalled", source="shop")
    assert stalled and stalled[0]["level"] == "warning" and stalled[0]["position"]
    assert events_named(scenario, "source_unstalled", source="shop")
    lonely_shop.execute(insert_order(1, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1}, 60)
    assert scenario.stop(process) == 0


def test_a_reload_after_an_idle_while_is_no_stall(make_scenario: Callable[..., Scenario],
                                                  shop: Source) -> None:
    """An idle source lives on its heartbeats; reloading it must not look like a hang."""
    scenario = make_scenario(shop, extra="alerts: {stall: 4s}\n")
    process = scenario.start()
    eventually(lambda: events_named(scenario, "streaming_started"), 60)
    time.sleep(6)  # longer than the stall limit, nothing written
    mapping_file = scenario.tmp / "mappings" / "mappings.yaml"
    mapping_file.write_text(mapping_file.read_text().replace("已支付: 1", "已支付: 4"))
    process.send_signal(signal.SIGHUP)
    eventually(lambda: events_named(scenario, "source_reloaded", source="shop"), 30)
    time.sleep(2)
    assert not events_named(scenario, "source_stalled", source="shop")
    shop.execute(insert_order(1, "已支付"))
    eventually(lambda: scenario.target("SELECT status FROM orders WHERE source_order_id = 1 "
                                       "AND channel = 'shop'") == [(4,)], 30)
    assert scenario.stop(process) == 0


def test_a_reload_says_when_config_yaml_changed_or_no_longer_loads(make_scenario: Callable[..., Scenario],
                                                                   shop: Source) -> None:
    """SIGHUP re-reads the mapping files only: a changed config.yaml is named for a restart, and
    one that would not load is reported before the next start fails on it."""
    scenario = make_scenario(shop)
    process = scenario.start()
    eventually(lambda: events_named(scenario, "streaming_started"), 60)
    config = scenario.tmp / "config.yaml"
    config.write_text(config.read_text().replace("max_rows: 500", "max_rows: 100"))
    process.send_signal(signal.SIGHUP)
    changed = eventually(lambda: events_named(scenario, "config_changed"), 30)
    assert changed[0]["level"] == "warning" and "restart" in changed[0]["action"]
    config.write_text(config.read_text() + "no_such_setting: 1\n")
    process.send_signal(signal.SIGHUP)
    invalid = eventually(lambda: events_named(scenario, "config_invalid"), 30)
    assert "no_such_setting" in invalid[0]["errors"]
    assert process.poll() is None
    assert scenario.stop(process) == 0


def test_a_target_refusing_the_login_is_a_configuration_error_at_start(make_scenario: Callable[..., Scenario],
                                                                         shop: Source) -> None:
    """A wrong target password exits 78 (systemd does not restart it in a loop), naming the fix."""
    scenario = make_scenario(shop)
    scenario.extra_env["PGPASSWORD"] = "not-the-password"
    process = scenario.start()
    code, _ = exit_within(process, 60)
    assert code == 78
    assert "password authentication failed" in scenario.log_text()
    assert "target.password_env" in scenario.log_text() and "Traceback" not in scenario.log_text()
    status = scenario.cli("status")
    assert status.returncode == 78, status.stdout + status.stderr


# -- signals and shutdown ----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_commits_exactly_what_was_applied(make_scenario: Callable[..., Scenario], shop: Source,
                                                      signum: signal.Signals) -> None:
    """Under a steady write load, SIGTERM/SIGINT exits 0 well within shutdown_timeout, and the
    checkpoint covers exactly the transactions whose rows are in the target."""
    scenario = make_scenario(shop)
    start = master_position(shop.server)
    with Writer(shop):
        process = scenario.start()
        wait_streaming(scenario, "shop")
        eventually(lambda: len(shop_ids_in_target(scenario)) > 200, 60)
        process.send_signal(signum)
        code, seconds = exit_within(process, 25)
    assert code == 0
    assert seconds < 10, f"took {seconds:.1f}s (shutdown_timeout is 20 s)"
    assert events_named(scenario, "stopping", signal=signum.name)
    checkpoint = checkpoint_of(scenario, "shop")
    assert checkpoint is not None
    in_target = shop_ids_in_target(scenario)
    assert committed_ids(shop.server, shop.database, start, checkpoint) == in_target
    assert len(shop_ids_in_source(shop)) > len(in_target)  # the writer went on after the stop

    # Restarting resumes from there and catches up with everything.
    process = scenario.start()
    eventually(lambda: shop_ids_in_target(scenario) == shop_ids_in_source(shop), 60)
    assert scenario.stop(process) == 0


@contextmanager
def target_writes_blocked(scenario: Scenario) -> Iterator[None]:
    """Hold a lock that blocks writes to the target table (reads still work): syncd's next
    commit hangs until the block ends."""
    with psycopg.connect(scenario.postgres.dsn(scenario.target_db)) as conn:
        conn.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def test_second_sigterm_exits_at_once_losing_nothing(make_scenario: Callable[..., Scenario],
                                                     shop: Source) -> None:
    """With a commit hanging on the target, the first SIGTERM waits for it; the second exits at
    once, and the checkpoint still covers exactly the committed rows."""
    scenario = make_scenario(shop)
    start = master_position(shop.server)
    with Writer(shop):
        process = scenario.start()
        wait_streaming(scenario, "shop")
        eventually(lambda: len(shop_ids_in_target(scenario)) > 100, 60)
        with target_writes_blocked(scenario):
            time.sleep(1.5)  # the next batch is now waiting for the lock
            process.send_signal(signal.SIGTERM)
            time.sleep(1.5)
            assert process.poll() is None  # still waiting for the hung commit
            process.send_signal(signal.SIGTERM)
            code, seconds = exit_within(process, 10)
    assert code == 0
    assert seconds < 1, f"the second SIGTERM took {seconds:.2f}s"
    checkpoint = checkpoint_of(scenario, "shop")
    assert checkpoint is not None
    assert committed_ids(shop.server, shop.database, start, checkpoint) == shop_ids_in_target(scenario)
    process = scenario.start()
    eventually(lambda: shop_ids_in_target(scenario) == shop_ids_in_source(shop), 60)
    assert scenario.stop(process) == 0


def test_shutdown_timeout_bounds_a_hung_commit(make_scenario: Callable[..., Scenario],
                                               shop: Source) -> None:
    """A commit that never returns cannot hold the stop beyond shutdown_timeout; exit 0,
    nothing lost (the hung batch is read again at the next start)."""
    scenario = make_scenario(shop)
    config = scenario.config_path.read_text().replace("shutdown_timeout: 20", "shutdown_timeout: 3")
    scenario.config_path.write_text(config)
    start = master_position(shop.server)
    with Writer(shop):
        process = scenario.start()
        wait_streaming(scenario, "shop")
        eventually(lambda: len(shop_ids_in_target(scenario)) > 100, 60)
        with target_writes_blocked(scenario):
            time.sleep(1.5)
            process.send_signal(signal.SIGTERM)
            code, seconds = exit_within(process, 20)
    assert code == 0
    assert 3 <= seconds < 6, f"took {seconds:.1f}s with shutdown_timeout 3"
    timeout = events_named(scenario, "shutdown_timeout")
    assert timeout and timeout[0]["sources"] == ["shop"]
    checkpoint = checkpoint_of(scenario, "shop")
    assert checkpoint is not None
    assert committed_ids(shop.server, shop.database, start, checkpoint) == shop_ids_in_target(scenario)
    process = scenario.start()
    eventually(lambda: shop_ids_in_target(scenario) == shop_ids_in_source(shop), 60)
    assert scenario.stop(process) == 0


# -- logs ----------------------------------------------------------------------------------------


def test_logs_are_json_with_context_and_never_show_secrets(make_scenario: Callable[..., Scenario],
                                                           shop: Source, app: Source,
                                                           mariadb: MariaDBServer) -> None:
    """Through a wrong password (app) and a restarted source server (shop), neither the log nor
    `syncd status` shows any password, in any form; events carry source and position."""
    scenario = make_scenario(shop, app)
    right_app_password = app.password
    wrong_app_password = "Wr0ng-" + right_app_password[::-1]
    env = {"APP_DB_PASSWORD": wrong_app_password}
    process = scenario.start(env=env)
    wait_streaming(scenario, "shop")
    eventually(lambda: events_named(scenario, "source_retry", source="app"), 60)
    shop.execute(insert_order(1, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1}, 30)
    mariadb.restart()
    eventually(lambda: events_named(scenario, "source_retry", source="shop"), 60)
    shop.execute(insert_order(2, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2}, 60)
    outputs = [scenario.cli("status").stdout, scenario.cli("status", "--json").stdout]
    assert scenario.stop(process) == 0
    outputs.append(scenario.log_text())
    secrets = {
        "shop": shop.password, "app (right)": right_app_password, "app (wrong)": wrong_app_password,
        "PGPASSWORD": scenario.postgres.superuser_password,
    }
    for text in outputs:
        for what, secret in secrets.items():
            assert secret not in text, f"{what} password leaked"
            assert urllib.parse.quote(secret, safe="") not in text, f"{what} password leaked (quoted)"

    events = log_events(scenario)  # every line parses as JSON
    assert all({"event", "level", "timestamp"} <= e.keys() for e in events)
    for name in ("source_retry", "source_active", "streaming_started", "source_failed",
                 "binlog_purged", "source_lock_lost", "retention_headroom_low", "dead_letter"):
        for event in (e for e in events if e["event"] == name):
            assert event.get("source"), event
    for name in ("source_retry", "streaming_started"):
        for event in (e for e in events if e["event"] == name and e["source"] == "shop"):
            assert event.get("position"), event
    retry = next(e for e in events if e["event"] == "source_retry" and e["source"] == "app")
    assert "Access denied" in retry["error"]
    status = source_status(scenario, "app")
    assert status["state"] in {"retrying", "no checkpoint (initial load not done)"}


# -- metrics, health and status ---------------------------------------------------------------------


def test_metrics_and_healthz(make_scenario: Callable[..., Scenario], shop: Source, app: Source,
                             mariadb2: MariaDBServer) -> None:
    port = free_port()
    scenario = make_scenario(shop, app, extra=f"metrics: {{listen: '127.0.0.1:{port}'}}\n")
    process = scenario.start()
    wait_streaming(scenario, "shop", "app")
    shop.execute(insert_order(1, "已支付"), insert_order(2, "已支付"))
    shop.execute(insert_order(3, "已退款"))  # not in the map: a dead letter
    app.execute("INSERT INTO app_orders (id, status_code, total_fen) VALUES (1, 20, 100)")
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2}, 30)

    def scraped() -> str:
        code, text = http_get(port, "/metrics")
        assert code == 200
        assert metric(text, "syncd_dead_letters_pending", source="shop") == 1
        return text

    text = eventually(scraped, 30, 0.5)
    assert metric(text, "syncd_changes_read_total", source="shop", table="orders") == 3
    assert metric(text, "syncd_changes_applied_total", source="shop", table="orders") == 2
    assert metric(text, "syncd_changes_applied_total", source="app", table="app_orders") == 1
    assert metric(text, "syncd_dead_letters_total", source="shop", table="orders") == 1
    assert metric(text, "syncd_apply_batch_size_count", source="shop") >= 1
    assert metric(text, "syncd_apply_latency_seconds_count", source="shop") >= 1
    assert metric(text, "syncd_replication_lag_seconds", source="shop") is not None
    assert metric(text, "syncd_checkpoint_age_seconds", source="shop") is not None
    assert metric(text, "syncd_dead_letters_pending", source="app") == 0
    # The sandbox server never expires binlogs: unlimited headroom.
    assert metric(text, "syncd_binlog_retention_headroom_seconds", source="shop") == float("inf")
    assert metric(text, "syncd_source_up", source="shop") == 1
    assert metric(text, "syncd_source_active", source="app") == 1
    assert "syncd_reconcile_drift_rows_total" in text
    code, body = http_get(port, "/healthz")
    assert code == 200, body
    assert json.loads(body)["status"] == "ok"

    mariadb2.stop()
    try:
        eventually(lambda: http_get(port, "/healthz")[0] == 503, 30)
        code, body = http_get(port, "/healthz")
        detail = json.loads(body)["sources"]
        assert not detail["app"]["healthy"] and detail["shop"]["healthy"]
        eventually(lambda: metric(http_get(port, "/metrics")[1], "syncd_source_up", source="app") == 0, 30)
    finally:
        mariadb2.start()
    eventually(lambda: http_get(port, "/healthz")[0] == 200, 60)
    assert scenario.stop(process) == 0


def test_status_while_running_and_after(make_scenario: Callable[..., Scenario], shop: Source) -> None:
    scenario = make_scenario(shop)
    process = scenario.start()
    wait_streaming(scenario, "shop")
    shop.execute(insert_order(1, "已支付"))
    shop.execute(insert_order(3, "已退款"))  # a dead letter
    eventually(lambda: source_status(scenario, "shop")["dead_letters_pending"] == 1, 30)
    scenario.target("INSERT INTO syncd.reconcile_runs (mapping, source, status, finished_at, "
                    "rows_compared, missing, repaired) VALUES ('shop_orders', 'shop', 'done', now(), "
                    "10, 1, 0), ('shop_orders', 'shop', 'drift', now(), 10, 2, 0)")
    # The headroom is checked within a second of the first checkpoint.
    eventually(lambda: source_status(scenario, "shop")["retention_headroom"] == "unlimited", 30)
    status = status_json(scenario)
    shop_status = next(s for s in status["sources"] if s["source"] == "shop")
    assert shop_status["state"] == "streaming"
    assert shop_status["retention_headroom"] == "unlimited"
    assert shop_status["owner"]["pid"] == process.pid and shop_status["owner"]["alive"]
    assert shop_status["position"].startswith("mysql-bin.")
    assert shop_status["last_event_time"] and shop_status["lag_seconds"] is not None
    assert [(r["mapping"], r["status"], r["missing"]) for r in status["reconcile"]] == [
        ("shop_orders", "drift", 2)]  # the latest run of each mapping
    assert shop_status["last_reconcile"] == status["reconcile"]
    text = scenario.cli("status")
    assert text.returncode == 0
    assert f":{process.pid}" in text.stdout and "unlimited" in text.stdout and "drift" in text.stdout
    assert scenario.stop(process) == 0

    after = source_status(scenario, "shop")  # the daemon is gone: status still works
    assert after["state"] == "stopped"
    assert after["owner"] is None
    assert after["dead_letters_pending"] == 1
    # on a host without the sources' passwords: status reads only the state schema
    without = subprocess.run([*scenario.program, "status", "--config", str(scenario.config_path)],
                             capture_output=True, text=True, timeout=120, check=False, cwd=scenario.cwd,
                             env={k: v for k, v in scenario.env().items() if k != "SHOP_DB_PASSWORD"})
    assert without.returncode == 0, without.stderr
    assert "stopped" in without.stdout


# -- binlog safety ----------------------------------------------------------------------------------


def purge_all_but_current(server: MariaDBServer) -> str:
    """Rotate, then purge every older file (retrying while a binlog reader still reads one)."""
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        current = str(cur.fetchone()[0])

        def purged() -> bool:
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            return [r[0] for r in cur.fetchall()] == [current]

        eventually(purged, 30, 0.2)
    return current


def test_purged_binlog_at_start_stops_only_that_source(make_scenario: Callable[..., Scenario],
                                                       lonely_shop: Source, app: Source) -> None:
    port = free_port()
    scenario = make_scenario(lonely_shop, app, extra=f"metrics: {{listen: '127.0.0.1:{port}'}}\n")
    process = scenario.start()
    wait_streaming(scenario, "shop", "app")
    assert scenario.stop(process) == 0
    lonely_shop.execute(insert_order(1, "已支付"))  # written while syncd is down...
    needed = checkpoint_of(scenario, "shop")
    assert needed is not None
    purge_all_but_current(lonely_shop.server)      # ...and purged before it could read it

    process = scenario.start()
    failed = eventually(lambda: events_named(scenario, "source_failed", source="shop"), 60)[0]
    assert f"binlog file {needed[0]} is no longer on the server" in failed["error"]
    assert "syncd snapshot --source shop" in failed["error"]
    assert failed["position"] == f"{needed[0]}:{needed[1]}"
    # The other source goes on.
    app.execute("INSERT INTO app_orders (id, status_code, total_fen) VALUES (5, 20, 100)")
    eventually(lambda: scenario.target("SELECT 1 FROM orders WHERE channel = 'app' "
                                       "AND source_order_id = 5"), 30)
    text = http_get(port, "/metrics")[1]
    assert metric(text, "syncd_source_up", source="shop") == 0
    assert metric(text, "syncd_source_up", source="app") == 1
    assert metric(text, "syncd_binlog_retention_headroom_seconds", source="shop") == 0

    def unhealthy() -> bool:
        code, body = http_get(port, "/healthz")
        assert code == 503
        shop = json.loads(body)["sources"]["shop"]
        return "syncd snapshot --source shop" in shop["detail"] and shop["progressing"] is False

    eventually(unhealthy, 10)  # /healthz is refreshed every second
    status = source_status(scenario, "shop")
    assert status["state"] == "failed"
    assert "syncd snapshot --source shop" in status["error"]
    assert status["retention_headroom"] == "purged"

    # What a snapshot does in the end: a new checkpoint (here without a record of its binlog
    # history, which the resume then records). The source resumes by itself.
    current = master_position(lonely_shop.server)
    scenario.target("UPDATE syncd.checkpoints SET binlog_file = %s, binlog_pos = %s, gtid = NULL, "
                    "binlog_file_created = NULL, binlog_file_server_id = NULL WHERE source = 'shop'",
                    current)
    eventually(lambda: events_named(scenario, "source_resuming", source="shop"), 30)
    lonely_shop.execute(insert_order(2, "已支付"))
    eventually(lambda: 2 in shop_ids_in_target(scenario), 60)
    eventually(lambda: http_get(port, "/healthz")[0] == 200, 30)
    assert scenario.stop(process) == 0


def test_an_idle_source_survives_a_purge_of_old_binlogs(make_scenario: Callable[..., Scenario],
                                                        lonely_shop: Source, app: Source) -> None:
    """The checkpoint of an idle source follows the server into a new binlog file (heartbeats),
    so purging the old files while syncd runs costs nothing; the periodic check stays quiet."""
    scenario = make_scenario(lonely_shop, app, extra="alerts: {check_interval: 2s}\n")
    process = scenario.start()
    wait_streaming(scenario, "shop", "app")
    lonely_shop.execute(insert_order(1, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1}, 30)
    needed = checkpoint_of(scenario, "shop")
    assert needed is not None
    purge_all_but_current(lonely_shop.server)
    eventually(lambda: (c := checkpoint_of(scenario, "shop")) is not None and c[0] > needed[0], 30)
    time.sleep(3)  # at least one periodic binlog check
    assert not events_named(scenario, "source_failed", source="shop")
    lonely_shop.execute(insert_order(2, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1, 2}, 30)
    assert scenario.stop(process) == 0


def test_retention_headroom_metric_warning_and_status(make_scenario: Callable[..., Scenario],
                                                      lonely_shop: Source) -> None:
    """With binlogs expiring after 1 h and a 2 h alert threshold: headroom ~1 h, a warning."""
    with lonely_shop.server.connect() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL binlog_expire_logs_seconds = 3600")
    port = free_port()
    scenario = make_scenario(lonely_shop, extra=f"metrics: {{listen: '127.0.0.1:{port}'}}\n"
                                                "alerts: {retention_headroom: 2h, check_interval: 2s}\n")
    process = scenario.start()
    wait_streaming(scenario, "shop")
    lonely_shop.execute(insert_order(1, "已支付"))
    eventually(lambda: shop_ids_in_target(scenario) == {1}, 30)
    # The checkpoint's file is the one being written: it cannot expire within the hour.
    eventually(lambda: metric(http_get(port, "/metrics")[1], "syncd_binlog_retention_headroom_seconds",
                              source="shop") == 3600, 30)
    low = eventually(lambda: events_named(scenario, "retention_headroom_low", source="shop"), 30)[0]
    assert low["level"] == "warning" and low["threshold"] == "2h" and low["position"]
    # When the server moves on to a new file, an idle source's checkpoint follows it (on the
    # next heartbeat), so the old file is never needed and the headroom stays whole.
    needed = checkpoint_of(scenario, "shop")
    assert needed is not None
    with lonely_shop.server.connect() as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
    moved = eventually(lambda: c if (c := checkpoint_of(scenario, "shop")) and c[0] != needed[0] else None,
                       30)
    assert moved[0] > needed[0]
    status = eventually(lambda: s if (s := source_status(scenario, "shop"))["retention_headroom"] else None,
                        30)
    assert status["retention_headroom_seconds"] == 3600, status
    assert scenario.stop(process) == 0
