"""`syncd dlq`: list, retry and discard dead letters (`state_schema.dead_letters`).

Retrying never replays the stored row image. For each selected dead letter the source row's
key (the mapping's `source_key`, else the primary key) is taken from its image, and
`syncd.repair.repair` makes the target row equal to the mapping of the row as the source holds
it *now* (re-read by key): the newest image wins, a row deleted since then is removed (or
soft-deleted) from the target, and a key the stream changed meanwhile is left to the stream,
which has already made it right.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from syncd.config import Config, SourceConfig
from syncd.errors import ConfigError, SyncdError
from syncd.model import Outcome
from syncd.observability import configure_logging, scrub
from syncd.preview import config_option, cut, display_width, json_value, load_config_or_exit, one_line, pad

EXIT_OK = 0
EXIT_STILL_FAILING = 1
EXIT_ERROR = 2

STATUSES = ("pending", "retried", "discarded")
REQUESTED_BY = "dlq"


class DeadLetterError(SyncdError):
    pass


@dataclass(frozen=True)
class StoredDeadLetter:
    """One row of `state_schema.dead_letters`."""

    id: int
    created_at: datetime
    source: str
    source_table: str
    mapping: str
    row_key: str
    position: str
    reason: str
    status: str
    resolved_at: datetime | None
    row_image: dict[str, Any]
    row_image_kept: bool = True
    """False for a letter written before letters kept only what their mapping reads: its image
    may hold columns in clear that must not be shown (`trim_stored` trims it)."""


# --------------------------------------------------------------------------- selecting


@dataclass(frozen=True)
class Selector:
    """Which dead letters a command acts on: exactly one of an id, a mapping, or all."""

    id: int | None = None
    mapping: str | None = None
    all: bool = False

    @classmethod
    def from_options(cls, letter_id: int | None, mapping: str | None, every: bool) -> Selector:
        given = sum([letter_id is not None, mapping is not None, every])
        if given != 1:
            raise click.UsageError("give exactly one of --id N, --mapping NAME or --all")
        return cls(letter_id, mapping, every)

    def describe(self) -> str:
        if self.id is not None:
            return f"dead letter {self.id}"
        if self.mapping is not None:
            return f"pending dead letters of mapping {self.mapping!r}"
        return "pending dead letters"


def where_clause(selector: Selector, status: str | None = "pending") -> tuple[str, list[Any]]:
    """SQL condition (without WHERE) and its parameters for a selector and a status (None: any)."""
    parts: list[str] = []
    params: list[Any] = []
    if status is not None:
        parts.append("status = %s")
        params.append(status)
    if selector.id is not None:
        parts.append("id = %s")
        params.append(selector.id)
    if selector.mapping is not None:
        parts.append("mapping = %s")
        params.append(selector.mapping)
    return (" AND ".join(parts) or "true"), params


_COLUMNS = ("id, created_at, source, source_table, mapping, row_key, binlog_position, reason, status, "
            "resolved_at, row_image, row_image_kept")


def fetch(conn: Any, schema: str, selector: Selector,
          status: str | None = "pending") -> list[StoredDeadLetter]:
    from psycopg import sql  # noqa: PLC0415 (keeps `syncd --help` fast)

    condition, params = where_clause(selector, status)
    query = sql.SQL("SELECT " + _COLUMNS + " FROM {}.dead_letters WHERE " + condition + " ORDER BY id"
                    ).format(sql.Identifier(schema))
    return [StoredDeadLetter(*row) for row in conn.execute(query, params).fetchall()]


def status_of(conn: Any, schema: str, letter_id: int) -> str | None:
    from psycopg import sql  # noqa: PLC0415

    query = sql.SQL("SELECT status FROM {}.dead_letters WHERE id = %s").format(sql.Identifier(schema))
    row = conn.execute(query, (letter_id,)).fetchone()
    return row[0] if row else None


def resolve(conn: Any, schema: str, ids: Iterable[int], status: str) -> int:
    """Mark pending dead letters retried or discarded; returns how many changed."""
    from psycopg import sql  # noqa: PLC0415

    id_list = sorted(set(ids))
    if not id_list:
        return 0
    statement = sql.SQL("UPDATE {}.dead_letters SET status = %s, resolved_at = now() "
                        "WHERE id = ANY(%s) AND status = 'pending'").format(sql.Identifier(schema))
    return conn.execute(statement, (status, id_list)).rowcount


# --------------------------------------------------------------------------- source keys


_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"}
_DATETIME_TYPES = {"datetime", "timestamp"}


def key_value(value: Any, data_type: str) -> Any:
    """A primary-key value as stored in a row image (JSON) -> the Python value the source holds.

    Row images keep exact values as text (decimals, dates and times in ISO 8601, bytes as
    `\\x` hex, TIME as seconds); `data_type` is the source column's type (information_schema).
    """
    kind = data_type.lower()
    try:
        if isinstance(value, str):
            if kind in _BINARY_TYPES and value.startswith("\\x"):
                return bytes.fromhex(value[2:])
            if kind in _DATETIME_TYPES:
                return datetime.fromisoformat(value)
            if kind == "date":
                return date.fromisoformat(value)
            if kind == "decimal":
                return Decimal(value)
        if kind == "time" and isinstance(value, int | float):
            return timedelta(seconds=value)
    except (ValueError, InvalidOperation) as exc:
        raise DeadLetterError(f"cannot read {data_type} key value {value!r} from the row image") from exc
    return value


def key_from_image(image: dict[str, Any], key_columns: tuple[str, ...],
                   column_types: dict[str, str]) -> tuple[Any, ...]:
    """The source row-key values of a dead letter's row image (the mapping's source_key, else the
    primary key), in the key's column order."""
    if not key_columns:
        raise DeadLetterError("the source table has no primary key; name a unique key with "
                              "`source_key:` in the mapping")
    missing = [c for c in key_columns if c not in image]
    if missing:
        raise DeadLetterError(f"the row image has no value for primary key column {missing[0]!r}")
    values = tuple(key_value(image[c], column_types.get(c, "")) for c in key_columns)
    if any(v is None for v in values):
        raise DeadLetterError("the row image has NULL in its primary key")
    return values


