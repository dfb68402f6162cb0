"""Compare source (through the mapping) with the target; repair drift; re-copy tables.

    reconcile(config, plans, ...) -> list[MappingReport]     syncd/reconcile/engine.py
    snapshot(config, plans, ...) -> list[SnapshotResult]     syncd/reconcile/snapshot.py
    last_runs(conn, state_schema) -> list[RunRecord]         syncd/reconcile/runs.py
"""

from syncd.errors import ReconcileError, SnapshotError
from syncd.reconcile.engine import reconcile
from syncd.reconcile.report import MappingReport
from syncd.reconcile.snapshot import SnapshotResult, snapshot
from syncd.sink.runs import RunRecord, last_runs

__all__ = ["MappingReport", "ReconcileError", "RunRecord", "SnapshotError", "SnapshotResult", "last_runs",
           "reconcile", "snapshot"]
