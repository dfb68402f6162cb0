"""`syncd preview`: what one mapping makes of live source rows, writing nothing.

Rows are read from the source in one READ ONLY transaction (the operator's `--where` is raw
SQL, so the server itself refuses anything but reading), mapped exactly as the pipeline maps
an INSERT of that row (`map_change`), and shown beside the target row they would produce, or
with the reason they are filtered out or would become a dead letter. For a mapping with an
`identity:` block or `lookup:` columns, each mapped row also shows how its person would resolve
against the links stored now (`syncd.identity.preview`, read in a read-only transaction).
Nothing is written to the source or the target.
"""

from __future__ import annotations

import json
import math
import os
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click
import pymysql

from syncd.config import DEFAULT_CONFIG, Config, SourceConfig
from syncd.errors import ConfigError, SyncdError, TransformError
from syncd.identity import preview as identity_preview
from syncd.identity.preview import IdentityPreview, StoredLinks
from syncd.mapping.filters import build_filter
from syncd.mapping.plan import ChangeContext, Mapping, map_change, source_key_text
from syncd.mapping.spec import Condition, MappingSpec
from syncd.model import Op, Row, RowChange, Upsert
from syncd.observability import scrub
from syncd.source import checks
from syncd.source.values import apply_converters, select_converter
from syncd.yamlfile import closest

EXIT_PROBLEMS = 1
EXIT_ERROR = 2

MAPPED = "mapped"
FILTERED = "filtered"
DEAD_LETTER = "dead_letter"


class PreviewError(SyncdError):
    """Preview cannot run: unknown mapping, unreachable server, a --where the source refuses."""


def config_option(func: Any) -> Any:
    """`--config`, as the other commands take it (defined here: syncd.cli imports this module)."""
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path, readable=False),
        default=lambda: os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG),
        show_default="$SYNCD_CONFIG or " + DEFAULT_CONFIG, help="Path of config.yaml.")(func)


def load_config_or_exit(config_path: Path) -> Config:
    """The CLI's config loading (exit 78 on a bad config.yaml, secrets registered for redaction)."""
    from syncd.cli import _load  # noqa: PLC0415 (syncd.cli imports this module at its end)

    return _load(config_path)


# --------------------------------------------------------------------------- mapping rows


@dataclass(frozen=True)
class PreviewRecord:
    """One source row and what the mapping makes of it."""

    key: str
    """`id=42` style text naming the source row."""
    source: Row
    status: str
    """MAPPED, FILTERED or DEAD_LETTER."""
    target: Row | None
    """The target row it would write (MAPPED only)."""
    reason: str | None
    """Why it is filtered out or dead-lettered."""
    warnings: tuple[str, ...] = ()
    """Things the pipeline would log about the row (zero dates read as NULL)."""
    op: Upsert | None = field(default=None, repr=False, compare=False)
    """The upsert it maps to (MAPPED only): its hashed match keys and lookups."""
    identity: IdentityPreview | None = None
    """How its person would resolve (`with_identity`), for mappings with identity or lookups."""


def preview_row(mapping: Mapping, row: Row, key_columns: tuple[str, ...], ctx: ChangeContext,
                zero_dates: tuple[str, ...] = ()) -> PreviewRecord:
    """What the pipeline does with this row when it is inserted (or copied by the initial load)."""
    change = RowChange(mapping.spec.table, Op.INSERT, None, row, key_columns=key_columns,
                       zero_dates=zero_dates)
    key = source_key_text(change)
    warnings = tuple(f"{column}: a zero date, read as NULL" for column in zero_dates)
    mapped = map_change(mapping, change, ctx)
    if mapped.dead_letters:
        return PreviewRecord(key, row, DEAD_LETTER, None, mapped.dead_letters[0].reason, warnings)
    upserts = [op for op in mapped.ops if isinstance(op, Upsert)]
    if not upserts:
        return PreviewRecord(key, row, FILTERED, None, filter_reason(mapping.spec, row), warnings)
    return PreviewRecord(key, row, MAPPED, dict(upserts[-1].values), None, warnings, op=upserts[-1])


