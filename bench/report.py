"""The benchmark's targets, their PASS/FAIL verdicts and the printed tables, per workload.

Every verdict that compares with a peer or with the library takes the baseline from the same
run (same machine, same minutes, same data), and prints the ratio and the baseline beside
PASS/FAIL; a figure or a baseline that is missing (a phase failed, a peer skipped) gives
MISSING, never PASS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from bench.peers import CHAMELEON, RELADIFF

TARGETS: dict[str, dict[str, float]] = {
    "oltp": {"drain_changes_per_s": 15_000, "drain_ratio_to_raw_decode": 4.0, "p99_lag_ms_at_1000": 250,
             "snapshot_rows_per_s": 80_000, "reconcile_rows_per_s_in_sync": 200_000, "peak_rss_mb": 150},
    "shop": {"copy_ratio_to_pg_chameleon": 2.0, "reconcile_in_sync_ratio_to_reladiff": 2.0,
             "reconcile_drift_ratio_to_reladiff": 5.0, "drain_ratio_to_raw_decode": 6.0, "peak_rss_mb": 150},
}
"""oltp: syncd's own targets on its own tables; shop: what a user compares syncd with (the
realistic mapping against copy-only or compare-only peers). Peak RSS: syncd's whole process
tree (its decoder processes included), in every phase of either workload."""


@dataclass
class Verdict:
    workload: str
    target: str
    value: float | None
    unit: str
    threshold: float
    baseline: float | None = None
    baseline_name: str | None = None
    at_most: bool = False
    detail: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_name is None:
            return None
        if self.value is None or not self.baseline:
            return None
        return round(self.value / self.baseline, 2)

    @property
    def verdict(self) -> str:
        measured = self.ratio if self.baseline_name is not None else self.value
        if measured is None:
            return "MISSING"
        passed = measured <= self.threshold if self.at_most else measured >= self.threshold
        return "PASS" if passed else "FAIL"

    def line(self) -> str:
        value = f"{fmt(self.value)}{self.unit}"
        if self.baseline_name is not None:
            compared = (f"{value} vs {self.baseline_name} {fmt(self.baseline)}{self.unit}:"
                        f" x{fmt(self.ratio)} (target x{fmt(self.threshold)})")
        else:
            sign = "<=" if self.at_most else ">="
            compared = f"{value} (target {sign} {fmt(self.threshold)}{self.unit})"
        detail = f"; {self.detail}" if self.detail else ""
        return f"{self.verdict:<7} {self.workload}: {self.target}: {compared}{detail}"

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "verdict": self.verdict}


def fmt(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _get(figures: Any, *path: str) -> Any:
    """figures[path[0]][path[1]]..., or None where a part is missing (a failed or skipped phase)."""
    for key in path:
        if not isinstance(figures, dict):
            return None
        figures = figures.get(key)
    return figures


def _drift(f: dict[str, Any]) -> str:
    share = _get(f, "reconcile", "drift_share")
    return "missing" if share is None else f"{share:.1%}"


def _rss(phases: Iterator[tuple[str, Any]]) -> tuple[float | None, str]:
    """The highest peak RSS over the phases that have one, and the phase that reached it."""
    measured = [(part["peak_rss_mb"], name) for name, part in phases
                if isinstance(part, dict) and part.get("peak_rss_mb")]
    if not measured:
        return None, ""
    peak, name = max(measured)
    return peak, f"highest in {name} (over {len(measured)} phases)"


# ---------------------------------------------------------------- verdicts


def _oltp_phases(f: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    yield "drain", f.get("drain")
    yield "drain, library decoder", f.get("drain_library_decoder")
    yield "drain, a process per source", f.get("drain_process_per_source")
    for lag in f.get("lag") or []:
        yield f"lag at {lag.get('offered_rate')}/s", lag
    yield "syncd snapshot", _get(f, "snapshot", "syncd_snapshot")
    yield "syncd run initial load", _get(f, "snapshot", "syncd_run_initial_load")
    yield "reconcile in sync", _get(f, "reconcile", "in_sync")
    yield "reconcile with drift", _get(f, "reconcile", "with_drift")


def oltp_verdicts(f: dict[str, Any]) -> list[Verdict]:
    t = TARGETS["oltp"]
    lag1000 = next((x for x in f.get("lag") or [] if x.get("offered_rate") == 1000), {})
    peak, where = _rss(_oltp_phases(f))
    return [
        Verdict("oltp", "drain, syncd run", _get(f, "drain", "changes_per_s"), " changes/s",
                t["drain_changes_per_s"]),
        Verdict("oltp", "drain, syncd run, start-up included", _get(f, "drain", "changes_per_s"),
                " changes/s", t["drain_ratio_to_raw_decode"], _get(f, "raw_decode", "library", "rows_per_s"),
                "the library's raw decode"),
        Verdict("oltp", "p99 lag at 1,000 changes/s", lag1000.get("p99_ms"), " ms", t["p99_lag_ms_at_1000"],
                at_most=True),
        Verdict("oltp", "syncd snapshot", _get(f, "snapshot", "syncd_snapshot", "rows_per_s"), " rows/s",
                t["snapshot_rows_per_s"]),
        Verdict("oltp", "reconcile in sync, first pass", _get(f, "reconcile", "in_sync", "rows_per_s"),
                " rows/s", t["reconcile_rows_per_s_in_sync"]),
        Verdict("oltp", "peak RSS of syncd's process tree, every phase", peak, " MB", t["peak_rss_mb"],
                at_most=True, detail=where),
    ]


def _shop_phases(f: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for style in ("realistic", "plain"):
        yield f"copy, syncd snapshot, {style}", _get(f, "copy", style, "syncd_snapshot")
        yield f"copy, syncd run initial load, {style}", _get(f, "copy", style, "syncd_run_initial_load")
        yield f"drain, {style}", _get(f, "drain", style)
        yield f"snapshot --mapping of orders, {style}", _get(f, "reconcile", "resnapshot", style)
        yield f"reconcile in sync, {style}", _get(f, "reconcile", "in_sync", style)
        yield f"reconcile with drift, {style}", _get(f, "reconcile", "with_drift", style)


def shop_verdicts(f: dict[str, Any]) -> list[Verdict]:
    t = TARGETS["shop"]
    chameleon = _get(f, "copy", CHAMELEON, "rows_per_s")
    peak, where = _rss(_shop_phases(f))
    copy = [Verdict("shop", f"copy through the realistic mapping, {label}",
                    _get(f, "copy", "realistic", key, "rows_per_s"), " rows/s",
                    t["copy_ratio_to_pg_chameleon"], chameleon, "pg_chameleon's plain copy")
            for key, label in (("syncd_snapshot", "syncd snapshot"),
                               ("syncd_run_initial_load", "syncd run's initial load"))]
    return [
        *copy,
        Verdict("shop", "reconcile in sync through the realistic mapping, first pass",
                _get(f, "reconcile", "in_sync", "realistic", "rows_per_s"), " rows/s",
                t["reconcile_in_sync_ratio_to_reladiff"],
                _get(f, "reconcile", "in_sync", RELADIFF, "rows_per_s"), "reladiff's plain compare"),
        Verdict("shop", f"reconcile with {_drift(f)} drift through the realistic mapping",
                _get(f, "reconcile", "with_drift", "realistic", "rows_per_s"), " rows/s",
                t["reconcile_drift_ratio_to_reladiff"],
                _get(f, "reconcile", "with_drift", RELADIFF, "rows_per_s"), "reladiff, same drift"),
        Verdict("shop", "drain through the realistic mapping, start-up included",
                _get(f, "drain", "realistic", "changes_per_s"), " changes/s", t["drain_ratio_to_raw_decode"],
                _get(f, "raw_decode", "library", "rows_per_s"), "the library's raw decode"),
        Verdict("shop", "peak RSS of syncd's process tree, every phase", peak, " MB", t["peak_rss_mb"],
                at_most=True, detail=where),
    ]


def verdicts(workloads: dict[str, Any]) -> list[Verdict]:
    out: list[Verdict] = []
    if "oltp" in workloads:
        out += oltp_verdicts(workloads["oltp"])
    if "shop" in workloads:
        out += shop_verdicts(workloads["shop"])
    return out


# ---------------------------------------------------------------- tables


def _columns(lines: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in lines)


def _rate(part: Any, key: str = "rows_per_s") -> str:
    if isinstance(part, dict) and part.get("skipped"):
        return "skipped"
    if isinstance(part, dict) and part.get("error"):
        return "failed"
    return fmt(_get(part, key))


def _found(part: Any) -> str:
    found = _get(part, "found")
    if not isinstance(found, dict):
        return "found missing"
    return "found " + ", ".join(f"{fmt(found.get(k))} {k}" for k in ("missing", "extra", "differ"))


def _mb(part: Any) -> str:
    value = _get(part, "peak_rss_mb")
    return "-" if value is None else f"{value:,.0f} MB"


def _cost(part: Any) -> str:
    us, main = _get(part, "syncd_cpu_us_per_change"), _get(part, "syncd_main_process_cpu_us_per_change")
    if us is None:
        return ""
    split = f", main process {main:.0f}" if main is not None and main < us else ""
    return f" ({us:.0f} us syncd CPU/change{split})"


def oltp_table(f: dict[str, Any]) -> str:
    raw, drain = f.get("raw_decode") or {}, f.get("drain") or {}
    lines = [("figure", "value", "baseline / target", "peak RSS")]
    lines.append(("1 raw decode, library (rows/s)", _rate(raw.get("library")), "baseline", "-"))
    lines.append(("  fast path, same binlog (rows/s)", _rate(raw.get("fast_path")),
                  f"x{fmt(raw.get('fast_path_speedup'))} of library", "-"))
    lines.append(("2 drain, syncd run (changes/s)", _rate(drain, "changes_per_s") + _cost(drain),
                  f"x{fmt(f.get('drain_ratio'))} of (1); target >= 15,000 and x4", _mb(drain)))
    library_drain = f.get("drain_library_decoder")
    lines.append(("  drain, library decoder (changes/s)", _rate(library_drain, "changes_per_s")
                  + _cost(library_drain), "same backlog, SYNCD_DECODER=library", _mb(library_drain)))
    split = f.get("drain_process_per_source")
    lines.append(("  drain, a syncd process per source", _rate(split, "changes_per_s") + _cost(split),
                  "same backlog, two processes", _mb(split)))
    for lag in f.get("lag") or []:
        lines.append((f"3 lag at {lag['offered_rate']:,}/s (achieved {lag['achieved_rate']:,}/s)",
                      f"p50 {fmt(lag['p50_ms'])} / p99 {fmt(lag['p99_ms'])} / max {fmt(lag['max_ms'])} ms",
                      "target p99 <= 250 ms at 1,000/s" if lag["offered_rate"] == 1000 else "-", _mb(lag)))
    snapshot = f.get("snapshot") or {}
    chameleon = snapshot.get(CHAMELEON)
    for key, label in (("syncd_snapshot", "4 snapshot, syncd snapshot (rows/s)"),
                       ("syncd_run_initial_load", "  initial load, syncd run (rows/s)")):
        lines.append((label, _rate(snapshot.get(key)), "target >= 80,000", _mb(snapshot.get(key))))
    lines.append(("  pg_chameleon init_replica, same table", _rate(chameleon), "peer, same run",
                  _mb(chameleon)))
    reconcile = f.get("reconcile") or {}
    for key, label, note in (("in_sync", "5 reconcile, in sync (rows/s)", "target >= 200,000"),
                             ("reladiff_in_sync", "  reladiff, same tables in sync", "peer, same run"),
                             ("with_drift", f"  reconcile, {_drift(f)} drift (rows/s)", "found"),
                             ("reladiff_with_drift", "  reladiff, same drift", "found")):
        part = reconcile.get(key)
        lines.append((label, _rate(part), _found(part) if note == "found" else note, _mb(part)))
    return _columns(lines)


def _pair(parts: tuple[Any, Any], key: str = "rows_per_s") -> tuple[str, str, str]:
    """(realistic, plain, both peak RSS) of two measurements."""
    realistic, plain = parts
    return _rate(realistic, key), _rate(plain, key), f"{_mb(realistic)} / {_mb(plain)}"


def shop_table(f: dict[str, Any]) -> str:
    lines = [("figure", "realistic mapping", "plain copy", "peer, same run", "peak RSS (realistic / plain)")]
    chameleon = _get(f, "copy", CHAMELEON)
    for key, label in (("syncd_snapshot", "copy, syncd snapshot (rows/s)"),
                       ("syncd_run_initial_load", "copy, syncd run's initial load (rows/s)")):
        parts = (_get(f, "copy", "realistic", key), _get(f, "copy", "plain", key))
        r, p, rss = _pair(parts)
        lines.append((label, r, p, f"pg_chameleon init_replica {_rate(chameleon)}", rss))
    raw = _get(f, "raw_decode", "library")
    lines.append(("raw decode of the backlog, library (rows/s)", _rate(raw), "", "baseline of the drain",
                  "-"))
    drains = (_get(f, "drain", "realistic"), _get(f, "drain", "plain"))
    r, p, rss = _pair(drains, "changes_per_s")
    ratios = [f" (x{fmt(_get(d, 'ratio_to_raw_decode'))})" if _get(d, "ratio_to_raw_decode") else ""
              for d in drains]
    peer = _get(f, "drain", CHAMELEON)
    lines.append(("drain, start-up included (changes/s)", r + ratios[0], p + ratios[1],
                  f"pg_chameleon start_replica {_rate(peer, 'changes_per_s')}", rss))
    for key, label in (("in_sync", "reconcile in sync, first pass (rows/s)"),
                       ("with_drift", f"reconcile, {_drift(f)} drift (rows/s)")):
        parts = (_get(f, "reconcile", key, "realistic"), _get(f, "reconcile", key, "plain"))
        r, p, rss = _pair(parts)
        lines.append((label, r, p, f"reladiff {_rate(_get(f, 'reconcile', key, RELADIFF))}", rss))
    found = [_found(_get(f, "reconcile", "with_drift", s)) for s in ("realistic", "plain", RELADIFF)]
    lines.append(("  what the drift passes found", found[0], found[1], f"reladiff {found[2]}", ""))
    return _columns(lines)
