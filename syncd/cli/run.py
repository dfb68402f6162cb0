"""`syncd run`, `syncd validate` and `syncd status`: the service and the checks around it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from syncd.cli.options import (
    EXIT_FOUND,
    config_option,
    exits_on_errors,
    fail,
    load,
    warn_about_secrets,
)
from syncd.cli.render import cell, table_lines
from syncd.config import Config, SourceConfig, load_config, secrets_of
from syncd.errors import ConfigError, Problem, SyncdError
from syncd.observability import configure_logging, scrub, tune_gc
from syncd.yamlfile import Checker, Where


@click.command()
@config_option
def run(config_path: Path) -> None:
    """Copy, then stream every configured source into the target until stopped.

    SIGTERM/SIGINT stop cleanly (a second one exits at once, losing nothing);
    SIGHUP re-reads the mapping files and switches only if they are valid.
    Exit status: 0 stopped cleanly, 2 could not start (target unreachable, metrics port taken),
    78 configuration error (TLS to the target failing included).
    """
    from syncd.service.daemon import Daemon
    from syncd.service.startup import build_plans
    from syncd.source import decoder_process

    config = load(config_path)
    decoder_process.prestart(len(config.sources))  # their start overlaps the checks below
    if not decoder_process.enabled():  # decoding here: collect as often as a decoder process does
        tune_gc(young_every=decoder_process.YOUNG_COLLECTION_EVERY)
    configure_logging(config.log.level, config.log.format)
    warn_about_secrets(config)
    with exits_on_errors():
        plans = build_plans(config)
    daemon = Daemon(config, plans)
    daemon.install_signals()
    with exits_on_errors():  # the target lost between the checks and the start
        code = daemon.run()
    sys.exit(code)


@click.command()
@config_option
@click.option("--live", is_flag=True, help="Also check the mappings against the running servers.")
def validate(config_path: Path, live: bool) -> None:
    """Check config.yaml and every mapping file; print each problem as file:line:col: message.

    With --live, also check against the running servers: source settings, the privileges syncd
    needs on each server (each tried), tables and columns; target tables, columns, keys and
    value types. Every problem is reported, not the first.
    Exit status: 0 all good, 1 problems found.
    """
    from syncd.mapping.load import compile_all, load_specs
    from syncd.mapping.spec import mapping_files

    try:
        config = load_config(config_path)
        specs = load_specs(config)
    except ConfigError as exc:
        _print_problems(exc.problems)
    problems: list[Problem] = []
    try:
        compile_all(config, specs, None)
    except ConfigError as exc:
        problems += exc.problems
    if live:
        problems += _secret_problems(config)
        problems += _live_problems(config, specs)
    if problems:
        _print_problems(problems)
    if not live:
        _note_unreadable_secrets(config)
    files = len(mapping_files(config.mapping_paths, Checker()))  # identity-only files count too
    click.echo(f"ok: {len(specs)} mappings in {files} files" + (" (checked live)" if live else ""))


def _secret_problems(config: Config) -> list[Problem]:
    """Secrets that cannot be read (problems), and those unsafe but usable (printed warnings)."""
    problems = [p for secret in secrets_of(config) if (p := secret.problem()) is not None]
    for secret in secrets_of(config):
        warning = None if secret.problem() else secret.warning()
        if warning:
            click.echo(f"warning: {warning}")
    return problems


def _note_unreadable_secrets(config: Config) -> None:
    """Without --live the secrets are not required (this shell may not have the service's
    environment), but one that cannot be read here is named: `syncd run` would exit 78 on it."""
    for secret in secrets_of(config):
        problem = secret.problem()
        if problem is not None:
            click.echo(f"note: {problem} (not needed to check the files; `syncd run` and "
                       "`validate --live` need it)")


def _print_problems(problems: list[Problem]) -> NoReturn:
    for problem in problems:
        click.echo(str(problem))
    sys.exit(EXIT_FOUND)


def _live_problems(config: Config, specs: list) -> list[Problem]:
    """Target and source checks, each server's problems collected even when another fails; a
    server whose password cannot be read (a problem of its own) is not tried without it."""
    problems = [] if config.target.password.problem() else _target_problems(config, specs)
    for source in config.sources.values():
        if source.password.problem() is None:
            problems += _source_problems(config, source, specs)
    return problems


def _target_problems(config: Config, specs: list) -> list[Problem]:
    from syncd.sink.connection import connect
    from syncd.sink.target import check_target

    try:
        conn = connect(config.target, "syncd:validate")
        try:
            return check_target(conn, config, specs)[1]
        finally:
            conn.close()
    except SyncdError as exc:
        return [_place(config, config.target.where).problem(f"target: {exc}")]


def _source_problems(config: Config, source: SourceConfig, specs: list) -> list[Problem]:
    """The server's settings and grants, then the mapped tables (checked even when the first
    found problems: every problem is reported at once)."""
    from syncd.source.checks import check_source_tables, source_problems

    place = _place(config, source.where)
    try:
        info, messages = source_problems(source)
    except SyncdError as exc:  # unreachable: its tables cannot be checked either
        return [place.problem(str(exc))]
    if info.schema_history is not None:
        click.echo(f"{source.name}: {info.schema_history}")
    problems = [place.problem(f"source {source.name}: {message}") for message in messages]
    try:
        problems += check_source_tables(source, specs)
    except SyncdError as exc:
        problems.append(place.problem(str(exc)))
    return problems


def _place(config: Config, where: Where | None) -> Where:
    return where or Where(str(config.path), 1, 1)


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(config_path: Path, as_json: bool) -> None:
    """Show each source's position, lag, binlog headroom, dead letters, owner and the last
    reconcile of each mapping. Reads only the state schema: works whether syncd runs or not.

    state: streaming | initial load in progress | retrying | failed | stopped (no live
    process holds the source) | no checkpoint. An owner is alive while its heartbeat is
    younger than 15 s. Each paused mapping is listed with its position, reason, and how long
    the source keeps the binlog it will replay from.
    Exit status: 0, or 2 if the target or its state schema cannot be read.
    """
    from syncd.service.status import status_report
    from syncd.sink.connection import connect

    config = load(config_path, sources=False)
    with exits_on_errors():
        conn = connect(config.target, "syncd:status")
    try:
        report = status_report(conn, config)
    except Exception as exc:  # the state schema may not exist yet
        fail(SyncdError(f"cannot read state schema {config.target.state_schema!r}: {exc}"))
    finally:
        conn.close()
    if as_json:
        click.echo(scrub(json.dumps(report, indent=2, default=str, ensure_ascii=False)))
    else:
        for line in _status_lines(report):
            click.echo(line)


_SOURCE_COLUMNS = ["source", "state", "position", "last_event_time", "lag_seconds", "retention_headroom",
                   "dead_letters_pending", "held_by"]
_RECONCILE_COLUMNS = ["mapping", "source", "status", "finished_at", "rows_compared", "missing", "extra",
                      "differ", "repaired"]


def _status_lines(report: dict[str, Any]) -> list[str]:
    rows = report["sources"]
    for row in rows:
        owner = row.get("owner")
        row["held_by"] = (f"{owner['host']}:{owner['pid']}" + ("" if owner["alive"] else " (not alive)")
                          if owner else None)
    lines = table_lines(_SOURCE_COLUMNS, [[cell(row.get(c)) for c in _SOURCE_COLUMNS] for row in rows])
    for row in rows:
        if row.get("error"):
            lines.append(f"{row['source']}: error: {row['error']}")
        lines += [f"{row['source']}: {line}" for line in _history_lines(row.get("history") or {})]
        if reading := row.get("schema_history"):
            lines.append(f"{row['source']}: columns named by the schema history ({reading['entries']} "
                         f"entries; binlog_row_metadata={reading['binlog_row_metadata'] or 'none'})")
        if row.get("retention_detail") and row.get("retention_headroom") not in {"unlimited", None}:
            lines.append(f"{row['source']}: binlog: {row['retention_detail']}")
        lines += [_paused_line(row["source"], entry) for entry in row.get("paused") or []]
    if report.get("reconcile"):
        lines += ["", *table_lines(_RECONCILE_COLUMNS, [[cell(run.get(c)) for c in _RECONCILE_COLUMNS]
                                                        for run in report["reconcile"]])]
    return lines


def _paused_line(source: str, entry: dict[str, Any]) -> str:
    return (f"{source}: paused mapping {entry['mapping']} at {entry['position']} since {entry['paused_at']} "
            f"(its binlog kept: {entry['binlog_kept']}): {entry['reason']}")


def _history_lines(history: dict[str, Any]) -> list[str]:
    lines = []
    if history.get("binlog_file"):
        created = (f" (created {history['binlog_file_created']} by server_id "
                   f"{history['binlog_file_server_id']})" if history.get("binlog_file_created") else "")
        server = f" on {history['server']}" if history.get("server") else ""
        lines.append(f"binlog history: {history['binlog_file']}{created}{server}")
    if history.get("continuity"):
        lines.append(f"continuity: {history['continuity']} (checked {history['continuity_checked_at']})")
    return lines

