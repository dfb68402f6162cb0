"""Prometheus metrics, /healthz and the HTTP server, over real HTTP on port 0."""

from __future__ import annotations

import json
import re
import selectors
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from syncd.service.metrics import WORKERS, Health, Metrics, Server, _HTTPServer, serve

EXPECTED_METRICS = [
    "syncd_changes_read_total",
    "syncd_changes_applied_total",
    "syncd_dead_letters_total",
    "syncd_apply_batch_size",
    "syncd_apply_latency_seconds",
    "syncd_replication_lag_seconds",
    "syncd_dead_letters_pending",
    "syncd_reconcile_drift_rows_total",
    "syncd_reconcile_repaired_rows_total",
    "syncd_checkpoint_age_seconds",
    "syncd_binlog_retention_headroom_seconds",
    "syncd_source_up",
    "syncd_source_active",
    "syncd_mapping_paused",
    "syncd_mapping_paused_since_seconds",
]


def fill(m: Metrics) -> None:
    m.record_read("shop", "orders", 3)
    m.record_read("shop", "customers")
    m.record_batch("shop", {"orders": 3, "customers": 1}, seconds=0.04, lag_seconds=1.5)
    m.record_dead_letter("shop", "orders")
    m.set_dead_letters_pending("shop", 1)
    m.record_drift("orders", missing=2, differ=1)
    m.record_repaired("orders", 3)
    m.set_checkpoint_age("shop", 2.0)
    m.set_binlog_retention_headroom("shop", 86400)
    m.set_source_up("shop", True)
    m.set_source_active("shop", True)
    m.set_paused_mappings({("shop", "shop_orders"): datetime(2026, 11, 22, 8, 0, tzinfo=UTC)})


def test_every_metric_is_recorded_under_its_name() -> None:
    m = Metrics(CollectorRegistry())
    fill(m)
    v = m.registry.get_sample_value
    shop = {"source": "shop"}
    assert v("syncd_changes_read_total", {"source": "shop", "table": "orders"}) == 3
    assert v("syncd_changes_read_total", {"source": "shop", "table": "customers"}) == 1
    assert v("syncd_changes_applied_total", {"source": "shop", "table": "orders"}) == 3
    assert v("syncd_changes_applied_total", {"source": "shop", "table": "customers"}) == 1
    assert v("syncd_dead_letters_total", {"source": "shop", "table": "orders"}) == 1
    assert v("syncd_apply_batch_size_count", shop) == 1
    assert v("syncd_apply_batch_size_sum", shop) == 4
    assert v("syncd_apply_latency_seconds_count", shop) == 1
    assert v("syncd_apply_latency_seconds_sum", shop) == pytest.approx(0.04)
    assert v("syncd_replication_lag_seconds", shop) == 1.5
    assert v("syncd_dead_letters_pending", shop) == 1
    assert v("syncd_reconcile_drift_rows_total", {"mapping": "orders", "kind": "missing"}) == 2
    assert v("syncd_reconcile_drift_rows_total", {"mapping": "orders", "kind": "differ"}) == 1
    # every kind is exported, so alerts on it work before the first drift
    assert v("syncd_reconcile_drift_rows_total", {"mapping": "orders", "kind": "extra"}) == 0
    assert v("syncd_reconcile_repaired_rows_total", {"mapping": "orders"}) == 3
    assert v("syncd_checkpoint_age_seconds", shop) == 2
    assert v("syncd_binlog_retention_headroom_seconds", shop) == 86400
    assert v("syncd_source_up", shop) == 1
    assert v("syncd_source_active", shop) == 1
    paused = {"source": "shop", "mapping": "shop_orders"}
    assert v("syncd_mapping_paused", paused) == 1
    assert v("syncd_mapping_paused_since_seconds", paused) == datetime(
        2026, 11, 22, 8, 0, tzinfo=UTC).timestamp()

    text = generate_latest(m.registry).decode()
    for name in EXPECTED_METRICS:
        # the TYPE line of a counter says name or name_total, by prometheus_client version
        base = name.removesuffix("_total")
        type_line = rf"(?m)^# TYPE ({name}|{base}) (counter|gauge|histogram)$"
        assert re.search(type_line, text), name


