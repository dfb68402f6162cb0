"""A snapshot's chunks as the read-ahead thread reads them and the writing thread writes them."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from syncd.mapping.plan import ChangeContext
from syncd.model import CopyProgress
from syncd.reconcile.copytext import CopyText
from syncd.reconcile.snapshot import _Chunk, _Job, _read_chunk, _TableCopy
from syncd.sink.batch import Batch
from syncd.source.chunks import Fetched


class Reader:
    """Serves COPY lines of keys 1..`rows` in chunks, and records what is read again."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.between: list[tuple[Any, Any]] = []

    def copy_lines(self, table: str, key: Any, line: str, after: Any, limit: int, *,
                   reads: Any = ()) -> Fetched:
        first = 1 if after is None else after[0] + 1
        keys = range(first, min(first + limit, self.rows + 1))
        return Fetched(["line", "id"], [(f"{k}\n".encode(), k) for k in keys], {})

    def rows_by_keys_fetched(self, table: str, key: Any, columns: Any, keys: Any) -> tuple[list, dict]:
        return [], {}

    def rows_between(self, table: str, key: Any, columns: Any, after: Any, upto: Any) -> tuple[list, dict]:
        self.between.append((after, upto))
        return [{"id": k} for k in range(after[0] + 1, upto[0] + 1)], {}


def job() -> _TableCopy:
    return _TableCopy(table="orders", key=("id",), columns=["id"], mappings=[], text=CopyText("L", ("id",)),
                      ctx=ChangeContext("shop", "snapshot@f:4", datetime.now(UTC)), progress_key="orders",
                      position="f:4", rows=10)


def test_chunks_follow_each_other_by_their_last_key() -> None:
    reader = Reader(25)
    first = _read_chunk(reader, job(), None, 10)  # type: ignore[arg-type]
    second = _read_chunk(reader, job(), first.last, 10)  # type: ignore[arg-type]
    last = _read_chunk(reader, job(), (20,), 10)  # type: ignore[arg-type]
    assert (first.after, first.last, first.count) == (None, (10,), 10)
    assert (second.after, second.last) == ((10,), (20,))
    assert second.lines == [f"{k}\n".encode() for k in range(11, 21)]
    assert (last.last, last.count) == ((25,), 5)
    assert _read_chunk(reader, job(), (25,), 10).last == (25,)  # type: ignore[arg-type]


def _writer(rejects: bool) -> tuple[SimpleNamespace, list[CopyProgress]]:
    saved: list[CopyProgress] = []

    def commit_text(_sink: Any, _job: Any, _lines: Any, _batch: Any, state: CopyProgress) -> int | None:
        if rejects:
            return None
        saved.append(state)
        return 0

    def commit(_sink: Any, _batch: Batch, state: CopyProgress) -> int:
        saved.append(state)
        return 0

    writer = SimpleNamespace(_commit_text=commit_text, _commit=commit,
                             _warn_zero_dates=lambda *_: None)
    return writer, saved


def test_a_rejected_chunk_is_read_again_over_exactly_its_own_range() -> None:
    """The reading thread has moved on: the chunk is read again between its own bounds, never
    from its start with a limit (rows inserted meanwhile would end it early and skip rows)."""
    reader, result = Reader(30), SimpleNamespace(dead_letters=0)
    writer, saved = _writer(rejects=True)
    chunk = _read_chunk(reader, job(), (10,), 10)  # type: ignore[arg-type]
    _Job._write_chunk(writer, reader, None, job(), chunk, copied=10, result=result)  # type: ignore[arg-type]
    assert reader.between == [((10,), (20,))]
    assert [(s.last_key, s.rows_copied, s.done) for s in saved] == [([20], 20, False)]


def test_progress_records_the_chunks_last_key_and_the_end() -> None:
    reader, result = Reader(15), SimpleNamespace(dead_letters=0)
    writer, saved = _writer(rejects=False)
    copied = 0
    after = None
    while True:
        chunk: _Chunk = _read_chunk(reader, job(), after, 10)  # type: ignore[arg-type]
        _Job._write_chunk(writer, reader, None, job(), chunk, copied=copied,  # type: ignore[arg-type]
                          result=result)
        copied += chunk.count
        after = chunk.last
        if chunk.count < 10:
            break
    assert [(s.last_key, s.rows_copied, s.done) for s in saved] == [([10], 10, False), ([15], 15, True)]
    assert reader.between == []
