"""Reads syncd's state tables periodically for the metrics, /healthz and STATUS=: dead letters
pending, paused mappings, checkpoint age. Read from the state schema, they are the same on every
host of an HA pair."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import structlog

from syncd.config import Config
from syncd.model import Checkpoint
from syncd.service.metrics import Metrics
from syncd.service.status import paused_entry
from syncd.sink.connection import connect
from syncd.sink.lock import read_health
from syncd.sink.state import pending_dead_letters, read_checkpoint, read_pauses

log = structlog.get_logger("syncd.service.monitor")


STATE_POLL_S = 10.0
"""How often dead letters pending, paused mappings and checkpoints are read from the state schema."""


class StateMonitor:
    """Reads the state schema every STATE_POLL_S on its own thread and connection: dead letters
    pending and paused mappings (metrics) and checkpoints (checkpoint age; lets a failed source
    notice a snapshot)."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.stop = threading.Event()
        self._checkpoints: dict[str, Checkpoint] = {}
        self._paused: dict[str, list[dict[str, Any]]] = {}
        self._thread = threading.Thread(target=self._run, name="state-monitor", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(5)

    def checkpoint(self, source: str) -> Checkpoint | None:
        return self._checkpoints.get(source)

    def paused(self, source: str) -> list[dict[str, Any]]:
        """The source's paused mappings as last read (status.paused_entry each)."""
        return self._paused.get(source, [])

    def _run(self) -> None:
        conn = None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = connect(self.config.target, "syncd:monitor")
                self._poll(conn)
                if self._failing:
                    log.info("state_poll_recovered")
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    log.warning("state_poll_failed", error=str(exc))
                self._failing = True
                if conn is not None:
                    conn.close()
                conn = None
            if self.stop.wait(STATE_POLL_S):
                break
        if conn is not None:
            conn.close()

    def _poll(self, conn) -> None:
        schema = self.config.target.state_schema
        pending = pending_dead_letters(conn, schema)
        pauses = [p for p in read_pauses(conn, schema) if p.source in self.config.sources]
        self.metrics.set_paused_mappings({(p.source, p.mapping): p.paused_at for p in pauses})
        for name in self.config.sources:
            self.metrics.set_dead_letters_pending(name, pending.get(name, 0))
            checkpoint = read_checkpoint(conn, schema, name)
            if checkpoint is None:
                self._checkpoints.pop(name, None)
            else:
                self._checkpoints[name] = checkpoint
        self._paused = self._entries(pauses, read_health(conn, schema))

    def _entries(self, pauses: list, health: dict) -> dict[str, list[dict[str, Any]]]:
        now = datetime.now(UTC)
        return {name: [paused_entry(p, self._checkpoints.get(name), health.get(name), now)
                       for p in pauses if p.source == name] for name in self.config.sources}
