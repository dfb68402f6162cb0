"""Prometheus metrics and the ``/healthz`` endpoint, served over plain HTTP.

Every metric lives on the `Metrics` object's own `CollectorRegistry` (never the global
default one), so several instances, e.g. one per test, do not collide.

Exposed metrics (label names in braces)::

    syncd_changes_read_total{source,table}          row changes read from the binlog
    syncd_changes_applied_total{source,table}       row changes committed to PostgreSQL
    syncd_dead_letters_total{source,table}          row changes turned into dead letters
    syncd_apply_batch_size{source}                  histogram: rows per target transaction
    syncd_apply_latency_seconds{source}             histogram: time to apply one batch
    syncd_replication_lag_seconds{source}           source commit -> target commit, last batch; growing
                                                    while taken changes wait for their commit
    syncd_dead_letters_pending{source}              dead letters not yet resolved
    syncd_reconcile_drift_rows_total{mapping,kind}  kind = missing | extra | differ
    syncd_reconcile_repaired_rows_total{mapping}    rows repaired by reconcile
    syncd_checkpoint_age_seconds{source}            now - commit time of the checkpoint
    syncd_binlog_retention_headroom_seconds{source} time until the checkpoint's binlog may
                                                    be purged by the server
    syncd_source_up{source}                         1 while connected to the source, else 0
    syncd_source_active{source}                     1 while this process holds the source's
                                                    lock (0: standby, another process has it)
    syncd_mapping_paused{source,mapping}            1 from a source schema change that paused
                                                    the mapping until it has caught up after
                                                    the fix, then 0
    syncd_mapping_paused_since_seconds{source,mapping}  Unix time it was paused at (paused only)

Retention headroom is +Inf when the server never purges binlogs by itself and NaN while unknown.
In a high-availability pair only the active process has ``source_up`` 1: alert on
``max by (source) (syncd_source_up) == 0`` across both. Dead letters pending and paused mappings
come from the state schema, so every process of the pair reports the same values.
The alert rules and the Grafana dashboard built on these metrics are in ``monitoring/``.

The HTTP server answers ``GET /metrics`` (Prometheus text format) and ``GET /healthz``
(JSON; 200 when every source is connected and progressing, or on standby because another
process holds it; otherwise 503). Per source /healthz says why in one line (``detail``) and lists
its paused mappings (``paused``: mapping, position, reason, paused_at, binlog_kept), which do not
make it unhealthy: the source streams on, and ``syncd_mapping_paused`` alerts. Idle connections
are closed after IDLE_TIMEOUT_S and at most WORKERS threads answer (`_HTTPServer`).
"""

from __future__ import annotations

import io
import json
import selectors
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = structlog.get_logger("syncd.service.metrics")

_BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)
_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """All of syncd's metrics, with one method per thing the daemon records."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.changes_read = Counter(
            "syncd_changes_read", "Row changes read from the source binlog.",
            ["source", "table"], registry=r,
        )
        self.changes_applied = Counter(
            "syncd_changes_applied", "Row changes committed to the target.",
            ["source", "table"], registry=r,
        )
        self.dead_letters = Counter(
            "syncd_dead_letters", "Row changes that became dead letters.",
            ["source", "table"], registry=r,
        )
        self.apply_batch_size = Histogram(
            "syncd_apply_batch_size", "Row changes per target transaction.",
            ["source"], buckets=_BATCH_SIZE_BUCKETS, registry=r,
        )
        self.apply_latency = Histogram(
            "syncd_apply_latency_seconds", "Seconds to apply and commit one batch.",
            ["source"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.replication_lag = Gauge(
            "syncd_replication_lag_seconds",
            "Seconds from source commit to target commit, for the last batch.",
            ["source"], registry=r,
        )
        self.dead_letters_pending = Gauge(
            "syncd_dead_letters_pending", "Dead letters not yet resolved.",
            ["source"], registry=r,
        )
        self.reconcile_drift_rows = Counter(
            "syncd_reconcile_drift_rows", "Rows found different by reconcile.",
            ["mapping", "kind"], registry=r,
        )
        self.reconcile_repaired_rows = Counter(
            "syncd_reconcile_repaired_rows", "Rows repaired by reconcile.",
            ["mapping"], registry=r,
        )
        self.checkpoint_age = Gauge(
            "syncd_checkpoint_age_seconds",
            "Seconds since the source commit the checkpoint points after.",
            ["source"], registry=r,
        )
        self.binlog_retention_headroom = Gauge(
            "syncd_binlog_retention_headroom_seconds",
            "Seconds left before the source may purge the binlog the checkpoint needs.",
            ["source"], registry=r,
        )
        self.source_up = Gauge(
            "syncd_source_up", "1 while connected to the source, 0 otherwise.",
            ["source"], registry=r,
        )
        self.source_active = Gauge(
            "syncd_source_active",
            "1 while this process holds the source's lock, 0 on standby.",
            ["source"], registry=r,
        )
        self.mapping_paused = Gauge(
            "syncd_mapping_paused",
            "1 while a source schema change keeps the mapping paused (until it caught up), else 0.",
            ["source", "mapping"], registry=r,
        )
        self.mapping_paused_since = Gauge(
            "syncd_mapping_paused_since_seconds",
            "Unix time the mapping was paused at (only while paused).",
            ["source", "mapping"], registry=r,
        )
        self._paused: set[tuple[str, str]] = set()

    # -- pipeline ---------------------------------------------------------------------

    def record_read(self, source: str, table: str, count: int = 1) -> None:
        """``count`` row changes of ``table`` were read from the binlog."""
        self.changes_read.labels(source=source, table=table).inc(count)

    def record_batch(
        self,
        source: str,
        rows_by_table: dict[str, int],
        seconds: float,
        lag_seconds: float | None = None,
    ) -> None:
        """One target transaction committed: rows per table, its duration, and the lag
        from the last source commit in it to now (None if unknown)."""
        for table, rows in rows_by_table.items():
            if rows:
                self.changes_applied.labels(source=source, table=table).inc(rows)
        self.apply_batch_size.labels(source=source).observe(sum(rows_by_table.values()))
        self.apply_latency.labels(source=source).observe(seconds)
        if lag_seconds is not None:
            self.set_replication_lag(source, lag_seconds)

    def set_replication_lag(self, source: str, seconds: float) -> None:
        """Lag when there was nothing to apply (e.g. after a heartbeat); clamped at 0."""
        self.replication_lag.labels(source=source).set(max(0.0, seconds))

    def record_dead_letter(self, source: str, table: str, count: int = 1) -> None:
        """``count`` row changes of ``table`` became dead letters."""
        self.dead_letters.labels(source=source, table=table).inc(count)

    def set_dead_letters_pending(self, source: str, count: int) -> None:
        """Dead letters of ``source`` still unresolved in the state schema."""
        self.dead_letters_pending.labels(source=source).set(count)

    def set_checkpoint_age(self, source: str, seconds: float) -> None:
        """Now minus the source commit time of the checkpoint."""
        self.checkpoint_age.labels(source=source).set(max(0.0, seconds))

    def set_binlog_retention_headroom(self, source: str, seconds: float) -> None:
        """Time left before the checkpoint's binlog may be purged (negative: overdue)."""
        self.binlog_retention_headroom.labels(source=source).set(seconds)

    def set_source_up(self, source: str, up: bool) -> None:
        """Whether the binlog connection to ``source`` is established."""
        self.source_up.labels(source=source).set(1 if up else 0)

    def set_source_active(self, source: str, active: bool) -> None:
        """Whether this process holds ``source``'s lock (False: standby)."""
        self.source_active.labels(source=source).set(1 if active else 0)

    def set_paused_mappings(self, paused: Mapping[tuple[str, str], datetime]) -> None:
        """Every mapping now paused, (source, mapping) -> when it was paused. A mapping paused
        before and no longer listed has resumed: it reads 0 and loses its since."""
        for source, mapping in self._paused - paused.keys():
            self.mapping_paused.labels(source=source, mapping=mapping).set(0)
            self.mapping_paused_since.remove(source, mapping)
        for (source, mapping), since in paused.items():
            self.mapping_paused.labels(source=source, mapping=mapping).set(1)
            self.mapping_paused_since.labels(source=source, mapping=mapping).set(since.timestamp())
        self._paused = set(paused)

    # -- reconcile --------------------------------------------------------------------

    def record_drift(
        self, mapping: str, missing: int = 0, extra: int = 0, differ: int = 0
    ) -> None:
        """Rows reconcile found missing from / extra in / different in the target."""
        for kind, rows in (("missing", missing), ("extra", extra), ("differ", differ)):
            child = self.reconcile_drift_rows.labels(mapping=mapping, kind=kind)
            if rows:
                child.inc(rows)

    def record_repaired(self, mapping: str, rows: int) -> None:
        """Rows reconcile repaired through the sink."""
        self.reconcile_repaired_rows.labels(mapping=mapping).inc(rows)