def filter_reason(spec: MappingSpec, row: Row) -> str:
    """`filtered out by where: is_test: 0 (is_test is 1)`, naming every condition that fails."""
    failed = []
    for condition in spec.conditions:
        test = build_filter([condition])
        try:
            holds = test is None or test(row)
        except TransformError as exc:
            failed.append(f"{condition_text(condition)} ({exc})")
            continue
        if not holds:
            failed.append(f"{condition_text(condition)} ({condition.column} is "
                          f"{show_value(row.get(condition.column))})")
    return "filtered out by where: " + ("; ".join(failed) or "the row is not in scope")


def condition_text(condition: Condition) -> str:
    """A `where:` condition written back as YAML: `is_test: 0`, `amount: {ge: 100}`."""
    if condition.op == "eq":
        return f"{condition.column}: {_yaml_scalar(condition.value)}"
    if isinstance(condition.value, list):
        value = "[" + ", ".join(_yaml_scalar(v) for v in condition.value) + "]"
    else:
        value = _yaml_scalar(condition.value)
    return f"{condition.column}: {{{condition.op}: {value}}}"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class SourceRows:
    """Rows read for a preview, normalised as the initial load normalises them."""

    key_columns: tuple[str, ...]
    rows: list[Row]
    zero_dates: list[tuple[str, ...]]
    """Per row: columns whose zero date ('0000-00-00') was read as NULL."""


def preview_rows(mapping: Mapping, read: SourceRows, source_name: str,
                 now: datetime | None = None) -> list[PreviewRecord]:
    ctx = ChangeContext(source_name, "preview", now or datetime.now(UTC))
    zero_dates: Iterable[tuple[str, ...]] = read.zero_dates or [()] * len(read.rows)
    return [preview_row(mapping, row, read.key_columns, ctx, zeros)
            for row, zeros in zip(read.rows, zero_dates, strict=True)]


def uses_identity(mapping: Mapping) -> bool:
    return mapping.identity is not None or bool(mapping.lookups)


def with_identity(records: list[PreviewRecord], stored: StoredLinks) -> list[PreviewRecord]:
    """The mapped records with how their person would resolve against the stored links."""
    return [replace(r, identity=identity_preview.resolve(stored, r.op)) if r.op is not None else r
            for r in records]


# --------------------------------------------------------------------------- reading the source


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def select_statement(table: str, key_columns: tuple[str, ...], where: str | None, limit: int,
                     columns: tuple[str, ...] = ()) -> str:
    """The SELECT preview runs. `where` is the operator's SQL, used as written (read-only).
    `columns`: every column of the table (`*` leaves out INVISIBLE ones); none: `*`."""
    selected = ", ".join(_quote(c) for c in columns) or "*"
    query = f"SELECT {selected} FROM {_quote(table)}"
    if where and where.strip():
        query += f" WHERE ({where})"
    if key_columns:
        query += " ORDER BY " + ", ".join(_quote(k) for k in key_columns)
    return query + f" LIMIT {int(limit)}"


def read_source_rows(source: SourceConfig, table: str, where: str | None, limit: int,
                     source_key: tuple[str, ...] = ()) -> SourceRows:
    """Up to `limit` rows in row-key order (the mapping's `source_key`, else the primary key),
    read inside a READ ONLY transaction.

    Values are normalised as the initial load normalises them (`syncd.source.values`): TIMESTAMP
    columns as UTC instants, zero dates as NULL, BIT as integers, and so on.
    """
    conn = checks.connect(source, source.database)
    try:
        key = source_key or checks.primary_key(conn, source.database, table)
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute("START TRANSACTION READ ONLY")
            # Executed without parameters, so a '%' in the operator's condition stays as typed.
            columns = tuple(checks.table_columns(conn, source.database, table) or ())
            cur.execute(select_statement(table, key, where, limit, columns))
            names = [d[0] for d in cur.description]
            converters = [(d[0], f) for d in cur.description if (f := select_converter(d[1])) is not None]
            rows = [dict(zip(names, values, strict=True)) for values in cur.fetchall()]
        conn.rollback()
    except pymysql.err.MySQLError as exc:
        message = exc.args[-1] if exc.args else str(exc)
        raise PreviewError(f"source {source.name} refused the query on {source.database}.{table}: "
                           f"{message}") from exc
    finally:
        conn.close()
    return SourceRows(key, rows, [apply_converters(row, converters) for row in rows])


