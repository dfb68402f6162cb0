"""Checksums computed inside both servers: a key range in sync is confirmed without moving rows.

Mapping every row in Python bounds a pass (PyMySQL decoding, transforms, canonical values). For
a mapping that only *copies* columns (renames allowed), the value the target should hold is the
source value itself, so both servers can hash the same canonical text of each row:

* each value becomes text the same way on both sides (integers and decimals in their plain
  form, ZEROFILL zeros left out, text as UTF-8, dates as `YYYY-MM-DD`, DATETIME as
  `YYYY-MM-DD HH:MM:SS[.ffffff]` wall time of the source time zone, as PostgreSQL prints it),
  each followed by `|`; text values
  (which may hold any character) prefixed by their length in bytes and `:`; NULL as `~` (text:
  a bare `:`); so that no two different rows give the same text;
* MD5 of the row's text, its first 120 bits split into two 60-bit integers, summed over the
  range with the row count.

Equal sums: the range is in sync (a 1-in-2^120 chance per range of two different contents
summing alike). Different sums, including a false alarm such as a target `numeric` with a
different scale: the range is compared row by row through the mapping as usual, which decides.

Only mappings where this is exact take part: aligned (one integer key column copied), no
`where` filter, no identity or lookup columns, every compared column a plain copy whose source
and target types are listed below; DATETIME only when the source time zone has a fixed offset
(a named zone with daylight saving maps two instants to one wall time), and a target database
in UTF8.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, tzinfo

from syncd.config import fixed_offset
from syncd.model import ColumnType
from syncd.reconcile.layout import Layout, plain_copy
from syncd.sqlnames import my_name, pg_ident

_INTEGER = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum"}
_TARGET_NUMBER = {"smallint", "integer", "bigint", "numeric"}
_TARGET_TEXT = {"text", "character varying"}

_MAX_ARGS = 100  # PostgreSQL's FUNC_MAX_ARGS
SPAN_CHUNKS = 4
"""A pushed-down range spans this many chunks' worth of keys."""


@dataclass(frozen=True)
class Pushdown:
    """The row-hash expressions of one mapping, one per server."""

    source_hash: str
    """MySQL expression over the source table's columns, as PyMySQL formats it (`%` doubled)."""
    target_hash: str
    """PostgreSQL expression over the target table's columns (SQL text, names quoted)."""


def plan_pushdown(layout: Layout, source_types: dict[str, str], target_types: dict[str, ColumnType],
                  source_zone: tzinfo, target_encoding: str) -> Pushdown | None:
    """The row hashes for this mapping, or None when its values cannot be compared in SQL exactly."""
    mapping = layout.mapping
    if (layout.range_columns is None or len(layout.range_columns) != 1 or mapping.in_scope is not None
            or mapping.identity is not None or mapping.lookups or target_encoding.upper() != "UTF8"):
        return None
    copies = {c.target: plain_copy(c) for c in mapping.spec.columns}
    pairs = [(layout.source_key[0], layout.range_columns[0])]
    for column in layout.compared:
        source = copies.get(column)
        if source is None:
            return None
        pairs.append((source, column))
    source_parts: list[str] = []
    target_parts: list[str] = []
    for source, target in pairs:
        kind = target_types.get(target)
        exprs = _column(source, source_type_of(source, source_types), target, kind, source_zone)
        if exprs is None:
            return None
        mine, theirs = exprs
        if source_type_of(source, source_types) in _TEXT:
            # Text may hold any character: `byte length:value|`, NULL as `:|`.
            source_parts.append(f"IFNULL(LENGTH({mine}), ''), ':', IFNULL({mine}, ''), '|'")
            target_parts += [f"octet_length({theirs})", "':'", theirs, "'|'"]
        else:
            # Numbers and times never hold `|` or `~`: `value|`, NULL as `~|`.
            source_parts.append(f"IFNULL({mine}, '~'), '|'")
            target_parts += [f"coalesce({theirs}, '~')", "'|'"]
    return Pushdown(source_hash=f"MD5(CONCAT({', '.join(source_parts)}))",
                    target_hash=f"md5({_concat(target_parts)})")


def _concat(parts: list[str]) -> str:
    """`concat(parts)`, nested where needed: a PostgreSQL call takes at most 100 arguments
    (FUNC_MAX_ARGS), a wide table's row text more."""
    while len(parts) > _MAX_ARGS:
        parts = [f"concat({', '.join(parts[i:i + _MAX_ARGS])})" for i in range(0, len(parts), _MAX_ARGS)]
    return f"concat({', '.join(parts)})"


def source_type_of(column: str, source_types: dict[str, str]) -> str:
    return source_types.get(column, "").lower()


def value_kind(source_type: str, kind: ColumnType | None, zone: tzinfo) -> str | None:
    """How a copied value of this MySQL type reaches this target column when both servers can
    spell it alike: "integer", "decimal", "text", "date", "datetime" (into a timestamp) or
    "datetime+" (into a timestamptz, from a source zone with a fixed offset); None otherwise."""
    target = kind.data_type if kind is not None else None
    if source_type in _INTEGER or source_type == "decimal":
        return ("integer" if source_type in _INTEGER else "decimal") if target in _TARGET_NUMBER else None
    if source_type in _TEXT:
        return "text" if target in _TARGET_TEXT else None
    if source_type == "date":
        return "date" if target == "date" else None
    if source_type == "datetime" and target == "timestamp without time zone":
        return "datetime"
    if source_type == "datetime" and target == "timestamp with time zone" and fixed_offset(zone) is not None:
        return "datetime+"
    return None


def _column(source: str, source_type: str, target: str, kind: ColumnType | None,
            zone: tzinfo) -> tuple[str, str] | None:
    """(MySQL text, PostgreSQL text) of one copied column, or None when not comparable in SQL."""
    value = value_kind(source_type, kind, zone)
    mine, theirs = my_name(source), pg_ident(target)
    if value is None:
        return None
    if value == "text":
        return f"CONVERT({mine} USING utf8mb4)", f"{theirs}::text"
    if value in ("integer", "decimal"):  # `+ 0`: a ZEROFILL column's text has its zeros (007)
        return f"CAST({mine} + 0 AS CHAR)", f"{theirs}::text"
    if value == "date":
        return f"CAST({mine} AS CHAR)", f"{theirs}::text"
    # PostgreSQL's text of a timestamp (ISO, as psycopg requires): microseconds without their
    # trailing zeros, no fraction at all when zero; MariaDB's text made the same (`%` doubled:
    # the expression is part of a PyMySQL format string).
    text = "'%%Y-%%m-%%d %%H:%%i:%%s.%%f'"
    mine = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM DATE_FORMAT({mine}, {text})))"
    if value == "datetime":
        return mine, f"{theirs}::text"
    offset = fixed_offset(zone)
    assert offset is not None
    return mine, f"({theirs} AT TIME ZONE INTERVAL '{offset_text(offset)}')::text"


def offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
