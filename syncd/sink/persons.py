"""Persons read back from the identity tables: the links and records `syncd preview` resolves
rows against (read-only), what `syncd identity show` prints of a person, and the unified rows
`syncd identity recompute` rebuilds from the stored contributions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg import sql

from syncd.config import TargetConfig
from syncd.errors import SinkUnavailable
from syncd.identity.keys import decode_values
from syncd.identity.preview import StoredLinks, Wanted, wanted_by
from syncd.mapping.identity import Space
from syncd.model import IdentitySpace, Upsert
from syncd.observability import scrub
from syncd.sink.connection import connect, translated
from syncd.sink.identity import IdentitySession, expected_unified, load_store, recompute_unified
from syncd.sink.statements import pg_name

log = structlog.get_logger("syncd.identity")


def load_links(conn: psycopg.Connection, schema: str, ops: Sequence[Upsert]) -> StoredLinks:
    """The links and records these operations name, read in one read-only transaction."""
    return load_stores(conn, schema, wanted_by(ops))


def load_stores(conn: psycopg.Connection, schema: str, wanted: Wanted) -> StoredLinks:
    """The stored links of these keys and the stored records, read in one read-only transaction
    (also what `syncd reconcile` expects person-id columns to hold, syncd.reconcile.persons)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = cur.execute("SELECT to_regclass(quote_ident(%s) || '.identity_links')", (schema,)).fetchone()
        if row is None or row[0] is None:
            return StoredLinks({}, note=f"no links yet (the state schema {schema!r} has no identity tables)")
        return StoredLinks({space: load_store(cur, schema, space, keys, records)
                            for space, (keys, records) in sorted(wanted.items())})


def read_links(target: TargetConfig, ops: Sequence[Upsert]) -> StoredLinks:
    """`load_links` on a connection of its own; a target that cannot be read gives unknown outcomes."""
    try:
        conn = connect(target, "syncd:preview")
    except SinkUnavailable as exc:
        return StoredLinks({}, readable=False, note=scrub(f"target not reachable: {exc}"))
    try:
        return load_links(conn, target.state_schema, ops)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("identity_preview_unreadable", error=reason)
        return StoredLinks({}, readable=False, note=scrub(f"cannot read the identity tables: {reason}"))
    finally:
        conn.close()


def find_persons(conn: psycopg.Connection, schema: str, space: Space, key: str,
                 kinds: tuple[str, ...]) -> list[tuple[int, str]]:
    """(person, kind) for every kind under which `key` is a linked match key."""
    found = []
    query = sql.SQL("SELECT person_id FROM {}.identity_links WHERE space = %s AND kind = %s "
                    "AND key_hash = %s").format(sql.Identifier(schema))
    for kind in kinds:
        hashed = space.hasher(kind, key)
        row = conn.execute(query, (space.compiled.name, kind, hashed)).fetchone() if hashed else None
        if row is not None:
            found.append((int(row[0]), kind))
    return found


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def person_report(conn: psycopg.Connection, schema: str, space: Space, person: int) -> dict[str, Any] | None:
    """Everything syncd knows about a person: links (kinds, never values), records, merges."""
    s = sql.Identifier(schema)
    name = space.compiled.name
    row = conn.execute(sql.SQL("SELECT person_id, created_at, merged_into, merged_at "
                               "FROM {}.identity_persons WHERE space = %s AND person_id = %s").format(s),
                       (name, person)).fetchone()
    if row is None:
        return None
    report: dict[str, Any] = {"identity": name, "person": person, "created_at": _iso(row[1])}
    if row[2] is not None:
        report.update(merged_into=row[2], merged_at=_iso(row[3]))
        live = person_report(conn, schema, space, int(row[2]))
        report["live"] = live
        return report
    absorbed = [r[0] for r in conn.execute(sql.SQL(
        "SELECT person_id FROM {}.identity_persons WHERE space = %s AND merged_into = %s ORDER BY person_id"
    ).format(s), (name, person))]
    report["absorbed"] = absorbed
    report["links"] = [
        {"kind": kind, "linked_by": mapping, "source_key": key, "linked_at": _iso(at)}
        for kind, mapping, key, at in conn.execute(sql.SQL(
            "SELECT kind, mapping, source_key, linked_at FROM {}.identity_links WHERE space = %s "
            "AND person_id = %s ORDER BY kind, linked_at, mapping, source_key").format(s), (name, person))]
    report["records"] = [
        {"mapping": mapping, "source": source, "source_key": key,
         "kinds": sorted({k.partition(":")[0] for k in keys}),
         "status": "deleted" if deleted_at else "live", "commit_time": _iso(commit_time),
         "deleted_at": _iso(deleted_at),
         "values": {k: _plain(v) for k, v in decode_values(values or {}).items()}}
        for mapping, source, key, keys, values, commit_time, deleted_at in conn.execute(sql.SQL(
            'SELECT mapping, source, source_key, keys, "values", commit_time, deleted_at '
            "FROM {}.identity_contributions WHERE space = %s AND person_id = %s "
            "ORDER BY mapping, source_key").format(s), (name, person))]
    report["merges"] = [
        {"id": merge_id, "survivor": survivor, "merged": list(merged), "mapping": mapping,
         "source": source, "source_key": key, "kinds": list(kinds), "position": position,
         "commit_time": _iso(commit_time), "merged_at": _iso(merged_at)}
        for merge_id, survivor, merged, mapping, source, key, kinds, position, commit_time, merged_at
        in conn.execute(sql.SQL(
            "SELECT id, survivor, merged, mapping, source, source_key, key_kinds, position, commit_time, "
            "merged_at FROM {}.identity_merges WHERE space = %s "
            "AND (survivor = ANY(%s) OR merged && %s::bigint[]) ORDER BY id").format(s),
            (name, [person, *absorbed], [person, *absorbed]))]
    report["unified"] = _unified_row(conn, space, person)
    return report


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _unified_row(conn: psycopg.Connection, space: Space, person: int) -> dict[str, Any] | None:
    unified = space.compiled.unified
    if unified is None:
        return None
    columns = [c for c, _, _ in unified.policies]
    query = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
        sql.SQL(", ").join(pg_name(c) for c in [unified.key, *columns]),
        pg_name(unified.table.schema, unified.table.name), pg_name(unified.key))
    row = conn.execute(query, (person,)).fetchone()
    return None if row is None else {c: _plain(v) for c, v in zip([unified.key, *columns], row, strict=True)}


