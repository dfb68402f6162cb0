"""Small helpers shared by the test suites."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Calls ``fn`` until it returns something truthy without raising AssertionError.

    Returns that value. After ``timeout`` seconds fails with the last AssertionError, or with
    the last falsy value. Any other exception propagates at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
        except AssertionError as exc:
            failure = exc
        else:
            if value:
                return value
            failure = AssertionError(f"still {value!r}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true after {timeout}s: {failure}") from failure
        time.sleep(interval)
