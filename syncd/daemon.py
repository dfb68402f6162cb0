"""`syncd run`: one supervised pipeline thread per source, signals, reload, notify, metrics.

A source whose connection drops is retried with capped exponential backoff (tenacity) and
resumes from its checkpoint; a source that cannot go on (purged binlog, wrong server setting,
a stream it refuses to guess about) stops with an error while the other sources continue.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

import structlog
import tenacity

from syncd.config import Config
from syncd.errors import ConfigError, SyncdError
from syncd.metrics import Health, Metrics, parse_listen, serve
from syncd.notify import Notifier, Watchdog, watchdog_interval
from syncd.pipeline import Pipeline
from syncd.sink.postgres import Batch, connect
from syncd.sink.state import create_state_schema
from syncd.source import checks
from syncd.startup import SourcePlan, build_plans, check_source_tables

log = structlog.get_logger("syncd.daemon")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 78
_STALL_SECONDS = 60.0


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, SyncdError) and exc.retriable


@dataclass
class RunnerState:
    phase: str = "starting"
    error: str | None = None


class SourceRunner:
    """Keeps one source's pipeline running until told to stop or it fails for good."""

    def __init__(self, plan: SourcePlan, config: Config, metrics: Metrics) -> None:
        self.plan = plan
        self.config = config
        self.metrics = metrics
        self.stop = threading.Event()
        self.state = RunnerState()
        self.pipeline: Pipeline | None = None
        self.log = log.bind(source=plan.source.name)
        self.thread = threading.Thread(target=self._run, name=f"source-{plan.source.name}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_retriable),
            wait=tenacity.wait_exponential(multiplier=0.5, max=self.config.retry_max_s),
            stop=tenacity.stop_when_event_set(self.stop),
            sleep=self.stop.wait,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            retrying(self._attempt)
            self.state.phase = "stopped"
        except SyncdError as exc:
            self.state = RunnerState("failed", str(exc))
            self.log.error("source_failed", error=str(exc), error_type=type(exc).__name__)
        except Exception as exc:  # a bug: report it with its traceback, keep other sources going
            self.state = RunnerState("failed", repr(exc))
            self.log.exception("source_crashed")
        finally:
            self.metrics.set_source_up(self.plan.source.name, False)

    def _before_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0
        self.state = RunnerState("retrying", str(exc))
        self.metrics.set_source_up(self.plan.source.name, False)
        self.log.warning("source_retry", attempt=retry_state.attempt_number, error=str(exc),
                         wait_seconds=round(wait, 1))

    def _attempt(self) -> None:
        if self.stop.is_set():
            return
        source = self.plan.source
        checks.check_source(source)
        specs = [m.spec for m in self.plan.mappings]
        problems = check_source_tables(source, specs)
        if problems:
            raise ConfigError(problems)
        self.pipeline = Pipeline(self.plan, self.config.target, self.config.batch, self.stop,
                                 on_batch=self._on_batch)
        self.state = RunnerState("running")
        self.metrics.set_source_up(source.name, True)
        self.pipeline.run()

    def _on_batch(self, source: str, batch: Batch, seconds: float) -> None:
        lag = None
        if batch.checkpoint is not None and batch.checkpoint.last_event_time is not None:
            lag = time.time() - batch.checkpoint.last_event_time.timestamp()
        self.metrics.record_batch(source, dict(batch.changes_by_table), seconds, lag)
        for table, count in batch.changes_by_table.items():
            self.metrics.record_read(source, table, count)
        letters = len(batch.dead_letters)
        if letters:
            self.metrics.record_dead_letter(source, "*", letters)

    def alive(self) -> bool:
        """False when the pipeline is stuck: no event, heartbeat or commit for a long time."""
        if not self.thread.is_alive():
            return self.state.phase in {"stopped", "failed"}
        pipeline = self.pipeline
        if pipeline is None or self.state.phase != "running" or not pipeline.progress.connected:
            return True
        quiet = time.monotonic() - pipeline.progress.last_activity
        return quiet < max(_STALL_SECONDS, self.plan.source.heartbeat_s * 6)

    def summary(self) -> str:
        progress = self.pipeline.progress if self.pipeline else None
        if self.state.phase == "running" and progress and progress.lag_seconds is not None:
            return f"{self.plan.source.name}: lag {progress.lag_seconds:.1f}s"
        return f"{self.plan.source.name}: {self.state.phase}"


class Daemon:
    """Owns the runners and the process: signals, reload, readiness, watchdog, metrics."""

    def __init__(self, config: Config, plans: dict[str, SourcePlan],
                 notifier: Notifier | None = None) -> None:
        self.config = config
        self.plans = plans
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.health = Health()
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.runners: list[SourceRunner] = []
        self._signals = 0

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            # Only committed work is ever checkpointed, so leaving now loses nothing.
            os._exit(EXIT_OK)
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self.stop.set()

    def run(self) -> int:
        self._prepare_target()
        server = self._serve_metrics()
        self._start_runners(self.plans)
        watchdog = self._start_watchdog()
        try:
            self._main_loop()
        finally:
            self.notifier.stopping()
            self._stop_runners()
            if watchdog is not None:
                watchdog.stop()
            if server is not None:
                server.close()
        failed = [r for r in self.runners if r.state.phase == "failed"]
        log.info("stopped", failed_sources=[r.plan.source.name for r in failed])
        return EXIT_FAILED if failed and len(failed) == len(self.runners) else EXIT_OK

    def _prepare_target(self) -> None:
        conn = connect(self.config.target, "syncd:setup")
        try:
            create_state_schema(conn, self.config.target.state_schema)
        finally:
            conn.close()

    def _serve_metrics(self):
        if not self.config.metrics_listen:
            return None
        host, port = parse_listen(self.config.metrics_listen)
        server = serve(self.metrics, self.health, host, port)
        log.info("metrics_listening", address=f"{host}:{server.port}")
        return server

    def _start_runners(self, plans: dict[str, SourcePlan]) -> None:
        self.runners = [SourceRunner(plan, self.config, self.metrics) for plan in plans.values()
                        if plan.mappings]
        for runner in self.runners:
            runner.start()
        log.info("started", sources=[r.plan.source.name for r in self.runners])

    def _stop_runners(self) -> None:
        for runner in self.runners:
            runner.stop.set()
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        for runner in self.runners:
            runner.thread.join(max(0.0, deadline - time.monotonic()))

    def _start_watchdog(self) -> Watchdog | None:
        interval = watchdog_interval()
        if interval is None:
            return None
        watchdog = Watchdog(self.notifier, interval, lambda: all(r.alive() for r in self.runners))
        watchdog.start()
        return watchdog

    def _main_loop(self) -> None:
        ready = False
        while not self.stop.wait(1.0):
            if self.runners and not any(r.thread.is_alive() for r in self.runners):
                log.error("all_sources_stopped")
                return
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            self._update_health()
            if not ready and all(r.state.phase != "starting" for r in self.runners):
                ready = True
                self.notifier.ready(status=self._status_line())
            elif ready:
                self.notifier.status(self._status_line())

    def _status_line(self) -> str:
        return "; ".join(r.summary() for r in self.runners) or "no sources"

    def _update_health(self) -> None:
        for runner in self.runners:
            name = runner.plan.source.name
            progress = runner.pipeline.progress if runner.pipeline else None
            connected = bool(progress and progress.connected)
            self.health.set_source(name, connected, runner.alive(), runner.state.error or "")
            if progress and progress.lag_seconds is not None:
                self.metrics.set_replication_lag(name, progress.lag_seconds)

    def _reload(self) -> None:
        """Re-read mappings; switch only if the new set is valid, else keep the old one."""
        self.notifier.reloading()
        try:
            plans = build_plans(self.config)
        except SyncdError as exc:
            log.error("reload_rejected", errors=str(exc))
            self.notifier.ready(status=self._status_line())
            return
        self._stop_runners()
        self._start_runners(plans)
        log.info("reloaded", mappings=sum(len(p.mappings) for p in plans.values()))
        self.notifier.ready(status=self._status_line())
