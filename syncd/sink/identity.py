"""Identity resolution against PostgreSQL, inside the sink's target transaction.

For each batch of row operations (`resolve`):

1. lock the identity spaces the operations touch (`pg_advisory_xact_lock`, sorted by name, held
   until the target transaction ends): two sources' pipelines resolving in the same space take
   turns, so neither can see the other's half-done merge, and a kill -9 at any moment rolls the
   whole transaction back: links, merges, re-pointed rows, unified rows and checkpoint alike;
2. load the links and records the operations name into a `core.LinkStore` (the person ids are
   numbered on from the space's largest one);
3. run the pure model (`core.claim` / `core.lookup` / `core.release`) over the operations, in order;
4. write back what the store's journal says changed: new persons, merges (persons, links and
   contributions re-pointed, every target column holding the space's person ids re-pointed, the
   merged persons' unified rows removed, an audit row in `identity_merges`), new links, and the
   records' contributions;
5. return the operations with their person columns filled in.

`pending` and `recompute` then rebuild the unified row of every person the batch touched.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
import structlog
from psycopg import sql

from syncd.identity import core
from syncd.identity.keys import KNOWN, RECORD_SEP, decode_values, encode_values, record_id, record_name
from syncd.identity.policies import Contribution, unify
from syncd.model import (
    REPAIR_AT,
    SNAPSHOT_AT,
    DeadLetter,
    Delete,
    DeleteSlice,
    IdentityClaim,
    IdentityRelease,
    IdentitySpace,
    RowOp,
    SoftDelete,
    TargetTable,
    Upsert,
)
from syncd.sink.statements import pg_name, upsert

if TYPE_CHECKING:
    from syncd.sink.batch import PlannedOp

log = structlog.get_logger("syncd.identity")

LOCK_CLASS = 0x5349
"""First key of identity advisory locks ("SI"); syncd's source locks use 0x5359."""

_UPSERT_CONTRIBUTION = (
    'INSERT INTO {s}.identity_contributions AS c (space, mapping, source_key, person_id, source, '
    'target_table, keys, "values", commit_time, first_seen, deleted_at) '
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (space, mapping, source_key) DO UPDATE SET person_id = EXCLUDED.person_id, "
    "source = EXCLUDED.source, target_table = EXCLUDED.target_table, keys = EXCLUDED.keys, "
    '"values" = EXCLUDED."values", commit_time = {time}, deleted_at = EXCLUDED.deleted_at, '
    "updated_at = now()")
_READ_AGAIN = (REPAIR_AT, SNAPSHOT_AT)
"""Positions of records read again by key or copied: they carry the time they were read, not a
source commit."""
_KEPT_TIME = ('CASE WHEN c."values" IS NOT DISTINCT FROM EXCLUDED."values" AND c.deleted_at IS NULL '
              "AND EXCLUDED.deleted_at IS NULL THEN c.commit_time ELSE EXCLUDED.commit_time END")
"""A record read again unchanged keeps its commit time: a repair or a snapshot of an unrelated
column must not make its contribution the `latest` of its person's."""



def spaces_of(ops: Iterable[PlannedOp]) -> set[str]:
    """The identity spaces whose locks these operations need."""
    names: set[str] = set()
    for planned in ops:
        op = planned.op
        if isinstance(op, Upsert):
            if op.identity is not None:
                names.add(op.identity.space.name)
            if op.lookups:  # a generator per row costs more than the test
                names.update(lookup.space.name for lookup in op.lookups)
        elif isinstance(op, Delete | SoftDelete) and op.identity is not None:
            names.add(op.identity.space.name)
    return names


def _key_text(key: core.Key) -> str:
    return f"{key[0]}:{key[1]}"


def _key_of(text: str) -> core.Key:
    kind, _, value = text.partition(":")
    return kind, value


@dataclass
class _Final:
    """What a batch leaves of one record: its last claim, and whether it ends deleted."""

    claim: IdentityClaim | None = None
    release: IdentityRelease | None = None
    deleted_at: datetime | None = None


@dataclass
class _Work:
    """One space's part of a batch."""

    space: IdentitySpace
    keys: set[core.Key] = field(default_factory=set)
    records: set[str] = field(default_factory=set)
    store: core.LinkStore | None = None
    preloaded: set[core.Key] = field(default_factory=set)
    linker: dict[core.Key, tuple[str, str]] = field(default_factory=dict)
    final: dict[str, _Final] = field(default_factory=dict)
    origins: dict[int, DeadLetter] = field(default_factory=dict)