def test_source_down_lag_and_batch_without_lag() -> None:
    m = Metrics()
    m.set_source_up("shop", False)
    m.set_replication_lag("shop", -0.2)  # clock skew between servers must not go negative
    m.record_batch("shop", {"orders": 0}, seconds=0.01)
    v = m.registry.get_sample_value
    assert v("syncd_source_up", {"source": "shop"}) == 0
    assert v("syncd_replication_lag_seconds", {"source": "shop"}) == 0
    assert v("syncd_apply_batch_size_sum", {"source": "shop"}) == 0


def test_paused_mappings_read_0_once_resumed() -> None:
    m = Metrics()
    v = m.registry.get_sample_value
    since = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    orders, customers = {"source": "shop", "mapping": "orders"}, {"source": "shop", "mapping": "customers"}
    m.set_paused_mappings({})
    assert v("syncd_mapping_paused", orders) is None  # never paused: no series
    m.set_paused_mappings({("shop", "orders"): since, ("shop", "customers"): since})
    assert v("syncd_mapping_paused", orders) == v("syncd_mapping_paused", customers) == 1
    m.set_paused_mappings({("shop", "customers"): since})
    assert v("syncd_mapping_paused", orders) == 0
    assert v("syncd_mapping_paused_since_seconds", orders) is None
    assert v("syncd_mapping_paused_since_seconds", customers) == since.timestamp()
    m.set_paused_mappings({("shop", "orders"): since + timedelta(hours=1)})  # paused again
    assert v("syncd_mapping_paused", orders) == 1
    assert v("syncd_mapping_paused_since_seconds", orders) == (since + timedelta(hours=1)).timestamp()
    assert v("syncd_mapping_paused", customers) == 0


def test_instances_have_their_own_registries() -> None:
    a, b = Metrics(), Metrics()
    a.record_read("shop", "orders", 5)
    assert a.registry is not b.registry
    assert b.registry.get_sample_value(
        "syncd_changes_read_total", {"source": "shop", "table": "orders"}
    ) is None


def test_health_needs_every_source_connected_and_progressing() -> None:
    h = Health()
    ok, sources = h.healthy()
    assert (ok, sources) == (False, {})  # nothing reported yet: still starting

    h.set_source("shop", connected=True, progressing=True)
    h.set_source("crm", connected=True, progressing=True)
    ok, sources = h.healthy()
    assert ok
    assert sources["shop"]["healthy"] and sources["crm"]["healthy"]

    h.set_source("crm", connected=True, progressing=False, detail="no event for 300 s")
    ok, sources = h.healthy()
    assert not ok
    assert sources["crm"] == {
        "healthy": False, "connected": True, "progressing": False, "standby": False,
        "detail": "no event for 300 s", "paused": [], "updated_at": sources["crm"]["updated_at"],
    }
    assert sources["crm"]["updated_at"].endswith("Z")
    assert sources["shop"]["healthy"]

    h.remove_source("crm")
    assert h.healthy()[0]


def test_standby_is_healthy_while_it_keeps_polling() -> None:
    """Another process holds the source: not connected, yet nothing is wrong with this one."""
    h = Health()
    h.set_source("shop", connected=False, progressing=True, detail="standby: db2 pid 7", standby=True)
    ok, sources = h.healthy()
    assert ok and sources["shop"]["standby"] and not sources["shop"]["connected"]
    h.set_source("shop", connected=False, progressing=False, detail="standby", standby=True)
    assert not h.healthy()[0]  # a standby that stopped polling is hung
    h.set_source("shop", connected=False, progressing=True, detail="failed: binlog purged")
    assert not h.healthy()[0]


def test_headroom_can_be_unlimited() -> None:
    m = Metrics()
    m.set_binlog_retention_headroom("shop", float("inf"))
    assert m.registry.get_sample_value("syncd_binlog_retention_headroom_seconds",
                                       {"source": "shop"}) == float("inf")
    assert 'syncd_binlog_retention_headroom_seconds{source="shop"} +Inf' in generate_latest(
        m.registry).decode()


@pytest.fixture
def running() -> Iterator[tuple[Metrics, Health, Server]]:
    metrics, health = Metrics(), Health()
    server = serve(metrics, health, "127.0.0.1", 0)
    try:
        yield metrics, health, server
    finally:
        server.close()


