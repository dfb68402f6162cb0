"""What crosses the decoder process's pipe comes back as the very same values and events (pure)."""

from __future__ import annotations

import io
import marshal
import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import ContinuityLost, PositionLost, SourceUnavailable, StreamError
from syncd.model import (
    BinlogFileId,
    ColumnSchema,
    Heartbeat,
    Op,
    Position,
    RowChange,
    SchemaChange,
    SourceTransaction,
    TableSchema,
    TransactionPart,
)
from syncd.source import decoder_process
from syncd.source.continuity import ResumeGuard
from syncd.source.decoder_process import (
    DecoderCrashed,
    EventDecoder,
    EventEncoder,
    decode_value,
    encode_value,
)
from syncd.source.schema_history import SchemaHistory

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False), st.text(), st.binary(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(), st.datetimes(timezones=st.just(UTC)), st.dates(), st.timedeltas(),
    st.datetimes(timezones=st.just(timezone(timedelta(hours=8)))),
)


def through_pipe(value: object) -> object:
    return decode_value(marshal.loads(marshal.dumps(encode_value(value))))


@given(VALUES)
def test_every_value_comes_back_with_its_type_and_exact_value(value: object) -> None:
    back = through_pipe(value)
    assert type(back) is type(value)
    assert repr(back) == repr(value)
    if isinstance(value, datetime):
        assert back.fold == value.fold and back.tzinfo == value.tzinfo


def test_a_later_fold_survives() -> None:
    ambiguous = datetime(2024, 11, 3, 1, 30, fold=1)
    assert through_pipe(ambiguous).fold == 1


def test_every_event_kind_comes_back_equal() -> None:
    """Positions with the file they are in, and GTIDs, included (repr compares every field)."""
    position = Position("mysql-bin.000003", 4711, "0-1-42", BinlogFileId(1_764_000_000, 7))
    change = RowChange("orders", Op.UPDATE, {"id": 1, "amount": Decimal("1.50"), "at": date(2024, 1, 1)},
                       {"id": 1, "amount": Decimal("2.50"), "at": None}, 900, 3, ("id",), ("at",))
    when = datetime(2024, 5, 1, 4, 30, tzinfo=UTC)
    events = [
        SourceTransaction("shop", [change, RowChange("orders", Op.DELETE, {"id": 2}, None)], position, when,
                          follows_parts=True, gtid="0-1-42"),
        TransactionPart("shop", [RowChange("orders", Op.INSERT, None, {"id": 3, "raw": b"\\x00"})],
                        datetime(2024, 1, 1, tzinfo=UTC)),
        SchemaChange("shop", "db", "ALTER TABLE orders ADD note TEXT", position, when, "0-1-43"),
        SchemaChange("shop", "db", "DROP TABLE x", Position("mysql-bin.000003", 4800), when),
        Heartbeat("shop", position), Heartbeat("shop", None),
    ]
    assert_crosses(events)


def test_doubts_and_schema_history_entries_come_back_equal() -> None:
    """What the reader could not name, and the entries it pinned at a DDL (rare: pickled)."""
    position = Position("mysql-bin.000003", 4711)
    when = datetime(2024, 5, 1, 4, 30, tzinfo=UTC)
    columns = (ColumnSchema("id", "int", "int(10) unsigned", False, precision=10, scale=0),
               ColumnSchema("tag", "enum", "enum('a','b')", labels=("a", "b")))
    entries = (TableSchema("orders", position, columns, ("id",), "pinned", "MINIMAL"),
               TableSchema("notes", position, None, (), "a later DDL", "NO_LOG"))
    assert_crosses([
        SourceTransaction("shop", [RowChange("notes", Op.INSERT, None, {"id": 1})], position, when,
                          doubts=(("orders", "its table map does not fit"),)),
        SchemaChange("shop", "db", "ALTER TABLE orders ADD x INT", position, when, schemas=entries),
    ])


def assert_crosses(events: list, encoder: EventEncoder | None = None) -> None:
    """Through one encoder/decoder pair, frame by frame as the pipe carries them."""
    encoder, decoder = encoder or EventEncoder(), EventDecoder()
    items = [item for event in events for item in encoder.encode(event)]
    back = decoder.decode_all(marshal.loads(marshal.dumps(items)))
    assert back == events and [repr(e) for e in back] == [repr(e) for e in events]


