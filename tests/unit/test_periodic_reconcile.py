"""The periodic reconcile of `syncd run`: one run per interval over the sources it streams."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from syncd.reconcile import periodic
from syncd.reconcile.periodic import PeriodicReconcile


def test_one_run_per_interval_covers_every_active_source(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    runs: list[dict[str, Any]] = []

    def fake_reconcile(config: object, plans: object, **options: Any) -> list:
        runs.append(options)
        stop.set()
        return []

    monkeypatch.setattr(periodic, "reconcile", fake_reconcile)
    settings = SimpleNamespace(interval_s=0.01, repair=True, chunk_rows=100, pause_s=0.0)
    plans = {name: SimpleNamespace(mappings=mappings)
             for name, mappings in (("shop", ["m"]), ("app", ["m"]), ("standby", ["m"]), ("empty", []))}
    job = PeriodicReconcile(SimpleNamespace(reconcile=settings), lambda: plans,  # type: ignore[arg-type]
                            lambda name: name != "standby", metrics=None, stop=stop)  # type: ignore[arg-type]
    job.start()
    job.thread.join(5)
    assert [run["sources"] for run in runs] == [["shop", "app"]]  # the space of both: checked once
    assert runs[0]["repair"] is True and "source" not in runs[0]
