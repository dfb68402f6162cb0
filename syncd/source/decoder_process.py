"""The binlog reader in a process of its own: decoding runs on another core than mapping and applying.

Decoding a binlog is most of the CPU a Python CDC daemon spends, and one process runs Python on
one core at a time. `DecoderProcess` runs `BinlogReader` in a child process (`python -m
syncd.source.decoder_process`) and hands its events over a pipe, in order, as they come:

* the child decodes, and a second thread of it sends whatever has piled up as one frame (a
  4-byte length, then `marshal` data; at most `_FRAME_CHANGES` row changes or about
  `_FRAME_BYTES` bytes), so a busy stream moves in large frames and a quiet one
  event by event;
* a row is sent as a tuple of its values after the number of its *shape* (its column names
  and value types), announced once; both sides turn rows of a shape with a function generated
  for it. Values `marshal` carries exactly (int, float, str, bytes, None, bool) cross as they
  are, Decimal as its text, a naive datetime as ISO text, anything else tagged (datetime, date
  and timedelta as their fields, an `Undecodable` text marker as its own); the parent rebuilds
  the same objects (`pickle` would cost as
  much as the decoding saved);
* the child's reader gets the source's schema history with its start (pickled), and the entries
  it pins at DDLs come back pickled with their `SchemaChange` (DDL is rare);
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
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO, Any

from syncd.config import SourceConfig
from syncd.errors import DecoderCrashed, SyncdError
from syncd.model import (
    BinlogFileId,
    Heartbeat,
    Op,
    Position,
    Row,
    RowChange,
    SchemaChange,
    SourceTransaction,
    TransactionPart,
    Undecodable,
)
from syncd.observability import tune_gc
from syncd.source.binlog import BinlogReader, SourceEvent
from syncd.source.continuity import ResumeGuard
from syncd.source.gtid import GtidState
from syncd.source.readahead import Run
from syncd.source.schema_history import SchemaHistory

PROCESS_ENV = "SYNCD_DECODER_PROCESS"
_FRAME = struct.Struct("<I")
_QUEUE_CHANGES = 500
"""Row changes decoded ahead of the pipe: bounded memory, however small or large the
transactions are (a large transaction's part of 1,000 changes waits alone). Far more than the
2 ms of gathering holds; 4,000 took a shop drain's tree from 154 to 163 MB."""
_GATHER_S = 0.002
"""The sender waits this long after the first event of a frame, so events pile up while it
sleeps: without it, it woke for each small transaction and took the GIL from the decoding
thread to send it alone (a sixth of the child's CPU went to that hand-over)."""
_FRAME_CHANGES = 2000
"""A frame closes once it holds this many row changes: memory stays bounded on both sides..."""
_FRAME_BYTES = 2 << 20
"""... or once its events take this many bytes (rows of large TEXT and BLOB values)."""
_OPS = {op.value: op for op in Op}
YOUNG_COLLECTION_EVERY = 50_000
"""Where binlogs are decoded, garbage is collected more often than in the rest of the daemon:
the library's events (SYNCD_DECODER=library) form reference cycles, and collecting every
500,000 allocations let their garbage take a decoder process from 135 to 357 MB."""


def enabled() -> bool:
    return os.environ.get(PROCESS_ENV, "1") != "0"


# --------------------------------------------------------------------------- values


def _datetime(value: datetime) -> tuple:
    if value.tzinfo is None:
        if not value.fold:  # the text: parsed back in a fifth of the time (the parent is the busier)
            return ("i", value.isoformat())
        return ("t", value.year, value.month, value.day, value.hour, value.minute, value.second,
                value.microsecond, value.fold)
    if value.tzinfo is UTC:
        if not value.fold:  # a transaction's commit time: text, parsed back in a quarter of the time
            return ("U", value.isoformat())
        return ("u", value.year, value.month, value.day, value.hour, value.minute, value.second,
                value.microsecond, value.fold)
    return ("p", pickle.dumps(value))


_ENCODE: dict[type, Callable[[Any], tuple]] = {
    Decimal: lambda v: ("d", str(v)),
    datetime: _datetime,
    date: lambda v: ("D", v.toordinal()),
    timedelta: lambda v: ("T", v.days, v.seconds, v.microseconds),
    Undecodable: lambda v: ("B", v.column, v.charset, v.hex, v.reason),
}
_NATIVE = frozenset({int, float, str, bytes, bool, type(None)})

_DECODE: dict[str, Callable[[tuple], Any]] = {
    "d": lambda t: Decimal(t[1]),
    "i": lambda t: datetime.fromisoformat(t[1]),
    "t": lambda t: datetime(t[1], t[2], t[3], t[4], t[5], t[6], t[7], fold=t[8]),
    "U": lambda t: datetime.fromisoformat(t[1]),
    "u": lambda t: datetime(t[1], t[2], t[3], t[4], t[5], t[6], t[7], tzinfo=UTC, fold=t[8]),
    "D": lambda t: date.fromordinal(t[1]),
    "T": lambda t: timedelta(t[1], t[2], t[3]),
    "p": lambda t: pickle.loads(t[1]),
    "B": lambda t: Undecodable(t[1], t[2], t[3], t[4]),
}


def encode_value(value: Any) -> Any:
    kind = type(value)
    if kind in _NATIVE:
        return value
    encode = _ENCODE.get(kind)
    return encode(value) if encode is not None else ("p", pickle.dumps(value))


def decode_value(value: Any) -> Any:
    return _DECODE[value[0]](value) if type(value) is tuple else value


# --------------------------------------------------------------------------- rows by shape

SHAPES_MAX = 4096
"""Row shapes an encoder keeps; past this both sides start afresh at the next event (a reset item)."""


def _kind(kind: type) -> str:
    """How a value of this type crosses: as it is, Decimal as its text, datetime as ISO text when
    naive (else tagged), anything else tagged (see encode_value)."""
    if kind in _NATIVE:
        return "n"
    return {Decimal: "d", datetime: "t"}.get(kind, "x")


def _row_encoder(shape: int, kinds: tuple[str, ...]) -> Callable[[Row], tuple]:
    """`row -> (shape, value, ...)`, generated per shape: no per-value dispatch."""
    names = [f"v{i}" for i in range(len(kinds))]
    wrap = {"n": "{}", "d": "str({})",
            "t": "({0}.isoformat() if {0}.tzinfo is None and not {0}.fold else tag({0}))",
            "x": "enc({})"}
    values = "".join(f"{wrap[k].format(n)}, " for n, k in zip(names, kinds, strict=True))
    unpack = f"{', '.join(names)}, = row.values()\n    " if names else ""
    return _compiled(f"def encode(row):\n    {unpack}return ({shape}, {values})\n", "encode",
                     tag=_datetime, enc=encode_value)


def _row_builder(names: tuple[str, ...], kinds: tuple[str, ...]) -> Callable[[tuple], Row]:
    """`(shape, value, ...) -> row`, the inverse of `_row_encoder`, generated per shape."""
    slots = [f"v{i}" for i in range(len(kinds))]
    unwrap = {"n": "{}", "d": "dec({})", "t": "(iso({0}) if {0}.__class__ is str else dec_value({0}))",
              "x": "dec_value({})"}
    items = ", ".join(f"{name!r}: {unwrap[k].format(v)}"
                      for name, v, k in zip(names, slots, kinds, strict=True))
    unpack = "".join(f"{v}, " for v in slots)
    return _compiled(f"def build(data):\n    _, {unpack}= data\n    return {{{items}}}\n", "build",
                     dec=Decimal, iso=datetime.fromisoformat, dec_value=decode_value)


def _compiled(source: str, name: str, **names: Any) -> Callable:
    namespace = dict(names)
    exec(compile(source, "<syncd decoder_process>", "exec"), namespace)  # generated from reprs and a table
    return namespace[name]


class EventEncoder:
    """Child side: events -> marshal-able items. A row crosses as a tuple of its values after the
    number of its shape (column names and value types); a new shape is announced once, before the
    first row that has it, so the parent builds its rows with a function made for it."""

    def __init__(self) -> None:
        self._shapes: dict[tuple[tuple[str, ...], tuple[type, ...]], Callable[[Row], tuple]] = {}
        self._announce: list[tuple] = []

    def encode(self, event: SourceEvent) -> list[tuple]:
        """The items for one event: new shapes first, the event last."""
        if len(self._shapes) >= SHAPES_MAX:  # between events: no row refers to a shape forgotten
            self._shapes.clear()
            self._announce.append(("reset",))
        item = self._event(event)
        announced, self._announce = self._announce, []
        announced.append(item)
        return announced

    def _event(self, event: SourceEvent) -> tuple:
        if isinstance(event, SourceTransaction):
            return ("tx", event.source, [self._change(c) for c in event.changes], _position(event.end),
                    encode_value(event.commit_time), event.follows_parts, event.gtid, event.doubts)
        if isinstance(event, TransactionPart):
            return ("part", event.source, [self._change(c) for c in event.changes],
                    encode_value(event.commit_time))
        if isinstance(event, SchemaChange):  # rare: its schema history entries travel pickled
            return ("ddl", event.source, event.schema, event.statement, _position(event.end),
                    encode_value(event.commit_time), event.gtid,
                    pickle.dumps(event.schemas) if event.schemas else None)
        return ("beat", event.source, _position(event.position))

    def _change(self, change: RowChange) -> tuple:
        before, after = change.before, change.after
        return (change.table, change.op.value, None if before is None else self._row(before),
                None if after is None else self._row(after), change.event_pos, change.row_index,
                change.key_columns, change.zero_dates, change.undecodable)

    def _row(self, row: Row) -> tuple:
        key = (tuple(row), tuple(map(type, row.values())))
        encode = self._shapes.get(key)
        if encode is None:
            encode = self._new_shape(*key)
        return encode(row)

    def _new_shape(self, names: tuple[str, ...], types: tuple[type, ...]) -> Callable[[Row], tuple]:
        shape = len(self._shapes)
        kinds = tuple(_kind(t) for t in types)
        encode = self._shapes[(names, types)] = _row_encoder(shape, kinds)
        self._announce.append(("shape", shape, names, kinds))
        return encode


class EventDecoder:
    """Parent side: items -> events (None for a shape announcement)."""

    def __init__(self) -> None:
        self._builders: list[Callable[[tuple], Row]] = []
        self._position = _Positions()

    def decode(self, data: tuple) -> SourceEvent | None:
        kind = data[0]
        if kind == "tx":
            end = self._position(data[3])
            assert end is not None
            return SourceTransaction(data[1], [self._change(c) for c in data[2]], end,
                                     decode_value(data[4]), data[5], data[6],
                                     tuple(tuple(doubt) for doubt in data[7]))
        if kind == "part":
            return TransactionPart(data[1], [self._change(c) for c in data[2]], decode_value(data[3]))
        if kind == "ddl":
            end = self._position(data[4])
            assert end is not None
            return SchemaChange(data[1], data[2], data[3], end, decode_value(data[5]), data[6],
                                pickle.loads(data[7]) if data[7] is not None else ())
        if kind == "beat":
            return Heartbeat(data[1], self._position(data[2]))
        if kind == "shape":
            assert data[1] == len(self._builders), "row shapes out of step"
            self._builders.append(_row_builder(data[2], data[3]))
        else:
            assert kind == "reset", kind
            self._builders.clear()
        return None

    def decode_all(self, items: list[tuple]) -> list[SourceEvent]:
        return [event for data in items if (event := self.decode(data)) is not None]

    def _change(self, data: tuple) -> RowChange:
        table, op, before, after, event_pos, row_index, key, zeros, undecodable = data
        builders = self._builders
        return RowChange(table, _OPS[op], None if before is None else builders[before[0]](before),
                         None if after is None else builders[after[0]](after), event_pos, row_index,
                         key, zeros, undecodable)


# --------------------------------------------------------------------------- events


def _position(position: Position | None) -> tuple | None:
    if position is None:
        return None
    file_id = position.file_id
    return (position.file, position.pos, position.gtid,
            None if file_id is None else (file_id.created, file_id.server_id))


class _Positions:
    """Parent side: position tuples -> Positions; the few distinct file ids are built once."""

    def __init__(self) -> None:
        self._file_ids: dict[tuple[int, int], BinlogFileId] = {}

    def __call__(self, data: tuple | None) -> Position | None:
        if data is None:
            return None
        file, pos, gtid, key = data
        if key is None:
            return Position(file, pos, gtid)
        file_id = self._file_ids.get(key)
        if file_id is None:
            if len(self._file_ids) > 64:
                self._file_ids.clear()
            file_id = self._file_ids[key] = BinlogFileId(*key)
        return Position(file, pos, gtid, file_id)


# --------------------------------------------------------------------------- parent side


class DecoderProcess:
    """`BinlogReader`'s interface (`events()`, `runs()`, `close()`), decoding in a child process."""

    def __init__(self, source: SourceConfig, start: Position, tables: set[str],
                 gtid_state: GtidState | None = None, *, guard: ResumeGuard | None = None,
                 history: SchemaHistory | None = None) -> None:
        self.source = source
        self.start = start
        self.tables = tables
        self.gtids = gtid_state or GtidState()
        self.guard = guard
        self.history = history
        """Handed to the child's reader; the entries it pins come back with the DDL events."""
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def events(self) -> Iterator[SourceEvent]:
        for run in self.runs():
            yield from run

    def runs(self) -> Iterator[list[SourceEvent]]:
        """The events as the child sends them: a frame's worth at a time."""
        with self._lock:
            child = self._child = _take_spare() or _spawn()
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(pickle.dumps((self.source, self.start, sorted(self.tables), str(self.gtids),
                                            self.guard, self.history)))
            child.stdin.flush()
            decoder = EventDecoder()
            while (frame := _read_frame(child.stdout)) is not None:
                run = self._run(decoder, frame)
                del frame  # not held while the run waits in the read-ahead
                yield run
            if self._child is child:  # not closed by us: the child died
                raise DecoderCrashed(self.source.name, f"binlog decoder exited (status {child.wait()})")
        finally:
            self.close()
            for stream in (child.stdin, child.stdout):
                with contextlib.suppress(OSError):
                    stream.close()

    def _run(self, decoder: EventDecoder, frame: bytes) -> Run:
        """The events of a frame (its encoded forms gone when this returns), or its error raised."""
        kind, payload = marshal.loads(frame)
        if kind == "events":
            return Run(decoder.decode_all([event for part in payload for event in marshal.loads(part)]),
                       len(frame))
        if kind == "error":
            raise pickle.loads(payload)
        raise DecoderCrashed(self.source.name, f"binlog decoder failed: {payload}")

    def close(self) -> None:
        """Stops the child; a read blocked on its pipe then ends (callable from any thread)."""
        with self._lock:
            child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait()


_spares: list[subprocess.Popen[bytes]] = []
_spares_lock = threading.Lock()


def prestart(count: int) -> None:
    """Start `count` decoder processes now; each waits to be handed a source by the next stream
    that starts. Their start-up (a fifth of a second each) then overlaps the daemon's own checks,
    which mostly wait on the network, instead of delaying the first rows."""
    if not enabled():
        return
    for _ in range(count):
        try:
            child = _spawn()
        except OSError:  # only a head start: a stream that finds no spare starts its own
            return
        with _spares_lock:
            _spares.append(child)


def _take_spare() -> subprocess.Popen[bytes] | None:
    with _spares_lock:
        while _spares:
            child = _spares.pop()
            if child.poll() is None:
                return child
    return None


def _spawn() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "syncd.source.decoder_process"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)


