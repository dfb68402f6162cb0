"""A MappingSpec compiled once into fast per-row functions, and the row-change -> row-ops step.

Everything here is pure: no I/O, no clock, no logging. A value that cannot be mapped raises
TransformError inside, and comes out as a DeadLetter.

A mapping's target row and key are each built by one generated function (a dict display, run
for every change): a plain copy reads the row inline, and a column transformed or mapped from one
source column calls its one function (transforms and value map, kept per distinct value) on the
value read, so the hot path pays no call per column for reading and composing.

The module is long because the generated row builders, the key builder and the change -> ops
step share their compiled columns and must stay in step; split, each would re-derive them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.errors import MissingSourceColumn, TransformArgsError, TransformError
from syncd.identity.keys import KeyHasher, record_id
from syncd.mapping import transforms
from syncd.mapping.astext import as_text
from syncd.mapping.columnvalues import localizer, memoized
from syncd.mapping.filters import RowTest, build_filter
from syncd.mapping.identity import compile_space
from syncd.mapping.spec import NO_VALUE, ColumnSpec, LookupSpec, MappingSpec, TransformStep
from syncd.mapping.timeofday import finishing
from syncd.model import (
    DeadLetter,
    Delete,
    IdentityClaim,
    IdentityLookup,
    IdentityRelease,
    IdentitySpace,
    MappedChange,
    Op,
    Row,
    RowChange,
    RowOp,
    SoftDelete,
    TargetTable,
    Undecodable,
    Upsert,
)

Compute = Callable[[Row], Any]


@dataclass(frozen=True)
class ColumnPlan:
    target: str
    compute: Compute
    copies: str | None = None
    """The source column this one copies (no transform or value map)..."""
    then: Callable[[Any], Any] | None = None
    """... and what is done to the copied value (a naive datetime read in the source time zone,
    a value into a text column made text)."""
    converted: tuple[str, Callable[[Any], Any]] | None = None
    """A column computed from one source column by one function (its transforms and value map,
    kept per distinct value, then made text): the source column and the function, which the
    generated row function calls on the value it reads (no call to `compute` on the hot path)."""


@dataclass(frozen=True)
class KeyPlan:
    """One match key (`identity.match`) or a lookup's `by`: computed, then hashed."""

    kind: str
    compute: Compute
    hasher: KeyHasher

    def hash(self, row: Row) -> str | None:
        value = self.compute(row)
        try:
            return self.hasher(self.kind, value)
        except TransformError as exc:
            raise TransformError(exc.reason, f"identity key {self.kind}") from exc


@dataclass(frozen=True)
class IdentityPlan:
    space: IdentitySpace
    column: str | None
    keys: tuple[KeyPlan, ...]
    contributes: tuple[str, ...]
    """The unified columns this mapping maps: its contribution to the person's unified row."""


@dataclass(frozen=True)
class LookupPlan:
    space: IdentitySpace
    column: str
    key: KeyPlan


WITHHELD = "(withheld)"
"""What a dead letter keeps of a private column whose published form cannot be computed."""


@dataclass(frozen=True)
class LetterColumns:
    """What a dead letter keeps of a row image: no more than a DBA needs to understand and retry it.

    Columns the mapping publishes in clear somewhere (a copy, a value map, a parsed amount, a
    filter, the source key) are kept as the source holds them; a column it reads only through a
    private transform (`mask_phone`, `mask`, `hash`) or as an identity match key is kept only as
    the mapping publishes it (masked, hashed); columns the mapping does not read are not kept."""

    clear: frozenset[str]
    published: dict[str, Compute]
    """Private column -> how the mapping publishes it, computed from the whole row image."""

    def image(self, row: Row, key_columns: tuple[str, ...] = ()) -> Row:
        kept: Row = {}
        for name, value in row.items():
            if name in self.clear or name in key_columns:
                kept[name] = value
            elif name in self.published:
                kept[name] = _published(self.published[name], row)
        return kept


def _published(compute: Compute, row: Row) -> Any:
    try:
        return compute(row)
    except TransformError:
        return WITHHELD