def get(server: Server, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def test_metrics_endpoint(running: tuple[Metrics, Health, Server]) -> None:
    metrics, _, server = running
    assert server.port > 0
    fill(metrics)
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    for name in EXPECTED_METRICS:
        assert name in text
    assert 'syncd_changes_read_total{source="shop",table="orders"} 3.0' in text
    assert get(server, "/metrics?name[]=x")[0] == 200


def test_healthz_transitions(running: tuple[Metrics, Health, Server]) -> None:
    _, health, server = running

    status, headers, body = get(server, "/healthz")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "unavailable", "sources": {}}

    health.set_source("shop", connected=True, progressing=True)
    status, _, body = get(server, "/healthz")
    assert status == 200
    doc = json.loads(body)
    assert doc["status"] == "ok"
    assert doc["sources"]["shop"]["healthy"] is True

    health.set_source("shop", connected=False, progressing=False, detail="connection refused")
    status, _, body = get(server, "/healthz")
    assert status == 503
    doc = json.loads(body)
    assert doc["status"] == "unavailable"
    assert doc["sources"]["shop"]["detail"] == "connection refused"
    assert doc["sources"]["shop"]["connected"] is False

    health.set_source("shop", connected=True, progressing=True)
    assert get(server, "/healthz")[0] == 200


def test_unknown_paths_and_methods(running: tuple[Metrics, Health, Server]) -> None:
    _, _, server = running
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/extra")[0] == 404
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        status, headers, _ = get(server, "/metrics", method=method)
        assert status == 405, method
        assert headers["Allow"] == "GET"


def test_close_releases_the_port() -> None:
    server = serve(Metrics(), Health(), "127.0.0.1", 0)
    port = server.port
    server.close()
    server.close()  # twice is fine
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_serves_on_ipv6() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server = serve(Metrics(), Health(), "::1", 0)
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.port}/metrics", timeout=5) as resp:
            assert resp.status == 200
    finally:
        server.close()


def closed_by_peer(conn: socket.socket) -> bool:
    """True once the other end closed the connection (a timeout raises: still open)."""
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def test_idle_connections_are_closed_and_cost_no_thread() -> None:
    """40 connections opened and left silent: /healthz is still answered at once, at most WORKERS
    threads serve, and after the idle timeout the server has closed every one of them."""
    server = serve(Metrics(), Health(), "127.0.0.1", 0, idle_timeout=1.0)
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(40)]
    try:
        began = time.monotonic()
        assert get(server, "/healthz")[0] == 503  # answered (no source yet)
        assert time.monotonic() - began < 1.0
        workers = [t for t in threading.enumerate() if t.name.startswith("syncd-metrics")]
        assert len(workers) <= WORKERS + 1  # the workers and the accepting thread
        time.sleep(1.6)
        assert all(closed_by_peer(conn) for conn in idle)
        assert get(server, "/healthz")[0] == 503
    finally:
        for conn in idle:
            conn.close()
        server.close()


def test_half_sent_requests_hold_no_worker() -> None:
    """Clients that send part of a request and stall (more of them than WORKERS), beside 80 idle
    ones: /healthz is still answered at once."""
    server = serve(Metrics(), Health(), "127.0.0.1", 0, idle_timeout=5.0)
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(50)]
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(10)]
    try:
        for conn in slow:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        began = time.monotonic()
        assert get(server, "/healthz")[0] == 503
        assert time.monotonic() - began < 1.0
    finally:
        for conn in idle + slow:
            conn.close()
        server.close()


def test_a_connection_evicted_in_the_round_its_request_arrives_is_skipped() -> None:
    """select() reports a waiting connection and the listening socket at once; the accept evicts
    that connection (MAX_OPEN reached): its event, handled next, is skipped, not an error that
    would end the server's thread."""
    server = _HTTPServer(("127.0.0.1", 0), Metrics(), Health())
    client = socket.create_connection(server.server_address, timeout=5)
    try:
        with selectors.DefaultSelector() as selector:
            conn, address = server.socket.accept()
            server._waiting[conn] = (time.monotonic(), bytearray())
            key = selector.register(conn, selectors.EVENT_READ, address)
            client.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            server._drop(selector, conn)  # what an accept of the same round does to the oldest
            server._event(selector, key)  # raised ValueError (a closed socket) before
            assert not server._waiting
    finally:
        client.close()
        server.server_close()
