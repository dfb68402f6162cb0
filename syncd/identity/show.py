"""Persons read back from the identity tables (`syncd identity show`), and unified rows rebuilt
from the stored contributions (`syncd identity recompute`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from syncd.config import Config
from syncd.errors import ConfigError, IdentityArgsError, SyncdError
from syncd.identity.keys import KeyHasher, decode_values
from syncd.identity.session import IdentitySession, recompute_unified
from syncd.identity.space import compile_space
from syncd.mapping.spec import IdentityDef, MappingSpec
from syncd.model import IdentitySpace


@dataclass(frozen=True)
class Space:
    """An identity space as the commands need it."""

    definition: IdentityDef
    compiled: IdentitySpace
    hasher: KeyHasher
    kinds: tuple[str, ...]


def load_spaces(config: Config) -> dict[str, Space]:
    """Every identity space of the mapping files, compiled (raises ConfigError on problems)."""
    from syncd.mapping.load import load_specs, read_secret  # noqa: PLC0415 (keeps --help fast)

    specs: list[MappingSpec] = load_specs(config)
    kinds: dict[str, dict[str, None]] = {}
    definitions: dict[str, IdentityDef] = {}
    for spec in specs:
        if spec.identity is not None and spec.identity.space is not None:
            definitions[spec.identity.name] = spec.identity.space
            for kind, _ in spec.identity.match:
                kinds.setdefault(spec.identity.name, {})[kind] = None
    spaces = {}
    for name, definition in definitions.items():
        try:
            compiled, hasher = compile_space(definition, name, config.target.schema, read_secret)
        except IdentityArgsError as exc:
            raise ConfigError([exc.problem("")]) from exc
        spaces[name] = Space(definition, compiled, hasher, tuple(kinds.get(name, {})))
    return spaces


def choose(spaces: dict[str, Space], name: str | None) -> Space:
    """The space named, or the only one."""
    if name is not None:
        if name not in spaces:
            raise SyncdError(f"unknown identity {name!r}; the mapping files declare {sorted(spaces)}")
        return spaces[name]
    if len(spaces) != 1:
        raise SyncdError("the mapping files declare no identity" if not spaces else
                         f"several identities ({', '.join(sorted(spaces))}): choose one with --identity")
    return next(iter(spaces.values()))


# --------------------------------------------------------------------------- reading a person


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
    query = sql.SQL("SELECT {} FROM {}.{} WHERE {} = %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in [unified.key, *columns]),
        sql.Identifier(unified.table.schema), sql.Identifier(unified.table.name),
        sql.Identifier(unified.key))
    row = conn.execute(query, (person,)).fetchone()
    return None if row is None else {c: _plain(v) for c, v in zip([unified.key, *columns], row, strict=True)}


def reports_for(conn: psycopg.Connection, schema: str, space: Space, key: str, *, kind: str | None,
             by_person: bool) -> list[dict[str, Any]]:
    if by_person:
        persons = [(int(key), "person")]
    else:
        persons = find_persons(conn, schema, space, key, (kind,) if kind else space.kinds)
    reports = []
    for person, found_by in persons:
        report = person_report(conn, schema, space, person)
        if report is not None:
            report["found_by"] = found_by
            reports.append(report)
    return reports


def recompute_space(conn: psycopg.Connection, schema: str, space: Space) -> tuple[int, int]:
    """Rebuild a space's unified rows from the stored contributions, in one transaction holding
    the space's lock; (rows written, rows removed)."""
    with conn.transaction(), conn.cursor() as cur:
        IdentitySession(cur, schema).lock([space.compiled.name])
        return recompute_unified(cur, schema, space.compiled)
