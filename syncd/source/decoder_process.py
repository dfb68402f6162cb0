"""The binlog reader in a process of its own: decoding runs on another core than mapping and applying.

Decoding a binlog is most of the CPU a Python CDC daemon spends, and one process runs Python on
one core at a time. `DecoderProcess` runs `BinlogReader` in a child process (`python -m
syncd.source.decoder_process`) and hands its events over a pipe, in order, as they come:

* the child decodes, and a second thread of it sends whatever has piled up as one frame (a
  4-byte length, then `marshal` data), so a busy stream moves in large frames and a quiet one
  event by event;
* rows are sent as dicts, their values as they are when `marshal` carries them exactly (int,
  float, str, bytes, None, bool) and as tagged tuples otherwise (Decimal as its text, datetime,
  date and timedelta as their fields); the parent rebuilds the same objects (`pickle` would
  cost as much as the decoding saved);
* a `SyncdError` in the child travels pickled and is raised again in the parent, where the
  runner retries or fails the source exactly as with an in-process reader; anything else ends
  the stream with `DecoderCrashed` and the child's traceback;
* the child stops when the parent closes the pipe or dies (its stdin reaches end of file).

`SYNCD_DECODER_PROCESS=0` keeps the reader in the daemon's own process.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO, Any

from syncd.config import SourceConfig
from syncd.errors import SourceUnavailable, SyncdError
from syncd.model import (
    Heartbeat,
    Op,
    Position,
    Row,
    RowChange,
    SchemaChange,
    SourceTransaction,
    TransactionPart,
)
from syncd.observability import tune_gc
from syncd.source.binlog import BinlogReader, SourceEvent
from syncd.source.gtid import GtidState

PROCESS_ENV = "SYNCD_DECODER_PROCESS"
_FRAME = struct.Struct("<I")
_QUEUE_EVENTS = 16
"""Events decoded ahead of the pipe (a large transaction's parts hold 1,000 changes each)."""
_FRAME_CHANGES = 2000
"""A frame closes once it holds this many row changes: memory stays bounded on both sides."""
_OPS = {op.value: op for op in Op}


def enabled() -> bool:
    return os.environ.get(PROCESS_ENV, "1") != "0"


class DecoderCrashed(SourceUnavailable):
    """The decoder process died or failed unexpectedly (its traceback is in the message); the
    runner retries from the checkpoint, as after a lost connection."""


# --------------------------------------------------------------------------- values


def _datetime(value: datetime) -> tuple:
    if value.tzinfo is None:
        if not value.fold:  # the text: parsed back in a fifth of the time (the parent is the busier)
            return ("i", value.isoformat())
        return ("t", value.year, value.month, value.day, value.hour, value.minute, value.second,
                value.microsecond, value.fold)
    if value.tzinfo is UTC:
        return ("u", value.year, value.month, value.day, value.hour, value.minute, value.second,
                value.microsecond, value.fold)
    return ("p", pickle.dumps(value))


_ENCODE: dict[type, Callable[[Any], tuple]] = {
    Decimal: lambda v: ("d", str(v)),
    datetime: _datetime,
    date: lambda v: ("D", v.toordinal()),
    timedelta: lambda v: ("T", v.days, v.seconds, v.microseconds),
}
_NATIVE = frozenset({int, float, str, bytes, bool, type(None)})

_DECODE: dict[str, Callable[[tuple], Any]] = {
    "d": lambda t: Decimal(t[1]),
    "i": lambda t: datetime.fromisoformat(t[1]),
    "t": lambda t: datetime(t[1], t[2], t[3], t[4], t[5], t[6], t[7], fold=t[8]),
    "u": lambda t: datetime(t[1], t[2], t[3], t[4], t[5], t[6], t[7], tzinfo=UTC, fold=t[8]),
    "D": lambda t: date.fromordinal(t[1]),
    "T": lambda t: timedelta(t[1], t[2], t[3]),
    "p": lambda t: pickle.loads(t[1]),
}


def encode_value(value: Any) -> Any:
    kind = type(value)
    if kind in _NATIVE:
        return value
    encode = _ENCODE.get(kind)
    return encode(value) if encode is not None else ("p", pickle.dumps(value))


def decode_value(value: Any) -> Any:
    return _DECODE[value[0]](value) if type(value) is tuple else value


def _encode_row(row: Row | None) -> tuple | None:
    """(the row, names of its tagged values): `marshal` carries a dict of native values as it is."""
    if row is None:
        return None
    tagged = tuple(name for name, value in row.items() if type(value) not in _NATIVE)
    if tagged:
        row = dict(row)
        for name in tagged:
            row[name] = encode_value(row[name])
    return row, tagged


def _decode_row(data: tuple | None) -> Row | None:
    if data is None:
        return None
    row, tagged = data
    for name in tagged:
        row[name] = decode_value(row[name])
    return row


# --------------------------------------------------------------------------- events


def _position(position: Position | None) -> tuple | None:
    return None if position is None else (position.file, position.pos, position.gtid)


def _unposition(data: tuple | None) -> Position | None:
    return None if data is None else Position(*data)


def _change(change: RowChange) -> tuple:
    return (change.table, change.op.value, _encode_row(change.before), _encode_row(change.after),
            change.event_pos, change.row_index, change.key_columns, change.zero_dates)


def _unchange(data: tuple) -> RowChange:
    table, op, before, after, event_pos, row_index, key, zeros = data
    return RowChange(table, _OPS[op], _decode_row(before), _decode_row(after), event_pos, row_index,
                     key, zeros)


def encode_event(event: SourceEvent) -> tuple:
    if isinstance(event, SourceTransaction):
        return ("tx", event.source, [_change(c) for c in event.changes], _position(event.end),
                encode_value(event.commit_time), event.follows_parts)
    if isinstance(event, TransactionPart):
        return ("part", event.source, [_change(c) for c in event.changes])
    if isinstance(event, SchemaChange):
        return ("ddl", event.source, event.schema, event.statement, _position(event.end),
                encode_value(event.commit_time))
    return ("beat", event.source, _position(event.position))


def decode_event(data: tuple) -> SourceEvent:
    kind = data[0]
    if kind == "tx":
        end = _unposition(data[3])
        assert end is not None
        return SourceTransaction(data[1], [_unchange(c) for c in data[2]], end, decode_value(data[4]),
                                 data[5])
    if kind == "part":
        return TransactionPart(data[1], [_unchange(c) for c in data[2]])
    if kind == "ddl":
        end = _unposition(data[4])
        assert end is not None
        return SchemaChange(data[1], data[2], data[3], end, decode_value(data[5]))
    return Heartbeat(data[1], _unposition(data[2]))


# --------------------------------------------------------------------------- parent side


class DecoderProcess:
    """`BinlogReader`'s interface (`events()`, `runs()`, `close()`), decoding in a child process."""

    def __init__(self, source: SourceConfig, start: Position, tables: set[str],
                 gtid_state: GtidState | None = None) -> None:
        self.source = source
        self.start = start
        self.tables = tables
        self.gtids = gtid_state or GtidState()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def events(self) -> Iterator[SourceEvent]:
        for run in self.runs():
            yield from run

    def runs(self) -> Iterator[list[SourceEvent]]:
        """The events as the child sends them: a frame's worth at a time."""
        with self._lock:
            child = self._child = subprocess.Popen(
                [sys.executable, "-m", "syncd.source.decoder_process"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, close_fds=True)
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(pickle.dumps((self.source, self.start, sorted(self.tables), str(self.gtids))))
            child.stdin.flush()
            while (frame := _read_frame(child.stdout)) is not None:
                kind, payload = marshal.loads(frame)
                if kind == "events":
                    yield [decode_event(data) for data in payload]
                elif kind == "error":
                    raise pickle.loads(payload)
                else:
                    raise DecoderCrashed(self.source.name, f"binlog decoder failed: {payload}")
            if self._child is child:  # not closed by us: the child died
                raise DecoderCrashed(self.source.name, f"binlog decoder exited (status {child.wait()})")
        finally:
            self.close()
            for stream in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        """Stops the child; a read blocked on its pipe then ends (callable from any thread)."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    body = stream.read(size)
    return body if len(body) == size else None


# --------------------------------------------------------------------------- child side


def main() -> None:
    tune_gc()
    source, start, tables, gtids = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries frames only
    items = _Outbox()
    reader = BinlogReader(source, start, set(tables), GtidState.parse(gtids or None))
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    threading.Thread(target=_decode, args=(reader, items), daemon=True).start()
    _send(out, items)


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()  # returns at end of file: the parent closed the pipe or died
    os._exit(0)


class _Outbox:
    """Decoded events on their way from the decoding thread to the sending thread.

    `queue.Queue` costs a few microseconds per event in locks; a `SimpleQueue` does not, and
    the decoding thread waits only when `_QUEUE_EVENTS` are held (bounded memory).
    """

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.room = threading.Event()
        self.room.set()

    def put(self, item: tuple[str, Any]) -> None:
        self.items.put(item)
        if self.items.qsize() >= _QUEUE_EVENTS:
            self.room.clear()
            if self.items.qsize() >= _QUEUE_EVENTS:  # the sender may have taken them meanwhile
                self.room.wait()

    def get(self) -> tuple[str, Any]:
        return self.items.get()

    def get_nowait(self) -> tuple[str, Any]:
        return self.items.get_nowait()

    def taken(self) -> None:
        """Called by the sender after taking items: a waiting decoder goes on."""
        if not self.room.is_set():
            self.room.set()


def _decode(reader: BinlogReader, items: _Outbox) -> None:
    try:
        for event in reader.events():
            items.put(("event", encode_event(event)))
    except SyncdError as exc:
        items.put(_error(exc))
    except BaseException:  # handed to the parent, which ends the stream with it
        items.put(("crash", traceback.format_exc()))


def _error(exc: SyncdError) -> tuple[str, Any]:
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except Exception:  # an error class that cannot travel: its text still does
        return ("crash", f"{type(exc).__name__}: {exc}")
    return ("error", data)


def _send(out: IO[bytes], items: _Outbox) -> None:
    """Whatever has piled up goes as one frame; an error or crash ends the stream."""
    while True:
        batch: list[tuple] = []
        changes = 0
        last = None
        item = items.get()
        while True:
            if item[0] != "event":
                last = item
                break
            batch.append(item[1])
            changes += len(item[1][2]) if item[1][0] in ("tx", "part") else 1
            if changes >= _FRAME_CHANGES:
                break
            try:
                item = items.get_nowait()
            except queue.Empty:
                break
        items.taken()
        if batch:
            _write(out, ("events", batch))
        if last is not None:
            _write(out, last)
            return


def _write(out: IO[bytes], frame: tuple) -> None:
    data = marshal.dumps(frame)
    try:
        out.write(_FRAME.pack(len(data)) + data)
        out.flush()
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    main()