@dataclass(frozen=True)
class Mapping:
    spec: MappingSpec
    table: TargetTable
    key: tuple[str, ...]
    columns: tuple[ColumnPlan, ...]
    key_columns: tuple[ColumnPlan, ...]
    in_scope: RowTest | None
    source_columns: frozenset[str]
    identity: IdentityPlan | None = None
    lookups: tuple[LookupPlan, ...] = ()
    kept: LetterColumns = field(default_factory=lambda: LetterColumns(frozenset(), {}))
    """What a dead letter of this mapping keeps of a row image."""
    build_row: Callable[[Row], Row] = field(init=False, repr=False, compare=False)
    build_key: Callable[[Row], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "build_row", _row_builder(self.columns))
        object.__setattr__(self, "build_key", _key_builder(self.key_columns, self.key))

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(slots=True)  # per-change record: not frozen (see syncd/model.py)
class ChangeContext:
    """Where a change comes from: needed for soft deletes, commit-time columns and dead letters."""

    source: str
    position: str
    commit_time: datetime


def compile_mapping(spec: MappingSpec, ctx: transforms.TransformContext, default_schema: str,
                    aware_columns: Collection[str] | None = None,
                    text_columns: Collection[str] = (), *,
                    clock_columns: dict[str, bool] | None = None) -> Mapping:
    """Build per-row functions. `aware_columns`: target columns of type timestamptz (None: all);
    `text_columns`: of a text type (values made text, astext.py); `clock_columns`: of type
    time (False) or timetz (True), a TIME made a time of day or refused (timeofday.py)."""
    columns = tuple(_column_plan(c, ctx, aware_columns is None or c.target in aware_columns,
                                 finishing(c.target, c.target in text_columns,
                                           (clock_columns or {}).get(c.target)))
                    for c in spec.columns)
    identity = _compile_identity(spec, ctx, default_schema)
    lookups = tuple(_compile_lookup(spec, lookup, ctx, default_schema) for lookup in spec.lookups)
    return Mapping(
        spec=spec,
        table=TargetTable(spec.target_schema or default_schema, spec.target),
        key=spec.key,
        columns=columns,
        key_columns=tuple(c for c in columns if c.target in spec.key),
        in_scope=build_filter(spec.conditions),
        source_columns=frozenset(
            [s for c in spec.columns for s in c.sources] + [c.column for c in spec.conditions]
            + [s for c in identity_sources(spec) for s in c.sources] + list(spec.source_key)
        ),
        identity=identity,
        lookups=lookups,
        kept=_letter_columns(spec, columns, identity, lookups),
    )


def _is_private(spec: ColumnSpec) -> bool:
    return any(transforms.TRANSFORMS[step.name].private for step in spec.transforms)


def _letter_columns(spec: MappingSpec, columns: tuple[ColumnPlan, ...], identity: IdentityPlan | None,
                    lookups: tuple[LookupPlan, ...]) -> LetterColumns:
    clear = {s for c in spec.columns if not _is_private(c) for s in c.sources}
    clear |= {c.column for c in spec.conditions} | set(spec.source_key)
    hidden: list[tuple[ColumnSpec, Compute]] = [
        (c, plan.compute) for c, plan in zip(spec.columns, columns, strict=True) if _is_private(c)]
    if identity is not None and spec.identity is not None:
        hidden += [(key_spec, key.hash) for (_, key_spec), key in
                   zip(spec.identity.match, identity.keys, strict=True)]
    hidden += [(lookup_spec.by, lookup.key.hash) for lookup_spec, lookup in
               zip(spec.lookups, lookups, strict=True)]
    published: dict[str, Compute] = {}
    for column, compute in hidden:
        for name in column.sources:
            if name not in clear:
                published.setdefault(name, compute)
    return LetterColumns(frozenset(clear), published)


def identity_sources(spec: MappingSpec) -> list[ColumnSpec]:
    """The column expressions that identity match keys and lookups read from the source row."""
    found = [key for _, key in spec.identity.match] if spec.identity is not None else []
    return found + [lookup.by for lookup in spec.lookups]