# --------------------------------------------------------------------------- retrying


@dataclass
class GroupOutcome:
    """What retrying one mapping's dead letters did."""

    mapping: str
    letters: int = 0
    keys: int = 0
    counts: Counter[Outcome] = field(default_factory=Counter)
    """Source rows by what the repair did with them."""
    retried: list[int] = field(default_factory=list)
    failing: dict[int, str] = field(default_factory=dict)
    """Dead letter id -> why it is still pending."""
    error: str | None = None


RepairFn = Callable[[list[tuple[Any, ...]]], Any]
"""keys -> a RepairResult (per-key outcomes): `repair` bound to one mapping."""


def retry_keys(keys: dict[tuple[Any, ...], list[StoredDeadLetter]], repair_keys: RepairFn,
               outcome: GroupOutcome) -> None:
    """Repair all keys at once; each key's outcome decides its letters: retried once the target
    holds what the source says, still pending (with the new reason) while it is dead-lettered."""
    result = repair_keys(list(keys))
    for key, letters in keys.items():
        found = result.outcome_for(key)
        if found is None:
            _still_failing(letters, "the repair reported nothing for this row", outcome)
            continue
        outcome.counts[found.outcome] += 1
        if found.outcome.settled:
            outcome.retried += [letter.id for letter in letters]
        else:
            _still_failing(letters, found.reason, outcome)


def _still_failing(letters: list[StoredDeadLetter], reason: str, outcome: GroupOutcome) -> None:
    for letter in letters:
        outcome.failing[letter.id] = reason or "the mapping still fails"


def group_by_mapping(letters: Iterable[StoredDeadLetter]) -> dict[str, list[StoredDeadLetter]]:
    groups: dict[str, list[StoredDeadLetter]] = {}
    for letter in letters:
        groups.setdefault(letter.mapping, []).append(letter)
    return groups


