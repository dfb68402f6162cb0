"""One source's life in `syncd run` (`SourceRunner`, one thread each)::

    starting -> standby (another process holds the source's lock; poll every 2 s)
             -> connecting (lock taken: server checks, binlog safety) -> running (pipeline)
    running  -> retrying (connection lost: capped exponential backoff, resume from checkpoint)
             -> standby (the lock's connection was lost: stop writing at once, wait again)
             -> failed (purged binlog, a binlog that is not the checkpoint's history, wrong
                server setting, a stream syncd refuses to guess about): the lock is released,
                the other sources go on. A source failed because its binlog was purged or its
                continuity was lost resumes by itself once its checkpoint moves (after `syncd
                snapshot --source S`); any failed source is retried on SIGHUP.

Every connecting attempt (start, reconnect, failover, reload) first has the source's
`BinlogGuard` (syncd/service/binlog_guard.py) prove that the server's binlog at the checkpoint
is the history the checkpoint came from.

While a source runs, two helper threads watch it: the lock watch (every 2 s: is the lock still
ours? refresh ``source_owners.heartbeat_at``) and the guard's binlog watch (is the binlog file
the checkpoint needs still on the server, still the same file, and for how long).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import structlog
import tenacity

from syncd.config import Config
from syncd.errors import ConfigError, PositionLost, SyncdError
from syncd.mapping.load import SourcePlan
from syncd.model import Checkpoint, DeadLetter, Pause, Position
from syncd.observability import one_line
from syncd.reconcile.snapshot import initial_copy
from syncd.service.binlog_guard import BinlogGuard
from syncd.service.metrics import Metrics
from syncd.service.monitor import StateMonitor
from syncd.service.pipeline import Pipeline
from syncd.sink import connection as sink_connection
from syncd.sink.batch import Batch
from syncd.sink.connection import connect
from syncd.sink.lock import SourceLock, writer_application_name
from syncd.sink.postgres import PostgresSink
from syncd.sink.state import add_pauses, read_checkpoint, read_pauses
from syncd.source import checks
from syncd.source import connection as source_connection
from syncd.source.checks import check_source_tables
from syncd.source.mysql import MySQLSource

log = structlog.get_logger("syncd.service.runner")

_CONNECTION_ERRORS = (*source_connection.LOST, *sink_connection.LOST, ConnectionError, TimeoutError)


LOCK_POLL_S = 2.0
"""How often a standby source tries the lock, and how often a holder proves it still holds it."""
LOCK_YIELD_S = 2.5 * LOCK_POLL_S
"""After losing the lock, wait this long before trying to take it again."""


DROPPED_STATEMENT = "(none: a reload left the mapping out)"
"""The statement of a pause recorded because a reload dropped the mapping."""


def phase_text(phase: str, error: str | None) -> str:
    return f"{phase}: {error}" if error else phase


@dataclass(frozen=True)
class RunnerState:
    phase: str = "starting"
    error: str | None = None


class SourceRunner:
    """Keeps one source's pipeline running while this process holds the source's lock."""

    def __init__(self, plan: SourcePlan, config: Config, metrics: Metrics,
                 monitor: StateMonitor, streamed: set[str] | None = None) -> None:
        self.plan = plan
        self.streamed = streamed if streamed is not None else set()
        """Mappings a pipeline of this process last fed from this source's checkpoint on (kept by
        the daemon across runners): one the plan now lacks is paused at the checkpoint, so that
        brought back by a reload it replays what it missed."""
        self.name = plan.source.name
        self.config = config
        self.metrics = metrics
        self.monitor = monitor
        self.stop = threading.Event()
        """Set by the daemon: end this runner (and release the lock)."""
        self.settled = threading.Event()
        """Start-up of this source is over (streaming, standby, retrying or failed): READY=1."""
        self.state = RunnerState()
        self.pipeline: Pipeline | None = None
        self.lock = SourceLock(config.target, self.name)
        self.checkpoint: Checkpoint | None = None
        self.holder = ""
        self.log = log.bind(source=self.name)
        self.thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._mutex = threading.Lock()
        self._holding = False
        self._session = threading.Event()
        self._end_reason: str | None = None
        self._failure: SyncdError | None = None
        self._retries_since_progress = 0
        """Failed attempts since the last commit: what the back-off doubles on."""
        self._next_plan: SourcePlan | None = None
        self._sleeping = False
        self._streaming_seen = False
        self._last_sign = time.monotonic()
        self.guard = BinlogGuard(lambda: self.plan, config, metrics, self.lock, self.log)
        self._lock_watch: threading.Thread | None = None
        self._holding_ended = threading.Event()
        self._metadata: str | None = None
        """The source's binlog_row_metadata, as the last start-up check read it."""
        self.switched = threading.Event()
        """Set once a `reload` took effect: the old pipeline has finished its last batch."""

    # -- control (daemon thread) ------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def halt(self) -> None:
        """Stop: end the current pipeline (it commits its open batch) and release the lock."""
        self.stop.set()
        self._end("stop")

    def reload(self, plan: SourcePlan) -> bool:
        """Switch to ``plan`` keeping the lock (the pipeline restarts from its checkpoint).

        Returns False, having stopped this runner, when it holds no lock (standby, failed):
        the daemon then starts a new runner, which is as cheap and simpler.
        """
        with self._mutex:
            if not self._holding:
                self.stop.set()
                self._end("stop")
                return False
            self._next_plan = plan
            self.switched.clear()
        self._end("reload")
        return True

    def _end(self, reason: str) -> None:
        """End the current active period (first reason wins)."""
        if not self._session.is_set():
            if self._end_reason is None:
                self._end_reason = reason
            self._session.set()

    # -- what the daemon reads ----------------------------------------------------------------

    @property
    def phase(self) -> str:
        return self.state.phase

    @property
    def active(self) -> bool:
        return self._holding

    def stall_limit(self) -> float:
        return max(self.config.alerts.stall_s, 3.0 * self.plan.source.heartbeat_s)

    def alive(self) -> bool:
        """False when this source is hung: no event, heartbeat, commit or loop turn for longer
        than ``alerts.stall`` (a wedged reader or writer, a call that never returns)."""
        if not self.thread.is_alive():
            return self.phase in {"stopped", "failed"}
        if self._sleeping:
            return True
        return self.quiet_seconds() < self.stall_limit()

    def quiet_seconds(self) -> float:
        """Seconds since the last sign of life (event, heartbeat, commit, loop turn)."""
        sign = self._last_sign
        pipeline = self.pipeline
        if pipeline is not None and self.phase == "running":
            sign = max(sign, pipeline.progress.last_activity)
        return time.monotonic() - sign

    def paused(self) -> bool:
        """Whether a mapping of the running pipeline is paused (a reload looks at it again)."""
        pipeline = self.pipeline
        return pipeline is not None and bool(pipeline.gate.paused)

    def streaming(self) -> bool:
        pipeline = self.pipeline
        return self.phase == "running" and pipeline is not None and pipeline.progress.connected

    def summary(self) -> str:
        """One short clause for systemd's STATUS= line."""
        pipeline = self.pipeline
        if self.phase == "running" and pipeline is not None:
            if not pipeline.progress.connected:
                return f"{self.name}: initial copy"
            lag = pipeline.progress.current_lag()
            return f"{self.name}: lag {lag:.1f}s" if lag is not None else f"{self.name}: streaming"
        if self.phase == "standby":
            return f"{self.name}: standby ({self.holder or 'held elsewhere'})"
        if self.phase in {"failed", "retrying"}:
            error = one_line(self.state.error or "", 80)
            return f"{self.name}: {self.phase} ({error})" if error else f"{self.name}: {self.phase}"
        return f"{self.name}: {self.phase}"

    # -- the runner thread --------------------------------------------------------------------

    def _mark(self) -> None:
        self._last_sign = time.monotonic()

    def _set_state(self, phase: str, error: str | None = None) -> None:
        self.state = RunnerState(phase, error)
        self._mark()
        self.metrics.set_source_up(self.name, phase == "running")
        self.metrics.set_source_active(self.name, self._holding)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a bug: report it with its traceback, keep the other sources going
            self._set_state("failed", repr(exc))
            self.log.exception("source_crashed", position=self.position_text())
        finally:
            self._release()
            if self.phase != "failed":
                self._set_state("stopped")
            self.metrics.set_source_up(self.name, False)
            self.settled.set()

    def _loop(self) -> None:
        while not self.stop.is_set():
            if not self._holding and not self._acquire():
                return
            outcome = self._active_period()
            if outcome == "reload":
                with self._mutex:
                    self.plan, self._next_plan = self._next_plan or self.plan, None
                self.switched.set()
                self.log.info("source_reloaded", mappings=[m.name for m in self.plan.mappings])
                continue
            if outcome == "stop":
                self.lock.record_health("stopped", None)
                return
            if outcome == "lock_lost":
                taken = self.lock.connected  # else the target went away with the lock's connection
                self._release()
                if taken:
                    self._set_state("standby")
                else:
                    self._set_state("retrying", "lost the target connection that held the source's lock")
                self.log.error("source_lock_lost", position=self.position_text(),
                               action=f"stopped writing; {'standing by' if taken else 'reconnecting'}")
                # A process that just lost its connection is the suspect one: let a standby,
                # which polls every LOCK_POLL_S, take the source before trying again.
                self.stop.wait(LOCK_YIELD_S)
                continue
            failure = self._failure
            self.lock.record_health("failed", str(failure))
            self._release()
            self.settled.set()
            if not self._wait_for_fix(failure):
                return

    def _acquire(self) -> bool:
        """Poll the lock until it is ours (True) or the runner is stopped (False)."""
        logged = announced = False
        while not self.stop.is_set():
            self._mark()
            try:
                acquired = self.lock.try_acquire()
            except SyncdError as exc:
                self._set_state("retrying", f"target unreachable: {exc}")
                self.settled.set()
                if not logged:
                    self.log.warning("source_lock_unavailable", error=str(exc))
                    logged = True
                self.stop.wait(LOCK_POLL_S)
                continue
            if acquired:
                with self._mutex:
                    if self.stop.is_set():
                        self.lock.release()
                        return False
                    self._holding = True
                self._holding_ended.clear()
                self._lock_watch = threading.Thread(target=self._watch_lock,
                                                    name=f"lock-{self.name}", daemon=True)
                self._lock_watch.start()
                self.log.info("source_active", host=self.lock.host, pid=self.lock.pid,
                              fenced_connections=self.lock.fenced)
                return True
            owner = self.lock.holder()
            self.holder = owner.describe() if owner else ""
            if not announced or self.phase != "standby":
                announced = True
                self._set_state("standby")
                self.settled.set()
                self.log.info("source_standby", holder=self.holder or None,
                              action=f"another process holds the source; trying every {LOCK_POLL_S:.0f}s")
            self.stop.wait(LOCK_POLL_S)
        return False

    def _release(self) -> None:
        with self._mutex:
            holding, self._holding = self._holding, False
        self._holding_ended.set()
        watch, self._lock_watch = self._lock_watch, None
        if watch is not None and watch is not threading.current_thread():
            watch.join(15)
        if holding:
            self.lock.release()
        self.metrics.set_source_active(self.name, False)

    def _watch_lock(self) -> None:
        """Every LOCK_POLL_S: still ours? If not, end the pipeline at once. Also records, once
        per active period, that the source streams (off the daemon's main loop: it is I/O)."""
        while not self._holding_ended.wait(LOCK_POLL_S):
            if not self.lock.heartbeat():
                if not self._holding_ended.is_set():
                    self._end("lock_lost")
                return
            if not self._streaming_seen and self.streaming():
                self._streaming_seen = True
                self.lock.record_health("streaming", None)

    def _active_period(self) -> str:
        """Run the pipeline, retrying what can be retried, until stopped or failed."""
        self._session = threading.Event()
        self._end_reason = None
        self._failure = None
        self._streaming_seen = False
        self._retries_since_progress = 0
        if self.stop.is_set():
            return "stop"
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._retriable),
            wait=self._backoff,
            stop=tenacity.stop_when_event_set(self._session),
            sleep=self._sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )
        watch = threading.Thread(target=self.guard.watch, args=(self._session, self._current, self._lost),
                                 name=f"binlog-check-{self.name}", daemon=True)
        watch.start()
        try:
            while not self._session.is_set():
                retrying(self._attempt)
        except SyncdError as exc:
            if self._end_reason is None:
                self._fail(exc)
        except Exception as exc:
            if self._end_reason is None:
                self.log.exception("source_crashed", position=self.position_text())
                self._fail(SyncdError(f"source {self.name}: internal error {exc!r}"))
        finally:
            self._end(self._end_reason or "failed")
            watch.join(2)  # a check stuck on a hung source ends by its own timeouts
            self._mark()  # the pipeline's signs of life go with it (an idle source's reload stalled)
            self.pipeline = None
        if self._failure is not None:
            return "failed"
        return self._end_reason or "stop"

    def _fail(self, exc: SyncdError) -> None:
        self._failure = exc
        self._end_reason = "failed"
        self._set_state("failed", str(exc))
        self.log.error("source_failed", error=str(exc), error_type=type(exc).__name__,
                       position=self.position_text())

    def _retriable(self, exc: BaseException) -> bool:
        if self._session.is_set():
            return False
        if isinstance(exc, SyncdError):
            return exc.retriable
        # A driver's connection-level error that no layer translated: a lost connection all the
        # same (never a bug), so it is retried like one.
        return isinstance(exc, _CONNECTION_ERRORS)

    def _sleep(self, seconds: float) -> None:
        self._sleeping = True
        try:
            self._session.wait(seconds)
        finally:
            self._sleeping = False
            self._mark()

    def _before_retry(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0
        self._set_state("retrying", str(exc))
        self.settled.set()
        self.lock.record_health("retrying", str(exc))
        self._retries_since_progress += 1
        self.log.warning("source_retry", attempt=self._retries_since_progress, error=str(exc),
                         wait_seconds=round(wait, 1), position=self.position_text())

    def _backoff(self, _state: tenacity.RetryCallState) -> float:
        """0.5 s after the first failure, doubling up to `retry_max_seconds`: counted from the last
        commit, so an outage after hours of streaming starts again at 0.5 s."""
        return min(self.config.retry_max_s, 0.5 * 2 ** self._retries_since_progress)

    def _attempt(self) -> None:
        if self._session.is_set():
            return
        self._set_state("connecting")
        self._check_live()
        checkpoint = self._read_checkpoint()
        if checkpoint is not None:
            self.checkpoint = checkpoint
            if checkpoint.snapshot_done:
                checkpoint = self.checkpoint = self.guard.prove(checkpoint)
                self.guard.check(checkpoint.position, at_start=True)
        if self._session.is_set():
            return
        if not self.lock.held():
            self._end("lock_lost")
            return
        self._hold_dropped(checkpoint)
        self.pipeline = self._pipeline()
        self._set_state("running")
        try:
            self.pipeline.run()
        except PositionLost as lost:  # the stream could not go on (or its own check failed)
            diagnosis = self.guard.diagnose(lost)
            if diagnosis is lost:
                raise
            raise diagnosis from lost

    def _check_live(self) -> None:
        """The server's settings and grants, and the tables of every mapping not paused: a
        paused one stays paused while its table does not fit it (the pipeline's gate decides),
        and must not stop the others at a reconnect."""
        self._metadata = checks.check_source(self.plan.source).row_metadata
        paused = self._paused()
        specs = [m.spec for m in self.plan.mappings if m.name not in paused]
        problems = check_source_tables(self.plan.source, specs)
        if problems:
            raise ConfigError(problems)

    def _paused(self) -> set[str]:
        conn = connect(self.config.target, f"syncd:check:{self.name}")
        try:
            return {p.mapping for p in read_pauses(conn, self.config.target.state_schema, self.name)}
        finally:
            conn.close()

    def _hold_dropped(self, checkpoint: Checkpoint | None) -> None:
        """Pause, at the checkpoint, each mapping fed before that the plan now lacks (a reload
        dropped it): nothing it would have written is skipped if it comes back."""
        names = {m.name for m in self.plan.mappings}
        dropped = sorted(self.streamed - names)
        if dropped and checkpoint is not None and checkpoint.snapshot_done:
            self._record_drops(dropped, checkpoint.position)
        self.streamed.clear()
        self.streamed.update(names)

    def _record_drops(self, dropped: list[str], position: Position) -> None:
        schema = self.config.target.state_schema
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        pauses = [Pause(name, self.name, position, DROPPED_STATEMENT,
                        f"left out of the mapping files by a reload at {when}; put it back and reload "
                        f"to catch up from here, or delete its row in {schema}.paused_mappings to drop "
                        "it for good") for name in dropped]
        conn = connect(self.config.target, f"syncd:check:{self.name}")
        try:
            added = add_pauses(conn, schema, pauses)
        finally:
            conn.close()
        for name in added:
            self.log.info("reload_pause_recorded", mapping=name, position=str(position),
                          detail="its changes from here wait in the binlog until it is back")

    def _pipeline(self) -> Pipeline:
        """The pipeline of the current plan, wired to the source server and the target."""
        plan, config = self.plan, self.config
        sink = PostgresSink(config.target, writer_application_name(self.name))
        changes = MySQLSource(plan.source, self._metadata)
        return Pipeline(plan, config, self._session, changes=changes, sink=sink,
                        copy=partial(_initial_copy, config, plan), on_batch=self._on_batch)

    def _read_checkpoint(self) -> Checkpoint | None:
        conn = connect(self.config.target, f"syncd:check:{self.name}")
        try:
            return read_checkpoint(conn, self.config.target.state_schema, self.name)
        finally:
            conn.close()

    def _on_batch(self, source: str, batch: Batch, seconds: float, rejected: list[DeadLetter]) -> None:
        self._mark()
        self._retries_since_progress = 0  # the stream works again: the next outage backs off from the start
        lag = None
        if batch.checkpoint is not None:
            self.checkpoint = batch.checkpoint
            if batch.checkpoint.last_event_time is not None:
                lag = time.time() - batch.checkpoint.last_event_time.timestamp()
        letters: dict[str, int] = {}
        for letter in batch.dead_letters + rejected:
            letters[letter.source_table] = letters.get(letter.source_table, 0) + 1
        applied = {table: max(0, count - letters.get(table, 0))
                   for table, count in batch.changes_by_table.items()}
        self.metrics.record_batch(source, applied, seconds, lag)
        for table, count in batch.changes_by_table.items():
            self.metrics.record_read(source, table, count)
        for table, count in letters.items():
            self.metrics.record_dead_letter(source, table, count)

    def position_text(self) -> str | None:
        """Where this source is: the pipeline's position, else the last known checkpoint."""
        pipeline = self.pipeline
        position = getattr(pipeline, "position", None) if pipeline is not None else None
        if position is not None:
            return str(position)
        checkpoint = self.checkpoint or self.monitor.checkpoint(self.name)
        return str(checkpoint.position) if checkpoint is not None else None

    def _current(self) -> Checkpoint | None:
        return self.checkpoint or self.monitor.checkpoint(self.name)

    def _lost(self, exc: PositionLost) -> None:
        self._fail(exc)
        self._end("failed")

    def _latest_checkpoint(self) -> Checkpoint | None:
        try:
            return self._read_checkpoint()
        except SyncdError:  # the target is unreachable: the monitor's last reading
            return self.monitor.checkpoint(self.name) or self.checkpoint

    def _wait_for_fix(self, failure: SyncdError | None) -> bool:
        """After a failure: wait, without the lock, for the checkpoint to move (a snapshot
        fixed a purged binlog) or for the runner to be stopped or reloaded. True: try again."""
        failed_at = self._latest_checkpoint()
        resumable = isinstance(failure, PositionLost)  # purged, or continuity lost
        while not self.stop.wait(LOCK_POLL_S):
            self._mark()
            if not resumable:
                continue
            current = self.monitor.checkpoint(self.name)
            if current is not None and (failed_at is None or _moved(failed_at, current)):
                self.log.info("source_resuming", position=str(current.position),
                              reason="the checkpoint moved (a snapshot was taken)")
                self.checkpoint = current
                return True
        return False


def _initial_copy(config: Config, plan: SourcePlan, stop: threading.Event) -> bool:
    """Copy the mapped tables (resumable, as `syncd snapshot`); False when stopped first."""
    return initial_copy(config, plan, stop=stop, chunk_rows=config.batch.max_rows).finished


def _moved(before: Checkpoint, now: Checkpoint) -> bool:
    """Whether a checkpoint was written anew (a snapshot), even at the same position."""
    return (now.position != before.position or now.snapshot_done != before.snapshot_done
            or now.position.file_id != before.position.file_id or now.updated_at != before.updated_at)
