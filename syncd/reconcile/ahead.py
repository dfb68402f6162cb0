"""Read ahead: a producer runs in a second thread while its consumer works on what it made.

A copy or a pass over a table alternates between two servers: the source computes a chunk
(COPY text, rows, digests) and PyMySQL decodes it, then PostgreSQL writes or compares it. Both
servers, and the drivers while they wait on them, run without Python's GIL, so producing chunk
N+1 while chunk N is consumed keeps both cores busy. Items come out exactly in the order they
were produced, so whoever records progress after each item records it in key order, as it
would without the second thread: a resumed copy never skips an unfinished chunk. At most
`depth` items wait between the two threads, which bounds the memory the read-ahead holds.

`rows_per_read` bounds the rows of one chunk of a wide table, so that the few chunks in flight
stay small whatever the table's width.

`Sides` is the other shape of the same idea: a few threads, each with a connection of its own,
answering questions asked ahead (a range's digest) while the asking thread asks the other
server.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar

from syncd.errors import Stopped

T = TypeVar("T")

_END = object()
"""Marks the end of the producer's items in the queue."""
POLL_S = 0.2
"""How often a blocked thread looks whether the other side has gone."""
READ_VALUES = 40_000
"""Values (rows × columns read) one chunk mapped or compared in Python holds at most: its rows
exist several times over meanwhile (as read, mapped, canonical, the target's), and one more
chunk is read ahead."""


def rows_per_read(chunk_rows: int, columns: int) -> int:
    """The rows of one chunk of a table read with `columns` columns: `chunk_rows`, fewer for a
    wide table."""
    return max(1, min(chunk_rows, READ_VALUES // max(1, columns)))


def read_ahead(produce: Callable[[], Generator[T, None, None]], *, name: str, depth: int = 1,
               stop: threading.Event | None = None) -> Iterator[T]:
    """The items of `produce()`, made by a thread of their own, in order.

    An exception of the producer is raised here, after the items made before it; `stop` set
    raises Stopped before the next item. Leaving the iteration early ends the producer after its
    current item (it gets no further than its next `yield`).
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = threading.Event()
    thread = threading.Thread(target=_produce, args=(produce, items, done), daemon=True, name=name)
    thread.start()
    try:
        while True:
            if stop is not None and stop.is_set():
                raise Stopped("stopped")
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        done.set()
        _drain(items, thread)


class _Failed:
    """The producer's exception, handed to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _produce(produce: Callable[[], Generator[T, None, None]], items: queue.Queue,
             done: threading.Event) -> None:
    try:
        with contextlib.closing(produce()) as made:
            for item in made:
                if not _put(items, item, done):
                    return
        _put(items, _END, done)
    except BaseException as exc:  # handed to the consuming thread
        _put(items, _Failed(exc), done)


def _put(items: queue.Queue, item: object, done: threading.Event) -> bool:
    """Queue `item` unless the consumer has gone; False when it has."""
    while not done.is_set():
        try:
            items.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _drain(items: queue.Queue, thread: threading.Thread) -> None:
    """Wait for the producer to end, emptying the queue so that it is never blocked on it."""
    while thread.is_alive():
        with contextlib.suppress(queue.Empty):
            items.get_nowait()
        thread.join(POLL_S / 2)


class Closable(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=Closable)


class Sides(Generic[R]):
    """`count` threads, each with a connection of its own (`open()`), running the functions
    submitted to them; a context manager that closes every connection it opened."""

    def __init__(self, open_: Callable[[], R], count: int, name: str) -> None:
        self._open = open_
        self._local = threading.local()
        self._opened: list[R] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(count, thread_name_prefix=name)

    def __enter__(self) -> Sides[R]:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for connection in self._opened:
            connection.close()

    def submit(self, work: Callable[[R], T]) -> Future[T]:
        """`work(connection)` on one of the threads."""
        return self._pool.submit(self._run, work)

    def _run(self, work: Callable[[R], T]) -> T:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._open()
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return work(connection)
