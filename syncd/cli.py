"""The `syncd` command line."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from syncd.config import DEFAULT_CONFIG, Config, load_config
from syncd.errors import ConfigError, Problem, SyncdError
from syncd.observability import configure_logging, register_secret, tune_gc

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


def _native_parts() -> str:
    """Which optional C parts this installation runs (built by pip when a compiler was there)."""
    from syncd.sink import postgres
    from syncd.source import fastpath

    def state(built: bool, used: bool) -> str:
        return "in use" if used else ("built, turned off by SYNCD_DECODER" if built else "not built")

    row = state(fastpath._rowimage is not None, fastpath.native_enabled())
    text = state(postgres.timestamp_text is not None, postgres.timestamp_text is not None)
    return f"C parts: row decoder {row}; COPY text of datetimes {text}"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    click.echo(f"syncd, version {version('syncd')}\n{_native_parts()}")
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and which C parts are in use, and exit.")
def main() -> None:
    """syncd: stream MySQL/MariaDB binlogs into PostgreSQL through declarative mappings."""
    tune_gc()


@main.command()
@config_option
def run(config_path: Path) -> None:
    """Copy, then stream every configured source into the target until stopped.

    SIGTERM/SIGINT stop cleanly (a second one exits at once, losing nothing);
    SIGHUP re-reads the mapping files and switches only if they are valid.
    Exit status: 0 stopped cleanly, 1 could not start (target unreachable, metrics port taken),
    78 configuration error.
    """
    from syncd.daemon import Daemon
    from syncd.source import decoder_process
    from syncd.startup import build_plans

    config = _load(config_path)
    decoder_process.prestart(len(config.sources))  # their start overlaps the checks below
    if not decoder_process.enabled():  # decoding here: collect as often as a decoder process does
        tune_gc(young_every=decoder_process.YOUNG_COLLECTION_EVERY)
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

    With --live, also check against the running servers: source settings, tables and columns;
    target tables, columns, keys and value types. Every problem is reported, not the first.
    Exit status: 0 all good, 1 problems found.
    """
    from syncd.startup import compile_all, load_specs

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
        problems += _live_problems(config, specs)
    if problems:
        _print_problems(problems)
    files = len({s.where.file for s in specs})
    click.echo(f"ok: {len(specs)} mappings in {files} files" + (" (checked live)" if live else ""))


def _print_problems(problems: list[Problem]) -> NoReturn:
    for problem in problems:
        click.echo(str(problem))
    sys.exit(EXIT_DRIFT_OR_PROBLEMS)


def _live_problems(config: Config, specs: list) -> list[Problem]:
    """Target and source checks, each server's problems collected even when another fails."""
    from syncd.sink.postgres import connect
    from syncd.source.checks import check_source
    from syncd.startup import check_source_tables, check_target

    here = Problem(str(config.path), 1, 1, "")
    problems: list[Problem] = []
    try:
        conn = connect(config.target, "syncd:validate")
        try:
            problems += check_target(conn, config, specs)[1]
        finally:
            conn.close()
    except SyncdError as exc:
        problems.append(dataclasses.replace(here, message=f"target: {exc}"))
    for source in config.sources.values():
        try:
            check_source(source)
            problems += check_source_tables(source, specs)
        except SyncdError as exc:
            problems.append(dataclasses.replace(here, message=str(exc)))
    return problems


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def status(config_path: Path, as_json: bool) -> None:
    """Show each source's position, lag, binlog headroom, dead letters, owner and the last
    reconcile of each mapping. Reads only the state schema: works whether syncd runs or not.

    state: streaming | initial load in progress | retrying | failed | stopped (no live
    process holds the source) | no checkpoint. An owner is alive while its heartbeat is
    younger than 15 s. Exit status: 0, or 2 if the target or its state schema cannot be read.
    """
    from syncd.observability import scrub
    from syncd.sink.postgres import connect

    config = _load(config_path)
    try:
        conn = connect(config.target, "syncd:status")
    except SyncdError as exc:
        click.echo(scrub(f"syncd: {exc}"), err=True)
        sys.exit(EXIT_ERROR)
    try:
        report = _status_report(conn, config)
    except Exception as exc:  # the state schema may not exist yet
        click.echo(scrub(f"syncd: cannot read state schema {config.target.state_schema!r}: {exc}"),
                   err=True)
        sys.exit(EXIT_ERROR)
    finally:
        conn.close()
    if as_json:
        click.echo(scrub(json.dumps(report, indent=2, default=str, ensure_ascii=False)))
    else:
        _print_table(report)