def _read_frame(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    body = stream.read(size)
    return body if len(body) == size else None


# --------------------------------------------------------------------------- child side


def main() -> None:
    tune_gc(young_every=YOUNG_COLLECTION_EVERY)
    try:
        source, start, tables, gtids, guard, history = pickle.load(sys.stdin.buffer)
    except EOFError:  # started ahead and never handed a source: the daemon has exited
        return
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries frames only
    items = _Outbox()
    reader = BinlogReader(source, start, set(tables), GtidState.parse(gtids or None), guard=guard,
                          history=history)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    threading.Thread(target=_decode, args=(reader, items), daemon=True).start()
    _send(out, items)


def _exit_with_parent() -> None:
    sys.stdin.buffer.read()  # returns at end of file: the parent closed the pipe or died
    os._exit(0)


class _Outbox:
    """Decoded events on their way from the decoding thread to the sending thread.

    `queue.Queue` costs a few microseconds per event in locks; a `SimpleQueue` does not, and
    the decoding thread waits only when `_QUEUE_CHANGES` row changes are held (bounded memory).
    Each side counts what it moved on a counter only it writes, so no count is lost between them.
    """

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.room = threading.Event()
        self.room.set()
        self.put_changes = 0
        self.taken_changes = 0

    def put(self, item: tuple[str, Any], changes: int = 1) -> None:
        self.items.put(item)
        self.put_changes += changes
        if self.held() >= _QUEUE_CHANGES:
            self.room.clear()
            if self.held() >= _QUEUE_CHANGES:  # the sender may have taken them meanwhile
                self.room.wait()

    def held(self) -> int:
        """Row changes put and not yet taken."""
        return self.put_changes - self.taken_changes

    def get(self) -> tuple[str, Any]:
        return self.items.get()

    def get_nowait(self) -> tuple[str, Any]:
        return self.items.get_nowait()

    def taken(self, changes: int) -> None:
        """Called by the sender after taking items: a waiting decoder goes on."""
        self.taken_changes += changes
        if not self.room.is_set():
            self.room.set()


def _decode(reader: BinlogReader, items: _Outbox) -> None:
    encoder = EventEncoder()
    try:
        for event in reader.events():
            items.put(("event", encoder.encode(event)), _changes(event))
    except SyncdError as exc:
        items.put(_error(exc))
    except BaseException:  # handed to the parent, which ends the stream with it
        items.put(("crash", traceback.format_exc()))


def _changes(event: SourceEvent) -> int:
    return len(event.changes) if isinstance(event, SourceTransaction | TransactionPart) else 1


def _error(exc: SyncdError) -> tuple[str, Any]:
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except Exception:  # an error class that cannot travel: its text still does
        return ("crash", f"{type(exc).__name__}: {exc}")
    return ("error", data)


def _send(out: IO[bytes], items: _Outbox) -> None:
    """Whatever has piled up goes as one frame (each item's events marshalled apart, so the
    frame's bytes are known as it grows); an error or crash ends the stream."""
    while True:
        parts: list[bytes] = []
        changes = size = 0
        last = None
        item = items.get()
        if items.held() < _FRAME_CHANGES:
            time.sleep(_GATHER_S)
        while True:
            if item[0] != "event":
                last = item
                break
            part = marshal.dumps(item[1])
            parts.append(part)
            size += len(part)
            event = item[1][-1]
            changes += len(event[2]) if event[0] in ("tx", "part") else 1
            if changes >= _FRAME_CHANGES or size >= _FRAME_BYTES:
                break
            try:
                item = items.get_nowait()
            except queue.Empty:
                break
        items.taken(changes)
        if parts:
            _write(out, ("events", parts))
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
