"""The source runner's back-off starts again from 0.5 s once the stream commits again."""

from __future__ import annotations

from types import SimpleNamespace

from syncd.service.runner import SourceRunner


def test_the_backoff_doubles_per_failure_since_the_last_commit_up_to_the_maximum() -> None:
    runner = SimpleNamespace(config=SimpleNamespace(retry_max_s=30.0), _retries_since_progress=0)
    waits = []
    for _ in range(8):
        waits.append(SourceRunner._backoff(runner, None))  # type: ignore[arg-type]
        runner._retries_since_progress += 1  # what _before_retry counts
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    runner._retries_since_progress = 0  # what a commit (_on_batch) does
    assert SourceRunner._backoff(runner, None) == 0.5  # type: ignore[arg-type]
