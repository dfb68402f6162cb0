"""`syncd preview`: live source rows beside what a mapping makes of them; writes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from syncd.cli.options import config_option, exits_on_errors, load
from syncd.cli.render import cut, display_width, one_line, pad
from syncd.identity import preview as identity_preview
from syncd.mapping.plan import Mapping
from syncd.mapping.preview import (
    DEAD_LETTER,
    FILTERED,
    MAPPED,
    PreviewRecord,
    preview_rows,
    show_value,
    uses_identity,
    with_identity,
)
from syncd.model import Row, json_value
from syncd.sink.persons import read_links
from syncd.source.snapshot import read_source_rows


@click.command()
@click.option("--mapping", "mapping_name", required=True, metavar="NAME",
              help="The mapping to preview (its `name:`).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True,
              help="Read at most this many source rows (in primary-key order).")
@click.option("--where", "where_sql", metavar="SQL",
              help="A SQL condition on source columns choosing the rows, e.g. \"status = '退款中'\". "
                   "Runs in a read-only transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
@config_option
def preview(mapping_name: str, limit: int, where_sql: str | None, as_json: bool,
            config_path: Path) -> None:
    """Show live source rows beside the target rows a mapping would make of them. Writes nothing.

    Each row is shown with the target row it would produce, or why it is filtered out by the
    mapping's `where:`, or the reason it would become a dead letter. For a mapping with an
    `identity:` block or `lookup:` columns, it also shows how the row's person would resolve
    against the links stored now (existing, new, a merge; match keys as hashes, never values).
    PostgreSQL's own checks (CHECK constraints, text lengths) are not tried: a row that passes
    here can still be rejected there.

    Exit status: 0 shown, 2 error (unknown mapping, a server cannot be reached, the source
    refused --where), 78 config.yaml or the mapping has problems (printed as file:line:col).
    """
    from syncd.service.startup import compile_one

    config = load(config_path)
    with exits_on_errors():
        mapping = compile_one(config, mapping_name)
        source = config.sources[mapping.spec.source]
        read = read_source_rows(source, mapping.spec.table, where_sql, limit, mapping.spec.source_key)
        records = preview_rows(mapping, read, source.name)
        ops = [r.op for r in records if r.op is not None]
        if uses_identity(mapping) and ops:
            records = with_identity(records, read_links(config.target, ops))
    if as_json:
        click.echo(records_json_text(records, uses_identity(mapping)))
        return
    if not records:
        click.echo(f"no rows in {source.name}.{mapping.spec.table}"
                   + (f" match: {where_sql}" if where_sql else ""))
        return
    for line in render_records(mapping, source.name, records, styled=sys.stdout.isatty()):
        click.echo(line)


# --------------------------------------------------------------------------- rendering


def record_json(record: PreviewRecord, identity: bool = False) -> dict[str, Any]:
    """One record; `identity`: with an `identity` field (null for rows that are not mapped)."""
    data = {
        "key": record.key,
        "source": json_value(record.source),
        "target": json_value(record.target) if record.target is not None else None,
        "status": record.status,
        "reason": record.reason,
        "warnings": list(record.warnings),
    }
    if identity:
        data["identity"] = identity_preview.as_json(record.identity) if record.identity else None
    return data


def records_json_text(records: list[PreviewRecord], identity: bool = False) -> str:
    return json.dumps([record_json(r, identity) for r in records], ensure_ascii=False, indent=2)


_STATUS_TEXT = {MAPPED: "mapped", FILTERED: "filtered out", DEAD_LETTER: "dead letter"}
_STATUS_COLOR = {MAPPED: "green", FILTERED: "yellow", DEAD_LETTER: "red"}
VALUE_WIDTH = 100


def _row_lines(row: Row, indent: str) -> list[str]:
    width = max((display_width(one_line(name)) for name in row), default=0)
    return [f"{indent}{pad(one_line(name), width)}  {cut(show_value(value), VALUE_WIDTH)}"
            for name, value in row.items()]


def render_records(mapping: Mapping, source_name: str, records: list[PreviewRecord],
                   styled: bool = False) -> list[str]:
    """The human form: per record the source row, then the target row or the reason."""
    spec = mapping.spec

    def style(text: str, **kw: Any) -> str:
        return click.style(text, **kw) if styled else text

    lines = [style(f"mapping {spec.name}: {source_name}.{spec.table} -> {mapping.table}", bold=True),
             ""]
    for number, record in enumerate(records, 1):
        status = style(_STATUS_TEXT[record.status], fg=_STATUS_COLOR[record.status], bold=True)
        lines.append(f"[{number}] {one_line(record.key)}: {status}")
        lines.append(f"  source {source_name}.{spec.table}")
        lines += _row_lines(record.source, "    ")
        if record.target is not None:
            lines.append(f"  target {mapping.table}")
            lines += _row_lines(record.target, "    ")
        elif record.status == DEAD_LETTER:
            lines.append(f"  dead letter: {one_line(record.reason or '')}")
        else:
            lines.append(f"  {one_line(record.reason or '')}")
        if record.identity is not None:
            lines += [one_line(line) for line in identity_preview.render(record.identity)]
        lines += [f"  warning: {one_line(w)}" for w in record.warnings]
        lines.append("")
    lines.append(summary_line(records, mapping))
    return lines


def summary_line(records: list[PreviewRecord], mapping: Mapping) -> str:
    counts = {status: sum(1 for r in records if r.status == status)
              for status in (MAPPED, FILTERED, DEAD_LETTER)}
    text = (f"{len(records)} source rows: {counts[MAPPED]} mapped, {counts[DEAD_LETTER]} dead letter"
            f"{'s' if counts[DEAD_LETTER] != 1 else ''}, {counts[FILTERED]} filtered out. "
            "Nothing was written.")
    if mapping.spec.commit_time_column:
        text += f" ({mapping.spec.commit_time_column} shows the current time; syncd writes the " \
                "source commit time there.)"
    return text