@dataclass(frozen=True)
class _SourceHealth:
    connected: bool
    progressing: bool
    detail: str
    updated_at: datetime
    standby: bool = False
    paused: tuple[dict[str, Any], ...] = ()


class Health:
    """What ``/healthz`` reports: every source connected and progressing (or on standby:
    another process holds it, which is healthy for this one as long as it keeps polling).

    Thread-safe: pipeline threads call `set_source`, HTTP threads call `healthy`.
    With no source reported yet (start-up) the service is *not* healthy.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, _SourceHealth] = {}

    def set_source(
        self, source: str, connected: bool, progressing: bool, detail: str = "",
        standby: bool = False, *, paused: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record the state of one source's pipeline (replaces the previous one): `detail` is
        one line, `paused` its paused mappings (shown, not judged: the source still streams)."""
        state = _SourceHealth(connected, progressing, detail, datetime.now(UTC), standby,
                              tuple(paused or ()))
        with self._lock:
            self._sources[source] = state

    def remove_source(self, source: str) -> None:
        """Forget a source (e.g. dropped from the config on reload)."""
        with self._lock:
            self._sources.pop(source, None)

    def healthy(self) -> tuple[bool, dict[str, dict]]:
        """(all sources healthy, per-source detail dict)."""
        with self._lock:
            sources = dict(self._sources)
        report: dict[str, dict[str, Any]] = {}
        for name, state in sorted(sources.items()):
            report[name] = {
                "healthy": (state.standby or state.connected) and state.progressing,
                "connected": state.connected,
                "progressing": state.progressing,
                "standby": state.standby,
                "detail": state.detail,
                "paused": list(state.paused),
                "updated_at": state.updated_at.isoformat().replace("+00:00", "Z"),
            }
        ok = bool(report) and all(entry["healthy"] for entry in report.values())
        return ok, report


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "syncd"
    sys_version = ""

    def setup(self) -> None:
        """The request was read by the server's selector: it is read from there, not the socket."""
        super().setup()
        self.rfile = io.BytesIO(self.server.take_request(self.connection))

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            body = generate_latest(self.server.metrics.registry)
            self._reply(200, CONTENT_TYPE_LATEST, body)
        elif path == "/healthz":
            ok, sources = self.server.health.healthy()
            payload = {"status": "ok" if ok else "unavailable", "sources": sources}
            body = (json.dumps(payload, sort_keys=True) + "\n").encode()
            self._reply(200 if ok else 503, "application/json", body)
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found\n")

    def _not_allowed(self) -> None:
        self._reply(405, "text/plain; charset=utf-8", b"method not allowed\n", {"Allow": "GET"})

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    def _reply(
        self, code: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: scrapes every few seconds would drown the journal."""


IDLE_TIMEOUT_S = 10.0
"""A connection that sends no request this long after it was opened, or stalls this long while
sending or reading one, is closed."""
WORKERS = 4
"""Requests answered at once (a scrape takes milliseconds): the server's threads, never more."""
MAX_OPEN = 64
"""Connections held at most while they wait for their request or a worker; beyond, the one
waiting longest is closed."""
MAX_REQUEST_BYTES = 16 << 10
"""A request (line and headers: only GETs are answered) longer than this is closed unanswered."""


class _HTTPServer(HTTPServer):
    """Serves /metrics and /healthz with bounded resources (`serve_until`, on one thread).

    An accepted connection waits in a selector, costing no thread, until its whole request (line
    and headers) has arrived, read as it comes without blocking; then one of WORKERS threads
    answers it, with IDLE_TIMEOUT_S on every write. So connections opened and left idle, or a
    client sending its request slowly, are closed after the timeout and can neither pile up
    threads nor hold a worker: /healthz stays answerable. An error handling one connection
    closes that connection, never the server.
    """

    def __init__(self, address: tuple[str, int], metrics: Metrics, health: Health,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self.request_queue_size = MAX_OPEN  # the listen backlog (socketserver's default: 5)
        self.metrics = metrics
        self.health = health
        self.idle_timeout = idle_timeout
        self._workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="syncd-metrics")
        self._waiting: dict[socket.socket, tuple[float, bytearray]] = {}
        """Accepted connections without their whole request yet -> (when accepted, what came)."""
        self._requests: dict[socket.socket, bytes] = {}
        """Connections handed to a worker -> their request, read by `_Handler.setup`."""
        self._busy = 0
        self._busy_lock = threading.Lock()
        super().__init__(address, _Handler)

    def serve_until(self, stop: threading.Event) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            while not stop.is_set():
                for key, _ in selector.select(0.25):
                    self._event(selector, key)
                self._expire(selector)
            for conn in list(self._waiting):
                self._drop(selector, conn)
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _event(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        try:
            if key.fileobj is self.socket:
                self._accept(selector)
            elif key.fileobj in self._waiting:  # not dropped by an accept of the same round
                self._receive(selector, key.fileobj, key.data)
        except Exception as exc:  # a bug with one connection: that one is closed, the server serves on
            log.warning("metrics_connection_failed", error=repr(exc))
            if key.fileobj is not self.socket and key.fileobj in self._waiting:
                self._drop(selector, key.fileobj)

    def _accept(self, selector: selectors.BaseSelector) -> None:
        try:
            conn, address = self.socket.accept()
        except OSError:  # the client gave up first
            return
        if len(self._waiting) + self._busy >= MAX_OPEN and self._waiting:
            self._drop(selector, next(iter(self._waiting)))
        conn.setblocking(False)
        self._waiting[conn] = (time.monotonic(), bytearray())
        selector.register(conn, selectors.EVENT_READ, address)

    def _receive(self, selector: selectors.BaseSelector, conn: socket.socket, address: Any) -> None:
        """More of its request: once whole, hand it to a worker (or close it when MAX_OPEN are
        being answered); closed when the client closes, errs or sends too much."""
        try:
            data = conn.recv(MAX_REQUEST_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        received = self._waiting[conn][1]
        received += data
        if not data or len(received) > MAX_REQUEST_BYTES:
            self._drop(selector, conn)
        elif b"\r\n\r\n" in received or b"\n\n" in received:
            selector.unregister(conn)
            self._waiting.pop(conn)
            self._dispatch(conn, address, bytes(received))

    def _dispatch(self, conn: socket.socket, address: Any, request: bytes) -> None:
        with self._busy_lock:
            full = self._busy >= MAX_OPEN
            self._busy += 0 if full else 1
        if full:
            self.shutdown_request(conn)
            return
        self._requests[conn] = request
        self._workers.submit(self._answer, conn, address)

    def take_request(self, conn: socket.socket) -> bytes:
        return self._requests.pop(conn, b"")

    def _answer(self, conn: socket.socket, address: Any) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(self.idle_timeout)
            self.finish_request(conn, address)
        except OSError:  # the client's broken connection, or its timeout: nothing to report
            pass
        except Exception as exc:  # a bug answering: one line in the journal, no traceback
            log.warning("metrics_request_failed", error=repr(exc))
        finally:
            self._requests.pop(conn, None)
            self.shutdown_request(conn)
            with self._busy_lock:
                self._busy -= 1

    def _expire(self, selector: selectors.BaseSelector) -> None:
        cutoff = time.monotonic() - self.idle_timeout
        for conn in [c for c, (since, _) in self._waiting.items() if since < cutoff]:
            self._drop(selector, conn)

    def _drop(self, selector: selectors.BaseSelector, conn: socket.socket) -> None:
        selector.unregister(conn)
        self._waiting.pop(conn, None)
        self.shutdown_request(conn)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class Server:
    """A running metrics/health HTTP server; `close()` stops it."""

    def __init__(self, httpd: _HTTPServer) -> None:
        self._httpd = httpd
        self.host: str = httpd.server_address[0]
        self.port: int = httpd.server_address[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=httpd.serve_until, args=(self._stop,),
                                        name="syncd-metrics-http", daemon=True)
        self._thread.start()
        self._closed = False

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(5)
        self._httpd.server_close()


def serve(metrics: Metrics, health: Health, host: str, port: int,
          idle_timeout: float = IDLE_TIMEOUT_S) -> Server:
    """Serve ``/metrics`` and ``/healthz`` on host:port (port 0 picks a free port, see
    ``Server.port``) from a daemon thread. Raises OSError if the address cannot be bound."""
    server_class = _HTTPServer6 if ":" in host else _HTTPServer
    return Server(server_class((host, port), metrics, health, idle_timeout))
