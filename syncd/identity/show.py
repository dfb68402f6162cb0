"""`syncd identity show` and `syncd identity recompute`: look at persons, rebuild unified rows."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql

from syncd.config import DEFAULT_CONFIG, Config
from syncd.errors import ConfigError, SyncdError
from syncd.identity.keys import KeyHasher, decode_values
from syncd.identity.session import IdentitySession, recompute_unified
from syncd.identity.space import IdentityArgsError, compile_space
from syncd.mapping.spec import IdentityDef, MappingSpec
from syncd.model import IdentitySpace
from syncd.sqlnames import pg_name

EXIT_NOT_FOUND = 1
EXIT_ERROR = 2
EXIT_CONFIG = 78


def config_option(func: Any) -> Any:
    """`--config`, as the other commands take it (defined here: syncd.cli imports this module)."""
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG),
        show_default="$SYNCD_CONFIG or " + DEFAULT_CONFIG, help="Path of config.yaml.")(func)


def _load_config(config_path: Path) -> Config:
    from syncd.cli import _load  # noqa: PLC0415 (syncd.cli imports this module at its end)

    return _load(config_path)


@dataclass(frozen=True)
class Space:
    """An identity space as the commands need it."""

    definition: IdentityDef
    compiled: IdentitySpace
    hasher: KeyHasher
    kinds: tuple[str, ...]


def load_spaces(config: Config) -> dict[str, Space]:
    """Every identity space of the mapping files, compiled (raises ConfigError on problems)."""
    from syncd.startup import load_specs, read_secret  # noqa: PLC0415 (keeps --help fast)

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
            raise ConfigError([exc.where.problem(str(exc))]) from exc
        spaces[name] = Space(definition, compiled, hasher, tuple(kinds.get(name, {})))
    return spaces


def _choose(spaces: dict[str, Space], name: str | None) -> Space:
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
    query = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
        sql.SQL(", ").join(pg_name(c) for c in [unified.key, *columns]),
        pg_name(unified.table.schema, unified.table.name), pg_name(unified.key))
    row = conn.execute(query, (person,)).fetchone()
    return None if row is None else {c: _plain(v) for c, v in zip([unified.key, *columns], row, strict=True)}


def render(report: dict[str, Any]) -> list[str]:
    """The human form of `person_report`."""
    lines = [f"person {report['person']} (identity {report['identity']}), created {report['created_at']}"]
    if "merged_into" in report:
        lines.append(f"  merged into person {report['merged_into']} at {report['merged_at']}")
        return lines + (["", *render(report["live"])] if report.get("live") else [])
    if report["absorbed"]:
        lines.append(f"  absorbed persons: {', '.join(str(p) for p in report['absorbed'])}")
    lines.append("  links (match keys are stored hashed; kinds only):")
    for link in report["links"] or [{"kind": "(none)", "linked_by": "", "source_key": "", "linked_at": ""}]:
        lines.append(f"    {link['kind']:<12} first linked by {link['linked_by']} {link['source_key']} "
                     f"at {link['linked_at']}".rstrip())
    lines.append("  source records:")
    for record in report["records"] or [{"mapping": "(none)"}]:
        if record["mapping"] == "(none)":
            lines.append("    (none)")
            continue
        lines.append(f"    {record['mapping']} {record['source_key']}  {record['status']}  "
                     f"keys: {', '.join(record['kinds']) or '-'}  changed {record['commit_time']}")
        if record["values"]:
            lines.append("      contributes: " + ", ".join(f"{k}={v!r}" for k, v in record["values"].items()))
    if report["unified"] is not None:
        lines.append("  unified row: " + ", ".join(f"{k}={v!r}" for k, v in report["unified"].items()))
    lines.append("  merges:" if report["merges"] else "  merges: none")
    for merge in report["merges"]:
        lines.append(f"    {merge['merged_at']}: person(s) {', '.join(str(m) for m in merge['merged'])} "
                     f"merged into {merge['survivor']}: {merge['mapping']} {merge['source_key']} "
                     f"linked by {', '.join(merge['kinds'])} at {merge['position']}")
    return lines


# --------------------------------------------------------------------------- commands


@click.group("identity")
def identity() -> None:
    """Unified persons: see who is who (docs/identity.md)."""


@identity.command("show")
@click.argument("key")
@click.option("--kind", help="The match key kind KEY is (phone, unionid, ...); default: every kind.")
@click.option("--person", "by_person", is_flag=True, help="KEY is a person id.")
@click.option("--identity", "space_name", help="The identity space (needed when there are several).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@config_option
def show(key: str, *, kind: str | None, by_person: bool, space_name: str | None, as_json: bool,
         config_path: Path) -> None:
    """Print the person a match key (or, with --person, a person id) belongs to: its links (kinds
    and the source records that brought them, never the key values), its source records and
    their contributions, its unified row and its merge history.

    KEY is written as the mappings normalise it (e.g. the bare 11 digits of a phone number).

    Exit status: 0 found, 1 no such key or person, 2 error, 78 config.yaml is wrong.
    """
    from syncd.observability import scrub  # noqa: PLC0415
    from syncd.sink.postgres import connect  # noqa: PLC0415

    config = _load_config(config_path)
    try:
        space = _choose(load_spaces(config), space_name)
        if kind is not None and kind not in space.kinds:
            raise SyncdError(f"identity {space.compiled.name!r} has no match key kind {kind!r}; "
                             f"kinds: {', '.join(space.kinds)}")
        conn = connect(config.target, "syncd:identity")
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_CONFIG)
    except SyncdError as exc:
        click.echo(scrub(f"syncd: {exc}"), err=True)
        sys.exit(EXIT_ERROR)
    try:
        reports = _reports(conn, config.target.state_schema, space, key, kind=kind, by_person=by_person)
    except (psycopg.Error, ValueError) as exc:
        click.echo(scrub(f"syncd: cannot read the identity tables: {exc}"), err=True)
        sys.exit(EXIT_ERROR)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(reports if len(reports) != 1 else reports[0], indent=2, ensure_ascii=False,
                              default=str))
    else:
        for index, report in enumerate(reports):
            click.echo(("\n" if index else "") + "\n".join(render(report)))
    if not reports:
        if not as_json:
            click.echo(f"no person has {'id' if by_person else kind or 'any key'} {key!r}"
                       if by_person or kind else f"no person has the key {key!r} under any kind "
                       f"({', '.join(space.kinds)})", err=True)
        sys.exit(EXIT_NOT_FOUND)


def _reports(conn: psycopg.Connection, schema: str, space: Space, key: str, *, kind: str | None,
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


@identity.command("recompute")
@click.option("--identity", "space_name", help="The identity space (default: every one).")
@config_option
def recompute(space_name: str | None, config_path: Path) -> None:
    """Rebuild every unified row from the stored contributions, e.g. after changing a policy.

    Runs in one transaction per identity space, holding the space's lock (the running syncd
    waits for it). Exit status: 0 done, 2 error, 78 config.yaml is wrong.
    """
    from syncd.observability import scrub  # noqa: PLC0415
    from syncd.sink.postgres import connect  # noqa: PLC0415

    config = _load_config(config_path)
    try:
        spaces = load_spaces(config)
        chosen = [_choose(spaces, space_name)] if space_name else list(spaces.values())
        conn = connect(config.target, "syncd:identity")
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_CONFIG)
    except SyncdError as exc:
        click.echo(scrub(f"syncd: {exc}"), err=True)
        sys.exit(EXIT_ERROR)
    try:
        for space in chosen:
            with conn.transaction(), conn.cursor() as cur:
                IdentitySession(cur, config.target.state_schema).lock([space.compiled.name])
                written, removed = recompute_unified(cur, config.target.state_schema, space.compiled)
            table = space.compiled.unified.table if space.compiled.unified else None
            click.echo(f"identity {space.compiled.name}: " + (
                f"{written} unified rows written, {removed} removed ({table})" if table
                else "no unified table"))
    except psycopg.Error as exc:
        click.echo(scrub(f"syncd: recompute failed: {exc}"), err=True)
        sys.exit(EXIT_ERROR)
    finally:
        conn.close()