def keys_of(letters: list[StoredDeadLetter], key_columns: tuple[str, ...], column_types: dict[str, str],
            outcome: GroupOutcome) -> dict[tuple[Any, ...], list[StoredDeadLetter]]:
    """Dead letters by source key; those whose key cannot be read are recorded as failing."""
    keys: dict[tuple[Any, ...], list[StoredDeadLetter]] = {}
    for letter in letters:
        try:
            key = key_from_image(letter.row_image, key_columns, column_types)
        except DeadLetterError as exc:
            outcome.failing[letter.id] = str(exc)
            continue
        keys.setdefault(key, []).append(letter)
    return keys


def retry_mapping(config: Config, plans: dict[str, Any], name: str,
                  letters: list[StoredDeadLetter]) -> GroupOutcome:
    """Retry one mapping's dead letters through `syncd.repair.repair`."""
    from syncd.source import checks  # noqa: PLC0415

    outcome = GroupOutcome(name, letters=len(letters))
    plan, mapping = _find(plans, name)
    if mapping is None:
        for letter in letters:
            outcome.failing[letter.id] = (f"mapping {name!r} is not in the mapping files any more; "
                                          "restore it or discard these dead letters")
        return outcome
    table = mapping.spec.table
    for letter in letters:
        if letter.source != plan.source.name or letter.source_table != table:
            outcome.failing[letter.id] = (f"it comes from {letter.source}.{letter.source_table}, but "
                                          f"mapping {name!r} now reads {plan.source.name}.{table}")
    letters = [letter for letter in letters if letter.id not in outcome.failing]
    if not letters:
        return outcome
    conn = checks.connect(plan.source)
    try:
        key_columns = _row_key(conn, plan.source, mapping)
        column_types = checks.table_columns(conn, plan.source.database, table) or {}
    finally:
        conn.close()
    keys = keys_of(letters, key_columns, column_types, outcome)
    outcome.keys = len(keys)
    if keys:
        from syncd.repair import repair  # noqa: PLC0415

        retry_keys(keys, lambda k: repair(config, plans, name, k, requested_by=REQUESTED_BY), outcome)
    return outcome


def _row_key(conn: Any, source: SourceConfig, mapping: Any) -> tuple[str, ...]:
    """The mapping's source_key, else the primary key; () when the table has neither, so each
    dead letter fails alone with the reason (key_from_image)."""
    from syncd.source.snapshot import NoPrimaryKey, row_key  # noqa: PLC0415

    try:
        return row_key(conn, source, mapping.spec.table, mapping.spec.source_key, mapping.name)
    except NoPrimaryKey:
        return ()


def _find(plans: dict[str, Any], name: str) -> tuple[Any, Any]:
    for plan in plans.values():
        for mapping in plan.mappings:
            if mapping.name == name:
                return plan, mapping
    return None, None


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
        lines.append(f"  retried: {', '.join(f'#{i}' for i in sorted(outcome.retried))}")
    for letter_id, reason in sorted(outcome.failing.items()):
        lines.append(f"  still failing #{letter_id}: {one_line(reason)}")
    if outcome.error:
        lines.append(f"  error: {one_line(outcome.error)} (these dead letters stay pending)")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# --------------------------------------------------------------------------- tables


LIST_HEADERS = ("id", "created_at", "source", "mapping", "row_key", "position", "reason")


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


