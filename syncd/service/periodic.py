"""Reconciliation inside `syncd run`, every `reconcile.interval`, on a thread of its own.

It must not run on a pipeline thread: with repair on, its repairs are queued for the very
pipelines of this process, and its re-checks wait for their checkpoints.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from syncd.config import Config
from syncd.errors import SyncdError
from syncd.mapping.load import SourcePlan
from syncd.reconcile.engine import reconcile
from syncd.reconcile.report import MappingReport
from syncd.service.metrics import Metrics

log = structlog.get_logger("syncd.reconcile")


class PeriodicReconcile:
    """Reconciles the sources this process streams; records drift and repairs as metrics."""

    def __init__(self, config: Config, plans: Callable[[], dict[str, SourcePlan]],
                 active: Callable[[str], bool], metrics: Metrics, stop: threading.Event) -> None:
        self.config = config
        self.plans = plans
        self.active = active
        self.metrics = metrics
        self.stop = stop
        self.thread = threading.Thread(target=self._run, name="reconcile", daemon=True)

    def start(self) -> None:
        if self.config.reconcile.interval_s:
            self._declare_drift()
            self.thread.start()

    def _declare_drift(self) -> None:
        """Every mapping's drift series at 0 before the first run: a series that is born with
        its first drift already counted would be invisible to `increase()` in alert rules."""
        for plan in self.plans().values():
            for mapping in plan.mappings:
                self.metrics.record_drift(mapping.name)

    def _run(self) -> None:
        settings = self.config.reconcile
        assert settings.interval_s is not None
        while not self.stop.wait(settings.interval_s):
            active = [name for name, plan in self.plans().items() if plan.mappings and self.active(name)]
            if active:
                self._pass(active)

    def _pass(self, sources: list[str]) -> None:
        """One run over every source this process streams, so that an identity space fed by
        several of them is checked once per interval, not once per source."""
        settings = self.config.reconcile
        try:
            reports = reconcile(self.config, self.plans(), sources=sources, repair=settings.repair,
                                chunk_rows=settings.chunk_rows, pause_s=settings.pause_s, stop=self.stop)
        except SyncdError as exc:
            log.error("reconcile_failed", sources=sources, error=str(exc))
            return
        for report in reports:
            self._record(report)

    def _record(self, report: MappingReport) -> None:
        self.metrics.record_drift(report.mapping, missing=report.missing, extra=report.extra,
                                  differ=report.differ)
        if report.repaired:
            self.metrics.record_repaired(report.mapping, report.repaired)
        event = log.warning if report.status == "drift" else log.info
        event("reconcile_finished", source=report.source, mapping=report.mapping, status=report.status,
              rows_compared=report.rows_compared, missing=report.missing, extra=report.extra,
              differ=report.differ, repaired=report.repaired)