def _compile_identity(spec: MappingSpec, ctx: transforms.TransformContext,
                      default_schema: str) -> IdentityPlan | None:
    identity = spec.identity
    if identity is None:
        return None
    own = ((spec.target_schema, spec.target, identity.column),) if identity.column else ()
    space, hasher = compile_space(identity.space, identity.name, default_schema, ctx.secret, own)
    unified = space.unified.policies if space.unified is not None else ()
    mapped = {c.target for c in spec.columns}
    return IdentityPlan(
        space=space,
        column=identity.column,
        keys=tuple(KeyPlan(kind, _compile_column(key, ctx, False), hasher) for kind, key in identity.match),
        contributes=tuple(column for column, _, _ in unified if column in mapped),
    )


def _compile_lookup(spec: MappingSpec, lookup: LookupSpec, ctx: transforms.TransformContext,
                    default_schema: str) -> LookupPlan:
    own = ((spec.target_schema, spec.target, lookup.target),)
    space, hasher = compile_space(lookup.space, lookup.identity, default_schema, ctx.secret, own)
    return LookupPlan(space, lookup.target, KeyPlan(lookup.kind, _compile_column(lookup.by, ctx, False),
                                                    hasher))


def _column_plan(spec: ColumnSpec, ctx: transforms.TransformContext, aware: bool,
                 finish: Callable[[Any], Any] | None) -> ColumnPlan:
    compute, change = _compiled_column(spec, ctx, aware, finish)
    if change is not None and len(spec.sources) == 1:
        return ColumnPlan(spec.target, compute, converted=(spec.sources[0], change))
    if spec.is_constant or len(spec.sources) != 1 or spec.transforms or spec.value_map is not None:
        return ColumnPlan(spec.target, compute)
    # A copy, perhaps read in the source time zone or finished: the row function does it inline.
    then = finish or (localizer(ctx.source_timezone) if aware else None)
    return ColumnPlan(spec.target, compute, spec.sources[0], then)


def _compile_column(spec: ColumnSpec, ctx: transforms.TransformContext, aware: bool,
                    finish: Callable[[Any], Any] | None = None) -> Compute:
    """`finish` (see timeofday.finishing): done to the value last, inside what is kept per distinct value."""
    return _compiled_column(spec, ctx, aware, finish)[0]


def _compiled_column(spec: ColumnSpec, ctx: transforms.TransformContext, aware: bool,
                     finish: Callable[[Any], Any] | None) -> tuple[Compute, Callable[[Any], Any] | None]:
    """The column's compute, and the one function it applies to the value it reads when it
    transforms or maps it and does nothing after (else None)."""
    if spec.is_constant:
        constant = finish(spec.constant) if finish is not None else spec.constant
        return (lambda row: constant), None
    read = _reader(spec.sources)
    steps = [_built(step, spec, ctx) for step in spec.transforms]
    convert = transforms.chain(steps) if steps else None
    lookup = value_lookup(spec) if spec.value_map is not None else None
    localize = localizer(ctx.source_timezone) if aware else None
    if finish is not None and convert is None and lookup is None:
        localize = finish  # a copy into a text or time column (never also a timestamptz one)
    if convert is None and lookup is None and localize is None:
        return read, None  # a plain copy: one call per value on the hot path, not two
    if convert is None and lookup is None:
        return _then(read, localize), None
    change = memoized(_converter(convert, lookup, spec.target, finish))
    if localize is None:
        return _then(read, change), change
    return _then(read, lambda value: localize(change(value))), None


def _then(read: Compute, change: Callable[[Any], Any]) -> Compute:
    def compute(row: Row) -> Any:
        return change(read(row))

    return compute


def _converter(convert: transforms.Transform | None, lookup: Callable[[Any], Any] | None,
               target: str, finish: Callable[[Any], Any] | None = None) -> Callable[[Any], Any]:
    """A column's transforms, then its value map, then `finish`; an error names the target column."""
    if lookup is None and finish is None and convert is not None:
        return _naming(convert, target)

    def run(value: Any) -> Any:
        if convert is not None:
            try:
                value = convert(value)
            except TransformError as exc:
                raise TransformError(exc.reason, target) from exc
        if lookup is not None:
            value = lookup(value)
        return finish(value) if finish is not None else value

    return run


