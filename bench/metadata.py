"""`python -m bench.metadata`: the drain of a source without full row metadata against one with it.

The servers, tables, mappings and backlog of `make bench` (bench/__main__.py, bench/workload.py),
with the sources' `binlog_row_metadata` switched between FULL and MINIMAL: each round writes a
backlog of the same size under each setting (syncd stopped) and drains it with `syncd run` into
a target of its own, timed from launch to the last checkpoint. Rounds alternate the two settings,
so that the drift of a shared machine hits both alike. The MINIMAL drains name their columns from
the schema history (syncd/source/schema_history.py); the target is within 10% of FULL.

Prints each drain, the ratio of the medians and the median CPU syncd spent per change (the figure
least moved by other load on the machine), and writes bench/results/<date>-metadata.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import measure, workload
from bench.__main__ import FULL, RESULTS, Bench, _count
from bench.workload import SOURCES

LEVELS = ("FULL", "MINIMAL")


def set_level(bench: Bench, level: str) -> None:
    for name in SOURCES:
        conn = workload.connect(bench.server(name), None)
        with conn.cursor() as cur:
            cur.execute(f"SET GLOBAL binlog_row_metadata = '{level}'")
        conn.close()


def one_drain(bench: Bench, level: str, round_number: int) -> dict[str, Any]:
    """A fresh target copied from the sources, a backlog written under `level`, then drained."""
    set_level(bench, level)
    database = f"meta_{level.lower()}_{round_number}"
    dsn = bench.target(database)
    mappings = {f"{s}.yaml": workload.mappings_yaml(s) for s in SOURCES}
    config = bench.config(f"{database}", database, SOURCES, mappings)
    bench.initial_load([config], dsn, database)
    start, end, written = bench.backlog()
    changes = sum(counts["changes"] for counts in written["by_source"].values())
    drain = bench.drain([config], dsn, database, start=start, end=end, changes=changes)
    letters = _count(dsn, "syncd.dead_letters")
    print(f"round {round_number} {level:8} {changes} changes: {drain['changes_per_s']} changes/s, "
          f"{drain['syncd_cpu_us_per_change']} us of syncd CPU and {drain['postgresql_cpu_us_per_change']} "
          f"us of PostgreSQL CPU per change, {letters} dead letters", flush=True)
    return {"level": level, "round": round_number, "dead_letters": letters, **drain}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metadata", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="drains per setting (default 3)")
    parser.add_argument("--backlog", type=int, default=FULL.backlog_changes // 2,
                        help="changes per backlog, both sources together (default %(default)s)")
    parser.add_argument("--output", type=Path, help="default bench/results/<date>-metadata.json")
    args = parser.parse_args()
    sizes = FULL.__class__(**{**FULL.__dict__, "backlog_changes": args.backlog})
    tmp = Path(tempfile.mkdtemp(prefix="syncd-bench-metadata-"))
    tmp.chmod(0o755)
    drains: list[dict[str, Any]] = []
    try:
        with ExitStack() as stack:
            stack.callback(measure.close_pollers)
            bench = Bench(sizes, tmp, stack, {"per-source", "library-drain", "lag", "snapshot"}, None)
            bench.start()
            for round_number in range(args.rounds):
                order = LEVELS if round_number % 2 == 0 else LEVELS[::-1]
                drains += [one_drain(bench, level, round_number) for level in order]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    def median(figure: str, level: str) -> float:
        return round(statistics.median(d[figure] for d in drains if d["level"] == level), 1)

    medians = {level: median("changes_per_s", level) for level in LEVELS}
    cpu = {level: median("syncd_cpu_us_per_change", level) for level in LEVELS}
    ratio = round(medians["MINIMAL"] / medians["FULL"], 3)
    today = datetime.now(UTC).date().isoformat()
    output = args.output or RESULTS / f"{today}-metadata.json"
    report = {"date": today, "machine": measure.machine(), "backlog_changes": args.backlog,
              "median_changes_per_s": medians, "minimal_to_full": ratio,
              "median_syncd_cpu_us_per_change": cpu, "drains": drains}
    output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"median drain: FULL {medians['FULL']} changes/s, MINIMAL {medians['MINIMAL']} changes/s "
          f"(MINIMAL / FULL = {ratio}); syncd CPU per change: FULL {cpu['FULL']} us, MINIMAL "
          f"{cpu['MINIMAL']} us; written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
