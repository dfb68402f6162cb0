"""Events read ahead of the applying thread, so that decoding goes on while a batch commits.

A thread moves the reader's events into a buffer bounded by row changes and by bytes, in runs: a
decoder process hands over a frame of events at a time (a `Run` that knows the frame's size), an
in-process reader one event. While the applying thread waits for PostgreSQL to commit a batch,
the next batch is decoded and handed over; memory stays bounded whatever the size of the source
transactions and of their rows.

A reader's error is handed over in order, after the events read before it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable

from syncd.model import SourceTransaction, TransactionPart
from syncd.source.binlog import SourceEvent

READ_AHEAD_CHANGES = 2500
"""Row changes held ahead of the applying thread; a run may overshoot it. PostgreSQL's share of
committing a 5,000-row batch is about 70 ms, in which a decoder process hands over about 1,500."""


READ_AHEAD_BYTES = 8 << 20
"""Bytes of frames (as the decoder process sent them) held ahead of the applying thread; a run
may overshoot it. Rows of large TEXT and BLOB values reach it before `READ_AHEAD_CHANGES`."""


_PARTS = (SourceTransaction, TransactionPart)
"""Events holding row changes (a tuple: `isinstance` with `A | B` builds the union each time)."""


class Run(list):
    """Events of one frame of a decoder process, and the frame's size in bytes."""

    __slots__ = ("size",)

    def __init__(self, events: list[SourceEvent], size: int) -> None:
        super().__init__(events)
        self.size = size


def weight(run: list[SourceEvent]) -> int:
    """Row changes in a run (at least one per event, so heartbeats count too)."""
    return sum(len(event.changes) if isinstance(event, _PARTS) else 1
               for event in run) or 1


class ReadAhead:
    """Reads `runs` on a thread of its own; `get` hands the events over one by one."""

    def __init__(self, runs: Iterable[list[SourceEvent]], name: str, *,
                 limit: int = READ_AHEAD_CHANGES, byte_limit: int = READ_AHEAD_BYTES) -> None:
        self._limit = limit
        self._byte_limit = byte_limit
        self._runs: deque[tuple[list[SourceEvent] | BaseException, int, int]] = deque()
        self._current: deque[SourceEvent] = deque()
        self._held = 0
        self._held_bytes = 0
        self.handed_bytes = 0
        """Bytes of the runs handed over so far (`Run.size`): what a batch's bytes are counted in."""
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(runs,), name=name, daemon=True)
        self._thread.start()

    def get(self, timeout: float) -> SourceEvent | BaseException:
        """The next event, or the reader's error; `queue.Empty` after `timeout` seconds without."""
        if self._current:
            return self._current.popleft()
        with self._changed:
            if not self._runs and not self._changed.wait_for(lambda: self._runs, timeout):
                raise queue.Empty
            run, held, size = self._runs.popleft()
            self._held -= held
            self._held_bytes -= size
            self.handed_bytes += size
            self._changed.notify_all()
        if isinstance(run, BaseException):
            return run
        self._current.extend(run)
        return self._current.popleft()

    def close(self) -> None:
        """The reader thread stops handing over (it ends when its reader is closed)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _read(self, runs: Iterable[list[SourceEvent]]) -> None:
        try:
            for run in runs:
                if not self._add(run, weight(run), run.size if isinstance(run, Run) else 0):
                    return
        except BaseException as exc:  # handed to the applying thread, which decides
            self._add(exc, 0, 0)

    def _add(self, run: list[SourceEvent] | BaseException, held: int, size: int) -> bool:
        """Waits for room; False once closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or (self._held < self._limit
                                                            and self._held_bytes < self._byte_limit))
            if self._closed:
                return False
            self._runs.append((run, held, size))
            self._held += held
            self._held_bytes += size
            self._changed.notify_all()
            return True
