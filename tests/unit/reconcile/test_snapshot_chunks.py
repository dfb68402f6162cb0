"""A snapshot's chunks as the read-ahead thread reads them and the writing thread writes them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest

from syncd.errors import RowsRejected
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

    def count(result: SimpleNamespace, letters: int) -> None:
        result.dead_letters += letters

    writer = SimpleNamespace(_commit_text=commit_text, _commit=commit,
                             _warn_zero_dates=lambda *_: None, _count_dead_letters=count)
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


class Tx:
    def __init__(self, writes: list[bool], refuse_insert: bool) -> None:
        self.writes, self.refuse_insert, self.cur = writes, refuse_insert, None

    def write_text(self, table: Any, key: Any, columns: Any, lines: bytes, *, insert: bool) -> None:
        self.writes.append(insert)
        if insert and self.refuse_insert:
            raise RowsRejected("duplicate key value violates unique constraint")

    def finish(self, batch: Batch) -> list:
        return []


class Sink:
    def __init__(self, refuse_insert: bool) -> None:
        self.writes: list[bool] = []
        self.refuse_insert = refuse_insert

    @contextmanager
    def long_transaction(self) -> Iterator[Tx]:
        yield Tx(self.writes, self.refuse_insert)


def _commit(sink: Sink, copy: _TableCopy, monkeypatch: pytest.MonkeyPatch) -> int | None:
    monkeypatch.setattr(sys.modules[_Job.__module__], "save_progress", lambda *_: None)
    writer = SimpleNamespace(schema="syncd", name="shop", log=SimpleNamespace(info=lambda *_, **__: None))
    writer._commit_text = partial(_Job._commit_text, writer)
    copy.mappings = [SimpleNamespace(table="orders", key=("id",))]  # type: ignore[list-item]
    state = copy.progress((10,), 10, False)
    return _Job._commit_text(writer, sink, copy, [b"1\n"], Batch(), state)  # type: ignore[arg-type]


def test_lines_go_straight_into_a_table_that_was_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    sink, copy = Sink(refuse_insert=False), job()
    copy.insert = True
    assert _commit(sink, copy, monkeypatch) == 0
    assert sink.writes == [True] and copy.insert


def test_a_key_there_after_all_sends_the_chunk_and_the_rest_through_the_upsert(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sink, copy = Sink(refuse_insert=True), job()
    copy.insert = True
    assert _commit(sink, copy, monkeypatch) == 0
    assert sink.writes == [True, False] and not copy.insert
