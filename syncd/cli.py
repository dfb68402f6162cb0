"""The `syncd` command line."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from syncd.config import DEFAULT_CONFIG, Config, load_config
from syncd.errors import ConfigError, SyncdError
from syncd.observability import configure_logging, register_secret

EXIT_DRIFT_OR_PROBLEMS = 1
EXIT_ERROR = 2
EXIT_CONFIG = 78

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG), show_default="$SYNCD_CONFIG or "
    + DEFAULT_CONFIG, help="Path of config.yaml.")


def _load(config_path: Path) -> Config:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    for secret in [config.target.password, *(s.password for s in config.sources.values())]:
        try:
            register_secret(secret.read())
        except OSError as exc:
            click.echo(f"{config_path}: cannot read {secret.describe()}: {exc.strerror}", err=True)
            sys.exit(EXIT_CONFIG)
    register_secret(os.environ.get("PGPASSWORD"))
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="syncd")
def main() -> None:
    """syncd: stream MySQL/MariaDB binlogs into PostgreSQL through declarative mappings."""


@main.command()
@config_option
def run(config_path: Path) -> None:
    """Copy, then stream every configured source into the target until stopped.

    SIGTERM/SIGINT stop cleanly (a second one exits at once, losing nothing);
    SIGHUP re-reads the mapping files and switches only if they are valid.
    Exit status: 0 stopped cleanly, 1 every source failed, 78 configuration error.
    """
    from syncd.daemon import Daemon
    from syncd.startup import build_plans

    config = _load(config_path)
    configure_logging(config.log.level, config.log.format)
    try:
        plans = build_plans(config)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    except SyncdError as exc:
        click.echo(f"syncd: {exc}", err=True)
        sys.exit(EXIT_DRIFT_OR_PROBLEMS)
    daemon = Daemon(config, plans)
    daemon.install_signals()
    sys.exit(daemon.run())


@main.command()
@config_option
@click.option("--live", is_flag=True, help="Also check the mappings against the running servers.")
def validate(config_path: Path, live: bool) -> None:
    """Check config.yaml and every mapping file; print each problem as file:line:col: message.

    Exit status: 0 all good, 1 problems found.
    """
    from syncd.startup import build_plans, check_source_tables, compile_all, load_specs

    try:
        config = load_config(config_path)
        specs = load_specs(config)
        if live:
            build_plans(config)
            problems = [p for s in config.sources.values() for p in _live_source(s, specs,
                                                                                 check_source_tables)]
            if problems:
                raise ConfigError(problems)
        else:
            compile_all(config, specs, None)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        sys.exit(EXIT_DRIFT_OR_PROBLEMS)
    except SyncdError as exc:
        click.echo(f"syncd: {exc}", err=True)
        sys.exit(EXIT_DRIFT_OR_PROBLEMS)
    files = len({s.where.file for s in specs})
    click.echo(f"ok: {len(specs)} mappings in {files} files" + (" (checked live)" if live else ""))


def _live_source(source, specs, check_tables) -> list:
    from syncd.errors import Problem
    from syncd.source.checks import check_source

    try:
        check_source(source)
    except SyncdError as exc:
        return [Problem(str(source.name), 0, 0, str(exc))]
    return check_tables(source, specs)


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(config_path: Path, as_json: bool) -> None:
    """Show each source's checkpoint, lag and pending dead letters (daemon running or not)."""
    from syncd.sink.postgres import connect
    from syncd.sink.state import pending_dead_letters, read_checkpoint

    config = _load(config_path)
    try:
        conn = connect(config.target, "syncd:status")
    except SyncdError as exc:
        click.echo(f"syncd: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    try:
        pending = pending_dead_letters(conn, config.target.state_schema)
        rows = [_status_row(name, read_checkpoint(conn, config.target.state_schema, name),
                            pending.get(name, 0))
                for name in config.sources]
    except Exception as exc:  # the state schema may not exist yet
        click.echo(f"syncd: cannot read state schema {config.target.state_schema!r}: {exc}",
                   err=True)
        sys.exit(EXIT_ERROR)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps({"sources": rows}, indent=2, default=str))
    else:
        _print_table(rows)


def _status_row(name: str, checkpoint: Any, pending: int) -> dict[str, Any]:
    if checkpoint is None:
        return {"source": name, "position": None, "gtid": None, "last_event_time": None,
                "lag_seconds": None, "checkpoint_age_seconds": None, "dead_letters_pending": pending,
                "state": "no checkpoint (initial load not done)"}
    age = (datetime.now(UTC) - checkpoint.updated_at).total_seconds() if checkpoint.updated_at else None
    return {
        "source": name,
        "position": str(checkpoint.position),
        "gtid": checkpoint.position.gtid,
        "last_event_time": checkpoint.last_event_time.isoformat() if checkpoint.last_event_time else None,
        "lag_seconds": checkpoint.lag_seconds,
        "checkpoint_age_seconds": round(age, 1) if age is not None else None,
        "dead_letters_pending": pending,
        "state": "streaming" if checkpoint.snapshot_done else "initial load in progress",
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    headers = ["source", "position", "last_event_time", "lag_seconds", "checkpoint_age_seconds",
               "dead_letters_pending", "state"]
    table = [[_cell(row.get(h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


if __name__ == "__main__":
    main()