def _naming(convert: transforms.Transform, target: str) -> Callable[[Any], Any]:
    """`convert` alone (the common case: no value map, not made text), an error naming the target column."""
    def run(value: Any) -> Any:
        try:
            return convert(value)
        except TransformError as exc:
            raise TransformError(exc.reason, target) from exc

    return run


def _built(step: TransformStep, spec: ColumnSpec, ctx: transforms.TransformContext) -> transforms.Transform:
    """One transform step; an argument error names the step's place in the mapping file."""
    try:
        return transforms.build_transform(step.name, step.args, ctx)
    except TransformArgsError as exc:
        raise exc.at(step.where.problem(""), f"column {spec.target!r}") from None


def _reader(sources: tuple[str, ...]) -> Compute:
    def read_one(row: Row) -> Any:
        try:
            return row[name]
        except KeyError:
            raise MissingSourceColumn(f"source column {name!r} is not in the row", name) from None

    if len(sources) == 1:
        name = sources[0]
        return read_one

    def read_many(row: Row) -> tuple[Any, ...]:
        missing = [s for s in sources if s not in row]
        if missing:
            raise MissingSourceColumn(f"source column {missing[0]!r} is not in the row", missing[0])
        return tuple(row[s] for s in sources)

    return read_many


def value_lookup(spec: ColumnSpec) -> Callable[[Any], Any]:
    """A value-map lookup in which YAML keys match source values by value or by their text
    (also the oracle of the map's SQL form, syncd/reconcile/columnsql.py)."""
    table = lookup_table(spec)
    policy, default, target = spec.on_unmapped, spec.default, spec.target

    def lookup(value: Any) -> Any:
        if value is None and None not in table:
            return None
        try:
            return table[value]
        except (KeyError, TypeError):
            pass
        text = str(value)
        if text in table:
            return table[text]
        if policy == "null":
            return None
        if policy == "keep":
            return value
        if policy == "default" and default is not NO_VALUE:
            return default
        raise TransformError(f"value {_short(value)} is not in the map", target)

    return lookup


def lookup_table(spec: ColumnSpec) -> dict[Any, Any]:
    """A value map's keys as the lookup matches them: each key, and the text of each key that is
    not text, None or a boolean (a text key of the same spelling wins)."""
    assert spec.value_map is not None
    table: dict[Any, Any] = {}
    for key, value in spec.value_map.items():
        table[key] = value
        if key is not None and not isinstance(key, bool):
            table.setdefault(str(key), value)
    return table


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def map_row(mapping: Mapping, row: Row) -> Row:
    """The full target row for a source row image (raises TransformError)."""
    return mapping.build_row(row)


def map_key(mapping: Mapping, row: Row) -> tuple[Any, ...]:
    return mapping.build_key(row)


def _row_builder(columns: tuple[ColumnPlan, ...]) -> Callable[[Row], Row]:
    """The whole target row in one generated function: a dict display in which plain copies
    read the row inline (a call per value less on the hot path).

    A missing source column falls back to computing column by column, which raises the same
    error, for the same column, as always."""
    def by_column(row: Row) -> Row:
        return {c.target: c.compute(row) for c in columns}

    items = ", ".join(f"{c.target!r}: {_inline(c, i)}" for i, c in enumerate(columns))
    return _generated(f"return {{{items}}}", columns, by_column)


def _key_builder(key_columns: tuple[ColumnPlan, ...],
                 key: tuple[str, ...]) -> Callable[[Row], tuple[Any, ...]]:
    """The target key of a row image: key columns computed in their mapping order, then put in key order."""
    def by_column(row: Row) -> tuple[Any, ...]:
        values = {c.target: c.compute(row) for c in key_columns}
        return tuple(values[k] for k in key)

    if not set(key) <= {c.target for c in key_columns}:
        return by_column  # an incomplete key raises KeyError there, as it always did
    last = {c.target: i for i, c in enumerate(key_columns)}
    lines = [f"v{i} = {_inline(c, i)}" for i, c in enumerate(key_columns)]
    lines.append(f"return ({''.join(f'v{last[k]}, ' for k in key)})")
    return _generated("; ".join(lines), key_columns, by_column)


