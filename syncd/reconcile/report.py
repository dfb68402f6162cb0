"""Reconcile reports for people (a table, then the keys) and for scripts (JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncd.model import key_json
from syncd.reconcile.compare import Key, key_text

EXIT_IN_SYNC = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2

LISTED = 20
"""Keys shown per kind of difference in the human report (JSON lists up to 1000)."""


REPORT_KEYS = 1_000
"""Keys listed per kind of difference in a report (the counts are always exact)."""
SAMPLE_KEYS = 20

SourceKey = tuple[Any, ...]


@dataclass
class MappingReport:
    """What one mapping's pass found (and repaired). Keys are target keys, in `key_columns` order."""

    mapping: str
    source: str
    target_table: str
    key_columns: tuple[str, ...]
    repair: bool
    mode: str = "aligned"
    status: str = "running"
    """in_sync | drift | repaired | error (as recorded in reconcile_runs)."""
    rows_compared: int = 0
    """Source rows checked: rows outside the mapping's filter included where they are read (row by
    row), left out where in-server digests leave them out (pushdown.py)."""
    chunks: int = 0
    chunks_unchanged: int = 0
    """Chunks found unchanged since a pass verified them (both checksums equal), not re-mapped."""
    chunks_pushed_down: int = 0
    """Key ranges found in sync by checksums computed inside both servers (pushdown.py)."""
    chunks_differing: int = 0
    missing: int = 0
    extra: int = 0
    differ: int = 0
    unmappable: int = 0
    """Source rows the mapping cannot map (TransformError), with or without a dead letter."""
    unmappable_unexplained: int = 0
    """Of those, rows without a pending dead letter."""
    explained_by_dead_letters: int = 0
    """Missing, differing, extra or unmappable rows for which a pending dead letter exists."""
    repaired: int = 0
    """Differing keys a repair made right (or left to a newer change of the stream)."""
    dead_lettered: int = 0
    """Differing keys a repair could not apply: their rows are pending dead letters (again)."""
    dead_lettered_rows: list[tuple[str, str]] = field(default_factory=list)
    """(source key text like `id=42`, reason)."""
    letters_retired: int = 0
    """`--repair`: pending dead letters of rows the whole pass found in sync, marked retried."""
    unrepaired: int = 0
    """Differing keys a repair wrote that still differ when read back (not counted repaired)."""
    unrepaired_keys: list[Key] = field(default_factory=list)
    unrepairable: int = 0
    """Differences repair cannot address (extra rows whose source key is unknown)."""
    missing_keys: list[Key] = field(default_factory=list)
    extra_keys: list[Key] = field(default_factory=list)
    differ_rows: list[tuple[Key, tuple[str, ...]]] = field(default_factory=list)
    unmappable_rows: list[tuple[str, str]] = field(default_factory=list)
    """(source key text like `id=42`, reason)."""
    unexplained_rows: list[tuple[str, str]] = field(default_factory=list)
    """The same, of the unmappable rows without a pending dead letter (the drift among them)."""
    repaired_keys_sample: list[SourceKey] = field(default_factory=list)
    repair_errors: list[str] = field(default_factory=list)
    error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    seconds: float = 0.0
    run_id: int | None = None

    @property
    def drift(self) -> int:
        """Differences found (before repair): missing + extra + differ + unexplained unmappable."""
        return self.missing + self.extra + self.differ + self.unmappable_unexplained

    @property
    def rows_per_second(self) -> float:
        return self.rows_compared / self.seconds if self.seconds > 0 else 0.0

    def settle(self) -> None:
        """Decide the final status from the counts."""
        self.finished_at = datetime.now(UTC)
        if self.error is not None:
            self.status = "error"
        elif self.drift == 0:
            self.status = "in_sync"
        elif (self.repair and not self.repair_errors and self.unrepairable == 0
              and self.unmappable_unexplained == 0 and self.dead_lettered == 0 and self.unrepaired == 0
              and self.repaired >= self.missing + self.extra + self.differ):
            self.status = "repaired"
        else:
            self.status = "drift"


def overall_status(reports: Sequence[MappingReport]) -> str:
    statuses = {r.status for r in reports}
    for status in ("error", "drift", "repaired"):
        if status in statuses:
            return status
    return "in_sync"


def exit_code(reports: Sequence[MappingReport]) -> int:
    return {"error": EXIT_ERROR, "drift": EXIT_DRIFT}.get(overall_status(reports), EXIT_IN_SYNC)


