"""`syncd run`: the process around the per-source runners (syncd/service/runner.py).

SIGTERM/SIGINT stop reading, commit the open batch with its checkpoint and exit 0 within
``shutdown_timeout``; a second one exits at once (only committed work is ever checkpointed, so
nothing is lost). SIGHUP re-reads the mapping files and switches only if they are valid.
systemd hears READY=1 once every source streams (or has settled otherwise), RELOADING=1/READY=1
around a reload, STOPPING=1, STATUS= lines, and WATCHDOG=1 only while every pipeline shows signs
of life. Metrics and /healthz are served when `metrics.listen` is set; `reconcile.interval`
runs reconciliation on its own thread.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from types import FrameType

import structlog

from syncd.config import Config, load_config, parse_listen
from syncd.errors import ConfigError, SyncdError
from syncd.mapping.load import SourcePlan
from syncd.observability import one_line
from syncd.service.metrics import Health, Metrics, Server, serve
from syncd.service.monitor import StateMonitor
from syncd.service.notify import Notifier, Watchdog, watchdog_interval
from syncd.service.periodic import PeriodicReconcile
from syncd.service.runner import SourceRunner, phase_text
from syncd.service.startup import build_plans
from syncd.service.status import pause_brief, pause_clause
from syncd.sink.connection import connect
from syncd.sink.lock import create_health_table
from syncd.sink.state import create_state_schema, trim_letters
from syncd.source.checks import check_source_tables

log = structlog.get_logger("syncd.service.daemon")


EXIT_OK = 0
EXIT_FAILED = 2
"""Could not start (the metrics address cannot be bound): the exit code of every command that
cannot do its job (docs/operations.md, exit codes)."""

READY_EXTEND_S = 30.0
"""While sources are still starting (e.g. a long initial copy), ask systemd for this much more
time, every third of it, as long as they show signs of life."""


class Daemon:
    """Owns the runners and the process: signals, reload, readiness, watchdog, metrics."""

    def __init__(self, config: Config, plans: dict[str, SourcePlan],
                 notifier: Notifier | None = None) -> None:
        self.config = config
        self.plans = plans
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.health = Health()
        self.monitor = StateMonitor(config, self.metrics)
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.runners: dict[str, SourceRunner] = {}
        self._streamed: dict[str, set[str]] = {}
        """Per source, the mappings its runners fed last (SourceRunner.streamed)."""
        self._signals = 0
        self._signal_name: str | None = None
        self._loop_beat = time.monotonic()
        self._stalled: set[str] = set()
        self.reconciler = PeriodicReconcile(config, lambda: self.plans, self._streams, self.metrics,
                                            self.stop)

    # -- signals ------------------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only flags here: logging from a signal handler could deadlock on the log's lock.
        self._signals += 1
        if self._signals > 1:
            # Only committed work is ever checkpointed, so leaving now loses nothing.
            os._exit(EXIT_OK)
        self._signal_name = signal.Signals(signum).name
        self.stop.set()

    # -- life ---------------------------------------------------------------------------------

    def run(self) -> int:
        # systemd's watchdog kills with SIGABRT: print every thread's stack first, so the
        # journal shows which call hung (code locations only, never values).
        faulthandler.enable(all_threads=True)
        self._prepare_target()
        try:
            server = self._serve_metrics()
        except (OSError, ValueError) as exc:
            log.error("metrics_listen_failed", address=self.config.metrics_listen, error=str(exc))
            return EXIT_FAILED
        self.monitor.start()
        self._start_runners(self.plans)
        self.reconciler.start()
        watchdog = self._start_watchdog()
        try:
            self._main_loop()
        finally:
            log.info("stopping", signal=self._signal_name)
            self.notifier.stopping()
            leftover = self._stop_runners(list(self.runners.values()))
            if watchdog is not None:
                watchdog.stop()
            self.monitor.close()
            if server is not None:
                server.close()
        failed = sorted(n for n, r in self.runners.items() if r.phase == "failed")
        if leftover:
            log.warning("shutdown_timeout", sources=leftover,
                        timeout_seconds=self.config.shutdown_timeout_s,
                        detail="exiting anyway: their open batches were not committed and will be "
                               "read again from the checkpoint")
            sys.stderr.flush()
            os._exit(EXIT_OK)
        log.info("stopped", failed_sources=failed)
        return EXIT_OK

    def _prepare_target(self) -> None:
        conn = connect(self.config.target, "syncd:setup")
        try:
            create_state_schema(conn, self.config.target.state_schema)
            create_health_table(conn, self.config.target.state_schema)
            kept = {m.name: m.kept for plan in self.plans.values() for m in plan.mappings}
            trimmed = trim_letters(conn, self.config.target.state_schema, kept)
        finally:
            conn.close()
        if trimmed:
            log.info("dead_letters_trimmed", letters=trimmed,
                     detail="older dead letters now keep only what their mapping reads, as it publishes it")

    def _serve_metrics(self) -> Server | None:
        if not self.config.metrics_listen:
            return None
        host, port = parse_listen(self.config.metrics_listen)
        server = serve(self.metrics, self.health, host, port)
        log.info("metrics_listening", address=f"{host}:{server.port}")
        return server

    def _new_runner(self, plan: SourcePlan) -> SourceRunner:
        runner = SourceRunner(plan, self.config, self.metrics, self.monitor,
                              self._streamed.setdefault(plan.source.name, set()))
        runner.metrics.set_source_up(plan.source.name, False)
        runner.start()
        return runner

    def _streams(self, source: str) -> bool:
        runner = self.runners.get(source)
        return runner is not None and runner.streaming()

    def _start_runners(self, plans: dict[str, SourcePlan]) -> None:
        for name, plan in plans.items():
            if plan.mappings:
                self.runners[name] = self._new_runner(plan)
        log.info("started", sources=sorted(self.runners), host=os.uname().nodename, pid=os.getpid())

    def _stop_runners(self, runners: list[SourceRunner]) -> list[str]:
        """Stop runners (their pipelines commit the open batch); names still running after
        shutdown_timeout."""
        for runner in runners:
            runner.halt()
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        for runner in runners:
            runner.thread.join(max(0.0, deadline - time.monotonic()))
        return [r.name for r in runners if r.thread.is_alive()]

    def _start_watchdog(self) -> Watchdog | None:
        interval = watchdog_interval()
        if interval is None:
            return None
        watchdog = Watchdog(self.notifier, interval, self._alive)
        watchdog.start()
        return watchdog

    def _alive(self) -> bool:
        """The watchdog's check: the main loop turns and every source shows signs of life."""
        # A reload may hold the main loop for up to shutdown_timeout (old pipelines finishing).
        limit = max(self.config.alerts.stall_s, self.config.shutdown_timeout_s + 10.0)
        if time.monotonic() - self._loop_beat > limit:
            return False
        return all(r.alive() for r in list(self.runners.values()))

    def _main_loop(self) -> None:
        ready = False
        next_extend = 0.0
        while True:
            self._loop_beat = time.monotonic()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            runners = list(self.runners.values())
            for runner in runners:
                if runner.streaming():
                    runner.settled.set()
            self._update_health(runners)
            status = self._status_line()
            if not ready and all(r.settled.is_set() for r in runners):
                ready = True
                self.notifier.ready(status=status)
                log.info("ready", status=status)
            elif not ready:
                if time.monotonic() >= next_extend and all(r.alive() for r in runners):
                    self.notifier.extend_timeout(READY_EXTEND_S)
                    next_extend = time.monotonic() + READY_EXTEND_S / 3
                self.notifier.status(f"starting: {status}")
            else:
                self.notifier.status(status)
            if self.stop.wait(1.0):
                break
        self._loop_beat = time.monotonic()

    def _status_line(self) -> str:
        return "; ".join(self._summary(r) for r in self.runners.values()) or "no sources"

    def _summary(self, runner: SourceRunner) -> str:
        """The runner's clause, then each of its paused mappings'."""
        return ", ".join([runner.summary(), *(pause_clause(p) for p in self.monitor.paused(runner.name))])

    def _update_health(self, runners: list[SourceRunner]) -> None:
        now = datetime.now(UTC)
        for runner in runners:
            name = runner.name
            alive = runner.alive()
            self._note_stall(runner, alive)
            paused = [pause_brief(entry) for entry in self.monitor.paused(name)]
            if runner.phase == "standby":
                self.health.set_source(name, False, alive, f"standby: {runner.holder or 'held elsewhere'}",
                                       standby=True, paused=paused)
            else:
                self.health.set_source(name, runner.phase == "running", alive and runner.phase != "failed",
                                       one_line(phase_text(runner.phase, runner.state.error)), paused=paused)
            self.metrics.set_source_up(name, runner.phase == "running")
            self.metrics.set_source_active(name, runner.active)
            pipeline = runner.pipeline
            lag = pipeline.progress.current_lag() if pipeline is not None else None
            if lag is not None:
                self.metrics.set_replication_lag(name, lag)
            checkpoint = runner.checkpoint if runner.active else None
            if checkpoint is not None and checkpoint.last_event_time is not None:
                self.metrics.set_checkpoint_age(name, (now - checkpoint.last_event_time).total_seconds())

    def _note_stall(self, runner: SourceRunner, alive: bool) -> None:
        """Log when a source starts and stops looking hung (the watchdog beats stop meanwhile)."""
        if not alive and runner.name not in self._stalled:
            self._stalled.add(runner.name)
            log.warning("source_stalled", source=runner.name, phase=runner.phase,
                        quiet_seconds=round(runner.quiet_seconds(), 1),
                        stall_seconds=runner.stall_limit(), position=runner.position_text(),
                        action="no sign of life: /healthz is 503 and the systemd watchdog stops")
        elif alive and runner.name in self._stalled:
            self._stalled.discard(runner.name)
            log.info("source_unstalled", source=runner.name, phase=runner.phase,
                     position=runner.position_text())

    def _check_config_file(self) -> None:
        """A reload re-reads the mapping files only; say so when config.yaml itself changed, and
        when it no longer loads (the next start, by systemd too, would fail with exit 78)."""
        try:
            now = load_config(self.config.path)
        except ConfigError as exc:
            log.warning("config_invalid", errors=str(exc),
                        action="the running syncd keeps the configuration it started with; fix the "
                               "file before the next start, which would fail")
            return
        if now != self.config:
            log.warning("config_changed", path=str(self.config.path),
                        action="a reload applies mapping files only: restart syncd to apply config.yaml")

    def _reload(self) -> None:
        """Re-read mappings; switch only if the new set is valid, else keep the old one."""
        self.notifier.reloading()
        log.info("reload_requested")
        self._check_config_file()
        try:
            plans = build_plans(self.config)
            self._check_sources(plans)
        except SyncdError as exc:
            log.error("reload_rejected", errors=str(exc), action="kept the mappings in use")
            self.notifier.ready(status=self._status_line())
            return
        except Exception:  # a bug, not a mistake in the files: keep streaming with the old set
            log.exception("reload_failed", action="kept the mappings in use")
            self.notifier.ready(status=self._status_line())
            return
        self._warn_dropped(plans)
        changed = []
        for name in sorted(set(self.runners) | {n for n, p in plans.items() if p.mappings}):
            changed += self._reload_source(name, plans.get(name))
        # READY=1 only once the old pipelines are done: what is read from now on uses the new set.
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        for name in changed:
            runner = self.runners.get(name)
            if runner is not None and not runner.switched.is_set():
                runner.switched.wait(max(0.0, deadline - time.monotonic()))
        self.plans = plans
        log.info("reloaded", mappings=sum(len(p.mappings) for p in plans.values()), changed=changed)
        self.notifier.ready(status=self._status_line())

    def _warn_dropped(self, plans: dict[str, SourcePlan]) -> None:
        """Name each mapping the new set leaves out: its changes are no longer written (its source
        records a pause at its checkpoint, `reload_pause_recorded`)."""
        for name, plan in self.plans.items():
            kept = {m.name for m in plans[name].mappings} if name in plans else set()
            for mapping in (m.name for m in plan.mappings if m.name not in kept):
                log.warning("mapping_dropped_by_reload", source=name, mapping=mapping,
                            action="its changes wait in the binlog from the source's checkpoint: put it "
                                   "back and reload to catch up, or delete its row in "
                                   f"{self.config.target.state_schema}.paused_mappings to drop it for good")

    def _check_sources(self, plans: dict[str, SourcePlan]) -> None:
        """Changed mappings must fit their live source tables too (reachable sources only: an
        unreachable one is checked when it connects again)."""
        problems = []
        for name, plan in plans.items():
            runner = self.runners.get(name)
            specs = [m.spec for m in plan.mappings]
            if not specs or (runner is not None and [m.spec for m in runner.plan.mappings] == specs):
                continue
            try:
                problems += check_source_tables(plan.source, specs)
            except SyncdError as exc:
                log.warning("reload_source_not_checked", source=name, error=str(exc))
        if problems:
            raise ConfigError(problems)

    def _reload_source(self, name: str, plan: SourcePlan | None) -> list[str]:
        runner = self.runners.get(name)
        if plan is None or not plan.mappings:
            if runner is not None:
                self._stop_runners([runner])
                del self.runners[name]
                self.health.remove_source(name)
                return [name]
            return []
        if runner is None:
            self.runners[name] = runner = self._new_runner(plan)
            runner.switched.set()
            return [name]
        same = [m.spec for m in runner.plan.mappings] == [m.spec for m in plan.mappings]
        if same and runner.phase != "failed" and not runner.paused():  # a pause may be resolved now
            return []
        if not runner.reload(plan):
            self._stop_runners([runner])
            self.runners[name] = runner = self._new_runner(plan)
            runner.switched.set()
        return [name]
