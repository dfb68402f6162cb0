"""Dead letters read back, retried and set aside (`state_schema.dead_letters`; `syncd dlq`).

Retrying never replays the stored row image. For each selected dead letter the source row's
key (the mapping's `source_key`, else the primary key) is taken from its image, and
`syncd.repair.repair` makes the target row equal to the mapping of the row as the source holds
it *now* (re-read by key): the newest image wins, a row deleted since then is removed (or
soft-deleted) from the target, and a key the stream changed meanwhile is left to the stream,
which has already made it right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from syncd.config import Config, SourceConfig
from syncd.errors import DeadLetterError, NoPrimaryKey, SyncdError
from syncd.model import Outcome

REQUESTED_BY = "dlq"


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
    from syncd.source.snapshot import row_key  # noqa: PLC0415

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


def trim_stored(conn: Any, config: Config, plans: dict[str, Any] | None = None) -> None:
    """Trim dead letters written before letters kept only what their mapping reads. The mapping
    files are compiled here without the servers when no plans are given; when they do not
    compile, older letters stay as they are and are listed without their row image."""
    from syncd.mapping.load import compile_all, load_specs  # noqa: PLC0415
    from syncd.sink.state import trim_letters  # noqa: PLC0415

    if plans is None:
        try:
            plans = compile_all(config, load_specs(config), None)
        except SyncdError:
            return
    kept = {m.name: m.kept for plan in plans.values() for m in plan.mappings}
    trim_letters(conn, config.target.state_schema, kept)
