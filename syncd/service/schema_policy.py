"""What a source schema change means for each mapping: absorb it, pause the mapping, or
propagate a TRUNCATE as the removal of the mapping's slice.

A paused mapping stops at the DDL's binlog position while everything else goes on; once the
DBA fixes the mapping and reloads, it replays from that position (see Pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.mapping.plan import Mapping
from syncd.model import COPY_NEEDED, HISTORY_PAUSE, DeleteSlice, Pause, Position, RowOp, SchemaChange
from syncd.source.ddl import TableEffect, table_effects

ColumnsLookup = Callable[[str], dict[str, str] | None]
"""Live columns of a source table (name -> data type), or None when the table does not exist."""

_FAMILIES = {
    "number": {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric",
               "float", "double", "real", "bit", "year"},
    "text": {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"},
    "time": {"date", "datetime", "timestamp", "time"},
    "bytes": {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"},
}


def type_family(data_type: str) -> str:
    """Types within a family convert to each other the same way (INT -> BIGINT is harmless)."""
    kind = data_type.lower()
    return next((family for family, types in _FAMILIES.items() if kind in types), kind)


@dataclass
class SchemaDecision:
    pauses: list[Pause] = field(default_factory=list)
    ops: list[RowOp] = field(default_factory=list)
    absorbed: list[str] = field(default_factory=list)

    def pause(self, pause: Pause) -> None:
        """Pause a mapping; a later effect of the same statement on it (the swap's second rename)
        says what happened to it last."""
        self.pauses = [p for p in self.pauses if p.mapping != pause.mapping] + [pause]


def _fix_hint(mapping: Mapping) -> str:
    where = mapping.spec.where
    return (f"edit mapping {mapping.name!r} at {where.file}:{where.line}, check it with "
            "`syncd validate --live`, then reload (`systemctl reload syncd` or SIGHUP); it resumes "
            "from this position")


def history_fix_hint(mapping: Mapping) -> str:
    """What to do when a mapping paused because its rows cannot be named (schema history)."""
    return (f"{HISTORY_PAUSE}; copy the table again with `syncd snapshot --mapping "
            f"{mapping.name}` (it records the table's columns at the copy's position, and the mapping "
            "resumes from there), then reload syncd (`systemctl reload syncd` or SIGHUP); "
            "docs/sources.md says more")


def decide(change: SchemaChange, database: str, mappings: list[Mapping], *, paused: set[str],
           columns: ColumnsLookup, known: dict[str, dict[str, str]],
           truncate_policy: str) -> SchemaDecision:
    """Per mapping touched by the statement: absorb, pause, or (TRUNCATE) remove its slice.

    `known` holds each table's column types as last seen; it is updated here.
    """
    decision = SchemaDecision()
    for effect in table_effects(change.statement, change.schema or database, database):
        before = known.get(effect.table)
        live = columns(effect.table) if effect.kind == "alter" else None
        if live is not None:
            known[effect.table] = live
        for mapping in (m for m in mappings if m.spec.table == effect.table and m.name not in paused):
            reason = _breakage(effect, mapping, before, live, truncate_policy)
            if reason is None and effect.kind == "truncate":
                decision.ops.append(slice_delete(mapping, change))
            elif reason is None:
                decision.absorbed.append(mapping.name)
            else:
                decision.pause(Pause(mapping.name, change.source, change.end, change.statement,
                                     f"{reason}; {_fix_hint(mapping)}"))
        for mapping in _replaced(effect, mappings, paused):
            decision.pause(Pause(mapping.name, change.source, change.end, change.statement,
                                 f"source table {mapping.spec.table} was replaced by table {effect.table}, "
                                 f"whose rows syncd never read: {COPY_NEEDED}; {copy_fix_hint(mapping)}"))
    return decision


def _replaced(effect: TableEffect, mappings: list[Mapping], paused: set[str]) -> list[Mapping]:
    """The mappings of the table another table was just renamed to (an online schema change's
    swap, `RENAME TABLE t TO t_old, t_new TO t`)."""
    if effect.kind != "rename":
        return []
    return [m for m in mappings if m.spec.table == effect.new_name and m.name not in paused]


def copy_fix_hint(mapping: Mapping) -> str:
    """What to do when a mapping paused because its table was replaced by another."""
    return (f"copy the table again with `syncd snapshot --mapping {mapping.name}` (the mapping then "
            "resumes from the copy's position), then reload syncd (`systemctl reload syncd` or SIGHUP); "
            "a reload alone does not resume it")


def _breakage(effect: TableEffect, mapping: Mapping, before: dict[str, str] | None,
              live: dict[str, str] | None, truncate_policy: str) -> str | None:
    table = mapping.spec.table
    fixed = {
        "drop": f"source table {table} was dropped",
        "rename": f"source table {table} was renamed to {effect.new_name}",
        "truncate": f"source table {table} was truncated (ddl.truncate: pause)"
        if truncate_policy == "pause" else None,
    }
    if effect.kind != "alter":
        return fixed.get(effect.kind)
    if live is None:
        return f"source table {table} no longer exists"
    missing = sorted(mapping.source_columns - set(live))
    if missing:
        return f"source table {table} no longer has column(s) {', '.join(missing)}"
    changed = [f"{c} {before[c]} -> {live[c]}" for c in sorted(mapping.source_columns)
               if before and c in before and type_family(before[c]) != type_family(live[c])]
    if changed:
        return (f"mapped column type changed ({', '.join(changed)}); values may no longer convert "
                "as the mapping expects")
    return None


def slice_delete(mapping: Mapping, change: SchemaChange) -> RowOp:
    spec = mapping.spec
    soft = spec.soft_delete_column if spec.delete == "soft" else None
    return DeleteSlice(mapping.table, tuple(spec.slice_values().items()), soft,
                       change.commit_time if soft else None)


class MappingGate:
    """Which mappings a transaction feeds: paused ones none; resumed ones replay from their pause.

    While a resumed mapping replays the stretch between its pause and the checkpoint, only it
    is fed, and the checkpoint stays where it was (a crash then simply replays it again). A
    resumed mapping whose pause lies past the checkpoint (a snapshot copied it again there, and
    moved its pause) waits until the stream passes that position.
    """

    def __init__(self, pauses: list[Pause], resumable: set[str], checkpoint: Position) -> None:
        self.paused = {p.mapping: p for p in pauses if p.mapping not in resumable}
        resumed = [p for p in pauses if p.mapping in resumable]
        self.replay = {p.mapping: p.position for p in resumed if p.position < checkpoint}
        self.replay_until = checkpoint if self.replay else None
        self.waiting = {p.mapping: p.position for p in resumed if p.position > checkpoint}
        self._cleared = [p.mapping for p in resumed if p.position == checkpoint]

    def start(self, checkpoint: Position) -> Position:
        return min([checkpoint, *self.replay.values()])

    @property
    def open(self) -> bool:
        """Every mapping is fed (none paused, replaying or waiting): the common case, tested once
        per event."""
        return not self.paused and self.replay_until is None and not self.waiting

    def applies(self, mapping: str, end: Position) -> bool:
        if mapping in self.paused:
            return False
        if mapping in self.waiting:
            return end > self.waiting[mapping]
        if self.replay_until is not None and end <= self.replay_until:
            return mapping in self.replay and end > self.replay[mapping]
        return True

    def checkpoint_for(self, end: Position) -> Position:
        if self.replay_until is not None and end <= self.replay_until:
            return self.replay_until
        return end

    def take_resumed(self, end: Position | None) -> list[str]:
        """Mappings whose replay is complete at `end` (their pause rows can be cleared)."""
        if not (self._cleared or self.replay or self.waiting):  # the common case, once per transaction
            return []
        done, self._cleared = self._cleared, []
        if self.replay_until is not None and end is not None and end > self.replay_until:
            done += list(self.replay)
            self.replay, self.replay_until = {}, None
        if self.waiting and end is not None:
            passed = [mapping for mapping, position in self.waiting.items() if end > position]
            for mapping in passed:
                del self.waiting[mapping]
            done += passed
        return done

    def finish_replay(self) -> list[str]:
        """The stream has read everything up to `replay_until`: every replaying mapping caught up."""
        done, self._cleared = [*self._cleared, *self.replay], []
        self.replay, self.replay_until = {}, None
        return done

    def pause(self, pause: Pause) -> None:
        self.waiting.pop(pause.mapping, None)
        self.paused[pause.mapping] = pause