class IdentitySession:
    """The identity work of one target transaction, over the sink's cursor."""

    def __init__(self, cur: psycopg.Cursor, schema: str) -> None:
        self.cur = cur
        self.schema = schema
        self.spaces: dict[str, IdentitySpace] = {}
        self._touched: dict[tuple[str, int], DeadLetter | None] = {}

    def _sql(self, text: str, **names: Any) -> sql.Composed:
        return sql.SQL(text).format(s=sql.Identifier(self.schema), **names)

    def lock(self, names: Iterable[str]) -> None:
        """Take the spaces' transaction locks, in name order (no deadlock between spaces)."""
        # Taken again on every call (a counter increment when held): a lock taken inside a
        # savepoint that was rolled back is gone.
        for name in sorted(set(names)):
            self.cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                             (LOCK_CLASS, f"{self.schema}.{name}"))

    # ------------------------------------------------------------------ resolving a batch

    def resolve(self, ops: list[PlannedOp]) -> list[PlannedOp]:
        """Resolve the operations' persons; returns them with person columns filled."""
        work: dict[str, _Work] = {}
        for planned in ops:
            self._collect(planned.op, work)
        if not work:
            return ops
        self.lock(work)
        for item in work.values():
            self._load(item)
        for planned in ops:
            self._run(planned, work)
        for item in work.values():
            self._flush(item)
        return [self._fill(planned, work) for planned in ops]

    def _space(self, space: IdentitySpace, work: dict[str, _Work]) -> _Work:
        self.spaces[space.name] = space
        if space.name not in work:
            work[space.name] = _Work(space)
        return work[space.name]

    def _collect(self, op: RowOp, work: dict[str, _Work]) -> None:
        if isinstance(op, Upsert):
            if op.identity is not None:
                item = self._space(op.identity.space, work)
                item.keys.update(op.identity.keys)
                item.keys.update(key for keys in op.identity.earlier for key in keys)
                item.records.add(record_name(op.identity.mapping, op.identity.record))
            for lookup in op.lookups:
                item = self._space(lookup.space, work)
                if lookup.key_hash is not None:
                    item.keys.add((lookup.kind, lookup.key_hash))
        elif isinstance(op, Delete | SoftDelete) and op.identity is not None:
            item = self._space(op.identity.space, work)
            item.records.add(record_name(op.identity.mapping, op.identity.record))

    def _load(self, item: _Work) -> None:
        item.store = load_store(self.cur, self.schema, item.space.name, item.keys, item.records)
        item.preloaded = set(item.store.links)

    def _run(self, planned: PlannedOp, work: dict[str, _Work]) -> None:
        op = planned.op
        if isinstance(op, Upsert):
            claim = op.identity
            if claim is not None:
                item = work[claim.space.name]
                assert item.store is not None
                name = record_name(claim.mapping, claim.record)
                for keys in (*claim.earlier, claim.keys):  # each version, as if applied in turn
                    result = core.claim(item.store, name, keys, cause=claim,
                                        alive=claim.alive or keys is not claim.keys)
                    for key in keys:
                        item.linker.setdefault(key, (claim.mapping, claim.record))
                item.final[name] = _Final(claim, None, None if claim.alive else claim.commit_time)
                self._touch(item, result.person, planned.origin)
            for lookup in op.lookups:
                if lookup.key_hash is None:
                    continue
                item = work[lookup.space.name]
                assert item.store is not None
                key = (lookup.kind, lookup.key_hash)
                core.lookup(item.store, key)
                item.linker.setdefault(key, (lookup.mapping, lookup.record))
        elif isinstance(op, Delete | SoftDelete) and op.identity is not None:
            release = op.identity
            item = work[release.space.name]
            assert item.store is not None
            name = record_name(release.mapping, release.record)
            person = core.release(item.store, name)
            if person is not None:
                final = item.final.setdefault(name, _Final())
                final.release = release
                final.deleted_at = release.at or datetime.now(UTC)
                self._touch(item, person, planned.origin)

    def _touch(self, item: _Work, person: int, origin: DeadLetter) -> None:
        self._touched[(item.space.name, person)] = origin

    def _fill(self, planned: PlannedOp, work: dict[str, _Work]) -> PlannedOp:
        op = planned.op
        if not isinstance(op, Upsert) or (op.identity is None and not op.lookups):
            return planned
        values = dict(op.values)
        claim = op.identity
        if claim is not None and claim.column is not None:
            store = work[claim.space.name].store
            assert store is not None
            values[claim.column] = store.record_person(record_name(claim.mapping, claim.record))
        for lookup in op.lookups:
            store = work[lookup.space.name].store
            assert store is not None
            values[lookup.column] = (None if lookup.key_hash is None
                                     else store.key_person((lookup.kind, lookup.key_hash)))
        return dataclasses.replace(planned, op=dataclasses.replace(op, values=values))

    # ------------------------------------------------------------------ writing back

    def _flush(self, item: _Work) -> None:
        store = item.store
        assert store is not None
        space = item.space.name
        if store.created:
            self.cur.executemany(self._sql("INSERT INTO {s}.identity_persons (space, person_id) "
                                           "VALUES (%s, %s)"), [(space, p) for p in store.created])
        for merge in store.merges:
            self._merge(item, merge)
        new_links = [(space, kind, value, store.key_person((kind, value)), *item.linker[(kind, value)])
                     for kind, value in store.changed_links if (kind, value) not in item.preloaded]
        if new_links:
            self.cur.executemany(self._sql(
                "INSERT INTO {s}.identity_links (space, kind, key_hash, person_id, mapping, source_key) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (space, kind, key_hash) "
                "DO UPDATE SET person_id = EXCLUDED.person_id"), new_links)
        self._write_records(item)

    def _write_records(self, item: _Work) -> None:
        store = item.store
        assert store is not None
        upserts: dict[bool, list[tuple[Any, ...]]] = {False: [], True: []}
        releases = []
        for name, final in item.final.items():
            person = store.record_person(name)
            if final.claim is not None:
                claim = final.claim
                values = None if final.deleted_at else encode_values(claim.values)
                upserts[claim.position.startswith(_READ_AGAIN)].append((
                    item.space.name, claim.mapping, claim.record, person, claim.source, str(claim.table),
                    [_key_text(k) for k in sorted(claim.keys)], values, claim.commit_time,
                    claim.commit_time, final.deleted_at))
            elif final.release is not None:
                releases.append((final.deleted_at, item.space.name, final.release.mapping,
                                 final.release.record))
        for read_again, rows in upserts.items():
            if rows:
                self.cur.executemany(self._sql(_UPSERT_CONTRIBUTION, time=sql.SQL(
                    _KEPT_TIME if read_again else "EXCLUDED.commit_time")), rows)
        if releases:
            self.cur.executemany(self._sql(
                'UPDATE {s}.identity_contributions SET deleted_at = %s, "values" = NULL, updated_at = now() '
                "WHERE space = %s AND mapping = %s AND source_key = %s AND deleted_at IS NULL"), releases)

    def _merge(self, item: _Work, merge: core.Merge) -> None:
        space = item.space
        params = {"space": space.name, "survivor": merge.survivor, "merged": list(merge.merged)}
        self.cur.execute(self._sql(
            "UPDATE {s}.identity_persons SET merged_into = %(survivor)s, merged_at = now() "
            "WHERE space = %(space)s AND (person_id = ANY(%(merged)s) OR merged_into = ANY(%(merged)s))"),
            params)
        for table in ("identity_links", "identity_contributions"):
            self.cur.execute(self._sql("UPDATE {s}.{t} SET person_id = %(survivor)s "
                                       "WHERE space = %(space)s AND person_id = ANY(%(merged)s)",
                                       t=sql.Identifier(table)), params)
        repointed = 0
        for table, column in space.references:
            self.cur.execute(sql.SQL("UPDATE {} SET {} = %(survivor)s WHERE {} = ANY(%(merged)s)").format(
                _table(table), pg_name(column), pg_name(column)), params)
            repointed += max(self.cur.rowcount, 0)
        if space.unified is not None:
            self.cur.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%(merged)s)").format(
                _table(space.unified.table), pg_name(space.unified.key)), params)
        claim = merge.cause
        assert isinstance(claim, IdentityClaim)  # only claims merge
        mapping, _, record = merge.record.partition(RECORD_SEP)
        self.cur.execute(self._sql(
            "INSERT INTO {s}.identity_merges (space, survivor, merged, mapping, source, source_key, "
            "key_kinds, position, commit_time) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"),
            (space.name, merge.survivor, list(merge.merged), mapping, claim.source, record,
             list(merge.kinds), claim.position, claim.commit_time))
        origin = None
        for person in merge.merged:
            origin = self._touched.pop((space.name, person), None) or origin
        if origin is not None:
            self._touched.setdefault((space.name, merge.survivor), origin)
        log.info("identity_merged", space=space.name, survivor=merge.survivor, merged=list(merge.merged),
                 mapping=mapping, source_key=record, kinds=list(merge.kinds),
                 position=claim.position, rows_repointed=repointed)

    # ------------------------------------------------------------------ TRUNCATE

    def release_slice(self, planned: PlannedOp) -> None:
        """A source TRUNCATE removed a mapping's slice: its records stop contributing."""
        op = planned.op
        assert isinstance(op, DeleteSlice)
        columns = tuple(c for c, _ in op.slice)
        match = record_id(columns, tuple(v for _, v in op.slice))
        where = ("target_table = %s AND deleted_at IS NULL AND source_key::jsonb @> %s::jsonb")
        spaces = [r[0] for r in self.cur.execute(self._sql(
            f"SELECT DISTINCT space FROM {{s}}.identity_contributions WHERE {where}"),
            (str(op.table), match)).fetchall()]
        if not spaces:
            return
        self.lock(spaces)
        released = self.cur.execute(self._sql(
            'UPDATE {s}.identity_contributions SET deleted_at = coalesce(%s, now()), "values" = NULL, '
            f"updated_at = now() WHERE {where} RETURNING space, person_id"),
            (op.at, str(op.table), match)).fetchall()
        for space, person in released:
            if space not in self.spaces and space in KNOWN:
                self.spaces[space] = KNOWN[space]
            self._touched[(space, person)] = planned.origin

    # ------------------------------------------------------------------ unified rows

    def pending(self) -> list[tuple[str, int, DeadLetter | None]]:
        """The live persons whose unified rows this session must rebuild, with an origin each."""
        found: dict[tuple[str, int], DeadLetter | None] = {}
        by_space: dict[str, list[int]] = {}
        for space, person in self._touched:
            by_space.setdefault(space, []).append(person)
        for space, persons in sorted(by_space.items()):
            if space not in self.spaces or self.spaces[space].unified is None:
                if space not in self.spaces:
                    log.warning("identity_unified_not_recomputed", space=space, persons=len(persons),
                                hint="run `syncd identity recompute`")
                continue
            rows = self.cur.execute(self._sql(
                "SELECT person_id, coalesce(merged_into, person_id) FROM {s}.identity_persons "
                "WHERE space = %s AND person_id = ANY(%s)"), (space, persons)).fetchall()
            for person, live in rows:
                found.setdefault((space, live), self._touched[(space, person)])
        self._touched.clear()
        return [(space, person, origin) for (space, person), origin in sorted(found.items())]

    def recompute(self, space: str, persons: list[int]) -> None:
        """Rebuild the unified rows of these live persons from their live contributions."""
        definition = self.spaces[space]
        recompute_unified(self.cur, self.schema, definition, persons)

    def finish(self) -> None:
        """Rebuild every touched person's unified row (grouped: one statement per kind)."""
        by_space: dict[str, list[int]] = {}
        for space, person, _origin in self.pending():
            by_space.setdefault(space, []).append(person)
        for space, persons in by_space.items():
            self.recompute(space, persons)