def _inline(column: ColumnPlan, index: int) -> str:
    if column.converted is not None:
        return f"f{index}(row[{column.converted[0]!r}])"
    if column.copies is None:
        return f"c{index}(row)"
    if column.then is as_text:  # text, the common case, is passed on without a call
        return f"(v if (v := row[{column.copies!r}]).__class__ is str or v is None else t{index}(v))"
    return f"t{index}(row[{column.copies!r}])" if column.then is not None else f"row[{column.copies!r}]"


def _generated(body: str, columns: tuple[ColumnPlan, ...],
               by_column: Callable[[Row], Any]) -> Callable[[Row], Any]:
    source = (f"def build(row):\n    try:\n        {body}\n"
              f"    except KeyError:\n        return by_column(row)\n")
    namespace: dict[str, Any] = {f"c{i}": c.compute for i, c in enumerate(columns)}
    namespace.update({f"t{i}": c.then for i, c in enumerate(columns) if c.then is not None})
    namespace.update({f"f{i}": c.converted[1] for i, c in enumerate(columns) if c.converted is not None})
    namespace["by_column"] = by_column
    exec(compile(source, "<syncd mapping>", "exec"), namespace)  # generated from reprs of names only
    return namespace["build"]


def in_scope(mapping: Mapping, row: Row | None) -> bool:
    return row is not None and (mapping.in_scope is None or mapping.in_scope(row))


def map_change(mapping: Mapping, change: RowChange, ctx: ChangeContext) -> MappedChange:
    """Target row operations for one source row change; a failure becomes a dead letter."""
    try:
        if change.undecodable:
            _check_decodable(mapping, change)
        return MappedChange(_ops(mapping, change, ctx), [])
    except TransformError as exc:
        return MappedChange([], [dead_letter(mapping, change, ctx, str(exc))])


def _check_decodable(mapping: Mapping, change: RowChange) -> None:
    """Raises for a column holding text the source server cannot convert, when the mapping reads
    it: any column of the new image, and the key and `where` columns of the old one (so an
    UPDATE that fixes the bytes at the source applies)."""
    old_image = {c.column for c in mapping.spec.conditions} | {
        s for c in mapping.spec.columns if c.target in mapping.key for s in c.sources}
    for image, read in ((change.after, mapping.source_columns), (change.before, old_image)):
        for column in change.undecodable:
            value = image.get(column) if image is not None else None
            if isinstance(value, Undecodable) and column in read:
                raise TransformError(value.reason)


def _ops(mapping: Mapping, change: RowChange, ctx: ChangeContext) -> list[RowOp]:
    # in_scope inlined: this runs for every change of every mapping
    before, after, test = change.before, change.after, mapping.in_scope
    before_in = before is not None and (test is None or test(before))
    if after is not None and (test is None or test(after)):
        upsert = _upsert(mapping, after, ctx)
        if before_in and change.op is Op.UPDATE:
            assert before is not None
            old_key = mapping.build_key(before)
            values = upsert.values
            if old_key != tuple([values[k] for k in mapping.key]):  # a list: a generator costs 2x
                return [remove_op(mapping, old_key, ctx), upsert]
        return [upsert]
    if before_in:
        assert before is not None
        return [remove_op(mapping, mapping.build_key(before), ctx)]
    return []


def _upsert(mapping: Mapping, row: Row, ctx: ChangeContext) -> Upsert:
    values = mapping.build_row(row)  # map_row, without the call
    spec = mapping.spec
    if spec.commit_time_column:
        values[spec.commit_time_column] = ctx.commit_time
    if spec.soft_delete_column:
        values[spec.soft_delete_column] = None
    if mapping.identity is None and not mapping.lookups:
        return Upsert(mapping.table, mapping.key, values)
    record = record_id(mapping.key, tuple(values[k] for k in mapping.key))
    lookups = tuple(IdentityLookup(lookup.space, lookup.column, lookup.key.kind, lookup.key.hash(row),
                                   mapping.name, record)
                    for lookup in mapping.lookups)
    return Upsert(mapping.table, mapping.key, values, identity=_claim(mapping, row, values, record, ctx),
                  lookups=lookups)


