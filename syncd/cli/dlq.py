"""`syncd dlq list | retry | discard`: dead letters, shown, retried from the current source rows,
or set aside (docs/mappings.md, "Dead letters")."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from syncd.cli.options import EXIT_ERROR, EXIT_FOUND, EXIT_OK, config_option, exits_on_errors, fail, load
from syncd.cli.render import cut, dump_json, json_value, one_line, table_lines
from syncd.config import Config
from syncd.errors import SyncdError
from syncd.mapping.load import load_specs
from syncd.model import Outcome
from syncd.observability import configure_logging, scrub
from syncd.reconcile.dead_letters import GroupOutcome, group_by_mapping, retry_mapping, trim_stored
from syncd.sink.dead_letters import STATUSES, Selector, StoredDeadLetter, exists, fetch, resolve, status_of

LIST_HEADERS = ("id", "created_at", "source", "mapping", "row_key", "position", "reason")


@click.group()
def dlq() -> None:
    """Dead letters: row changes a mapping could not apply. List them, retry them after fixing
    the mapping, or discard them."""


@dlq.command("list")
@click.option("--mapping", "mapping_name", metavar="NAME", help="Only this mapping's dead letters.")
@click.option("--status", type=click.Choice([*STATUSES, "all"]), default="pending", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the row images) for scripts.")
@config_option
def list_command(mapping_name: str | None, status: str, as_json: bool, config_path: Path) -> None:
    """Show dead letters: id, created_at, source, mapping, row_key, position, reason.

    Exit status: 0 shown (also when there are none), 2 error, 78 config.yaml is wrong.
    """
    config = load(config_path)
    conn = _connect(config)
    try:
        trim_stored(conn, config)
        letters = fetch(conn, config.target.state_schema, Selector(mapping=mapping_name),
                        None if status == "all" else status)
        if mapping_name is not None and not letters:
            _known_mapping(conn, config, mapping_name)
    except SyncdError as exc:
        fail(exc)
    except Exception as exc:  # psycopg errors, e.g. the state schema does not exist yet
        _state_error(config, exc)
    finally:
        conn.close()
    if as_json:
        click.echo(dump_json([letter_json(x) for x in letters]))
        return
    if not letters:
        click.echo(f"no {'' if status == 'all' else status + ' '}dead letters"
                   + (f" for mapping {mapping_name!r}" if mapping_name else ""))
        return
    with_status = status == "all"
    headers = (*LIST_HEADERS, "status") if with_status else LIST_HEADERS
    for line in table_lines(headers, [letter_cells(x, with_status) for x in letters]):
        click.echo(line)
    click.echo(f"{_count(len(letters), (status + ' ' if not with_status else '') + 'dead letter')}")


def _selector_options(func: Any) -> Any:
    func = click.option("--all", "every", is_flag=True, help="Every pending dead letter.")(func)
    func = click.option("--mapping", "mapping_name", metavar="NAME",
                        help="The pending dead letters of this mapping.")(func)
    return click.option("--id", "letter_id", type=int, metavar="N",
                        help="The dead letter with this id.")(func)


def _known_mapping(conn: Any, config: Config, name: str) -> None:
    """SyncdError (exit 2) for a name no mapping file declares and no dead letter carries (a
    mapping since removed keeps its letters, and its name)."""
    if fetch(conn, config.target.state_schema, Selector(mapping=name), None):
        return
    try:
        names = sorted(spec.name for spec in load_specs(config))
    except SyncdError:  # the mapping files do not load: nothing to tell the name against
        return
    if name not in names:
        raise SyncdError(f"no mapping named {name!r}; mappings: {', '.join(names) or 'none'}")


def selector_from_options(letter_id: int | None, mapping: str | None, every: bool) -> Selector:
    if sum([letter_id is not None, mapping is not None, every]) != 1:
        raise click.UsageError("give exactly one of --id N, --mapping NAME or --all")
    return Selector(letter_id, mapping, every)


@dlq.command()
@_selector_options
@config_option
def retry(letter_id: int | None, mapping_name: str | None, every: bool, config_path: Path) -> None:
    """Re-apply dead letters with the current mappings, from the CURRENT source rows.

    Fix the mapping first and reload the daemon (SIGHUP). For each selected pending dead letter
    the source row is re-read by its key (the mapping's source_key, else the primary key) and
    its target row is made equal to what the mapping makes of it now; an older image never
    overwrites a newer one, and a row deleted at the source since then is removed (or
    soft-deleted) in the target. Dead letters whose rows are now applied are marked retried;
    the others (the mapping still fails, or PostgreSQL refuses the row) stay pending and their
    new reason is printed.

    Exit status: 0 all retried (or nothing to retry), 1 some still fail, 2 error,
    78 config.yaml or a mapping file is wrong.
    """
    from syncd.service.startup import build_plans

    selector = selector_from_options(letter_id, mapping_name, every)
    config = load(config_path)
    configure_logging(config.log.level, config.log.format)  # to stderr; stdout is the report
    conn = _connect(config)
    letters = _selected(conn, config, selector)
    if not letters:
        conn.close()
        click.echo(f"no {selector.describe()}: nothing to retry")
        return
    try:
        plans = build_plans(config)
    except SyncdError as exc:
        conn.close()
        fail(exc)
    try:
        trim_stored(conn, config, plans)
        outcomes = [_retry_group(conn, config, plans, name, group)
                    for name, group in group_by_mapping(letters).items()]
    finally:
        conn.close()
    sys.exit(_report(outcomes))


def _retry_group(conn: Any, config: Config, plans: dict[str, Any], name: str,
                 letters: list[StoredDeadLetter]) -> GroupOutcome:
    try:
        outcome = retry_mapping(config, plans, name, letters)
    except SyncdError as exc:
        outcome = GroupOutcome(name, letters=len(letters), error=scrub(str(exc)))
    if outcome.retried:
        resolve(conn, config.target.state_schema, outcome.retried, "retried")
    for line in outcome_lines(outcome):
        click.echo(line)
    return outcome


def _report(outcomes: list[GroupOutcome]) -> int:
    retried = sum(len(o.retried) for o in outcomes)
    failing = sum(len(o.failing) for o in outcomes)
    errors = [o for o in outcomes if o.error]
    errored = sum(o.letters for o in errors)
    click.echo(f"retried {_count(retried, 'dead letter')}; {failing} still failing (kept pending)"
               + (f"; {errored} not tried because of errors" if errors else ""))
    if errors:
        return EXIT_ERROR
    return EXIT_FOUND if failing else EXIT_OK


@dlq.command()
@_selector_options
@config_option
def discard(letter_id: int | None, mapping_name: str | None, every: bool, config_path: Path) -> None:
    """Mark dead letters discarded: nobody will retry them. The target is not changed.

    Exit status: 0 done (also when nothing was pending), 2 error, 78 config.yaml is wrong.
    """
    selector = selector_from_options(letter_id, mapping_name, every)
    config = load(config_path)
    conn = _connect(config)
    try:
        letters = _selected(conn, config, selector)
        changed = resolve(conn, config.target.state_schema, [x.id for x in letters], "discarded")
    finally:
        conn.close()
    click.echo(f"discarded {_count(changed, 'dead letter')}" if changed
               else f"no {selector.describe()}: nothing to discard")


def _connect(config: Config) -> Any:
    """The target connection, once its state schema is known to hold the dead letters table."""
    from syncd.sink.connection import connect

    with exits_on_errors():
        conn = connect(config.target, "syncd:dlq")
    try:
        found = exists(conn, config.target.state_schema)
    except Exception as exc:  # psycopg errors: the connection broke
        conn.close()
        _state_error(config, exc)
    if not found:
        conn.close()
        fail(SyncdError(f"the state schema {config.target.state_schema!r} has no dead letters table yet: "
                        "the first `syncd run` or `syncd snapshot` creates it (or `target.state_schema` "
                        "in config.yaml names another schema)"))
    return conn


def _state_error(config: Config, exc: Exception) -> None:
    fail(SyncdError(f"cannot use {config.target.state_schema}.dead_letters: {one_line(str(exc).strip())}"))


def _selected(conn: Any, config: Config, selector: Selector) -> list[StoredDeadLetter]:
    """The pending dead letters selected; exits for an unknown id (2) or a resolved one (0)."""
    schema = config.target.state_schema
    try:
        letters = fetch(conn, schema, selector)
        state = status_of(conn, schema, selector.id) if selector.id is not None and not letters else None
    except Exception as exc:
        conn.close()
        _state_error(config, exc)
    if selector.id is not None and not letters:
        conn.close()
        if state is None:
            fail(SyncdError(f"there is no dead letter {selector.id}"))
        click.echo(f"dead letter {selector.id} is {state}, not pending: nothing to do")
        sys.exit(EXIT_OK)
    return letters


# --------------------------------------------------------------------------- rendering


def outcome_lines(outcome: GroupOutcome) -> list[str]:
    head = f"{outcome.mapping}: {_count(outcome.letters, 'dead letter')}"
    if outcome.keys:
        counts = outcome.counts
        head += (f" ({_count(outcome.keys, 'source row')}: {counts[Outcome.APPLIED]} applied, "
                 f"{counts[Outcome.SOURCE_GONE]} removed (source row gone), "
                 f"{counts[Outcome.NEWER_IN_STREAM]} already changed by the stream, "
                 f"{counts[Outcome.DEAD_LETTERED]} dead-lettered again)")
    lines = [head]
    if outcome.retried:
        lines.append(f"  retried: {_ids(outcome.retried)}")
    failing = sorted(outcome.failing.items())
    for letter_id, reason in failing[:LISTED]:
        lines.append(f"  still failing #{letter_id}: {one_line(reason)}")
    if len(failing) > LISTED:
        lines.append(f"  ... and {len(failing) - LISTED} more still failing (`syncd dlq list` shows them)")
    if outcome.error:
        lines.append(f"  error: {one_line(outcome.error)} (these dead letters stay pending)")
    return lines


LISTED = 20
"""Dead letters (or runs of consecutive ids) a retry names one by one; the rest are counted."""


def _ids(ids: Iterable[int]) -> str:
    """`#3, #5-#9, #12`: runs of consecutive ids, at most LISTED of them, then how many more."""
    runs: list[list[int]] = []
    for letter_id in sorted(ids):
        if runs and letter_id == runs[-1][1] + 1:
            runs[-1][1] = letter_id
        else:
            runs.append([letter_id, letter_id])
    shown = ", ".join(f"#{a}" if a == b else f"#{a}-#{b}" for a, b in runs[:LISTED])
    rest = sum(b - a + 1 for a, b in runs[LISTED:])
    return shown + (f" and {rest} more" if rest else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def letter_json(letter: StoredDeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "created_at": letter.created_at.isoformat(),
        "source": letter.source,
        "source_table": letter.source_table,
        "mapping": letter.mapping,
        "row_key": letter.row_key,
        "position": letter.position,
        "reason": letter.reason,
        "status": letter.status,
        "resolved_at": letter.resolved_at.isoformat() if letter.resolved_at else None,
        "row_image": json_value(letter.row_image) if letter.row_image_kept else None,
    }


def _when(value: datetime) -> str:
    return value.astimezone().isoformat(sep=" ", timespec="seconds")


def letter_cells(letter: StoredDeadLetter, with_status: bool) -> list[str]:
    cells = [str(letter.id), _when(letter.created_at), letter.source, letter.mapping,
             cut(one_line(letter.row_key), 40), letter.position, one_line(letter.reason)]
    return [*cells, letter.status] if with_status else cells