def reports_for(conn: psycopg.Connection, schema: str, space: Space, key: str, *, kind: str | None,
             by_person: bool) -> list[dict[str, Any]]:
    if by_person:
        persons = [(int(key), "person")]
    else:
        persons = find_persons(conn, schema, space, key, (kind,) if kind else space.kinds)
    found: dict[int, list[str]] = {}  # a key held under several kinds finds one person once
    for person, found_by in persons:
        found.setdefault(person, []).append(found_by)
    reports = []
    for person, kinds in found.items():
        report = person_report(conn, schema, space, person)
        if report is not None:
            report["found_by"] = ", ".join(kinds)
            reports.append(report)
    return reports


def refused_persons(conn: psycopg.Connection, schema: str, space: str) -> set[int]:
    """Persons whose unified row PostgreSQL refused, with a pending dead letter saying so."""
    with translated("reading dead letters"):
        rows = conn.execute(sql.SQL("SELECT DISTINCT refused_person FROM {}.dead_letters "
                                    "WHERE status = 'pending' AND refused_space = %s").format(
                                        sql.Identifier(schema)), (space,)).fetchall()
    return {int(person) for (person,) in rows}


@dataclass(frozen=True)
class UnifiedChunk:
    """One snapshot of a space's persons: what their unified rows should hold and what they hold."""

    expected: dict[int, dict[str, Any]]
    """person -> the unified row its live contributions make."""
    actual: list[tuple[Any, ...]]
    """(person, columns...) as the unified table holds them."""
    upper: int | None
    """The last person id read; None: the range is open (the last chunk)."""


def unified_chunk(conn: psycopg.Connection, schema: str, space: IdentitySpace, columns: Sequence[str], *,
                  after: int | None, limit: int) -> UnifiedChunk:
    """The persons after `after` with live contributions (`limit` of them), in one snapshot."""
    unified = space.unified
    assert unified is not None
    key = pg_name(unified.key)
    selected = sql.SQL(", ").join(pg_name(n) for n in [unified.key, *columns])
    select = sql.SQL("SELECT {} FROM {}").format(selected, pg_name(unified.table.schema, unified.table.name))
    with translated(f"reading the unified rows of identity {space.name!r}"), \
            conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        lower = sql.SQL("") if after is None else sql.SQL("AND person_id > %(after)s")
        persons = [row[0] for row in cur.execute(sql.SQL(
            "SELECT DISTINCT person_id FROM {}.identity_contributions WHERE space = %(space)s "
            "AND deleted_at IS NULL {} ORDER BY person_id LIMIT %(limit)s").format(
                sql.Identifier(schema), lower),
            {"space": space.name, "after": after, "limit": limit}).fetchall()]
        upper = persons[-1] if len(persons) == limit else None
        expected = expected_unified(cur, schema, space, persons) if persons else {}
        bounds = [sql.SQL("{} > %(after)s").format(key)] if after is not None else []
        if upper is not None:
            bounds.append(sql.SQL("{} <= %(upper)s").format(key))
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(bounds) if bounds else sql.SQL("")
        actual = cur.execute(select + where, {"after": after, "upper": upper}).fetchall()
    return UnifiedChunk(expected, [tuple(r) for r in actual], upper)


def recompute_persons(conn: psycopg.Connection, schema: str, space: IdentitySpace,
                      persons: list[int] | None = None) -> tuple[int, int]:
    """Rebuild these persons' unified rows (None: every person's) from the stored contributions,
    in one transaction holding the space's lock; (rows written, rows removed)."""
    with translated(f"rewriting unified rows of identity {space.name!r}"), \
            conn.transaction(), conn.cursor() as cur:
        IdentitySession(cur, schema).lock([space.name])
        return recompute_unified(cur, schema, space, persons)
