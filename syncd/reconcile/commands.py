"""The `syncd reconcile` and `syncd snapshot` commands (added to the group in syncd/cli.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from syncd.config import DEFAULT_CONFIG, Config
from syncd.errors import ConfigError, SyncdError
from syncd.observability import configure_logging
from syncd.reconcile.engine import DEFAULT_CHUNK_ROWS
from syncd.reconcile.report import EXIT_ERROR

_config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, readable=False),
    default=lambda: os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG),
    show_default="$SYNCD_CONFIG or " + DEFAULT_CONFIG, help="Path of config.yaml.")
_source_option = click.option("--source", help="Only the mappings of this source.")
_mapping_option = click.option("--mapping", help="Only this mapping.")
_chunk_option = click.option("--chunk-rows", type=click.IntRange(min=1), default=DEFAULT_CHUNK_ROWS,
                             show_default=True, help="Source rows read per chunk (one consistent read).")


def _setup(config_path: Path) -> tuple[Config, dict[str, Any]]:
    """Load config.yaml (exit 78 like every command) and the mappings (exit 2 on problems)."""
    from syncd.cli import _load  # noqa: PLC0415 (syncd.cli imports this module at its end)
    from syncd.startup import build_plans  # noqa: PLC0415 (keeps `syncd --help` fast)

    config = _load(config_path)
    configure_logging(config.log.level, config.log.format)
    try:
        return config, build_plans(config)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
    except SyncdError as exc:
        click.echo(f"syncd: {exc}", err=True)
    sys.exit(EXIT_ERROR)


@click.command()
@_config_option
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

    Exit status: 0 in sync (or all drift repaired), 1 drift left, 2 error, 78 config.yaml invalid.
    """
    from syncd.reconcile.engine import reconcile as run_reconcile  # noqa: PLC0415
    from syncd.reconcile.report import as_json as report_json  # noqa: PLC0415
    from syncd.reconcile.report import as_text, exit_code  # noqa: PLC0415

    config, plans = _setup(config_path)
    try:
        reports = run_reconcile(config, plans, source=source, mapping=mapping, repair=repair,
                                chunk_rows=chunk_rows, pause_s=pause_ms / 1000, full=full)
    except SyncdError as exc:
        click.echo(f"syncd: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    if as_json:
        click.echo(json.dumps(report_json(reports), indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(as_text(reports))
    sys.exit(exit_code(reports))


@click.command()
@_config_option
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
    from its last finished chunk. Exit status: 0 done, 1 interrupted, 2 error.
    """
    from syncd.reconcile.snapshot import run_snapshot  # noqa: PLC0415

    config, plans = _setup(config_path)
    sys.exit(run_snapshot(config, plans, source=source, mapping=mapping, chunk_rows=chunk_rows,
                          map_every_row=map_every_row))