# --------------------------------------------------------------------------- loading one mapping


def find_spec(specs: list[MappingSpec], name: str) -> MappingSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    names = {s.name for s in specs}
    raise PreviewError(f"no mapping named {name!r}{closest(name, names)}; mappings: "
                       f"{', '.join(sorted(names)) or 'none'}")


def compile_one(config: Config, name: str) -> Mapping:
    """Load every mapping file (static checks), then check and compile just mapping `name`
    against its live target table and source table. ConfigError lists its problems."""
    from syncd.sink.postgres import connect  # noqa: PLC0415
    from syncd.sink.target import check_mapping, describe_tables  # noqa: PLC0415
    from syncd.startup import check_source_tables, compile_all, load_specs, target_table  # noqa: PLC0415

    specs = load_specs(config)
    spec = find_spec(specs, name)
    table = target_table(spec, config)
    conn = connect(config.target, "syncd:preview")
    try:
        infos = describe_tables(conn, [table])
    finally:
        conn.close()
    problems = check_mapping(spec, table, infos[table])
    problems += check_source_tables(config.sources[spec.source], [spec])
    if problems:
        raise ConfigError(problems)
    plans = compile_all(config, [spec], infos)
    return plans[spec.source].mappings[0]


# --------------------------------------------------------------------------- output


def json_value(value: Any) -> Any:
    """A value as JSON: exact decimals as strings, dates and times in ISO 8601, bytes as \\x hex."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((json_value(v) for v in value), key=str)
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)  # Decimal (exact text) and anything else


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


def char_width(char: str) -> int:
    """Terminal columns of one character: 2 for wide East Asian forms, 0 for combining marks."""
    if unicodedata.combining(char) or unicodedata.category(char) in {"Mn", "Me", "Cf"}:
        return 0
    return 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1


def display_width(text: str) -> int:
    return sum(char_width(c) for c in text)


def pad(text: str, width: int) -> str:
    """`text` left-aligned in `width` terminal columns (CJK characters count double)."""
    return text + " " * max(0, width - display_width(text))


def cut(text: str, width: int) -> str:
    """`text` shortened to at most `width` terminal columns, ending in '…' when cut."""
    if display_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        used += char_width(char)
        if used > width - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


_CONTROL = {ord(c): f"\\x{ord(c):02x}" for c in map(chr, range(32))} | {
    ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", 0x7F: "\\x7f"}


def one_line(text: str) -> str:
    """Control characters (newlines, tabs, NUL) written as escapes, so a value stays on its line."""
    return text.translate(_CONTROL)


def show_value(value: Any) -> str:
    """A value for people: text in quotes (so '' and ' 1 ' differ from NULL and 1), NULL bare."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + one_line(value) + "'"
    return one_line(_plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dict | list):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(value)


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


# --------------------------------------------------------------------------- command


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

    Exit status: 0 shown, 1 the mapping has problems (printed as file:line:col: message),
    2 error (unknown mapping, a server cannot be reached, the source refused --where),
    78 config.yaml is wrong.
    """
    config = load_config_or_exit(config_path)
    try:
        mapping = compile_one(config, mapping_name)
        source = config.sources[mapping.spec.source]
        read = read_source_rows(source, mapping.spec.table, where_sql, limit, mapping.spec.source_key)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_PROBLEMS)
    except SyncdError as exc:
        click.echo(scrub(f"syncd: {exc}"), err=True)
        sys.exit(EXIT_ERROR)
    records = preview_rows(mapping, read, source.name)
    ops = [r.op for r in records if r.op is not None]
    if uses_identity(mapping) and ops:
        records = with_identity(records, identity_preview.read_links(config.target, ops))
    if as_json:
        click.echo(records_json_text(records, uses_identity(mapping)))
        return
    if not records:
        click.echo(f"no rows in {source.name}.{mapping.spec.table}"
                   + (f" match: {where_sql}" if where_sql else ""))
        return
    for line in render_records(mapping, source.name, records, styled=sys.stdout.isatty()):
        click.echo(line)