def _keys(keys: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [[key_json(v) for v in key] for key in keys]


def report_dict(report: MappingReport) -> dict[str, Any]:
    return {
        "mapping": report.mapping,
        "source": report.source,
        "target_table": report.target_table,
        "key_columns": list(report.key_columns),
        "mode": report.mode,
        "status": report.status,
        "repair": report.repair,
        "rows_compared": report.rows_compared,
        "chunks": report.chunks,
        "chunks_unchanged": report.chunks_unchanged,
        "chunks_pushed_down": report.chunks_pushed_down,
        "chunks_differing": report.chunks_differing,
        "missing": {"count": report.missing, "keys": _keys(report.missing_keys)},
        "extra": {"count": report.extra, "keys": _keys(report.extra_keys)},
        "differ": {"count": report.differ,
                   "rows": [{"key": _keys([k])[0], "columns": list(c)} for k, c in report.differ_rows]},
        "unmappable": {"count": report.unmappable, "unexplained": report.unmappable_unexplained,
                       "rows": [{"row_key": t, "reason": r} for t, r in report.unmappable_rows],
                       "unexplained_rows": [{"row_key": t, "reason": r} for t, r in report.unexplained_rows]},
        "explained_by_dead_letters": report.explained_by_dead_letters,
        "dead_letters_retired": report.letters_retired,
        "repaired": report.repaired,
        "dead_lettered": {"count": report.dead_lettered,
                          "rows": [{"row_key": t, "reason": r} for t, r in report.dead_lettered_rows]},
        "unrepaired": {"count": report.unrepaired, "keys": _keys(report.unrepaired_keys)},
        "unrepairable": report.unrepairable,
        "repaired_keys_sample": _keys(report.repaired_keys_sample),
        "repair_errors": report.repair_errors,
        "error": report.error,
        "seconds": round(report.seconds, 3),
        "rows_per_second": round(report.rows_per_second),
        "run_id": report.run_id,
    }


def as_json(reports: Sequence[MappingReport]) -> dict[str, Any]:
    return {"status": overall_status(reports), "exit_code": exit_code(reports),
            "mappings": [report_dict(r) for r in reports]}


_HEADERS = ("mapping", "source", "status", "rows", "missing", "extra", "differ", "unmappable",
            "unexplained", "explained", "repaired", "seconds")
"""`unexplained`: unmappable rows without a pending dead letter (drift); `explained`: rows that
differ or cannot be mapped whose pending dead letter says why."""


def as_text(reports: Sequence[MappingReport]) -> str:
    table = [[r.mapping, r.source, r.status, str(r.rows_compared), str(r.missing), str(r.extra),
              str(r.differ), str(r.unmappable), str(r.unmappable_unexplained),
              str(r.explained_by_dead_letters), str(r.repaired), f"{r.seconds:.2f}"] for r in reports]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h)
              for i, h in enumerate(_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    for report in reports:
        lines += _details(report)
    if not reports:
        lines.append("(no mappings selected)")
    return "\n".join(lines)


def _listed(keys: Sequence[Sequence[Any]], total: int) -> str:
    shown = "  ".join(key_text(k) for k in keys[:LISTED])
    return shown + (f"  ... ({total - min(total, LISTED)} more)" if total > LISTED else "")


def _details(report: MappingReport) -> list[str]:
    name = report.mapping
    key = "(" + ", ".join(report.key_columns) + ")"
    lines = []
    if report.error:
        lines.append(f"{name}: error: {report.error}")
    if report.missing:
        lines.append(f"{name}: missing in {report.target_table} {key}: "
                     f"{_listed(report.missing_keys, report.missing)}")
    if report.extra:
        lines.append(f"{name}: extra in {report.target_table} {key}: "
                     f"{_listed(report.extra_keys, report.extra)}")
    if report.differ:
        shown = "  ".join(f"{key_text(k)} ({', '.join(c)})" for k, c in report.differ_rows[:LISTED])
        more = report.differ - min(report.differ, LISTED)
        lines.append(f"{name}: differ {key}: {shown}" + (f"  ... ({more} more)" if more else ""))
    for text, reason in report.unexplained_rows[:LISTED]:
        lines.append(f"{name}: cannot map, no dead letter {text}: {reason}")
    unexplained = {text for text, _ in report.unexplained_rows}
    explained = [(t, r) for t, r in report.unmappable_rows if t not in unexplained]
    for text, reason in explained[:LISTED - min(LISTED, len(report.unexplained_rows))]:
        lines.append(f"{name}: cannot map, dead-lettered {text}: {reason}")
    if report.unrepairable:
        lines.append(f"{name}: {report.unrepairable} extra rows cannot be repaired: the target key "
                     "does not hold a copy of the source key")
    for text, reason in report.dead_lettered_rows[:LISTED]:
        lines.append(f"{name}: dead-lettered again {text}: {reason}")
    if report.letters_retired:
        lines.append(f"{name}: {report.letters_retired} dead letters retried: their rows are in sync now")
    if report.unrepaired:
        lines.append(f"{name}: still differ after repair {key}: "
                     f"{_listed(report.unrepaired_keys, report.unrepaired)}")
    for error in report.repair_errors[:LISTED]:
        lines.append(f"{name}: repair: {error}")
    return lines