NAMES = st.sampled_from(["id", "amount", "at", "note", "raw", "状态"])
ROWS = st.dictionaries(NAMES, VALUES, max_size=5)


@given(st.lists(st.tuples(st.sampled_from(list(Op)), ROWS, ROWS), min_size=1, max_size=30))
def test_rows_of_many_shapes_come_back_exactly(changes: list[tuple[Op, dict, dict]]) -> None:
    """Column names, their order and value types vary row by row (a shape each, or a shape reused)."""
    rows = [RowChange("t", op, None if op is Op.INSERT else before, None if op is Op.DELETE else after,
                      i, 0, ("id",)) for i, (op, before, after) in enumerate(changes)]
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert_crosses([SourceTransaction("shop", rows, Position("b.000001", 4), when)])


def test_past_the_shape_limit_both_sides_start_afresh(monkeypatch) -> None:
    monkeypatch.setattr(decoder_process, "SHAPES_MAX", 3)
    rows = [{"c": i} if i % 2 else {"c": str(i), f"n{i}": Decimal(i)} for i in range(12)]
    at = datetime(2024, 1, 1, tzinfo=UTC)
    events = [TransactionPart("shop", [RowChange("t", Op.INSERT, None, row) for row in rows], at),
              TransactionPart("shop", [RowChange("t", Op.INSERT, None, row) for row in reversed(rows)], at)]
    assert_crosses(events)


def test_source_errors_travel_with_their_class_and_context() -> None:
    for error in (SourceUnavailable("shop", "connection lost (2013): gone"),
                  PositionLost("shop", "purged"), ContinuityLost("shop", "binlog continuity lost at x"),
                  StreamError("shop", "compressed event", "b.000001:4"),
                  DecoderCrashed("shop", "binlog decoder exited (status -9)")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert back.retriable == error.retriable
    assert DecoderCrashed("shop", "x").retriable


def test_the_schema_history_crosses_to_the_child() -> None:
    history = SchemaHistory([TableSchema("orders", Position("b.000001", 4), None, (), "unknown")],
                            recording=True, metadata="NO_LOG")
    back = pickle.loads(pickle.dumps(history))
    assert back.entries() == history.entries() and (back.recording, back.metadata) == (True, "NO_LOG")


def test_the_resume_guard_crosses_to_the_child() -> None:
    """The stream's own continuity check travels with the source to the decoder process."""
    guard = ResumeGuard("shop", Position("mysql-bin.000001", 4711, "0-1-3", BinlogFileId(1_764_000_000, 1)))
    back = pickle.loads(pickle.dumps(guard))
    assert back == guard and back.start.file_id == guard.start.file_id



def test_a_process_started_ahead_and_never_used_leaves_quietly() -> None:
    decoder_process.prestart(1)
    spare = decoder_process._take_spare()
    assert spare is not None and spare.stdin is not None
    spare.stdin.close()  # what the daemon's exit does to it
    assert spare.wait(timeout=60) == 0


def sent_frames(items: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """The frames `_send` writes for `items` (queued before it starts), decoded."""
    outbox = decoder_process._Outbox()
    for item in items:
        outbox.put(item)
    out = io.BytesIO()
    decoder_process._send(out, outbox)
    out.seek(0)
    frames = []
    while (frame := decoder_process._read_frame(out)) is not None:
        frames.append(marshal.loads(frame))
    return frames


def test_a_frame_closes_at_its_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events of large rows: a frame ends once its parts reach `_FRAME_BYTES`, whatever the count."""
    monkeypatch.setattr(decoder_process, "_FRAME_BYTES", 10_000)
    encoder = EventEncoder()
    big = [SourceTransaction("shop", [RowChange("t", Op.INSERT, None, {"id": n, "doc": "字" * 2000})],
                             Position("b.000001", n), datetime(2024, 1, 1, tzinfo=UTC)) for n in range(5)]
    frames = sent_frames([("event", encoder.encode(event)) for event in big] + [("crash", "end")])
    assert [kind for kind, _ in frames] == ["events", "events", "events", "crash"]
    decoder = EventDecoder()
    events = [event for kind, parts in frames if kind == "events"
              for event in decoder.decode_all([e for part in parts for e in marshal.loads(part)])]
    assert events == big
