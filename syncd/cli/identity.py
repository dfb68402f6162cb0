"""`syncd identity show | recompute`: who is who, and unified rows rebuilt (docs/identity.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from syncd.cli.options import EXIT_FOUND, config_option, exits_on_errors, fail, load
from syncd.errors import SyncdError


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
    from syncd.mapping.load import choose, load_spaces
    from syncd.sink.connection import connect
    from syncd.sink.persons import reports_for

    if by_person and not key.strip().isdigit():
        raise click.BadParameter(f"a person id is a whole number, got {key!r}", param_hint="KEY")
    config = load(config_path)
    with exits_on_errors():
        space = choose(load_spaces(config), space_name)
        if kind is not None and kind not in space.kinds:
            raise SyncdError(f"identity {space.compiled.name!r} has no match key kind {kind!r}; "
                             f"kinds: {', '.join(space.kinds)}")
        conn = connect(config.target, "syncd:identity")
    try:
        reports = reports_for(conn, config.target.state_schema, space, key, kind=kind, by_person=by_person)
    except Exception as exc:  # psycopg errors: the identity tables cannot be read
        fail(SyncdError(f"cannot read the identity tables: {exc}"))
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
        sys.exit(EXIT_FOUND)


@identity.command("recompute")
@click.option("--identity", "space_name", help="The identity space (default: every one).")
@config_option
def recompute(space_name: str | None, config_path: Path) -> None:
    """Rebuild every unified row from the stored contributions, e.g. after changing a policy.

    Runs in one transaction per identity space, holding the space's lock (the running syncd
    waits for it). Exit status: 0 done, 2 error, 78 config.yaml is wrong.
    """
    from syncd.mapping.load import choose, load_spaces
    from syncd.sink.connection import connect
    from syncd.sink.persons import recompute_persons

    config = load(config_path)
    with exits_on_errors():
        spaces = load_spaces(config)
        chosen = [choose(spaces, space_name)] if space_name else list(spaces.values())
        conn = connect(config.target, "syncd:identity")
    try:
        for space in chosen:
            written, removed = recompute_persons(conn, config.target.state_schema, space.compiled)
            table = space.compiled.unified.table if space.compiled.unified else None
            click.echo(f"identity {space.compiled.name}: " + (
                f"{written} unified rows written, {removed} removed ({table})" if table
                else "no unified table"))
    except Exception as exc:  # psycopg errors
        fail(SyncdError(f"recompute failed: {exc}"))
    finally:
        conn.close()


def render(report: dict[str, Any]) -> list[str]:
    """The human form of `person_report`."""
    found_by = report.get("found_by")
    how = f", found by {found_by}" if found_by and found_by != "person" else ""
    lines = [f"person {report['person']} (identity {report['identity']}), "
             f"created {report['created_at']}{how}"]
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