_OWNER_FRESH_S = 15.0


def _status_report(conn: Any, config: Config) -> dict[str, Any]:
    from syncd.ha import read_health, read_owners
    from syncd.sink.state import pending_dead_letters, read_checkpoint

    schema = config.target.state_schema
    now = conn.execute("SELECT now()").fetchone()[0]
    pending = pending_dead_letters(conn, schema)
    health = read_health(conn, schema)
    owners = read_owners(conn, schema)
    reconciles = _status_reconciles(conn, schema)
    rows = [_status_row(name, read_checkpoint(conn, schema, name), pending.get(name, 0),
                        health=health.get(name), owner=owners.get(name), now=now)
            for name in config.sources]
    for row in rows:
        row["last_reconcile"] = [r for r in reconciles if r["source"] == row["source"]]
    return {"checked_at": now.isoformat(), "sources": rows, "reconcile": reconciles}


def _status_reconciles(conn: Any, schema: str) -> list[dict[str, Any]]:
    """The latest reconcile run of every mapping."""
    from psycopg import sql

    if conn.execute("SELECT to_regclass(%s)", (f"{schema}.reconcile_runs",)).fetchone()[0] is None:
        return []
    query = sql.SQL(
        "SELECT DISTINCT ON (mapping) mapping, source, status, repair, started_at, finished_at, "
        "rows_compared, missing, extra, differ, repaired, explained_by_dead_letters, error "
        "FROM {}.reconcile_runs ORDER BY mapping, id DESC").format(sql.Identifier(schema))
    names = ["mapping", "source", "status", "repair", "started_at", "finished_at", "rows_compared",
             "missing", "extra", "differ", "repaired", "explained_by_dead_letters", "error"]
    runs = []
    for values in conn.execute(query).fetchall():
        run = dict(zip(names, values, strict=True))
        for key in ("started_at", "finished_at"):
            run[key] = run[key].isoformat() if run[key] else None
        runs.append(run)
    return runs


def _status_row(name: str, checkpoint: Any, pending: int, *, health: Any = None, owner: Any = None,
                now: datetime | None = None) -> dict[str, Any]:
    from syncd.source.retention import format_duration

    now = now or datetime.now(UTC)
    row: dict[str, Any] = {
        "source": name, "state": None, "position": None, "gtid": None, "last_event_time": None,
        "lag_seconds": None, "checkpoint_age_seconds": None, "dead_letters_pending": pending,
    }
    if checkpoint is not None:
        age = (now - checkpoint.updated_at).total_seconds() if checkpoint.updated_at else None
        row.update({
            "position": str(checkpoint.position),
            "gtid": checkpoint.position.gtid,
            "last_event_time": checkpoint.last_event_time.isoformat() if checkpoint.last_event_time else None,
            "lag_seconds": checkpoint.lag_seconds,
            "checkpoint_age_seconds": round(age, 1) if age is not None else None,
        })
    alive = owner is not None and (now - owner.heartbeat_at).total_seconds() < _OWNER_FRESH_S
    row["owner"] = None if owner is None else {
        "host": owner.host, "pid": owner.pid, "since": owner.since.isoformat(),
        "heartbeat_at": owner.heartbeat_at.isoformat(),
        "heartbeat_age_seconds": round((now - owner.heartbeat_at).total_seconds(), 1),
        "alive": alive,
    }
    # An error recorded before the checkpoint last moved is history (e.g. fixed by a snapshot).
    current = health is not None and (checkpoint is None or checkpoint.updated_at is None
                                      or health.updated_at >= checkpoint.updated_at)
    row["error"] = health.error if current and health.error else None
    row["state"] = _status_state(checkpoint, health if current else None, alive)
    row["history"] = _status_history(checkpoint, row["error"])
    row["retention_headroom_seconds"] = None
    row["retention_headroom"] = None
    row["retention_detail"] = None
    row["retention_checked_at"] = None
    if health is not None and health.headroom_kind is not None:
        kind = health.headroom_kind
        row["retention_headroom_seconds"] = health.headroom_seconds
        row["retention_headroom"] = (format_duration(health.headroom_seconds) if kind == "limited"
                                     else kind)
        row["retention_detail"] = health.headroom_detail
        row["retention_checked_at"] = health.headroom_at.isoformat() if health.headroom_at else None
    return row


