"""The read-ahead thread: order kept, failures raised after what came before, early exits end it."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from functools import partial

import pytest

from syncd.errors import SourceUnavailable, Stopped
from syncd.reconcile.ahead import READ_VALUES, Sides, read_ahead, rows_per_read


def _numbers(count: int, made: list[int], closed: threading.Event | None = None,
             delay: float = 0.0) -> Generator[int, None, None]:
    try:
        for number in range(count):
            if delay:
                time.sleep(delay)
            made.append(number)
            yield number
    finally:
        if closed is not None:
            closed.set()


def test_items_come_in_the_order_they_were_made() -> None:
    made: list[int] = []
    assert list(read_ahead(lambda: _numbers(50, made, delay=0.001), name="t", depth=3)) == list(range(50))


def test_the_producer_runs_ahead_by_at_most_depth_items() -> None:
    made: list[int] = []
    items = read_ahead(lambda: _numbers(100, made), name="t", depth=2)
    assert next(items) == 0
    time.sleep(0.2)
    # one taken, two queued, one made and waiting for room
    assert len(made) <= 4
    items.close()


def test_a_failure_comes_after_the_items_made_before_it() -> None:
    def failing() -> Generator[int, None, None]:
        yield 1
        yield 2
        raise SourceUnavailable("shop", "gone")

    seen = []
    with pytest.raises(SourceUnavailable):
        for item in read_ahead(failing, name="t"):
            seen.append(item)
    assert seen == [1, 2]


def test_a_failure_before_the_first_item_is_raised() -> None:
    def broken() -> Generator[int, None, None]:
        raise SourceUnavailable("shop", "cannot connect")
        yield 0  # pragma: no cover

    with pytest.raises(SourceUnavailable):
        list(read_ahead(broken, name="t"))


def test_leaving_early_closes_the_producer() -> None:
    made: list[int] = []
    closed = threading.Event()
    for item in read_ahead(lambda: _numbers(1000, made, closed), name="t"):
        if item == 3:
            break
    assert closed.wait(2)
    assert len(made) <= 6


def test_a_consumer_failure_ends_the_producer() -> None:
    closed = threading.Event()
    with pytest.raises(ValueError):
        for _ in read_ahead(lambda: _numbers(1000, [], closed), name="t"):
            raise ValueError("consumer failed")
    assert closed.wait(2)


def test_stop_ends_before_the_next_item() -> None:
    stop = threading.Event()
    closed = threading.Event()
    seen = []
    with pytest.raises(Stopped):
        for item in read_ahead(lambda: _numbers(1000, [], closed), name="t", stop=stop):
            seen.append(item)
            if item == 2:
                stop.set()
    assert seen == [0, 1, 2]
    assert closed.wait(2)


class _Connection:
    def __init__(self, opened: list[_Connection]) -> None:
        self.closed = False
        self.thread = threading.current_thread().name
        opened.append(self)

    def close(self) -> None:
        self.closed = True


def test_sides_give_each_thread_one_connection_and_close_them_all() -> None:
    opened: list[_Connection] = []
    barrier = threading.Barrier(2)

    def work(number: int, connection: _Connection) -> tuple[int, str]:
        if number < 2:
            barrier.wait(2)  # the first two run at once, on both threads
        return number, connection.thread

    with Sides(lambda: _Connection(opened), 2, "side") as sides:
        asked = [sides.submit(partial(work, n)) for n in range(10)]
        answers = [f.result() for f in asked]
    assert [n for n, _ in answers] == list(range(10))
    assert len(opened) == 2 and {c.thread for c in opened} == {t for _, t in answers}
    assert all(c.closed for c in opened)


def test_a_side_failure_is_raised_by_its_answer_only() -> None:
    def work(number: int, _connection: _Connection) -> int:
        if number == 1:
            raise SourceUnavailable("shop", "gone")
        return number

    opened: list[_Connection] = []
    with Sides(lambda: _Connection(opened), 2, "side") as sides:
        asked = [sides.submit(partial(work, n)) for n in range(3)]
        assert asked[0].result() == 0 and asked[2].result() == 2
        with pytest.raises(SourceUnavailable):
            asked[1].result()
    assert all(c.closed for c in opened)


def test_a_wide_table_is_read_in_chunks_of_fewer_rows() -> None:
    assert rows_per_read(10_000, 4) == 10_000
    assert rows_per_read(10_000, 20) == READ_VALUES // 20 < 10_000
    assert rows_per_read(100, 20) == 100
    assert rows_per_read(10, 10 * READ_VALUES) == 1
