"""`syncd reconcile` and `syncd snapshot`: compare (and repair) through the mappings, copy again.

On a terminal both show a progress bar per unit of work on stderr (a mapping compared, a table
copied: done of the estimate, rows per second, time left); JSON and non-terminal output stay
quiet. SIGINT/SIGTERM end a snapshot after the chunk being written (it resumes next time), and
a reconcile pass after the range being compared (recorded as an error; exit 2)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from syncd.cli.options import EXIT_ERROR, EXIT_FOUND, EXIT_OK, config_option, exits_on_errors, fail, load
from syncd.cli.render import Bars
from syncd.config import DEFAULT_CHUNK_ROWS, Config
from syncd.errors import SyncdError
from syncd.observability import configure_logging

_source_option = click.option("--source", help="Only the mappings of this source.")
_mapping_option = click.option("--mapping", help="Only this mapping.")
_chunk_option = click.option("--chunk-rows", type=click.IntRange(min=1), default=DEFAULT_CHUNK_ROWS,
                             show_default=True, help="Source rows read per chunk (one consistent read).")


def _setup(config_path: Path) -> tuple[Config, dict[str, Any]]:
    """config.yaml and the mappings, checked against the target (exit 78 on problems)."""
    from syncd.service.startup import build_plans

    config = load(config_path)
    configure_logging(config.log.level, config.log.format)
    with exits_on_errors():
        return config, build_plans(config)


@click.command()
@config_option
@_source_option
@_mapping_option
@click.option("--repair", is_flag=True, help="Fix every difference found (through the running "
              "daemon's stream when one holds the source).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_chunk_option
@click.option("--pause-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Pause between chunks, to bound the load on the source.")
@click.option("--full", is_flag=True, help="Map and compare every row, even in key ranges whose "
              "checksums show them unchanged since a pass found them in sync.")
def reconcile(*, config_path: Path, source: str | None, mapping: str | None, repair: bool, as_json: bool,
              chunk_rows: int, pause_ms: int, full: bool) -> None:
    """Compare each mapping's target slice with its source rows mapped now, then the unified rows of
    their identity spaces with the stored contributions; report (and repair) drift.

    Exit status: 0 in sync (or all drift repaired), 1 drift left (rows dead-lettered again
    included), 2 error (SIGINT/SIGTERM included: the pass stops after the range in hand),
    78 config.yaml or a mapping file is wrong.
    """
    from syncd.reconcile.engine import reconcile as run_reconcile
    from syncd.reconcile.report import as_json as report_json
    from syncd.reconcile.report import as_text, exit_code

    config, plans = _setup(config_path)
    bars = Bars() if Bars.wanted(as_json) else None
    stop = threading.Event()

    def progress(name: str, rows: int, chunks: int, estimate: int) -> None:
        assert bars is not None
        bars.update(name, rows, estimate, f"{chunks} chunks")

    try:
        with _stop_on_signals(stop):
            reports = run_reconcile(config, plans, source=source, mapping=mapping, repair=repair,
                                    chunk_rows=chunk_rows, pause_s=pause_ms / 1000, full=full, stop=stop,
                                    progress=progress if bars is not None else None)
    except SyncdError as exc:
        fail(exc)
    finally:
        if bars is not None:
            bars.close()
    if as_json:
        click.echo(json.dumps(report_json(reports), indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(as_text(reports))
    if stop.is_set():
        click.echo("syncd reconcile: stopped by a signal before every mapping was compared", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(exit_code(reports))


@click.command()
@config_option
@_source_option
@_mapping_option
@_chunk_option
@click.option("--map-every-row", is_flag=True,
              help="Map every row in Python, also where the source server could write plain copies as "
                   "COPY text (for comparison or diagnosis).")
def snapshot(*, config_path: Path, source: str | None, mapping: str | None, chunk_rows: int,
             map_every_row: bool) -> None:
    """Copy the mapped tables again in primary-key chunks, resumable, safe while streaming.

    Without a running daemon (binlog purged, re-initialisation) the copy goes straight into the
    target and sets the source's checkpoint when every table is done; with a daemon holding the
    source, each chunk of keys is repaired through its stream. An interrupted copy continues
    from its last finished chunk. Exit status: 0 done, 1 interrupted, 2 error,
    78 config.yaml or a mapping file is wrong.
    """
    from syncd.reconcile.snapshot import snapshot as run_snapshot

    config, plans = _setup(config_path)
    stop = threading.Event()
    bars = Bars() if Bars.wanted() else None

    def progress(source_name: str, table: str, copied: int, total: int) -> None:
        assert bars is not None
        bars.update(f"{source_name}.{table}", copied, total)

    try:
        with _stop_on_signals(stop):
            results = run_snapshot(config, plans, source=source, mapping=mapping, chunk_rows=chunk_rows,
                                   stop=stop, progress=progress if bars is not None else None,
                                   map_every_row=map_every_row)
    except SyncdError as exc:
        fail(exc)
    finally:
        if bars is not None:
            bars.close()
    for result in results:
        state = "done" if result.finished else "interrupted (run again to continue)"
        copied = ", ".join(f"{t} {n}" for t, n in result.copied.items()) or "nothing"
        click.echo(f"{result.source}: {state}; {result.mode}; copied {copied}; removed "
                   f"{result.removed}; dead letters {result.dead_letters}"
                   + (f" (older ones retired: {result.letters_retired})" if result.letters_retired else "")
                   + (f"; checkpoint {result.position}" if result.checkpoint_written else ""))
    finished = all(r.finished for r in results) and not stop.is_set()
    sys.exit(EXIT_OK if finished else EXIT_FOUND)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop`: the work in hand is finished, then the command stops."""
    previous = {}

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