_SURVIVOR = "coalesce(p.merged_into, l.person_id)"
_PERSON = "LEFT JOIN {s}.identity_persons p ON p.space = l.space AND p.person_id = l.person_id"
"""Joined to a link or contribution `l`: its person's survivor (a merge flattens `merged_into`)."""


def load_store(cur: psycopg.Cursor, schema: str, space: str, keys: Iterable[core.Key],
               records: Iterable[str]) -> core.LinkStore:
    """A store holding the stored links of these keys and the stored state of these records
    (`record_name`s); it numbers new persons after the space's largest id. Only reads.

    A stored person that was merged away is loaded as its survivor. A merge re-points links and
    contributions in its own transaction, so this only matters for state edited by hand; the
    sink, `syncd preview` and `syncd reconcile` then still agree on the person."""
    def q(text: str) -> sql.Composed:
        return sql.SQL(text).format(s=sql.Identifier(schema))

    row = cur.execute(q("SELECT coalesce(max(person_id), 0) FROM {s}.identity_persons WHERE space = %s"),
                      (space,)).fetchone()
    ids = iter(range(int(row[0]) + 1 if row else 1, 2**62))
    store = core.LinkStore(new_id=lambda: next(ids))
    keys, records = sorted(set(keys)), sorted(set(records))
    if keys:
        kinds, hashes = zip(*keys, strict=True)
        found = cur.execute(q(
            f"SELECT l.kind, l.key_hash, {_SURVIVOR} FROM {{s}}.identity_links l {_PERSON} "
            "WHERE l.space = %s AND (l.kind, l.key_hash) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"),
            (space, list(kinds), list(hashes))).fetchall()
        store.links = {(kind, value): person for kind, value, person in found}
    if records:
        mappings, names = zip(*(n.split(RECORD_SEP, 1) for n in records), strict=True)
        found = cur.execute(q(
            f"SELECT l.mapping, l.source_key, {_SURVIVOR}, l.keys, l.deleted_at IS NULL "
            f"FROM {{s}}.identity_contributions l {_PERSON} WHERE l.space = %s AND "
            "(l.mapping, l.source_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"),
            (space, list(mappings), list(names))).fetchall()
        store.records = {
            record_name(m, r): core.RecordState(person, frozenset(_key_of(k) for k in held), alive)
            for m, r, person, held, alive in found}
    return store