def _status_history(checkpoint: Any, error: str | None) -> dict[str, Any]:
    """Which binlog history the checkpoint belongs to, and what the last resume proved."""
    from syncd.source.continuity import LOST

    lineage = checkpoint.lineage if checkpoint is not None else None
    file_id = checkpoint.position.file_id if checkpoint is not None else None
    at = checkpoint.continuity_at if checkpoint is not None else None
    return {
        "server": lineage.server if lineage else None,
        "binlog_file": checkpoint.position.file if checkpoint is not None else None,
        "binlog_file_created": (datetime.fromtimestamp(file_id.created, UTC).isoformat()
                                if file_id else None),
        "binlog_file_server_id": file_id.server_id if file_id else None,
        "last_applied_gtid": lineage.applied_gtid if lineage else None,
        "continuity": checkpoint.continuity if checkpoint is not None else None,
        "continuity_checked_at": at.isoformat() if at else None,
        "continuity_lost": bool(error and LOST in error),
    }


def _status_state(checkpoint: Any, health: Any, owner_alive: bool) -> str:
    if health is not None and health.state == "failed":
        return "failed"
    if checkpoint is None:
        return "no checkpoint (initial load not done)"
    if not owner_alive:
        return "stopped"
    if health is not None and health.state == "retrying":
        return "retrying"
    return "streaming" if checkpoint.snapshot_done else "initial load in progress"


def _print_table(report: dict[str, Any]) -> None:
    rows = report["sources"]
    for row in rows:
        owner = row.get("owner")
        row["held_by"] = (f"{owner['host']}:{owner['pid']}" + ("" if owner["alive"] else " (not alive)")
                          if owner else None)
    _echo_table(rows, ["source", "state", "position", "last_event_time", "lag_seconds",
                       "retention_headroom", "dead_letters_pending", "held_by"])
    for row in rows:
        if row.get("error"):
            click.echo(f"{row['source']}: error: {row['error']}")
        for line in _history_lines(row.get("history") or {}):
            click.echo(f"{row['source']}: {line}")
        if row.get("retention_detail") and row.get("retention_headroom") not in {"unlimited", None}:
            click.echo(f"{row['source']}: binlog: {row['retention_detail']}")
    if report.get("reconcile"):
        click.echo("")
        _echo_table(report["reconcile"], ["mapping", "source", "status", "finished_at", "rows_compared",
                                          "missing", "extra", "differ", "repaired"])


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


def _echo_table(rows: list[dict[str, Any]], headers: list[str]) -> None:
    table = [[_cell(row.get(h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h)
              for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


from syncd.deadletters import dlq  # noqa: E402 (commands in their own modules)
from syncd.preview import preview  # noqa: E402

main.add_command(preview)
main.add_command(dlq)

from syncd.reconcile.commands import reconcile, snapshot  # noqa: E402

main.add_command(reconcile)
main.add_command(snapshot)

from syncd.identity.show import identity  # noqa: E402

main.add_command(identity)


if __name__ == "__main__":
    main()
