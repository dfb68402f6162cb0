"""Is the binlog a source's checkpoint needs still there, and still the same history?

`BinlogGuard` answers for one `SourceRunner` (syncd/service/runner.py), which keeps the lock,
the retries and the pipeline: the runner asks it before each start, after a stream ended, and
lets it watch while the source runs.

- Before a start (start, reconnect, failover, reload): prove that the server's binlog at the
  checkpoint is the history the checkpoint came from (syncd/source/history.py), record what was
  proven, and move the checkpoint where a failover put the same history.
- When the stream loses its position: look again, for an error that names what changed (a
  reset, another server) or a retry where the history goes on.
- While the source runs, every ``alerts.check_interval``: is the checkpoint's file still on the
  server, still the same file (after a RESET MASTER the server's stream only waits), and how
  long until the server may purge it (metric, log, ``source_health``).

Kept apart from the runner because these checks are the product's promise that a resume never
skips or repeats history, and they read best, and change, together.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import structlog

from syncd.config import Config
from syncd.errors import ContinuityLost, PositionLost, SourceUnavailable, SyncdError
from syncd.mapping.load import SourcePlan
from syncd.model import Checkpoint, Headroom, Lineage, Position
from syncd.service.metrics import Metrics
from syncd.sink.connection import Connection, connect
from syncd.sink.lock import SourceLock
from syncd.sink.state import read_checkpoint, read_pauses, record_continuity
from syncd.source import continuity, history, retention

LOW_HEADROOM_REPEAT_S = 600.0
"""A low retention headroom is logged when it is found, then at most this often."""


class BinlogGuard:
    """Continuity and retention checks of one source's binlog (see the module docstring)."""

    def __init__(self, plan: Callable[[], SourcePlan], config: Config, metrics: Metrics,
                 lock: SourceLock, log: structlog.typing.FilteringBoundLogger) -> None:
        self._plan = plan
        self.config = config
        self.metrics = metrics
        self.lock = lock
        self.log = log
        self.headroom: Headroom | None = None
        self._starts: retention.StartTimes = {}
        self._low_logged = -math.inf
        self._checked_at = -math.inf

    @property
    def name(self) -> str:
        return self._plan().source.name

    # -- continuity --------------------------------------------------------------------------

    def prove(self, checkpoint: Checkpoint) -> Checkpoint:
        """Prove the checkpoint's binlog history on the server (or find where it continues
        there), record it, and return the checkpoint as stored now; raises ContinuityLost when
        neither can be proven."""
        conn = self._connect()
        try:
            found = self._resolve(conn, checkpoint)
            if found.kind == continuity.PURGED:
                return checkpoint  # the retention check reports it, as ever
            schema = self.config.target.state_schema
            if not record_continuity(conn, schema, self.name, was=checkpoint.position,
                                     now=found.position, lineage=found.lineage, note=found.note):
                raise SourceUnavailable(self.name, "the checkpoint moved during the resume check; "
                                        "checking again")
            self._log_resolution(checkpoint.position, found)
            proven = read_checkpoint(conn, schema, self.name) or checkpoint
        finally:
            conn.close()
        if found.kind == continuity.RELOCATED:
            self._starts.clear()  # file creation times by name: these names are other files here
        return proven

    def diagnose(self, lost: PositionLost) -> SyncdError:
        """The stream lost its position: check again what the server holds now, for an error
        that names what changed (a reset, another server), or a retry where the history goes on."""
        try:
            found = self._recheck()
            if found is not None and found.kind == continuity.PURGED:
                self.check(found.position, at_start=True)
        except SyncdError as exc:
            return exc
        if found is not None and found.kind == continuity.RELOCATED:
            return SourceUnavailable(self.name, f"{lost.message}; the checkpoint's history goes on "
                                     "elsewhere on the server: resuming there")
        return lost

    def _connect(self) -> Connection:
        return connect(self.config.target, f"syncd:check:{self.name}")

    def _resolve(self, conn: Connection, checkpoint: Checkpoint) -> history.Resolution:
        plan = self._plan()
        paused = [p.mapping for p in read_pauses(conn, self.config.target.state_schema, self.name)]
        try:
            return history.resolve(plan.source, checkpoint.position, checkpoint.lineage or Lineage(),
                                   set(plan.by_table()), paused)
        except ContinuityLost as exc:
            self._starts.clear()
            self.log.error("continuity_lost", position=str(checkpoint.position), error=str(exc))
            raise

    def _log_resolution(self, was: Position, found: history.Resolution) -> None:
        fields = {"position": str(found.position), "server": found.lineage.server,
                  "binlog_file": str(found.position.file_id) if found.position.file_id else None,
                  "detail": found.note}
        if found.kind == continuity.RELOCATED:
            self.log.warning("continuity_relocated", was=str(was), **fields)
        elif found.kind == continuity.RECORD:
            self.log.warning("continuity_recorded", **fields)
        else:
            self.log.info("continuity_proven", **fields)

    def _recheck(self) -> history.Resolution | None:
        """What the server holds now for the stored checkpoint (raises ContinuityLost)."""
        conn = self._connect()
        try:
            checkpoint = read_checkpoint(conn, self.config.target.state_schema, self.name)
            return self._resolve(conn, checkpoint) if checkpoint is not None else None
        finally:
            conn.close()

    # -- while running -------------------------------------------------------------------------

    def watch(self, session: threading.Event, current: Callable[[], Checkpoint | None],
              on_lost: Callable[[PositionLost], None]) -> None:
        """Until `session` is set, every alerts.check_interval (and as soon as a first
        checkpoint exists): check the `current` checkpoint's binlog file is still there, for how
        long, and still the same file. `on_lost` is told when it is gone for good."""
        while not session.wait(1.0):
            checkpoint = current()
            if checkpoint is None or not checkpoint.snapshot_done:
                continue
            if time.monotonic() - self._checked_at < self.config.alerts.check_interval_s:
                continue
            try:
                self.check(checkpoint.position, at_start=False, latest=current)
                self._check_same_file(checkpoint)
            except PositionLost as exc:  # purged, or continuity lost
                if not session.is_set():  # else the source stopped meanwhile: not this period's
                    on_lost(exc)
                return
            except SyncdError as exc:
                if session.is_set():
                    return
                self.log.warning("binlog_check_failed", error=str(exc), position=str(checkpoint.position))
            except Exception:
                self.log.exception("binlog_check_crashed", position=str(checkpoint.position))

    def _check_same_file(self, checkpoint: Checkpoint) -> None:
        """Raise ContinuityLost when the checkpoint's binlog file was replaced by another of the
        same name and the history cannot be found elsewhere on the server."""
        expected = checkpoint.position.file_id
        if expected is None:
            return
        head = retention.file_head(self._plan().source, checkpoint.position.file)
        if head is None or head.file_id == expected:
            return  # gone: the retention check reports it
        self.log.warning("binlog_file_replaced", position=str(checkpoint.position),
                         was=str(expected), now=str(head.file_id))
        conn = self._connect()
        try:
            self._resolve(conn, checkpoint)  # found elsewhere: the stream ends and resumes there
        finally:
            conn.close()

    def check(self, position: Position, *, at_start: bool,
              latest: Callable[[], Checkpoint | None] | None = None) -> Headroom:
        """Raise PositionLost if the binlog file the checkpoint needs is gone; record headroom.
        `latest`: where the pipeline is now (it may have moved on past a purged file)."""
        self._checked_at = time.monotonic()
        source = self._plan().source
        headroom = retention.inspect(source, position.file, self._starts)
        if headroom.kind == "purged" and latest is not None:
            now = latest()
            if now is not None and now.position.file != position.file:
                position = now.position
                headroom = retention.inspect(source, position.file, self._starts)
        self.headroom = headroom
        self.metrics.set_binlog_retention_headroom(self.name, headroom.metric_value)
        self.lock.record_headroom(headroom)
        if headroom.kind == "purged":
            self._purged(position, headroom, at_start)
        self._log_headroom(position, headroom)
        return headroom

    def _purged(self, position: Position, headroom: Headroom, at_start: bool) -> None:
        if not at_start:  # while running: a reset or another server is not a purge
            self._not_elsewhere(headroom)
        self.log.error("binlog_purged", position=str(position), file=position.file,
                       detail=headroom.detail)
        raise PositionLost(self.name, (
            f"{headroom.detail}. The checkpoint {position} can never be resumed: run "
            f"`syncd snapshot --source {self.name}` to copy its tables again; syncd resumes "
            "this source by itself once the snapshot has moved its checkpoint"))

    def _log_headroom(self, position: Position, headroom: Headroom) -> None:
        threshold = self.config.alerts.retention_headroom_s
        if headroom.is_low(threshold):
            now = time.monotonic()
            if now - self._low_logged >= LOW_HEADROOM_REPEAT_S:
                self._low_logged = now
                self.log.warning("retention_headroom_low", position=str(position), file=position.file,
                                 headroom_seconds=round(headroom.seconds or 0.0),
                                 headroom=retention.format_duration(headroom.seconds),
                                 threshold=retention.format_duration(threshold), detail=headroom.detail)
        elif self._low_logged > -math.inf:
            self._low_logged = -math.inf
            self.log.info("retention_headroom_ok", position=str(position), detail=headroom.detail)
        else:
            self.log.debug("retention_headroom", position=str(position), kind=headroom.kind,
                           headroom_seconds=headroom.seconds, detail=headroom.detail)

    def _not_elsewhere(self, headroom: Headroom) -> None:
        """The checkpoint's file is gone: ContinuityLost when the binlogs were reset or the
        server changed; SourceUnavailable when its history goes on elsewhere on the server."""
        found = self._recheck()
        if found is not None and found.kind == continuity.RELOCATED:
            raise SourceUnavailable(self.name, f"{headroom.detail}, but the checkpoint's history goes "
                                    "on elsewhere on the server: the stream resumes there")