def _table(table: TargetTable) -> sql.Composable:
    return pg_name(table.schema, table.name)


def read_contributions(cur: psycopg.Cursor, schema: str, space: str,
                       persons: list[int] | None) -> dict[int, list[Contribution]]:
    """The live contributions of these persons (all persons of the space: None)."""
    query = ('SELECT person_id, mapping, source, source_key, "values", commit_time, first_seen '
             "FROM {s}.identity_contributions WHERE space = %s AND deleted_at IS NULL")
    params: tuple[Any, ...] = (space,)
    if persons is not None:
        query += " AND person_id = ANY(%s)"
        params = (space, persons)
    found: dict[int, list[Contribution]] = {}
    rows = cur.execute(sql.SQL(query).format(s=sql.Identifier(schema)), params).fetchall()
    for person, mapping, source, record, values, commit_time, first_seen in rows:
        data = values if isinstance(values, dict) else json.loads(values or "{}")
        found.setdefault(person, []).append(
            Contribution(mapping, source, record, decode_values(data), commit_time, first_seen))
    return found


def expected_unified(cur: psycopg.Cursor, schema: str, space: IdentitySpace,
                     persons: list[int] | None = None) -> dict[int, dict[str, Any]]:
    """What the unified table should hold (person id -> row without the key column), computed
    from the stored contributions. For `syncd reconcile` and `syncd identity recompute`."""
    if space.unified is None:
        return {}
    expected = {}
    for person, contributions in read_contributions(cur, schema, space.name, persons).items():
        row = unify(contributions, space.unified.policies)
        if row is not None:
            expected[person] = row
    return expected


def recompute_unified(cur: psycopg.Cursor, schema: str, space: IdentitySpace,
                      persons: list[int] | None = None) -> tuple[int, int]:
    """Write the unified rows of these persons (all: None); returns (rows written, rows removed).

    Run inside a transaction holding the space's lock (`IdentitySession.lock`)."""
    unified = space.unified
    if unified is None:
        return 0, 0
    expected = expected_unified(cur, schema, space, persons)
    table, key = _table(unified.table), pg_name(unified.key)
    if persons is None:
        removed = cur.execute(sql.SQL("DELETE FROM {} WHERE NOT ({} = ANY(%s))").format(table, key),
                              (list(expected),))
    else:
        gone = [p for p in persons if p not in expected]
        removed = cur.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(table, key), (gone,))
    count = max(removed.rowcount, 0)
    if expected:
        columns = [c for c, _, _ in unified.policies]
        values = sql.SQL("VALUES ({})").format(sql.SQL(", ").join(sql.Placeholder() * (len(columns) + 1)))
        statement = upsert(table, [unified.key, *columns], [unified.key], values)
        cur.executemany(statement, [(person, *(row[c] for c in columns))
                                    for person, row in sorted(expected.items())])
    return len(expected), count