def table_lines(headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """A plain text table whose columns line up with CJK text too."""
    widths = [max([display_width(h), *(display_width(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


# --------------------------------------------------------------------------- commands


def trim_stored(conn: Any, config: Config, plans: dict[str, Any] | None = None) -> None:
    """Trim dead letters written before letters kept only what their mapping reads. The mapping
    files are compiled here without the servers when no plans are given; when they do not
    compile, older letters stay as they are and are listed without their row image."""
    from syncd.sink.state import trim_letters  # noqa: PLC0415
    from syncd.startup import compile_all, load_specs  # noqa: PLC0415

    if plans is None:
        try:
            plans = compile_all(config, load_specs(config), None)
        except SyncdError:
            return
    kept = {m.name: m.kept for plan in plans.values() for m in plan.mappings}
    trim_letters(conn, config.target.state_schema, kept)


def _connect(config: Config) -> Any:
    from syncd.sink.postgres import connect  # noqa: PLC0415

    try:
        return connect(config.target, "syncd:dlq")
    except SyncdError as exc:
        click.echo(scrub(f"syncd: {exc}"), err=True)
        sys.exit(EXIT_ERROR)


def _state_error(config: Config, exc: Exception) -> None:
    click.echo(scrub(f"syncd: cannot use {config.target.state_schema}.dead_letters: "
                     f"{one_line(str(exc).strip())}"), err=True)
    sys.exit(EXIT_ERROR)


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
    config = load_config_or_exit(config_path)
    conn = _connect(config)
    try:
        trim_stored(conn, config)
        letters = fetch(conn, config.target.state_schema, Selector(mapping=mapping_name),
                        None if status == "all" else status)
    except Exception as exc:  # psycopg errors, e.g. the state schema does not exist yet
        _state_error(config, exc)
    finally:
        conn.close()
    if as_json:
        import json  # noqa: PLC0415

        click.echo(json.dumps([letter_json(x) for x in letters], ensure_ascii=False, indent=2))
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
            click.echo(f"syncd: there is no dead letter {selector.id}", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"dead letter {selector.id} is {state}, not pending: nothing to do")
        sys.exit(EXIT_OK)
    return letters


@dlq.command()
@_selector_options
@config_option
def retry(letter_id: int | None, mapping_name: str | None, every: bool, config_path: Path) -> None:
    """Re-apply dead letters with the current mappings, from the CURRENT source rows.

    Fix the mapping first and reload the daemon (SIGHUP). For each selected pending dead letter
    the source row is re-read by its key (the mapping's source_key, else the primary key) and
    its target row is made equal to what the mapping makes of it now; an older image never
    overwrites a newer one, and a row deleted at the source since then is removed (or
    soft-deleted) in the target. Dead letters whose rows now map are marked retried; the others
    stay pending and their new reason is printed.

    Exit status: 0 all retried (or nothing to retry), 1 some still fail, 2 error,
    78 config.yaml is wrong.
    """
    from syncd.startup import build_plans  # noqa: PLC0415

    selector = Selector.from_options(letter_id, mapping_name, every)
    config = load_config_or_exit(config_path)
    configure_logging(config.log.level, config.log.format)  # to stderr; stdout is the report
    conn = _connect(config)
    letters = _selected(conn, config, selector)
    if not letters:
        conn.close()
        click.echo(f"no {selector.describe()}: nothing to retry")
        return
    try:
        plans = build_plans(config)
    except ConfigError as exc:
        conn.close()
        click.echo("syncd: the mapping files have problems; fix them (see `syncd validate --live`) "
                   "before retrying:", err=True)
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_ERROR)
    except SyncdError as exc:
        conn.close()
        click.echo(scrub(f"syncd: {exc}"), err=True)
        sys.exit(EXIT_ERROR)
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
    except Exception as exc:  # a driver error the repair did not translate: report, go on
        outcome = GroupOutcome(name, letters=len(letters), error=scrub(f"{type(exc).__name__}: {exc}"))
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
    return EXIT_STILL_FAILING if failing else EXIT_OK


@dlq.command()
@_selector_options
@config_option
def discard(letter_id: int | None, mapping_name: str | None, every: bool, config_path: Path) -> None:
    """Mark dead letters discarded: nobody will retry them. The target is not changed.

    Exit status: 0 done (also when nothing was pending), 2 error, 78 config.yaml is wrong.
    """
    selector = Selector.from_options(letter_id, mapping_name, every)
    config = load_config_or_exit(config_path)
    conn = _connect(config)
    try:
        letters = _selected(conn, config, selector)
        changed = resolve(conn, config.target.state_schema, [x.id for x in letters], "discarded")
    finally:
        conn.close()
    click.echo(f"discarded {_count(changed, 'dead letter')}" if changed
               else f"no {selector.describe()}: nothing to discard")