def _claim(mapping: Mapping, row: Row, values: Row, record: str, ctx: ChangeContext) -> IdentityClaim | None:
    """The record's hashed match keys and its contribution; the sink resolves its person."""
    identity = mapping.identity
    if identity is None:
        return None
    keys: dict[tuple[str, str], None] = {}
    for key in identity.keys:
        hashed = key.hash(row)
        if hashed is not None:
            keys[(key.kind, hashed)] = None
    return IdentityClaim(
        space=identity.space,
        mapping=mapping.name,
        source=ctx.source,
        table=mapping.table,
        record=record,
        keys=tuple(keys),
        column=identity.column,
        values={column: values[column] for column in identity.contributes},
        commit_time=ctx.commit_time,
        position=ctx.position,
    )


def remove_op(mapping: Mapping, key_values: tuple[Any, ...], ctx: ChangeContext) -> RowOp:
    spec = mapping.spec
    release = None
    if mapping.identity is not None:
        release = IdentityRelease(mapping.identity.space, mapping.name, record_id(mapping.key, key_values),
                                  ctx.commit_time)
    if spec.delete == "soft" and spec.soft_delete_column:
        return SoftDelete(mapping.table, mapping.key, key_values, spec.soft_delete_column,
                          ctx.commit_time, identity=release)
    return Delete(mapping.table, mapping.key, key_values, identity=release)


def row_key_text(names: tuple[str, ...], values: tuple[Any, ...] | list[Any]) -> str:
    """`id=42` style text naming a source row by its key: the one form in which dead letters,
    repairs and reconcile name rows (they find each other's rows by it). SQL NULL is `NULL`, as
    in the rest of syncd's output (`ev_time=NULL`)."""
    return ",".join(f"{n}={'NULL' if v is None else repr(v)}" for n, v in zip(names, values, strict=True))


def source_key_text(change: RowChange, source_key: tuple[str, ...] = ()) -> str:
    """The row key text of a change: by the mapping's `source_key` when it names one, else by
    the primary key the change carries (none for a table without one)."""
    row = change.after if change.after is not None else change.before or {}
    names = source_key or change.key_columns or tuple(row)[:1]
    return row_key_text(names, [row.get(name) for name in names])


ZERO_DATE_READ_AS_NULL = "zero_date_read_as_null"
"""The warning every path that reads rows logs for a row whose zero dates it read as NULL."""


def zero_date_fields(change: RowChange, mappings: Sequence[Mapping], position: str) -> dict[str, Any] | None:
    """The fields of a change's `ZERO_DATE_READ_AS_NULL` warning (docs/types.md): table, the
    columns the mappings read whose zero date became NULL, row key (by the first mapping's source
    key) and position; None when the mappings read none of them."""
    columns = tuple(c for c in change.zero_dates if any(c in m.source_columns for m in mappings))
    if not columns:
        return None
    return {"table": change.table, "columns": columns,
            "row_key": source_key_text(change, mappings[0].spec.source_key), "position": position}


def dead_letter(mapping: Mapping, change: RowChange, ctx: ChangeContext, reason: str) -> DeadLetter:
    """The dead letter of a change: its key, position and reason, and of its row image only what
    the mapping reads, as the mapping publishes it (`LetterColumns`)."""
    image = change.after if change.after is not None else change.before or {}
    return DeadLetter(
        source=ctx.source,
        source_table=change.table,
        mapping=mapping.name,
        row_key=source_key_text(change, mapping.spec.source_key),
        position=ctx.position,
        row_image=mapping.kept.image(image, change.key_columns),
        reason=reason,
        event_pos=change.event_pos,
        row_index=change.row_index,
    )
