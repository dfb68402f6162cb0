"""The periodic reconcile of `syncd run`: one run per interval over the sources it streams."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from syncd.service import periodic
from syncd.service.metrics import Metrics
from syncd.service.periodic import PeriodicReconcile

PLANS = {name: SimpleNamespace(mappings=[SimpleNamespace(name=f"{name}_m") for _ in range(count)])
         for name, count in (("shop", 1), ("app", 1), ("standby", 1), ("empty", 0))}


def test_one_run_per_interval_covers_every_active_source(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    runs: list[dict[str, Any]] = []

    def fake_reconcile(config: object, plans: object, **options: Any) -> list:
        runs.append(options)
        stop.set()
        return []

    monkeypatch.setattr(periodic, "reconcile", fake_reconcile)
    settings = SimpleNamespace(interval_s=0.01, repair=True, chunk_rows=100, pause_s=0.0)
    job = PeriodicReconcile(SimpleNamespace(reconcile=settings), lambda: PLANS,  # type: ignore[arg-type]
                            lambda name: name != "standby", Metrics(), stop=stop)
    job.start()
    job.thread.join(5)
    assert [run["sources"] for run in runs] == [["shop", "app"]]  # the space of both: checked once
    assert runs[0]["repair"] is True and "source" not in runs[0]


def test_drift_series_exist_at_0_before_the_first_run() -> None:
    """So that `increase()` in an alert rule sees the drift of the first run after a start."""
    stop = threading.Event()
    settings = SimpleNamespace(interval_s=3600.0, repair=False, chunk_rows=100, pause_s=0.0)
    metrics = Metrics()
    job = PeriodicReconcile(SimpleNamespace(reconcile=settings), lambda: PLANS,  # type: ignore[arg-type]
                            lambda name: True, metrics, stop=stop)
    job.start()
    stop.set()
    job.thread.join(5)
    for mapping in ("shop_m", "app_m", "standby_m"):
        for kind in ("missing", "extra", "differ"):
            labels = {"mapping": mapping, "kind": kind}
            assert metrics.registry.get_sample_value("syncd_reconcile_drift_rows_total", labels) == 0
