"""The read-ahead buffer between a pipeline's reader thread and its applying thread."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from syncd.errors import SourceUnavailable
from syncd.model import Heartbeat, Op, Position, RowChange, SourceTransaction
from syncd.source.binlog import SourceEvent
from syncd.source.readahead import ReadAhead, Run, weight

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def transaction(number: int, changes: int = 1) -> SourceTransaction:
    rows = [RowChange("t", Op.INSERT, None, {"id": number * 1000 + i}, 4, i, ("id",))
            for i in range(changes)]
    return SourceTransaction("shop", rows, Position("b.000001", number), WHEN)


def drain(feed: ReadAhead, count: int) -> list[SourceEvent | BaseException]:
    return [feed.get(5) for _ in range(count)]


def test_events_come_out_in_order_across_runs() -> None:
    runs = [[transaction(1), transaction(2)], [transaction(3)], [Heartbeat("shop", None)]]
    feed = ReadAhead(iter(runs), "test")
    out = drain(feed, 4)
    assert out == [event for run in runs for event in run]
    with pytest.raises(queue.Empty):
        feed.get(0.05)
    feed.close()


def test_an_error_follows_the_events_read_before_it() -> None:
    def runs() -> Iterator[list[SourceEvent]]:
        yield [transaction(1)]
        yield [transaction(2)]
        raise SourceUnavailable("shop", "connection lost")

    feed = ReadAhead(runs(), "test")
    first, second, error = drain(feed, 3)
    assert (first, second) == (transaction(1), transaction(2))
    assert isinstance(error, SourceUnavailable)


def test_the_reader_waits_while_the_limit_is_held() -> None:
    read: list[int] = []

    def runs() -> Iterator[list[SourceEvent]]:
        for number in range(10):
            read.append(number)
            yield [transaction(number, changes=4)]

    feed = ReadAhead(runs(), "test", limit=8)
    time.sleep(0.2)
    assert len(read) == 3  # two runs held (8 changes); the third is read and waits for room
    assert drain(feed, 1) == [transaction(0, changes=4)]
    time.sleep(0.2)
    assert len(read) == 4
    assert drain(feed, 9) == [transaction(n, changes=4) for n in range(1, 10)]


def test_close_releases_a_waiting_reader() -> None:
    endless = ([transaction(1, changes=10)] for _ in iter(int, 1))
    feed = ReadAhead(endless, "test", limit=5)
    time.sleep(0.1)
    feed.close()
    feed._thread.join(5)
    assert not feed._thread.is_alive()


def test_weight_counts_changes_and_at_least_one_per_event() -> None:
    assert weight([transaction(1, changes=3), Heartbeat("shop", None)]) == 4
    assert weight([SourceTransaction("shop", [], Position("b.000001", 1), WHEN)]) == 1


def test_the_reader_waits_while_the_byte_limit_is_held() -> None:
    """Frames of large rows: few changes, many bytes; the bytes handed over are counted."""
    read: list[int] = []

    def runs() -> Iterator[list[SourceEvent]]:
        for number in range(6):
            read.append(number)
            yield Run([transaction(number)], 1000)

    feed = ReadAhead(runs(), "test", limit=100, byte_limit=2000)
    time.sleep(0.2)
    assert len(read) == 3  # two runs held (2,000 bytes); the third is read and waits for room
    assert feed.handed_bytes == 0
    assert drain(feed, 1) == [transaction(0)]
    assert feed.handed_bytes == 1000
    assert drain(feed, 5) == [transaction(n) for n in range(1, 6)]
    assert feed.handed_bytes == 6000


def test_runs_of_an_in_process_reader_count_no_bytes() -> None:
    feed = ReadAhead(iter([[transaction(1)], [transaction(2)]]), "test", byte_limit=1)
    assert drain(feed, 2) == [transaction(1), transaction(2)]
    assert feed.handed_bytes == 0
